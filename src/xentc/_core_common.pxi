# Declarations and helpers every part of _core uses: the C kernels of include/xentc/xentc.h, the fused dtype, buffer checks, row partials.
# (included by _core.pyx: one extension module, one dispatch table)

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
    int xt_have_rows()
    Py_ssize_t xt_rows_f32(const float *x, Py_ssize_t nrows, Py_ssize_t C, int mode,
                           float *out, unsigned char *special)
    Py_ssize_t xt_rows_f64(const double *x, Py_ssize_t nrows, Py_ssize_t C, int mode,
                           double *out, unsigned char *special)
    enum: XT_CE_FUSED_MAX_COLS
    enum: XT_CE_GRAD_BIG_BYTES
    void xt_active_expscale_f32(const float *x, Py_ssize_t n, double shift,
                                double scale, float *out)
    void xt_active_expscale_f64(const double *x, Py_ssize_t n, double shift,
                                double scale, double *out)


ctypedef fused real:
    float
    double


cdef inline Py_ssize_t _imin(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a < b else b


cdef inline Py_ssize_t _imax(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a > b else b


cdef int _expect(str hook, str what, Py_ssize_t got, Py_ssize_t expected) except -1:
    """ValueError unless a buffer's extent is what the hook will index: the
    loops run with boundscheck=False, so a short buffer would be overrun."""
    if got != expected:
        raise ValueError(f"xentc._core.{hook}: {what} is {got}, expected {expected}")
    return 0


cdef enum:
    # Below this many targets _count_class_indices runs on one thread (a
    # parallel region's start-up would cost more than the scan).
    _PARALLEL_SCAN_MIN = 1 << 16


cdef inline int _scan_threads(Py_ssize_t n, int nthreads) noexcept nogil:
    """Threads for a scan of n targets: one below _PARALLEL_SCAN_MIN."""
    return nthreads if n >= _PARALLEL_SCAN_MIN else 1


cdef Py_ssize_t _count_class_indices(const long long[::1] target, long long nclasses,
                                     long long ignore_index, int nthreads) noexcept nogil:
    """The number of targets in [0, nclasses) that are not ignore_index, on
    nthreads threads (one for few targets): ce_plain needs only whether that is all of them. On
    one thread the scan left the other spinning in OpenMP's barrier: at 2
    classes (4M int64 targets, float32, 2 threads) the serial scan was 9%
    of the samples and OpenMP's spin 15%."""
    cdef Py_ssize_t i, nvalid = 0
    cdef long long t
    for i in prange(target.shape[0], num_threads=_scan_threads(target.shape[0], nthreads),
                    schedule="static"):
        t = target[i]
        if t != ignore_index and <unsigned long long> t < <unsigned long long> nclasses:
            nvalid += 1
    return nvalid


cdef int _expect_targets(str hook, const long long[::1] target,
                         Py_ssize_t ncols, int nthreads) except -1:
    """ValueError unless every class index is below the row length: the
    loops read the target's logit (and write its gradient) unchecked.
    Negative targets are ignored rows. Many targets are checked on nthreads
    threads, as _count_class_indices, and scanned in order for the error
    only when one is out of range (at 2 classes, 4M targets, the serial
    scan was 4% of cross_entropy_and_grad's samples, and OpenMP's spin in
    the other thread as much)."""
    cdef Py_ssize_t i, bad = -1, nbad = 1, n = target.shape[0]
    with nogil:
        if _scan_threads(n, nthreads) > 1:
            nbad = 0
            for i in prange(n, num_threads=nthreads, schedule="static"):
                if target[i] >= ncols:
                    nbad += 1
        if nbad:
            for i in range(n):
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

# Elements per parallel task of the fused cross-entropy kernel (at least
# one row): each call plans its column permutes once (algo/ce_rows.h),
# which at 1024 rows of 8 classes was a tenth of the kernel's time.
cdef enum:
    FUSED_TASK_ELEMS = 1 << 17


cdef inline Py_ssize_t _group_task_rows(Py_ssize_t ncols) noexcept nogil:
    """Rows per task of the group kernels: about FUSED_TASK_ELEMS elements,
    a multiple of 16 (every layer's lane count divides it), so rows fall in
    the same groups whatever the threads."""
    return _imax(16, FUSED_TASK_ELEMS // ncols // 16 * 16)


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


# Row bytes up to which the group kernels (algo/row_groups.h, ce_rows.h)
# beat the per-row ones, by what they produce. log-sum-exp and the
# cross-entropy forward gain up to 4 KB rows since the group kernels'
# row mode prefetches (float32, 2 threads, 2^23 elements, per-row against
# group: forward at 1000 classes 6.98 -> 8.39 G/s, logsumexp 7.10 ->
# 8.20; float64 forward at 300 and 500 classes 2.22 -> 2.62, 2.38 ->
# 2.72; 2 KB was the limit before, measured against the per-row kernels
# of 8aaf73e). At 2000 float32 classes the group kernel still gained 8%
# (against the per-row kernels before rows up to 16 KB took their max
# first, blocks.h: 2048 classes +10% by it), but a row mode lane then
# sums 128 exps in float32, twice as many as a lane of the long-row
# kernel's blocks: those rows stay per row.
# log_softmax, which writes each row after the whole group's sums, gains
# at 512 B (128 float32 classes 2.0 against 2.2) and loses past it
# (1000: 2.0 against 1.5); softmax gains at every length up to the
# kernels' 4096 classes (1000 float32 classes: 1.5 against 1.9). The
# cross-entropy gradient would too (1.65 against 1.9), but it takes the
# forward's limit: a loss must have the same bits with or without its
# gradient.
cdef enum:
    GROUP_REDUCE_BYTES = 4096
    GROUP_LOG_SOFTMAX_BYTES = 512


cdef inline bint _grouped(Py_ssize_t ncols, Py_ssize_t itemsize, int mode) noexcept nogil:
    """Do rows of ncols elements go to the group kernels for mode
    (XT_SHORT_LSE / _SOFTMAX / _LOG_SOFTMAX; the first also stands for the
    cross-entropy forward)?"""
    cdef Py_ssize_t limit = XT_CE_FUSED_MAX_COLS * itemsize
    if mode == XT_SHORT_LSE:
        limit = GROUP_REDUCE_BYTES
    elif mode == XT_SHORT_LOG_SOFTMAX:
        limit = GROUP_LOG_SOFTMAX_BYTES
    return ncols <= XT_CE_FUSED_MAX_COLS and ncols * itemsize <= limit and xt_have_rows()


cdef int _rows_grouped(const real[:, ::1] x, int mode, real *out,
                       int nthreads) except -1:
    """log-sum-exp (mode XT_SHORT_LSE, out: one per row) or softmax /
    log_softmax (out: rows like x's, may be x) of every row by the group
    kernels, in tasks of about FUSED_TASK_ELEMS elements (whole groups of
    16 rows: the same groups whatever the threads); the rows they leave
    (special[i]: NaN, inf, no finite element) by the per-row kernels."""
    cdef Py_ssize_t nrows = x.shape[0], ncols = x.shape[1]
    cdef Py_ssize_t task = _group_task_rows(ncols)
    cdef Py_ssize_t t, r0, nb, r, i, nspecial
    cdef Py_ssize_t stride = 1 if mode == XT_SHORT_LSE else ncols
    cdef unsigned char *special = <unsigned char *> malloc(nrows)
    if special == NULL:
        raise MemoryError("xentc: cannot allocate row flags")
    try:
        for t in prange((nrows + task - 1) // task, nogil=True, num_threads=nthreads,
                        schedule="static"):
            r0 = t * task
            nb = _imin(task, nrows - r0)
            if real is float:
                nspecial = xt_rows_f32(&x[r0, 0], nb, ncols, mode, out + r0 * stride,
                                       special + r0)
            else:
                nspecial = xt_rows_f64(&x[r0, 0], nb, ncols, mode, out + r0 * stride,
                                       special + r0)
            if nspecial == 0:
                continue
            for r in range(nb):
                i = r0 + r
                if not special[i]:
                    continue
                if mode == XT_SHORT_LSE:
                    out[i] = <real> xt_partial_lse(_partial(&x[i, 0], ncols))
                elif real is float:
                    xt_softmax_row_f32(&x[i, 0], ncols, mode == XT_SHORT_LOG_SOFTMAX,
                                       out + i * stride)
                else:
                    xt_softmax_row_f64(&x[i, 0], ncols, mode == XT_SHORT_LOG_SOFTMAX,
                                       out + i * stride)
    finally:
        free(special)
    return 0


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
