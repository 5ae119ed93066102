/*
 * Template (algo/instance.h, float64 only): the vector natural log,
 * XT_KD(log), for positive normal arguments (callers pass sums >= 1), and
 * the short-row kernels' finish XT_KD(lse_finish).
 *
 * log: fdlibm's reduction and polynomial (log_coefs.h), about 1 ulp:
 * x = 2^k m with m in [1, 2) from the layer's getexp/getmant, [sqrt2, 2)
 * folded down to [sqrt2/2, 1) with k bumped, then f = m - 1 and
 * s = f / (2 + f) (the layer's div_fast).
 */

XT_ATTR static inline XVD(v) XT_KD(log)(XVD(v) x)
{
    XVD(v) k = XVD(getexp)(x);
    XVD(v) m = XVD(getmant)(x);
    XVD(m) big = XVD(cmp_ge)(m, XVD(set1)(XT_LOG_SQRT2));
    m = XVD(select)(big, XVD(mul)(m, XVD(set1)(0.5)), m);
    k = XVD(add_where)(k, big, XVD(set1)(1.0));
    XVD(v) f = XVD(sub)(m, XVD(set1)(1.0));
    XVD(v) s = XVD(div_fast)(f, XVD(add)(f, XVD(set1)(2.0)));
    XVD(v) out;
    XT_LOG_FROM_REDUCED(XVD(fma), XVD(fms), XVD(mul), XVD(add), XVD(sub), XVD(set1), f, s,
                        k, out);
    return out;
}

/* lse of a vector of rows from max, count and rest (all finite,
 * count >= 1), with a compensated sum S = count + rest:
 *     lse = max + log(S) + err(S) / S,
 * which keeps scipy's accuracy on [0, -40] (err carries the 4e-18 that S
 * rounds away). NaN rests give NaN. */
XT_ATTR static inline XVD(v) XT_KD(lse_finish)(XVD(v) m, XVD(v) count, XVD(v) rest)
{
    XVD(v) S = XVD(add)(count, rest);
    /* TwoSum error of count + rest */
    XVD(v) bv = XVD(sub)(S, count);
    XVD(v) err = XVD(add)(XVD(sub)(count, XVD(sub)(S, bv)), XVD(sub)(rest, bv));
    XVD(v) l = XVD(add)(XT_KD(log)(S), XVD(div_fast)(err, S));
    return XVD(select)(XVD(cmp_unord)(S, S), XVD(set1)(NAN), XVD(add)(m, l));
}
