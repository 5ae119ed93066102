/*
 * Template (included by algo/instance.h once per ISA and element type):
 * the vector exp, XT_K(exp), for arguments x <= 0 (every xentc caller
 * passes x - max or x - lse).
 *
 * The classic layout: n = round(x / ln2), r = x - n ln2 in two parts
 * (Cody-Waite, so r is nearly exact), exp(r) by a polynomial, and 2^n
 * built by the layer's pow2_keep. Results that would be subnormal are
 * flushed to 0 by a compare mask: changing MXCSR (FTZ/DAZ) would leak into
 * the caller's floating-point state. The same constants and operations in
 * every lane of every layer, so a float's exp has the same bits whatever
 * the vector width (tests/test_kernels_isa.py checks it).
 *
 * float32: degree 5 after the reduction, about 2 ulp on [-87.3, 0];
 * float64: degree 11 (XT_EXP_POLY), about 1 ulp (both measured in
 * tests/test_kernels_isa.py and tools/check_aarch64.sh).
 *
 * NaN propagates (the polynomial of NaN is NaN and the flush compare is
 * false for NaN), which the reductions rely on.
 */
#if XT_IS_F32
#define XT_E_(name) XT_EXPF_##name
#else
#define XT_E_(name) XT_EXP_##name
#endif

XT_ATTR static inline XV(v) XT_K(exp)(XV(v) x)
{
    /* Adding the shifter rounds x / ln2 to an integer n and leaves it in
     * the low mantissa bits of t: one FMA instead of a round and a
     * conversion (exp_coefs.h). */
    const XV(v) shifter = XV(set1)(XT_E_(SHIFTER));
    XV(v) t = XV(fma)(x, XV(set1)(XT_E_(LOG2E)), shifter);
    XV(v) n = XV(sub)(t, shifter);
    XV(v) r = XV(fnma)(n, XV(set1)(XT_E_(LN2_HI)), x);
    r = XV(fnma)(n, XV(set1)(XT_E_(LN2_LO)), r);
    XV(v) p;
    XT_E_(POLY)(XV(fma), XV(set1), p, r);
    /* below ln(FLT_MIN) / ln(DBL_MIN) the result would be subnormal: kept
     * are the lanes not below it (NaN included) */
    return XV(pow2_keep)(p, n, t, XV(cmp_nlt)(x, XV(set1)(XT_E_(LO_LIMIT))));
}

#undef XT_E_
