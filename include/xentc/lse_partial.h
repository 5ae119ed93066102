/*
 * The log-sum-exp partial result and its merge: the monoid every xentc
 * reduction is built on.
 *
 * A partial summarises any slice of a row as
 *     max   the largest (non-NaN) element of the slice, -inf for none,
 *     nmax  how many elements equal max,
 *     rest  sum of exp(x - max) over the other elements,
 *     flags values that decide the result by themselves (NaN, +inf).
 * Keeping the maxima apart from the rest is what lets the final value be
 * max + log(nmax) + log1p(rest / nmax): for [0, -40] that is 4.2e-18, where
 * log(1 + 4.2e-18) would round to 0 (scipy.special.logsumexp does the same).
 *
 * merge() is associative up to rounding, so a row can be cut into slices that
 * are reduced anywhere (threads, machines) and merged afterwards; merging in
 * a fixed order over fixed slice boundaries gives the same bits every time.
 */
#ifndef XENTC_LSE_PARTIAL_H
#define XENTC_LSE_PARTIAL_H

#include <math.h>
#include <stddef.h>

#define XT_HAS_NAN 1
#define XT_HAS_POSINF 2

typedef struct {
    double max;
    double nmax;
    double rest;
    int flags;
} xt_lse_partial;

static inline xt_lse_partial xt_partial_empty(void)
{
    xt_lse_partial p = {-INFINITY, 0.0, 0.0, 0};
    return p;
}

static inline xt_lse_partial xt_partial_merge(xt_lse_partial p, xt_lse_partial q)
{
    xt_lse_partial r;
    r.flags = p.flags | q.flags;
    if (q.max > p.max) {
        /* p's maxima stop being maxima: they join the rest, rescaled. */
        r.max = q.max;
        r.nmax = q.nmax;
        r.rest = q.rest + (p.nmax + p.rest) * exp(p.max - q.max);
    } else if (q.max == p.max) {
        r.max = p.max;
        r.nmax = p.nmax + q.nmax;
        r.rest = p.rest + q.rest;
    } else {
        r.max = p.max;
        r.nmax = p.nmax;
        r.rest = p.rest + (q.nmax + q.rest) * exp(q.max - p.max);
    }
    return r;
}

/* True when the partial's value is decided by NaN/inf/emptiness, so the
 * element-wise kernels (softmax) must take the special-value path. */
static inline int xt_partial_is_special(xt_lse_partial p)
{
    return p.flags != 0 || !isfinite(p.max) || isnan(p.rest);
}

/* log(sum(exp(x))) of everything the partial has seen. */
static inline double xt_partial_lse(xt_lse_partial p)
{
    if ((p.flags & XT_HAS_NAN) || isnan(p.rest))
        return NAN;
    if (p.flags & XT_HAS_POSINF)
        return INFINITY;
    if (p.max == -INFINITY)
        return -INFINITY;
    /* One maximum is the common case: skip log(1), a libm call per row
     * that costs as much as a short row's exp. */
    if (p.nmax == 1.0)
        return p.max + log1p(p.rest);
    return p.max + log(p.nmax) + log1p(p.rest / p.nmax);
}

/* log(sum(exp(x - max))) = lse - max of a partial that is not special
 * (xt_partial_is_special), in the form of xt_partial_lse. Kept apart from
 * the max, it survives huge logits: max + it rounds it away once |max|
 * exceeds 2^53 times it (2^24 for float32 results), which made
 * cross-entropy's lse - x_y lose the whole loss. */
static inline double xt_partial_log_sum(xt_lse_partial p)
{
    if (p.nmax == 1.0)
        return log1p(p.rest);
    return log(p.nmax) + log1p(p.rest / p.nmax);
}

/* sum(exp(x - max)) including the maxima: the softmax denominator. */
static inline double xt_partial_sum(xt_lse_partial p)
{
    return p.nmax + p.rest;
}

/*
 * Partial of a block whose max is not finite (+inf, or -inf: every element
 * -inf or NaN). Such a block decides the row by its flags alone, or
 * contributes nothing; a plain scan is fast enough for this rare case.
 */
#define XT_DEFINE_SPECIAL_BLOCK_OF(NAME, IN, T, VALUE)                        \
    static inline xt_lse_partial NAME(const IN *x, ptrdiff_t n)               \
    {                                                                         \
        xt_lse_partial p = xt_partial_empty();                                \
        for (ptrdiff_t i = 0; i < n; i++) {                                   \
            T v = VALUE(x[i]);                                                \
            if (v != v)                                                       \
                p.flags |= XT_HAS_NAN;                                        \
            else if (v == (T)INFINITY)                                        \
                p.flags |= XT_HAS_POSINF;                                     \
        }                                                                     \
        return p;                                                             \
    }
/* (IN: elements of another format, read as T by VALUE: half.h) */
#define XT_SPECIAL_SAME(v) (v)
#define XT_DEFINE_SPECIAL_BLOCK(NAME, T) XT_DEFINE_SPECIAL_BLOCK_OF(NAME, T, T, XT_SPECIAL_SAME)

XT_DEFINE_SPECIAL_BLOCK(xt_special_block_f32, float)
XT_DEFINE_SPECIAL_BLOCK(xt_special_block_f64, double)

#endif
