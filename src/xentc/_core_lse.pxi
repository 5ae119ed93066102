# log-sum-exp: rows, partials (LSEPartial), their merge and finalisation, weights (b=), the exp test hook.
# (included by _core.pyx: one extension module, one dispatch table)

def lse_rows(const real[:, ::1] x, real[::1] out, int nthreads):
    """out[i] = log(sum(exp(x[i, :]))) for every row (x.shape[1] > 0)."""
    cdef Py_ssize_t nrows = x.shape[0], ncols = x.shape[1], i
    cdef Py_ssize_t nchunks = (ncols + XT_CHUNK - 1) // XT_CHUNK
    cdef xt_lse_partial *rows
    _expect("lse_rows", "len(out)", out.shape[0], nrows)
    if nrows == 0:
        return
    if _grouped(ncols, sizeof(real), XT_SHORT_LSE):
        _rows_grouped(x, XT_SHORT_LSE, &out[0], nthreads)
        return
    if ncols <= XT_SHORT_MAX_COLS:
        with nogil:
            _short_rows_parallel(x, XT_SHORT_LSE, &out[0], 1, NULL, nthreads)
        return
    if nchunks <= 1:
        for i in prange(nrows, nogil=True, num_threads=nthreads, schedule="static"):
            out[i] = <real> xt_partial_lse(_partial(&x[i, 0], ncols))
        return
    rows = _row_partials(x, nchunks, nthreads)
    for i in range(nrows):
        out[i] = <real> xt_partial_lse(rows[i])
    free(rows)


def partial_rows(const real[:, ::1] x, double[:, ::1] out, int nthreads):
    """The log-sum-exp partial of every row: out[i] = (max, nmax, rest, flags)
    (see include/xentc/lse_partial.h); rows may be empty."""
    cdef Py_ssize_t nrows = x.shape[0], ncols = x.shape[1], i
    cdef Py_ssize_t nchunks = (ncols + XT_CHUNK - 1) // XT_CHUNK
    cdef xt_lse_partial p
    cdef xt_lse_partial *rows
    _expect("partial_rows", "out.shape[0]", out.shape[0], nrows)
    _expect("partial_rows", "out.shape[1]", out.shape[1], 4)
    if nchunks <= 1:
        for i in prange(nrows, nogil=True, num_threads=nthreads, schedule="static"):
            p = _partial(&x[i, 0], ncols)
            out[i, 0] = p.max
            out[i, 1] = p.nmax
            out[i, 2] = p.rest
            out[i, 3] = p.flags
        return
    rows = _row_partials(x, nchunks, nthreads)
    for i in range(nrows):
        out[i, 0] = rows[i].max
        out[i, 1] = rows[i].nmax
        out[i, 2] = rows[i].rest
        out[i, 3] = rows[i].flags
    free(rows)


def merge_partials(const double[:, ::1] p, const double[:, ::1] q, double[:, ::1] out):
    """Row-wise merge of two partial arrays (n, 4), with the C merge."""
    cdef Py_ssize_t i
    cdef xt_lse_partial a, b, r
    _expect("merge_partials", "p.shape[1]", p.shape[1], 4)
    for name, buf in (("q", q), ("out", out)):
        _expect("merge_partials", name + ".shape[0]", buf.shape[0], p.shape[0])
        _expect("merge_partials", name + ".shape[1]", buf.shape[1], 4)
    for i in range(p.shape[0]):
        a.max = p[i, 0]; a.nmax = p[i, 1]; a.rest = p[i, 2]; a.flags = <int> p[i, 3]
        b.max = q[i, 0]; b.nmax = q[i, 1]; b.rest = q[i, 2]; b.flags = <int> q[i, 3]
        r = xt_partial_merge(a, b)
        out[i, 0] = r.max
        out[i, 1] = r.nmax
        out[i, 2] = r.rest
        out[i, 3] = r.flags


def finalize_partials(const double[:, ::1] p, double[::1] out):
    """log-sum-exp of each partial row (n, 4)."""
    cdef Py_ssize_t i
    cdef xt_lse_partial a
    _expect("finalize_partials", "p.shape[1]", p.shape[1], 4)
    _expect("finalize_partials", "len(out)", out.shape[0], p.shape[0])
    for i in range(p.shape[0]):
        a.max = p[i, 0]; a.nmax = p[i, 1]; a.rest = p[i, 2]; a.flags = <int> p[i, 3]
        out[i] = xt_partial_lse(a)


def exp_nonpositive(const real[::1] x, real[::1] out):
    """out = exp(x) by the active level's vector exp (meant for x <= 0; the
    test hook for the exp kernels' accuracy)."""
    _expect("exp_nonpositive", "len(out)", out.shape[0], x.shape[0])
    if x.shape[0] == 0:
        return
    if real is float:
        xt_active_expscale_f32(&x[0], x.shape[0], 0.0, 1.0, &out[0])
    else:
        xt_active_expscale_f64(&x[0], x.shape[0], 0.0, 1.0, &out[0])


def lse_weighted_rows(const double[:, ::1] a, const double[:, ::1] b,
                      double[::1] out, double[::1] sign, int nthreads):
    """out[i], sign[i] = log|sum(b[i] * exp(a[i]))|, sign of the sum."""
    cdef Py_ssize_t nrows = a.shape[0], ncols = a.shape[1], i
    _expect("lse_weighted_rows", "b.shape[0]", b.shape[0], nrows)
    _expect("lse_weighted_rows", "b.shape[1]", b.shape[1], ncols)
    _expect("lse_weighted_rows", "len(out)", out.shape[0], nrows)
    _expect("lse_weighted_rows", "len(sign)", sign.shape[0], nrows)
    for i in prange(nrows, nogil=True, num_threads=nthreads, schedule="static"):
        xt_lse_weighted_row(&a[i, 0], &b[i, 0], ncols, &out[i], &sign[i])
