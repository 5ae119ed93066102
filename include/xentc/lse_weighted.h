/*
 * Weighted log-sum-exp of one row, log|sum(b * exp(a))| and its sign, with
 * scipy.special.logsumexp's conventions: elements with b == 0 are absent
 * (even where a is inf or NaN), the maxima are kept apart from the rest for
 * accuracy, and a slice whose max is not finite falls back to the direct sum
 * so inf/NaN follow IEEE arithmetic. Weighted input is rare and its cost is
 * the copy that broadcasting needs anyway, so this kernel is plain double
 * precision C.
 */
#ifndef XENTC_LSE_WEIGHTED_H
#define XENTC_LSE_WEIGHTED_H

#include <math.h>
#include <stddef.h>

static inline double xt_sign(double v)
{
    if (v != v)
        return v;
    return (double)((v > 0) - (v < 0));
}

static inline void xt_lse_weighted_row(const double *a, const double *b, ptrdiff_t n,
                                       double *out, double *sign)
{
    double amax = -INFINITY;
    int has_nan = 0;
    for (ptrdiff_t j = 0; j < n; j++) {
        if (b[j] == 0.0)
            continue;
        if (a[j] > amax)
            amax = a[j];
        else if (a[j] != a[j])
            has_nan = 1;
        /* Infinite or NaN weights: the scaled sum below would divide inf by
         * inf; the direct sum gives IEEE's answer. */
        if (!isfinite(b[j]))
            has_nan = 1;
    }
    if (!has_nan && isfinite(amax)) {
        /* m: net weight of the maxima; s: the others, relative to amax. */
        double m = 0.0, s = 0.0;
        for (ptrdiff_t j = 0; j < n; j++) {
            if (b[j] == 0.0)
                continue;
            if (a[j] == amax)
                m += b[j];
            else
                s += b[j] * exp(a[j] - amax);
        }
        if (m != 0.0 && !isnan(s)) {
            /* log|m + s| = log|m| + log|1 + s/m|; for 1 + q < 0 take
             * log1p(-q - 2) = log(-(1 + q)). */
            double q = s / m;
            *sign = xt_sign(1.0 + q) * xt_sign(m);
            *out = amax + log(fabs(m)) + log1p(q < -1.0 ? -q - 2.0 : q);
        } else {
            /* The maxima cancel (or a weight is NaN): the others decide. */
            *sign = xt_sign(s);
            *out = amax + log(fabs(s));
        }
        return;
    }
    double total = 0.0;
    for (ptrdiff_t j = 0; j < n; j++)
        if (b[j] != 0.0)
            total += b[j] * exp(a[j]);
    *sign = xt_sign(total);
    *out = log(fabs(total));
}

#endif
