/*
 * Template (algo/instance.h): the fused cross-entropy kernel for class-index
 * targets, XT_K(ce_index), rows of up to XT_CE_FUSED_MAX_COLS classes.
 *
 * The per-row kernels spend more on each row's fixed costs than on its
 * elements when rows are short or medium: horizontal reductions, a scalar
 * log, the loss formula, struct copies of the partial, calls through the
 * dispatch table (about 220 cycles a row at 100 classes). Here rows go in
 * groups of W (the lane count), and each group ends as vectors with one
 * row per lane: max, count of maxima and sum of the other exps, target
 * logit. From there XT_K(ce_group) does everything in vectors: the log
 * (XT_K(lse_finish), in T lanes; in double for row mode's rows from
 * XT_ROW_DOUBLE_LOG_COLS classes), the loss and the gradient's coefficients
 * in double, exp(-ls), the losses stored as vectors. The group's vectors
 * are made in one of two ways:
 *   lane mode (XT_K(by_lanes)): the group's W C elements as C column
 *       vectors (the layer's load_columns), every step vertical, the
 *       gradient put back in rows by store_columns;
 *   row mode: each row by vectors along it (the long-row kernel's max and
 *       a sum of exps), the W rows' lane partials reduced at once (the
 *       layer's hmax_many, hsum_many), the exps kept in the gradient rows.
 * Each row's result depends on that row alone, so the bits do not depend
 * on the grouping or the threads. A group holding a row whose max is not
 * finite or whose sums are NaN, or a gradient scale beyond T's range,
 * goes through XT_K(ce_emit), which leaves those rows to the caller's
 * per-row path (_core_ce.pxi: special[i] = 1), the owner of those rules.
 *
 * The formulas are cross_entropy.h's (index targets, class weights w,
 * smoothing e, z-loss lam; ls = lse - max):
 *   loss = (1-e) w_y (ls + (m - x_y)) + (e/C) (W ls - sum_c (x_c - m))
 *          + lam (m + ls)^2
 *   grad = exp(x - m) * a exp(-ls) - gs e/C - [j == y] gs (1-e) w_y,
 *   a = gs ((1-e) w_y + (e/C) W + 2 lam (m + ls)),
 * label smoothing with class weights excepted (the caller keeps that).
 */

/* What the finish gives for WD rows, in double vectors. */
typedef struct {
    XVD(v) ls, loss, scale, by;
} XT_K(ce_fin);

/* The finish of WD rows: from each row's max m, log-sum-exp less the max
 * ls, sum of x - m sx (label smoothing), target logit xy, its class
 * weight wy and gradient scale gs, the loss, the scale of the exps and
 * the target term by of the gradient (the last two with want_grad). The
 * operations of xt_ce_index_loss and _index_row_grad_coefs, in their
 * order. With unit_w (no class weights) wy is 1 for every row the caller
 * keeps (an ignored row's loss and gradient are zeroed after), and the
 * products by it and by 1 - e = 1 are left out, as are the z-loss terms
 * when lam = 0: the same bits (float32, 1 thread, in cache: forward +6%
 * at 2 classes, +4% at 3; forward+gradient +12% at 2, +4% at 8). */
XT_ATTR XT_ALWAYS_INLINE static inline XT_K(ce_fin)
    XT_K(ce_finish)(const xt_ce_consts *k, int want_grad, int unit_w, XVD(v) m, XVD(v) ls,
                    XVD(v) sx, XVD(v) xy, XVD(v) wy, XVD(v) gs, XVD(v) inv)
{
    const double e = k->e, c = k->c;
    const XVD(v) zero = XVD(zero)();
    /* (1 - e) w_y */
    const XVD(v) tw = unit_w    ? XVD(set1)(k->one_e)
                      : e == 0.0 ? wy
                                 : XVD(mul)(XVD(set1)(k->one_e), wy);
    XT_K(ce_fin) f;
    f.ls = ls;
    f.loss = zero;
    if (e < 1.0) { /* with e = 1 the target term is absent, not 0 * inf */
        f.loss = XVD(add)(ls, XVD(sub)(m, xy));
        if (!(unit_w && e == 0.0))
            f.loss = XVD(mul)(tw, f.loss);
    }
    if (e > 0.0)
        f.loss = XVD(add)(f.loss,
                          XVD(mul)(XVD(set1)(c),
                                   XVD(sub)(XVD(mul)(XVD(set1)(k->weight_total), ls), sx)));
    const XVD(v) lse = XVD(add)(m, ls);
    if (k->z_loss != 0.0)
        f.loss = XVD(add)(f.loss, XVD(mul)(XVD(mul)(XVD(set1)(k->z_loss), lse), lse));
    f.scale = f.by = zero;
    if (want_grad) {
        XVD(v) a = XVD(add)(tw, XVD(set1)(k->c_total));
        if (k->z_loss != 0.0)
            a = XVD(add)(a, XVD(mul)(XVD(set1)(k->z_loss2), lse));
        a = XVD(mul)(gs, a);
        /* exp(-ls) = 1 / S, S the row's sum of exps: in double from the
         * sum itself, where a double exp of the float ls cost 8% of the
         * samples of forward+gradient at 8 classes (and carried ls's
         * float rounding) */
        f.scale = XVD(mul)(a, inv);
        f.by = XVD(mul)(gs, tw);
    }
    return f;
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
 * exp(x_j - m): src holds them (src_is_exp; src may be grow), or src is
 * the row x itself (in place: x is grow); the product in T as XT_K(scale)
 * and XT_K(expscale) make it, the subtractions in double. */
XT_ATTR XT_ALWAYS_INLINE static inline void XT_K(ce_grad_row)(XT_T *grow, ptrdiff_t C,
                                                              const XT_T *src, int src_is_exp,
                                                              double m, double scale,
                                                              double bc, ptrdiff_t y,
                                                              double by)
{
    if (src_is_exp)
        XT_K(map)(src, C, 0.0, scale, grow, XT_MAP_SCALE);
    else
        XT_K(expscale)(src, C, m, scale, grow);
    if (bc != 0.0)
        for (ptrdiff_t j = 0; j < C; j++)
            grow[j] = (XT_T)((double)grow[j] - bc);
    grow[y] = (XT_T)((double)grow[y] - by);
}

/* Rows [r0, r0 + n) of a group with a special row, row by row: special
 * rows marked, the others' loss and gradient written. exps: the group's
 * exps column by column (lane mode: exps[W j + l]), or NULL (row mode:
 * the exps are in the gradient rows already, or with in_place the
 * gradient rows are the logits). */
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
        XT_K(ce_grad_row)(grow, C, grow, exps || !in_place, g->m[l], g->scale[l],
                          g->gs[l] * (a->o.smoothing / (double)C), (ptrdiff_t)y, g->by[l]);
    }
    return nspecial;
}

/* A group's rows as vectors, one row per lane (lanes past the group's
 * rows: y -1, m 0, count 1, rest 0). */
typedef struct {
    XV(v) y;      /* class index, -1 for an ignored row (exact in T) */
    XV(v) m;      /* max */
    XV(v) count;  /* how many elements equal the max */
    XV(v) rest;   /* sum of the other elements' exp(x - m) */
    XV(v) xy;     /* target logit (0 for an ignored row) */
    XV(v) ls;     /* log-sum-exp less the max: XT_K(ce_rows_ls) */
    XVD(v) sx[XV(lanes) / XVD(lanes)];  /* sum of x - m (label smoothing) */
} XT_K(ce_rows);

/* g->ls from g's count and rest. In T lanes: the float32 log costs half
 * the double one for twice the lanes; its error is about an ulp of ls,
 * ls <= log C (which row mode's longer rows avoid: XT_ROW_DOUBLE_LOG_COLS,
 * ce_options.h). */
XT_ATTR XT_ALWAYS_INLINE static inline void XT_K(ce_rows_ls)(XT_K(ce_rows) *g)
{
    g->ls = XT_K(lse_finish)(XV(zero)(), g->count, g->rest);
}

/* The losses' running sums (a->loss_total): acc[j] lane l sums the rows
 * r with r mod 8 = WD j + l, in order (every layer's WD divides 8); all is
 * cleared when a group goes row by row, whose losses the caller sums. */
typedef struct {
    XVD(v) acc[8 / XVD(lanes)];
    int all;
} XT_K(ce_sum);

/* The group's finish (f: per WD lanes) and, when no row is special, its
 * losses into loss[r0 : r0 + n), added to sum (or NULL) when the group is
 * whole; returns whether none is. lsd: the rows' ls in double (row mode),
 * or NULL for g->ls widened. */
XT_ATTR XT_ALWAYS_INLINE static inline int XT_K(ce_group)(const xt_ce_index_args *a,
                                                          const xt_ce_consts *kc,
                                                          const double *gscale, ptrdiff_t r0,
                                                          int n, const XT_K(ce_rows) *g,
                                                          const XVD(v) *lsd,
                                                          int want_grad, XT_K(ce_fin) *f,
                                                          double *loss, unsigned char *special,
                                                          XT_K(ce_sum) *sum)
{
    enum { W = XV(lanes), NW = XV(lanes) / XVD(lanes), WD = XVD(lanes) };
    const double *w = a->o.class_weight;
    const XV(v) zero = XV(zero)();
    XT_T yt[XV(lanes)];
    double wyt[XV(lanes)], gst[XV(lanes)], lt[XV(lanes)];
    if (w) {
        XV(store)(yt, g->y);
        for (int l = 0; l < W; l++)
            wyt[l] = yt[l] >= 0 ? w[(ptrdiff_t)yt[l]] : 0.0;
    }
    if (gscale)
        for (int l = 0; l < W; l++)
            gst[l] = l < n ? gscale[r0 + l] : 0.0;
    const XV(v) ls = g->ls;
    /* m + ls is finite only when both are (rows with NaN, +inf or no
     * finite logit are special; in T it cannot overflow, ls being at most
     * log C), and a scale T would round to inf is left to the per-row
     * path */
    const XV(v) t = XV(add)(g->m, ls);
    int ok = XV(all)(XV(cmp_eq)(XV(sub)(t, t), zero));
    for (int k = 0; k < NW; k++) {
        XVD(v) m = XV(widen)(g->m, k);
        f[k] = XT_K(ce_finish)(kc, want_grad, w == NULL, m,
                               lsd ? lsd[k] : XV(widen)(ls, k), g->sx[k],
                               XV(widen)(g->xy, k),
                               w ? XVD(load)(wyt + k * WD) : XVD(zero)(),
                               gscale ? XVD(load)(gst + k * WD)
                                      : XVD(set1)(kc->grad_scale_all),
                               want_grad ? XVD(div)(XVD(set1)(1.0),
                                                    XVD(add)(XV(widen)(g->count, k),
                                                             XV(widen)(g->rest, k)))
                                         : XVD(zero)());
        if (want_grad)
            ok &= XVD(all)(XVD(cmp_lt)(XVD(max)(f[k].scale, XVD(sub)(XVD(zero)(), f[k].scale)),
                                       XVD(set1)((double)XT_TMAX)));
    }
    if (!ok) {
        if (sum)
            sum->all = 0;
        return 0;
    }
    for (int k = 0; k < NW; k++) {
        /* ignored rows: loss 0 (the smoothing term would not be) */
        XVD(m) dv = XVD(cmp_ge)(XV(widen)(g->y, k), XVD(zero)());
        XVD(v) lk = XVD(select)(dv, f[k].loss, XVD(zero)());
        if (n == W) {
            XVD(store)(loss + r0 + k * WD, lk);
            if (sum) {
                XVD(v) *acc = &sum->acc[(r0 + k * WD) % 8 / WD];
                *acc = XVD(add)(*acc, lk);
            }
        } else {
            XVD(store)(lt + k * WD, lk);
        }
    }
    if (n < W)
        for (int l = 0; l < n; l++)
            loss[r0 + l] = lt[l];
    memset(special + r0, 0, (size_t)n);
    return 1;
}

/* A group with a special row: its finish into the arrays XT_K(ce_emit)
 * reads, and the rows written (or left) one by one. */
XT_ATTR static ptrdiff_t XT_K(ce_group_by_row)(const xt_ce_index_args *a,
                                                const long long *target,
                                                const double *gscale, ptrdiff_t r0, int n,
                                                XV(v) m, const XT_K(ce_fin) *f,
                                                const XT_T *exps, int in_place, double *loss,
                                                XT_T *grad, unsigned char *special)
{
    enum { W = XV(lanes), NW = XV(lanes) / XVD(lanes), WD = XVD(lanes) };
    xt_ce_lanes g;
    for (int k = 0; k < NW; k++) {
        XVD(store)(g.m + k * WD, XV(widen)(m, k));
        XVD(store)(g.ls + k * WD, f[k].ls);
        XVD(store)(g.loss + k * WD, f[k].loss);
        XVD(store)(g.scale + k * WD, f[k].scale);
        XVD(store)(g.by + k * WD, f[k].by);
    }
    for (int l = 0; l < W; l++)
        g.gs[l] = gscale && l < n ? gscale[r0 + l] : a->grad_scale_all;
    return XT_K(ce_emit)(a, target, r0, n, &g, exps, in_place, loss, grad, special);
}

/* The class indices target[r0 : r0 + n) as a vector of T, -1 past n. */
XT_ATTR XT_ALWAYS_INLINE static inline XV(v) XT_K(ce_targets)(const long long *target,
                                                               ptrdiff_t r0, int n)
{
    /* exact: -1 <= y < C <= 2^24 */
    if (n == XV(lanes))
        return XV(load_index)(target + r0);
    XT_T yt[XV(lanes)];
    for (int l = 0; l < XV(lanes); l++)
        yt[l] = l < n ? (XT_T)target[r0 + l] : (XT_T)-1;
    return XV(load)(yt);
}

/* Lane mode, in two steps over blocks of XT_CE_LANE_BLOCK groups: first
 * each group's vectors (XT_K(ce_lane_sums)), then each group's finish and
 * outputs (XT_K(ce_lane_out)). One step after the other for a whole block
 * lets the CPU overlap the groups: a group's finish is one long chain of
 * dependent operations (the log above all), which one group at a time
 * left waiting (perf: the log's operations took a third of the time at
 * 2 classes). */
#define XT_CE_LANE_BLOCK 8
/* The target logits: up to this many classes by a compare and a select
 * per column; past it by scalar loads from the rows, which run beside the
 * vector work (float32, 1 thread, 2^20 elements: at 32 classes 6% faster,
 * at 2-5 classes 7% slower) */
#define XT_CE_XY_BY_COLUMNS 16
/* vectors of exps a block keeps for the gradient (>= XT_COLUMNS_MAX) */
#define XT_CE_LANE_EXPS 128
/* the same when the gradient comes from memory (a->grad_big): each of a
 * block's stores waits for its line, and 128 vector stores in a row (8
 * KB, 8 groups of 16 float32 classes) held up the work after them, where
 * 32 overlap with it (ce_options.h, XT_CE_GRAD_BIG_BYTES:
 * float32 forward+gradient at 2^23 elements, 2 threads: 10 classes 1.96
 * -> 2.16 G/s, 16 1.89 -> 2.30, 24 1.85 -> 2.36; 8 and below even; float64
 * 8-10 classes +7-9%, 16 -3%; AVX2 even) */
#define XT_CE_LANE_EXPS_BIG 32

/* The W rows from r0 as vectors (C <= XT_COLUMNS_MAX); their exps (1 at
 * the maxima) in cols when want_grad. */
XT_ATTR XT_ALWAYS_INLINE static inline void XT_K(ce_lane_sums)(
    const XT_T *x, ptrdiff_t r0, const long long *target, const XV(cp) *plan, ptrdiff_t C,
    int smoothing, int want_grad, XT_K(ce_rows) *g, XV(v) *cols)
{
    enum { W = XV(lanes), NW = XV(lanes) / XVD(lanes) };
    XV(v) v[XT_COLUMNS_MAX];
    const XT_T *grp = x + r0 * C;
    /* the group 4 KB ahead, and its targets 1 KB ahead (C = 2, 8 and 32
     * at N C = 2^23, past L3: 0.69-0.92, 1.8-2.2, 2.6-2.7 G/s without,
     * 0.91-0.92, 2.4, 2.6-2.9 with) */
    XT_PREFETCH_SPAN(grp, W * C * (ptrdiff_t)sizeof(XT_T));
    __builtin_prefetch((const void *)((uintptr_t)(target + r0) + 1024), 0, 3);
    g->y = XT_K(ce_targets)(target, r0, W);
    XV(load_columns)(grp, C, plan, v);
    if (C <= XT_CE_XY_BY_COLUMNS) {
        g->xy = XV(zero)();
        for (ptrdiff_t j = 0; j < C; j++)
            g->xy = XV(select)(XV(cmp_eq)(g->y, XV(set1)((XT_T)j)), v[j], g->xy);
    } else {
        XT_T xyt[XV(lanes)];
        for (int l = 0; l < W; l++) {
            long long y = target[r0 + l];
            XT_T t = grp[l * C + (y >= 0 ? y : 0)];
            xyt[l] = y >= 0 ? t : (XT_T)0;
        }
        g->xy = XV(load)(xyt);
    }
    XT_K(lane_stats)(v, C, &g->m, &g->count, &g->rest, want_grad ? cols : NULL);
    for (int k = 0; k < NW; k++)
        g->sx[k] = XVD(zero)();
    if (smoothing)
        for (ptrdiff_t j = 0; j < C; j++)
            for (int k = 0; k < NW; k++)
                /* x - m in double: in T it overflows for extreme logits */
                g->sx[k] = XVD(add)(g->sx[k],
                                    XVD(sub)(XV(widen)(v[j], k), XV(widen)(g->m, k)));
}

/* The finish and outputs of the group from r0, from its vectors g and
 * exps cols (want_grad). */
XT_ATTR XT_ALWAYS_INLINE static inline ptrdiff_t XT_K(ce_lane_out)(
    const XT_K(ce_rows) *g, XV(v) *cols, ptrdiff_t r0, const long long *target,
    const double *gscale, const XV(cp) *plan, const xt_ce_index_args *a,
    const xt_ce_consts *kc, ptrdiff_t C, double *loss, XT_T *grad, unsigned char *special,
    XT_K(ce_sum) *sum)
{
    enum { W = XV(lanes), NW = XV(lanes) / XVD(lanes) };
    const int smoothing = a->o.smoothing > 0.0, want_grad = grad != NULL;
    const XV(v) zero = XV(zero)();
    XT_K(ce_fin) f[NW];
    if (!XT_K(ce_group)(a, kc, gscale, r0, W, g, NULL, want_grad, f, loss, special, sum)) {
        XT_T exps[XT_COLUMNS_MAX * XV(lanes)];
        if (want_grad)
            for (ptrdiff_t j = 0; j < C; j++)
                XV(store)(exps + W * j, cols[j]);
        return XT_K(ce_group_by_row)(a, target, gscale, r0, W, g->m, f,
                                     want_grad ? exps : NULL, 0, loss, grad, special);
    }
    if (!want_grad)
        return 0;
    /* grad_j = e_j scale - bc - [j == y] by, as XT_K(ce_grad_row) makes
     * it: the product in T, the subtractions in double; ignored rows 0 */
    XVD(v) scale[NW], bc[NW];
    for (int k = 0; k < NW; k++) {
        scale[k] = f[k].scale;
        bc[k] = XVD(zero)();
    }
    if (smoothing) {
        double bct[XV(lanes)];
        for (int l = 0; l < W; l++)
            bct[l] = (gscale ? gscale[r0 + l] : kc->grad_scale_all) * kc->c;
        for (int k = 0; k < NW; k++)
            bc[k] = XVD(load)(bct + k * XVD(lanes));
    }
    const XV(m) valid = XV(cmp_ge)(g->y, zero);
    const XV(v) vscale = XV(narrow)(scale);
    /* The gradient's columns over the exps, in place: a separate array
     * on the stack can sit 4 KB apart from the exps, and then its stores
     * hold up the next column's load (4K aliasing). The target terms in
     * the columns, before the rows are stored: each row's target element
     * picked out of its column as the columns are made, less by in
     * double, and put back (a scalar fix-up of each row once the block
     * was stored took 7% of forward+gradient's samples at 8 classes).
     * Ignored rows (y = -1) match no column. */
    XV(v) gy = zero;
    for (ptrdiff_t j = 0; j < C; j++) {
        XV(v) gj = XV(mul)(cols[j], vscale);
        if (smoothing) { /* rounded to T in between, as the per-row map does */
            XVD(v) h[NW];
            for (int k = 0; k < NW; k++)
                h[k] = XVD(sub)(XV(widen)(gj, k), bc[k]);
            gj = XV(narrow)(h);
        }
        cols[j] = XV(select)(valid, gj, zero);
        gy = XV(select)(XV(cmp_eq)(g->y, XV(set1)((XT_T)j)), cols[j], gy);
    }
    XVD(v) h[NW];
    for (int k = 0; k < NW; k++)
        h[k] = XVD(sub)(XV(widen)(gy, k), f[k].by);
    gy = XV(narrow)(h);
    for (ptrdiff_t j = 0; j < C; j++)
        cols[j] = XV(select)(XV(cmp_eq)(g->y, XV(set1)((XT_T)j)), gy, cols[j]);
    XV(store_columns)(grad + r0 * C, C, plan, cols);
    return 0;
}

/* Lane mode over the whole groups of rows [0, nrows): returns the rows
 * done (a multiple of W). */
XT_ATTR XT_ALWAYS_INLINE static inline ptrdiff_t XT_K(ce_by_lane)(
    const XT_T *x, ptrdiff_t nrows, const long long *target, const double *gscale,
    const xt_ce_index_args *a, const xt_ce_consts *kc, ptrdiff_t C, double *loss, XT_T *grad,
    unsigned char *special, ptrdiff_t *nspecial, XT_K(ce_sum) *sum)
{
    enum { W = XV(lanes), B = XT_CE_LANE_BLOCK };
    const int smoothing = a->o.smoothing > 0.0, want_grad = grad != NULL;
    XV(cp) plan;
    XT_K(ce_rows) g[XT_CE_LANE_BLOCK];
    /* the block's exps (gradient only), packed: 8 KB, so they stay in L1
     * with the rows (32 KB of them spread over the stack cost the
     * gradient a quarter of its speed at 32 classes) */
    XV(v) cols[XT_CE_LANE_EXPS];
    const ptrdiff_t nexps = a->grad_big ? XT_CE_LANE_EXPS_BIG : XT_CE_LANE_EXPS;
    const int blk = !want_grad         ? B
                    : C * B <= nexps   ? B
                    : C <= nexps       ? (int)(nexps / C)
                                       : 1;
    XV(columns_plan)(C, &plan);
    ptrdiff_t r0 = 0;
    while (r0 + W <= nrows) {
        int nb = 0;
        for (; nb < blk && r0 + (nb + 1) * W <= nrows; nb++)
            XT_K(ce_lane_sums)(x, r0 + nb * W, target, &plan, C, smoothing, want_grad, &g[nb],
                               cols + (want_grad ? nb * C : 0));
        /* the block's logs together, before its outputs: each is one long
         * chain of dependent operations, which the CPU overlaps only with
         * what is near it (float32, 2 classes: the log was a third of the
         * kernel's samples, most on the chain's last operations) */
        for (int b = 0; b < nb; b++)
            XT_K(ce_rows_ls)(&g[b]);
        for (int b = 0; b < nb; b++)
            *nspecial += XT_K(ce_lane_out)(&g[b], cols + (want_grad ? b * C : 0), r0 + b * W,
                                           target, gscale, &plan, a, kc, C, loss, grad,
                                           special, sum);
        r0 += nb * W;
    }
    return r0;
}

/* Lane mode's leftover rows [r0, nrows), fewer than W (the last nrows mod
 * W of an array, or all of a short one), as one whole group: copied with
 * their targets and gradient scales into a group padded with rows of
 * zeros and ignored targets (XT_K(lane_pad)), their losses, flags and
 * gradient rows copied back; returns the special rows. Every lane's
 * arithmetic is its own, so a row gets the same bits here as inside a
 * longer array (row mode, which took them before, sums in another order:
 * rows at 4, 9 and 17 classes called in pieces of 7 differed in their
 * last bit). Out of line, C not a constant: the same operations in the
 * same order as XT_K(ce_by_lane)'s instances; made in there, the padded
 * group's pointers chosen group by group cost 16% of float32 forward at
 * 16 classes. The caller adds the losses to its sums. */
XT_ATTR static ptrdiff_t XT_K(ce_lane_leftover)(const XT_T *x, ptrdiff_t r0, ptrdiff_t nrows,
                                                const long long *target,
                                                const double *gscale,
                                                const xt_ce_index_args *a,
                                                const xt_ce_consts *kc, double *loss,
                                                XT_T *grad, unsigned char *special,
                                                XT_K(ce_sum) *sum)
{
    enum { W = XV(lanes) };
    const ptrdiff_t C = a->o.nclasses, n = nrows - r0;
    const int want_grad = grad != NULL;
    XT_T xp[XV(lanes) * XT_COLUMNS_MAX];
    XV(v) cols[XT_COLUMNS_MAX];
    long long tp[XV(lanes)];
    double gsp[XV(lanes)], lp[XV(lanes)];
    unsigned char sp[XV(lanes)];
    XV(cp) plan;
    XT_K(ce_rows) g;
    XT_K(ce_sum) sum_p; /* the group's own, only its .all read */
    for (int j = 0; j < 8 / XVD(lanes); j++)
        sum_p.acc[j] = XVD(zero)();
    sum_p.all = 1;
    XT_K(lane_pad)(x + r0 * C, (int)n, C, xp);
    for (int l = 0; l < W; l++) {
        tp[l] = l < n ? target[r0 + l] : -1;
        gsp[l] = gscale && l < n ? gscale[r0 + l] : 0.0;
    }
    XV(columns_plan)(C, &plan);
    XT_K(ce_lane_sums)(xp, 0, tp, &plan, C, a->o.smoothing > 0.0, want_grad, &g, cols);
    XT_K(ce_rows_ls)(&g);
    /* the gradient into xp itself: its rows are all in cols by now */
    const ptrdiff_t nspecial =
        XT_K(ce_lane_out)(&g, cols, 0, tp, gscale ? gsp : NULL, &plan, a, kc, C, lp,
                          want_grad ? xp : NULL, sp, &sum_p);
    memcpy(loss + r0, lp, (size_t)n * sizeof(double));
    memcpy(special + r0, sp, (size_t)n);
    /* a special row's gradient row stays the caller's (grad may be x,
     * from which it redoes the row) */
    if (want_grad)
        for (int l = 0; l < n; l++)
            if (!sp[l])
                memcpy(grad + (r0 + l) * C, xp + l * C, (size_t)C * sizeof(XT_T));
    if (sum && !sum_p.all)
        sum->all = 0;
    return nspecial;
}

/* Row mode: rows [r0, r0 + n), n <= W. */
XT_ATTR XT_ALWAYS_INLINE static inline ptrdiff_t XT_K(ce_rows_by_row)(
    const XT_T *x, ptrdiff_t r0, int n, const long long *target, const double *gscale,
    const xt_ce_index_args *a, const xt_ce_consts *kc, double *loss, XT_T *grad,
    unsigned char *special, XT_K(ce_sum) *sum)
{
    enum { W = XV(lanes), NW = XV(lanes) / XVD(lanes), WD = XVD(lanes) };
    const ptrdiff_t C = a->o.nclasses;
    const int in_place = (const void *)grad == (const void *)x, want_grad = grad != NULL;
    XT_T mt[XV(lanes)], xyt[XV(lanes)];
    double sxt[XV(lanes)];
    XT_K(ce_rows) g;
    /* The exps kept in a scratch group while it is small (XT_CE_STASH_BYTES),
     * and the gradient rows written once from it; else in the gradient
     * rows, rescaled there; when those rows are the logits (a special row
     * is redone from them by the caller), in the scratch group while one
     * fits half of L1, else taken again from the logits (the linear
     * layer's blocks are in place: float64, 50 classes, one exp per element
     * instead of two). */
    XT_T stash[XT_CE_GROUP_BYTES / sizeof(XT_T)];
    const ptrdiff_t bytes = W * C * (ptrdiff_t)sizeof(XT_T);
    const int stashed = want_grad && (in_place ? bytes <= XT_CE_GROUP_BYTES
                                               : bytes < XT_CE_STASH_BYTES);
    XT_T *exps = !want_grad ? NULL : stashed ? stash : !in_place ? grad + r0 * C : NULL;
    XT_K(row_stats)(x + r0 * C, 0, n, C, exps, &g.m, &g.count, &g.rest, mt);
    for (int l = 0; l < W; l++) {
        const XT_T *row = x + (r0 + l) * C;
        long long y = l < n ? target[r0 + l] : -1;
        xyt[l] = y >= 0 ? row[y] : 0;
        sxt[l] = 0.0;
        if (l < n && a->o.smoothing > 0.0 && isfinite(mt[l]))
            for (ptrdiff_t j = 0; j < C; j++)
                sxt[l] += (double)row[j] - (double)mt[l];
    }
    g.y = XT_K(ce_targets)(target, r0, n);
    g.xy = XV(load)(xyt);
    /* ls in T lanes, or by the double log from XT_ROW_DOUBLE_LOG_COLS
     * classes (ce_options.h) */
    XVD(v) lsd[NW];
    const int ls_double = C >= XT_ROW_DOUBLE_LOG_COLS;
    if (ls_double)
        g.ls = XT_K(ls_double)(g.count, g.rest, lsd);
    else
        XT_K(ce_rows_ls)(&g);
    for (int k = 0; k < NW; k++)
        g.sx[k] = XVD(load)(sxt + k * WD);
    XT_K(ce_fin) f[NW];
    if (!XT_K(ce_group)(a, kc, gscale, r0, n, &g, ls_double ? lsd : NULL, want_grad, f, loss,
                        special, sum)) {
        /* row by row: the exps where XT_K(ce_emit) looks for them */
        if (stashed && !in_place)
            memcpy(grad + r0 * C, stash, (size_t)(n * C) * sizeof(XT_T));
        return XT_K(ce_group_by_row)(a, target, gscale, r0, n, g.m, f, NULL, in_place, loss,
                                     grad, special);
    }
    if (!want_grad)
        return 0;
    double st[XV(lanes)], byt[XV(lanes)];
    for (int k = 0; k < NW; k++) {
        XVD(store)(st + k * WD, f[k].scale);
        XVD(store)(byt + k * WD, f[k].by);
    }
    for (int l = 0; l < n; l++) {
        ptrdiff_t i = r0 + l;
        XT_T *grow = grad + i * C;
        if (target[i] < 0) {
            for (ptrdiff_t j = 0; j < C; j++)
                grow[j] = 0;
            continue;
        }
        double gs = gscale ? gscale[i] : kc->grad_scale_all;
        XT_K(ce_grad_row)(grow, C, exps ? exps + l * C : grow, exps != NULL, (double)mt[l],
                          st[l], gs * kc->c, (ptrdiff_t)target[i],
                          byt[l]);
    }
    return 0;
}

/* Lane mode over all rows [0, nrows) of 1 or more than XT_SMALL_C_MAX
 * classes (returns nrows, the special rows counted in *nspecial): the whole groups
 * by XT_K(ce_by_lane), C a constant to 32 (XT_WIDE_C_SWITCH), the rest by
 * XT_K(ce_lane_leftover). Out of line (simd/common.h says why). */
XT_ATTR __attribute__((noinline)) static ptrdiff_t XT_K(ce_lanes_wide)(
    const XT_T *x, ptrdiff_t nrows, const long long *target, const double *gscale,
    const xt_ce_index_args *a, const xt_ce_consts *kcp, double *loss, XT_T *grad,
    unsigned char *special, ptrdiff_t *nspecial, XT_K(ce_sum) *sp)
{
    const ptrdiff_t C = a->o.nclasses;
    /* local copies, which no store of the kernel's can reach
     * (xt_ce_consts), the sums and the count written back at the end */
    const xt_ce_consts kc = *kcp;
    XT_K(ce_sum) sum, *sl = sp ? &sum : NULL;
    if (sp)
        sum = *sp;
    ptrdiff_t r0 = 0, ns = 0;
#define XT_CE_BY_LANE(K)                                                      \
    XT_K(ce_by_lane)(x, nrows, target, gscale, a, &kc, K, loss, grad, special, &ns, sl)
    XT_WIDE_C_SWITCH(C, r0, XT_CE_BY_LANE)
#undef XT_CE_BY_LANE
    if (r0 < nrows)
        ns += XT_K(ce_lane_leftover)(x, r0, nrows, target, gscale, a, &kc, loss, grad, special,
                                     sl);
    if (sp)
        *sp = sum;
    *nspecial += ns;
    return nrows;
}

/* Row mode over rows [r0, nrows), out of line: beside the lane kernels'
 * instances GCC laid it out otherwise (float32, 256 classes). */
XT_ATTR __attribute__((noinline)) static ptrdiff_t XT_K(ce_rows_mode)(
    const XT_T *x, ptrdiff_t r0, ptrdiff_t nrows, const long long *target, const double *gscale,
    const xt_ce_index_args *a, const xt_ce_consts *kcp, double *loss, XT_T *grad,
    unsigned char *special, XT_K(ce_sum) *sp)
{
    enum { W = XV(lanes) };
    const xt_ce_consts kc = *kcp;
    XT_K(ce_sum) sum, *sl = sp ? &sum : NULL;
    if (sp)
        sum = *sp;
    ptrdiff_t ns = 0;
    for (; r0 < nrows; r0 += W) {
        int n = nrows - r0 < W ? (int)(nrows - r0) : W;
        ns += XT_K(ce_rows_by_row)(x, r0, n, target, gscale, a, &kc, loss, grad, special, sl);
    }
    if (sp)
        *sp = sum;
    return ns;
}

/* Targets a running max of the target check takes (XT_K(ce_index)) */
#define XT_CE_CHECK_CHAINS 16

/* The fused kernel over rows [0, nrows): the number of rows left to the
 * caller (special), or -1 when a->check_targets finds a target that is
 * not a class index (nothing computed). */
XT_ATTR static ptrdiff_t XT_K(ce_index)(const XT_T *x, ptrdiff_t nrows, const long long *target,
                                        const double *gscale, const xt_ce_index_args *a,
                                        double *loss, XT_T *grad, unsigned char *special)
{
    enum { W = XV(lanes), WD = XVD(lanes) };
    const ptrdiff_t C = a->o.nclasses;
    ptrdiff_t r0 = 0, nspecial = 0;
    if (a->check_targets) {
        /* The largest target as unsigned, negatives wrapping above C: one
         * vector max per vector of targets once the compiler vectorises it
         * for the ISA (an OR of compares took a tenth of the kernel's
         * samples at 2 classes); an ignore_index that is a class index is
         * looked for apart. */
        const long long ignore = a->ignore_index;
        /* XT_CE_CHECK_CHAINS running maxima: on AVX2 a max of unsigned
         * int64 is three dependent operations, which one running max
         * waited on for every vector of targets */
        enum { NCH = XT_CE_CHECK_CHAINS };
        unsigned long long tops[NCH] = {0}, top = 0;
        ptrdiff_t i0 = 0;
        for (; i0 + NCH <= nrows; i0 += NCH)
            for (int k = 0; k < NCH; k++) {
                const unsigned long long t = (unsigned long long)target[i0 + k];
                tops[k] = t > tops[k] ? t : tops[k];
            }
        for (; i0 < nrows; i0++) {
            const unsigned long long t = (unsigned long long)target[i0];
            top = t > top ? t : top;
        }
        for (int k = 0; k < NCH; k++)
            top = tops[k] > top ? tops[k] : top;
        if (top >= (unsigned long long)C)
            return -1;
        if (ignore >= 0 && ignore < C) {
            int seen = 0;
            for (ptrdiff_t i = 0; i < nrows; i++)
                seen |= target[i] == ignore;
            if (seen)
                return -1;
        }
    }
    const xt_ce_consts kc = xt_ce_consts_of(a);
    XT_K(ce_sum) sum, *sp = a->loss_total ? &sum : NULL;
    for (int j = 0; j < 8 / WD; j++)
        sum.acc[j] = XVD(zero)();
    sum.all = 1;
    if (XT_K(by_lanes)(C, grad != NULL ? XT_LANES_GRAD : XT_LANES_NONE)) {
        if (C > XT_SMALL_C_MAX || C < 2) {
            r0 = XT_K(ce_lanes_wide)(x, nrows, target, gscale, a, &kc, loss, grad, special,
                                     &nspecial, sp);
        } else {
        /* C as a constant where it is small: the loops over the columns
         * unrolled, the block's vectors kept in registers. float32, 1
         * thread, 2^17 elements in cache, forward: 2 classes 0.74 -> 0.91
         * G/s; 2 threads, 2^23: 2 classes 1.35 -> 1.80, 10: 3.3 -> 3.5,
         * 16: 3.7 -> 4.1-4.4. (An
         * instance with the options at their defaults as constants too
         * gained nothing: 1.58-4.36 against 1.64-4.25 G/s at 2-33.) */
#define XT_CE_BY_LANE(K)                                                      \
        XT_K(ce_by_lane)(x, nrows, target, gscale, a, &kc, K, loss, grad, special, &nspecial, sp)
        XT_SMALL_C_SWITCH(C, r0, XT_CE_BY_LANE)
#undef XT_CE_BY_LANE
        if (r0 < nrows) {
            nspecial += XT_K(ce_lane_leftover)(x, r0, nrows, target, gscale, a, &kc, loss, grad,
                                               special, sp);
            r0 = nrows;
        }
        }
    }
    if (r0 < nrows)
        nspecial += XT_K(ce_rows_mode)(x, r0, nrows, target, gscale, a, &kc, loss, grad,
                                       special, sp);
    if (sp) {
        /* the partial group's losses, then the pairwise sum: _sum_doubles */
        double s[8];
        for (int j = 0; j < 8 / WD; j++)
            XVD(store)(s + WD * j, sum.acc[j]);
        for (ptrdiff_t i = nrows / W * W; i < nrows; i++)
            s[i % 8] += loss[i];
        *a->loss_total = !sum.all ? NAN
                                  : ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    }
    return nspecial;
}
