/*
 * Template (algo/instance.h): the vector natural log, XT_K(log), for
 * positive normal arguments (callers pass sums >= 1), and the short-row
 * kernels' finish XT_K(lse_finish). float64 for the log-sum-exp kernels;
 * float32 for the fused cross-entropy's lane mode (algo/ce_rows.h), whose
 * double log was 45% of its time at 2 classes (perf).
 *
 * log: fdlibm's reduction and polynomials (log_coefs.h: e_log.c's for
 * double, e_logf.c's for float), about 1 ulp:
 * x = 2^k m with m in [1, 2) from the layer's getexp/getmant, [sqrt2, 2)
 * folded down to [sqrt2/2, 1) with k bumped, then f = m - 1 and
 * s = f / (2 + f) (the layer's div_fast).
 */

#if XT_IS_F32
#define XT_L_(name) XT_LOGF_##name
#else
#define XT_L_(name) XT_LOG_##name
#endif

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
                        k, out, XT_L_(LN2_HI), XT_L_(LN2_LO), XT_L_(R));
    return out;
}

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

#undef XT_L_
