/*
 * AVX-512F kernels (16 floats / 8 doubles a vector): the structure of
 * kernels_avx2.h (same blocks, same partial, see there) with twice the
 * width. Tails are masked loads that read -inf into the unused lanes and
 * masked stores, so they take the same arithmetic as full vectors. Maxima
 * are left out of sums by masked adds and counted in integer lanes.
 */
#ifndef XENTC_KERNELS_AVX512_H
#define XENTC_KERNELS_AVX512_H

#include "blocks.h"
#include "exp_avx512.h"

#ifdef XT_HAVE_AVX512

/* Lanes [0, r) of a tail of r < 16 (or 8) elements. */
static inline __mmask16 xt_tail_mask16(ptrdiff_t r) { return (__mmask16)((1u << r) - 1u); }
static inline __mmask8 xt_tail_mask8(ptrdiff_t r) { return (__mmask8)((1u << r) - 1u); }

/* Sum of float lanes, widened to double before adding (as xt_hsum_ps_pd). */
XT_AVX512 static inline double xt_hsum_ps_pd_avx512(__m512 v)
{
    __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    __m512d hi = _mm512_cvtps_pd(
        _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    return _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
}

/* One vector of a sum of exps (xt_sumexp_*_avx512): e = exp(v - vm) into
 * acc. With exclude_max, masked adds leave the maxima out (NaN, never
 * equal, is added) and c counts the other lanes down, so the maxima are
 * `lanes` (the lanes seen) plus the sum of c. */
#define XT_SUMEXP512_ADD(S, W, v, e, acc)                                     \
    do {                                                                      \
        if (exclude_max) {                                                    \
            __typeof__(_mm512_cmp_##S##_mask(v, vm, _CMP_NEQ_UQ)) k_ =        \
                _mm512_cmp_##S##_mask(v, vm, _CMP_NEQ_UQ);                    \
            acc = _mm512_mask_add_##S(acc, k_, acc, e);                       \
            c = _mm512_mask_sub_epi32(c, k_, c, one);                         \
            lanes += (W);                                                     \
        } else {                                                              \
            acc = _mm512_add_##S(acc, e);                                     \
        }                                                                     \
    } while (0)

/* The kernels of one element type: V the vector type, W its lane count,
 * S the intrinsics' suffix (ps/pd), BLOCK the block length, MASK_FN the
 * tail mask, EXP_FN the exp,
 * HSUM_FN the horizontal sum in double. The counts of maxima are int32
 * lanes whatever T (a mask of 8 selects the low 8 of 16). */
#define XT_DEFINE_AVX512(SUF, T, V, W, S, BLOCK, MASK_FN, EXP_FN, HSUM_FN)     \
    XT_AVX512 static inline T xt_max_##SUF##_avx512(const T *x, ptrdiff_t n)    \
    {                                                                         \
        /* max(v, acc) keeps acc for a NaN v: NaN never becomes the max. */  \
        const V ninf = _mm512_set1_##S(-INFINITY);                            \
        V m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;                         \
        ptrdiff_t i = 0;                                                      \
        /* four chains: a max waits 4 cycles for the one before it */        \
        for (; i + 4 * (W) <= n; i += 4 * (W)) {                              \
            m0 = _mm512_max_##S(_mm512_loadu_##S(x + i), m0);                 \
            m1 = _mm512_max_##S(_mm512_loadu_##S(x + i + (W)), m1);           \
            m2 = _mm512_max_##S(_mm512_loadu_##S(x + i + 2 * (W)), m2);       \
            m3 = _mm512_max_##S(_mm512_loadu_##S(x + i + 3 * (W)), m3);       \
        }                                                                     \
        m0 = _mm512_max_##S(m2, m0);                                          \
        m1 = _mm512_max_##S(m3, m1);                                          \
        for (; i + (W) <= n; i += (W))                                        \
            m0 = _mm512_max_##S(_mm512_loadu_##S(x + i), m0);                 \
        if (i < n)                                                            \
            m0 = _mm512_max_##S(_mm512_mask_loadu_##S(ninf, MASK_FN(n - i),    \
                                                      x + i), m0);            \
        return _mm512_reduce_max_##S(_mm512_max_##S(m0, m1));                 \
    }                                                                         \
                                                                              \
    /* sum of exp(x - m) over x[0:n); with exclude_max, the elements equal  \
     * to m are counted in *nmax instead of summed; with out, the exps are   \
     * stored there too (see kernels_avx2.h). */                            \
    XT_AVX512 static inline double xt_sumexp_##SUF##_avx512(                  \
        const T *x, ptrdiff_t n, T m, int exclude_max, double *nmax, T *out)  \
    {                                                                         \
        const V ninf = _mm512_set1_##S(-INFINITY);                            \
        const V vm = _mm512_set1_##S(m);                                      \
        const __m512i one = _mm512_set1_epi32(1);                             \
        V s0 = _mm512_setzero_##S(), s1 = _mm512_setzero_##S();               \
        __m512i c = _mm512_setzero_si512();                                   \
        long long lanes = 0;                                                  \
        ptrdiff_t i = 0;                                                      \
        for (; i + 2 * (W) <= n; i += 2 * (W)) {                              \
            XT_PREFETCH(x + i);                                               \
            XT_PREFETCH(x + i + (W));                                         \
            V v0 = _mm512_loadu_##S(x + i), v1 = _mm512_loadu_##S(x + i + (W));\
            V e0 = EXP_FN(_mm512_sub_##S(v0, vm));                            \
            V e1 = EXP_FN(_mm512_sub_##S(v1, vm));                            \
            if (out) {                                                        \
                _mm512_storeu_##S(out + i, e0);                               \
                _mm512_storeu_##S(out + i + (W), e1);                         \
            }                                                                 \
            XT_SUMEXP512_ADD(S, W, v0, e0, s0);                               \
            XT_SUMEXP512_ADD(S, W, v1, e1, s1);                               \
        }                                                                     \
        /* The masked-out lanes of a tail read -inf: exp 0, never equal to   \
         * the finite m. */                                                   \
        for (; i < n; i += (W)) {                                             \
            __typeof__(MASK_FN(0)) t = i + (W) <= n ? MASK_FN(W) : MASK_FN(n - i);\
            V v0 = _mm512_mask_loadu_##S(ninf, t, x + i);                     \
            V e0 = EXP_FN(_mm512_sub_##S(v0, vm));                            \
            if (out)                                                          \
                _mm512_mask_storeu_##S(out + i, t, e0);                       \
            XT_SUMEXP512_ADD(S, W, v0, e0, s0);                               \
        }                                                                     \
        *nmax = (double)(lanes + _mm512_reduce_add_epi32(c));                 \
        return HSUM_FN(_mm512_add_##S(s0, s1));                               \
    }                                                                         \
                                                                              \
    /* out = exp(x - shift) * scale */                                        \
    XT_AVX512 static void xt_expscale_##SUF##_avx512(const T *x, ptrdiff_t n, \
                                                     double shift,            \
                                                     double scale, T *out)    \
    {                                                                         \
        const V vm = _mm512_set1_##S((T)shift);                               \
        const V vs = _mm512_set1_##S((T)scale);                               \
        ptrdiff_t i = 0;                                                      \
        for (; i + (W) <= n; i += (W)) {                                      \
            V e = EXP_FN(_mm512_sub_##S(_mm512_loadu_##S(x + i), vm));        \
            _mm512_storeu_##S(out + i, _mm512_mul_##S(e, vs));                \
        }                                                                     \
        if (i < n) {                                                          \
            V e = EXP_FN(_mm512_sub_##S(                                      \
                _mm512_maskz_loadu_##S(MASK_FN(n - i), x + i), vm));          \
            _mm512_mask_storeu_##S(out + i, MASK_FN(n - i), _mm512_mul_##S(e, vs));\
        }                                                                     \
    }                                                                         \
                                                                              \
    /* out = (x - shift) - offset */                                          \
    XT_AVX512 static void xt_shift_##SUF##_avx512(const T *x, ptrdiff_t n,    \
                                                  double shift,               \
                                                  double offset, T *out)      \
    {                                                                         \
        const V vm = _mm512_set1_##S((T)shift);                               \
        const V vo = _mm512_set1_##S((T)offset);                              \
        ptrdiff_t i = 0;                                                      \
        for (; i + (W) <= n; i += (W))                                        \
            _mm512_storeu_##S(out + i, _mm512_sub_##S(                        \
                _mm512_sub_##S(_mm512_loadu_##S(x + i), vm), vo));            \
        if (i < n) {                                                          \
            V v = _mm512_maskz_loadu_##S(MASK_FN(n - i), x + i);              \
            _mm512_mask_storeu_##S(out + i, MASK_FN(n - i),                   \
                                   _mm512_sub_##S(_mm512_sub_##S(v, vm), vo));\
        }                                                                     \
    }                                                                         \
                                                                              \
    XT_DEFINE_CHUNK_PARTIAL(XT_AVX512, xt_partial_##SUF##_avx512, T,          \
                            BLOCK, xt_max_##SUF##_avx512,                     \
                            xt_sumexp_##SUF##_avx512, xt_special_block_##SUF, \
                            xt_expscale_##SUF##_avx512)

XT_DEFINE_AVX512(f32, float, __m512, 16, ps, XT_BLOCK_F32, xt_tail_mask16, xt_exp_ps_avx512,
                 xt_hsum_ps_pd_avx512)
XT_DEFINE_AVX512(f64, double, __m512d, 8, pd, XT_BLOCK_F64, xt_tail_mask8, xt_exp_pd_avx512,
                 _mm512_reduce_add_pd)

#endif /* XT_HAVE_AVX512 */
#endif
