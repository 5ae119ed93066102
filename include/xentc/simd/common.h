/*
 * What every vector layer (simd/avx2.h, simd/avx512.h, simd/neon.h) and
 * every algorithm template (algo/) share: token pasting and the names an
 * algorithm is instantiated under.
 *
 * A layer defines, for its instruction set ISA and each element type DT
 * (f32, f64), the type xv_ISA_DT_v (a vector), xv_ISA_DT_m (a lane mask),
 * xv_ISA_DT_c (integer lane counters), xv_ISA_DT_i (a gather index), the
 * enum constant xv_ISA_DT_lanes, XT_ATTR_ISA (the target attribute of its
 * functions) and the operations xv_ISA_DT_OP listed in simd/avx2.h.
 *
 * An algorithm template (the files of algo/ but instance.h, no include guard) is included with
 * XT_ISA and XT_DT defined (algo/instance.h does it); inside it XV(op)
 * names the layer's operation for (XT_ISA, XT_DT), XVD(op) its float64
 * one, XT_K(name) the kernel xt_name_DT_ISA, XT_KD(name) its float64
 * kernel and XT_ATTR the layer's target attribute.
 */
#ifndef XENTC_SIMD_COMMON_H
#define XENTC_SIMD_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define XT_CAT_(a, b) a##b
#define XT_CAT(a, b) XT_CAT_(a, b)
#define XT_CAT3(a, b, c) XT_CAT(XT_CAT(a, b), c)

#define XV(op) XT_CAT3(XT_CAT3(xv_, XT_ISA, _), XT_DT, _##op)
#define XVD(op) XT_CAT3(XT_CAT3(xv_, XT_ISA, _), f64, _##op)
#define XT_K(name) XT_CAT3(xt_##name##_, XT_DT, XT_CAT(_, XT_ISA))
#define XT_KD(name) XT_CAT3(xt_##name##_, f64, XT_CAT(_, XT_ISA))
#define XT_ATTR XT_CAT(XT_ATTR_, XT_ISA)

/* A layer's types for one element type: PFX the names' prefix
 * (xv_avx2_f32), V a vector, M a lane mask, C integer lane counters, I a
 * gather index, W the lane count. */
#define XT_DEFINE_LAYER_TYPES(PFX, V, M, C, I, W)                             \
    typedef V PFX##_v;                                                        \
    typedef M PFX##_m;                                                        \
    typedef C PFX##_c;                                                        \
    typedef I PFX##_i;                                                        \
    enum { PFX##_lanes = W };

/* Columns of a block of rows, for the layers whose way to get them is
 * their gather (PFX the names' prefix, T the element, Q the qualifiers):
 *   columns_plan(C, &plan)             what load_columns needs for rows of
 *                                      C elements (C <= XT_COLUMNS_MAX)
 *   load_columns(p, C, &plan, cols)    cols[j], j < C: lanes p[j],
 *                                      p[C + j], p[2C + j], ... (the
 *                                      lanes rows of a block of W rows)
 *   store_columns(p, C, &plan, cols)   the inverse: the block's W C
 *                                      elements written from the columns
 *   load_tile(p, stride, nc, cols)     cols[j], j < nc <= W: lanes p[j],
 *                                      p[stride + j], ... (W rows' first
 *                                      nc elements, rows stride apart)
 *   store_tile(p, stride, nc, cols)    its inverse
 * simd/avx512.h and simd/avx2.h have their own, by permutes and
 * transposes of the block's vectors (NEON keeps these). */
#define XT_COLUMNS_MAX 34 /* >= every layer's lane_classes */
/* r = CALL(K) with K the constant C for C = 2..20 (XT_SMALL_C_SWITCH) or
 * 21..32 (XT_WIDE_C_SWITCH), else CALL(C): the lane kernels' instances
 * with C a constant (algo/ce_rows.h, row_groups.h), whose loops over the
 * columns unroll and whose block of vectors stays in registers. With C
 * at run time past 16, float32 rows of 17 and 18 classes ran 26% below
 * those of 16 on AVX2 (Zen 3, 1 thread, 2^20 elements; as constants the
 * cross-entropy forward +31-35%, forward+gradient +38% at 17, logsumexp
 * +38%, softmax +44%; at 19-20 +2-14%; float64 forward +6-7%), and those
 * of 21-31 classes (then row mode) 20-30% below those of 20. The wide ones
 * go in functions of their own (XT_K(ce_lanes_wide), XT_K(rows_lanes_wide)):
 * inside the kernel beside the small ones they cost lane mode 3-9% at
 * 2-16 classes and row mode 5-11% at 32-50 (code layout). Up to 32, NEON's
 * lane_classes (AVX2's float32 31; AVX-512's float32 34 past it at run
 * time). The module grew from 1.78 MB (to 16) to about 2.3 MB. */
#define XT_SMALL_C_MAX 20
#define XT_SMALL_C_SWITCH(C, r, CALL)                                         \
    switch (C) {                                                              \
    case 2: r = CALL(2); break;                                               \
    case 3: r = CALL(3); break;                                               \
    case 4: r = CALL(4); break;                                               \
    case 5: r = CALL(5); break;                                               \
    case 6: r = CALL(6); break;                                               \
    case 7: r = CALL(7); break;                                               \
    case 8: r = CALL(8); break;                                               \
    case 9: r = CALL(9); break;                                               \
    case 10: r = CALL(10); break;                                             \
    case 11: r = CALL(11); break;                                             \
    case 12: r = CALL(12); break;                                             \
    case 13: r = CALL(13); break;                                             \
    case 14: r = CALL(14); break;                                             \
    case 15: r = CALL(15); break;                                             \
    case 16: r = CALL(16); break;                                             \
    case 17: r = CALL(17); break;                                             \
    case 18: r = CALL(18); break;                                             \
    case 19: r = CALL(19); break;                                             \
    case 20: r = CALL(20); break;                                             \
    default: r = CALL(C);                                                     \
    }
#define XT_WIDE_C_SWITCH(C, r, CALL)                                          \
    switch (C) {                                                              \
    case 21: r = CALL(21); break;                                             \
    case 22: r = CALL(22); break;                                             \
    case 23: r = CALL(23); break;                                             \
    case 24: r = CALL(24); break;                                             \
    case 25: r = CALL(25); break;                                             \
    case 26: r = CALL(26); break;                                             \
    case 27: r = CALL(27); break;                                             \
    case 28: r = CALL(28); break;                                             \
    case 29: r = CALL(29); break;                                             \
    case 30: r = CALL(30); break;                                             \
    case 31: r = CALL(31); break;                                             \
    case 32: r = CALL(32); break;                                             \
    default: r = CALL(C);                                                     \
    }
/* cols[j] = the j-th column of W rows stride apart from p, j < nc, one
 * gather a column (PFX's gather_index and gather): the layers' load_tile
 * for narrow tiles, and the whole of the gather layers' */
#define XT_GATHER_TILE(PFX, p, stride, nc, cols)                              \
    do {                                                                      \
        const PFX##_i idx_ = PFX##_gather_index(stride);                      \
        for (ptrdiff_t j_ = 0; j_ < (nc); j_++)                               \
            (cols)[j_] = PFX##_gather((p) + j_, idx_);                        \
    } while (0)
#define XT_DEFINE_GATHER_COLUMNS(Q, PFX, T)                                   \
    typedef PFX##_i PFX##_cp;                                                 \
    Q void PFX##_columns_plan(ptrdiff_t C, PFX##_cp *plan)                    \
    {                                                                         \
        *plan = PFX##_gather_index(C);                                        \
    }                                                                         \
    Q void PFX##_load_columns(const T *p, ptrdiff_t C, const PFX##_cp *plan,  \
                              PFX##_v *cols)                                  \
    {                                                                         \
        for (ptrdiff_t j = 0; j < C; j++)                                     \
            cols[j] = PFX##_gather(p + j, *plan);                             \
    }                                                                         \
    Q void PFX##_load_tile(const T *p, ptrdiff_t stride, ptrdiff_t nc,        \
                           PFX##_v *cols)                                     \
    {                                                                         \
        XT_GATHER_TILE(PFX, p, stride, nc, cols);                             \
    }                                                                         \
    Q void PFX##_store_tile(T *p, ptrdiff_t stride, ptrdiff_t nc,             \
                            const PFX##_v *cols)                              \
    {                                                                         \
        T lane[PFX##_lanes];                                                  \
        for (ptrdiff_t j = 0; j < nc; j++) {                                  \
            PFX##_store(lane, cols[j]);                                       \
            for (int r = 0; r < PFX##_lanes; r++)                             \
                p[r * stride + j] = lane[r];                                  \
        }                                                                     \
    }                                                                         \
    Q void PFX##_store_columns(T *p, ptrdiff_t C, const PFX##_cp *plan,       \
                               const PFX##_v *cols)                           \
    {                                                                         \
        (void)plan;                                                           \
        PFX##_store_tile(p, C, C, cols);                                      \
    }

/* Horizontal reductions of W vectors at once, for the layers without a
 * cheaper way than one reduction each (simd/avx512.h and avx2.h
 * have trees):
 *   hmax_many(v), hsum_many(v)    lane l: the largest / the sum of the
 *                                 lanes of v[l], l < W (no NaN lanes for
 *                                 hmax; hsum's double sum rounded to T) */
#define XT_DEFINE_LANEWISE_MANY(Q, PFX, T)                                    \
    Q PFX##_v PFX##_hmax_many(const PFX##_v *v)                               \
    {                                                                         \
        T r[PFX##_lanes];                                                     \
        for (int l = 0; l < PFX##_lanes; l++)                                 \
            r[l] = PFX##_hmax(v[l]);                                          \
        return PFX##_load(r);                                                 \
    }                                                                         \
    Q PFX##_v PFX##_hsum_many(const PFX##_v *v)                               \
    {                                                                         \
        T r[PFX##_lanes];                                                     \
        for (int l = 0; l < PFX##_lanes; l++)                                 \
            r[l] = (T)PFX##_hsum(v[l]);                                       \
        return PFX##_load(r);                                                 \
    }

#if defined(__GNUC__) || defined(__clang__)
#define XT_ALWAYS_INLINE __attribute__((always_inline))
#else
#define XT_ALWAYS_INLINE
#endif

/* Prefetch every cache line of [p + XT_PREFETCH_BYTES, + bytes) (blocks.h
 * explains the distance); prefetcht0 on x86. The address is formed as an
 * integer: it may lie past the array. */
#define XT_PREFETCH_SPAN(p, bytes) XT_PREFETCH_SPAN_AT(p, XT_PREFETCH_BYTES, bytes)
/* the same at a distance of its own */
#define XT_PREFETCH_SPAN_AT(p, dist, bytes)                                   \
    do {                                                                      \
        for (size_t b_ = 0; b_ < (size_t)(bytes); b_ += 64)                   \
            __builtin_prefetch((const void *)((uintptr_t)(p) + (size_t)(dist) + b_), 0, 3); \
    } while (0)

#endif
