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
from libc.stdlib cimport malloc, free
from cython.parallel cimport prange


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
    void xt_softmax_slice_f32(const float *x, Py_ssize_t n, xt_lse_partial row,
                              int take_log, float *out)
    void xt_softmax_slice_f64(const double *x, Py_ssize_t n, xt_lse_partial row,
                              int take_log, double *out)
    void xt_lse_weighted_row(const double *a, const double *b, Py_ssize_t n,
                             double *out, double *sign)

    int xt_omp_max_threads()
    int xt_have_openmp()
    int xt_openmp_version()
    int xt_cpu_supports(const char *name)
    const char *xt_compiled_levels()
    int xt_select(const char *name)
    const char *xt_active_name()


ctypedef fused real:
    float
    double


cdef inline Py_ssize_t _imin(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a < b else b


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
            p = parts[i * nchunks]
            for c in range(1, nchunks):
                p = xt_partial_merge(p, parts[i * nchunks + c])
            parts[i] = p
    return parts


def lse_rows(const real[:, ::1] x, real[::1] out, int nthreads):
    """out[i] = log(sum(exp(x[i, :]))) for every row (x.shape[1] > 0)."""
    cdef Py_ssize_t nrows = x.shape[0], ncols = x.shape[1], i
    cdef Py_ssize_t nchunks = (ncols + XT_CHUNK - 1) // XT_CHUNK
    cdef xt_lse_partial *rows
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
    cdef Py_ssize_t i, t, off
    cdef xt_lse_partial p
    cdef xt_lse_partial *rows
    if nchunks <= 1:
        # Short rows: reduce and write while the row is still in cache.
        for i in prange(nrows, nogil=True, num_threads=nthreads, schedule="static"):
            p = _partial(&x[i, 0], ncols)
            _softmax_slice(&x[i, 0], ncols, p, take_log, &out[i, 0])
        return
    rows = _row_partials(x, nchunks, nthreads)
    with nogil:
        for t in prange(nrows * nchunks, num_threads=nthreads, schedule="static"):
            i = t // nchunks
            off = (t % nchunks) * XT_CHUNK
            _softmax_slice(&x[i, off], _imin(XT_CHUNK, ncols - off), rows[i],
                           take_log, &out[i, off])
    free(rows)


def lse_weighted_rows(const double[:, ::1] a, const double[:, ::1] b,
                      double[::1] out, double[::1] sign, int nthreads):
    """out[i], sign[i] = log|sum(b[i] * exp(a[i]))|, sign of the sum."""
    cdef Py_ssize_t nrows = a.shape[0], ncols = a.shape[1], i
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
