/*
 * AVX2 + FMA kernels (8 floats / 4 doubles a vector). Per-function target
 * attributes keep them out of the baseline code path; dispatch.h selects
 * them only on CPUs that have AVX2 and FMA.
 *
 * Tails use masked loads and stores, so no scalar libm call sits in the hot
 * loop and every row length takes the same arithmetic.
 */
#ifndef XENTC_KERNELS_AVX2_H
#define XENTC_KERNELS_AVX2_H

#include "blocks.h"
#include "exp_avx2.h"

#ifdef XT_HAVE_AVX2

/* Lanes [0, r) set, for a tail of r < 8 (float) elements. */
XT_AVX2 static inline __m256i xt_tail_mask_epi32(ptrdiff_t r)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Lanes [0, r) set, for a tail of r < 4 (double) elements. */
XT_AVX2 static inline __m256i xt_tail_mask_epi64(ptrdiff_t r)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)r),
                              _mm256_setr_epi64x(0, 1, 2, 3));
}

XT_AVX2 static inline float xt_hmax_ps(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

XT_AVX2 static inline double xt_hmax_pd(__m256d v)
{
    __m128d m = _mm_max_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    m = _mm_max_sd(m, _mm_unpackhi_pd(m, m));
    return _mm_cvtsd_f64(m);
}

XT_AVX2 static inline double xt_hsum_pd(__m256d v)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}

/* Sum of float lanes, widened to double before adding. */
XT_AVX2 static inline double xt_hsum_ps_pd(__m256 v)
{
    __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    return xt_hsum_pd(_mm256_add_pd(lo, hi));
}

XT_AVX2 static inline long long xt_hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

XT_AVX2 static inline long long xt_hsum_epi64(__m256i v)
{
    __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi64(s, _mm_unpackhi_epi64(s, s));
    return _mm_cvtsi128_si64(s);
}

/* ---- float32 ---------------------------------------------------------- */

/* Largest non-NaN element of x[0:n) (-inf for none): max(v, acc) returns
 * acc when v is NaN, so NaN never becomes the max. */
XT_AVX2 static inline float xt_max_f32_avx2(const float *x, ptrdiff_t n)
{
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 m0 = ninf, m1 = ninf;
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);
        m1 = _mm256_max_ps(_mm256_loadu_ps(x + i + 8), m1);
    }
    for (; i + 8 <= n; i += 8)
        m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);
    if (i < n) {
        __m256i tmask = xt_tail_mask_epi32(n - i);
        __m256 v = _mm256_blendv_ps(ninf, _mm256_maskload_ps(x + i, tmask),
                                    _mm256_castsi256_ps(tmask));
        m0 = _mm256_max_ps(v, m0);
    }
    return xt_hmax_ps(_mm256_max_ps(m0, m1));
}

/* sum of exp(x - m) over x[0:n), summed in float lanes and widened once.
 * With exclude_max, elements equal to m are left out of the sum and counted
 * in *nmax instead (the caller keeps them apart for log1p accuracy);
 * without it the caller knows no element equals m. With out, exp(x - m) of
 * every element (maxima included: 1) is also stored there, for softmax
 * and the cross-entropy gradient to rescale instead of taking exp again. */
#define XT_SUMEXP_F32_STEP(v, acc, cnt, STORE)                                \
    do {                                                                      \
        __m256 e_ = xt_exp_ps_avx2(_mm256_sub_ps((v), vm));                   \
        STORE;                                                                \
        if (exclude_max) {                                                    \
            __m256 q_ = _mm256_cmp_ps((v), vm, _CMP_EQ_OQ);                   \
            e_ = _mm256_andnot_ps(q_, e_);                                    \
            cnt = _mm256_sub_epi32(cnt, _mm256_castps_si256(q_));             \
        }                                                                     \
        acc = _mm256_add_ps(acc, e_);                                         \
    } while (0)

XT_AVX2 static inline double xt_sumexp_f32_avx2(const float *x, ptrdiff_t n, float m,
                                                int exclude_max, double *nmax,
                                                float *out)
{
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    const __m256 vm = _mm256_set1_ps(m);
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256i c0 = _mm256_setzero_si256(), c1 = _mm256_setzero_si256();
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        XT_PREFETCH(x + i);
        __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        XT_SUMEXP_F32_STEP(v0, s0, c0, if (out) _mm256_storeu_ps(out + i, e_));
        XT_SUMEXP_F32_STEP(v1, s1, c1, if (out) _mm256_storeu_ps(out + i + 8, e_));
    }
    for (; i + 8 <= n; i += 8) {
        __m256 v0 = _mm256_loadu_ps(x + i);
        XT_SUMEXP_F32_STEP(v0, s0, c0, if (out) _mm256_storeu_ps(out + i, e_));
    }
    if (i < n) {
        /* Masked-off lanes read as -inf: exp gives 0, compare is false. */
        __m256i tmask = xt_tail_mask_epi32(n - i);
        __m256 v0 = _mm256_blendv_ps(ninf, _mm256_maskload_ps(x + i, tmask),
                                     _mm256_castsi256_ps(tmask));
        XT_SUMEXP_F32_STEP(v0, s0, c0, if (out) _mm256_maskstore_ps(out + i, tmask, e_));
    }
    *nmax = (double)xt_hsum_epi32(_mm256_add_epi32(c0, c1));
    return xt_hsum_ps_pd(_mm256_add_ps(s0, s1));
}

XT_AVX2 static void xt_expscale_f32_avx2(const float *x, ptrdiff_t n, double shift,
                                         double scale, float *out)
{
    const __m256 vm = _mm256_set1_ps((float)shift);
    const __m256 vs = _mm256_set1_ps((float)scale);
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = xt_exp_ps_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(e, vs));
    }
    if (i < n) {
        __m256i tmask = xt_tail_mask_epi32(n - i);
        __m256 e = xt_exp_ps_avx2(_mm256_sub_ps(_mm256_maskload_ps(x + i, tmask), vm));
        _mm256_maskstore_ps(out + i, tmask, _mm256_mul_ps(e, vs));
    }
}

XT_AVX2 static void xt_shift_f32_avx2(const float *x, ptrdiff_t n, double shift,
                                      double offset, float *out)
{
    const __m256 vm = _mm256_set1_ps((float)shift);
    const __m256 vo = _mm256_set1_ps((float)offset);
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vo));
    if (i < n) {
        __m256i tmask = xt_tail_mask_epi32(n - i);
        __m256 v = _mm256_maskload_ps(x + i, tmask);
        _mm256_maskstore_ps(out + i, tmask, _mm256_sub_ps(_mm256_sub_ps(v, vm), vo));
    }
}

XT_DEFINE_CHUNK_PARTIAL(XT_AVX2, xt_partial_f32_avx2, float, XT_BLOCK_F32, xt_max_f32_avx2,
                        xt_sumexp_f32_avx2, xt_special_block_f32, xt_expscale_f32_avx2)

/* ---- float64 ---------------------------------------------------------- */

XT_AVX2 static inline double xt_max_f64_avx2(const double *x, ptrdiff_t n)
{
    const __m256d ninf = _mm256_set1_pd(-INFINITY);
    __m256d m0 = ninf, m1 = ninf;
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        m0 = _mm256_max_pd(_mm256_loadu_pd(x + i), m0);
        m1 = _mm256_max_pd(_mm256_loadu_pd(x + i + 4), m1);
    }
    for (; i + 4 <= n; i += 4)
        m0 = _mm256_max_pd(_mm256_loadu_pd(x + i), m0);
    if (i < n) {
        __m256i tmask = xt_tail_mask_epi64(n - i);
        __m256d v = _mm256_blendv_pd(ninf, _mm256_maskload_pd(x + i, tmask),
                                     _mm256_castsi256_pd(tmask));
        m0 = _mm256_max_pd(v, m0);
    }
    return xt_hmax_pd(_mm256_max_pd(m0, m1));
}

#define XT_SUMEXP_F64_STEP(v, acc, cnt, STORE)                                \
    do {                                                                      \
        __m256d e_ = xt_exp_pd_avx2(_mm256_sub_pd((v), vm));                  \
        STORE;                                                                \
        if (exclude_max) {                                                    \
            __m256d q_ = _mm256_cmp_pd((v), vm, _CMP_EQ_OQ);                  \
            e_ = _mm256_andnot_pd(q_, e_);                                    \
            cnt = _mm256_sub_epi64(cnt, _mm256_castpd_si256(q_));             \
        }                                                                     \
        acc = _mm256_add_pd(acc, e_);                                         \
    } while (0)

XT_AVX2 static inline double xt_sumexp_f64_avx2(const double *x, ptrdiff_t n, double m,
                                                int exclude_max, double *nmax,
                                                double *out)
{
    const __m256d ninf = _mm256_set1_pd(-INFINITY);
    const __m256d vm = _mm256_set1_pd(m);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    __m256i c0 = _mm256_setzero_si256(), c1 = _mm256_setzero_si256();
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        XT_PREFETCH(x + i);
        __m256d v0 = _mm256_loadu_pd(x + i), v1 = _mm256_loadu_pd(x + i + 4);
        XT_SUMEXP_F64_STEP(v0, s0, c0, if (out) _mm256_storeu_pd(out + i, e_));
        XT_SUMEXP_F64_STEP(v1, s1, c1, if (out) _mm256_storeu_pd(out + i + 4, e_));
    }
    for (; i + 4 <= n; i += 4) {
        __m256d v0 = _mm256_loadu_pd(x + i);
        XT_SUMEXP_F64_STEP(v0, s0, c0, if (out) _mm256_storeu_pd(out + i, e_));
    }
    if (i < n) {
        __m256i tmask = xt_tail_mask_epi64(n - i);
        __m256d v0 = _mm256_blendv_pd(ninf, _mm256_maskload_pd(x + i, tmask),
                                      _mm256_castsi256_pd(tmask));
        XT_SUMEXP_F64_STEP(v0, s0, c0, if (out) _mm256_maskstore_pd(out + i, tmask, e_));
    }
    *nmax = (double)xt_hsum_epi64(_mm256_add_epi64(c0, c1));
    return xt_hsum_pd(_mm256_add_pd(s0, s1));
}

XT_AVX2 static void xt_expscale_f64_avx2(const double *x, ptrdiff_t n, double shift,
                                         double scale, double *out)
{
    const __m256d vm = _mm256_set1_pd(shift);
    const __m256d vs = _mm256_set1_pd(scale);
    ptrdiff_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256d e = xt_exp_pd_avx2(_mm256_sub_pd(_mm256_loadu_pd(x + i), vm));
        _mm256_storeu_pd(out + i, _mm256_mul_pd(e, vs));
    }
    if (i < n) {
        __m256i tmask = xt_tail_mask_epi64(n - i);
        __m256d e = xt_exp_pd_avx2(_mm256_sub_pd(_mm256_maskload_pd(x + i, tmask), vm));
        _mm256_maskstore_pd(out + i, tmask, _mm256_mul_pd(e, vs));
    }
}

XT_AVX2 static void xt_shift_f64_avx2(const double *x, ptrdiff_t n, double shift,
                                      double offset, double *out)
{
    const __m256d vm = _mm256_set1_pd(shift);
    const __m256d vo = _mm256_set1_pd(offset);
    ptrdiff_t i = 0;
    for (; i + 4 <= n; i += 4)
        _mm256_storeu_pd(out + i, _mm256_sub_pd(_mm256_sub_pd(_mm256_loadu_pd(x + i), vm), vo));
    if (i < n) {
        __m256i tmask = xt_tail_mask_epi64(n - i);
        __m256d v = _mm256_maskload_pd(x + i, tmask);
        _mm256_maskstore_pd(out + i, tmask, _mm256_sub_pd(_mm256_sub_pd(v, vm), vo));
    }
}

XT_DEFINE_CHUNK_PARTIAL(XT_AVX2, xt_partial_f64_avx2, double, XT_BLOCK_F64, xt_max_f64_avx2,
                        xt_sumexp_f64_avx2, xt_special_block_f64, xt_expscale_f64_avx2)


#endif /* XT_HAVE_AVX2 */
#endif
