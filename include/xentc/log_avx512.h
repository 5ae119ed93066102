/*
 * Vectorised natural log for AVX-512F, double precision, for positive
 * normal arguments: the formula of log_avx2.h (log_coefs.h) on 8 lanes.
 * AVX-512F extracts exponent and mantissa directly (getexp/getmant), and
 * the one division is a reciprocal refined by Newton steps: the short-row
 * kernels take a log per row, and a zmm division would set their pace.
 */
#ifndef XENTC_LOG_AVX512_H
#define XENTC_LOG_AVX512_H

#include "exp_avx512.h"
#include "log_coefs.h"

#ifdef XT_HAVE_AVX512

/* 1 / x for finite x != 0 to about 1 ulp: the 14-bit estimate and two
 * Newton steps (2^-14 -> 2^-28 -> rounding). */
XT_AVX512 static inline __m512d xt_rcp_pd_avx512(__m512d x)
{
    const __m512d one = _mm512_set1_pd(1.0);
    __m512d r = _mm512_rcp14_pd(x);
    r = _mm512_fmadd_pd(r, _mm512_fnmadd_pd(x, r, one), r);
    return _mm512_fmadd_pd(r, _mm512_fnmadd_pd(x, r, one), r);
}

XT_AVX512 static inline __m512d xt_log_pd_avx512(__m512d x)
{
    __m512d k = _mm512_getexp_pd(x);
    __m512d m = _mm512_getmant_pd(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src);
    /* m in [1, 2): fold [sqrt2, 2) down to [sqrt2/2, 1) and bump k. */
    __mmask8 big = _mm512_cmp_pd_mask(m, _mm512_set1_pd(XT_LOG_SQRT2), _CMP_GE_OQ);
    m = _mm512_mask_mul_pd(m, big, m, _mm512_set1_pd(0.5));
    k = _mm512_mask_add_pd(k, big, k, _mm512_set1_pd(1.0));
    __m512d f = _mm512_sub_pd(m, _mm512_set1_pd(1.0));
    __m512d s = _mm512_mul_pd(f, xt_rcp_pd_avx512(_mm512_add_pd(f, _mm512_set1_pd(2.0))));
    __m512d out;
    XT_LOG_FROM_REDUCED(_mm512_fmadd_pd, _mm512_fmsub_pd, _mm512_mul_pd, _mm512_add_pd,
                        _mm512_sub_pd, _mm512_set1_pd, f, s, k, out);
    return out;
}

#endif /* XT_HAVE_AVX512 */
#endif
