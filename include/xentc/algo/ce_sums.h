/*
 * Template (algo/instance.h): the cross-entropy's per-slice weighted sums
 * and its gradient's class terms over the vector layer, for the rows the
 * fused kernels leave (probability targets, class weights with label
 * smoothing, soft caps, rows of more than XT_CE_FUSED_MAX_COLS classes):
 *   XT_K(ce_sums)      cross_entropy.h's xt_ce_sums: sum w, sum w (x - shift),
 *                      sum w q and sum w q (x - shift), in double lanes;
 *   XT_K(ce_grad_fix)  grad_j -= bc w_j, then grad_j -= bq w_j q_j, each
 *                      in double and rounded to T, as xt_ce_grad_slice's
 *                      scalar loops did.
 * Absent weights are 1; q may be NULL. A term with q_j = 0 adds nothing,
 * even against a -inf logit (0 * inf would be NaN).
 */

/* Lanes [k WD, k WD + WD) of a T vector's worth of weights from w[i],
 * 0 past n; without w (NULL) the weights are 1. */
XT_ATTR XT_ALWAYS_INLINE static inline XVD(v) XT_K(ce_weights)(const double *w, ptrdiff_t i,
                                                                int k, ptrdiff_t n)
{
    enum { WD = XVD(lanes) };
    ptrdiff_t at = i + k * WD, left = n - at;
    if (left <= 0)
        return XVD(zero)();
    if (!w)
        return left >= WD ? XVD(set1)(1.0) : XVD(load_tail)(xt_ce_ones, left, XVD(zero)());
    return left >= WD ? XVD(load)(w + at) : XVD(load_tail)(w + at, left, XVD(zero)());
}

XT_ATTR static void XT_K(ce_sums)(const XT_T *x, ptrdiff_t n, const double *w, const XT_T *q,
                                  int need_wx, double shift, double *out)
{
    enum { W = XV(lanes), NW = XV(lanes) / XVD(lanes) };
    const XVD(v) zero = XVD(zero)(), vshift = XVD(set1)(shift);
    XVD(v) aw = zero, awx = zero, awq = zero, awqx = zero;
    for (ptrdiff_t i = 0; i < n; i += W) {
        int full = i + W <= n;
        /* past n: x = shift, q = 0, w = 0, so every term is 0 */
        XV(v) vx = full ? XV(load)(x + i) : XV(load_tail)(x + i, n - i, XV(set1)((XT_T)shift));
        XV(v) vq = !q ? XV(zero)() : full ? XV(load)(q + i)
                                          : XV(load_tail)(q + i, n - i, XV(zero)());
        for (int k = 0; k < NW; k++) {
            XVD(v) d = XVD(sub)(XV(widen)(vx, k), vshift);
            XVD(v) wk = XT_K(ce_weights)(w, i, k, n);
            if (need_wx) {
                aw = XVD(add)(aw, wk);
                awx = XVD(add)(awx, XVD(mul)(wk, d));
            }
            if (q) {
                XVD(v) wq = XVD(mul)(wk, XV(widen)(vq, k));
                awq = XVD(add)(awq, wq);
                awqx = XVD(add)(awqx, XVD(zero_where)(XVD(cmp_eq)(wq, zero),
                                                      XVD(mul)(wq, d)));
            }
        }
    }
    out[0] = XVD(hsum)(aw);
    out[1] = XVD(hsum)(awx);
    out[2] = XVD(hsum)(awq);
    out[3] = XVD(hsum)(awqx);
}

/* grad_j = (T)((double)grad_j - bc w_j) where bc != 0, then
 * (T)((double)grad_j - bq w_j q_j) where q and bq != 0. */
XT_ATTR static void XT_K(ce_grad_fix)(XT_T *grad, ptrdiff_t n, double bc, const double *w,
                                      double bq, const XT_T *q)
{
    enum { W = XV(lanes), NW = XV(lanes) / XVD(lanes) };
    const int fix_c = bc != 0.0, fix_q = q && bq != 0.0;
    const XVD(v) vbc = XVD(set1)(bc), vbq = XVD(set1)(bq);
    if (!fix_c && !fix_q)
        return;
    for (ptrdiff_t i = 0; i < n; i += W) {
        int full = i + W <= n;
        XV(v) g = full ? XV(load)(grad + i) : XV(load_tail)(grad + i, n - i, XV(zero)());
        XV(v) vq = !fix_q ? XV(zero)() : full ? XV(load)(q + i)
                                              : XV(load_tail)(q + i, n - i, XV(zero)());
        XVD(v) h[NW], wk[NW];
        for (int k = 0; k < NW; k++)
            wk[k] = XT_K(ce_weights)(w, i, k, n);
        if (fix_c) {
            for (int k = 0; k < NW; k++)
                h[k] = XVD(sub)(XV(widen)(g, k), XVD(mul)(vbc, wk[k]));
            g = XV(narrow)(h);
        }
        if (fix_q) {
            for (int k = 0; k < NW; k++)
                h[k] = XVD(sub)(XV(widen)(g, k),
                                XVD(mul)(XVD(mul)(vbq, wk[k]), XV(widen)(vq, k)));
            g = XV(narrow)(h);
        }
        if (full)
            XV(store)(grad + i, g);
        else
            XV(store_tail)(grad + i, n - i, g);
    }
}
