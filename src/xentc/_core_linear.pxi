# Linear + cross-entropy: one lane of row blocks of
# xentc.linear_cross_entropy(_and_grad) without the interpreter between the
# blocks (see _linear.py, "Small C x D").
# (included by _core.pyx: one extension module, one dispatch table)
#
# The products go to a BLAS ?gemm found at run time (set_gemm, given
# scipy.linalg.cython_blas's capsules by _linear.py): NumPy exposes no BLAS
# to C, SciPy stays optional, and without it _linear.py runs the same
# blocks through NumPy's matmul from Python.

from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_GetName
from libc.limits cimport INT_MAX
from libc.string cimport memcpy

# Fortran BLAS (column-major), 32-bit integers, as scipy.linalg.cython_blas
ctypedef void (*_sgemm_t)(char *transa, char *transb, int *m, int *n, int *k,
                          float *alpha, float *a, int *lda, float *b, int *ldb,
                          float *beta, float *c, int *ldc) noexcept nogil
ctypedef void (*_dgemm_t)(char *transa, char *transb, int *m, int *n, int *k,
                          double *alpha, double *a, int *lda, double *b, int *ldb,
                          double *beta, double *c, int *ldc) noexcept nogil

cdef _sgemm_t _sgemm = NULL
cdef _dgemm_t _dgemm = NULL


def set_gemm(sgemm, dgemm):
    """Use these BLAS sgemm and dgemm in linear_blocks: PyCapsules holding
    Fortran-interface functions with 32-bit integers (the entries of
    scipy.linalg.cython_blas.__pyx_capi__; the caller checks their
    signatures). None and None forget them."""
    global _sgemm, _dgemm
    if sgemm is None and dgemm is None:
        _sgemm, _dgemm = NULL, NULL
        return
    s = <_sgemm_t> PyCapsule_GetPointer(sgemm, PyCapsule_GetName(sgemm))
    d = <_dgemm_t> PyCapsule_GetPointer(dgemm, PyCapsule_GetName(dgemm))
    _sgemm, _dgemm = s, d


def have_gemm():
    """Whether set_gemm has given linear_blocks its BLAS."""
    return _sgemm != NULL and _dgemm != NULL


cdef inline void _gemm(char transa, char transb, int m, int n, int k, const real *a,
                       int lda, const real *b, int ldb, real beta, real *c,
                       int ldc) noexcept nogil:
    """c = op(a) @ op(b) + beta c, column-major (BLAS's ?gemm, alpha 1)."""
    cdef real one = 1
    if real is float:
        _sgemm(&transa, &transb, &m, &n, &k, &one, <float *> a, &lda, <float *> b, &ldb,
               &beta, c, &ldc)
    else:
        _dgemm(&transa, &transb, &m, &n, &k, &one, <double *> a, &lda, <double *> b, &ldb,
               &beta, c, &ldc)


cdef inline void _part(Py_ssize_t n, int parts, Py_ssize_t k, Py_ssize_t *lo,
                       Py_ssize_t *hi) noexcept nogil:
    """[lo, hi): part k of `parts` of range(n), in multiples of 64; the last
    parts may be empty."""
    cdef Py_ssize_t step = (n + parts - 1) // parts
    step = (step + 63) // 64 * 64
    lo[0] = _imin(n, k * step)
    hi[0] = _imin(n, lo[0] + step)


cdef void _forward_part(Py_ssize_t k, int parts, Py_ssize_t ncols, Py_ssize_t b,
                        Py_ssize_t d, bint have_f, const real *wp, char t_w, int ld_w,
                        const real *xb, const real *bias, real *buf) noexcept nogil:
    """Part k of the block's logits: classes [c0, c1) of logits^T (C, b) =
    W (C, D) @ x[blk]^T (D, b), the bias as gemm's initial value (beta 1:
    no pass of its own)."""
    cdef Py_ssize_t c0, c1, r
    _part(ncols, parts, k, &c0, &c1)
    if c1 <= c0:
        return
    if bias != NULL:
        for r in range(b):
            memcpy(&buf[r * ncols + c0], &bias[c0], (c1 - c0) * sizeof(real))
    # W's rows c0.. : c0 elements on when W is column-major (w_f), c0 rows
    # of D when it is row-major (w_c, transposed by BLAS)
    _gemm(t_w, c'N', <int> (c1 - c0), <int> b, <int> d, wp + (c0 if have_f else c0 * d),
          ld_w, xb, <int> d, <real> (1 if bias != NULL else 0), buf + c0, <int> ncols)


cdef void _gradient_part(Py_ssize_t k, int parts, Py_ssize_t ncols, Py_ssize_t b,
                         Py_ssize_t d, bint have_c, const real *wp, char t_w, int ld_w,
                         const real *xb, const real *buf, real *gi, real *gw, real beta,
                         double *gb) noexcept nogil:
    """Part k (classes [c0, c1)) of the block's gradient products, G (b, C)
    in buf: gi (b, D) = G[:, c0:c1] @ W[c0:c1] (gi^T = W^T[:, c0:c1] @
    G^T[c0:c1], column-major), grad_W^T[:, c0:c1] (+)= x[blk]^T @ G[:, c0:c1]
    and grad_b[c0:c1] += G's column sums (float64). With parts = 1, gi is
    grad_input[blk] itself."""
    cdef Py_ssize_t c0, c1, r, j
    _part(ncols, parts, k, &c0, &c1)
    if c1 <= c0:
        return
    if gi != NULL:
        # W^T's columns c0.. : c0 columns of D on when W^T is column-major
        # (w_c), c0 elements when W is (w_f, transposed by BLAS)
        _gemm(t_w, c'N', <int> d, <int> b, <int> (c1 - c0), wp + (c0 * d if have_c else c0),
              ld_w, buf + c0, <int> ncols, <real> 0, gi, <int> d)
    _gemm(c'N', c'T', <int> d, <int> (c1 - c0), <int> b, xb, <int> d, buf + c0, <int> ncols,
          beta, gw + c0 * d, <int> d)
    if gb != NULL:
        for r in range(b):
            for j in range(c0, c1):
                gb[j] += buf[r * ncols + j]


cdef void _sum_parts(const real *gi_parts, int parts, Py_ssize_t part_stride, Py_ssize_t r,
                     Py_ssize_t d, Py_ssize_t ncols, real *out) noexcept nogil:
    """out[:] = row r of the non-empty parts' products, added in part
    order (the same bits whatever thread adds them). Part 0 is never empty
    (ncols > 0); the empty ones are the last."""
    cdef Py_ssize_t k, j, c0, c1
    cdef const real *src
    memcpy(out, gi_parts + r * d, d * sizeof(real))
    for k in range(1, parts):
        _part(ncols, parts, k, &c0, &c1)
        if c1 <= c0:
            break
        src = gi_parts + k * part_stride + r * d
        for j in range(d):
            out[j] = out[j] + src[j]


cdef int _fits_int(str what, Py_ssize_t v) except -1:
    if v > INT_MAX:
        raise ValueError(f"xentc._core.linear_blocks: {what} is {v}, more than BLAS's "
                         f"32-bit integers hold")
    return 0


def linear_blocks(const real[:, ::1] x, const real[::1, :] w_f, const real[:, ::1] w_c,
                  const real[::1] bias,
                  const long long[::1] target, const real[:, ::1] target_prob,
                  CEOptions options not None, const double[::1] grad_scale,
                  double grad_scale_all, const long long[::1] starts, Py_ssize_t rows,
                  double[::1] per_sample, const double[::1] sample_weight,
                  double[::1] block_totals, real[:, ::1] buf, double[::1] losses,
                  real[:, ::1] scratch, real[:, ::1] grad_input,
                  real[:, ::1] grad_weight, double[::1] grad_bias, int nthreads=1,
                  int parts=1, real[:, :, ::1] gi_parts=None):
    """The row blocks starting at `starts` (each `rows` rows, the last cut
    at N), in order, on this thread.

    Per block: the logits x[blk] @ w.T + bias into buf by BLAS, the row
    kernels (as ce_rows, one thread) on them, and with grad_weight the
    products of d loss / d logits.

    Inputs: x (N, D); W (C, D) as w_f, Fortran-contiguous, or w_c,
    C-contiguous, or both (None for the other): each product takes the
    layout BLAS multiplies untransposed when it has it, since OpenBLAS's
    small-matrix kernels take only some transposes (a product through a
    transposed W was 1.3x slower, see _linear.py); bias (C,) or
    None; target (N,) class indices, validated by the caller (negative:
    ignored), or target_prob (N, C); options; grad_scale (N,) or None and
    grad_scale_all, as in ce_rows; sample_weight (N,) or None, applied to
    the block sums only.

    Outputs: per_sample (N,) gets the rows' losses (reduction 'none'),
    or else block_totals[start // rows] gets each block's sum of losses
    (times sample_weight) in sum_losses' order, losses (>= rows) being the
    scratch for them. grad_input (N, D) or None gets G @ w for the blocks'
    rows; grad_weight (C, D) or None (no gradient) is overwritten by the
    first block's G.T @ x[blk] and the others are added; grad_bias (C,) or
    None has each block's column sums of G added, in float64. buf (>= rows,
    C) and scratch (a soft cap's row, as ce_rows with one thread) are
    scratch.

    parts > 1: each product is split into `parts` fixed parts of the
    classes (the logits, grad_W, grad_b; grad_input as the sum of the parts'
    products G[:, part] @ W[part], in part order, through gi_parts
    (parts, >= rows, D)), run by `nthreads` OpenMP threads each calling BLAS,
    which the caller has set to one thread. The bits depend on `parts`, not
    on the threads. parts = 1: one BLAS call per product, threaded by BLAS.
    """
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1], ncols
    cdef bint have_f = w_f is not None, have_c = w_c is not None
    cdef const real *wp_fwd
    cdef const real *wp_gi
    cdef char t_fwd, t_gi
    cdef int ld_fwd, ld_gi
    cdef Py_ssize_t s, r, j, k, start, stop, b
    cdef _ce_call c
    cdef bint first = True, has_bias = bias is not None
    cdef real beta
    cdef double *loss
    cdef const long long[::1] block_target = None
    cdef const real[:, ::1] block_prob = None
    cdef real[:, ::1] blk
    cdef real[:, ::1] block_grad = None
    if not have_gemm():
        raise RuntimeError("xentc._core.linear_blocks: no BLAS given (set_gemm)")
    if not have_f and not have_c:
        raise ValueError("xentc._core.linear_blocks: W is needed (w_f or w_c)")
    ncols = w_f.shape[0] if have_f else w_c.shape[0]
    if have_f:
        _expect("linear_blocks", "w_f.shape[1]", w_f.shape[1], d)
    if have_c:
        _expect("linear_blocks", "w_c.shape[0]", w_c.shape[0], ncols)
        _expect("linear_blocks", "w_c.shape[1]", w_c.shape[1], d)
    _expect("linear_blocks", "buf.shape[1]", buf.shape[1], ncols)
    if rows < 1 or buf.shape[0] < rows:
        raise ValueError(f"xentc._core.linear_blocks: rows is {rows}, expected 1 .. "
                         f"buf.shape[0] = {buf.shape[0]}")
    _fits_int("the number of classes", ncols)
    _fits_int("the number of features", d)
    _fits_int("rows", rows)
    if has_bias:
        _expect("linear_blocks", "len(bias)", bias.shape[0], ncols)
    c.o = options.options(ncols)
    c.prob_target = target_prob is not None
    c.want_grad = grad_weight is not None
    c.grad_scale = NULL
    c.grad_scale_all = grad_scale_all
    if c.prob_target:
        _expect("linear_blocks", "target_prob.shape[0]", target_prob.shape[0], n)
        _expect("linear_blocks", "target_prob.shape[1]", target_prob.shape[1], ncols)
    else:
        if target is None:
            raise ValueError("xentc._core.linear_blocks: target or target_prob is needed")
        _expect("linear_blocks", "len(target)", target.shape[0], n)
    if grad_scale is not None:
        _expect("linear_blocks", "len(grad_scale)", grad_scale.shape[0], n)
    if sample_weight is not None:
        _expect("linear_blocks", "len(sample_weight)", sample_weight.shape[0], n)
    if per_sample is not None:
        _expect("linear_blocks", "len(per_sample)", per_sample.shape[0], n)
    elif losses is None or losses.shape[0] < rows:
        raise ValueError("xentc._core.linear_blocks: losses must hold `rows` values")
    if nthreads < 1 or parts < 1:
        raise ValueError(f"xentc._core.linear_blocks: nthreads is {nthreads} and parts "
                         f"{parts}, expected >= 1")
    if parts > 1 and grad_input is not None and grad_weight is not None:
        if gi_parts is None or gi_parts.shape[0] < parts or gi_parts.shape[1] < rows:
            raise ValueError("xentc._core.linear_blocks: gi_parts must hold (parts, rows, D)")
        _expect("linear_blocks", "gi_parts.shape[2]", gi_parts.shape[2], x.shape[1])
    if c.o.softcap > 0.0:
        if scratch is None:
            raise ValueError("xentc._core.linear_blocks: a soft cap needs scratch")
        _expect("linear_blocks", "scratch.shape[0]", scratch.shape[0], nthreads)
        _expect("linear_blocks", "scratch.shape[1]", scratch.shape[1], _imin(ncols, XT_CHUNK))
    if c.want_grad:
        _expect("linear_blocks", "grad_weight.shape[0]", grad_weight.shape[0], ncols)
        _expect("linear_blocks", "grad_weight.shape[1]", grad_weight.shape[1], d)
        if grad_input is not None:
            _expect("linear_blocks", "grad_input.shape[0]", grad_input.shape[0], n)
            _expect("linear_blocks", "grad_input.shape[1]", grad_input.shape[1], d)
        if grad_bias is not None:
            _expect("linear_blocks", "len(grad_bias)", grad_bias.shape[0], ncols)
    for s in range(starts.shape[0]):
        start = starts[s]
        if start < 0 or start >= n or start % rows:
            raise ValueError(f"xentc._core.linear_blocks: starts[{s}] is {start}, expected "
                             f"a multiple of rows ({rows}) in [0, {n})")
        if per_sample is None and start // rows >= block_totals.shape[0]:
            raise ValueError(f"xentc._core.linear_blocks: block_totals has no entry for "
                             f"starts[{s}] = {start}")
    if ncols == 0 or d == 0:
        raise ValueError("xentc._core.linear_blocks: W has no classes or no features")
    # logits^T (C, b) = W (C, D) @ x[blk]^T: W untransposed from w_f
    wp_fwd, t_fwd, ld_fwd = (&w_f[0, 0], c'N', <int> ncols) if have_f else \
        (&w_c[0, 0], c'T', <int> d)
    # grad_input[blk]^T (D, b) = W^T (D, C) @ G^T (C, b): W^T untransposed
    # from w_c
    wp_gi, t_gi, ld_gi = (&w_c[0, 0], c'N', <int> d) if have_c else \
        (&w_f[0, 0], c'T', <int> ncols)
    for s in range(starts.shape[0]):
        start = starts[s]
        stop = _imin(n, start + rows)
        b = stop - start
        if parts > 1:
            for k in prange(parts, nogil=True, num_threads=nthreads, schedule="dynamic"):
                _forward_part(k, parts, ncols, b, d, have_f, wp_fwd, t_fwd, ld_fwd,
                              &x[start, 0], &bias[0] if has_bias else NULL, &buf[0, 0])
        else:
            with nogil:
                _forward_part(0, 1, ncols, b, d, have_f, wp_fwd, t_fwd, ld_fwd,
                              &x[start, 0], &bias[0] if has_bias else NULL, &buf[0, 0])
        c.grad_scale = &grad_scale[start] if grad_scale is not None else NULL
        loss = &per_sample[start] if per_sample is not None else &losses[0]
        blk = buf[:b]
        if c.prob_target:
            block_prob = target_prob[start:stop]
        else:
            block_target = target[start:stop]
        if c.want_grad:
            block_grad = blk
        _ce_rows_core(blk, block_target, block_prob, block_grad, scratch, &c, loss, nthreads)
        if per_sample is None:
            if sample_weight is not None:
                for r in range(b):
                    loss[r] *= sample_weight[start + r]
            block_totals[start // rows] = _sum_doubles(loss, b)
        if not c.want_grad:
            continue
        # buf now holds G = d loss / d logits of the block's rows
        beta = 0 if first else 1
        if parts > 1:
            for k in prange(parts, nogil=True, num_threads=nthreads, schedule="dynamic"):
                _gradient_part(k, parts, ncols, b, d, have_c, wp_gi, t_gi, ld_gi,
                               &x[start, 0], &buf[0, 0],
                               &gi_parts[k, 0, 0] if grad_input is not None else NULL,
                               &grad_weight[0, 0], beta,
                               &grad_bias[0] if grad_bias is not None else NULL)
            if grad_input is not None:
                for r in prange(b, nogil=True, num_threads=nthreads, schedule="static"):
                    _sum_parts(&gi_parts[0, 0, 0], parts, gi_parts.shape[1] * d, r, d,
                               ncols, &grad_input[start + r, 0])
        else:
            with nogil:
                _gradient_part(0, 1, ncols, b, d, have_c, wp_gi, t_gi, ld_gi,
                               &x[start, 0], &buf[0, 0],
                               &grad_input[start, 0] if grad_input is not None else NULL,
                               &grad_weight[0, 0], beta,
                               &grad_bias[0] if grad_bias is not None else NULL)
        first = False
