/*
 * Vectorised exp for AVX-512F, for arguments x <= 0: the algorithm and
 * constants of exp_avx2.h (see there for the reduction) on 16 floats /
 * 8 doubles, so every lane gets the same bits as with AVX2. The 2^n step is
 * vscalef under a zero mask, one instruction for AVX2's shift and multiply
 * and its flush to 0: p 2^n is rounded once either way (exact for normal
 * results, the same subnormal at n = -126 / -1022), and the masked-off
 * lanes (below ln(FLT_MIN), not NaN) are 0. Per-function target attributes
 * again: reached only after the CPU check in dispatch.h.
 */
#ifndef XENTC_EXP_AVX512_H
#define XENTC_EXP_AVX512_H

#include "exp_avx2.h"

#ifdef XT_HAVE_AVX2
#define XT_HAVE_AVX512 1
#define XT_AVX512 __attribute__((target("avx512f,fma")))

XT_AVX512 static inline __m512 xt_exp_ps_avx512(__m512 x)
{
    const __m512 shifter = _mm512_set1_ps(XT_EXPF_SHIFTER);
    __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(XT_EXPF_LOG2E), shifter);
    __m512 n = _mm512_sub_ps(t, shifter);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(XT_EXPF_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(XT_EXPF_LN2_LO), r);
    __m512 p;
    XT_EXPF_POLY(_mm512_fmadd_ps, _mm512_set1_ps, p, r);
    __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(XT_EXPF_LO_LIMIT), _CMP_NLT_UQ);
    return _mm512_maskz_scalef_ps(keep, p, n);
}

XT_AVX512 static inline __m512d xt_exp_pd_avx512(__m512d x)
{
    const __m512d shifter = _mm512_set1_pd(XT_EXP_SHIFTER);
    __m512d t = _mm512_fmadd_pd(x, _mm512_set1_pd(XT_EXP_LOG2E), shifter);
    __m512d n = _mm512_sub_pd(t, shifter);
    __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(XT_EXP_LN2_HI), x);
    r = _mm512_fnmadd_pd(n, _mm512_set1_pd(XT_EXP_LN2_LO), r);
    __m512d p;
    XT_EXP_POLY(_mm512_fmadd_pd, _mm512_set1_pd, p, r);
    __mmask8 keep = _mm512_cmp_pd_mask(x, _mm512_set1_pd(XT_EXP_LO_LIMIT), _CMP_NLT_UQ);
    return _mm512_maskz_scalef_pd(keep, p, n);
}

#endif /* XT_HAVE_AVX2 */
#endif
