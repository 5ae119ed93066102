/*
 * Template (algo/instance.h): the fused cross-entropy kernel for class-index
 * targets, XT_K(ce_index), rows of up to XT_CE_FUSED_MAX_COLS classes.
 *
 * The per-row kernels spend more on each row's fixed costs than on its
 * elements when rows are short or medium: a scalar log, the loss formula,
 * struct copies of the partial, calls through the dispatch table. Here
 * the rows go in groups of W (the lane count), and everything after the
 * sums is done for the whole group in double vectors (XT_K(ce_finish)):
 * the log (XT_KD(lse_finish)), the loss, the gradient's coefficients and
 * exp(-ls). The sums themselves are taken in one of two ways:
 *   lane mode (C <= XT_CE_LANE_MAX): one row per lane, the row's elements
 *       fetched column by column with the layer's gather, as the short-row
 *       kernel does (algo/short_rows.h), exps summed in double;
 *   row mode: row by row with the long-row kernel's max and sum of exps
 *       (algo/partial.h), the exps kept in the gradient row.
 * Both give each row's result from that row alone, so the bits do not
 * depend on the grouping or the threads. Rows whose max is not finite or
 * whose sums are NaN, and gradient scales beyond the dtype's range, are
 * marked special and left to the caller's per-row path
 * (_core_ce.pxi), which owns those rules.
 *
 * The formulas are cross_entropy.h's (index targets, class weights w,
 * smoothing e, z-loss lam; ls = lse - max):
 *   loss = (1-e) w_y (ls + (m - x_y)) + (e/C) (W ls - sum_c (x_c - m))
 *          + lam (m + ls)^2
 *   grad = exp(x - m) * a exp(-ls) - gs e/C - [j == y] gs (1-e) w_y,
 *   a = gs ((1-e) w_y + (e/C) W + 2 lam (m + ls)),
 * label smoothing with class weights excepted (the caller keeps that).
 */

/* The finish of WD rows in double vectors: from each row's max m, its
 * log-sum-exp less the max ls, sum of x - m sx (label smoothing), target logit xy, its class weight wy and gradient scale gs,
 * the log-sum-exp less the max ls, the loss, the scale of the exps and
 * the target term by of the gradient (the last two with want_grad). */
typedef struct {
    XVD(v) ls, loss, scale, by;
} XT_K(ce_fin);

XT_ATTR XT_ALWAYS_INLINE static inline XT_K(ce_fin)
    XT_K(ce_finish_vec)(const xt_ce_options *o, int want_grad, XVD(v) m, XVD(v) ls,
                        XVD(v) sx, XVD(v) xy, XVD(v) wy, XVD(v) gs)
{
    const double e = o->smoothing, c = e / (double)o->nclasses;
    const XVD(v) zero = XVD(zero)();
    XT_K(ce_fin) f;
    f.ls = ls;
    f.loss = zero;
    if (e < 1.0) /* with e = 1 the target term is absent, not 0 * inf */
        f.loss = XVD(mul)(XVD(mul)(XVD(set1)(1.0 - e), wy),
                          XVD(add)(f.ls, XVD(sub)(m, xy)));
    if (e > 0.0) /* the operations of xt_ce_index_loss, in its order */
        f.loss = XVD(add)(f.loss,
                          XVD(mul)(XVD(set1)(c),
                                   XVD(sub)(XVD(mul)(XVD(set1)(o->weight_total), f.ls), sx)));
    XVD(v) lse = XVD(add)(m, f.ls);
    if (o->z_loss != 0.0)
        f.loss = XVD(add)(f.loss, XVD(mul)(XVD(mul)(XVD(set1)(o->z_loss), lse), lse));
    f.scale = f.by = zero;
    if (want_grad) {
        /* _index_row_grad_coefs' operations, in its order */
        XVD(v) a = XVD(add)(XVD(mul)(XVD(set1)(1.0 - e), wy), XVD(set1)(c * o->weight_total));
        a = XVD(mul)(gs, XVD(add)(a, XVD(mul)(XVD(set1)(2.0 * o->z_loss), lse)));
        /* ls >= 0, so exp's argument is <= 0 as XT_KD(exp) wants */
        f.scale = XVD(mul)(a, XT_KD(exp)(XVD(sub)(zero, f.ls)));
        f.by = XVD(mul)(XVD(mul)(gs, XVD(set1)(1.0 - e)), wy);
    }
    return f;
}

/* Lanes [k, k + WD) of a group's finish into its arrays. */
XT_ATTR XT_ALWAYS_INLINE static inline void XT_K(ce_finish_store)(XT_K(ce_fin) f, int k,
                                                                   xt_ce_lanes *g)
{
    XVD(store)(g->ls + k, f.ls);
    XVD(store)(g->loss + k, f.loss);
    XVD(store)(g->scale + k, f.scale);
    XVD(store)(g->by + k, f.by);
}

/* The finish of a group held in its arrays (row mode), lanes [0, W). */
XT_ATTR XT_ALWAYS_INLINE static inline void XT_K(ce_finish)(const xt_ce_options *o,
                                                             int want_grad, xt_ce_lanes *g)
{
    enum { W = XV(lanes), WD = XVD(lanes) };
    for (int k = 0; k < W; k += WD)
        XT_K(ce_finish_store)(XT_K(ce_finish_vec)(o, want_grad, XVD(load)(g->m + k),
                                                  XT_KD(lse_finish)(XVD(zero)(),
                                                                    XVD(load)(g->cnt + k),
                                                                    XVD(load)(g->rest + k)),
                                                  XVD(load)(g->sx + k), XVD(load)(g->xy + k),
                                                  XVD(load)(g->wy + k), XVD(load)(g->gs + k)),
                              k, g);
}

/* Is lane l's row one the caller must redo? */
XT_ATTR XT_ALWAYS_INLINE static inline int XT_K(ce_special)(const xt_ce_lanes *g, int l,
                                                             int want_grad)
{
    if (!isfinite(g->m[l]) || !isfinite(g->ls[l]))
        return 1;
    /* a scale T cannot hold: the per-row path takes it in double */
    return want_grad && isfinite(g->scale[l]) && fabs(g->scale[l]) > (double)XT_TMAX;
}

/* One gradient row: grow_j = p_j scale - bc - [j == y] by, p_j the exps
 * exp(x_j - m), held in grow already (have_exp) or taken from the row
 * x itself (in place: x is grow); the product in T as XT_K(scale) and
 * XT_K(expscale) make it, the subtractions in double. */
XT_ATTR XT_ALWAYS_INLINE static inline void XT_K(ce_grad_row)(XT_T *grow, ptrdiff_t C,
                                                              int have_exp, double m,
                                                              double scale, double bc,
                                                              ptrdiff_t y, double by)
{
    if (have_exp)
        XT_K(scale)(grow, C, scale);
    else
        XT_K(expscale)(grow, C, m, scale, grow);
    if (bc != 0.0)
        for (ptrdiff_t j = 0; j < C; j++)
            grow[j] = (XT_T)((double)grow[j] - bc);
    grow[y] = (XT_T)((double)grow[y] - by);
}

/* The per-row inputs of lane l of a group: target logit, class weight,
 * gradient scale (ignored rows: weight 0, their sums benign). */
XT_ATTR XT_ALWAYS_INLINE static inline void XT_K(ce_lane_inputs)(const xt_ce_index_args *a,
                                                                  const double *gscale,
                                                                  const XT_T *row,
                                                                  ptrdiff_t i, long long y,
                                                                  int l, xt_ce_lanes *g)
{
    const double *w = a->o.class_weight;
    g->xy[l] = y >= 0 ? (double)row[y] : 0.0;
    g->wy[l] = y < 0 ? 0.0 : w ? w[y] : 1.0;
    g->gs[l] = gscale ? gscale[i] : a->grad_scale_all;
}

/* Rows [r0, r0 + n) (n <= W) once their lanes are finished: special rows
 * marked, the others' loss and gradient written. exps: the group's exps
 * column by column (lane mode: exps[W j + l]), or NULL (row mode: the
 * exps are in the gradient rows already, or with in_place the gradient
 * rows are the logits). */
XT_ATTR XT_ALWAYS_INLINE static inline ptrdiff_t XT_K(ce_emit)(
    const xt_ce_index_args *a, const long long *target, ptrdiff_t r0, int n,
    const xt_ce_lanes *g, const XT_T *exps, int in_place, double *loss, XT_T *grad,
    unsigned char *special)
{
    enum { W = XV(lanes) };
    const ptrdiff_t C = a->o.nclasses;
    const int want_grad = grad != NULL;
    ptrdiff_t nspecial = 0;
    for (int l = 0; l < n; l++) {
        ptrdiff_t i = r0 + l;
        long long y = target[i];
        special[i] = 0;
        if (y < 0) { /* ignored: no loss, no gradient */
            loss[i] = 0.0;
            if (want_grad)
                for (ptrdiff_t j = 0; j < C; j++)
                    grad[i * C + j] = 0;
            continue;
        }
        if (XT_K(ce_special)(g, l, want_grad)) {
            special[i] = 1;
            nspecial++;
            continue;
        }
        loss[i] = g->loss[l];
        if (!want_grad)
            continue;
        XT_T *grow = grad + i * C;
        if (exps)
            for (ptrdiff_t j = 0; j < C; j++)
                grow[j] = exps[W * j + l];
        XT_K(ce_grad_row)(grow, C, exps || !in_place, g->m[l], g->scale[l],
                          g->gs[l] * (a->o.smoothing / (double)C), (ptrdiff_t)y, g->by[l]);
    }
    return nspecial;
}

/* Row mode: rows [r0, r0 + n), n <= W, one at a time for the sums. */
XT_ATTR XT_ALWAYS_INLINE static inline ptrdiff_t XT_K(ce_rows_by_row)(
    const XT_T *x, ptrdiff_t r0, int n, const long long *target, const double *gscale,
    const xt_ce_index_args *a, double *loss, XT_T *grad, unsigned char *special)
{
    enum { W = XV(lanes) };
    const ptrdiff_t C = a->o.nclasses;
    const int in_place = (const void *)grad == (const void *)x;
    xt_ce_lanes g;
    for (int l = 0; l < W; l++) {
        /* lanes past n, ignored and special rows: values the finish takes
         * without trouble, overwritten or unused after it */
        g.m[l] = 0.0;
        g.cnt[l] = 1.0;
        g.rest[l] = g.sx[l] = g.xy[l] = g.wy[l] = g.gs[l] = 0.0;
        if (l >= n)
            continue;
        ptrdiff_t i = r0 + l;
        const XT_T *row = x + i * C;
        long long y = target[i];
        if (y < 0)
            continue;
        XT_T m = XT_K(max)(row, C);
        if (!isfinite(m)) {
            g.m[l] = (double)m;
            continue;
        }
        XT_K(ce_lane_inputs)(a, gscale, row, i, y, l, &g);
        if (a->o.smoothing > 0.0) {
            double s = 0.0;
            for (ptrdiff_t j = 0; j < C; j++)
                s += (double)row[j] - (double)m;
            g.sx[l] = s;
        }
        /* the exps kept in the gradient row, unless that row is the
         * logits: a special row is redone from them by the caller */
        double nmax;
        g.rest[l] = XT_K(sumexp)(row, C, m, 1, &nmax, grad && !in_place ? grad + i * C : NULL);
        g.m[l] = (double)m;
        g.cnt[l] = nmax;
    }
    XT_K(ce_finish)(&a->o, grad != NULL, &g);
    return XT_K(ce_emit)(a, target, r0, n, &g, NULL, in_place, loss, grad, special);
}

/* Lane mode: the W rows from r0, one per lane (C <= XT_COLUMNS_MAX), every
 * step a vertical vector operation: the columns by the layer's
 * load_columns, the target logit by a select per column, the finish in
 * registers, the losses stored as vectors and the gradient put back in
 * rows by store_columns. A group with a special row (XT_K(ce_special))
 * goes through the arrays and XT_K(ce_emit) instead. */
XT_ATTR XT_ALWAYS_INLINE static inline ptrdiff_t XT_K(ce_rows_by_lane)(
    const XT_T *x, ptrdiff_t r0, const long long *target, const double *gscale,
    const XV(cp) *plan, const xt_ce_index_args *a, double *loss, XT_T *grad,
    unsigned char *special)
{
    enum { W = XV(lanes), NW = XV(lanes) / XVD(lanes), WD = XVD(lanes) };
    const ptrdiff_t C = a->o.nclasses;
    const int smoothing = a->o.smoothing > 0.0, want_grad = grad != NULL;
    const double *w = a->o.class_weight;
    XV(v) v[XT_COLUMNS_MAX];
    XT_T yt[XV(lanes)];
    double wyt[XV(lanes)], gst[XV(lanes)];
    const XT_T *grp = x + r0 * C;
    xt_short_prefetch(grp, W * C * (ptrdiff_t)sizeof(XT_T));
    for (int l = 0; l < W; l++) /* exact in T: -1 <= y < C <= XT_COLUMNS_MAX */
        yt[l] = (XT_T)target[r0 + l];
    const XV(v) zero = XV(zero)(), one = XV(set1)((XT_T)1);
    const XV(v) yv = XV(load)(yt);
    const XV(m) valid = XV(cmp_ge)(yv, zero);
    if (w)
        for (int l = 0; l < W; l++)
            wyt[l] = yt[l] >= 0 ? w[(ptrdiff_t)yt[l]] : 0.0;
    if (gscale)
        for (int l = 0; l < W; l++)
            gst[l] = gscale[r0 + l];
    XV(load_columns)(grp, C, plan, v);
    XV(v) vm = XV(set1)((XT_T)-INFINITY), xy = zero;
    for (ptrdiff_t j = 0; j < C; j++) {
        vm = XV(max)(v[j], vm);
        xy = XV(select)(XV(cmp_eq)(yv, XV(set1)((XT_T)j)), v[j], xy);
    }
    /* The exps of the others are summed in T lanes, at most
     * XT_COLUMNS_MAX - 1 terms, each below 1: as many as each lane of the
     * long-row kernel sums at 512 classes (algo/partial.h), and a fifth of
     * the group's time at 8 classes when widened to double first. */
    XV(v) count = zero, rest = zero;
    XVD(v) sx[NW];
    for (int k = 0; k < NW; k++)
        sx[k] = XVD(zero)();
    for (ptrdiff_t j = 0; j < C; j++) {
        XV(v) d = XV(sub)(v[j], vm);
        XV(m) eq = XV(cmp_eq)(d, zero);
        count = XV(add_where)(count, eq, one);
        XV(v) ej = XV(zero_where)(eq, XT_K(exp)(d));
        if (want_grad) /* exp(x - max), 1 at the maxima */
            v[j] = XV(select)(eq, one, ej);
        rest = XV(add)(rest, ej);
        if (smoothing)
            for (int k = 0; k < NW; k++)
                sx[k] = XVD(add)(sx[k], XV(widen)(d, k));
    }
    XT_K(ce_fin) f[NW];
    int ok = 1;
    const XV(v) wyv = XV(select)(valid, one, zero);
    /* ls in T lanes: the float32 log is half the double one's cost for
     * twice the lanes; its ulp (of ls <= log 16) is below the float32
     * loss's own rounding */
    const XV(v) ls = XT_K(lse_finish)(zero, count, rest);
    for (int k = 0; k < NW; k++) {
        XVD(v) m = XV(widen)(vm, k);
        f[k] = XT_K(ce_finish_vec)(&a->o, want_grad, m, XV(widen)(ls, k), sx[k],
                                   XV(widen)(xy, k),
                                   w ? XVD(load)(wyt + k * WD) : XV(widen)(wyv, k),
                                   gscale ? XVD(load)(gst + k * WD)
                                          : XVD(set1)(a->grad_scale_all));
        /* m + ls is finite only when both are (NaN and inf rows are
         * special), and a scale T rounds to inf is left to the caller */
        XVD(v) t = XVD(add)(m, f[k].ls);
        ok &= XVD(all)(XVD(cmp_eq)(XVD(sub)(t, t), XVD(zero)()));
        if (want_grad)
            ok &= XVD(all)(XVD(cmp_lt)(XVD(max)(f[k].scale, XVD(sub)(XVD(zero)(), f[k].scale)),
                                       XVD(set1)((double)XT_TMAX)));
    }
    if (!ok) {
        XT_T exps[XT_COLUMNS_MAX * XV(lanes)];
        xt_ce_lanes g;
        for (int k = 0; k < NW; k++) {
            XVD(store)(g.m + k * WD, XV(widen)(vm, k));
            XVD(store)(g.gs + k * WD, gscale ? XVD(load)(gst + k * WD)
                                               : XVD(set1)(a->grad_scale_all));
            XT_K(ce_finish_store)(f[k], k * WD, &g);
        }
        for (ptrdiff_t j = 0; j < C; j++)
            XV(store)(exps + W * j, v[j]);
        return XT_K(ce_emit)(a, target, r0, W, &g, want_grad ? exps : NULL, 0, loss, grad,
                             special);
    }
    const XVD(v) dvalid_zero = XVD(zero)();
    for (int k = 0; k < NW; k++) {
        /* ignored rows: loss 0 (the smoothing term would not be) */
        XVD(m) dv = XVD(cmp_ge)(XV(widen)(yv, k), dvalid_zero);
        XVD(store)(loss + r0 + k * WD, XVD(select)(dv, f[k].loss, dvalid_zero));
    }
    for (int l = 0; l < W; l++)
        special[r0 + l] = 0;
    if (!want_grad)
        return 0;
    /* grad_j = e_j scale - bc - [j == y] by, as XT_K(ce_grad_row) makes
     * it: the product in T, the subtractions in double; ignored rows 0 */
    XVD(v) scale[NW], by[NW], bc[NW], yd[NW];
    for (int k = 0; k < NW; k++) {
        scale[k] = f[k].scale;
        by[k] = f[k].by;
        bc[k] = XVD(mul)(gscale ? XVD(load)(gst + k * WD) : XVD(set1)(a->grad_scale_all),
                         XVD(set1)(a->o.smoothing / (double)C));
        yd[k] = XV(widen)(yv, k);
    }
    const XV(v) vscale = XV(narrow)(scale);
    for (ptrdiff_t j = 0; j < C; j++) {
        XV(v) gj = XV(mul)(v[j], vscale);
        XVD(v) h[NW];
        if (smoothing) { /* rounded to T in between, as the per-row map does */
            for (int k = 0; k < NW; k++)
                h[k] = XVD(sub)(XV(widen)(gj, k), bc[k]);
            gj = XV(narrow)(h);
        }
        for (int k = 0; k < NW; k++) {
            h[k] = XV(widen)(gj, k);
            XVD(m) at_y = XVD(cmp_eq)(yd[k], XVD(set1)((double)j));
            h[k] = XVD(select)(at_y, XVD(sub)(h[k], by[k]), h[k]);
        }
        v[j] = XV(select)(valid, XV(narrow)(h), zero);
    }
    XV(store_columns)(grad + r0 * C, C, plan, v);
    return 0;
}

XT_ATTR static ptrdiff_t XT_K(ce_index)(const XT_T *x, ptrdiff_t nrows, const long long *target,
                                        const double *gscale, const xt_ce_index_args *a, double *loss, XT_T *grad,
                                        unsigned char *special)
{
    enum { W = XV(lanes) };
    const ptrdiff_t C = a->o.nclasses;
    ptrdiff_t r0 = 0, nspecial = 0;
    if (C <= XT_CE_LANE_MAX && nrows >= W) {
        XV(cp) plan;
        XV(columns_plan)(C, &plan);
        for (; r0 + W <= nrows; r0 += W)
            nspecial += XT_K(ce_rows_by_lane)(x, r0, target, gscale, &plan, a, loss, grad,
                                              special);
    }
    for (; r0 < nrows; r0 += W) {
        int n = nrows - r0 < W ? (int)(nrows - r0) : W;
        nspecial += XT_K(ce_rows_by_row)(x, r0, n, target, gscale, a, loss, grad, special);
    }
    return nspecial;
}
