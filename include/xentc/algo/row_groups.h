/*
 * Template (algo/instance.h): rows in groups of W (the lane count), each
 * group ending as vectors with one row per lane: max, count of the
 * elements equal to it, and the sum of the others' exp(x - max). The
 * fused cross-entropy (algo/ce_rows.h) and XT_K(rows) below, the
 * log-sum-exp, softmax and log_softmax of rows up to XT_CE_FUSED_MAX_COLS
 * classes, both build on them:
 *   XT_K(lane_stats)  lane mode: from a group's C column vectors (the
 *                     layer's load_columns), every step vertical;
 *   XT_K(row_stats)   row mode: each row by vectors along it, the W rows'
 *                     lane partials reduced at once (hmax_many, hsum_many).
 * Each row's numbers depend on that row alone and on which mode takes
 * it (the row length decides), never on the threads or on where the row
 * sits: row mode gives a row the same bits in a whole group and in a
 * partial one, and lane mode takes its leftover rows (the last nrows mod
 * W) as a whole group padded with zeros (XT_K(lane_pad)).
 */

/* Do rows of C classes take lane mode? Up to the layer's lane_classes,
 * lane_classes_out or lane_classes_grad as `outputs` says (the columns'
 * cost in each direction sets them: simd/avx2.h, avx512.h, neon.h). */
XT_ATTR XT_ALWAYS_INLINE static inline int XT_K(by_lanes)(ptrdiff_t C, int outputs)
{
    const ptrdiff_t limit = outputs == XT_LANES_GRAD  ? (ptrdiff_t)XV(lane_classes_grad)
                            : outputs == XT_LANES_OUT ? (ptrdiff_t)XV(lane_classes_out)
                                                      : (ptrdiff_t)XV(lane_classes);
    return C <= limit;
}

/* The n < W rows of C elements from x copied into the group xp (W rows),
 * the rows past them zeros: finite, so they make no group special. */
XT_ATTR XT_ALWAYS_INLINE static inline void XT_K(lane_pad)(const XT_T *x, int n, ptrdiff_t C,
                                                            XT_T *xp)
{
    memcpy(xp, x, (size_t)(n * C) * sizeof(XT_T));
    memset(xp + n * C, 0, (size_t)((XV(lanes) - n) * C) * sizeof(XT_T));
}

/* Lane mode: from the columns v[0:C) of a group, its max m, count of
 * maxima and sum of the other exps rest; with e, the exps themselves (1 at
 * the maxima) in e[0:C) (e may be v). The others' exps are summed in T
 * lanes, at most XT_COLUMNS_MAX - 1 terms below 1 each: as many as each
 * lane of the long-row kernel sums at 1024 classes (algo/partial.h);
 * widening to double first took a fifth of the group's time at 8
 * classes. */
XT_ATTR XT_ALWAYS_INLINE static inline void XT_K(lane_sums)(XV(v) *v, ptrdiff_t C, XV(v) vm,
                                                             XV(v) *count, XV(v) *rest,
                                                             XV(v) *e)
{
    const XV(v) zero = XV(zero)(), one = XV(set1)((XT_T)1);
    XV(v) c = *count, s = *rest;
    for (ptrdiff_t j = 0; j < C; j++) {
        XV(v) d = XV(sub)(v[j], vm);
        XV(m) eq = XV(cmp_eq)(d, zero);
        c = XV(add_where)(c, eq, one);
        XV(v) ej = XV(zero_where)(eq, XT_K(exp)(d));
        if (e)
            e[j] = XV(select)(eq, one, ej);
        s = XV(add)(s, ej);
    }
    *count = c;
    *rest = s;
}
XT_ATTR XT_ALWAYS_INLINE static inline void XT_K(lane_stats)(XV(v) *v, ptrdiff_t C, XV(v) *m,
                                                              XV(v) *count, XV(v) *rest,
                                                              XV(v) *e)
{
    XV(v) vm = XV(set1)((XT_T)-INFINITY);
    for (ptrdiff_t j = 0; j < C; j++)
        vm = XV(max)(v[j], vm);
    *m = vm;
    if (C == 2) {
        /* One exp a row, of the element that is not the max (either if
         * both are): the general loop's count, rest and exps bit for bit,
         * NaN and infinities included (the loop adds its rest to 0, and
         * its exp of a max is zeroed), for half its exps (float32, 2
         * classes, 2^23 elements, 2 threads, alternating builds: the
         * cross-entropy forward +4%, logsumexp +6%, softmax +34%) */
        const XV(v) zero = XV(zero)(), one = XV(set1)((XT_T)1);
        const XV(v) d0 = XV(sub)(v[0], vm), d1 = XV(sub)(v[1], vm);
        const XV(m) eq0 = XV(cmp_eq)(d0, zero), eq1 = XV(cmp_eq)(d1, zero);
        const XV(v) d = XV(select)(eq0, d1, d0);
        const XV(m) tie = XV(cmp_eq)(d, zero);   /* both are the max */
        const XV(v) x = XT_K(exp)(d);
        *count = XV(add_where)(XV(add_where)(zero, eq0, one), eq1, one);
        *rest = XV(zero_where)(tie, x);
        if (e) {
            e[0] = XV(select)(eq0, one, x);
            e[1] = XV(select)(eq1, one, x);
        }
        return;
    }
    *count = *rest = XV(zero)();
    XT_K(lane_sums)(v, C, vm, count, rest, e);
}

/* lse - max of a group's rows from their count and rest by the double log
 * (row mode from XT_ROW_DOUBLE_LOG_COLS classes, ce_options.h): in
 * lsd[0:NW), and returned rounded to T. */
XT_ATTR XT_ALWAYS_INLINE static inline XV(v) XT_K(ls_double)(XV(v) count, XV(v) rest,
                                                              XVD(v) *lsd)
{
    for (int k = 0; k < XV(lanes) / XVD(lanes); k++)
        lsd[k] = XT_KD(lse_finish)(XVD(zero)(), XV(widen)(count, k), XV(widen)(rest, k));
    return XV(narrow)(lsd);
}

/* Row mode's sums of one row: exp(x - m) over the row in T lanes with the
 * maxima left out, and the maxima counted in T lanes (exact: C <= 2^24),
 * the exps also stored in out when it is not NULL, and the memory ahead
 * bytes past each vector prefetched (none when 0). Tail lanes read -inf:
 * exp gives 0, the count compare is false. */
XT_ATTR XT_ALWAYS_INLINE static inline XV(v) XT_K(row_sums)(const XT_T *x, ptrdiff_t n,
                                                             XV(v) vm, XV(v) *count, XT_T *out,
                                                             ptrdiff_t ahead)
{
    const ptrdiff_t W = XV(lanes);
    const XV(v) one = XV(set1)((XT_T)1), ninf = XV(set1)((XT_T)-INFINITY);
    XV(v) s = XV(zero)(), c = XV(zero)();
    for (ptrdiff_t i = 0; i < n; i += W) {
        int full = i + W <= n;
        if (ahead) /* the same for the whole loop */
            XT_PREFETCH_SPAN_AT(x + i, ahead, W * (ptrdiff_t)sizeof(XT_T));
        XV(v) v = full ? XV(load)(x + i) : XV(load_tail)(x + i, n - i, ninf);
        XV(v) e = XT_K(exp)(XV(sub)(v, vm));
        if (out && full)
            XV(store)(out + i, e);
        else if (out)
            XV(store_tail)(out + i, n - i, e);
        XV(m) q = XV(cmp_eq)(v, vm);
        c = XV(add_where)(c, q, one);
        s = XV(add)(s, XV(zero_where)(q, e));
    }
    *count = c;
    return s;
}

/* Row mode: rows [r0, r0 + n) of C elements (n <= W) as lanes of m,
 * count and rest, the maxima also in mt[0:W); with out, each row's exps
 * in its row of out. Lanes past n: m 0, count 1, rest 0; rows whose max
 * is not finite: that max, and count and rest that make them the caller's
 * special rows.
 *
 * A row's last C mod W elements would take a vector of their own, mostly
 * empty: rows of 33 classes are three float32 vectors. A whole group
 * takes up to XT_ROW_TAIL_COLUMNS of them as columns instead (the layer's
 * load_tile), vertically as in lane mode, and its rows' vectors are then
 * all whole. */
XT_ATTR XT_ALWAYS_INLINE static inline void XT_K(row_stats)(const XT_T *x, ptrdiff_t r0, int n,
                                                             ptrdiff_t C, XT_T *out, XV(v) *m,
                                                             XV(v) *count, XV(v) *rest,
                                                             XT_T *mt)
{
    enum { W = XV(lanes) };
    const XV(v) zero = XV(zero)();
    XV(v) part[XV(lanes)], cpart[XV(lanes)];
    /* The maxima of the group at once while its rows stay in L1 between
     * the two passes; past that, each row's max just before its sums
     * (1000 classes ran 35% slower with the group's 64 KB read twice). */
    const int group_max = W * C * (ptrdiff_t)sizeof(XT_T) <= XT_CE_GROUP_BYTES;
    const ptrdiff_t body = C / W * W, tail = C - body;
    /* a partial group (n < W) takes its tail columns the same way, as
     * lanes copied one by one (-inf past row n: m 0, count 1, rest 0 there),
     * so that a row's bits do not depend on whether its group is whole:
     * the sum of a row's tail exps after the rest of its row is another
     * order of the same sum (a chunk of 7 rows of 300 float32 classes
     * differed from the same rows in a whole group, AVX2) */
    const int by_tile = group_max && body > 0 && tail > 0 && tail <= XT_ROW_TAIL_COLUMNS;
    const ptrdiff_t Cr = by_tile ? body : C; /* along the rows */
    XV(v) tc[XV(lanes)];
    /* The sums pull the rows that the next max pass reads towards L1:
     * the next group (group_max) or the row after next (each row's max is
     * taken one row ahead), and XT_PREFETCH_BYTES beyond, since a pass
     * reads a row in far less time than memory takes to deliver it. The
     * hardware prefetcher alone left the max pass waiting on memory: a
     * third of the kernel's samples at 1000 classes. float32, 2 threads,
     * 2^23 elements, against no prefetch: the cross-entropy forward at
     * 100 classes 4.97 -> 5.93 G/s, 200 4.96 -> 6.82, 256 5.74 -> 7.29,
     * 500 6.79 -> 8.18; the next group's bytes alone or XT_PREFETCH_BYTES
     * alone gained less. Where the sums also store the exps (softmax, the
     * gradient), groups below XT_ROW_PREFETCH_OUT_BYTES leave the next
     * one to the hardware: softmax lost by it (50 classes 3.00 -> 2.58
     * G/s, 100 3.84 -> 3.41; a write prefetch of its rows did not mend
     * that), the gradient at 33-64 classes 1-6%, on AVX2 up to 20% (64
     * classes 2.71 -> 2.16); from there forward+gradient gains (128-256
     * classes: float32 +16-28%, float64 +13-17%, AVX2 even to +9%) and
     * softmax even to +6%. The group's size is written out here and in
     * group_max rather than named once: named, it made GCC lay out
     * xt_rows_f32_avx512 otherwise, and logsumexp and log_softmax at 10
     * float32 classes (lane mode, not this code) ran 8% slower (9d2cff3). */
    const ptrdiff_t ahead =
        group_max && out && W * C * (ptrdiff_t)sizeof(XT_T) < XT_ROW_PREFETCH_OUT_BYTES
            ? 0
            : (group_max ? W : 2) * C * (ptrdiff_t)sizeof(XT_T) + XT_PREFETCH_BYTES;
    if (group_max) {
        for (int l = 0; l < W; l++)
            part[l] = l < n ? XT_K(max_lanes)(x + (r0 + l) * C, Cr) : zero;
        XV(v) vm = XV(hmax_many)(part);
        if (by_tile) {
            if (n == W) {
                XV(load_tile)(x + r0 * C + body, C, tail, tc);
            } else {
                XT_T lane[XV(lanes)];
                for (ptrdiff_t j = 0; j < tail; j++) {
                    for (int l = 0; l < W; l++)
                        lane[l] = l < n ? x[(r0 + l) * C + body + j] : (XT_T)-INFINITY;
                    tc[j] = XV(load)(lane);
                }
            }
            for (ptrdiff_t j = 0; j < tail; j++)
                vm = XV(max)(tc[j], vm);
        }
        XV(store)(mt, vm);
    }
    /* Past that, the next row's max is taken before this row's sums: the
     * sums wait for their max, and with each row's max just before them
     * every row paid the max's reduction and the sums' first exps in
     * turn, about 160 cycles a row (float32, 1 thread, in cache: 3.2 G/s
     * at 512 classes against 3.8 at 1024). */
    XT_T mnext = !group_max && n > 0 ? XT_K(max)(x + r0 * C, C) : 0;
    for (int l = 0; l < W; l++) {
        const XT_T *row = x + (r0 + l) * C;
        if (!group_max) {
            mt[l] = l < n ? mnext : 0;
            if (l + 1 < n)
                mnext = XT_K(max)(row + C, C);
        }
        part[l] = zero;
        cpart[l] = XV(set1)((XT_T)1);
        if (l < n && isfinite(mt[l]))
            part[l] = XT_K(row_sums)(row, Cr, XV(set1)(mt[l]), &cpart[l],
                                     out ? out + (r0 + l) * C : NULL, ahead);
    }
    *m = XV(load)(mt);
    *rest = XV(hsum_many)(part);
    *count = XV(hsum_many)(cpart);
    if (by_tile) {
        XT_K(lane_sums)(tc, tail, *m, count, rest, out ? tc : NULL);
        if (out && n == W) {
            XV(store_tile)(out + r0 * C + body, C, tail, tc);
        } else if (out) {
            XT_T lane[XV(lanes)];
            for (ptrdiff_t j = 0; j < tail; j++) {
                XV(store)(lane, tc[j]);
                for (int l = 0; l < n; l++)
                    out[(r0 + l) * C + body + j] = lane[l];
            }
        }
    }
}

/* ---- log-sum-exp, softmax and log_softmax by groups ------------------- */

/* The outputs of a group of n <= W rows from r0 (mode as short_rows.h's
 * XT_SHORT_LSE, XT_SHORT_SOFTMAX, XT_SHORT_LOG_SOFTMAX) from its m, count
 * and rest: the group is left to the caller whole (special[r0:r0+n) = 1,
 * returns n) when a row's max or sum is not finite or NaN. Lane mode
 * gives e (softmax: the exps; log_softmax: the logits) as columns, with
 * the plan for store_columns; row mode (e NULL) has the exps in the rows
 * of out already (softmax, have_exp) or takes them from x. */
XT_ATTR XT_ALWAYS_INLINE static inline ptrdiff_t XT_K(rows_out)(
    const XT_T *x, ptrdiff_t r0, int n, ptrdiff_t C, int mode, XV(v) m, XV(v) count,
    XV(v) rest, XV(v) *e, const XV(cp) *plan, int have_exp, XT_T *out,
    unsigned char *special)
{
    enum { W = XV(lanes), NW = XV(lanes) / XVD(lanes), WD = XVD(lanes) };
    /* lse - max: in T lanes, or by the double log in row mode from
     * XT_ROW_DOUBLE_LOG_COLS classes (ce_options.h) */
    XVD(v) lsd[NW];
    XV(v) ls;
    if (e || C < XT_ROW_DOUBLE_LOG_COLS) {
        ls = XT_K(lse_finish)(XV(zero)(), count, rest);
        for (int k = 0; k < NW; k++)
            lsd[k] = XV(widen)(ls, k);
    } else {
        ls = XT_K(ls_double)(count, rest, lsd);
    }
    XVD(v) lse[NW], inv[NW];
    int ok = 1;
    for (int k = 0; k < NW; k++) {
        XVD(v) mk = XV(widen)(m, k);
        lse[k] = XVD(add)(mk, lsd[k]);
        /* finite only when the max and the sum are (NaN, +inf, no finite
         * element: special) */
        ok &= XVD(all)(XVD(cmp_eq)(XVD(sub)(lse[k], lse[k]), XVD(zero)()));
        /* softmax's 1 / (count + rest), the sum the per-row kernels divide by */
        inv[k] = mode != XT_SHORT_SOFTMAX ? XVD(zero)()
                 : XVD(div)(XVD(set1)(1.0), XVD(add)(XV(widen)(count, k), XV(widen)(rest, k)));
    }
    if (!ok) {
        memset(special + r0, 1, (size_t)n);
        return n;
    }
    memset(special + r0, 0, (size_t)n);
    if (mode == XT_SHORT_LSE) {
        XT_T lt[XV(lanes)];
        XV(store)(lt, XV(narrow)(lse));
        for (int l = 0; l < n; l++)
            out[r0 + l] = lt[l];
        return 0;
    }
    const XV(v) vinv = XV(narrow)(inv);
    if (e) { /* lane mode: the whole group's columns */
        for (ptrdiff_t j = 0; j < C; j++)
            e[j] = mode == XT_SHORT_SOFTMAX ? XV(mul)(e[j], vinv)
                                            : XV(sub)(XV(sub)(e[j], m), ls);
        XV(store_columns)(out + r0 * C, C, plan, e);
        return 0;
    }
    XT_T mt[XV(lanes)], lt[XV(lanes)], it[XV(lanes)];
    XV(store)(mt, m);
    XV(store)(lt, ls);
    XV(store)(it, vinv);
    for (int l = 0; l < n; l++) {
        const XT_T *row = x + (r0 + l) * C;
        XT_T *orow = out + (r0 + l) * C;
        if (mode == XT_SHORT_LOG_SOFTMAX)
            XT_K(shift)(row, C, mt[l], lt[l], orow);
        else if (have_exp)
            XT_K(scale)(orow, C, it[l]);
        else
            XT_K(expscale)(row, C, mt[l], it[l], orow);
    }
    return 0;
}

/* Lane mode over the whole groups of rows [0, nrows): returns the rows
 * done (a multiple of W), the groups left to the caller counted in
 * *nspecial. */
XT_ATTR XT_ALWAYS_INLINE static inline ptrdiff_t XT_K(rows_by_lanes)(const XT_T *x,
                                                                     ptrdiff_t nrows,
                                                                     ptrdiff_t C, int mode,
                                                                     XT_T *out,
                                                                     unsigned char *special,
                                                                     ptrdiff_t *nspecial)
{
    enum { W = XV(lanes) };
    XV(v) v[XT_COLUMNS_MAX];
    XV(cp) plan;
    XV(columns_plan)(C, &plan);
    ptrdiff_t r0 = 0;
    for (; r0 + W <= nrows; r0 += W) {
        const XT_T *grp = x + r0 * C;
        XV(v) m, count, rest;
        XT_PREFETCH_SPAN(grp, W * C * (ptrdiff_t)sizeof(XT_T));
        XV(load_columns)(grp, C, &plan, v);
        /* softmax: the exps replace the columns; log_softmax keeps them */
        XT_K(lane_stats)(v, C, &m, &count, &rest, mode == XT_SHORT_SOFTMAX ? v : NULL);
        *nspecial += XT_K(rows_out)(x, r0, W, C, mode, m, count, rest, v, &plan, 0, out,
                                    special);
    }
    return r0;
}

/* Lane mode's leftover rows [r0, nrows), fewer than W (the last nrows mod
 * W of an array, or all of a short one), as one whole group padded with
 * rows of zeros in a copy (XT_K(lane_pad)), out and the flags copied
 * back; returns the special rows. A row gets the same bits here as inside
 * a longer array (as XT_K(ce_lane_leftover) in ce_rows.h, which says why
 * out of line). */
XT_ATTR static ptrdiff_t XT_K(rows_lane_leftover)(const XT_T *x, ptrdiff_t r0, ptrdiff_t nrows,
                                                  ptrdiff_t C, int mode, XT_T *out,
                                                  unsigned char *special)
{
    enum { W = XV(lanes) };
    const ptrdiff_t n = nrows - r0, each = mode == XT_SHORT_LSE ? 1 : C;
    XT_T xp[XV(lanes) * XT_COLUMNS_MAX], op[XV(lanes) * XT_COLUMNS_MAX];
    unsigned char sp[XV(lanes)];
    ptrdiff_t nspecial = 0;
    XT_K(lane_pad)(x + r0 * C, (int)n, C, xp);
    XT_K(rows_by_lanes)(xp, W, C, mode, op, sp, &nspecial);
    memcpy(special + r0, sp, (size_t)n);
    if (nspecial) /* the whole group, left to the caller: out may be x */
        return n;
    memcpy(out + r0 * each, op, (size_t)(n * each) * sizeof(XT_T));
    return 0;
}

/* Lane mode over all rows [0, nrows) of 1 or more than XT_SMALL_C_MAX
 * classes (returns nrows, the special rows counted in *nspecial), C a constant to
 * 32 (XT_WIDE_C_SWITCH); out of line (simd/common.h says why). */
XT_ATTR __attribute__((noinline)) static ptrdiff_t XT_K(rows_lanes_wide)(const XT_T *x,
                                                                    ptrdiff_t nrows,
                                                                    ptrdiff_t C, int mode,
                                                                    XT_T *out,
                                                                    unsigned char *special,
                                                                    ptrdiff_t *nspecial)
{
    ptrdiff_t r0 = 0, ns = 0; /* the count in a local, written back at the end */
#define XT_ROWS_BY_LANES(K) XT_K(rows_by_lanes)(x, nrows, K, mode, out, special, &ns)
    XT_WIDE_C_SWITCH(C, r0, XT_ROWS_BY_LANES)
#undef XT_ROWS_BY_LANES
    if (r0 < nrows)
        ns += XT_K(rows_lane_leftover)(x, r0, nrows, C, mode, out, special);
    *nspecial += ns;
    return nrows;
}

/* Rows x[0:nrows) of C <= XT_CE_FUSED_MAX_COLS elements, by mode: out[r] =
 * logsumexp of row r (XT_SHORT_LSE), or out's row r = its softmax /
 * log_softmax (out may be x). Groups holding a row whose max is not
 * finite, or NaN, get special[] = 1 and are left to the caller's per-row
 * kernels, which own those rules; returns how many rows. */
XT_ATTR static ptrdiff_t XT_K(rows)(const XT_T *x, ptrdiff_t nrows, ptrdiff_t C, int mode,
                                    XT_T *out, unsigned char *special)
{
    enum { W = XV(lanes) };
    const int in_place = (const void *)out == (const void *)x;
    ptrdiff_t r0 = 0, nspecial = 0;
    XV(cp) plan;
    /* lane mode as far as the layer's lane_classes for the log-sum-exp,
     * lane_classes_out for softmax's outputs (float32 softmax at 28 and 32
     * classes: 2.1 and 3.2 G/s in row mode, 1.8-2.0 and 1.6 in lane mode) */
    if (XT_K(by_lanes)(C, mode != XT_SHORT_LSE ? XT_LANES_OUT : XT_LANES_NONE)) {
        if (C > XT_SMALL_C_MAX || C < 2) {
            r0 = XT_K(rows_lanes_wide)(x, nrows, C, mode, out, special, &nspecial);
        } else {
#define XT_ROWS_BY_LANES(K) XT_K(rows_by_lanes)(x, nrows, K, mode, out, special, &nspecial)
            XT_SMALL_C_SWITCH(C, r0, XT_ROWS_BY_LANES)
#undef XT_ROWS_BY_LANES
            if (r0 < nrows) {
                nspecial += XT_K(rows_lane_leftover)(x, r0, nrows, C, mode, out, special);
                r0 = nrows;
            }
        }
    }
    for (; r0 < nrows; r0 += W) {
        int n = nrows - r0 < W ? (int)(nrows - r0) : W;
        XV(v) m, count, rest;
        XT_T mt[XV(lanes)];
        /* softmax keeps the exps in out's rows, unless out is x: a special
         * row is redone from x by the caller */
        int have_exp = mode == XT_SHORT_SOFTMAX && !in_place;
        XT_K(row_stats)(x, r0, n, C, have_exp ? out : NULL, &m, &count, &rest, mt);
        nspecial += XT_K(rows_out)(x, r0, n, C, mode, m, count, rest, NULL, &plan, have_exp,
                                   out, special);
    }
    return nspecial;
}
