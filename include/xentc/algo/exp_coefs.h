/*
 * Constants of the vector exp shared by every SIMD width (exp_avx2.h,
 * exp_avx512.h): the same reduction and polynomial in every lane, so a
 * float's exp has the same bits whatever the vector width; only the order
 * of the sums that use it differs between levels.
 */
#ifndef XENTC_EXP_COEFS_H
#define XENTC_EXP_COEFS_H

/* float32 */
#define XT_EXPF_LOG2E 1.44269504088896341f
#define XT_EXPF_LN2_HI 0.693359375f     /* few mantissa bits: n * hi is exact */
#define XT_EXPF_LN2_LO (-2.12194440e-4f)
#define XT_EXPF_LO_LIMIT (-87.3365447f) /* ln(FLT_MIN): below, subnormal -> 0 */
/* 1.5 * 2^23 + 127: adding it rounds x / ln2 to an integer n and leaves
 * n + 127 (the exponent bias folded in) in the low mantissa bits. */
#define XT_EXPF_SHIFTER (12582912.0f + 127.0f)
/* exp(r) ~ 1 + r Q(r) on [-ln2/2, ln2/2], Q of degree 4 fitted for minimal
 * relative error (9.2e-8 there), highest coefficient first. */
#define XT_EXPF_P4 8.2902722e-3f
#define XT_EXPF_P3 4.1898161e-2f
#define XT_EXPF_P2 1.6667639e-1f
#define XT_EXPF_P1 4.9999148e-1f
#define XT_EXPF_P0 9.9999970e-1f
/* p = 1 + r Q(r) by Horner, for any width's FMA(a, b, c) = a * b + c and
 * SET1 (broadcast). */
#define XT_EXPF_POLY(FMA, SET1, p, r)                                         \
    do {                                                                      \
        p = SET1(XT_EXPF_P4);                                                 \
        p = FMA(p, r, SET1(XT_EXPF_P3));                                      \
        p = FMA(p, r, SET1(XT_EXPF_P2));                                      \
        p = FMA(p, r, SET1(XT_EXPF_P1));                                      \
        p = FMA(p, r, SET1(XT_EXPF_P0));                                      \
        p = FMA(p, r, SET1(1.0f));                                            \
    } while (0)

/* float64 */
#define XT_EXP_LOG2E 1.4426950408889634074
#define XT_EXP_LN2_HI 6.93147180369123816490e-01
#define XT_EXP_LN2_LO 1.90821492927058770002e-10
#define XT_EXP_LO_LIMIT (-708.39641853226408) /* ln(DBL_MIN) */
/* 1.5 * 2^52: rounds to an integer left in the low mantissa bits (AVX2 has
 * no double -> int64 conversion). */
#define XT_EXP_SHIFTER 6755399441055744.0
/* exp(r) ~ 1 + r + r^2 q(r) on |r| <= ln2/2, q of degree 9: a Chebyshev
 * fit (tools/fit_exp_poly.py) with relative error 1.6e-17 there, 0.15 ulp,
 * in 11 FMAs (the Taylor polynomial of degree 12 it replaces erred by
 * 2e-16 with 12). Horner as XT_EXPF_POLY; exp(0) = 1 exactly. */
#define XT_EXP_POLY(FMA, SET1, p, r)                                          \
    do {                                                                      \
        p = SET1(2.5100375832561234e-08);                                     \
        p = FMA(p, r, SET1(2.7620075879983367e-07));                          \
        p = FMA(p, r, SET1(2.7557268480310024e-06));                          \
        p = FMA(p, r, SET1(2.4801521322368692e-05));                          \
        p = FMA(p, r, SET1(0.00019841269863040545));                          \
        p = FMA(p, r, SET1(0.0013888888917196719));                           \
        p = FMA(p, r, SET1(0.008333333333330065));                            \
        p = FMA(p, r, SET1(0.041666666666624164));                            \
        p = FMA(p, r, SET1(0.16666666666666669));                             \
        p = FMA(p, r, SET1(0.5000000000000001));                              \
        p = FMA(p, r, SET1(1.0));                                             \
        p = FMA(p, r, SET1(1.0));                                             \
    } while (0)

#endif
