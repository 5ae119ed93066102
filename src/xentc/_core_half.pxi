# 16-bit logits (float16, bfloat16): tiles of rows widened into per-thread float32 buffers, the float32 row kernels on them, outputs narrowed back (include/xentc/half_tiles.h).
# (included by _core.pyx: one extension module, one dispatch table)
#
# The arrays arrive as their bits (uint16 views of numpy.float16 or
# ml_dtypes.bfloat16 arrays) with `kind` saying which format they hold.

from libc.stdint cimport uint16_t
from libc.string cimport memset

cdef extern from "xentc/half_tiles.h" nogil:
    enum: XT_H16_F16
    enum: XT_H16_BF16
    void xt_h16_widen(int kind, const uint16_t *src, Py_ssize_t n, float *dst)
    void xt_h16_narrow(int kind, const float *src, Py_ssize_t n, uint16_t *dst)
    uint16_t xt_h16_from_double(int kind, double d)
    float xt_h16_to_f32(int kind, uint16_t h)
    xt_lse_partial xt_h16_stream_partial(int kind, const uint16_t *x, Py_ssize_t n)
    Py_ssize_t xt_h16_tile_rows(Py_ssize_t ncols)
    Py_ssize_t xt_h16_tile_elems(Py_ssize_t ncols)
    size_t xt_h16_workspace_bytes(Py_ssize_t ncols)
    void xt_h16_lse_tile(int kind, const uint16_t *x, Py_ssize_t nrows, Py_ssize_t ncols,
                         uint16_t *out, void *workspace)
    void xt_h16_softmax_tile(int kind, const uint16_t *x, Py_ssize_t nrows,
                             Py_ssize_t ncols, int take_log, uint16_t *out,
                             void *workspace)


cdef int _check_kind(str hook, int kind) except -1:
    if kind != XT_H16_F16 and kind != XT_H16_BF16:
        raise ValueError(f"xentc._core.{hook}: kind is {kind}, expected "
                         f"{XT_H16_F16} (float16) or {XT_H16_BF16} (bfloat16)")
    return 0


cdef inline size_t _round64(size_t b) noexcept nogil:
    return (b + 63) // 64 * 64


cdef char *_workspaces(Py_ssize_t ncols, int nthreads, size_t extra=0) except NULL:
    """nthreads workspaces of xt_h16_workspace_bytes(ncols) + extra bytes
    each (extra a multiple of 64), malloc'ed."""
    cdef char *ws = <char *> malloc(nthreads * (xt_h16_workspace_bytes(ncols) + extra))
    if ws == NULL:
        raise MemoryError("xentc: cannot allocate 16-bit tile buffers")
    return ws


def widen_h16(const uint16_t[::1] x, int kind, float[::1] out):
    """out = x's 16-bit values as float32, by the active level's kernel
    (the test hook for the conversions)."""
    _check_kind("widen_h16", kind)
    _expect("widen_h16", "len(out)", out.shape[0], x.shape[0])
    if x.shape[0]:
        xt_h16_widen(kind, &x[0], x.shape[0], &out[0])


def narrow_h16(const float[::1] x, int kind, uint16_t[::1] out):
    """out = x rounded to 16 bits (nearest even) by the active level's
    kernel (the test hook for the conversions)."""
    _check_kind("narrow_h16", kind)
    _expect("narrow_h16", "len(out)", out.shape[0], x.shape[0])
    if x.shape[0]:
        xt_h16_narrow(kind, &x[0], x.shape[0], &out[0])


def narrow_f64_scalar(double x, int kind):
    """narrow_f64 of one value: its 16 bits as an int."""
    _check_kind("narrow_f64_scalar", kind)
    return xt_h16_from_double(kind, x)


def narrow_f64(const double[::1] x, int kind, uint16_t[::1] out):
    """out = x rounded once to 16 bits (nearest even, NaN kept): the
    results computed in double (log-sum-exp, losses) reach 16 bits here."""
    cdef Py_ssize_t i
    _check_kind("narrow_f64", kind)
    _expect("narrow_f64", "len(out)", out.shape[0], x.shape[0])
    with nogil:
        for i in range(x.shape[0]):
            out[i] = xt_h16_from_double(kind, x[i])


def lse_rows_h16(const uint16_t[:, ::1] x, int kind, uint16_t[::1] out, int nthreads):
    """out[i] = log(sum(exp(x[i, :]))) of 16-bit rows (x.shape[1] > 0),
    rounded once to 16 bits."""
    cdef Py_ssize_t nrows = x.shape[0], ncols = x.shape[1], t, r0
    cdef Py_ssize_t tr = xt_h16_tile_rows(ncols)
    cdef size_t wsb = xt_h16_workspace_bytes(ncols)
    cdef char *ws
    _check_kind("lse_rows_h16", kind)
    _expect("lse_rows_h16", "len(out)", out.shape[0], nrows)
    if nrows == 0:
        return
    if ncols == 0:
        raise ValueError("xentc._core.lse_rows_h16: rows are empty")
    ws = _workspaces(ncols, nthreads)
    with nogil, parallel(num_threads=nthreads):
        for t in prange((nrows + tr - 1) // tr, schedule="static"):
            r0 = t * tr
            xt_h16_lse_tile(kind, &x[r0, 0], _imin(tr, nrows - r0), ncols, &out[r0],
                            ws + threadid() * wsb)
    free(ws)


def softmax_rows_h16(const uint16_t[:, ::1] x, int kind, uint16_t[:, ::1] out,
                     bint take_log, int nthreads):
    """softmax (or log_softmax) of 16-bit rows into out (which may be x):
    the float32 results rounded once to 16 bits."""
    cdef Py_ssize_t nrows = x.shape[0], ncols = x.shape[1], t, r0
    cdef Py_ssize_t tr = xt_h16_tile_rows(ncols)
    cdef size_t wsb = xt_h16_workspace_bytes(ncols)
    cdef char *ws
    _check_kind("softmax_rows_h16", kind)
    _expect("softmax_rows_h16", "out.shape[0]", out.shape[0], nrows)
    _expect("softmax_rows_h16", "out.shape[1]", out.shape[1], ncols)
    if nrows == 0 or ncols == 0:
        return
    ws = _workspaces(ncols, nthreads)
    with nogil, parallel(num_threads=nthreads):
        for t in prange((nrows + tr - 1) // tr, schedule="static"):
            r0 = t * tr
            xt_h16_softmax_tile(kind, &x[r0, 0], _imin(tr, nrows - r0), ncols, take_log,
                                &out[r0, 0], ws + threadid() * wsb)
    free(ws)


cdef void _ce_tile_h16(int kind, const uint16_t *x, Py_ssize_t nb, Py_ssize_t r0,
                       const long long *target, const float *target_prob,
                       const _ce_call *c, double *loss, uint16_t *grad,
                       char *ws) noexcept nogil:
    """Loss (and gradient) of the nb 16-bit rows starting at row r0: the
    tile widened into the workspace ws (a float32 tile, then the short-row
    partials and log-sums, then, with a gradient, a float32 gradient
    tile), the float32 row kernels of _core_ce.pxi on it, the gradient
    narrowed into grad. A function of its own: its locals are private to
    the calling thread."""
    cdef xt_ce_options o = c.o
    cdef Py_ssize_t C = o.nclasses, r, i, y, off, n
    cdef bint prob = c.prob_target, want_grad = c.want_grad
    cdef int need_wx = o.smoothing > 0.0
    cdef float *bx = <float *> ws
    cdef xt_lse_partial *parts = <xt_lse_partial *> (ws + _round64(
        xt_h16_tile_elems(C) * sizeof(float)))
    cdef double *ls = <double *> (parts + xt_h16_tile_rows(C))
    cdef float *bg = <float *> (ws + xt_h16_workspace_bytes(C))
    cdef float *src
    cdef float *g
    cdef const float *q
    cdef double gs
    cdef xt_ce_stats st
    cdef _row_coefs rc
    memset(&st, 0, sizeof(st))
    if (not want_grad and not prob and not need_wx and o.softcap <= 0.0
            and C > XT_SHORT_MAX_COLS):
        # the loss alone needs each row's partial and target logit: the
        # row read block by block (xt_h16_stream_partial), no tile widened
        for r in range(nb):
            i = r0 + r
            y = target[i]
            if y < 0:
                loss[i] = 0.0
                continue
            st.lse = xt_h16_stream_partial(kind, x + r * C, C)
            _row_loss_coefs(&o, &st, xt_ce_log_sum(st.lse), st.lse.max,
                            xt_h16_to_f32(kind, x[r * C + y]), y, 0, 0.0, NULL, &loss[i])
        return
    xt_h16_widen(kind, x, nb * C, bx)
    if C <= XT_SHORT_MAX_COLS and o.softcap <= 0.0:
        # many short rows: the short-row kernel's partials, as ce_rows
        _short_rows(<const float *> bx, nb, C, XT_SHORT_PARTIALS, NULL, parts, ls)
    for r in range(nb):
        i = r0 + r
        y = -1 if prob else target[i]
        src = bx + r * C
        g = bg + r * C if want_grad else NULL
        if not prob and y < 0:
            loss[i] = 0.0
            if want_grad:
                memset(grad + r * C, 0, C * sizeof(uint16_t))  # +0 in both formats
            continue
        q = target_prob + i * C if prob else NULL
        gs = c.grad_scale[i] if c.grad_scale != NULL else c.grad_scale_all
        if C <= XT_SHORT_MAX_COLS and o.softcap <= 0.0:
            if need_wx or prob:
                _sums(<const float *> src, C, o.class_weight, q, need_wx,
                      xt_ce_shift(parts[r]), &st)
            _ce_row(&o, &st, ls[r], parts[r].max, <const float *> src, y, q, gs,
                    want_grad, g, &loss[i])
        elif C <= XT_CHUNK:
            _ce_row_in_cache(&o, _capped(<const float *> src, C, o.softcap, src), y, q,
                             need_wx, gs, g, &loss[i])
        else:
            # a long row: its chunks' stats merged in order, as ce_rows
            _capped(<const float *> src, C, o.softcap, src)
            st = _stats(<const float *> src, _imin(C, XT_CHUNK), o.class_weight, q, need_wx)
            off = XT_CHUNK
            while off < C:
                st = xt_ce_stats_merge(st, _stats(
                    <const float *> src + off, _imin(C - off, XT_CHUNK),
                    o.class_weight + off if o.class_weight != NULL else NULL,
                    q + off if q != NULL else NULL, need_wx))
                off += XT_CHUNK
            _row_loss_coefs(&o, &st, xt_ce_log_sum(st.lse), st.lse.max,
                            src[y] if not prob else 0.0, y, prob, gs,
                            &rc if want_grad else NULL, &loss[i])
            if want_grad:
                off = 0
                while off < C:
                    n = _imin(C - off, XT_CHUNK)
                    _grad_slice(<const float *> src + off, n, rc.ls, rc.rowmax, rc.a,
                                rc.bq, rc.bc,
                                o.class_weight + off if o.class_weight != NULL else NULL,
                                q + off if q != NULL else NULL,
                                y - off if y >= 0 else -1, rc.by, o.softcap, g + off)
                    off += XT_CHUNK
        if want_grad:
            xt_h16_narrow(kind, g, C, grad + r * C)


def ce_rows_h16(const uint16_t[:, ::1] x, int kind, const long long[::1] target,
                const float[:, ::1] target_prob, CEOptions options not None,
                const double[::1] grad_scale, double grad_scale_all, double[::1] loss,
                uint16_t[:, ::1] grad, int nthreads):
    """ce_rows (see there) of 16-bit logits x: the per-row losses in
    double, the gradient (grad, 16-bit, may be x) as float32 rounded once.
    Probability targets come as float32 rows; a soft cap needs no scratch
    (the widened tile is capped in place)."""
    cdef Py_ssize_t nrows = x.shape[0], ncols = x.shape[1]
    cdef _ce_call c
    _check_kind("ce_rows_h16", kind)
    if nthreads < 1:
        raise ValueError(f"xentc._core.ce_rows_h16: nthreads is {nthreads}, expected >= 1")
    c.o = options.options(ncols)
    c.prob_target = target_prob is not None
    c.want_grad = grad is not None
    c.grad_scale = NULL
    c.grad_scale_all = grad_scale_all
    if c.prob_target:
        _expect("ce_rows_h16", "target_prob.shape[0]", target_prob.shape[0], nrows)
        _expect("ce_rows_h16", "target_prob.shape[1]", target_prob.shape[1], ncols)
    else:
        if target is None:
            raise ValueError("xentc._core.ce_rows_h16: target or target_prob is needed")
        _expect("ce_rows_h16", "len(target)", target.shape[0], nrows)
        _expect_targets("ce_rows_h16", target, ncols, nthreads)
    if grad_scale is not None:
        _expect("ce_rows_h16", "len(grad_scale)", grad_scale.shape[0], nrows)
        if nrows:
            c.grad_scale = &grad_scale[0]
    _expect("ce_rows_h16", "len(loss)", loss.shape[0], nrows)
    if c.want_grad:
        _expect("ce_rows_h16", "grad.shape[0]", grad.shape[0], nrows)
        _expect("ce_rows_h16", "grad.shape[1]", grad.shape[1], ncols)
    if nrows == 0:
        return
    _ce_tiles_h16(&x[0, 0], nrows, ncols, kind,
                  &target[0] if not c.prob_target else NULL,
                  &target_prob[0, 0] if c.prob_target else NULL, &c, &loss[0],
                  &grad[0, 0] if c.want_grad else NULL, nthreads)


cdef int _ce_tiles_h16(const uint16_t *x, Py_ssize_t nrows, Py_ssize_t ncols, int kind,
                       const long long *target, const float *target_prob, _ce_call *c,
                       double *loss, uint16_t *grad, int nthreads) except -1:
    """ce_rows_h16's work on nrows > 0 rows, tiles shared by the threads."""
    cdef Py_ssize_t tr = xt_h16_tile_rows(ncols), t, r0
    # each thread: the workspace, then a float32 gradient tile
    cdef size_t extra = _round64(xt_h16_tile_elems(ncols) * sizeof(float)) if c.want_grad else 0
    cdef size_t wsb = xt_h16_workspace_bytes(ncols) + extra
    cdef char *ws = _workspaces(ncols, nthreads, extra)
    with nogil, parallel(num_threads=nthreads):
        for t in prange((nrows + tr - 1) // tr, schedule="static"):
            r0 = t * tr
            _ce_tile_h16(kind, x + r0 * ncols, _imin(tr, nrows - r0), r0, target,
                         target_prob, c, loss,
                         grad + r0 * ncols if grad != NULL else NULL, ws + threadid() * wsb)
    free(ws)
    return 0


def ce_plain_h16(const uint16_t[:, ::1] x, int kind, const long long[::1] target,
                 long long ignore_index, Py_ssize_t tile_rows, int nthreads):
    """ce_plain (see there) of 16-bit logits x (their bits; kind as
    ce_rows_h16): the sum of the losses with every option at its default,
    or None when a target is ignore_index or out of range."""
    cdef Py_ssize_t n = x.shape[0], start = 0, stop
    cdef Py_ssize_t chunk = _group_task_rows(x.shape[1])
    cdef double total = 0.0
    cdef double *buf
    cdef void *block = NULL
    cdef _ce_call c
    _check_kind("ce_plain_h16", kind)
    if not _plain_call("ce_plain_h16", n, x.shape[1], target, ignore_index, tile_rows,
                       nthreads, &c):
        return None
    # summed in loss_order's chunks and tiles, as every path sums
    tile_rows = _loss_tile(tile_rows, chunk)
    buf = _tile_losses(n, tile_rows, &x[0, 0], &target[0], &block)
    try:
        while start < n:
            stop = _imin(n, start + tile_rows)
            # the rows' losses at buf[r - start]: the kernel indexes loss and
            # target by the tile's own rows
            _ce_tiles_h16(&x[start, 0], stop - start, x.shape[1], kind, &target[start],
                          NULL, &c, buf, NULL, nthreads)
            total = _sum_chunks(buf, stop - start, chunk, total)
            start = stop
    finally:
        free(block)
    return total
