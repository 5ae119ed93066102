/*
 * The AVX-512F vector layer: 16 floats / 8 doubles a vector, the
 * operations of simd/avx2.h (listed there). Masks are k registers: tails
 * are masked loads and stores, and the *_where operations are masked
 * instructions. Two operations differ in kind from AVX2's:
 *   pow2_keep   is vscalef under a zero mask, one instruction for AVX2's
 *               shift, multiply and flush: p 2^n is rounded once either
 *               way (exact for normal results, the same subnormal at
 *               n = -126 / -1022), so the exp has AVX2's bits;
 *   div_fast    multiplies by a 14-bit reciprocal estimate refined by
 *               Newton steps (two for double, one for float; about 1
 *               ulp): the short-row kernels take a log per row, and a
 *               zmm division would set their pace.
 * Per-function target attributes again: reached only after the CPU check
 * in dispatch.h. avx512f alone: nothing here needs another subset.
 */
#ifndef XENTC_SIMD_AVX512_H
#define XENTC_SIMD_AVX512_H

#include "avx2.h"

#ifdef XT_HAVE_AVX2
#define XT_HAVE_AVX512 1
#define XT_AVX512 __attribute__((target("avx512f,fma")))
#define XT_ATTR_avx512 XT_AVX512
#define XT_L5 XT_AVX512 static inline

/* One element type's operations: DT, T, vector V, mask M, lane count W,
 * intrinsics suffix S, gather index type I. */
#define XT_DEFINE_AVX512_LAYER(DT, T, V, M, W, S, I)                          \
    XT_DEFINE_LAYER_TYPES(xv_avx512_##DT, V, M, __m512i, I, W)                \
    static inline M xv_avx512_##DT##_tail(ptrdiff_t r)                        \
    {                                                                         \
        return (M)((1u << r) - 1u);                                           \
    }                                                                         \
    XT_DEFINE_X86_OPS(XT_L5, xv_avx512_##DT, T, V, M, _mm512, S, _mm512_cmp_##S##_mask) \
    XT_L5 V xv_avx512_##DT##_load_tail(const T *p, ptrdiff_t n, V fill)       \
    {                                                                         \
        return _mm512_mask_loadu_##S(fill, xv_avx512_##DT##_tail(n), p);      \
    }                                                                         \
    XT_L5 void xv_avx512_##DT##_store_tail(T *p, ptrdiff_t n, V v)            \
    {                                                                         \
        _mm512_mask_storeu_##S(p, xv_avx512_##DT##_tail(n), v);               \
    }                                                                         \
    XT_L5 int xv_avx512_##DT##_all(M m) { return m == (M)((1u << (W)) - 1u); } \
    XT_L5 V xv_avx512_##DT##_select(M m, V a, V b) { return _mm512_mask_mov_##S(b, m, a); } \
    XT_L5 V xv_avx512_##DT##_zero_where(M m, V v) { return _mm512_maskz_mov_##S((M)~m, v); } \
    XT_L5 V xv_avx512_##DT##_add_where(V acc, M m, V v)                       \
    {                                                                         \
        return _mm512_mask_add_##S(acc, m, acc, v);                           \
    }                                                                         \
    XT_L5 T xv_avx512_##DT##_hmax(V v) { return _mm512_reduce_max_##S(v); }   \
    /* counts in int32 lanes whatever T (a mask of 8 selects the low 8) */   \
    XT_L5 __m512i xv_avx512_##DT##_cnt_zero(void) { return _mm512_setzero_si512(); } \
    XT_L5 __m512i xv_avx512_##DT##_cnt_add(__m512i c, M m)                    \
    {                                                                         \
        return _mm512_mask_add_epi32(c, m, c, _mm512_set1_epi32(1));          \
    }                                                                         \
    XT_L5 long long xv_avx512_##DT##_cnt_total(__m512i c)                     \
    {                                                                         \
        return _mm512_reduce_add_epi32(c);                                    \
    }                                                                         \
    XT_L5 V xv_avx512_##DT##_pow2_keep(V p, V n, V t, M keep)                 \
    {                                                                         \
        (void)t;                                                              \
        return _mm512_maskz_scalef_##S(keep, p, n);                           \
    }

XT_DEFINE_AVX512_LAYER(f32, float, __m512, __mmask16, 16, ps, __m512i)
XT_DEFINE_AVX512_LAYER(f64, double, __m512d, __mmask8, 8, pd, __m256i)

/* W x W transposes in place: r[i] lane j becomes r[j] lane i (unpacks
 * within 128-bit lanes, then two rounds of 128-bit lane shuffles, SHUF of
 * Q = W / 4 vectors apart, from in through tmp to out). */
#define XT_AVX512_LANE_ROUNDS(SHUF, in, tmp, out, Q)                          \
    do {                                                                      \
        for (int i = 0; i < (Q); i++) {                                       \
            tmp[i] = SHUF(in[i], in[i + (Q)], 0x88);                          \
            tmp[i + (Q)] = SHUF(in[i], in[i + (Q)], 0xDD);                    \
            tmp[i + 2 * (Q)] = SHUF(in[i + 2 * (Q)], in[i + 3 * (Q)], 0x88);  \
            tmp[i + 3 * (Q)] = SHUF(in[i + 2 * (Q)], in[i + 3 * (Q)], 0xDD);  \
        }                                                                     \
        for (int i = 0; i < (Q); i++) {                                       \
            out[i] = SHUF(tmp[i], tmp[i + 2 * (Q)], 0x88);                    \
            out[i + (Q)] = SHUF(tmp[i + (Q)], tmp[i + 3 * (Q)], 0x88);        \
            out[i + 2 * (Q)] = SHUF(tmp[i], tmp[i + 2 * (Q)], 0xDD);          \
            out[i + 3 * (Q)] = SHUF(tmp[i + (Q)], tmp[i + 3 * (Q)], 0xDD);    \
        }                                                                     \
    } while (0)
XT_L5 void xv_avx512_f32_transpose(__m512 *r)
{
    __m512 t[16];
    XT_X86_F32_IN_LANES(_mm512, r, t, r, 16);
    XT_AVX512_LANE_ROUNDS(_mm512_shuffle_f32x4, r, t, r, 4);
}
XT_L5 void xv_avx512_f64_transpose(__m512d *r)
{
    __m512d t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm512_unpacklo_pd(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_pd(r[2 * i], r[2 * i + 1]);
    }
    XT_AVX512_LANE_ROUNDS(_mm512_shuffle_f64x2, t, u, r, 2);
}

/* v passes through an empty asm (no instruction): a loop of vector copies
 * is then not turned into memcpy, which GCC emits as rep movsq, whose
 * 8-byte stores the zmm loads that follow cannot forward from (perf,
 * float32 forward+gradient, 2^23 elements: rep movsq and the loads waiting
 * on it took 11% of the kernel's samples at 8 classes, 4% at 10). */
#define XT_AVX512_OPAQUE(v) __asm__("" : "+v"(v))

/* Rows of exactly W/2 float32 elements (8): each zmm takes rows k and
 * k + 4 of a half-block as its two 256-bit halves, then 4 x 4 transposes
 * within the 128-bit lanes and one 128-bit lane shuffle a column give the
 * columns in row order: 24 shuffles and 8 half-vector inserts where the
 * permutes below take 32 permutes and 24 masked moves, with their indices
 * and masks loaded from the plan (knocking the transpose out altogether
 * made the float32 forward at 8 classes 37% faster, forward+gradient 44%,
 * 1 thread in cache). Returns 0 for any other C (and for float64). */
XT_L5 void xv_avx512_f32_lanes4x4(__m512 *a)
{
    const __m512 t0 = _mm512_unpacklo_ps(a[0], a[1]), t1 = _mm512_unpackhi_ps(a[0], a[1]);
    const __m512 t2 = _mm512_unpacklo_ps(a[2], a[3]), t3 = _mm512_unpackhi_ps(a[2], a[3]);
    a[0] = _mm512_shuffle_ps(t0, t2, 0x44);
    a[1] = _mm512_shuffle_ps(t0, t2, 0xEE);
    a[2] = _mm512_shuffle_ps(t1, t3, 0x44);
    a[3] = _mm512_shuffle_ps(t1, t3, 0xEE);
}
XT_L5 int xv_avx512_f32_load_halves(const float *p, ptrdiff_t C, __m512 *cols)
{
    if (C != 8)
        return 0;
    /* u[4h + k]: rows 8h + k and 8h + k + 4 */
    __m512 u[8];
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++) {
            const float *r = p + (8 * h + k) * 8;
            u[4 * h + k] = _mm512_castpd_ps(_mm512_insertf64x4(
                _mm512_castps_pd(_mm512_castps256_ps512(_mm256_loadu_ps(r))),
                _mm256_castps_pd(_mm256_loadu_ps(r + 32)), 1));
        }
    /* lanes of u[4h + c]: column c of rows 8h..+3, c + 4 of the same, c of
     * rows 8h+4..+7, c + 4 of the same */
    xv_avx512_f32_lanes4x4(u);
    xv_avx512_f32_lanes4x4(u + 4);
    for (int c = 0; c < 4; c++) {
        cols[c] = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);
        cols[c + 4] = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
    }
    return 1;
}
XT_L5 int xv_avx512_f32_store_halves(float *p, ptrdiff_t C, const __m512 *cols)
{
    if (C != 8)
        return 0;
    const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i hi = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29,
                                         30, 31);
    __m512 u[8];
    for (int c = 0; c < 4; c++) {
        u[c] = _mm512_permutex2var_ps(cols[c], lo, cols[c + 4]);
        u[4 + c] = _mm512_permutex2var_ps(cols[c], hi, cols[c + 4]);
    }
    xv_avx512_f32_lanes4x4(u);
    xv_avx512_f32_lanes4x4(u + 4);
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++) {
            float *r = p + (8 * h + k) * 8;
            _mm256_storeu_ps(r, _mm512_castps512_ps256(u[4 * h + k]));
            _mm256_storeu_ps(r + 32, _mm256_castpd_ps(_mm512_extractf64x4_pd(
                                          _mm512_castps_pd(u[4 * h + k]), 1)));
        }
    return 1;
}
XT_L5 int xv_avx512_f64_load_halves(const double *p, ptrdiff_t C, __m512d *cols)
{
    (void)p, (void)C, (void)cols;
    return 0;
}
XT_L5 int xv_avx512_f64_store_halves(double *p, ptrdiff_t C, const __m512d *cols)
{
    (void)p, (void)C, (void)cols;
    return 0;
}

/* columns_plan / load_columns / store_columns (simd/common.h). A zmm
 * gather costs about one cycle an element on AMD Zen 4 (perf: 44% of the
 * float32 short-row kernel at 32 classes); here two ways instead:
 *   up to W/2 columns, by two-source permutes: the W rows of C elements
 *       are C whole vectors, and each pair of them (2q, 2q+1) gives its
 *       lanes of column j by one vpermt2 and a masked move (the plan holds
 *       the indices), about C/16 operations an element;
 *   more columns, by W x W transposes (XT_AVX512_TRANSPOSE_*) of tiles of
 *       W columns of the W rows, each row's tile one (masked) load: 80
 *       operations a 16 x 16 float tile, 0.3 an element.
 * IT is the index lane type (int32 for floats, int64 for doubles). */
#define XT_DEFINE_AVX512_COLUMNS(DT, T, V, M, W, S, IT)                       \
    typedef struct {                                                          \
        /* [j][q]: column j's lanes from block vectors 2q, 2q + 1 */         \
        __m512i idx[(W) / 2][(W) / 4];                                        \
        M k[(W) / 2][(W) / 4];                                                \
        /* [u][q]: block vector u's lanes from columns 2q, 2q + 1 */         \
        __m512i oidx[(W) / 2][(W) / 4];                                       \
        M ok[(W) / 2][(W) / 4];                                               \
    } xv_avx512_##DT##_cp;                                                    \
    XT_L5 void xv_avx512_##DT##_columns_plan(ptrdiff_t C, xv_avx512_##DT##_cp *plan) \
    {                                                                         \
        if (C > (W) / 2) { /* tiles read no plan; its first entries set so  \
                            * that GCC, which may not see the tiles' branch   \
                            * taken, finds nothing read unset */             \
            plan->idx[0][0] = plan->oidx[0][0] = _mm512_setzero_si512();      \
            plan->k[0][0] = plan->ok[0][0] = 0;                               \
            return;                                                           \
        }                                                                     \
        for (ptrdiff_t j = 0; j < C; j++)                                     \
            for (ptrdiff_t q = 0; 2 * q < C; q++) {                           \
                IT lane[W];                                                   \
                unsigned k = 0;                                               \
                for (int r = 0; r < (W); r++) {                               \
                    ptrdiff_t pos = r * C + j, at = pos - 2 * (W) * q;        \
                    int here = at >= 0 && at < 2 * (W);                       \
                    lane[r] = (IT)(here ? at : 0);                            \
                    k |= (unsigned)here << r;                                 \
                }                                                             \
                plan->idx[j][q] = _mm512_loadu_si512((const void *)lane);     \
                plan->k[j][q] = (M)k;                                         \
            }                                                                 \
        for (ptrdiff_t u = 0; u < C; u++)                                     \
            for (ptrdiff_t q = 0; 2 * q < C; q++) {                           \
                IT lane[W];                                                   \
                unsigned k = 0;                                               \
                for (int t = 0; t < (W); t++) {                               \
                    ptrdiff_t pos = u * (W) + t, r = pos / C, j = pos % C;    \
                    int here = j / 2 == q;                                    \
                    lane[t] = (IT)(here ? (j - 2 * q) * (W) + r : 0);         \
                    k |= (unsigned)here << t;                                 \
                }                                                             \
                plan->oidx[u][q] = _mm512_loadu_si512((const void *)lane);    \
                plan->ok[u][q] = (M)k;                                        \
            }                                                                 \
    }                                                                         \
    XT_L5 void xv_avx512_##DT##_load_tile(const T *p, ptrdiff_t stride,      \
                                          ptrdiff_t nc, V *cols)              \
    {                                                                         \
        if (nc <= XT_AVX512_TILE_GATHER) {                                    \
            XT_GATHER_TILE(xv_avx512_##DT, p, stride, nc, cols);              \
            return;                                                           \
        }                                                                     \
        V tile[W];                                                            \
        for (int r = 0; r < (W); r++)                                         \
            tile[r] = nc == (W) ? _mm512_loadu_##S(p + r * stride)            \
                                : _mm512_maskz_loadu_##S(                     \
                                      xv_avx512_##DT##_tail(nc), p + r * stride); \
        xv_avx512_##DT##_transpose(tile);                                     \
        if (nc == (W)) { /* a constant count: GCC keeps these zmm moves */    \
            for (int j = 0; j < (W); j++)                                     \
                cols[j] = tile[j];                                            \
            return;                                                           \
        }                                                                     \
        for (ptrdiff_t j = 0; j < nc; j++) {                                  \
            V t = tile[j];                                                    \
            XT_AVX512_OPAQUE(t);                                              \
            cols[j] = t;                                                      \
        }                                                                     \
    }                                                                         \
    XT_L5 void xv_avx512_##DT##_store_tile(T *p, ptrdiff_t stride,            \
                                           ptrdiff_t nc, const V *cols)       \
    {                                                                         \
        if (nc <= XT_AVX512_TILE_GATHER) {                                    \
            const xv_avx512_##DT##_i idx = xv_avx512_##DT##_gather_index(stride); \
            for (ptrdiff_t j = 0; j < nc; j++)                                \
                _mm512_i32scatter_##S(p + j, idx, cols[j], sizeof(T));         \
            return;                                                           \
        }                                                                     \
        V tile[W];                                                            \
        for (int j = 0; j < (W); j++) {                                       \
            V t = j < nc ? cols[j] : _mm512_setzero_##S();                    \
            XT_AVX512_OPAQUE(t);                                              \
            tile[j] = t;                                                      \
        }                                                                     \
        xv_avx512_##DT##_transpose(tile);                                     \
        /* (a masked store where a plain one serves costs more) */            \
        for (int r = 0; r < (W); r++)                                         \
            if (nc == (W))                                                    \
                _mm512_storeu_##S(p + r * stride, tile[r]);                   \
            else                                                              \
                _mm512_mask_storeu_##S(p + r * stride,                        \
                                       xv_avx512_##DT##_tail(nc), tile[r]);   \
    }                                                                         \
    XT_L5 void xv_avx512_##DT##_load_columns_any(const T *p, ptrdiff_t C,     \
                                                 const xv_avx512_##DT##_cp *plan, \
                                                 V *cols)                     \
    {                                                                         \
        if (C > (W) / 2) {                                                    \
            for (ptrdiff_t t0 = 0; t0 < C; t0 += (W))                         \
                xv_avx512_##DT##_load_tile(p + t0, C, C - t0 < (W) ? C - t0 : (W), \
                                           cols + t0);                        \
            return;                                                           \
        }                                                                     \
        V b[(W) / 2 + 1];                                                     \
        for (ptrdiff_t v = 0; v < C; v++) {                                   \
            V t = _mm512_loadu_##S(p + v * (W));                              \
            XT_AVX512_OPAQUE(t);                                              \
            b[v] = t;                                                         \
        }                                                                     \
        b[C] = b[C - 1]; /* never selected: the pair of an odd last vector */ \
        for (ptrdiff_t j = 0; j < C; j++) {                                   \
            V c = _mm512_permutex2var_##S(b[0], plan->idx[j][0], b[1]);       \
            for (ptrdiff_t q = 1; 2 * q < C; q++)                             \
                c = _mm512_mask_mov_##S(c, plan->k[j][q],                     \
                                        _mm512_permutex2var_##S(b[2 * q],     \
                                                                plan->idx[j][q], \
                                                                b[2 * q + 1])); \
            cols[j] = c;                                                      \
        }                                                                     \
    }                                                                         \
    XT_L5 void xv_avx512_##DT##_store_columns_any(T *p, ptrdiff_t C,          \
                                                  const xv_avx512_##DT##_cp *plan, \
                                                  const V *cols)              \
    {                                                                         \
        if (C > (W) / 2) {                                                    \
            for (ptrdiff_t t0 = 0; t0 < C; t0 += (W))                         \
                xv_avx512_##DT##_store_tile(p + t0, C, C - t0 < (W) ? C - t0 : (W), \
                                            cols + t0);                       \
            return;                                                           \
        }                                                                     \
        /* cols read in place, the pair of an odd last column being itself \
         * (never selected): a copy into a padded array compiled to rep movsq,  \
         * whose stores the vector loads after it could not forward from       \
         * (perf, float32 forward+gradient at 8 classes: 11% of the kernel's   \
         * samples on the copy and the loads waiting for it) */               \
        for (ptrdiff_t u = 0; u < C; u++) {                                   \
            V c = _mm512_permutex2var_##S(cols[0], plan->oidx[u][0],          \
                                          cols[C > 1 ? 1 : 0]);               \
            for (ptrdiff_t q = 1; 2 * q < C; q++)                             \
                c = _mm512_mask_mov_##S(                                      \
                    c, plan->ok[u][q],                                        \
                    _mm512_permutex2var_##S(cols[2 * q], plan->oidx[u][q],    \
                                            cols[2 * q + 1 < C ? 2 * q + 1 : 2 * q])); \
            _mm512_storeu_##S(p + u * (W), c);                                \
        }                                                                     \
    }                                                                         \
    /* the halves apart, so that the permutes and tiles stay the function  \
     * GCC keeps out of line for a C known only at run time (inlined there  \
     * with the halves beside it, the forward at 32 classes fell from 2.53  \
     * to 2.20 G/s, float32, 1 thread, in cache) */                         \
    XT_L5 void xv_avx512_##DT##_load_columns(const T *p, ptrdiff_t C,         \
                                             const xv_avx512_##DT##_cp *plan, \
                                             V *cols)                         \
    {                                                                         \
        if (!xv_avx512_##DT##_load_halves(p, C, cols))                        \
            xv_avx512_##DT##_load_columns_any(p, C, plan, cols);              \
    }                                                                         \
    XT_L5 void xv_avx512_##DT##_store_columns(T *p, ptrdiff_t C,              \
                                              const xv_avx512_##DT##_cp *plan, \
                                              const V *cols)                  \
    {                                                                         \
        if (!xv_avx512_##DT##_store_halves(p, C, cols))                       \
            xv_avx512_##DT##_store_columns_any(p, C, plan, cols);             \
    }
/* load_tile / store_tile of at most this many columns by a gather /
 * scatter per column instead of a transpose (row mode's tails, float32, 1
 * thread: CE forward at 33, 34, 49, 65 classes 4-6% faster, with the
 * gradient 5-9%; float64 at 33-50 classes 3-6%; 3 and 4 columns: even) */
#define XT_AVX512_TILE_GATHER 2
/* gather_index(C), gather(p, i): lanes p[0], p[C], p[2C], ... */
XT_L5 __m512i xv_avx512_f32_gather_index(ptrdiff_t C)
{
    return _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32((int)C));
}
XT_L5 __m512 xv_avx512_f32_gather(const float *p, __m512i i)
{
    return _mm512_i32gather_ps(i, p, 4);
}
XT_L5 __m256i xv_avx512_f64_gather_index(ptrdiff_t C)
{
    return _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                              _mm256_set1_epi32((int)C));
}
XT_L5 __m512d xv_avx512_f64_gather(const double *p, __m256i i)
{
    return _mm512_i32gather_pd(i, p, 8);
}
XT_DEFINE_AVX512_COLUMNS(f32, float, __m512, __mmask16, 16, ps, int32_t)
XT_DEFINE_AVX512_COLUMNS(f64, double, __m512d, __mmask8, 8, pd, int64_t)
/* Lane mode in the forward up to 34 float32 classes, whose columns past 32
 * are one or two gathers (1 thread, 2^20 elements: CE forward at 33 and 34
 * classes 1.9 -> 2.1 G/s, logsumexp 2.0 -> 2.3); row mode is ahead from 40
 * classes (64 classes: 4.1-5.1 against 1.6-2.5 G/s, 2 threads). float64 up
 * to 26 classes: CE forward, 2 threads, N C = 2^23, the two builds run
 * alternately 5 times, lane mode against row mode: 1.50 against 1.25 G/s
 * at 18, 1.48 against 1.33 at 22, even at 24-26, behind at 28-32 (1.42
 * against 1.49 at 28, 1.23 against 1.77 at 32, whose rows are four whole
 * vectors).
 * With outputs, whose columns go back by store_columns: float32 up to 24
 * classes (with a gradient lane mode ahead at 17-20, 1.3-1.5 against
 * 0.9-1.1 G/s, even at 24-28, row mode ahead at 32). float64 softmax and
 * log_softmax up to 22 (softmax, 2 threads, 2^23, 4 alternating runs:
 * 1.08-1.21 against 0.91-1.04 G/s at 18-22, 1.01-1.06 against 1.24-1.28
 * at 24), a gradient up to 16 (forward+gradient at 18-24 classes
 * 0.71-0.81 against 0.91-1.10 G/s in row mode, the runs above). */
enum { xv_avx512_f32_lane_classes = 34, xv_avx512_f64_lane_classes = 26,
       xv_avx512_f32_lane_classes_out = 24, xv_avx512_f64_lane_classes_out = 22,
       xv_avx512_f32_lane_classes_grad = 24, xv_avx512_f64_lane_classes_grad = 16 };

/* hmax_many / hsum_many (simd/common.h) as a tree: each stage pairs the
 * vectors and halves the lanes each row holds, by two two-source permutes
 * (the tables: stage s takes the first and the second half of every
 * row's segment) and one max or add; W - 1 pairs in all, 3 operations a
 * row instead of a 4-step reduction and a broadcast per row. */
static const int32_t xt_avx512_tree_f32[4][2][16] __attribute__((aligned(64))) = {
    {{0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},
     {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31}},
    {{0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27},
     {4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31}},
    {{0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29},
     {2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31}},
    {{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30},
     {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31}},
};
static const int64_t xt_avx512_tree_f64[3][2][8] __attribute__((aligned(64))) = {
    {{0, 1, 2, 3, 8, 9, 10, 11},
     {4, 5, 6, 7, 12, 13, 14, 15}},
    {{0, 1, 4, 5, 8, 9, 12, 13},
     {2, 3, 6, 7, 10, 11, 14, 15}},
    {{0, 2, 4, 6, 8, 10, 12, 14},
     {1, 3, 5, 7, 9, 11, 13, 15}},
};
#define XT_DEFINE_AVX512_MANY(DT, V, W, S, TAB, NSTAGES)                      \
    XT_L5 V xv_avx512_##DT##_tree(const V *v, int use_max)                    \
    {                                                                         \
        V cur[W];                                                             \
        for (int l = 0; l < (W); l++)                                         \
            cur[l] = v[l];                                                    \
        int nvec = (W);                                                       \
        for (int st = 0; st < (NSTAGES); st++) {                              \
            __m512i ia = _mm512_load_si512((const void *)TAB[st][0]);         \
            __m512i ib = _mm512_load_si512((const void *)TAB[st][1]);         \
            nvec /= 2;                                                        \
            for (int i = 0; i < nvec; i++) {                                  \
                V a = _mm512_permutex2var_##S(cur[2 * i], ia, cur[2 * i + 1]); \
                V b = _mm512_permutex2var_##S(cur[2 * i], ib, cur[2 * i + 1]); \
                cur[i] = use_max ? _mm512_max_##S(a, b) : _mm512_add_##S(a, b); \
            }                                                                 \
        }                                                                     \
        return cur[0];                                                        \
    }                                                                         \
    XT_L5 V xv_avx512_##DT##_hmax_many(const V *v)                            \
    {                                                                         \
        return xv_avx512_##DT##_tree(v, 1);                                   \
    }                                                                         \
    XT_L5 V xv_avx512_##DT##_hsum_many(const V *v)                            \
    {                                                                         \
        return xv_avx512_##DT##_tree(v, 0);                                   \
    }
/* load_index (simd/avx2.h): W int64 narrowed to int32 and converted; for
 * floats the low halves of both vectors' integers by one two-source
 * permute (two vpmovqd and an insert before) */
XT_L5 __m512 xv_avx512_f32_load_index(const long long *p)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    return _mm512_cvtepi32_ps(_mm512_permutex2var_epi32(
        _mm512_loadu_si512((const void *)p), even, _mm512_loadu_si512((const void *)(p + 8))));
}
XT_L5 __m512d xv_avx512_f64_load_index(const long long *p)
{
    return _mm512_cvtepi32_pd(_mm512_cvtepi64_epi32(_mm512_loadu_si512((const void *)p)));
}

XT_DEFINE_AVX512_MANY(f32, __m512, 16, ps, xt_avx512_tree_f32, 4)
XT_DEFINE_AVX512_MANY(f64, __m512d, 8, pd, xt_avx512_tree_f64, 3)

/* ---- float32 only ----------------------------------------------------- */
XT_L5 __m512d xv_avx512_f32_widen(__m512 v, int k)
{
    return _mm512_cvtps_pd(k ? _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))
                             : _mm512_castps512_ps256(v));
}
XT_L5 __m512 xv_avx512_f32_narrow(const __m512d *d)
{
    return _mm512_castpd_ps(_mm512_insertf64x4(
        _mm512_castpd256_pd512(_mm256_castps_pd(_mm512_cvtpd_ps(d[0]))),
        _mm256_castps_pd(_mm512_cvtpd_ps(d[1])), 1));
}
/* float lanes widened to double before adding */
XT_L5 double xv_avx512_f32_hsum(__m512 v)
{
    return _mm512_reduce_add_pd(
        _mm512_add_pd(xv_avx512_f32_widen(v, 0), xv_avx512_f32_widen(v, 1)));
}
XT_L5 __m512 xv_avx512_f32_getexp(__m512 x) { return _mm512_getexp_ps(x); }
/* one permute: vpermps reads the index's low 4 bits */
XT_L5 __m512 xv_avx512_f32_mant_lookup16(__m512 m, const float *t)
{
    return _mm512_permutexvar_ps(_mm512_srli_epi32(_mm512_castps_si512(m), 19),
                                 _mm512_loadu_ps(t));
}
XT_L5 __m512 xv_avx512_f32_getmant(__m512 x)
{
    return _mm512_getmant_ps(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src);
}
/* a / b: the 14-bit estimate and one Newton step (2^-28, below float's
 * rounding) */
XT_L5 __m512 xv_avx512_f32_div_fast(__m512 a, __m512 b)
{
    __m512 r = _mm512_rcp14_ps(b);
    r = _mm512_fmadd_ps(r, _mm512_fnmadd_ps(b, r, _mm512_set1_ps(1.0f)), r);
    return _mm512_mul_ps(a, r);
}

/* ---- float64 only ----------------------------------------------------- */
XT_L5 double xv_avx512_f64_hsum(__m512d v) { return _mm512_reduce_add_pd(v); }
XT_L5 __m512d xv_avx512_f64_widen(__m512d v, int k) { (void)k; return v; }
XT_L5 __m512d xv_avx512_f64_narrow(const __m512d *d) { return d[0]; }
XT_L5 __m512d xv_avx512_f64_getexp(__m512d x) { return _mm512_getexp_pd(x); }
XT_L5 __m512d xv_avx512_f64_getmant(__m512d x)
{
    return _mm512_getmant_pd(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src);
}
/* 1 / b for finite b != 0 to about 1 ulp: the 14-bit estimate and two
 * Newton steps (2^-14 -> 2^-28 -> rounding), times a. */
XT_L5 __m512d xv_avx512_f64_div_fast(__m512d a, __m512d b)
{
    const __m512d one = _mm512_set1_pd(1.0);
    __m512d r = _mm512_rcp14_pd(b);
    r = _mm512_fmadd_pd(r, _mm512_fnmadd_pd(b, r, one), r);
    r = _mm512_fmadd_pd(r, _mm512_fnmadd_pd(b, r, one), r);
    return _mm512_mul_pd(a, r);
}

/* ---- 16-bit floats (float32 lanes; half.h says why) ------------------- */
/* load_f16 / load_bf16: 16 elements widened, exactly; store_f16 /
 * store_bf16: 16 lanes rounded to nearest even (NaN stays NaN), as
 * half.h's scalar conversions do. float16 is F16C's vcvtph2ps/vcvtps2ph,
 * which AVX-512F has at this width; bfloat16 is the high half of a float's
 * bits, so a 16-bit shift (AVX512_BF16's vcvtne2ps2bf16 would need a
 * subset this level does not check for). */
#define XT_ATTR_H16_avx512 XT_AVX512
XT_DEFINE_X86_H16(XT_L5, xv_avx512_f32, __m512, __m512i, _mm512, si512, __m256i,
                  _mm256_loadu_si256, _mm256_storeu_si256)
XT_L5 void xv_avx512_f32_store_bf16(uint16_t *p, __m512 v)
{
    const __m512i x = _mm512_castps_si512(v);
    __m512i r = xv_avx512_f32_bf16_round(v);
    /* NaN: truncated with the quiet bit set, never rounded into inf */
    r = _mm512_mask_or_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), x,
                             _mm512_set1_epi32(0x400000));
    _mm256_storeu_si256((__m256i *)p, _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
}

#undef XT_L5
#endif /* XT_HAVE_AVX2 */
#endif
