/*
 * Vectorised exp for AVX2 + FMA, for arguments x <= 0 (every xentc caller
 * passes x - max or x - lse). Compiled with per-function target attributes,
 * so the rest of the module stays baseline x86-64 and runs on any CPU; these
 * functions are only reached after the CPU check in dispatch.h.
 *
 * Both follow the classic layout: n = round(x / ln2), r = x - n ln2 in two
 * parts (Cody-Waite, so r is nearly exact), exp(r) by a polynomial, and 2^n
 * built directly in the exponent bits. Results that would be subnormal are
 * flushed to 0 with a compare mask: changing MXCSR (FTZ/DAZ) would leak into
 * the caller's floating-point state.
 *
 * NaN propagates (the polynomial of NaN is NaN and the flush compare is false
 * for NaN), which the reductions rely on.
 */
#ifndef XENTC_EXP_AVX2_H
#define XENTC_EXP_AVX2_H

/* XENTC_BASELINE_ONLY builds the portable kernels alone, as on a platform
 * without x86 intrinsics (tools/check_baseline_build.sh). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(XENTC_BASELINE_ONLY)
#define XT_HAVE_AVX2 1
#include <immintrin.h>

#include "exp_coefs.h"

#define XT_AVX2 __attribute__((target("avx2,fma")))

/* float32: polynomial of degree 5 after the reduction; max error about
 * 2 ulp on [-87.3, 0] (measured in tests/test_kernels_isa.py). */
XT_AVX2 static inline __m256 xt_exp_ps_avx2(__m256 x)
{
    const __m256 log2e = _mm256_set1_ps(XT_EXPF_LOG2E);
    const __m256 ln2_hi = _mm256_set1_ps(XT_EXPF_LN2_HI);
    const __m256 ln2_lo = _mm256_set1_ps(XT_EXPF_LN2_LO);
    /* ln(FLT_MIN): below it the result would be subnormal. */
    const __m256 lo_limit = _mm256_set1_ps(XT_EXPF_LO_LIMIT);

    /* Adding 1.5 * 2^23 rounds x / ln2 to an integer n and leaves n + 127
     * (the bias folded into the constant) in the low mantissa bits: one
     * FMA instead of a round and a conversion. */
    const __m256 shifter = _mm256_set1_ps(XT_EXPF_SHIFTER);
    __m256 t = _mm256_fmadd_ps(x, log2e, shifter);
    __m256 n = _mm256_sub_ps(t, shifter);
    __m256 r = _mm256_fnmadd_ps(n, ln2_hi, x);
    r = _mm256_fnmadd_ps(n, ln2_lo, r);

    /* exp(r) ~ 1 + r Q(r), Q of degree 4 fitted for minimal relative error
     * on [-ln2/2, ln2/2] (9.2e-8 there); five FMAs, and exp(0) = 1 exactly. */
    __m256 p;
    XT_EXPF_POLY(_mm256_fmadd_ps, _mm256_set1_ps, p, r);

    /* 2^n for n in [-126, 0]: the biased exponent n + 127 sits in t's low
     * bits (t's mantissa field); shifted into the exponent field. */
    __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23));
    __m256 y = _mm256_mul_ps(p, scale);

    __m256 tiny = _mm256_cmp_ps(x, lo_limit, _CMP_LT_OQ);
    return _mm256_andnot_ps(tiny, y);
}

/* float64: polynomial of degree 11 on |r| <= ln2/2 (XT_EXP_POLY, error
 * 1.6e-17 relative), about 1 ulp overall (measured in
 * tests/test_kernels_isa.py). */
XT_AVX2 static inline __m256d xt_exp_pd_avx2(__m256d x)
{
    const __m256d log2e = _mm256_set1_pd(XT_EXP_LOG2E);
    const __m256d ln2_hi = _mm256_set1_pd(XT_EXP_LN2_HI);
    const __m256d ln2_lo = _mm256_set1_pd(XT_EXP_LN2_LO);
    /* ln(DBL_MIN) */
    const __m256d lo_limit = _mm256_set1_pd(XT_EXP_LO_LIMIT);
    /* Adding 1.5 * 2^52 rounds to an integer and leaves it in the low
     * mantissa bits, which avoids a double -> int64 conversion AVX2 lacks. */
    const __m256d shifter = _mm256_set1_pd(XT_EXP_SHIFTER);

    __m256d t = _mm256_fmadd_pd(x, log2e, shifter);
    __m256d n = _mm256_sub_pd(t, shifter);
    __m256d r = _mm256_fnmadd_pd(n, ln2_hi, x);
    r = _mm256_fnmadd_pd(n, ln2_lo, r);

    __m256d p;
    XT_EXP_POLY(_mm256_fmadd_pd, _mm256_set1_pd, p, r);

    /* The integer n sits in the low bits of t (two's complement), so
     * (t_bits - shifter_bits + 1023) << 52 is 2^n for n in [-1022, 0]. */
    __m256i bits = _mm256_sub_epi64(_mm256_castpd_si256(t),
                                    _mm256_castpd_si256(shifter));
    bits = _mm256_slli_epi64(_mm256_add_epi64(bits, _mm256_set1_epi64x(1023)), 52);
    __m256d y = _mm256_mul_pd(p, _mm256_castsi256_pd(bits));

    __m256d tiny = _mm256_cmp_pd(x, lo_limit, _CMP_LT_OQ);
    return _mm256_andnot_pd(tiny, y);
}

#endif /* x86-64 with GCC/Clang */
#endif
