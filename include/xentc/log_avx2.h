/*
 * Vectorised natural log for AVX2 + FMA, double precision, for positive
 * normal arguments (callers pass sums >= 1). Same reduction as the classic
 * fdlibm log: x = 2^k m with m in [sqrt(2)/2, sqrt(2)), f = m - 1,
 * s = f / (2 + f), log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)) with R the
 * fdlibm minimax polynomial; about 1 ulp.
 */
#ifndef XENTC_LOG_AVX2_H
#define XENTC_LOG_AVX2_H

#include "exp_avx2.h"

#ifdef XT_HAVE_AVX2

XT_AVX2 static inline __m256d xt_log_pd_avx2(__m256d x)
{
    const __m256i mant_mask = _mm256_set1_epi64x(0x000fffffffffffffLL);
    const __m256i one_bits = _mm256_set1_epi64x(0x3ff0000000000000LL);
    const __m256d sqrt2 = _mm256_set1_pd(1.4142135623730951);
    /* 1.5 * 2^52: integer <-> double conversion through the mantissa. */
    const __m256d magic = _mm256_set1_pd(6755399441055744.0);

    __m256i bits = _mm256_castpd_si256(x);
    __m256i k = _mm256_sub_epi64(_mm256_srli_epi64(bits, 52), _mm256_set1_epi64x(1023));
    __m256d m = _mm256_castsi256_pd(_mm256_or_si256(_mm256_and_si256(bits, mant_mask), one_bits));
    /* m in [1, 2): fold [sqrt2, 2) down to [sqrt2/2, 1) and bump k. */
    __m256d big = _mm256_cmp_pd(m, sqrt2, _CMP_GE_OQ);
    m = _mm256_blendv_pd(m, _mm256_mul_pd(m, _mm256_set1_pd(0.5)), big);
    k = _mm256_sub_epi64(k, _mm256_castpd_si256(big)); /* big lanes are -1 */
    __m256d kd = _mm256_sub_pd(
        _mm256_castsi256_pd(_mm256_add_epi64(k, _mm256_castpd_si256(magic))), magic);

    __m256d f = _mm256_sub_pd(m, _mm256_set1_pd(1.0));
    __m256d s = _mm256_div_pd(f, _mm256_add_pd(f, _mm256_set1_pd(2.0)));
    __m256d z = _mm256_mul_pd(s, s);
    __m256d w = _mm256_mul_pd(z, z);
    /* fdlibm Lg1..Lg7, split in odd and even powers of w. */
    __m256d t1 = _mm256_fmadd_pd(w, _mm256_set1_pd(1.479819860511658591e-01),
                                 _mm256_set1_pd(1.818357216161805012e-01));
    t1 = _mm256_fmadd_pd(w, t1, _mm256_set1_pd(2.857142874366239149e-01));
    t1 = _mm256_fmadd_pd(w, t1, _mm256_set1_pd(6.666666666666735130e-01));
    t1 = _mm256_mul_pd(z, t1);
    __m256d t2 = _mm256_fmadd_pd(w, _mm256_set1_pd(1.531383769920937332e-01),
                                 _mm256_set1_pd(2.222219843214978396e-01));
    t2 = _mm256_fmadd_pd(w, t2, _mm256_set1_pd(3.999999999940941908e-01));
    t2 = _mm256_mul_pd(w, t2);
    __m256d R = _mm256_add_pd(t1, t2);
    __m256d hfsq = _mm256_mul_pd(_mm256_set1_pd(0.5), _mm256_mul_pd(f, f));

    const __m256d ln2_hi = _mm256_set1_pd(6.93147180369123816490e-01);
    const __m256d ln2_lo = _mm256_set1_pd(1.90821492927058770002e-10);
    /* k ln2_hi - ((hfsq - (s (hfsq + R) + k ln2_lo)) - f) */
    __m256d inner = _mm256_fmadd_pd(s, _mm256_add_pd(hfsq, R), _mm256_mul_pd(kd, ln2_lo));
    __m256d r = _mm256_sub_pd(_mm256_sub_pd(hfsq, inner), f);
    return _mm256_fmsub_pd(kd, ln2_hi, r);
}

#endif /* XT_HAVE_AVX2 */
#endif
