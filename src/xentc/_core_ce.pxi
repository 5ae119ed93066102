# Cross-entropy: the row kernels with loss and gradient, target scans, loss sums.
# (included by _core.pyx: one extension module, one dispatch table)

# ---- cross-entropy --------------------------------------------------------

from cython.parallel cimport parallel, threadid

cdef extern from "xentc/cross_entropy.h" nogil:
    ctypedef struct xt_ce_stats:
        xt_lse_partial lse
        double w
        double wx
        double wq
        double wqx

    ctypedef struct xt_ce_options:
        Py_ssize_t nclasses
        const double *class_weight
        double weight_total
        double smoothing
        double z_loss
        double softcap

    xt_ce_stats xt_ce_stats_merge(xt_ce_stats a, xt_ce_stats b)
    double xt_ce_index_loss(const xt_ce_options *o, const xt_ce_stats *s, double ls,
                            double m, double x_y, double w_y)
    double xt_ce_prob_loss(const xt_ce_options *o, const xt_ce_stats *s, double ls,
                           double m, double *wq_smoothed)
    double xt_ce_shift(xt_lse_partial p)
    double xt_ce_log_sum(xt_lse_partial p)
    ctypedef struct xt_ce_index_args:
        xt_ce_options o
        double grad_scale_all
        int check_targets
        long long ignore_index
        double *loss_total
        int grad_big

    int xt_have_ce_index()
    Py_ssize_t xt_ce_index_f32(const float *x, Py_ssize_t nrows, const long long *target,
                               const double *grad_scale, const xt_ce_index_args *a, double *loss, float *grad,
                               unsigned char *special)
    Py_ssize_t xt_ce_index_f64(const double *x, Py_ssize_t nrows, const long long *target,
                               const double *grad_scale, const xt_ce_index_args *a, double *loss, double *grad,
                               unsigned char *special)
    void xt_softcap_f32(const float *x, Py_ssize_t n, double s, float *dst)
    void xt_softcap_f64(const double *x, Py_ssize_t n, double s, double *dst)
    xt_ce_stats xt_ce_stats_f32(const float *x, Py_ssize_t n, const double *w,
                                const float *q, int need_wx)
    xt_ce_stats xt_ce_stats_f64(const double *x, Py_ssize_t n, const double *w,
                                const double *q, int need_wx)
    void xt_ce_sums_f32(const float *x, Py_ssize_t n, const double *w, const float *q,
                        int need_wx, double shift, xt_ce_stats *s)
    void xt_ce_sums_f64(const double *x, Py_ssize_t n, const double *w,
                        const double *q, int need_wx, double shift, xt_ce_stats *s)
    void xt_ce_grad_slice_f32(const float *x, Py_ssize_t n, double ls, double rowmax,
                              double a, double bq, double bc, const double *w,
                              const float *q, Py_ssize_t y, double by, double softcap,
                              float *grad, int have_exp)
    void xt_ce_grad_slice_f64(const double *x, Py_ssize_t n, double ls, double rowmax,
                              double a, double bq, double bc, const double *w,
                              const double *q, Py_ssize_t y, double by, double softcap,
                              double *grad, int have_exp)

from libc.math cimport isnan, tanh


ctypedef struct _row_coefs:
    # per-row gradient coefficients of a long row (see xt_ce_grad_slice)
    double ls
    double rowmax
    double a
    double bq
    double bc
    double by


cdef inline const real *_capped(const real *x, Py_ssize_t n, double softcap,
                                real *scratch) noexcept nogil:
    """x itself, or its soft-capped copy in scratch."""
    if softcap <= 0.0:
        return x
    if real is float:
        xt_softcap_f32(x, n, softcap, scratch)
    else:
        xt_softcap_f64(x, n, softcap, scratch)
    return scratch


cdef inline xt_ce_stats _stats(const real *x, Py_ssize_t n, const double *w,
                               const real *q, int need_wx) noexcept nogil:
    if real is float:
        return xt_ce_stats_f32(x, n, w, q, need_wx)
    else:
        return xt_ce_stats_f64(x, n, w, q, need_wx)


cdef inline void _grad_slice(const real *x, Py_ssize_t n, double ls, double rowmax,
                             double a, double bq, double bc, const double *w,
                             const real *q, Py_ssize_t y, double by, double softcap,
                             real *grad, int have_exp=0) noexcept nogil:
    if real is float:
        xt_ce_grad_slice_f32(x, n, ls, rowmax, a, bq, bc, w, q, y, by, softcap, grad,
                             have_exp)
    else:
        xt_ce_grad_slice_f64(x, n, ls, rowmax, a, bq, bc, w, q, y, by, softcap, grad,
                             have_exp)


cdef inline void _zero(real *p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        p[j] = 0


cdef inline double _wy(const xt_ce_options *o, Py_ssize_t y) noexcept nogil:
    return o.class_weight[y] if o.class_weight != NULL else 1.0


cdef inline double _index_row_grad_coefs(const xt_ce_options *o, double gs,
                                         double w_y, double lse, double *bc,
                                         double *by) noexcept nogil:
    """Coefficients of the index-target gradient (see cross_entropy.h)."""
    cdef double e = o.smoothing, c = o.smoothing / o.nclasses
    bc[0] = gs * c
    by[0] = gs * (1.0 - e) * w_y
    return gs * ((1.0 - e) * w_y + c * o.weight_total + 2.0 * o.z_loss * lse)


cdef inline double _prob_row_grad_coefs(const xt_ce_options *o, double gs,
                                        double wq, double lse, double *bq,
                                        double *bc) noexcept nogil:
    bq[0] = gs * (1.0 - o.smoothing)
    bc[0] = gs * o.smoothing / o.nclasses
    return gs * (wq + 2.0 * o.z_loss * lse)


cdef xt_ce_options _options(Py_ssize_t nclasses, const double[::1] class_weight,
                            bint has_weight, double smoothing, double z_loss,
                            double softcap):
    cdef xt_ce_options o
    cdef Py_ssize_t j
    o.nclasses = nclasses
    o.class_weight = &class_weight[0] if has_weight else NULL
    o.weight_total = 0.0
    if has_weight:
        for j in range(nclasses):
            o.weight_total += class_weight[j]
    else:
        o.weight_total = <double> nclasses
    o.smoothing = smoothing
    o.z_loss = z_loss
    o.softcap = softcap
    return o


ctypedef struct _ce_call:
    # Everything about one call of the row kernels but its buffers: the
    # options (constant over rows), what is asked for and how the gradient
    # is scaled. One struct instead of a dozen arguments.
    xt_ce_options o
    bint prob_target          # target_prob holds the targets (else target)
    bint want_grad            # write the gradient into grad
    const double *grad_scale  # per-row gradient scale, or NULL:
    double grad_scale_all     # the scale of every row


cdef class CEOptions:
    """The constant options of a cross-entropy call, in the form the row
    kernels take them (xt_ce_options): class weights (float64, length C,
    or None), label smoothing, z-loss and soft cap (0: none)."""
    cdef readonly object class_weight
    cdef double[::1] _w
    cdef readonly double smoothing, z_loss, softcap

    def __init__(self, class_weight=None, double smoothing=0.0, double z_loss=0.0,
                 double softcap=0.0):
        self.class_weight = class_weight
        if class_weight is not None:
            self._w = class_weight
        self.smoothing = smoothing
        self.z_loss = z_loss
        self.softcap = softcap

    cdef xt_ce_options options(self, Py_ssize_t nclasses) except *:
        if self.class_weight is not None:
            _expect("ce_rows", "len(class_weight)", self._w.shape[0], nclasses)
        return _options(nclasses, self._w, self.class_weight is not None,
                        self.smoothing, self.z_loss, self.softcap)


cdef CEOptions _DEFAULT_OPTIONS = CEOptions()


cdef inline void _row_loss_coefs(const xt_ce_options *o, const xt_ce_stats *st,
                                 double ls, double rowmax, double x_y, Py_ssize_t y,
                                 bint prob, double gs, _row_coefs *c,
                                 double *loss) noexcept nogil:
    """Loss of a whole row from its stats, ls (its log-sum-exp less the max
    rowmax, xt_ce_log_sum) and rowmax, and the
    coefficients of its gradient in c (skipped when c is NULL: a loss alone
    is the per-row cost of the many-short-rows case). x_y is the (capped)
    target logit of an index target y; prob selects a probability target
    instead.

    Every temporary is a local of this function: inside a prange, a
    variable that is only written through a pointer is shared between the
    threads (Cython privatises assigned variables only), which made the
    long-row path's results depend on the thread count."""
    cdef double wq, w_y, lse = rowmax + ls
    if prob:
        loss[0] = xt_ce_prob_loss(o, st, ls, rowmax, &wq)
    else:
        w_y = _wy(o, y)
        loss[0] = xt_ce_index_loss(o, st, ls, rowmax, x_y, w_y)
    if c == NULL:
        return
    c.ls = ls
    c.rowmax = rowmax
    c.bq = 0.0
    c.by = 0.0
    if prob:
        c.a = _prob_row_grad_coefs(o, gs, wq, lse, &c.bq, &c.bc)
    else:
        c.a = _index_row_grad_coefs(o, gs, w_y, lse, &c.bc, &c.by)


cdef inline void _ce_row(const xt_ce_options *o, const xt_ce_stats *st, double ls,
                         double rowmax, const real *src, Py_ssize_t y, const real *q,
                         double gs, bint want_grad, real *grad, double *loss,
                         int have_exp=0) noexcept nogil:
    """Loss (and gradient) of a whole row from its stats, ls and max;
    src is the (capped) row, q its probability target (or NULL: index y);
    have_exp: grad already holds the row's exps (see xt_ce_grad_slice)."""
    cdef _row_coefs c
    _row_loss_coefs(o, st, ls, rowmax, src[y] if q == NULL else 0.0, y, q != NULL,
                    gs, &c if want_grad else NULL, loss)
    if want_grad:
        _grad_slice(src, o.nclasses, c.ls, c.rowmax, c.a, c.bq, c.bc, o.class_weight,
                    q, y, c.by, o.softcap, grad, have_exp)


cdef inline void _sums(const real *x, Py_ssize_t n, const double *w, const real *q,
                       int need_wx, double shift, xt_ce_stats *st) noexcept nogil:
    if real is float:
        xt_ce_sums_f32(x, n, w, q, need_wx, shift, st)
    else:
        xt_ce_sums_f64(x, n, w, q, need_wx, shift, st)


cdef inline int _partial_store(const real *x, Py_ssize_t n, real *out,
                               xt_lse_partial *p) noexcept nogil:
    if real is float:
        return xt_partial_store_f32(x, n, out, p)
    else:
        return xt_partial_store_f64(x, n, out, p)


cdef inline void _ce_row_in_cache(const xt_ce_options *o, const real *src, Py_ssize_t y,
                                  const real *q, int need_wx, double gs, real *grad,
                                  double *loss) noexcept nogil:
    """Loss (and gradient, when grad is not NULL) of a row short enough to
    stay in cache between its passes. With a gradient, no soft cap and grad
    apart from the logits, the reduction's exps are kept in grad and
    rescaled (one exp per element instead of two); the weighted sums (of
    the logits less the max) follow, from the logits left intact. Locals
    here are private to the calling thread."""
    cdef xt_ce_stats st
    cdef int stored = 0
    if grad == NULL or o.softcap > 0.0 or grad == src:
        st = _stats(src, o.nclasses, o.class_weight, q, need_wx)
    else:
        stored = _partial_store(src, o.nclasses, grad, &st.lse)
        _sums(src, o.nclasses, o.class_weight, q, need_wx, xt_ce_shift(st.lse), &st)
    _ce_row(o, &st, xt_ce_log_sum(st.lse), st.lse.max, src, y, q, gs, grad != NULL,
            grad, loss, stored)


def ce_rows(const real[:, ::1] x, const long long[::1] target,
            const real[:, ::1] target_prob, CEOptions options not None,
            const double[::1] grad_scale, double grad_scale_all, double[::1] loss,
            real[:, ::1] grad, real[:, ::1] scratch, int nthreads):
    """Per-row cross-entropy of logits rows x, and optionally its gradient.

    Index targets (target_prob None): target[i] is the class of row i, or
    negative for an ignored row (loss 0, gradient 0). Probability targets:
    target_prob has x's shape (target is then not read). loss[i] gets the
    row's loss before sample weights and reduction; with grad (not None),
    grad[i] gets its gradient times grad_scale[i] (or grad_scale_all when
    grad_scale is None). grad may be x itself. scratch (with a soft cap
    only) has one row of min(ncols, chunk) per thread.
    """
    cdef Py_ssize_t nrows = x.shape[0], ncols = x.shape[1]
    cdef _ce_call c
    if nthreads < 1:
        raise ValueError(f"xentc._core.ce_rows: nthreads is {nthreads}, expected >= 1")
    c.o = options.options(ncols)
    c.prob_target = target_prob is not None
    c.want_grad = grad is not None
    c.grad_scale = NULL
    c.grad_scale_all = grad_scale_all
    if c.prob_target:
        _expect("ce_rows", "target_prob.shape[0]", target_prob.shape[0], nrows)
        _expect("ce_rows", "target_prob.shape[1]", target_prob.shape[1], ncols)
    else:
        if target is None:
            raise ValueError("xentc._core.ce_rows: target or target_prob is needed")
        _expect("ce_rows", "len(target)", target.shape[0], nrows)
        _expect_targets("ce_rows", target, ncols, nthreads)
    if grad_scale is not None:
        _expect("ce_rows", "len(grad_scale)", grad_scale.shape[0], nrows)
        if nrows:
            c.grad_scale = &grad_scale[0]
    _expect("ce_rows", "len(loss)", loss.shape[0], nrows)
    if c.want_grad:
        _expect("ce_rows", "grad.shape[0]", grad.shape[0], nrows)
        _expect("ce_rows", "grad.shape[1]", grad.shape[1], ncols)
    if options.softcap > 0.0:
        if scratch is None:
            raise ValueError("xentc._core.ce_rows: a soft cap needs scratch")
        _expect("ce_rows", "scratch.shape[0]", scratch.shape[0], nthreads)
        _expect("ce_rows", "scratch.shape[1]", scratch.shape[1], _imin(ncols, XT_CHUNK))
    if nrows == 0:
        return
    _ce_rows_core(x, target, target_prob, grad, scratch, &c, &loss[0], nthreads)


cdef inline bint _fused_index_rows(Py_ssize_t ncols, Py_ssize_t itemsize) noexcept nogil:
    """Do rows of ncols classes go to the fused index-target kernels (when
    the options allow: _ce_rows_core), ce_plain's one parallel region
    included? The forward's limit with or without a gradient: both must
    give the same loss bits, and past it the forward loses."""
    return _grouped(ncols, itemsize, XT_SHORT_LSE) and xt_have_ce_index()


cdef inline Py_ssize_t _chunked_tile_rows(Py_ssize_t nrows, Py_ssize_t ncols,
                                          Py_ssize_t itemsize, int nthreads) noexcept nogil:
    """Rows of a tile of _ce_rows_core's chunked path with a gradient: a
    gradient of about XT_CE_GRAD_BIG_BYTES (ce_options.h: the largest taken
    to stay in the caches beside its logits; at least one row per thread)
    when the logits are more than four times that, all rows otherwise.
    Why: the exps the first pass keeps in the gradient are rescaled by the
    last; untiled, a gradient past the caches went to memory and came back.
    Forward+gradient at 70001 and 128256 classes, 2 threads, alternating
    against no tiles, best of 4-6, in runs on a quiet and a busy host:
    float32 at 2^25 elements +7 to +29% (tiles of 16 MiB +15-18%), float64
    at 2^24 +9 to +28%, float32 at 2^24 even to +15%; tiles at 2^23 were
    -6 to +6%, at 2^22 (two tiles) -4 to -6%: a gradient that stays in L3
    (32 MiB here) gains nothing from them, and pays their barriers."""
    cdef Py_ssize_t rowbytes = ncols * itemsize
    if nrows * rowbytes <= 4 * <Py_ssize_t> XT_CE_GRAD_BIG_BYTES:
        return nrows
    return _imax(XT_CE_GRAD_BIG_BYTES // rowbytes, nthreads)


cdef int _ce_rows_core(const real[:, ::1] x, const long long[::1] target,
                       const real[:, ::1] target_prob, real[:, ::1] grad,
                       real[:, ::1] scratch, const _ce_call *c, double *loss,
                       int nthreads) except -1:
    """ce_rows on arguments it has checked (nrows > 0); loss has nrows
    elements. Only the buffers the call c asks for are read: target_prob
    for probability targets, grad for a gradient, scratch for a soft cap."""
    cdef Py_ssize_t nrows = x.shape[0], ncols = x.shape[1]
    cdef Py_ssize_t nchunks = (ncols + XT_CHUNK - 1) // XT_CHUNK
    cdef xt_ce_options o = c.o
    cdef bint prob_target = c.prob_target, want_grad = c.want_grad
    cdef bint has_weight = o.class_weight != NULL
    cdef double softcap = o.softcap, grad_scale_all = c.grad_scale_all
    cdef const double *grad_scale = c.grad_scale
    cdef int need_wx = o.smoothing > 0.0
    cdef bint per_row_scale = grad_scale != NULL
    cdef Py_ssize_t i, t, r, y, off, n, r0, nb
    cdef int tid
    cdef const real *src
    cdef const real *q = NULL
    cdef real *scr = NULL
    cdef xt_ce_stats st
    cdef double x_y, shift, ls
    cdef int have_exp
    cdef xt_ce_stats *parts
    cdef _row_coefs *coefs
    cdef xt_lse_partial *short_parts
    cdef double *short_ls
    cdef xt_ce_stats *short_stats

    if (not prob_target and softcap <= 0.0 and not (need_wx and has_weight)
            and _fused_index_rows(ncols, sizeof(real))):
        return _ce_index_fused(x, target, grad, c, loss, nthreads)

    if ncols <= XT_SHORT_MAX_COLS and softcap <= 0.0:
        # Many short rows: partials of blocks of rows by the short-row kernel
        # (one vector exp per block), then each row's loss and gradient.
        short_parts = <xt_lse_partial *> malloc(
            nthreads * SHORT_TASK_ROWS * sizeof(xt_lse_partial))
        short_ls = <double *> malloc(nthreads * SHORT_TASK_ROWS * sizeof(double))
        # One stats record per thread: threads write their own through a
        # pointer (a struct variable assigned field by field inside prange
        # would be shared between threads).
        short_stats = <xt_ce_stats *> calloc(nthreads, sizeof(xt_ce_stats))
        if short_parts == NULL or short_ls == NULL or short_stats == NULL:
            free(short_parts)
            free(short_ls)
            free(short_stats)
            raise MemoryError("xentc: cannot allocate row partials")
        with nogil, parallel(num_threads=nthreads):
            for t in prange((nrows + SHORT_TASK_ROWS - 1) // SHORT_TASK_ROWS,
                            schedule="static"):
                r0 = t * SHORT_TASK_ROWS
                nb = _imin(SHORT_TASK_ROWS, nrows - r0)
                # this thread's buffers, looked up once per task (threadid()
                # is a call into the OpenMP runtime)
                tid = threadid()
                _short_rows(&x[r0, 0], nb, ncols, XT_SHORT_PARTIALS, NULL,
                            short_parts + tid * SHORT_TASK_ROWS,
                            short_ls + tid * SHORT_TASK_ROWS)
                for r in range(nb):
                    i = r0 + r
                    y = -1 if prob_target else target[i]
                    if not prob_target and y < 0:
                        loss[i] = 0.0
                        if want_grad:
                            _zero(&grad[i, 0], ncols)
                        continue
                    q = &target_prob[i, 0] if prob_target else NULL
                    if need_wx or prob_target:
                        _sums(&x[i, 0], ncols, o.class_weight, q, need_wx,
                              xt_ce_shift(short_parts[tid * SHORT_TASK_ROWS + r]),
                              short_stats + tid)
                    _ce_row(&o, short_stats + tid, short_ls[tid * SHORT_TASK_ROWS + r],
                            short_parts[tid * SHORT_TASK_ROWS + r].max,
                            &x[i, 0], y, q, (grad_scale[i] if per_row_scale else grad_scale_all),
                            want_grad, &grad[i, 0] if want_grad else NULL, &loss[i])
        free(short_parts)
        free(short_ls)
        free(short_stats)
        return 0

    if nchunks <= 1:
        # One pass per row while it is in cache: stats, loss, gradient.
        with nogil, parallel(num_threads=nthreads):
            scr = &scratch[threadid(), 0] if softcap > 0.0 else NULL
            for i in prange(nrows, schedule="static"):
                y = -1 if prob_target else target[i]
                if not prob_target and y < 0:
                    loss[i] = 0.0
                    if want_grad:
                        _zero(&grad[i, 0], ncols)
                    continue
                src = _capped(&x[i, 0], ncols, softcap, scr)
                q = &target_prob[i, 0] if prob_target else NULL
                _ce_row_in_cache(&o, src, y, q, need_wx,
                                 (grad_scale[i] if per_row_scale else grad_scale_all),
                                 &grad[i, 0] if want_grad else NULL, &loss[i])
        return 0

    # Long rows: stats of fixed chunks in parallel, merged per row in chunk
    # order (same bits for any thread count), then the gradient by chunks;
    # with a gradient, in tiles of rows (_chunked_tile_rows) taken through
    # all of it one after the other, so that the exps kept below are
    # rescaled while they are still in cache.
    # With a gradient (no soft cap, grad apart from the logits) each chunk's
    # exps relative to its own max are kept in grad as its stats are taken,
    # and the gradient pass rescales them by exp(chunk max - row max) with
    # the rest of the scale: one exp per element instead of two (float32
    # 16x128256, 2 threads: 0.46 -> 0.35 ms).
    cdef bint keep_exps = want_grad and softcap <= 0.0 and &grad[0, 0] != &x[0, 0]
    cdef Py_ssize_t i0, i1
    cdef Py_ssize_t tile = (_chunked_tile_rows(nrows, ncols, sizeof(real), nthreads)
                            if want_grad else nrows)
    cdef unsigned char *stored = NULL
    cdef double *cmax = NULL
    parts = <xt_ce_stats *> malloc(nrows * nchunks * sizeof(xt_ce_stats))
    coefs = <_row_coefs *> malloc(nrows * sizeof(_row_coefs))
    if keep_exps:
        stored = <unsigned char *> malloc(nrows * nchunks)
        cmax = <double *> malloc(nrows * nchunks * sizeof(double))
    if parts == NULL or coefs == NULL or (keep_exps and (stored == NULL or cmax == NULL)):
        free(parts)
        free(coefs)
        free(stored)
        free(cmax)
        raise MemoryError("xentc: cannot allocate cross-entropy partials")
    try:
        i0 = 0
        while i0 < nrows:
            i1 = _imin(nrows, i0 + tile)
            with nogil, parallel(num_threads=nthreads):
                scr = &scratch[threadid(), 0] if softcap > 0.0 else NULL
                for t in prange(i0 * nchunks, i1 * nchunks, schedule="static"):
                    i = t // nchunks
                    off = (t % nchunks) * XT_CHUNK
                    n = _imin(XT_CHUNK, ncols - off)
                    src = _capped(&x[i, off], n, softcap, scr)
                    q = &target_prob[i, off] if prob_target else NULL
                    if keep_exps:
                        stored[t] = _partial_store(src, n, &grad[i, off], &parts[t].lse)
                        cmax[t] = parts[t].lse.max
                        _sums(src, n, o.class_weight + off if has_weight else NULL, q, need_wx,
                              xt_ce_shift(parts[t].lse), &parts[t])
                    else:
                        parts[t] = _stats(src, n, o.class_weight + off if has_weight else NULL,
                                          q, need_wx)
            # parts[i] takes row i's merged stats over stats already merged:
            # in the first tile row i's chunk stats start at i nchunks >= i
            # and are read before parts[i] is written, the later rows' lie
            # past it; in a later tile they all start at i0 nchunks >= i1
            # (i0 >= tile there, so i1 <= 2 i0 <= i0 nchunks)
            with nogil:
                for i in range(i0, i1):
                    st = parts[i * nchunks]
                    for t in range(1, nchunks):
                        st = xt_ce_stats_merge(st, parts[i * nchunks + t])
                    parts[i] = st
            with nogil, parallel(num_threads=nthreads):
                for i in prange(i0, i1, schedule="static"):
                    y = -1 if prob_target else target[i]
                    if not prob_target and y < 0:
                        loss[i] = 0.0
                        continue
                    x_y = 0.0
                    if not prob_target:
                        x_y = x[i, y]
                        if softcap > 0.0:
                            x_y = softcap * tanh(x_y / softcap)
                    _row_loss_coefs(&o, &parts[i], xt_ce_log_sum(parts[i].lse),
                                    parts[i].lse.max, x_y, y, prob_target,
                                    (grad_scale[i] if per_row_scale else grad_scale_all),
                                    &coefs[i], &loss[i])
            if want_grad:
                with nogil, parallel(num_threads=nthreads):
                    scr = &scratch[threadid(), 0] if softcap > 0.0 else NULL
                    for t in prange(i0 * nchunks, i1 * nchunks, schedule="static"):
                        i = t // nchunks
                        off = (t % nchunks) * XT_CHUNK
                        n = _imin(XT_CHUNK, ncols - off)
                        y = -1 if prob_target else target[i]
                        if not prob_target and y < 0:
                            _zero(&grad[i, off], n)
                            continue
                        src = _capped(&x[i, off], n, softcap, scr)
                        q = &target_prob[i, off] if prob_target else NULL
                        have_exp = keep_exps and stored[t]
                        shift, ls = coefs[i].rowmax, coefs[i].ls
                        if have_exp:
                            # exp(x - m_c) kept: (m_c, ls + rowmax - m_c) give the
                            # same a p_j = exp(x - rowmax - ls) a
                            shift, ls = cmax[t], ls + (shift - cmax[t])
                        _grad_slice(src, n, ls, shift, coefs[i].a, coefs[i].bq, coefs[i].bc,
                                    o.class_weight + off if has_weight else NULL,
                                    q, y - off if y >= 0 else -1, coefs[i].by,
                                    softcap, &grad[i, off], have_exp)
            i0 = i1
    finally:
        free(parts)
        free(coefs)
        free(stored)
        free(cmax)
    return 0


cdef struct _task_sums:
    # ce_plain's use of _ce_index_fused: each task checks its targets
    # (xt_ce_index_args.check_targets), writes its losses into its thread's
    # buffer and sums them in _sum_doubles' order into totals[t] (the
    # kernel as it makes them, xt_ce_index_args.loss_total; _sum_doubles
    # after the per-row path when a group took it); bad[t] = 1 where a
    # target is not a class index (the task computes nothing).
    double *totals
    unsigned char *bad
    double **bufs           # one buffer of task rows per thread
    bint check              # the kernel checks the targets (else the caller has)
    long long ignore_index


cdef int _ce_index_fused(const real[:, ::1] x, const long long[::1] target,
                         real[:, ::1] grad, const _ce_call *c, double *loss,
                         int nthreads, _task_sums *sums=NULL) except -1:
    """_ce_rows_core for index targets by the fused kernels (algo/ce_rows.h),
    in tasks of _group_task_rows rows: the rows they leave (special[i]: a
    non-finite max, NaN, a gradient scale beyond the dtype) are redone by
    the per-row path, which owns those rules. With sums (loss unused), each
    task's losses stay in its thread's buffer and only their sum is kept
    (see _task_sums)."""
    cdef Py_ssize_t nrows = x.shape[0], ncols = x.shape[1]
    cdef Py_ssize_t t, r, i, r0, nb, nspecial
    cdef bint want_grad = c.want_grad
    cdef xt_ce_index_args a, at
    cdef unsigned char *special = <unsigned char *> malloc(nrows)
    cdef real *g = NULL
    cdef const double *gsc = NULL
    cdef double *lt
    if special == NULL:
        raise MemoryError("xentc: cannot allocate row flags")
    a.o = c.o
    a.grad_scale_all = c.grad_scale_all
    a.check_targets = sums != NULL and sums.check
    a.ignore_index = sums.ignore_index if sums != NULL else -1
    a.loss_total = NULL
    a.grad_big = want_grad and nrows * ncols * <Py_ssize_t> sizeof(real) > XT_CE_GRAD_BIG_BYTES
    cdef Py_ssize_t task = _group_task_rows(ncols)
    try:
        with nogil, parallel(num_threads=nthreads):
            for t in prange((nrows + task - 1) // task, schedule="static"):
                r0 = t * task
                nb = _imin(task, nrows - r0)
                g = &grad[r0, 0] if want_grad else NULL
                gsc = c.grad_scale + r0 if c.grad_scale != NULL else NULL
                # (threadid() is a call into the OpenMP runtime: only with sums)
                lt = loss + r0 if sums == NULL else sums.bufs[threadid()]
                # with sums the kernel sums the task's losses itself (NaN
                # when it left a group to the per-row path: summed below)
                at = a
                if sums != NULL:
                    at.loss_total = &sums.totals[t]
                if real is float:
                    nspecial = xt_ce_index_f32(&x[r0, 0], nb, &target[r0], gsc, &at,
                                               lt, g, special + r0)
                else:
                    nspecial = xt_ce_index_f64(&x[r0, 0], nb, &target[r0], gsc, &at,
                                               lt, g, special + r0)
                if nspecial < 0:   # a target that is not a class index (sums only)
                    sums.bad[t] = 1
                    continue
                if nspecial > 0:
                    for r in range(nb):
                        i = r0 + r
                        if special[i]:
                            _ce_row_in_cache(&c.o, &x[i, 0], target[i], NULL,
                                             c.o.smoothing > 0.0,
                                             (c.grad_scale[i] if c.grad_scale != NULL
                                              else c.grad_scale_all),
                                             &grad[i, 0] if want_grad else NULL, &lt[r])
                if sums != NULL and isnan(sums.totals[t]):
                    sums.totals[t] = _sum_doubles(lt, nb)
    finally:
        free(special)
    return 0


cdef Py_ssize_t _scan_targets(const long long[::1] target, long long nclasses,
                              long long ignore_index, long long *out,
                              Py_ssize_t *first_bad) noexcept nogil:
    """The number of targets in [0, nclasses) that are not ignore_index;
    *first_bad gets the position of the first target out of range that is
    not ignore_index (or stays -1). out (or NULL) gets target with ignored
    and bad targets as -1."""
    cdef Py_ssize_t i, nvalid = 0
    cdef long long t
    for i in range(target.shape[0]):
        t = target[i]
        if t == ignore_index:   # may be a class index itself
            t = -1
        # one unsigned compare: negatives wrap above nclasses
        elif <unsigned long long> t < <unsigned long long> nclasses:
            nvalid += 1
        else:
            t = -1
            if first_bad[0] < 0:
                first_bad[0] = i
        if out != NULL:
            out[i] = t
    return nvalid


def prepare_index_targets(const long long[::1] target, long long nclasses,
                          long long ignore_index, long long[::1] out, int nthreads=1):
    """out = target with ignore_index as -1, in one pass; returns
    (position of the first target outside [0, nclasses) that is not
    ignore_index, or -1; the number of targets in [0, nclasses)).
    An empty out only scans: when every target is a class index the
    caller can use target itself, with no N-sized copy. Without an out,
    many targets are counted on nthreads threads (see
    _count_class_indices), and scanned in order only when some are not
    class indices."""
    cdef Py_ssize_t n = target.shape[0], first_bad = -1, nvalid
    cdef bint write = out.shape[0] > 0
    if write or n == 0:
        _expect("prepare_index_targets", "len(out)", out.shape[0], n)
    if nthreads < 1:
        raise ValueError(f"xentc._core.prepare_index_targets: nthreads is {nthreads}, "
                         "expected >= 1")
    with nogil:
        nvalid = -1
        if not write and _scan_threads(n, nthreads) > 1:
            nvalid = _count_class_indices(target, nclasses, ignore_index, nthreads)
        if nvalid != n:
            nvalid = _scan_targets(target, nclasses, ignore_index,
                                   &out[0] if write else NULL, &first_bad)
    return first_bad, nvalid


cdef double _sum_doubles(const double *v, Py_ssize_t n) noexcept nogil:
    """Sum in a fixed order: eight running sums over the positions mod 8,
    added pairwise at the end."""
    cdef double s[8]
    cdef Py_ssize_t i = 0, k
    for k in range(8):
        s[k] = 0.0
    while i + 8 <= n:
        for k in range(8):
            s[k] += v[i + k]
        i += 8
    for k in range(n - i):
        s[k] += v[i + k]
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))


cdef double _sum_chunks(const double *v, Py_ssize_t n, Py_ssize_t chunk,
                        double total) noexcept nogil:
    """total plus the sums of v's chunks of `chunk` values (the last may be
    shorter), each in _sum_doubles' order, added in order."""
    cdef Py_ssize_t s = 0
    while s < n:
        total += _sum_doubles(v + s, _imin(chunk, n - s))
        s += chunk
    return total


cdef inline Py_ssize_t _loss_tile(Py_ssize_t tile_rows, Py_ssize_t chunk) noexcept nogil:
    """Rows of a loss tile: tile_rows rounded down to whole chunks (at least one)."""
    return _imax(chunk, tile_rows // chunk * chunk)


def loss_order(Py_ssize_t ncols, Py_ssize_t tile_rows):
    """(chunk, tile) for rows of ncols classes: the cross-entropy family
    sums its per-sample losses in chunks of `chunk` rows (the fused
    kernels' tasks, _group_task_rows), each in _sum_doubles' order, the
    chunk sums added in order (_sum_chunks); a caller that runs tiles of
    rows takes `tile` rows, whole chunks, so that its tiles add up the same
    way. Summing inside the tasks keeps the sum on the kernels' threads
    (one serial pass per tile was 6% of cross_entropy at 2 classes) and
    the losses in cache, with the same bits for every thread count."""
    if ncols < 1 or tile_rows < 1:
        raise ValueError(f"xentc._core.loss_order: ncols is {ncols} and tile_rows "
                         f"{tile_rows}, expected >= 1")
    chunk = _group_task_rows(ncols)
    return chunk, _loss_tile(tile_rows, chunk)


def sum_losses(const double[::1] loss, Py_ssize_t chunk=0, double total=0.0):
    """total plus the sum of the per-sample losses in chunks of `chunk`
    rows (0: one chunk), as _sum_chunks adds them. Every reduction of the
    cross-entropy family sums through it (or, in ce_plain, through the same
    order), so the same losses give the same bits whatever path computed
    them."""
    cdef Py_ssize_t n = loss.shape[0]
    if n == 0:
        return total
    return _sum_chunks(&loss[0], n, chunk if chunk > 0 else n, total)


# Placeholders for the arguments ce_plain's calls do not use.


cdef int _plain_call(str hook, Py_ssize_t n, Py_ssize_t ncols, const long long[::1] target,
                     long long ignore_index, Py_ssize_t tile_rows, int nthreads,
                     _ce_call *c, bint count=True) except -1:
    """ce_plain's checks and its call c (every option at its default, no
    gradient): 1 when there are rows and (with count) every target is a
    class index (the fast path's case), else 0."""
    cdef Py_ssize_t nvalid
    _expect(hook, "len(target)", target.shape[0], n)
    if nthreads < 1 or tile_rows < 1:
        raise ValueError(f"xentc._core.{hook}: nthreads is {nthreads} and tile_rows "
                         f"{tile_rows}, expected >= 1")
    c.o = _DEFAULT_OPTIONS.options(ncols)
    c.prob_target = False
    c.want_grad = False
    c.grad_scale = NULL
    c.grad_scale_all = 0.0
    if n == 0 or not count:
        return n > 0
    with nogil:
        nvalid = _count_class_indices(target, ncols, ignore_index, nthreads)
    return nvalid == n


cdef enum:
    # Bytes past a buffer's size that its block needs for _ring_place to
    # choose among the 64-byte offsets of a 4 KB ring.
    _RING_SLACK = 4096 + 64


cdef inline Py_ssize_t _ring_distance(size_t a, size_t b) noexcept nogil:
    """Distance of a and b on a 4 KB ring (their addresses' low 12 bits)."""
    cdef Py_ssize_t d = <Py_ssize_t> ((a - b) & 4095)
    return d if d <= 2048 else 4096 - d


cdef double *_tile_losses(Py_ssize_t n, Py_ssize_t tile_rows, const void *x,
                          const void *target, void **block) except NULL:
    """A buffer of one tile's per-sample losses, from a malloc'ed block
    (block[0], to free) and placed, to 64 bytes, as far as it can be from
    the logits' and the targets' addresses on a 4 KB ring. The kernels store
    the losses of a group of rows while they load the next groups' logits
    and targets; a store and a load 4 KB apart look alike to the CPU (4K
    aliasing) and the load waits: with a malloc'ed buffer at whatever
    offset, cross_entropy of 100000 x 10 float32 on 2 threads ran at
    0.45-0.75 ms from call to call; ce_rows into a loss array 128 bytes
    past the logits on the ring took 0.48 ms against 0.33 elsewhere."""
    cdef char *raw = <char *> malloc(_imin(n, tile_rows) * sizeof(double) + _RING_SLACK)
    if raw == NULL:
        raise MemoryError("xentc: cannot allocate per-sample losses")
    block[0] = raw
    return <double *> _ring_place(<size_t> raw, <size_t> x, <size_t> target)


cdef size_t _ring_place(size_t raw, size_t x, size_t target) noexcept nogil:
    """The address in [raw, raw + _RING_SLACK), 64-byte aligned, farthest
    from x and target on the 4 KB ring (see _tile_losses)."""
    cdef size_t base = (raw + 63) & ~(<size_t> 63), best = base, cand
    cdef Py_ssize_t k, dist, best_dist = -1
    for k in range(64):
        cand = base + 64 * k
        dist = _imin(_ring_distance(cand, x), _ring_distance(cand, target))
        if dist > best_dist:
            best, best_dist = cand, dist
    return best


def placed_losses(Py_ssize_t m, size_t x, size_t target):
    """A float64 array of m per-sample losses placed as _tile_losses places
    its buffer, away from the logits at address x and the targets at
    address target on the 4 KB ring (the Python path's tile buffer)."""
    block = np.empty(m * 8 + _RING_SLACK, np.uint8)
    start = _ring_place(<size_t> block.ctypes.data, x, target) - <size_t> block.ctypes.data
    return block[start:start + m * 8].view(np.float64)


cdef object _ce_plain_fused(const real[:, ::1] x, const long long[::1] target,
                            long long ignore_index, bint check, real[:, ::1] grad,
                            const _ce_call *c, int nthreads):
    """ce_plain by the fused kernels in one parallel region over the whole
    array: each task checks its targets (with check) and sums its losses in
    its thread's buffer (_task_sums), the task sums added in order; None
    when a target is not a class index. One region rather than tiles: tiles
    of 2^18 rows split into tasks that two threads could not share evenly
    (7 tasks a tile at 3 classes: 4 for one thread and 3, the last of 64
    rows, for the other)."""
    cdef Py_ssize_t nrows = x.shape[0], task = _group_task_rows(x.shape[1])
    cdef Py_ssize_t ntasks = (nrows + task - 1) // task, t
    cdef size_t each = _imin(task, nrows) * sizeof(double) + _RING_SLACK
    cdef double total = 0.0
    cdef _task_sums s
    cdef char *raw = <char *> malloc(nthreads * each)
    s.totals = <double *> malloc(ntasks * sizeof(double))
    s.bad = <unsigned char *> calloc(ntasks, 1)
    s.bufs = <double **> malloc(nthreads * sizeof(double *))
    s.check = check
    s.ignore_index = ignore_index
    try:
        if raw == NULL or s.totals == NULL or s.bad == NULL or s.bufs == NULL:
            raise MemoryError("xentc: cannot allocate per-sample losses")
        for t in range(nthreads):
            # away from the logits and targets on the 4 KB ring (4K
            # aliasing, see _tile_losses)
            s.bufs[t] = <double *> _ring_place(<size_t> (raw + t * each), <size_t> &x[0, 0],
                                               <size_t> &target[0])
        _ce_index_fused(x, target, grad, c, NULL, nthreads, &s)
        for t in range(ntasks):
            if s.bad[t]:
                return None
            total += s.totals[t]
    finally:
        free(raw)
        free(s.totals)
        free(s.bad)
        free(s.bufs)
    return total


def ce_plain(const real[:, ::1] x, const long long[::1] target, long long ignore_index,
             Py_ssize_t tile_rows, int nthreads, real[:, ::1] grad=None,
             double grad_scale_all=0.0):
    """Sum of the cross-entropy losses of logits rows x with class indices
    `target` and every option at its default, or None when a target is
    ignore_index or out of range (the caller's general path then decides).
    With grad (x's shape; x itself, or memory apart from x and target),
    the gradient of the losses times grad_scale_all too; when None is
    returned grad may be partly written (x is left alone: in place, the
    targets are checked before any row is written).

    The general path's arithmetic in one call, summed in loss_order's
    chunks as _cross_entropy._Problem.loss sums: rows the fused kernels
    take run in one parallel region (_ce_plain_fused), the others as
    ce_rows over tiles of loss_order's tile rows. What it saves is Python:
    that set-up runs with cold caches, right after the previous call's
    kernel streamed its logits through them.
    """
    cdef Py_ssize_t n = x.shape[0], ncols = x.shape[1], start = 0, stop
    cdef Py_ssize_t chunk = _group_task_rows(ncols)
    cdef double total = 0.0
    cdef double *buf
    cdef void *block = NULL
    cdef _ce_call c
    cdef bint fused = _fused_index_rows(ncols, sizeof(real))
    cdef bint in_place = False
    if grad is not None:
        _expect("ce_plain", "grad.shape[0]", grad.shape[0], n)
        _expect("ce_plain", "grad.shape[1]", grad.shape[1], ncols)
        in_place = n > 0 and ncols > 0 and <const void *> &grad[0, 0] == <const void *> &x[0, 0]
    # the targets counted first unless the fused kernels check them, which
    # they do before reading a row but after earlier tasks wrote theirs
    if not _plain_call("ce_plain", n, ncols, target, ignore_index, tile_rows, nthreads, &c,
                       not fused or in_place):
        return None
    if grad is not None:
        c.want_grad = True
        c.grad_scale_all = grad_scale_all
    if fused:
        return _ce_plain_fused(x, target, ignore_index, not in_place, grad, &c, nthreads)
    tile_rows = _loss_tile(tile_rows, chunk)
    buf = _tile_losses(n, tile_rows, &x[0, 0], &target[0], &block)
    try:
        while start < n:
            stop = _imin(n, start + tile_rows)
            # (no target_prob or scratch: None, so the specialisation is named)
            if real is float:
                _ce_rows_core[float](x[start:stop], target[start:stop], None,
                                     grad[start:stop] if grad is not None else None, None,
                                     &c, buf, nthreads)
            else:
                _ce_rows_core[double](x[start:stop], target[start:stop], None,
                                      grad[start:stop] if grad is not None else None, None,
                                      &c, buf, nthreads)
            total = _sum_chunks(buf, stop - start, chunk, total)
            start = stop
    finally:
        free(block)
    return total


def gather_rows(const real[:, ::1] x, const long long[::1] target,
                double[::1] out, int nthreads):
    """out[i] = x[i, target[i]], or 0 where target[i] < 0 (ignored)."""
    cdef Py_ssize_t i, nrows = x.shape[0]
    _expect("gather_rows", "len(target)", target.shape[0], nrows)
    _expect("gather_rows", "len(out)", out.shape[0], nrows)
    _expect_targets("gather_rows", target, x.shape[1], nthreads)
    for i in prange(nrows, nogil=True, num_threads=nthreads, schedule="static"):
        out[i] = x[i, target[i]] if target[i] >= 0 else 0.0
