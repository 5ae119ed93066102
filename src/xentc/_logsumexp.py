"""logsumexp, softmax and log_softmax: drop-ins for scipy.special's."""
import numpy as np

from . import _core, _half, _numpy_path, _outputs
from ._array_api import same_namespace
from ._layout import Rows, last_axis_rows
from ._validation import (
    check_numeric,
    check_out,
    normalize_axes,
    resolve_workers,
    row_threads,
    thread_count,
)

__all__ = ["logsumexp", "softmax", "log_softmax"]

# Result dtype -> dtype the C kernels compute in; long double and complex
# have no kernels and take the NumPy path. The 16-bit dtypes (float16,
# ml_dtypes.bfloat16; _half) have kernels of their own that read the 16
# bits and compute in float32 (_core_half.pxi).
_KERNEL_DTYPE = {
    np.dtype(np.float32): np.dtype(np.float32),
    np.dtype(np.float64): np.dtype(np.float64),
}


def _weak(value, arr):
    """Python scalars stay 'weak' in type promotion, as in NumPy 2 and scipy:
    b=0.5 does not turn float32 input into float64."""
    if isinstance(value, (int, float, complex)) and not isinstance(value, bool):
        return value
    return arr


def _result_dtype(a, a_arr, b, b_arr):
    args = [_weak(a, a_arr), 1.0]
    if b is not None:
        args.append(_weak(b, b_arr))
    return _half.result_dtype(*(x.dtype if isinstance(x, np.ndarray) else x for x in args))


def _lse_last_axis(a, axis, keepdims, workers):
    """logsumexp over the last axis by the fast path, or None."""
    rows = last_axis_rows(a, axis)
    if rows is None:
        return None
    nrows, ncols = rows.shape
    out = np.empty(a.shape[:-1], a.dtype)
    _core.lse_rows(rows, out.reshape(-1), row_threads(workers, nrows, ncols))
    if keepdims:
        out = out[..., None]
    return out[()] if out.ndim == 0 else out


def _softmax_last_axis(x, axis, workers, take_log):
    """softmax / log_softmax over the last axis by the fast path, or None."""
    rows = last_axis_rows(x, axis)
    if rows is None:
        return None
    nrows, ncols = rows.shape
    out = _outputs.empty(x.shape, x.dtype)
    _core.softmax_rows(rows, out.reshape(nrows, ncols), take_log,
                       row_threads(workers, nrows, ncols))
    return out


def _scalar_or_array(arr):
    """A 0-d result becomes a NumPy scalar, as scipy and NumPy return."""
    return arr[()] if arr.ndim == 0 else arr


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False, *, workers=None):
    """Compute the log of the sum of exponentials of input elements.

    A drop-in replacement for :func:`scipy.special.logsumexp`, with the same
    arguments, result dtype, shapes and special-value behaviour, computed by
    multithreaded SIMD kernels (float32 input is accumulated in float64).

    Parameters
    ----------
    a : array_like
        Input array.
    axis : None or int or tuple of ints, optional
        Axis or axes over which the sum is taken. By default (None) all
        elements are summed.
    b : array_like, optional
        Scaling factors for ``exp(a)``, broadcast against `a` (mutually).
        They may be negative, to implement subtraction; elements where
        ``b == 0`` are left out, even where `a` is inf or NaN.
    keepdims : bool, optional
        Keep the reduced axes as dimensions of size one.
    return_sign : bool, optional
        Also return the sign of the sum. When False, a negative sum gives
        NaN.
    workers : int, optional
        Threads to use. None (default) uses the OpenMP default, which follows
        ``OMP_NUM_THREADS`` and ``threadpoolctl``; a negative value counts
        back from ``os.cpu_count()`` (-1: all cores). Results are bitwise
        identical for every value.

    Returns
    -------
    res : ndarray or scalar
        ``log(sum(b * exp(a)))`` along `axis`, of dtype
        ``result_type(a, b, 1.0)``. A full reduction returns a NumPy scalar.
        float16 and ``ml_dtypes.bfloat16`` input gives its own dtype, as
        scipy does for float16 (bfloat16 promotes as in torch: with
        float16 to float32), computed in float32/float64 and rounded once.
    sgn : ndarray or scalar
        Only if `return_sign`: +1, 0, -1 (or NaN) in the dtype of `res`.

    See Also
    --------
    scipy.special.logsumexp, softmax, log_softmax

    Notes
    -----
    As in SciPy, the maximal elements are kept apart from the rest of the
    sum, ``max + log(m) + log1p(s / m)`` with ``m`` the number (or weight) of
    maxima, so small contributions are not lost to rounding.

    Examples
    --------
    >>> import numpy as np
    >>> from xentc import logsumexp
    >>> float(logsumexp(np.arange(10)))
    9.45862974442671
    >>> float(logsumexp([0.0, -40.0]))
    4.248354255291589e-18
    >>> logsumexp(np.array([[0.0, 0.0], [1.0, 1.0]], dtype=np.float32), axis=1)
    array([0.6931472, 1.6931472], dtype=float32)
    >>> logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True)
    (np.float64(1.5413248546129181), np.float64(-1.0))
    """
    if b is None and not return_sign:
        res = _lse_last_axis(a, axis, keepdims, workers)
        if res is not None:
            return res
    resolve_workers(workers)
    a_arr = np.asarray(a)
    b_arr = None if b is None else np.asarray(b)
    check_numeric(a_arr, "a", "logsumexp")
    if b_arr is not None:
        check_numeric(b_arr, "b", "logsumexp")
    dtype = _result_dtype(a, a_arr, b, b_arr)

    a_arr = np.atleast_1d(a_arr)
    if b_arr is not None:
        try:
            a_arr, b_arr = np.broadcast_arrays(a_arr, np.atleast_1d(b_arr))
        except ValueError:
            # NumPy's message names neither argument
            raise ValueError(
                f"logsumexp: b of shape {b_arr.shape} is not broadcastable with "
                f"a of shape {a_arr.shape}"
            ) from None
    axes = normalize_axes(axis, a_arr.ndim)
    kept_shape = tuple(1 if ax in axes else n for ax, n in enumerate(a_arr.shape))

    if a_arr.size == 0:
        # scipy: the sum over nothing is 0, its log -inf, and sign(-inf) = -1.
        out = np.full(kept_shape, -np.inf, dtype=dtype)
        sign = np.sign(out)
    elif dtype in _KERNEL_DTYPE or _half.is_half(dtype):
        out, sign = _lse_kernel(a_arr, b_arr, axes, dtype, workers)
        if b_arr is not None and not return_sign:
            out[sign < 0] = np.nan
        if return_sign and sign is None:
            sign = _unweighted_sign(out)
        out = out.reshape(kept_shape)
        sign = None if sign is None else sign.reshape(kept_shape)
    else:
        out, sign = _numpy_path.logsumexp(
            a_arr.astype(dtype), None if b_arr is None else b_arr.astype(dtype),
            axes, return_sign,
        )

    if not return_sign:
        return _scalar_or_array(out if keepdims else out.squeeze(axis=axes))
    if not keepdims:
        out = out.squeeze(axis=axes)
        sign = sign.squeeze(axis=axes)
    return _scalar_or_array(out), _scalar_or_array(sign)


def _unweighted_sign(out):
    """Sign of sum(exp(a)) from its log: 1, 0 for -inf (empty sum), NaN."""
    with np.errstate(invalid="ignore"):
        sign = np.where(np.isnan(out), np.nan, (out != -np.inf).astype(out.dtype))
    return sign.astype(out.dtype, copy=False)


def _lse_kernel(a, b, axes, dtype, workers):
    """Flat (out, sign) of dtype over the rows of a (and b); the sign is None
    for unweighted input (the caller derives it from out when asked)."""
    if b is None and _half.is_half(dtype):
        # 16-bit: read as such, each result rounded once from double
        rows = Rows(a, axes, dtype)
        lse = np.empty(rows.nrows, dtype=dtype)
        _core.lse_rows_h16(_half.bits(rows.data), _half.kind(dtype), _half.bits(lse),
                           row_threads(workers, rows.nrows, rows.ncols))
        return lse, None
    if b is None:
        rows = Rows(a, axes, _KERNEL_DTYPE[dtype])
        lse = np.empty(rows.nrows, dtype=rows.data.dtype)
        nthreads = row_threads(workers, rows.nrows, rows.ncols)
        _core.lse_rows(rows.data, lse, nthreads)
        return lse.astype(dtype, copy=False), None
    # Weighted: one double-precision kernel serves every real dtype; its
    # inputs are the (broadcast) copies the row layout needs anyway.
    a_rows = Rows(a, axes, np.float64)
    b_rows = Rows(b, axes, np.float64)
    out = np.empty(a_rows.nrows)
    sign = np.empty(a_rows.nrows)
    nthreads = thread_count(workers, a.size, a_rows.nrows)
    _core.lse_weighted_rows(a_rows.data, b_rows.data, out, sign, nthreads)
    return _half.cast(out, dtype), _half.cast(sign, dtype)


def _softmax_impl(x, axis, out, workers, take_log):
    if out is None:
        res = _softmax_last_axis(x, axis, workers, take_log)
        if res is not None:
            return res
    func = "log_softmax" if take_log else "softmax"
    resolve_workers(workers)
    x = np.asarray(x)
    check_numeric(x, "x", func)
    if x.dtype == np.bool_:
        raise TypeError(
            f"{func}: boolean input is not supported (as in scipy.special.{func}); "
            "convert it to a float array first"
        )
    dtype = _half.result_dtype(x.dtype, 1.0)
    if x.ndim == 0 and not isinstance(axis, (tuple, bool, np.bool_)) and axis in (0, -1):
        # NumPy's reductions (and so scipy) accept an int axis 0 or -1 for a
        # 0-d array; it normalises over itself.
        axes = ()
    else:
        axes = normalize_axes(axis, x.ndim)
    if out is not None:
        check_out(out, x.shape, dtype, func)

    half = _half.is_half(dtype)
    if x.size == 0 or x.ndim == 0 or not (half or dtype in _KERNEL_DTYPE):
        result = _softmax_small_or_numpy(x, axes, dtype, take_log, func)
        if out is None:
            return result
        out[...] = result
        return out

    rows = Rows(x, axes, dtype if half else _KERNEL_DTYPE[dtype])
    nthreads = row_threads(workers, rows.nrows, rows.ncols)
    direct = None if out is None else rows.direct_output(out)
    res = _outputs.empty_like(rows.data) if direct is None else direct
    if half:
        # 16-bit: read as such, the float32 results rounded once
        _core.softmax_rows_h16(_half.bits(rows.data), _half.kind(dtype), _half.bits(res),
                               take_log, nthreads)
    else:
        _core.softmax_rows(rows.data, res, take_log, nthreads)
    if direct is not None:
        return out
    res = rows.restore(res)
    if out is None:
        return res.astype(dtype, copy=False)
    out[...] = res
    return out


def _softmax_small_or_numpy(x, axes, dtype, take_log, func):
    """Empty input, 0-d input, and dtypes without kernels."""
    if x.size == 0:
        if any(x.shape[ax] == 0 for ax in axes):
            raise ValueError(
                f"{func}: cannot normalise over a zero-size axis "
                f"(input shape {x.shape}, axis {axes})"
            )
        return np.empty(x.shape, dtype=dtype)
    fn = _numpy_path.log_softmax if take_log else _numpy_path.softmax
    if _half.is_half(dtype):
        # (0-d only) in float32, as the kernels compute, rounded once
        return fn(x.astype(np.float32), None).astype(dtype)[()]
    x = x.astype(dtype)
    if x.ndim == 0:
        return fn(x, None)[()]
    return fn(x, axes)


def softmax(x, axis=None, *, out=None, workers=None):
    """Compute the softmax function, ``exp(x) / sum(exp(x))`` along `axis`.

    A drop-in replacement for :func:`scipy.special.softmax` (same dtype,
    shapes and inf/NaN results), computed by multithreaded SIMD kernels that
    write each row while it is still in cache.

    Parameters
    ----------
    x : array_like
        Input array (boolean input is a TypeError, as in SciPy).
    axis : int or tuple of ints, optional
        Axis or axes to normalise over; None (default) means the whole array.
    out : ndarray, optional
        Array of ``x``'s shape and the result dtype to write into; it may be
        ``x`` itself (in place).
    workers : int, optional
        Threads to use, as in :func:`logsumexp`.

    Returns
    -------
    s : ndarray or scalar
        Same shape as `x`; sums to 1 along `axis`. Integers give float64.

    Raises
    ------
    ValueError
        If the normalisation runs over a zero-size axis, or `out` does not fit.

    Examples
    --------
    >>> import numpy as np
    >>> from xentc import softmax
    >>> softmax(np.array([1.0, 2.0, 3.0]))
    array([0.09003057, 0.24472847, 0.66524096])
    >>> softmax(np.array([[1.0, 1.0], [0.0, 1e6]]), axis=1)
    array([[0.5, 0.5],
           [0. , 1. ]])
    """
    return _softmax_impl(x, axis, out, workers, take_log=False)


def log_softmax(x, axis=None, *, out=None, workers=None):
    """Compute the logarithm of the softmax function along `axis`.

    A drop-in replacement for :func:`scipy.special.log_softmax`:
    ``x - max - log(sum(exp(x - max)))``, accurate where ``log(softmax(x))``
    would underflow to ``-inf``.

    Parameters
    ----------
    x : array_like
        Input array (boolean input is a TypeError, as in SciPy).
    axis : int or tuple of ints, optional
        Axis or axes to normalise over; None (default) means the whole array.
    out : ndarray, optional
        Array of ``x``'s shape and the result dtype to write into; it may be
        ``x`` itself (in place).
    workers : int, optional
        Threads to use, as in :func:`logsumexp`.

    Returns
    -------
    s : ndarray or scalar
        Same shape as `x`; ``exp(s)`` sums to 1 along `axis`.

    Examples
    --------
    >>> import numpy as np
    >>> from xentc import log_softmax
    >>> log_softmax(np.array([1000.0, 1.0]))
    array([   0., -999.])
    """
    return _softmax_impl(x, axis, out, workers, take_log=True)


# Arrays of other libraries (torch, JAX...) in, the same library's out.
logsumexp = same_namespace(logsumexp, ("a", "b"))
softmax = same_namespace(softmax, ("x",))
log_softmax = same_namespace(log_softmax, ("x",))
