/*
 * Vectorised natural log for AVX2 + FMA, double precision, for positive
 * normal arguments (callers pass sums >= 1): fdlibm's reduction and
 * polynomial (log_coefs.h), about 1 ulp.
 */
#ifndef XENTC_LOG_AVX2_H
#define XENTC_LOG_AVX2_H

#include "exp_avx2.h"
#include "log_coefs.h"

#ifdef XT_HAVE_AVX2

XT_AVX2 static inline __m256d xt_log_pd_avx2(__m256d x)
{
    const __m256i mant_mask = _mm256_set1_epi64x(0x000fffffffffffffLL);
    const __m256i one_bits = _mm256_set1_epi64x(0x3ff0000000000000LL);
    /* 1.5 * 2^52: integer <-> double conversion through the mantissa. */
    const __m256d magic = _mm256_set1_pd(6755399441055744.0);

    __m256i bits = _mm256_castpd_si256(x);
    __m256i k = _mm256_sub_epi64(_mm256_srli_epi64(bits, 52), _mm256_set1_epi64x(1023));
    __m256d m = _mm256_castsi256_pd(_mm256_or_si256(_mm256_and_si256(bits, mant_mask), one_bits));
    /* m in [1, 2): fold [sqrt2, 2) down to [sqrt2/2, 1) and bump k. */
    __m256d big = _mm256_cmp_pd(m, _mm256_set1_pd(XT_LOG_SQRT2), _CMP_GE_OQ);
    m = _mm256_blendv_pd(m, _mm256_mul_pd(m, _mm256_set1_pd(0.5)), big);
    k = _mm256_sub_epi64(k, _mm256_castpd_si256(big)); /* big lanes are -1 */
    __m256d kd = _mm256_sub_pd(
        _mm256_castsi256_pd(_mm256_add_epi64(k, _mm256_castpd_si256(magic))), magic);

    __m256d f = _mm256_sub_pd(m, _mm256_set1_pd(1.0));
    __m256d s = _mm256_div_pd(f, _mm256_add_pd(f, _mm256_set1_pd(2.0)));
    __m256d out;
    XT_LOG_FROM_REDUCED(_mm256_fmadd_pd, _mm256_fmsub_pd, _mm256_mul_pd, _mm256_add_pd,
                        _mm256_sub_pd, _mm256_set1_pd, f, s, kd, out);
    return out;
}

#endif /* XT_HAVE_AVX2 */
#endif
