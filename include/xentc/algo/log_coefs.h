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
/* float: fdlibm's e_logf.c's split of ln 2, whose high part has 12 bits
 * so k ln2_hi is exact for every float exponent */
#define XT_LOGF_LN2_HI 6.9313812256e-01f
#define XT_LOGF_LN2_LO 9.0580006145e-06f
/* The float log (algo/log.h) by a table of 16: S = 2^k m, m in [1, 2),
 * i the 4 leading fraction bits of m, c_i = 1 / XT_LOGF_INVC[i] (1 for
 * i = 0, else near the middle of i's sixteenth), r = m / c_i - 1 in
 * [-0.0286, 0.0625] by one FMA, and
 *     log S = k ln2 + log c_i + log1p(r),
 *     log1p(r) = r + r^2 (G0 + r (G1 + r (G2 + r (G3 + r G4)))),
 * XT_LOGF_LOGC[i] + XT_LOGF_LOGC_LO[i] = -log(XT_LOGF_INVC[i]), the G a
 * least-squares fit on Chebyshev nodes of (log1p(r) - r) / r^2 over r's
 * interval (0.52 ulp with float rounding). Near S = 1 the table adds
 * nothing (c_0 = 1, r = m - 1 exact), so small logs keep their relative
 * accuracy. It replaced fdlibm's e_logf.c reduction, whose fold at sqrt 2
 * and division s = f / (2 + f) took 27 operations to this one's 15
 * (float32, 1 thread, in cache: the cross-entropy forward +10% at 2
 * classes, +5% at 8). */
#define XT_LOGF_INVC                                                          \
    {1.0f,         0.91428572f, 0.86486489f, 0.82051283f, 0.78048778f,      \
     0.74418604f,  0.71111113f, 0.68085104f, 0.65306121f, 0.62745100f,      \
     0.60377359f,  0.58181816f, 0.56140351f, 0.54237288f, 0.52459013f,      \
     0.50793654f}
#define XT_LOGF_LOGC                                                          \
    {0.0f,         0.089612156f, 0.14518198f, 0.19782573f, 0.24783620f,     \
     0.29546422f,  0.34092656f,  0.38441172f, 0.42608443f, 0.46608970f,     \
     0.50455600f,  0.54159731f,  0.57731533f, 0.61180156f, 0.64513803f,     \
     0.67739874f}
/* log c_i - XT_LOGF_LOGC[i]: the table's rounding, added back */
#define XT_LOGF_LOGC_LO                                                       \
    {0.0f,            -3.05097347e-09f, 1.92077598e-09f,  4.44449588e-10f,  \
     -1.22555643e-09f, -1.04368514e-09f, 4.97689445e-09f,  8.15365375e-09f,  \
     -1.32256535e-08f, -1.15772036e-09f, -4.3814623e-09f,  7.36934958e-09f,  \
     2.70788725e-08f,  -2.54501025e-08f, -8.03087286e-09f, 2.46045389e-08f}
#define XT_LOGF_G0 -0.5f
#define XT_LOGF_G1 0.33333340f
#define XT_LOGF_G2 -0.25001109f
#define XT_LOGF_G3 0.19997567f
#define XT_LOGF_G4 -0.15542129f

/* R = z (Lg1 + w (Lg3 + ...)) + w (Lg2 + w (Lg4 + ...)) of the double
 * log. */
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

/* out = log(2^k (1 + f)) from f, s = f / (2 + f) and k, for any width's
 * FMA(a, b, c) = a b + c, FMS(a, b, c) = a b - c, MUL, ADD, SUB and SET1
 * (broadcast), with ln 2 split as LN2_HI + LN2_LO and RPOLY the R
 * polynomial above. */
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
