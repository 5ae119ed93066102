/*
 * Template (algo/instance.h): the vector natural log, XT_K(log), for
 * positive normal arguments (callers pass sums >= 1), and the short-row
 * kernels' finish XT_K(lse_finish). float64 for the log-sum-exp kernels;
 * float32 for the fused cross-entropy's lane mode (algo/ce_rows.h), whose
 * double log was 45% of its time at 2 classes (perf).
 *
 * float64: fdlibm's e_log.c reduction and polynomial (log_coefs.h), about
 * 1 ulp: x = 2^k m with m in [1, 2) from the layer's getexp/getmant,
 * [sqrt2, 2) folded down to [sqrt2/2, 1) with k bumped, then f = m - 1
 * and s = f / (2 + f) (the layer's div_fast).
 * float32: a table of 16 by the layer's mant_lookup16 and a polynomial
 * of log1p (log_coefs.h), about 1 ulp.
 */

#if XT_IS_F32
/* log_coefs.h's table of 16, no division: k ln2_hi + log c_i by Fast2Sum
 * (|k ln2_hi| > log c_i when k > 0) and its error added to the small
 * terms with the table's own rounding, to keep the division's accuracy
 * (the sum rounded at once added 0.05-0.08 ulp to the mean error of the
 * float32 cross-entropy loss at 8-33 classes) */
XT_ATTR static inline XV(v) XT_K(log)(XV(v) x)
{
    static const float invc[16] = XT_LOGF_INVC, logc[16] = XT_LOGF_LOGC,
                       logc_lo[16] = XT_LOGF_LOGC_LO;
    const XV(v) k = XV(getexp)(x), m = XV(getmant)(x);
    const XV(v) r = XV(fms)(m, XV(mant_lookup16)(m, invc), XV(set1)(1.0f));
    XV(v) g = XV(fma)(XV(set1)(XT_LOGF_G4), r, XV(set1)(XT_LOGF_G3));
    g = XV(fma)(g, r, XV(set1)(XT_LOGF_G2));
    g = XV(fma)(g, r, XV(set1)(XT_LOGF_G1));
    g = XV(fma)(g, r, XV(set1)(XT_LOGF_G0));
    const XV(v) p = XV(fma)(XV(mul)(r, r), g, r); /* log1p(r) */
    const XV(v) a = XV(mul)(k, XV(set1)(XT_LOGF_LN2_HI)), b = XV(mant_lookup16)(m, logc);
    const XV(v) hi = XV(add)(a, b), err = XV(sub)(b, XV(sub)(hi, a));
    const XV(v) lo = XV(fma)(k, XV(set1)(XT_LOGF_LN2_LO),
                             XV(add)(err, XV(mant_lookup16)(m, logc_lo)));
    return XV(add)(hi, XV(add)(lo, p));
}
#else
XT_ATTR static inline XV(v) XT_K(log)(XV(v) x)
{
    XV(v) k = XV(getexp)(x);
    XV(v) m = XV(getmant)(x);
    XV(m) big = XV(cmp_ge)(m, XV(set1)(XT_LOG_SQRT2));
    m = XV(select)(big, XV(mul)(m, XV(set1)(0.5)), m);
    k = XV(add_where)(k, big, XV(set1)(1.0));
    XV(v) f = XV(sub)(m, XV(set1)(1.0));
    XV(v) s = XV(div_fast)(f, XV(add)(f, XV(set1)(2.0)));
    XV(v) out;
    XT_LOG_FROM_REDUCED(XV(fma), XV(fms), XV(mul), XV(add), XV(sub), XV(set1), f, s,
                        k, out, XT_LOG_LN2_HI, XT_LOG_LN2_LO, XT_LOG_R);
    return out;
}
#endif

/* lse of a vector of rows from max, count and rest (all finite,
 * count >= 1), with a compensated sum S = count + rest:
 *     lse = max + log(S) + err(S) / S,
 * which keeps scipy's accuracy on [0, -40] (err carries the 4e-18 that S
 * rounds away). NaN rests give NaN. */
XT_ATTR static inline XV(v) XT_K(lse_finish)(XV(v) m, XV(v) count, XV(v) rest)
{
    XV(v) S = XV(add)(count, rest);
    /* TwoSum error of count + rest */
    XV(v) bv = XV(sub)(S, count);
    XV(v) err = XV(add)(XV(sub)(count, XV(sub)(S, bv)), XV(sub)(rest, bv));
    XV(v) l = XV(add)(XT_K(log)(S), XV(div_fast)(err, S));
    return XV(select)(XV(cmp_unord)(S, S), XV(set1)(NAN), XV(add)(m, l));
}

