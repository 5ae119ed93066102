/*
 * Template (algo/instance.h): the long-row kernels of one (ISA, element
 * type) over its vector layer:
 *   XT_K(max)       largest non-NaN element of a block;
 *   XT_K(sumexp)    sum of exp(x - m) over a block, maxima counted apart;
 *   XT_K(expscale)  out = exp(x - shift) * scale          (softmax);
 *   XT_K(shift)     out = (x - shift) - offset            (log_softmax);
 *   XT_K(partial), XT_K(partial)_store: the partial of a slice, block by
 *                   block (blocks.h, XT_DEFINE_CHUNK_PARTIAL).
 * Tails are the layer's tail loads and stores, so no scalar libm call sits
 * in the hot loop and every row length takes the same arithmetic.
 *
 * The reductions (max, sumexp, partial) read their input through XT_LD /
 * XT_LD_TAIL / XT_LD2 (two vectors' worth, lanes in any order: bfloat16
 * widens a pair in two operations instead of four) from XT_IN elements,
 * named by XT_KI: by default the element type itself. algo/instance.h also instantiates them for float16 and
 * bfloat16 input (XT_H16: float32 arithmetic on the layer's widening
 * loads, kernels xt_partial_bf16_ISA, ...), the maps (out in T) only for
 * the element types.
 */
#ifdef XT_H16
/* the first n < W 16-bit elements from p widened, the other lanes fill */
XT_ATTR XT_ALWAYS_INLINE static inline XV(v) XT_KI(load_tail)(const uint16_t *p, ptrdiff_t n,
                                                               XV(v) fill)
{
    uint16_t t[XV(lanes)] = {0};
    XT_T lanes[XV(lanes)], fills[XV(lanes)];
    memcpy(t, p, (size_t)n * sizeof *t);
    XV(store)(lanes, XT_LD(t));
    XV(store)(fills, fill);
    for (ptrdiff_t l = n; l < XV(lanes); l++)
        lanes[l] = fills[l];
    return XV(load)(lanes);
}
#else
#define XT_IN XT_T
#define XT_LD(p) XV(load)(p)
#define XT_LD2(p, a, b) (*(a) = XV(load)(p), *(b) = XV(load)((p) + XV(lanes)))
#define XT_LD_TAIL(p, n, fill) XV(load_tail)(p, n, fill)
#define XT_KI(name) XT_K(name)
#endif

/* Largest non-NaN element of x[0:n) (-inf for none): max(v, acc) returns
 * acc when v is NaN, so NaN never becomes the max. Four chains: a max
 * waits 4 cycles for the one before it. */
XT_ATTR XT_ALWAYS_INLINE static inline XV(v) XT_KI(max_lanes)(const XT_IN *x, ptrdiff_t n)
{
    const ptrdiff_t W = XV(lanes);
    const XV(v) ninf = XV(set1)((XT_T)-INFINITY);
    XV(v) m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
    ptrdiff_t i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
        XV(v) a, b, c, d;
        XT_LD2(x + i, &a, &b);
        XT_LD2(x + i + 2 * W, &c, &d);
        m0 = XV(max)(a, m0);
        m1 = XV(max)(b, m1);
        m2 = XV(max)(c, m2);
        m3 = XV(max)(d, m3);
    }
    m0 = XV(max)(m2, m0);
    m1 = XV(max)(m3, m1);
    for (; i + W <= n; i += W)
        m0 = XV(max)(XT_LD(x + i), m0);
    if (i < n)
        m0 = XV(max)(XT_LD_TAIL(x + i, n - i, ninf), m0);
    return XV(max)(m0, m1);
}

/* XT_K(max_lanes) reduced: the largest non-NaN element of x[0:n). The
 * vector itself serves the fused cross-entropy's row mode, which reduces
 * W rows' at once (the layer's hmax_many). */
XT_ATTR XT_ALWAYS_INLINE static inline XT_T XT_KI(max)(const XT_IN *x, ptrdiff_t n)
{
    return XV(hmax)(XT_KI(max_lanes)(x, n));
}

/* acc plus e = exp(v - vm), one vector of a sum of exps: with
 * exclude_max only the lanes not equal to vm are added (NaN, never equal,
 * is added) and counted in *cnt, the caller counting the lanes seen: the
 * maxima are the difference. */
XT_ATTR XT_ALWAYS_INLINE static inline XV(v)
    XT_KI(sumexp_add)(XV(v) acc, XV(v) v, XV(v) e, XV(v) vm, int exclude_max, XV(c) *cnt)
{
    if (!exclude_max)
        return XV(add)(acc, e);
    XV(m) q = XV(cmp_neq)(v, vm);
    *cnt = XV(cnt_add)(*cnt, q);
    return XV(add_where)(acc, q, e);
}

/* sum of exp(x - m) over x[0:n), summed in T lanes (two chains) and
 * widened once. With exclude_max, elements equal to m are left out of the
 * sum and counted in *nmax instead (the caller keeps them apart for log1p
 * accuracy); without it the caller knows no element equals m. With out,
 * exp(x - m) of every element (maxima included: 1) is also stored there,
 * for softmax and the cross-entropy gradient to rescale instead of taking
 * exp again. Tail lanes read -inf: exp gives 0, the compare is false.
 * The lines ahead bytes past those it reads are prefetched for the max
 * pass that follows: the next block's (XT_PREFETCH_BYTES), or the next
 * row's (blocks.h, XT_ROWMAX_FIRST_BYTES and XT_STORE_NEXT_BYTES). */
XT_ATTR XT_ALWAYS_INLINE static inline double
    XT_KI(sumexp)(const XT_IN *x, ptrdiff_t n, XT_T m, int exclude_max, double *nmax, XT_T *out,
                  ptrdiff_t ahead)
{
    const ptrdiff_t W = XV(lanes);
    const XV(v) vm = XV(set1)(m);
    XV(v) s0 = XV(zero)(), s1 = XV(zero)();
    XV(c) c = XV(cnt_zero)(); /* one chain: an integer add waits 1 cycle */
    ptrdiff_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
        XT_PREFETCH_SPAN_AT(x + i, ahead, 2 * W * (ptrdiff_t)sizeof(XT_T));
        XV(v) v0, v1;
        XT_LD2(x + i, &v0, &v1); /* 16-bit: in any order, and out NULL */
        XV(v) e0 = XT_K(exp)(XV(sub)(v0, vm)), e1 = XT_K(exp)(XV(sub)(v1, vm));
        if (out) {
            XV(store)(out + i, e0);
            XV(store)(out + i + W, e1);
        }
        s0 = XT_KI(sumexp_add)(s0, v0, e0, vm, exclude_max, &c);
        s1 = XT_KI(sumexp_add)(s1, v1, e1, vm, exclude_max, &c);
    }
    for (; i < n; i += W) {
        /* the last vector may be a tail: its other lanes read -inf */
        int full = i + W <= n;
        XV(v) v0 = full ? XT_LD(x + i)
                        : XT_LD_TAIL(x + i, n - i, XV(set1)((XT_T)-INFINITY));
        XV(v) e0 = XT_K(exp)(XV(sub)(v0, vm));
        if (out && full)
            XV(store)(out + i, e0);
        else if (out)
            XV(store_tail)(out + i, n - i, e0);
        s0 = XT_KI(sumexp_add)(s0, v0, e0, vm, exclude_max, &c);
    }
    /* every vector above had W lanes (a tail's others read -inf, never
     * equal to the finite m) */
    ptrdiff_t lanes = (n + W - 1) / W * W;
    *nmax = exclude_max ? (double)(lanes - XV(cnt_total)(c)) : 0.0;
    return XV(hsum)(XV(add)(s0, s1));
}

#ifdef XT_H16
/* 16-bit input: the slice partial alone (blocks.h), on the widening loads */
XT_DEFINE_SLICE_PARTIAL_X(XT_ATTR, XT_KI(partial), XT_IN, XT_T, XT_TBLOCK, XT_KI(max),
                          XT_KI(sumexp), XT_TSPECIAL)
#else
/* The element-wise maps of a row given its partial, by op: XT_MAP_SHIFT
 * (v - a) - b (log_softmax), XT_MAP_EXPSCALE exp(v - a) * b (softmax),
 * XT_MAP_SCALE v * b (stored exps rescaled in place: softmax and the
 * cross-entropy gradient, the product the scalar loop made). */
XT_ATTR XT_ALWAYS_INLINE static inline XV(v)
    XT_K(map_op)(XV(v) v, XV(v) va, XV(v) vb, int op)
{
    if (op == XT_MAP_SCALE)
        return XV(mul)(v, vb);
    return op == XT_MAP_EXPSCALE ? XV(mul)(XT_K(exp)(XV(sub)(v, va)), vb)
                                 : XV(sub)(XV(sub)(v, va), vb);
}

/* out = map_op(x), inlined into each map with op constant; out may be x */
XT_ATTR XT_ALWAYS_INLINE static inline void XT_K(map)(const XT_T *x, ptrdiff_t n, double a,
                                                      double b, XT_T *out, int op)
{
    const ptrdiff_t W = XV(lanes);
    const XV(v) va = XV(set1)((XT_T)a);
    const XV(v) vb = XV(set1)((XT_T)b);
    ptrdiff_t i = 0;
    for (; i + W <= n; i += W)
        XV(store)(out + i, XT_K(map_op)(XV(load)(x + i), va, vb, op));
    if (i < n) {
        XV(v) v = XV(load_tail)(x + i, n - i, XV(zero)());
        XV(store_tail)(out + i, n - i, XT_K(map_op)(v, va, vb, op));
    }
}

XT_ATTR static void XT_K(expscale)(const XT_T *x, ptrdiff_t n, double shift, double scale,
                                   XT_T *out)
{
    XT_K(map)(x, n, shift, scale, out, XT_MAP_EXPSCALE);
}

XT_ATTR static void XT_K(shift)(const XT_T *x, ptrdiff_t n, double shift, double offset,
                                XT_T *out)
{
    XT_K(map)(x, n, shift, offset, out, XT_MAP_SHIFT);
}

XT_ATTR static void XT_K(scale)(XT_T *out, ptrdiff_t n, double scale)
{
    XT_K(map)(out, n, 0.0, scale, out, XT_MAP_SCALE);
}

XT_DEFINE_CHUNK_PARTIAL_X(XT_ATTR, XT_K(partial), XT_T, XT_TBLOCK, XT_K(max), XT_K(sumexp),
                          XT_TSPECIAL, XT_K(expscale))
#undef XT_IN
#undef XT_LD
#undef XT_LD2
#undef XT_LD_TAIL
#undef XT_KI
#endif
