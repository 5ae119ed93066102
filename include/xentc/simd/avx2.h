/*
 * The AVX2 + FMA vector layer: 8 floats / 4 doubles a vector. Every
 * operation carries the target attribute, so the rest of the module stays
 * baseline x86-64 and runs on any CPU; they are only reached after the CPU
 * check in dispatch.h.
 *
 * The operations, for DT in f32 and f64 (T float or double, v a vector,
 * m a lane mask, "tail" a count 0 < n < lanes):
 *   set1 zero load store            broadcast, 0, unaligned load/store
 *   load_tail(p, n, fill)           lanes [0, n) from p, the others fill
 *   store_tail(p, n, v)             lanes [0, n) to p, nothing else written
 *   add sub mul div max             max(a, b): a > b ? a : b (b for NaN)
 *   div_fast(a, b)                  a / b, or a times a refined reciprocal
 *                                   where the division would set the pace
 *   fma(a, b, c) = a b + c, fnma(a, b, c) = c - a b, fms(a, b, c) = a b - c
 *   cmp_eq cmp_lt cmp_ge            ordered compares (false for NaN)
 *   cmp_neq cmp_nlt cmp_unord       their complements (true for NaN;
 *                                   unord: either operand NaN)
 *   all(m)                          every lane set
 *   select(m, a, b)                 m ? a : b per lane
 *   zero_where(m, v)                m ? 0 : v
 *   add_where(acc, m, v)            m ? acc + v : acc
 *   hmax(v)                         largest lane (no NaN lanes)
 *   hsum(v)                         sum of the lanes in double
 *   cnt_zero cnt_add(c, m) cnt_total(c)   integer count of set mask lanes
 *   pow2_keep(p, n, t, keep)        p 2^n, 0 in the lanes not in keep; n is
 *                                   integral, t = n + the exp's rounding
 *                                   constant (algo/exp_coefs.h), so 2^n
 *                                   can be built from t's bits
 *   gather_index(C), gather(p, i)   lanes p[0], p[C], p[2C], ...
 *   lane_classes (a constant)       rows of up to this many classes take
 *                                   the group kernels' lane mode
 *                                   (algo/ce_rows.h), its columns by
 *                                   load_columns (simd/common.h)
 *   lane_classes_out,               the same with outputs put back by
 *   lane_classes_grad (constants)   store_columns: softmax/log_softmax,
 *                                   a gradient
 *   load_index(p)                   W int64 integers of int32 range as T
 *   widen(v, k)                     f32: half k of v as doubles (k = 0, 1);
 *                                   f64: v
 *   narrow(d)                       f32: the doubles d[0], d[1] as one
 *                                   float vector; f64: d[0]
 *   getexp getmant                  x = 2^getexp(x) getmant(x), getmant in
 *                                   [1, 2), for positive normal x
 *   mant_lookup16(m, t) (f32)       t[i], i the 4 leading fraction bits of
 *                                   m in [1, 2) (the float log's table)
 *   load_f16 load_bf16 (f32)        W 16-bit values (uint16_t bits) widened
 *   load_f16_pair load_bf16_pair    2W of them into two vectors, the lanes
 *     (p, &a, &b) (f32)             in an order of the layer's choosing
 *   store_f16 store_bf16 (f32)      W lanes rounded to 16 bits, nearest
 *                                   even, NaN kept (half.h; their target
 *                                   attribute is XT_ATTR_H16_<ISA>)
 */
#ifndef XENTC_SIMD_AVX2_H
#define XENTC_SIMD_AVX2_H

#include "common.h"

/* XENTC_BASELINE_ONLY builds the portable kernels alone, as on a platform
 * without x86 intrinsics (tools/check_baseline_build.sh). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(XENTC_BASELINE_ONLY)
#define XT_HAVE_AVX2 1
#include <immintrin.h>

#include "../algo/exp_coefs.h"

#define XT_AVX2 __attribute__((target("avx2,fma")))
#define XT_ATTR_avx2 XT_AVX2
#define XT_L2 XT_AVX2 static inline

/* The operations AVX2 and AVX-512 (simd/avx512.h) spell alike, for one
 * element type: Q the qualifiers, PFX the names' prefix (xv_avx2_f32), T the
 * element, V a vector, M a mask, X the intrinsics' prefix (_mm256,
 * _mm512), S their suffix (ps, pd), CMP the compare intrinsic. */
#define XT_DEFINE_X86_OPS(Q, PFX, T, V, M, X, S, CMP)                         \
    Q V PFX##_set1(T a) { return X##_set1_##S(a); }                          \
    Q V PFX##_zero(void) { return X##_setzero_##S(); }                        \
    Q V PFX##_load(const T *p) { return X##_loadu_##S(p); }                   \
    Q void PFX##_store(T *p, V v) { X##_storeu_##S(p, v); }                  \
    Q V PFX##_add(V a, V b) { return X##_add_##S(a, b); }                    \
    Q V PFX##_sub(V a, V b) { return X##_sub_##S(a, b); }                    \
    Q V PFX##_mul(V a, V b) { return X##_mul_##S(a, b); }                    \
    Q V PFX##_div(V a, V b) { return X##_div_##S(a, b); }                    \
    Q V PFX##_max(V a, V b) { return X##_max_##S(a, b); }                    \
    Q V PFX##_fma(V a, V b, V c) { return X##_fmadd_##S(a, b, c); }          \
    Q V PFX##_fnma(V a, V b, V c) { return X##_fnmadd_##S(a, b, c); }        \
    Q V PFX##_fms(V a, V b, V c) { return X##_fmsub_##S(a, b, c); }          \
    Q M PFX##_cmp_eq(V a, V b) { return CMP(a, b, _CMP_EQ_OQ); }              \
    Q M PFX##_cmp_neq(V a, V b) { return CMP(a, b, _CMP_NEQ_UQ); }            \
    Q M PFX##_cmp_lt(V a, V b) { return CMP(a, b, _CMP_LT_OQ); }              \
    Q M PFX##_cmp_nlt(V a, V b) { return CMP(a, b, _CMP_NLT_UQ); }            \
    Q M PFX##_cmp_ge(V a, V b) { return CMP(a, b, _CMP_GE_OQ); }              \
    Q M PFX##_cmp_unord(V a, V b) { return CMP(a, b, _CMP_UNORD_Q); }

/* The first n < 32 bytes of v to p (n a multiple of 4), by plain stores
 * of 16, 8 and 4 bytes: a masked store (vmaskmovps) is microcoded on AMD's
 * cores. (As the layer's store_tail, used in the long-row loops, it cost
 * float32 forward 6-10% at 32-1001 classes, where nothing is stored: GCC
 * laid the loops out otherwise.) On the Zen 3, 1 thread, 2^20 float32 elements, forward+gradient
 * ran 8-10% faster at 31-50 classes with 7 of row mode's 8 masked stores
 * of a group's tail columns gone (store_tile). */
XT_L2 XT_ALWAYS_INLINE void xv_avx2_store_bytes(void *p, ptrdiff_t n, __m256i v)
{
    char *q = (char *)p;
    __m128i h = _mm256_castsi256_si128(v);
    if (n & 16) {
        _mm_storeu_si128((__m128i *)q, h);
        h = _mm256_extracti128_si256(v, 1);
        q += 16;
    }
    if (n & 8) {
        _mm_storel_epi64((__m128i *)q, h);
        h = _mm_unpackhi_epi64(h, h);
        q += 8;
    }
    if (n & 4)
        _mm_store_ss((float *)q, _mm_castsi128_ps(h));
}

/* The operations of both element types that are AVX2's own: DT, T,
 * vector V, suffix S, gather index I, lane count W; a mask is a vector of
 * all-ones lanes. */
#define XT_DEFINE_AVX2_LAYER(DT, T, V, S, I, W)                               \
    XT_DEFINE_LAYER_TYPES(xv_avx2_##DT, V, V, __m256i, I, W)                  \
    XT_DEFINE_X86_OPS(XT_L2, xv_avx2_##DT, T, V, V, _mm256, S, _mm256_cmp_##S) \
    XT_L2 V xv_avx2_##DT##_load_tail(const T *p, ptrdiff_t n, V fill)         \
    {                                                                         \
        __m256i t = xv_avx2_##DT##_tail(n);                                   \
        return _mm256_blendv_##S(fill, _mm256_maskload_##S(p, t),             \
                                 _mm256_castsi256_##S(t));                    \
    }                                                                         \
    XT_L2 void xv_avx2_##DT##_store_tail(T *p, ptrdiff_t n, V v)              \
    {                                                                         \
        _mm256_maskstore_##S(p, xv_avx2_##DT##_tail(n), v);                   \
    }                                                                         \
    /* the same by plain stores (xv_avx2_store_bytes) */                      \
    XT_L2 XT_ALWAYS_INLINE void xv_avx2_##DT##_store_part(T *p, ptrdiff_t n, V v) \
    {                                                                         \
        xv_avx2_store_bytes(p, n * (ptrdiff_t)sizeof(T), _mm256_cast##S##_si256(v)); \
    }                                                                         \
    XT_L2 V xv_avx2_##DT##_div_fast(V a, V b) { return _mm256_div_##S(a, b); } \
    XT_L2 int xv_avx2_##DT##_all(V m)                                         \
    {                                                                         \
        return _mm256_movemask_##S(m) == (1 << (W)) - 1;                      \
    }                                                                         \
    XT_L2 V xv_avx2_##DT##_select(V m, V a, V b) { return _mm256_blendv_##S(b, a, m); } \
    XT_L2 V xv_avx2_##DT##_zero_where(V m, V v) { return _mm256_andnot_##S(m, v); } \
    XT_L2 V xv_avx2_##DT##_add_where(V acc, V m, V v)                         \
    {                                                                         \
        return _mm256_add_##S(acc, _mm256_and_##S(m, v));                     \
    }                                                                         \
    XT_L2 __m256i xv_avx2_##DT##_cnt_zero(void) { return _mm256_setzero_si256(); }

/* ---- float32 ---------------------------------------------------------- */
/* Lanes [0, r) set, for a tail of r < 8 elements. */
XT_L2 __m256i xv_avx2_f32_tail(ptrdiff_t r)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
XT_DEFINE_AVX2_LAYER(f32, float, __m256, ps, __m256i, 8)

XT_L2 float xv_avx2_f32_hmax(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}
XT_L2 __m256i xv_avx2_f32_cnt_add(__m256i c, __m256 m)
{
    return _mm256_sub_epi32(c, _mm256_castps_si256(m)); /* set lanes are -1 */
}
XT_L2 long long xv_avx2_f32_cnt_total(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}
/* 2^n: the biased exponent n + 127 sits in t's low mantissa bits. */
XT_L2 __m256 xv_avx2_f32_pow2_keep(__m256 p, __m256 n, __m256 t, __m256 keep)
{
    (void)n;
    __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23));
    return _mm256_and_ps(keep, _mm256_mul_ps(p, scale));
}
XT_L2 __m256i xv_avx2_f32_gather_index(ptrdiff_t C)
{
    return _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                              _mm256_set1_epi32((int)C));
}
XT_L2 __m256 xv_avx2_f32_gather(const float *p, __m256i i)
{
    return _mm256_i32gather_ps(p, i, 4);
}
/* columns_plan / load_columns / load_tile / store_columns / store_tile
 * (simd/common.h) by W x W transposes of tiles of W columns of the W
 * rows, each row's tile one load (masked where a plain one would read
 * past the block's last element; reading into the rows after it inside
 * the block is harmless, those lanes become columns nobody uses). Tiles
 * of up to XT_AVX2_TILE_GATHER columns are gathers instead.
 * The stores of whole rows (store_columns) go row by row with plain
 * stores that may run into the next row, which that row's own stores then
 * overwrite: only the block's last bytes need a partial store
 * (store_part). A tile of a row's last columns (store_tile, row mode's
 * tail) may not change the next row, written already: its store blends
 * in the bytes it runs over as they are, the block's last row a partial
 * store. DT's transpose is in place.
 * Rows of 2 elements are the block's two vectors, split into even and
 * odd elements by DT's pairs_split (pairs_join the inverse). */
#define XT_DEFINE_AVX2_COLUMNS(DT, T, V, W, S)                                \
    typedef xv_avx2_##DT##_i xv_avx2_##DT##_cp;                               \
    /* the tiles need no plan (a narrow one makes its own gather index): \
     * set, never read */                                                   \
    XT_L2 void xv_avx2_##DT##_columns_plan(ptrdiff_t C, xv_avx2_##DT##_cp *plan) \
    {                                                                         \
        *plan = xv_avx2_##DT##_gather_index(C);                               \
    }                                                                         \
    XT_L2 XT_ALWAYS_INLINE void xv_avx2_##DT##_load_tile(const T *p, ptrdiff_t stride,        \
                                        ptrdiff_t nc, V *cols)                \
    {                                                                         \
        if (nc <= XT_AVX2_TILE_GATHER) {                                      \
            XT_GATHER_TILE(xv_avx2_##DT, p, stride, nc, cols);                \
            return;                                                           \
        }                                                                     \
        V tile[W];                                                            \
        const ptrdiff_t end = ((W) - 1) * stride + nc; /* past the block */  \
        for (int r = 0; r < (W); r++)                                         \
            tile[r] = r * stride + (W) <= end                                 \
                          ? _mm256_loadu_##S(p + r * stride)                  \
                          : _mm256_maskload_##S(p + r * stride, xv_avx2_##DT##_tail(nc)); \
        xv_avx2_##DT##_transpose(tile);                                       \
        for (ptrdiff_t j = 0; j < nc; j++)                                    \
            cols[j] = tile[j];                                                \
    }                                                                         \
    XT_L2 XT_ALWAYS_INLINE void xv_avx2_##DT##_store_tile(T *p, ptrdiff_t stride, ptrdiff_t nc, \
                                         const V *cols)                       \
    {                                                                         \
        V tile[W];                                                            \
        for (int j = 0; j < (W); j++)                                         \
            tile[j] = j < nc ? cols[j] : _mm256_setzero_##S();                \
        xv_avx2_##DT##_transpose(tile);                                       \
        /* a row's store runs into the next row's first elements, written \
         * already: they are loaded and stored back as they are; the last  \
         * row's may not leave the group */                                \
        const __m256i keep_ = xv_avx2_##DT##_tail(nc);                        \
        for (int r = 0; r < (W); r++)                                         \
            if (nc == (W))                                                    \
                _mm256_storeu_##S(p + r * stride, tile[r]);                   \
            else if (r + 1 < (W))                                             \
                _mm256_storeu_##S(p + r * stride,                             \
                                  _mm256_blendv_##S(_mm256_loadu_##S(p + r * stride), tile[r], \
                                                    _mm256_castsi256_##S(keep_))); \
            else                                                              \
                xv_avx2_##DT##_store_part(p + r * stride, nc, tile[r]);       \
    }                                                                         \
    XT_L2 XT_ALWAYS_INLINE void xv_avx2_##DT##_load_columns(const T *p, ptrdiff_t C,           \
                                           const xv_avx2_##DT##_cp *plan, V *cols) \
    {                                                                         \
        (void)plan;                                                           \
        if (C == 2) {                                                         \
            xv_avx2_##DT##_pairs_split(p, cols);                              \
            return;                                                           \
        }                                                                     \
        for (ptrdiff_t t0 = 0; t0 < C; t0 += (W))                             \
            xv_avx2_##DT##_load_tile(p + t0, C, C - t0 < (W) ? C - t0 : (W), cols + t0); \
    }                                                                         \
    XT_L2 XT_ALWAYS_INLINE void xv_avx2_##DT##_store_columns(T *p, ptrdiff_t C,                \
                                            const xv_avx2_##DT##_cp *plan,    \
                                            const V *cols)                    \
    {                                                                         \
        (void)plan;                                                           \
        if (C == 2) {                                                         \
            xv_avx2_##DT##_pairs_join(p, cols);                               \
            return;                                                           \
        }                                                                     \
        enum { NT = (XT_COLUMNS_MAX + (W) - 1) / (W) };                       \
        V tile[NT][W];                                                        \
        const ptrdiff_t nt = (C + (W) - 1) / (W);                             \
        for (ptrdiff_t t = 0; t < nt; t++) {                                  \
            for (int j = 0; j < (W); j++)                                     \
                tile[t][j] = t * (W) + j < C ? cols[t * (W) + j] : _mm256_setzero_##S(); \
            xv_avx2_##DT##_transpose(tile[t]);                                \
        }                                                                     \
        for (int r = 0; r < (W); r++)                                         \
            for (ptrdiff_t t = 0; t < nt; t++) {                              \
                const ptrdiff_t at = r * C + t * (W), nc = C - t * (W);       \
                if (at + (W) <= (W) * C)                                      \
                    _mm256_storeu_##S(p + at, tile[t][r]);                    \
                else                                                          \
                    xv_avx2_##DT##_store_part(p + at, nc, tile[t][r]);        \
            }                                                                 \
    }
/* at most this many columns of a tile by a gather each: a transpose of
 * 8 loads for one or two columns lost (Zen 3, 1 thread, 2^20 elements,
 * against 2: the forward at 9-10 classes -22 to -27%, at 17-18 -5%;
 * forward+gradient -16% at 9-10, +4-6% at 34 and 50, within the noise) */
#define XT_AVX2_TILE_GATHER 2
/* The first two rounds of a float transpose, shared with simd/avx512.h:
 * 4 x 4 transposes within each 128-bit lane of the NV vectors in (X the
 * intrinsics' prefix), through t into out; the 128-bit lanes are then
 * exchanged by each width's own shuffles. */
#define XT_X86_F32_IN_LANES(X, in, t, out, NV)                                \
    do {                                                                      \
        for (int i = 0; i < (NV) / 2; i++) {                                  \
            t[2 * i] = X##_unpacklo_ps(in[2 * i], in[2 * i + 1]);             \
            t[2 * i + 1] = X##_unpackhi_ps(in[2 * i], in[2 * i + 1]);         \
        }                                                                     \
        for (int i = 0; i < (NV) / 4; i++) {                                  \
            out[4 * i + 0] = X##_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);    \
            out[4 * i + 1] = X##_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);    \
            out[4 * i + 2] = X##_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44); \
            out[4 * i + 3] = X##_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE); \
        }                                                                     \
    } while (0)
/* 8 x 8 transpose in place: r[i] lane j becomes r[j] lane i */
XT_L2 XT_ALWAYS_INLINE void xv_avx2_f32_transpose(__m256 *r)
{
    __m256 t[8], u[8];
    XT_X86_F32_IN_LANES(_mm256, r, t, u, 8);
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}
/* the 8 rows of 2 floats at p: column 0 (the even elements) and 1 */
XT_L2 XT_ALWAYS_INLINE void xv_avx2_f32_pairs_split(const float *p, __m256 *cols)
{
    const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
    /* the shuffles leave rows 0 1 4 5 | 2 3 6 7: the permute orders them */
    cols[0] = _mm256_castpd_ps(
        _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
    cols[1] = _mm256_castpd_ps(
        _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
}
XT_L2 XT_ALWAYS_INLINE void xv_avx2_f32_pairs_join(float *p, const __m256 *cols)
{
    const __m256 c0 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(cols[0]), 0xD8));
    const __m256 c1 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(cols[1]), 0xD8));
    _mm256_storeu_ps(p, _mm256_unpacklo_ps(c0, c1));
    _mm256_storeu_ps(p + 8, _mm256_unpackhi_ps(c0, c1));
}
XT_DEFINE_AVX2_COLUMNS(f32, float, __m256, 8, ps)
/* Where lane mode stops (the columns by transposes above), measured on
 * AMD Zen 3 with C a constant to 32 (simd/common.h, XT_WIDE_C_SWITCH),
 * against row mode, alternating builds. 1 thread, 2^20 elements: the
 * forward +39% at 21, +16% at 28, +14% at 24 (2 threads, 2^23: +37%,
 * +19%, +18%, +18% at 31); logsumexp +13-30% at 21-28; softmax +35% at 21,
 * +18% at 28, even at 24; at 32 row mode (four whole vectors a row) is
 * ahead: forward+gradient 0.85x, softmax 0.91x in lane mode. The gradient
 * at 2 threads, 2^23: +20% at 21, -8% at 24 (row mode's whole vectors),
 * even at 28 and 31: so to 23. (With C at run time past 16 the limits
 * were 20: forward -14% at 28, -30% at 32.) */
enum { xv_avx2_f32_lane_classes = 31, xv_avx2_f32_lane_classes_out = 31,
       xv_avx2_f32_lane_classes_grad = 23 };
XT_L2 __m256 xv_avx2_f32_getexp(__m256 x)
{
    __m256i k = _mm256_sub_epi32(_mm256_srli_epi32(_mm256_castps_si256(x), 23),
                                 _mm256_set1_epi32(127));
    return _mm256_cvtepi32_ps(k);
}
XT_L2 __m256 xv_avx2_f32_getmant(__m256 x)
{
    return _mm256_castsi256_ps(
        _mm256_or_si256(_mm256_and_si256(_mm256_castps_si256(x), _mm256_set1_epi32(0x007fffff)),
                        _mm256_set1_epi32(0x3f800000)));
}
/* two 8-entry permutes, bit 3 of the index choosing (by the sign bit) */
XT_L2 __m256 xv_avx2_f32_mant_lookup16(__m256 m, const float *t)
{
    const __m256i i = _mm256_srli_epi32(_mm256_castps_si256(m), 19);
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(_mm256_loadu_ps(t), i),
                            _mm256_permutevar8x32_ps(_mm256_loadu_ps(t + 8), i),
                            _mm256_castsi256_ps(_mm256_slli_epi32(i, 28)));
}
XT_L2 __m256d xv_avx2_f32_widen(__m256 v, int k)
{
    return _mm256_cvtps_pd(k ? _mm256_extractf128_ps(v, 1) : _mm256_castps256_ps128(v));
}
XT_L2 __m256 xv_avx2_f32_narrow(const __m256d *d)
{
    return _mm256_set_m128(_mm256_cvtpd_ps(d[1]), _mm256_cvtpd_ps(d[0]));
}

/* ---- float64 ---------------------------------------------------------- */
/* Lanes [0, r) set, for a tail of r < 4 elements. */
XT_L2 __m256i xv_avx2_f64_tail(ptrdiff_t r)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)r),
                              _mm256_setr_epi64x(0, 1, 2, 3));
}
XT_DEFINE_AVX2_LAYER(f64, double, __m256d, pd, __m128i, 4)

XT_L2 double xv_avx2_f64_hmax(__m256d v)
{
    __m128d m = _mm_max_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    m = _mm_max_sd(m, _mm_unpackhi_pd(m, m));
    return _mm_cvtsd_f64(m);
}
XT_L2 double xv_avx2_f64_hsum(__m256d v)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}
/* float lanes widened to double before adding */
XT_L2 double xv_avx2_f32_hsum(__m256 v)
{
    return xv_avx2_f64_hsum(_mm256_add_pd(xv_avx2_f32_widen(v, 0), xv_avx2_f32_widen(v, 1)));
}
XT_L2 __m256i xv_avx2_f64_cnt_add(__m256i c, __m256d m)
{
    return _mm256_sub_epi64(c, _mm256_castpd_si256(m));
}
XT_L2 long long xv_avx2_f64_cnt_total(__m256i v)
{
    __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi64(s, _mm_unpackhi_epi64(s, s));
    return _mm_cvtsi128_si64(s);
}
/* 2^n: n sits in t's low bits (two's complement), so
 * (t_bits - shifter_bits + 1023) << 52 is 2^n for n in [-1022, 0]. */
XT_L2 __m256d xv_avx2_f64_pow2_keep(__m256d p, __m256d n, __m256d t, __m256d keep)
{
    (void)n;
    __m256i bits = _mm256_sub_epi64(_mm256_castpd_si256(t),
                                    _mm256_castpd_si256(_mm256_set1_pd(XT_EXP_SHIFTER)));
    bits = _mm256_slli_epi64(_mm256_add_epi64(bits, _mm256_set1_epi64x(1023)), 52);
    return _mm256_and_pd(keep, _mm256_mul_pd(p, _mm256_castsi256_pd(bits)));
}
XT_L2 __m128i xv_avx2_f64_gather_index(ptrdiff_t C)
{
    return _mm_mullo_epi32(_mm_setr_epi32(0, 1, 2, 3), _mm_set1_epi32((int)C));
}
XT_L2 __m256d xv_avx2_f64_gather(const double *p, __m128i i)
{
    return _mm256_i32gather_pd(p, i, 8);
}
/* 4 x 4 transpose in place */
XT_L2 XT_ALWAYS_INLINE void xv_avx2_f64_transpose(__m256d *r)
{
    const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}
/* the 4 rows of 2 doubles at p: column 0 and 1 */
XT_L2 XT_ALWAYS_INLINE void xv_avx2_f64_pairs_split(const double *p, __m256d *cols)
{
    const __m256d a = _mm256_loadu_pd(p), b = _mm256_loadu_pd(p + 4);
    cols[0] = _mm256_permute4x64_pd(_mm256_unpacklo_pd(a, b), 0xD8); /* rows 0 2 1 3 ordered */
    cols[1] = _mm256_permute4x64_pd(_mm256_unpackhi_pd(a, b), 0xD8);
}
XT_L2 XT_ALWAYS_INLINE void xv_avx2_f64_pairs_join(double *p, const __m256d *cols)
{
    const __m256d c0 = _mm256_permute4x64_pd(cols[0], 0xD8);
    const __m256d c1 = _mm256_permute4x64_pd(cols[1], 0xD8);
    _mm256_storeu_pd(p, _mm256_unpacklo_pd(c0, c1));
    _mm256_storeu_pd(p + 4, _mm256_unpackhi_pd(c0, c1));
}
XT_DEFINE_AVX2_COLUMNS(f64, double, __m256d, 4, pd)
/* float64 (Zen 3, as above, lane mode to 20 against 12): the forward in
 * lane mode +20% at 13 classes, +14% at 16, even at 20; forward+gradient
 * in row mode from 13 classes, +16% at 13, +9% at 16, +3% at 20. */
enum { xv_avx2_f64_lane_classes = 20, xv_avx2_f64_lane_classes_out = 20,
       xv_avx2_f64_lane_classes_grad = 12 };
XT_L2 __m256d xv_avx2_f64_widen(__m256d v, int k) { (void)k; return v; }
XT_L2 __m256d xv_avx2_f64_narrow(const __m256d *d) { return d[0]; }
/* exponent as a double, through the 1.5 * 2^52 mantissa trick (AVX2 has
 * no int64 -> double conversion) */
XT_L2 __m256d xv_avx2_f64_getexp(__m256d x)
{
    const __m256d magic = _mm256_set1_pd(6755399441055744.0);
    __m256i k = _mm256_sub_epi64(_mm256_srli_epi64(_mm256_castpd_si256(x), 52),
                                 _mm256_set1_epi64x(1023));
    return _mm256_sub_pd(_mm256_castsi256_pd(_mm256_add_epi64(k, _mm256_castpd_si256(magic))),
                         magic);
}
XT_L2 __m256d xv_avx2_f64_getmant(__m256d x)
{
    const __m256i mant_mask = _mm256_set1_epi64x(0x000fffffffffffffLL);
    const __m256i one_bits = _mm256_set1_epi64x(0x3ff0000000000000LL);
    return _mm256_castsi256_pd(
        _mm256_or_si256(_mm256_and_si256(_mm256_castpd_si256(x), mant_mask), one_bits));
}

/* the low halves of the int64 lanes gathered by a permute, converted */
XT_L2 __m128i xv_avx2_low_halves(const long long *p)
{
    __m256i v = _mm256_loadu_si256((const __m256i *)p);
    v = _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6));
    return _mm256_castsi256_si128(v);
}
XT_L2 __m256 xv_avx2_f32_load_index(const long long *p)
{
    __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(xv_avx2_low_halves(p)),
                                           xv_avx2_low_halves(p + 4), 1);
    return _mm256_cvtepi32_ps(both);
}
XT_L2 __m256d xv_avx2_f64_load_index(const long long *p)
{
    return _mm256_cvtepi32_pd(xv_avx2_low_halves(p));
}
/* hmax_many / hsum_many (simd/common.h) as a tree: each stage pairs the
 * vectors and halves the lanes each row holds (128-bit halves, then pairs
 * of lanes, then lanes), by two shuffles and one max or add: W - 1 pairs,
 * 3 operations a row, where a reduction a row took 5-7 and a store, and
 * the W results a reload. The pairs are chosen so that row l ends in lane
 * l. The sums are in T, as on AVX-512. */
#define XT_DEFINE_AVX2_MANY(DT, V)                                            \
    XT_L2 XT_ALWAYS_INLINE V xv_avx2_##DT##_hmax_many(const V *v)             \
    {                                                                         \
        return xv_avx2_##DT##_tree(v, 1);                                     \
    }                                                                         \
    XT_L2 XT_ALWAYS_INLINE V xv_avx2_##DT##_hsum_many(const V *v)             \
    {                                                                         \
        return xv_avx2_##DT##_tree(v, 0);                                     \
    }
#define XT_AVX2_OP(S, use_max, a, b) ((use_max) ? _mm256_max_##S(a, b) : _mm256_add_##S(a, b))
/* 128-bit halves: [a's halves combined | b's] */
#define XT_AVX2_HALVES(S, use_max, a, b)                                      \
    XT_AVX2_OP(S, use_max, _mm256_permute2f128_##S(a, b, 0x20),             \
               _mm256_permute2f128_##S(a, b, 0x31))
XT_L2 XT_ALWAYS_INLINE __m256 xv_avx2_f32_tree(const __m256 *v, int use_max)
{
    /* [r0|r4] [r1|r5] [r2|r6] [r3|r7], 4 lanes a row */
    const __m256 a0 = XT_AVX2_HALVES(ps, use_max, v[0], v[4]);
    const __m256 a1 = XT_AVX2_HALVES(ps, use_max, v[1], v[5]);
    const __m256 a2 = XT_AVX2_HALVES(ps, use_max, v[2], v[6]);
    const __m256 a3 = XT_AVX2_HALVES(ps, use_max, v[3], v[7]);
    /* 2 lanes a row: [r0 r0 r1 r1 | r4 r4 r5 r5], [r2 r2 r3 r3 | r6 r6 r7 r7] */
    const __m256 b0 = XT_AVX2_OP(ps, use_max, _mm256_shuffle_ps(a0, a1, 0x44),
                                 _mm256_shuffle_ps(a0, a1, 0xEE));
    const __m256 b1 = XT_AVX2_OP(ps, use_max, _mm256_shuffle_ps(a2, a3, 0x44),
                                 _mm256_shuffle_ps(a2, a3, 0xEE));
    /* a lane a row: [r0 r1 r2 r3 | r4 r5 r6 r7] */
    return XT_AVX2_OP(ps, use_max, _mm256_shuffle_ps(b0, b1, 0x88),
                      _mm256_shuffle_ps(b0, b1, 0xDD));
}
XT_L2 XT_ALWAYS_INLINE __m256d xv_avx2_f64_tree(const __m256d *v, int use_max)
{
    /* [r0|r2] [r1|r3], 2 lanes a row */
    const __m256d a0 = XT_AVX2_HALVES(pd, use_max, v[0], v[2]);
    const __m256d a1 = XT_AVX2_HALVES(pd, use_max, v[1], v[3]);
    /* [r0 r1 | r2 r3] */
    return XT_AVX2_OP(pd, use_max, _mm256_unpacklo_pd(a0, a1), _mm256_unpackhi_pd(a0, a1));
}
XT_DEFINE_AVX2_MANY(f32, __m256)
XT_DEFINE_AVX2_MANY(f64, __m256d)
#undef XT_AVX2_HALVES
#undef XT_AVX2_OP
/* ---- 16-bit floats (float32 lanes; half.h says why) ------------------- */
/* The operations of simd/avx512.h's 16-bit section, 8 lanes. float16 is
 * F16C (vcvtph2ps / vcvtps2ph), a separate CPUID bit: these functions, and
 * the conversion kernels built on them (algo/convert.h), carry f16c in
 * their target, and the avx2 level is offered only on CPUs that have it
 * (dispatch.h; every AVX2 CPU made has). */
#define XT_AVX2_H16 __attribute__((target("avx2,fma,f16c")))
#define XT_ATTR_H16_avx2 XT_AVX2_H16
#define XT_L2H XT_AVX2_H16 static inline
/* The 16-bit operations AVX2 and AVX-512 spell alike: Q the qualifiers,
 * PFX the names' prefix, V the float vector, VI the integer one, X the
 * intrinsics' prefix, SI
 * its integer vector suffix (si256, si512), HV the half-width integer
 * vector and HLOAD / HSTORE its unaligned load and store; bf16_round gives
 * the bits of v rounded to nearest even at bit 16 (NaN: the caller's). */
#define XT_DEFINE_X86_H16(Q, PFX, V, VI, X, SI, HV, HLOAD, HSTORE)            \
    Q V PFX##_load_f16(const uint16_t *p)                                     \
    {                                                                         \
        return X##_cvtph_ps(HLOAD((const HV *)p));                            \
    }                                                                         \
    Q void PFX##_store_f16(uint16_t *p, V v)                                  \
    {                                                                         \
        HSTORE((HV *)p, X##_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)); \
    }                                                                         \
    Q V PFX##_load_bf16(const uint16_t *p)                                    \
    {                                                                         \
        return X##_cast##SI##_ps(X##_slli_epi32(X##_cvtepu16_epi32(HLOAD((const HV *)p)), 16)); \
    }                                                                         \
    /* 2W values in two vectors, in some lane order: here the even      \
     * elements (a 32-bit lane's low half shifted up) and the odd ones     \
     * (its high half, masked), two operations for what two load_bf16     \
     * do in four; for reductions, where the order is free */            \
    Q void PFX##_load_bf16_pair(const uint16_t *p, V *a, V *b)                \
    {                                                                         \
        const VI r = X##_loadu_##SI((const VI *)p);                           \
        *a = X##_cast##SI##_ps(X##_slli_epi32(r, 16));                        \
        *b = X##_cast##SI##_ps(X##_and_##SI(r, X##_set1_epi32((int)0xffff0000u))); \
    }                                                                         \
    Q void PFX##_load_f16_pair(const uint16_t *p, V *a, V *b)                 \
    {                                                                         \
        *a = PFX##_load_f16(p);                                               \
        *b = PFX##_load_f16(p + sizeof(V) / sizeof(float));                   \
    }                                                                         \
    Q VI PFX##_bf16_round(V v)                                                \
    {                                                                         \
        const VI x = X##_castps_##SI(v);                                      \
        const VI lsb = X##_and_##SI(X##_srli_epi32(x, 16), X##_set1_epi32(1)); \
        return X##_add_epi32(x, X##_add_epi32(lsb, X##_set1_epi32(0x7fff)));  \
    }
XT_DEFINE_X86_H16(XT_L2H, xv_avx2_f32, __m256, __m256i, _mm256, si256, __m128i,
                  _mm_loadu_si128, _mm_storeu_si128)
XT_L2H void xv_avx2_f32_store_bf16(uint16_t *p, __m256 v)
{
    const __m256i x = _mm256_castps_si256(v);
    __m256i r = xv_avx2_f32_bf16_round(v);
    /* NaN: truncated with the quiet bit set, never rounded into inf */
    __m256i q = _mm256_or_si256(x, _mm256_set1_epi32(0x400000));
    r = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(r), _mm256_castsi256_ps(q),
                                             _mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    r = _mm256_srli_epi32(r, 16);
    /* lanes <= 0xffff: the unsigned saturating pack only narrows them */
    _mm_storeu_si128((__m128i *)p, _mm_packus_epi32(_mm256_castsi256_si128(r),
                                                    _mm256_extracti128_si256(r, 1)));
}
#undef XT_L2H

#undef XT_L2
#endif /* x86-64 with GCC/Clang */
#endif
