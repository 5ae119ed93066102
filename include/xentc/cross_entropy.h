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
 * Every difference of logits is taken relative to the row max m: with
 * ls = lse - m (xt_partial_log_sum), lse - x_y is ls + (m - x_y), the sums
 * are of x_c - m, and p = exp(x - m) exp(-ls). lse itself, m + ls, would
 * round ls away for huge logits (|m| > 2^53 ls), as would the sums of x_c,
 * and the loss (a difference of such terms) with it; torch subtracts the
 * max first too.
 * Rows whose lse is not finite (inf or NaN logits) give NaN loss and
 * gradient, as torch's log_softmax does.
 */
#ifndef XENTC_CROSS_ENTROPY_H
#define XENTC_CROSS_ENTROPY_H

#include <float.h>

#include "ce_options.h"
#include "dispatch.h"

/* The sums are of x_c - shift, shift the slice's max (xt_ce_shift). */
typedef struct {
    xt_lse_partial lse;
    double w;    /* sum_c w_c        (label smoothing: shifts wx in merges) */
    double wx;   /* sum_c w_c (x_c - shift)     (label smoothing) */
    double wq;   /* sum_c w_c q_c               (probability targets) */
    double wqx;  /* sum_c w_c q_c (x_c - shift) (probability targets) */
} xt_ce_stats;

/* What a slice's sums are relative to: its max, or 0 when that is not
 * finite (the row's loss is then NaN or inf whatever the sums). */
static inline double xt_ce_shift(xt_lse_partial p)
{
    return isfinite(p.max) ? p.max : 0.0;
}

static inline xt_ce_stats xt_ce_stats_merge(xt_ce_stats a, xt_ce_stats b)
{
    xt_ce_stats r;
    r.lse = xt_partial_merge(a.lse, b.lse);
    /* each slice's sums moved to the merged shift (the differences of
     * shifts are of logits, exact or nearly) */
    double da = xt_ce_shift(a.lse) - xt_ce_shift(r.lse);
    double db = xt_ce_shift(b.lse) - xt_ce_shift(r.lse);
    r.w = a.w + b.w;
    r.wx = (a.wx + a.w * da) + (b.wx + b.w * db);
    r.wq = a.wq + b.wq;
    r.wqx = (a.wqx + a.wq * da) + (b.wqx + b.wq * db);
    return r;
}

/* ls = lse - max of a row's merged partial, NaN when the partial is
 * special (NaN or +inf logits, or no finite one): the loss and gradient
 * are then NaN, as torch's log_softmax gives. */
static inline double xt_ce_log_sum(xt_lse_partial p)
{
    return xt_partial_is_special(p) ? NAN : xt_partial_log_sum(p);
}


static inline double xt_ce_z_term(const xt_ce_options *o, double lse)
{
    return o->z_loss * lse * lse;
}

/* loss of an index-target row from its merged stats, ls (xt_ce_log_sum),
 * its max m, the (capped) target logit x_y and its weight w_y */
static inline double xt_ce_index_loss(const xt_ce_options *o, const xt_ce_stats *s,
                                      double ls, double m, double x_y, double w_y)
{
    if (!isfinite(ls))
        return NAN;
    double e = o->smoothing;
    /* With e = 1 the target term is absent, not 0 * inf for a -inf x_y. */
    double loss = e < 1.0 ? (1.0 - e) * w_y * (ls + (m - x_y)) : 0.0;
    if (e > 0.0)
        loss += e / (double)o->nclasses * (o->weight_total * ls - s->wx);
    return loss + xt_ce_z_term(o, m + ls);
}

/* loss of a probability-target row from its merged stats, ls and max m */
static inline double xt_ce_prob_loss(const xt_ce_options *o, const xt_ce_stats *s,
                                     double ls, double m, double *wq_smoothed)
{
    double e = o->smoothing, c = e / (double)o->nclasses;
    /* sum w q' and sum w q' (x - m) with q' = (1-e) q + e/C */
    double wq = (1.0 - e) * s->wq + c * o->weight_total;
    double wqx = (e < 1.0 ? (1.0 - e) * s->wqx : 0.0) + c * s->wx;
    *wq_smoothed = wq;
    if (!isfinite(ls))
        return NAN;
    return wq * ls - wqx + xt_ce_z_term(o, m + ls);
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
    /* The weighted sums of a slice of (capped) logits x into s, relative \
     * to shift (xt_ce_shift of the slice's partial); w and q are the        \
     * matching slices of class weights and probability target, or NULL.   \
     */                                                                       \
    static inline void xt_ce_sums_##SUF(const T *x, ptrdiff_t n,              \
                                        const double *w, const T *q,          \
                                        int need_wx, double shift,            \
                                        xt_ce_stats *s)                       \
    {                                                                         \
        s->w = s->wx = s->wq = s->wqx = 0.0;                                  \
        if ((need_wx || q) && xt_active->ce_sums_##SUF) {                    \
            /* the level's vector sums (algo/ce_sums.h) */                    \
            double r[4];                                                      \
            xt_active->ce_sums_##SUF(x, n, w, q, need_wx, shift, r);          \
            s->w = r[0];                                                      \
            s->wx = r[1];                                                     \
            s->wq = r[2];                                                     \
            s->wqx = r[3];                                                    \
            return;                                                           \
        }                                                                     \
        if (need_wx) {                                                        \
            double acc = 0.0, wsum = 0.0;                                     \
            if (w) {                                                          \
                for (ptrdiff_t j = 0; j < n; j++) {                           \
                    acc += w[j] * ((double)x[j] - shift);                     \
                    wsum += w[j];                                             \
                }                                                             \
            } else {                                                          \
                for (ptrdiff_t j = 0; j < n; j++)                             \
                    acc += (double)x[j] - shift;                              \
                wsum = (double)n;                                             \
            }                                                                 \
            s->wx = acc;                                                      \
            s->w = wsum;                                                      \
        }                                                                     \
        if (q) {                                                              \
            double aq = 0.0, aqx = 0.0;                                       \
            for (ptrdiff_t j = 0; j < n; j++) {                               \
                double wq = (w ? w[j] : 1.0) * (double)q[j];                  \
                aq += wq;                                                     \
                /* q = 0 contributes nothing, even against -inf logits */    \
                if (wq != 0.0)                                                \
                    aqx += wq * ((double)x[j] - shift);                       \
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
        xt_ce_sums_##SUF(x, n, w, q, need_wx, xt_ce_shift(s.lse), &s);        \
        return s;                                                             \
    }                                                                         \
                                                                              \
    /* grad_j = (a p_j - bq w_j q_j - bc w_j - [j == y] by) * cap'_j,        \
     * p_j = exp(x_j - rowmax) exp(-ls), rowmax the row's max (of the       \
     * capped logits) and ls its log-sum-exp less rowmax.                   \
     * With a soft cap, x holds the capped logits c   \
     * (a scratch copy), and cap'_j = 1 - (c_j / s)^2; without one cap' = 1.\
     * grad may be the caller's logits (in place): x_j is read before      \
     * grad_j is written. With have_exp, grad already holds exp(x_j -      \
     * rowmax) rounded to T (partial_store, no soft cap, grad not x): it   \
     * is rescaled instead of taking exp again, the same product expscale  \
     * makes, so the same bits. */                                           \
    static inline void xt_ce_grad_slice_##SUF(                                \
        const T *x, ptrdiff_t n, double ls, double rowmax, double a,          \
        double bq, double bc, const double *w, const T *q, ptrdiff_t y,       \
        double by, double softcap, T *grad, int have_exp)                     \
    {                                                                         \
        if (!isfinite(ls)) {                                                  \
            for (ptrdiff_t j = 0; j < n; j++)                                 \
                grad[j] = (T)NAN;                                             \
            return;                                                           \
        }                                                                     \
        /* a p_j = exp(x_j - rowmax) * scale */                               \
        double scale = a * exp(-ls);                                          \
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
                double g = a * exp((c - rowmax) - ls) - bc * wj;              \
                if (q)                                                        \
                    g -= bq * wj * (double)q[j];                              \
                if (j == y)                                                   \
                    g -= by;                                                  \
                grad[j] = (T)(g * (1.0 - t * t));                             \
            }                                                                 \
            return;                                                           \
        }                                                                     \
        /* p = exp(x - max) exp(-ls): the shift is the row max, an element \
         * of x, so the vector kernels lose nothing rounding it to T (lse   \
         * would not survive that for large float32 logits). */             \
        if (have_exp) {                                                       \
            xt_active->scale_##SUF(grad, n, scale);                           \
        } else {                                                              \
            xt_active->expscale_##SUF(x, n, rowmax, scale, grad);             \
        }                                                                     \
        if (xt_active->ce_grad_fix_##SUF) {                                  \
            /* the level's vector loop (algo/ce_sums.h) */                    \
            xt_active->ce_grad_fix_##SUF(grad, n, bc, w, bq, q);              \
        } else {                                                              \
            if (bc != 0.0) {                                                  \
                if (w)                                                        \
                    for (ptrdiff_t j = 0; j < n; j++)                         \
                        grad[j] = (T)((double)grad[j] - bc * w[j]);           \
                else                                                          \
                    for (ptrdiff_t j = 0; j < n; j++)                         \
                        grad[j] = (T)((double)grad[j] - bc);                  \
            }                                                                 \
            if (q && bq != 0.0) {                                             \
                for (ptrdiff_t j = 0; j < n; j++)                             \
                    grad[j] = (T)((double)grad[j] -                           \
                                  bq * (w ? w[j] : 1.0) * (double)q[j]);      \
            }                                                                 \
        }                                                                     \
        if (y >= 0 && y < n)                                                  \
            grad[y] = (T)((double)grad[y] - by);                              \
    }

XT_DEFINE_CE(f32, float)
XT_DEFINE_CE(f64, double)

#endif
