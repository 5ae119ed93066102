# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, freethreading_compatible=True
"""
Compiled array loops of xentc.

Each function takes C-contiguous 2-D buffers whose rows are the slices to
reduce (the Python layer arranges that) and runs the per-row C kernels of
include/xentc over them, row-parallel with OpenMP and without the GIL. Long
rows are cut into fixed chunks (XT_CHUNK) that threads reduce separately;
the chunk partials are merged in chunk order, so the result does not depend
on the number of threads.
"""
from libc.stdlib cimport calloc, malloc, free
from cython.parallel cimport prange

import numpy as np


cdef extern from "xentc/xentc.h" nogil:
    ctypedef struct xt_lse_partial:
        double max
        double nmax
        double rest
        int flags

    enum: XT_CHUNK

    xt_lse_partial xt_partial_merge(xt_lse_partial p, xt_lse_partial q)
    double xt_partial_lse(xt_lse_partial p)
    xt_lse_partial xt_partial_f32(const float *x, Py_ssize_t n)
    xt_lse_partial xt_partial_f64(const double *x, Py_ssize_t n)
    int xt_partial_store_f32(const float *x, Py_ssize_t n, float *out, xt_lse_partial *p)
    int xt_partial_store_f64(const double *x, Py_ssize_t n, double *out, xt_lse_partial *p)
    void xt_softmax_slice_f32(const float *x, Py_ssize_t n, xt_lse_partial row,
                              int take_log, float *out)
    void xt_softmax_slice_f64(const double *x, Py_ssize_t n, xt_lse_partial row,
                              int take_log, double *out)
    void xt_softmax_row_f32(const float *x, Py_ssize_t n, int take_log, float *out)
    void xt_softmax_row_f64(const double *x, Py_ssize_t n, int take_log, double *out)
    void xt_lse_weighted_row(const double *a, const double *b, Py_ssize_t n,
                             double *out, double *sign)

    int xt_omp_max_threads()
    void xt_omp_barrier()
    int xt_have_openmp()
    int xt_openmp_version()
    int xt_cpu_supports(const char *name)
    const char *xt_compiled_levels()
    int xt_select(const char *name)
    const char *xt_active_name()

    enum: XT_SHORT_MAX_COLS
    enum: XT_SHORT_LSE
    enum: XT_SHORT_SOFTMAX
    enum: XT_SHORT_LOG_SOFTMAX
    enum: XT_SHORT_PARTIALS
    void xt_short_rows_f32(const float *x, Py_ssize_t nrows, Py_ssize_t C, int mode,
                           float *out, xt_lse_partial *parts, double *lse)
    void xt_short_rows_f64(const double *x, Py_ssize_t nrows, Py_ssize_t C, int mode,
                           double *out, xt_lse_partial *parts, double *lse)
    void xt_active_expscale_f32(const float *x, Py_ssize_t n, double shift,
                                double scale, float *out)
    void xt_active_expscale_f64(const double *x, Py_ssize_t n, double shift,
                                double scale, double *out)


ctypedef fused real:
    float
    double


cdef inline Py_ssize_t _imin(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a < b else b


cdef int _expect(str hook, str what, Py_ssize_t got, Py_ssize_t expected) except -1:
    """ValueError unless a buffer's extent is what the hook will index: the
    loops run with boundscheck=False, so a short buffer would be overrun."""
    if got != expected:
        raise ValueError(f"xentc._core.{hook}: {what} is {got}, expected {expected}")
    return 0


cdef int _expect_targets(str hook, const long long[::1] target,
                         Py_ssize_t ncols) except -1:
    """ValueError unless every class index is below the row length: the
    loops read the target's logit (and write its gradient) unchecked.
    Negative targets are ignored rows."""
    cdef Py_ssize_t i, bad = -1
    with nogil:
        for i in range(target.shape[0]):
            if target[i] >= ncols:
                bad = i
                break
    if bad >= 0:
        raise ValueError(f"xentc._core.{hook}: target[{bad}] is {target[bad]}, "
                         f"expected < {ncols} (the row length) or < 0")
    return 0


cdef inline xt_lse_partial _partial(const real *x, Py_ssize_t n) noexcept nogil:
    if real is float:
        return xt_partial_f32(x, n)
    else:
        return xt_partial_f64(x, n)


cdef inline void _softmax_slice(const real *x, Py_ssize_t n, xt_lse_partial row,
                                int take_log, real *out) noexcept nogil:
    if real is float:
        xt_softmax_slice_f32(x, n, row, take_log, out)
    else:
        xt_softmax_slice_f64(x, n, row, take_log, out)


# Rows per parallel task of the short-row kernel.
cdef enum:
    SHORT_TASK_ROWS = 1024


cdef inline void _short_rows(const real *x, Py_ssize_t nrows, Py_ssize_t ncols,
                             int mode, real *out, xt_lse_partial *parts,
                             double *lse) noexcept nogil:
    if real is float:
        xt_short_rows_f32(x, nrows, ncols, mode, out, parts, lse)
    else:
        xt_short_rows_f64(x, nrows, ncols, mode, out, parts, lse)


cdef void _short_rows_parallel(const real[:, ::1] x, int mode, real *out,
                               Py_ssize_t out_stride, xt_lse_partial *parts,
                               int nthreads) noexcept nogil:
    """The short-row kernel over tasks of SHORT_TASK_ROWS rows."""
    cdef Py_ssize_t nrows = x.shape[0], ncols = x.shape[1]
    cdef Py_ssize_t ntasks = (nrows + SHORT_TASK_ROWS - 1) // SHORT_TASK_ROWS
    cdef Py_ssize_t t, r0
    for t in prange(ntasks, num_threads=nthreads, schedule="static"):
        r0 = t * SHORT_TASK_ROWS
        _short_rows(&x[r0, 0], _imin(SHORT_TASK_ROWS, nrows - r0), ncols, mode,
                    out + r0 * out_stride if out != NULL else NULL,
                    parts + r0 if parts != NULL else NULL, NULL)


cdef xt_lse_partial *_row_partials(const real[:, ::1] x, Py_ssize_t nchunks,
                                   int nthreads) except NULL:
    """Partial of every row of x (rows of nchunks > 1 chunks), malloc'ed."""
    cdef Py_ssize_t nrows = x.shape[0], ncols = x.shape[1]
    cdef Py_ssize_t ntasks = nrows * nchunks
    cdef Py_ssize_t t, i, c, off
    cdef xt_lse_partial p
    cdef xt_lse_partial *parts = <xt_lse_partial *> malloc(
        ntasks * sizeof(xt_lse_partial))
    if parts == NULL:
        raise MemoryError("xentc: cannot allocate row partials")
    with nogil:
        for t in prange(ntasks, num_threads=nthreads, schedule="static"):
            i = t // nchunks
            off = (t % nchunks) * XT_CHUNK
            parts[t] = _partial(&x[i, off], _imin(XT_CHUNK, ncols - off))
        # Merge each row's chunks in chunk order. Row i lands in parts[i],
        # which no later row reads (i < i * nchunks for i >= 1).
        for i in range(nrows):
            parts[i] = _merged(parts + i * nchunks, nchunks)
    return parts


cdef inline xt_lse_partial _merged(const xt_lse_partial *chunks,
                                   Py_ssize_t nchunks) noexcept nogil:
    """A row's partial from its chunks' partials, merged in chunk order
    (the order fixes the bits)."""
    cdef xt_lse_partial p = chunks[0]
    cdef Py_ssize_t c
    for c in range(1, nchunks):
        p = xt_partial_merge(p, chunks[c])
    return p


# Chunks per thread in a batch of the long-row softmax (softmax_rows): 2
# chunks of 256 KB (float32; 512 KB float64), and their outputs, stay in a
# 2 MB L2 between the batch's two passes.
cdef enum:
    SOFTMAX_BATCH_CHUNKS = 2


def lse_rows(const real[:, ::1] x, real[::1] out, int nthreads):
    """out[i] = log(sum(exp(x[i, :]))) for every row (x.shape[1] > 0)."""
    cdef Py_ssize_t nrows = x.shape[0], ncols = x.shape[1], i
    cdef Py_ssize_t nchunks = (ncols + XT_CHUNK - 1) // XT_CHUNK
    cdef xt_lse_partial *rows
    _expect("lse_rows", "len(out)", out.shape[0], nrows)
    if nrows == 0:
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


def softmax_rows(const real[:, ::1] x, real[:, ::1] out, bint take_log, int nthreads):
    """softmax (or log_softmax) of every row of x into out; out may be x."""
    cdef Py_ssize_t nrows = x.shape[0], ncols = x.shape[1]
    cdef Py_ssize_t nchunks = (ncols + XT_CHUNK - 1) // XT_CHUNK
    cdef Py_ssize_t i, t, off, r0, r1, batch
    cdef xt_lse_partial *parts
    _expect("softmax_rows", "out.shape[0]", out.shape[0], nrows)
    _expect("softmax_rows", "out.shape[1]", out.shape[1], ncols)
    if nrows == 0:
        return
    if ncols <= XT_SHORT_MAX_COLS:
        with nogil:
            _short_rows_parallel(x, XT_SHORT_LOG_SOFTMAX if take_log else XT_SHORT_SOFTMAX,
                                 &out[0, 0], ncols, NULL, nthreads)
        return
    if nchunks <= 1:
        # Rows that fit in cache: reduce and write while the row is there.
        for i in prange(nrows, nogil=True, num_threads=nthreads, schedule="static"):
            if real is float:
                xt_softmax_row_f32(&x[i, 0], ncols, take_log, &out[i, 0])
            else:
                xt_softmax_row_f64(&x[i, 0], ncols, take_log, &out[i, 0])
        return
    # Long rows, batch by batch: the partials of a few rows' chunks, then
    # their outputs. Both loops split a batch the same static way, so each
    # thread writes the chunks it has just reduced while they are still in
    # its L2, instead of reading the whole array from memory a second time
    # (16x128256 float32 log_softmax, 2 threads: 0.52 -> 0.44 ms). Each thread merges
    # the partials of its chunks' rows itself (read-only after the barrier
    # at the end of the first loop).
    parts = <xt_lse_partial *> malloc(nrows * nchunks * sizeof(xt_lse_partial))
    if parts == NULL:
        raise MemoryError("xentc: cannot allocate row partials")
    batch = max(1, SOFTMAX_BATCH_CHUNKS * nthreads // nchunks)
    r0 = r1 = 0     # (Cython makes them firstprivate; set before the copy)
    with nogil, parallel(num_threads=nthreads):
        # every thread walks the same batches (r0 is private)
        r0 = 0
        while r0 < nrows:
            r1 = _imin(nrows, r0 + batch)
            for t in prange(r0 * nchunks, r1 * nchunks, schedule="static"):
                i = t // nchunks
                off = (t % nchunks) * XT_CHUNK
                parts[t] = _partial(&x[i, off], _imin(XT_CHUNK, ncols - off))
            # Cython's prange ends without a barrier (nowait): wait here for
            # every chunk's partial before any row is merged. The next batch
            # needs no wait: its rows, and their parts, are others.
            xt_omp_barrier()
            for t in prange(r0 * nchunks, r1 * nchunks, schedule="static"):
                i = t // nchunks
                off = (t % nchunks) * XT_CHUNK
                _softmax_slice(&x[i, off], _imin(XT_CHUNK, ncols - off),
                               _merged(parts + i * nchunks, nchunks), take_log,
                               &out[i, off])
            r0 = r1
    free(parts)


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


# ---- run-time kernel selection and build facts ---------------------------

def compiled_levels():
    """Instruction-set levels compiled into this build, best first."""
    return xt_compiled_levels().decode().split()


def cpu_supports(str name):
    """Whether this CPU (and build) can run the named level."""
    return bool(xt_cpu_supports(name.encode()))


def select_kernels(str name):
    """Make the named level active; False if the CPU or build lacks it."""
    return xt_select(name.encode()) == 0


def active_kernels():
    """Name of the level in use."""
    return xt_active_name().decode()


def max_threads():
    """OpenMP's default thread count (1 without OpenMP); follows
    OMP_NUM_THREADS and threadpoolctl."""
    return xt_omp_max_threads()


def openmp_version():
    """The _OPENMP date macro the extension was built with, 0 without OpenMP."""
    return xt_openmp_version() if xt_have_openmp() else 0


def chunk_size():
    """Elements per independently reduced slice of a long row."""
    return XT_CHUNK


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

from libc.math cimport tanh


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
        if real is float:
            stored = xt_partial_store_f32(src, o.nclasses, grad, &st.lse)
        else:
            stored = xt_partial_store_f64(src, o.nclasses, grad, &st.lse)
        _sums(src, o.nclasses, o.class_weight, q, need_wx, xt_ce_shift(st.lse), &st)
    _ce_row(o, &st, xt_ce_log_sum(st.lse), st.lse.max, src, y, q, gs, grad != NULL,
            grad, loss, stored)


def ce_rows(const real[:, ::1] x, const long long[::1] target,
            const real[:, ::1] target_prob, bint prob_target,
            const double[::1] class_weight, bint has_weight,
            double smoothing, double z_loss, double softcap,
            const double[::1] grad_scale, double grad_scale_all, double[::1] loss,
            real[:, ::1] grad, bint want_grad,
            real[:, ::1] scratch, int nthreads):
    """Per-row cross-entropy of logits rows x, and optionally its gradient.

    Index targets (prob_target False): target[i] is the class of row i, or
    negative for an ignored row (loss 0, gradient 0). Probability targets:
    target_prob has x's shape. loss[i] gets the row's loss before sample
    weights and reduction; with want_grad, grad[i] gets its gradient times
    grad_scale[i] (or grad_scale_all when grad_scale is empty). grad may be
    x itself. scratch has one row of
    min(ncols, chunk) per thread (used with a soft cap).
    """
    cdef Py_ssize_t nrows = x.shape[0], ncols = x.shape[1]
    cdef bint per_row_scale = grad_scale.shape[0] > 0
    if nthreads < 1:
        raise ValueError(f"xentc._core.ce_rows: nthreads is {nthreads}, expected >= 1")
    if prob_target:
        _expect("ce_rows", "target_prob.shape[0]", target_prob.shape[0], nrows)
        _expect("ce_rows", "target_prob.shape[1]", target_prob.shape[1], ncols)
    else:
        _expect("ce_rows", "len(target)", target.shape[0], nrows)
        _expect_targets("ce_rows", target, ncols)
    if has_weight:
        _expect("ce_rows", "len(class_weight)", class_weight.shape[0], ncols)
    if per_row_scale:
        _expect("ce_rows", "len(grad_scale)", grad_scale.shape[0], nrows)
    _expect("ce_rows", "len(loss)", loss.shape[0], nrows)
    if want_grad:
        _expect("ce_rows", "grad.shape[0]", grad.shape[0], nrows)
        _expect("ce_rows", "grad.shape[1]", grad.shape[1], ncols)
    if softcap > 0.0:
        _expect("ce_rows", "scratch.shape[0]", scratch.shape[0], nthreads)
        _expect("ce_rows", "scratch.shape[1]", scratch.shape[1], _imin(ncols, XT_CHUNK))
    if nrows == 0:
        return
    _ce_rows_core(x, target, target_prob, prob_target, class_weight, has_weight,
                  smoothing, z_loss, softcap, grad_scale, grad_scale_all, &loss[0],
                  grad, want_grad, scratch, nthreads)


cdef int _ce_rows_core(const real[:, ::1] x, const long long[::1] target,
                       const real[:, ::1] target_prob, bint prob_target,
                       const double[::1] class_weight, bint has_weight,
                       double smoothing, double z_loss, double softcap,
                       const double[::1] grad_scale, double grad_scale_all, double *loss,
                       real[:, ::1] grad, bint want_grad,
                       real[:, ::1] scratch, int nthreads) except -1:
    """ce_rows on arguments it has checked (nrows > 0); loss has nrows
    elements. scratch is read only with a soft cap."""
    cdef Py_ssize_t nrows = x.shape[0], ncols = x.shape[1]
    cdef Py_ssize_t nchunks = (ncols + XT_CHUNK - 1) // XT_CHUNK
    cdef xt_ce_options o = _options(ncols, class_weight, has_weight, smoothing,
                                    z_loss, softcap)
    cdef int need_wx = smoothing > 0.0
    cdef bint per_row_scale = grad_scale.shape[0] > 0
    cdef Py_ssize_t i, t, r, y, off, n, r0, nb
    cdef int tid
    cdef const real *src
    cdef const real *q = NULL
    cdef real *scr = NULL
    cdef xt_ce_stats st
    cdef double x_y
    cdef xt_ce_stats *parts
    cdef _row_coefs *coefs
    cdef xt_lse_partial *short_parts
    cdef double *short_ls
    cdef xt_ce_stats *short_stats

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
    # order (same bits for any thread count), then the gradient by chunks.
    parts = <xt_ce_stats *> malloc(nrows * nchunks * sizeof(xt_ce_stats))
    coefs = <_row_coefs *> malloc(nrows * sizeof(_row_coefs))
    if parts == NULL or coefs == NULL:
        free(parts)
        free(coefs)
        raise MemoryError("xentc: cannot allocate cross-entropy partials")
    try:
        with nogil, parallel(num_threads=nthreads):
            scr = &scratch[threadid(), 0] if softcap > 0.0 else NULL
            for t in prange(nrows * nchunks, schedule="static"):
                i = t // nchunks
                off = (t % nchunks) * XT_CHUNK
                n = _imin(XT_CHUNK, ncols - off)
                src = _capped(&x[i, off], n, softcap, scr)
                q = &target_prob[i, off] if prob_target else NULL
                parts[t] = _stats(src, n, o.class_weight + off if has_weight else NULL,
                                  q, need_wx)
        with nogil:
            for i in range(nrows):
                st = parts[i * nchunks]
                for t in range(1, nchunks):
                    st = xt_ce_stats_merge(st, parts[i * nchunks + t])
                parts[i] = st
        with nogil, parallel(num_threads=nthreads):
            for i in prange(nrows, schedule="static"):
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
        if not want_grad:
            return 0
        with nogil, parallel(num_threads=nthreads):
            scr = &scratch[threadid(), 0] if softcap > 0.0 else NULL
            for t in prange(nrows * nchunks, schedule="static"):
                i = t // nchunks
                off = (t % nchunks) * XT_CHUNK
                n = _imin(XT_CHUNK, ncols - off)
                y = -1 if prob_target else target[i]
                if not prob_target and y < 0:
                    _zero(&grad[i, off], n)
                    continue
                src = _capped(&x[i, off], n, softcap, scr)
                q = &target_prob[i, off] if prob_target else NULL
                _grad_slice(src, n, coefs[i].ls, coefs[i].rowmax, coefs[i].a, coefs[i].bq,
                            coefs[i].bc, o.class_weight + off if has_weight else NULL,
                            q, y - off if y >= 0 else -1, coefs[i].by,
                            softcap, &grad[i, off])
    finally:
        free(parts)
        free(coefs)
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
                          long long ignore_index, long long[::1] out):
    """out = target with ignore_index as -1, in one pass; returns
    (position of the first target outside [0, nclasses) that is not
    ignore_index, or -1; the number of targets in [0, nclasses)).
    An empty out only scans: when every target is a class index the
    caller can use target itself, with no N-sized copy."""
    cdef Py_ssize_t n = target.shape[0], first_bad = -1, nvalid
    cdef bint write = out.shape[0] > 0
    if write or n == 0:
        _expect("prepare_index_targets", "len(out)", out.shape[0], n)
    with nogil:
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


def sum_losses(const double[::1] loss):
    """Sum of the per-sample losses in _sum_doubles' fixed order. Every
    reduction of the cross-entropy family sums through it (or, in
    ce_plain, through _sum_doubles itself), so the same losses give the
    same bits whatever path computed them."""
    if loss.shape[0] == 0:
        return 0.0
    return _sum_doubles(&loss[0], loss.shape[0])


# Placeholders for the arguments ce_plain's calls do not use.
cdef float[:, ::1] _NONE_F32 = np.empty((0, 0), np.float32)
cdef double[:, ::1] _NONE_F64 = np.empty((0, 0), np.float64)
cdef double[::1] _NONE_1D = np.empty(0)


def ce_plain(const real[:, ::1] x, const long long[::1] target, long long ignore_index,
             Py_ssize_t tile_rows, int nthreads):
    """Sum of the cross-entropy losses of logits rows x with class indices
    `target` and every option at its default, or None when a target is
    ignore_index or out of range (the caller's general path then decides).

    The general path's arithmetic in one call: ce_rows over tiles of
    tile_rows rows, each tile's losses summed by _sum_doubles and the tile
    sums added in order, as _cross_entropy._Problem.loss does. What it saves
    is Python: that set-up runs with cold caches, right after the previous
    call's kernel streamed its logits through them.
    """
    cdef Py_ssize_t n = x.shape[0], start = 0, stop, first_bad = -1, nvalid
    cdef double total = 0.0
    cdef double *buf
    _expect("ce_plain", "len(target)", target.shape[0], n)
    if nthreads < 1 or tile_rows < 1:
        raise ValueError(f"xentc._core.ce_plain: nthreads is {nthreads} and tile_rows "
                         f"{tile_rows}, expected >= 1")
    with nogil:
        nvalid = _scan_targets(target, x.shape[1], ignore_index, NULL, &first_bad)
    if first_bad >= 0 or nvalid != n or n == 0:
        return None
    buf = <double *> malloc(_imin(n, tile_rows) * sizeof(double))
    if buf == NULL:
        raise MemoryError("xentc: cannot allocate per-sample losses")
    try:
        while start < n:
            stop = _imin(n, start + tile_rows)
            if real is float:
                _ce_rows_core(x[start:stop], target[start:stop], _NONE_F32, False, _NONE_1D,
                              False, 0.0, 0.0, 0.0, _NONE_1D, 0.0, buf, _NONE_F32, False,
                              _NONE_F32, nthreads)
            else:
                _ce_rows_core(x[start:stop], target[start:stop], _NONE_F64, False, _NONE_1D,
                              False, 0.0, 0.0, 0.0, _NONE_1D, 0.0, buf, _NONE_F64, False,
                              _NONE_F64, nthreads)
            total += _sum_doubles(buf, stop - start)
            start = stop
    finally:
        free(buf)
    return total


def gather_rows(const real[:, ::1] x, const long long[::1] target,
                double[::1] out, int nthreads):
    """out[i] = x[i, target[i]], or 0 where target[i] < 0 (ignored)."""
    cdef Py_ssize_t i, nrows = x.shape[0]
    _expect("gather_rows", "len(target)", target.shape[0], nrows)
    _expect("gather_rows", "len(out)", out.shape[0], nrows)
    _expect_targets("gather_rows", target, x.shape[1])
    for i in prange(nrows, nogil=True, num_threads=nthreads, schedule="static"):
        out[i] = x[i, target[i]] if target[i] >= 0 else 0.0


# ---- cross-entropy partials (xentc.CEPartial) -------------------------------
from libc.math cimport INFINITY, NAN

# One arithmetic for the partials: the kernels' own xt_ce_stats (sums of
# weighted logits taken relative to the row's max, xt_ce_shift), its merge
# and xt_ce_index_loss, so that _partials.py holds no copy of them.
# Per-sample columns of CEPartial's format 2 (_partials._COLUMNS).
cdef enum:
    CEP_MAX = 0
    CEP_NMAX = 1
    CEP_REST = 2
    CEP_FLAGS = 3
    CEP_WX = 4
    CEP_TARGET_LOGIT = 5
    CEP_TARGET_WEIGHT = 6
    CEP_HITS = 7
    CEP_IGNORED = 8
    CEP_NCOLS = 9

# local_target values besides an index into the shard
cdef enum:
    CEP_OUTSIDE = -1
    CEP_IGNORE = -2


def ce_partial_rows(const real[:, ::1] x, const long long[::1] local_target,
                    const double[::1] class_weight, bint has_weight, double softcap,
                    bint want_sums, real[:, ::1] scratch, double[:, ::1] out,
                    int nthreads):
    """CEPartial columns of every row of a shard of the classes: the
    log-sum-exp partial of the (capped) row, wx = sum_c w_c (x_c - shift)
    (with want_sums; 0 otherwise), and where local_target[i] is an index
    into the shard its (capped) logit, class weight and a hit.
    local_target: -1 for a target outside the shard, -2 for an ignored one.
    scratch: (nthreads, ncols) for a soft cap, else unused."""
    cdef Py_ssize_t nrows = x.shape[0], ncols = x.shape[1], i
    cdef long long y
    cdef int tid
    cdef const real *row
    cdef xt_ce_stats st
    cdef const double *w = &class_weight[0] if has_weight else NULL
    _expect("ce_partial_rows", "len(local_target)", local_target.shape[0], nrows)
    _expect("ce_partial_rows", "out.shape[0]", out.shape[0], nrows)
    _expect("ce_partial_rows", "out.shape[1]", out.shape[1], CEP_NCOLS)
    if has_weight:
        _expect("ce_partial_rows", "len(class_weight)", class_weight.shape[0], ncols)
    if softcap > 0.0 and ncols:
        _expect("ce_partial_rows", "scratch.shape[0]", scratch.shape[0], nthreads)
        _expect("ce_partial_rows", "scratch.shape[1]", scratch.shape[1], ncols)
    for i in range(nrows):
        y = local_target[i]
        if y >= ncols or y < CEP_IGNORE:
            raise ValueError(f"xentc._core.ce_partial_rows: local_target[{i}] is {y}, "
                             f"expected < {ncols} and >= -2")
    for i in prange(nrows, nogil=True, num_threads=nthreads, schedule="static"):
        tid = threadid()
        y = local_target[i]
        if ncols == 0:
            st.lse.max = -INFINITY
            st.lse.nmax = 0.0
            st.lse.rest = 0.0
            st.lse.flags = 0
            st.wx = 0.0
        else:
            row = _capped(&x[i, 0], ncols, softcap,
                          &scratch[tid, 0] if softcap > 0.0 else <real *> NULL)
            st = _stats(row, ncols, w, <const real *> NULL, want_sums)
        out[i, CEP_MAX] = st.lse.max
        out[i, CEP_NMAX] = st.lse.nmax
        out[i, CEP_REST] = st.lse.rest
        out[i, CEP_FLAGS] = st.lse.flags
        out[i, CEP_WX] = st.wx if want_sums else 0.0
        if y >= 0:
            out[i, CEP_TARGET_LOGIT] = row[y]
            out[i, CEP_TARGET_WEIGHT] = w[y] if has_weight else 1.0
            out[i, CEP_HITS] = 1.0
        else:
            out[i, CEP_TARGET_LOGIT] = 0.0
            out[i, CEP_TARGET_WEIGHT] = 0.0
            out[i, CEP_HITS] = 0.0
        out[i, CEP_IGNORED] = 1.0 if y == CEP_IGNORE else 0.0


cdef inline xt_ce_stats _cep_stats(const double[:, ::1] p, Py_ssize_t i,
                                   double weight_total) noexcept nogil:
    cdef xt_ce_stats st
    st.lse.max = p[i, CEP_MAX]
    st.lse.nmax = p[i, CEP_NMAX]
    st.lse.rest = p[i, CEP_REST]
    st.lse.flags = <int> p[i, CEP_FLAGS]
    st.w = weight_total
    st.wx = p[i, CEP_WX]
    st.wq = 0.0
    st.wqx = 0.0
    return st


def ce_merge_partials(const double[:, ::1] p, double p_weight_total,
                      const double[:, ::1] q, double q_weight_total, double[:, ::1] out):
    """Row-wise merge of two CEPartial column arrays (n, 9) of disjoint
    shards, with xt_ce_stats_merge (wx moved to the merged shift); the
    target columns add (one shard at most holds a target)."""
    cdef Py_ssize_t i, n = p.shape[0]
    cdef xt_ce_stats r
    for name, buf in (("p", p), ("q", q), ("out", out)):
        _expect("ce_merge_partials", name + ".shape[0]", buf.shape[0], n)
        _expect("ce_merge_partials", name + ".shape[1]", buf.shape[1], CEP_NCOLS)
    for i in range(n):
        r = xt_ce_stats_merge(_cep_stats(p, i, p_weight_total),
                              _cep_stats(q, i, q_weight_total))
        out[i, CEP_MAX] = r.lse.max
        out[i, CEP_NMAX] = r.lse.nmax
        out[i, CEP_REST] = r.lse.rest
        out[i, CEP_FLAGS] = r.lse.flags
        out[i, CEP_WX] = r.wx
        out[i, CEP_TARGET_LOGIT] = p[i, CEP_TARGET_LOGIT] + q[i, CEP_TARGET_LOGIT]
        out[i, CEP_TARGET_WEIGHT] = p[i, CEP_TARGET_WEIGHT] + q[i, CEP_TARGET_WEIGHT]
        out[i, CEP_HITS] = p[i, CEP_HITS] + q[i, CEP_HITS]
        out[i, CEP_IGNORED] = p[i, CEP_IGNORED]


def ce_finalize_partials(const double[:, ::1] p, Py_ssize_t nclasses,
                         double weight_total, double smoothing, double z_loss, int term,
                         double[::1] out):
    """Per-sample losses of merged CEPartial columns (n, 9) by the kernels'
    xt_ce_index_loss (0 for ignored samples). term -1: the loss; 0, 1, 2:
    the NLL term w_y (lse - x_y), the smoothing sum W lse - sum w x, the
    z-loss lse^2 alone, unscaled (a 'mean' over a zero denominator divides
    them apart, _targets.mean_of)."""
    cdef Py_ssize_t i, n = p.shape[0]
    cdef xt_ce_stats st
    cdef xt_ce_options o
    cdef double ls, m
    _expect("ce_finalize_partials", "p.shape[1]", p.shape[1], CEP_NCOLS)
    _expect("ce_finalize_partials", "len(out)", out.shape[0], n)
    if term < -1 or term > 2:
        raise ValueError(f"xentc._core.ce_finalize_partials: term is {term}, "
                         "expected -1, 0, 1 or 2")
    o.nclasses = nclasses if nclasses > 0 else 1
    o.class_weight = NULL
    o.weight_total = weight_total
    o.softcap = 0.0
    o.smoothing = smoothing if term == -1 else (1.0 if term == 1 else 0.0)
    o.z_loss = z_loss if term == -1 else (1.0 if term == 2 else 0.0)
    for i in range(n):
        if p[i, CEP_IGNORED] != 0.0:
            out[i] = 0.0
            continue
        st = _cep_stats(p, i, weight_total)
        ls = xt_ce_log_sum(st.lse)
        m = st.lse.max
        if term == 2:
            out[i] = z_loss * (m + ls) * (m + ls)  # NaN for a special row, as ls
        elif term == 1:
            # smoothing 1: the loss is the smoothing sum over C
            out[i] = xt_ce_index_loss(&o, &st, ls, m, 0.0, 0.0) * o.nclasses
        else:
            out[i] = xt_ce_index_loss(&o, &st, ls, m, p[i, CEP_TARGET_LOGIT],
                                      p[i, CEP_TARGET_WEIGHT])


def softmax_with_partials(const real[:, ::1] x, const double[:, ::1] p, bint take_log,
                          real[:, ::1] out, int nthreads):
    """softmax (or log_softmax) of rows x (any slice of the classes) given
    the merged log-sum-exp partials p (n, 4) of the whole rows: the
    kernels' xt_softmax_slice, special rows included (row_special.h)."""
    cdef Py_ssize_t nrows = x.shape[0], ncols = x.shape[1], i
    cdef xt_lse_partial row
    _expect("softmax_with_partials", "p.shape[0]", p.shape[0], nrows)
    _expect("softmax_with_partials", "p.shape[1]", p.shape[1], 4)
    _expect("softmax_with_partials", "out.shape[0]", out.shape[0], nrows)
    _expect("softmax_with_partials", "out.shape[1]", out.shape[1], ncols)
    if ncols == 0:
        return
    for i in prange(nrows, nogil=True, num_threads=nthreads, schedule="static"):
        row.max = p[i, 0]
        row.nmax = p[i, 1]
        row.rest = p[i, 2]
        row.flags = <int> p[i, 3]
        _softmax_slice(&x[i, 0], ncols, row, take_log, &out[i, 0])
