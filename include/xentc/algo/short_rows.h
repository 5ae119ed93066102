/*
 * Template (algo/instance.h): many short rows over a vector layer,
 * XT_K(short_rows), one row per vector lane (8 float rows or 4 double rows
 * a group on AVX2, 16 or 8 on AVX-512, 4 or 2 on NEON), the row's elements
 * fetched column by column with the layer's gather. Every step is then a
 * plain vertical vector operation: the max, x - max, the count of maxima,
 * exp, the float64 sum of the others and the final log, the last by
 * XT_KD(lse_finish) (algo/log.h). Groups holding a non-finite row max, and
 * the rows left over after the last full group, take the generic
 * short-row kernel (short_rows.h) with this layer's expscale. Each row's
 * arithmetic depends on that row alone and on its position in a fixed
 * grid of groups, never on threads. xt_short_emit_* (short_rows.h) writes
 * a group's rows in the caller's mode.
 */

XT_ATTR static void XT_K(short_rows)(const XT_T *x, ptrdiff_t nrows, ptrdiff_t C, int mode,
                                     XT_T *out, xt_lse_partial *parts, double *logsum)
{
    /* W rows a group; float32 rows widen to NW vectors of doubles */
    enum { W = XV(lanes), NW = XV(lanes) / XVD(lanes), WD = XVD(lanes) };
    if (C <= 0 || C > XT_SHORT_MAX_COLS)
        return;
    XV(v) v[XT_SHORT_MAX_COLS];
    XT_T e[XT_SHORT_MAX_COLS * W];
    double mm[W], cc[W], rr[W], ls[W];
    const XV(i) idx = XV(gather_index)(C);
    const XV(v) ninf = XV(set1)((XT_T)-INFINITY);
    const XV(v) one = XV(set1)((XT_T)1);
    const XV(v) zero = XV(zero)();
    ptrdiff_t r0 = 0;
    for (; r0 + W <= nrows; r0 += W) {
        const XT_T *g = x + r0 * C;
        xt_lse_partial *gparts = mode == XT_SHORT_PARTIALS ? parts + r0 : NULL;
        xt_short_prefetch(g, W * C * (ptrdiff_t)sizeof(XT_T));
        XV(v) vm = ninf;
        for (ptrdiff_t j = 0; j < C; j++) {
            v[j] = XV(gather)(g + j, idx);
            vm = XV(max)(v[j], vm);
        }
        /* any lane whose max is +inf, -inf (or all NaN): generic kernel */
        if (!XV(all)(XV(cmp_eq)(XV(sub)(vm, vm), zero))) {
            XT_CAT(xt_short_rows_generic_, XT_DT)(g, W, C, mode, xt_short_out(mode, out, r0, C),
                                                  gparts, logsum ? logsum + r0 : NULL,
                                                  XT_K(expscale));
            continue;
        }
        XV(v) count = zero;
        XVD(v) rest[NW];
        for (int k = 0; k < NW; k++)
            rest[k] = XVD(zero)();
        for (ptrdiff_t j = 0; j < C; j++) {
            XV(v) d = XV(sub)(v[j], vm);
            XV(m) eq = XV(cmp_eq)(d, zero);
            count = XV(add_where)(count, eq, one);
            XV(v) ej = XV(zero_where)(eq, XT_K(exp)(d));
            if (mode == XT_SHORT_SOFTMAX) /* keep exp(x - max), 1 at the maxima */
                v[j] = XV(select)(eq, one, ej);
            for (int k = 0; k < NW; k++)
                rest[k] = XVD(add)(rest[k], XV(widen)(ej, k));
        }
        XVD(v) mk[NW], ck[NW];
        for (int k = 0; k < NW; k++) {
            mk[k] = XV(widen)(vm, k);
            ck[k] = XV(widen)(count, k);
            XVD(store)(mm + k * WD, mk[k]);
            XVD(store)(cc + k * WD, ck[k]);
            XVD(store)(rr + k * WD, rest[k]);
        }
        if (xt_short_wants_lse(mode, logsum)) {
            /* PARTIALS: lse - max, the max left out (short_rows.h) */
            int rel = mode == XT_SHORT_PARTIALS;
            for (int k = 0; k < NW; k++)
                XVD(store)(ls + k * WD,
                           XT_KD(lse_finish)(rel ? XVD(zero)() : mk[k], ck[k], rest[k]));
        } else if (mode == XT_SHORT_SOFTMAX) {
            /* exps times 1 / (count + rest) of their row, divided exactly */
            XVD(v) inv[NW];
            for (int k = 0; k < NW; k++)
                inv[k] = XVD(div)(XVD(set1)(1.0), XVD(add)(ck[k], rest[k]));
            XV(v) vinv = XV(narrow)(inv);
            for (ptrdiff_t j = 0; j < C; j++)
                XV(store)(e + W * j, XV(mul)(v[j], vinv));
        }
        XT_CAT(xt_short_emit_, XT_DT)(mode, g, C, W, mm, cc, rr, ls, e,
                                      xt_short_out(mode, out, r0, C), gparts,
                                      logsum ? logsum + r0 : NULL);
    }
    if (r0 < nrows)
        XT_CAT(xt_short_rows_generic_, XT_DT)(x + r0 * C, nrows - r0, C, mode,
                                              xt_short_out(mode, out, r0, C),
                                              mode == XT_SHORT_PARTIALS ? parts + r0 : NULL,
                                              logsum ? logsum + r0 : NULL, XT_K(expscale));
}
