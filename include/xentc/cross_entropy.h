/*
 * Per-row cross-entropy kernels, for class-index and probability targets,
 * with class weights, label smoothing, z-loss and logit soft-capping.
 *
 * A row (or a slice of a long row) is summarised by xt_ce_stats: the
 * log-sum-exp partial plus the weighted sums the loss needs. Stats of slices
 * merge in slice order, so long rows split across threads stay deterministic.
 * From the merged stats and the target, xt_ce_*_loss gives the row's loss,
 * and xt_ce_grad_slice_* writes d loss / d logits for a slice:
 *
 *   index target y, smoothing e, class weights w (W = sum w), z-loss lam:
 *     loss = (1-e) w_y (lse - x_y) + (e/C) (W lse - sum_c w_c x_c) + lam lse^2
 *     grad = (1-e) w_y (p - onehot_y) + (e/C) (W p - w) + 2 lam lse p
 *   probability target q, q' = (1-e) q + e/C:
 *     loss = (sum_c w_c q'_c) lse - sum_c w_c q'_c x_c + lam lse^2
 *     grad = (sum_c w_c q'_c) p - w q' + 2 lam lse p
 * with p = softmax(x) = exp(x - lse). A soft cap s replaces x by s tanh(x/s)
 * first and multiplies the gradient by 1 - tanh^2(x/s).
 * Rows whose lse is not finite (inf or NaN logits) give NaN loss and
 * gradient, as torch's log_softmax does.
 */
#ifndef XENTC_CROSS_ENTROPY_H
#define XENTC_CROSS_ENTROPY_H

#include <float.h>

#include "dispatch.h"

typedef struct {
    xt_lse_partial lse;
    double wx;   /* sum_c w_c x_c    (label smoothing) */
    double wq;   /* sum_c w_c q_c    (probability targets) */
    double wqx;  /* sum_c w_c q_c x_c (probability targets) */
} xt_ce_stats;

static inline xt_ce_stats xt_ce_stats_merge(xt_ce_stats a, xt_ce_stats b)
{
    xt_ce_stats r;
    r.lse = xt_partial_merge(a.lse, b.lse);
    r.wx = a.wx + b.wx;
    r.wq = a.wq + b.wq;
    r.wqx = a.wqx + b.wqx;
    return r;
}

/* Constant part of the loss, shared by every row of a call. */
typedef struct {
    ptrdiff_t nclasses;
    const double *class_weight; /* NULL: every weight 1 */
    double weight_total;        /* sum of the class weights */
    double smoothing;
    double z_loss;
    double softcap;             /* 0: none */
} xt_ce_options;

static inline double xt_ce_z_term(const xt_ce_options *o, double lse)
{
    return o->z_loss * lse * lse;
}

/* loss of an index-target row from its merged stats, its log-sum-exp (from
 * the stats, or computed alongside them) and its (capped) x_y */
static inline double xt_ce_index_loss(const xt_ce_options *o, const xt_ce_stats *s,
                                      double lse, double x_y, double w_y)
{
    if (!isfinite(lse))
        return NAN;
    double e = o->smoothing;
    /* With e = 1 the target term is absent, not 0 * inf for a -inf x_y. */
    double loss = e < 1.0 ? (1.0 - e) * w_y * (lse - x_y) : 0.0;
    if (e > 0.0)
        loss += e / (double)o->nclasses * (o->weight_total * lse - s->wx);
    return loss + xt_ce_z_term(o, lse);
}

/* loss of a probability-target row from its merged stats and log-sum-exp */
static inline double xt_ce_prob_loss(const xt_ce_options *o, const xt_ce_stats *s,
                                     double lse, double *wq_smoothed)
{
    double e = o->smoothing, c = e / (double)o->nclasses;
    /* sum w q' and sum w q' x with q' = (1-e) q + e/C */
    double wq = (1.0 - e) * s->wq + c * o->weight_total;
    double wqx = (e < 1.0 ? (1.0 - e) * s->wqx : 0.0) + c * s->wx;
    *wq_smoothed = wq;
    if (!isfinite(lse))
        return NAN;
    return wq * lse - wqx + xt_ce_z_term(o, lse);
}

/* The largest finite value of each kernel dtype: a gradient scale beyond it
 * cannot go through the vector kernels (xt_ce_grad_slice_*). */
#define XT_MAX_f32 ((double)FLT_MAX)
#define XT_MAX_f64 DBL_MAX

#define XT_DEFINE_CE(SUF, T)                                                  \
    /* x capped into dst: dst_j = s tanh(x_j / s) */                          \
    static inline void xt_softcap_##SUF(const T *x, ptrdiff_t n, double s,    \
                                        T *dst)                               \
    {                                                                         \
        for (ptrdiff_t j = 0; j < n; j++)                                     \
            dst[j] = (T)(s * tanh((double)x[j] / s));                         \
    }                                                                         \
                                                                              \
    /* The weighted sums of a slice of (capped) logits x into s; w and q are \
     * the matching slices of class weights and probability target, or NULL.\
     */                                                                       \
    static inline void xt_ce_sums_##SUF(const T *x, ptrdiff_t n,              \
                                        const double *w, const T *q,          \
                                        int need_wx, xt_ce_stats *s)          \
    {                                                                         \
        s->wx = s->wq = s->wqx = 0.0;                                         \
        if (need_wx) {                                                        \
            double acc = 0.0;                                                 \
            if (w)                                                            \
                for (ptrdiff_t j = 0; j < n; j++)                             \
                    acc += w[j] * (double)x[j];                               \
            else                                                              \
                for (ptrdiff_t j = 0; j < n; j++)                             \
                    acc += (double)x[j];                                      \
            s->wx = acc;                                                      \
        }                                                                     \
        if (q) {                                                              \
            double aq = 0.0, aqx = 0.0;                                       \
            for (ptrdiff_t j = 0; j < n; j++) {                               \
                double wq = (w ? w[j] : 1.0) * (double)q[j];                  \
                aq += wq;                                                     \
                /* q = 0 contributes nothing, even against -inf logits */    \
                if (wq != 0.0)                                                \
                    aqx += wq * (double)x[j];                                 \
            }                                                                 \
            s->wq = aq;                                                       \
            s->wqx = aqx;                                                     \
        }                                                                     \
    }                                                                         \
                                                                              \
    /* Stats (partial and sums) of a slice of (capped) logits. */            \
    static inline xt_ce_stats xt_ce_stats_##SUF(const T *x, ptrdiff_t n,      \
                                                const double *w, const T *q,  \
                                                int need_wx)                  \
    {                                                                         \
        xt_ce_stats s;                                                        \
        s.lse = xt_active->partial_##SUF(x, n);                               \
        xt_ce_sums_##SUF(x, n, w, q, need_wx, &s);                            \
        return s;                                                             \
    }                                                                         \
                                                                              \
    /* grad_j = (a p_j - bq w_j q_j - bc w_j - [j == y] by) * cap'_j,        \
     * p_j = exp(x_j - lse), rowmax the row's max (of the capped logits).    \
     * With a soft cap, x holds the capped logits c   \
     * (a scratch copy), and cap'_j = 1 - (c_j / s)^2; without one cap' = 1.\
     * grad may be the caller's logits (in place): x_j is read before      \
     * grad_j is written. With have_exp, grad already holds exp(x_j -      \
     * rowmax) rounded to T (partial_store, no soft cap, grad not x): it   \
     * is rescaled instead of taking exp again, the same product expscale  \
     * makes, so the same bits. */                                           \
    static inline void xt_ce_grad_slice_##SUF(                                \
        const T *x, ptrdiff_t n, double lse, double rowmax, double a,         \
        double bq, double bc, const double *w, const T *q, ptrdiff_t y,       \
        double by, double softcap, T *grad, int have_exp)                     \
    {                                                                         \
        if (!isfinite(lse)) {                                                 \
            for (ptrdiff_t j = 0; j < n; j++)                                 \
                grad[j] = (T)NAN;                                             \
            return;                                                           \
        }                                                                     \
        /* a p_j = exp(x_j - rowmax) * scale */                               \
        double scale = a * exp(rowmax - lse);                                 \
        /* Element by element in double with a soft cap, and when the      \
         * scale is beyond T's range (float32 logits with huge class        \
         * weights or z-loss): the vector kernels would round it to T, inf, \
         * giving inf * 0 = NaN where the softmax underflows, and an a p_y  \
         * of inf that by cannot cancel. Without a cap t = 0: cap' = 1. */  \
        if (softcap > 0.0                                                     \
            || (isfinite(scale) && fabs(scale) > XT_MAX_##SUF)) {             \
            double inv_cap = softcap > 0.0 ? 1.0 / softcap : 0.0;             \
            for (ptrdiff_t j = 0; j < n; j++) {                               \
                double c = (double)x[j], t = c * inv_cap;                     \
                double wj = w ? w[j] : 1.0;                                   \
                double g = a * exp(c - lse) - bc * wj;                        \
                if (q)                                                        \
                    g -= bq * wj * (double)q[j];                              \
                if (j == y)                                                   \
                    g -= by;                                                  \
                grad[j] = (T)(g * (1.0 - t * t));                             \
            }                                                                 \
            return;                                                           \
        }                                                                     \
        /* p = exp(x - max) exp(max - lse): the shift is the row max, an    \
         * element of x, so the vector kernels lose nothing rounding it to  \
         * T (lse would not survive that for large float32 logits). */      \
        if (have_exp) {                                                       \
            T s = (T)scale;                                                   \
            for (ptrdiff_t j = 0; j < n; j++)                                 \
                grad[j] *= s;                                                 \
        } else {                                                              \
            xt_active->expscale_##SUF(x, n, rowmax, scale, grad);             \
        }                                                                     \
        if (bc != 0.0) {                                                      \
            if (w)                                                            \
                for (ptrdiff_t j = 0; j < n; j++)                             \
                    grad[j] = (T)((double)grad[j] - bc * w[j]);               \
            else                                                              \
                for (ptrdiff_t j = 0; j < n; j++)                             \
                    grad[j] = (T)((double)grad[j] - bc);                      \
        }                                                                     \
        if (q && bq != 0.0) {                                                 \
            for (ptrdiff_t j = 0; j < n; j++)                                 \
                grad[j] = (T)((double)grad[j] -                               \
                              bq * (w ? w[j] : 1.0) * (double)q[j]);          \
        }                                                                     \
        if (y >= 0 && y < n)                                                  \
            grad[y] = (T)((double)grad[y] - by);                              \
    }

XT_DEFINE_CE(f32, float)
XT_DEFINE_CE(f64, double)

#endif
