# softmax / log_softmax: whole rows, and slices given the whole rows' partials (LSEPartial.softmax).
# (included by _core.pyx: one extension module, one dispatch table)

def softmax_rows(const real[:, ::1] x, real[:, ::1] out, bint take_log, int nthreads):
    """softmax (or log_softmax) of every row of x into out; out may be x."""
    cdef Py_ssize_t nrows = x.shape[0], ncols = x.shape[1]
    cdef Py_ssize_t nchunks = (ncols + XT_CHUNK - 1) // XT_CHUNK
    cdef Py_ssize_t i, t, off, r0, r1, batch
    cdef xt_lse_partial *parts
    cdef int mode = XT_SHORT_LOG_SOFTMAX if take_log else XT_SHORT_SOFTMAX
    _expect("softmax_rows", "out.shape[0]", out.shape[0], nrows)
    _expect("softmax_rows", "out.shape[1]", out.shape[1], ncols)
    if nrows == 0:
        return
    if _grouped(ncols, sizeof(real), mode):
        _rows_grouped(x, mode, &out[0, 0], nthreads)
        return
    if ncols <= XT_SHORT_MAX_COLS:
        with nogil:
            _short_rows_parallel(x, mode, &out[0, 0], ncols, NULL, nthreads)
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
