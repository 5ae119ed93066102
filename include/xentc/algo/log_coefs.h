/*
 * The double-precision log of the vector kernels (log_avx2.h,
 * log_avx512.h), shared so that every width evaluates the same formula.
 * fdlibm's reduction: x = 2^k m with m in [sqrt(2)/2, sqrt(2)), f = m - 1,
 * s = f / (2 + f), z = s^2, w = z^2, and
 *     log(x) = k ln2_hi - ((hfsq - (s (hfsq + R) + k ln2_lo)) - f),
 * hfsq = f^2 / 2, R = z (Lg1 + w (Lg3 + w (Lg5 + w Lg7)))
 *                   + w (Lg2 + w (Lg4 + w Lg6)), fdlibm's minimax
 * coefficients: about 1 ulp.
 */
#ifndef XENTC_LOG_COEFS_H
#define XENTC_LOG_COEFS_H

#define XT_LOG_LG1 6.666666666666735130e-01
#define XT_LOG_LG2 3.999999999940941908e-01
#define XT_LOG_LG3 2.857142874366239149e-01
#define XT_LOG_LG4 2.222219843214978396e-01
#define XT_LOG_LG5 1.818357216161805012e-01
#define XT_LOG_LG6 1.531383769920937332e-01
#define XT_LOG_LG7 1.479819860511658591e-01
#define XT_LOG_LN2_HI 6.93147180369123816490e-01
#define XT_LOG_LN2_LO 1.90821492927058770002e-10
#define XT_LOG_SQRT2 1.4142135623730951
/* float: fdlibm's e_logf.c, its float split of ln 2, whose high part has
 * 12 bits so k ln2_hi is exact for every float exponent, and its four
 * coefficients (minimax for float; the seven of the double log above cost
 * three more dependent FMAs on the float log's chain, which the short-row
 * cross-entropy waits on) */
#define XT_LOGF_LN2_HI 6.9313812256e-01f
#define XT_LOGF_LN2_LO 9.0580006145e-06f
#define XT_LOGF_LG1 0.66666662693f /* 0xaaaaaa.0p-24 */
#define XT_LOGF_LG2 0.40000972152f /* 0xccce13.0p-25 */
#define XT_LOGF_LG3 0.28498786688f /* 0x91e9ee.0p-25 */
#define XT_LOGF_LG4 0.24279078841f /* 0xf89e26.0p-26 */

/* R = z (Lg1 + w (Lg3 + ...)) + w (Lg2 + w (Lg4 + ...)) of the double log
 * (XT_LOG_R) and of the float one (XT_LOGF_R). */
#define XT_LOG_R(FMA, MUL, ADD, SET1, z, w, R)                                \
    do {                                                                      \
        __typeof__(z) t1_ = FMA(w, SET1(XT_LOG_LG7), SET1(XT_LOG_LG5));       \
        t1_ = FMA(w, t1_, SET1(XT_LOG_LG3));                                  \
        t1_ = FMA(w, t1_, SET1(XT_LOG_LG1));                                  \
        t1_ = MUL(z, t1_);                                                    \
        __typeof__(z) t2_ = FMA(w, SET1(XT_LOG_LG6), SET1(XT_LOG_LG4));       \
        t2_ = FMA(w, t2_, SET1(XT_LOG_LG2));                                  \
        t2_ = MUL(w, t2_);                                                    \
        (R) = ADD(t1_, t2_);                                                  \
    } while (0)
#define XT_LOGF_R(FMA, MUL, ADD, SET1, z, w, R)                               \
    do {                                                                      \
        __typeof__(z) t1_ = MUL(z, FMA(w, SET1(XT_LOGF_LG3), SET1(XT_LOGF_LG1))); \
        __typeof__(z) t2_ = MUL(w, FMA(w, SET1(XT_LOGF_LG4), SET1(XT_LOGF_LG2))); \
        (R) = ADD(t1_, t2_);                                                  \
    } while (0)

/* out = log(2^k (1 + f)) from f, s = f / (2 + f) and k, for any width's
 * FMA(a, b, c) = a b + c, FMS(a, b, c) = a b - c, MUL, ADD, SUB and SET1
 * (broadcast), with ln 2 split as LN2_HI + LN2_LO and RPOLY one of the R
 * polynomials above. */
#define XT_LOG_FROM_REDUCED(FMA, FMS, MUL, ADD, SUB, SET1, f, s, k, out, LN2_HI, LN2_LO, \
                            RPOLY)                                            \
    do {                                                                      \
        __typeof__(f) z_ = MUL(s, s);                                         \
        __typeof__(f) w_ = MUL(z_, z_);                                       \
        __typeof__(f) R_;                                                     \
        RPOLY(FMA, MUL, ADD, SET1, z_, w_, R_);                               \
        __typeof__(f) hfsq_ = MUL(SET1(0.5), MUL(f, f));                      \
        __typeof__(f) inner_ =                                                \
            FMA(s, ADD(hfsq_, R_), MUL(k, SET1(LN2_LO)));              \
        __typeof__(f) r_ = SUB(SUB(hfsq_, inner_), f);                        \
        (out) = FMS(k, SET1(LN2_HI), r_);                              \
    } while (0)

#endif
