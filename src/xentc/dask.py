"""
xentc on dask arrays: log-sum-exp, softmax, log-softmax and cross-entropy of
arrays chunked along rows and/or along the class axis.

Needs dask (``pip install ".[dask]"`` in the source tree); dask is imported on first use, so
``import xentc.dask`` works without it.

Every function returns a lazy dask array. Each block of the input is reduced
to a small per-row partial by xentc's C kernels (:func:`xentc.lse_partial`,
:func:`xentc.cross_entropy_partial`), partials are merged along the class
axis by ``dask.array.reduction``'s tree (``combine``/``aggregate``: the
associative merge, in block order), and the merged partials are finalised.
The logits are read once, block by block: an array far larger than the
cluster's memory streams through it. When the class axis is a single chunk,
the row blocks go straight to the in-memory xentc functions.

Results equal the in-memory xentc functions on the whole array up to
rounding (the merge tree sums in a different order); for a given chunking
they are the same bits on every run and scheduler.

Parallelism comes from dask (one task per block), so each task runs xentc on
one thread by default (``workers=1``); raise it for few, large blocks.
"""
import functools
import math

import numpy as np
from numpy.lib.array_utils import normalize_axis_index

from . import _logsumexp, _targets
from ._config import install_hint
from ._partials import (
    _CE_COLUMNS,
    CEPartial,
    LSEPartial,
    _kernel_input,
    cross_entropy_partial,
    lse_partial,
)
from ._validation import as_int, resolve_workers

__all__ = ["logsumexp", "softmax", "log_softmax", "cross_entropy"]

# Partials travel between dask tasks as structured arrays of the reduced
# array's shape (size 1 along the class axis), one float64 field per column
# of LSEPartial/CEPartial.to_array(): real ndarrays that concatenate along
# the class axis as da.reduction expects.
_LSE_DTYPE = np.dtype([(name, np.float64) for name in ("max", "nmax", "rest", "flags")])
_CE_DTYPE = np.dtype([(name, np.float64) for name in _CE_COLUMNS])


def _dask_array():
    try:
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - exercised without dask
        raise ImportError(
            f"xentc.dask needs dask: install it with {install_hint('dask')} "
            "(or pip install 'dask[array]')"
        ) from exc
    return da


# ---- structured blocks <-> partials ------------------------------------------

def _pack(array, dtype, axis):
    """(..., k) float64 partial array -> structured block with a size-1 axis."""
    flat = np.ascontiguousarray(array, dtype=np.float64).view(dtype)[..., 0]
    return np.expand_dims(flat, axis)


def _unpack(block, axis):
    """Structured block (size 1 along axis) -> (..., k) float64 array."""
    b = np.ascontiguousarray(block)
    flat = b.view(np.float64).reshape(b.shape + (len(b.dtype.names),))
    return np.squeeze(flat, axis=axis)


def _merge_blocks(block, axis, keepdims, kind):
    """combine/aggregate of da.reduction: merge the partials concatenated
    along the class axis, in block order (a fixed order: same bits each run)."""
    (ax,) = axis
    cls, dtype = (LSEPartial, _LSE_DTYPE) if kind == "lse" else (CEPartial, _CE_DTYPE)
    if block.shape[ax] == 0:
        # Only dask's metadata probes pass no partials (every real block of
        # the input, even an empty one, has a partial).
        shape = block.shape[:ax] + ((1,) if keepdims else ()) + block.shape[ax + 1:]
        return np.zeros(shape, dtype)
    total = None
    for j in range(block.shape[ax]):
        part = cls.from_array(_unpack(np.take(block, [j], axis=ax), ax))
        total = part if total is None else total.merge(part)
    out = _pack(total.to_array(), dtype, ax)
    return out if keepdims else np.squeeze(out, axis=ax)


def _lse_chunk(block, axis, keepdims, workers):
    (ax,) = axis
    return _pack(lse_partial(block, axis=ax, workers=workers).to_array(), _LSE_DTYPE, ax)


def _identity_chunk(block, axis, keepdims):
    return block


# ---- arguments ------------------------------------------------------------------

def _as_dask(x, func, argname="x"):
    da = _dask_array()
    x = da.asarray(x)
    if any(math.isnan(n) for n in x.shape):
        raise ValueError(f"xentc.dask.{func}: {argname} has unknown chunk sizes; "
                         "call compute_chunk_sizes() first")
    return da, x


def _class_axis(axis, ndim, func):
    if ndim == 0:
        raise ValueError(f"xentc.dask.{func}: the input must have a class axis, "
                         "got a 0-d array")
    name = f"xentc.dask.{func}"
    return normalize_axis_index(as_int(axis, "axis", name), ndim, name)


def _result_dtype(x, func):
    # Validated on an empty array of x's dtype: the same rules (and messages)
    # as the partial kernels.
    return _kernel_input(np.empty(0, x.dtype), f"xentc.dask.{func}")[1]


def _row_partials(da, x, ax, workers):
    """Merged LSE partial of every row, as a structured dask array of x's
    shape with length 1 along the class axis."""
    return da.reduction(
        x,
        chunk=functools.partial(_lse_chunk, workers=workers),
        combine=functools.partial(_merge_blocks, kind="lse"),
        aggregate=functools.partial(_merge_blocks, kind="lse"),
        axis=ax, keepdims=True, concatenate=True, dtype=_LSE_DTYPE,
        meta=np.empty((0,) * x.ndim, _LSE_DTYPE),
    )


# ---- log-sum-exp, softmax, log-softmax --------------------------------------------

def _lse_whole_rows(block, axis, workers, out_dtype):
    return np.asarray(_logsumexp.logsumexp(block, axis=axis, workers=workers),
                      dtype=out_dtype)


def _lse_finalize(block, axis, out_dtype):
    return np.asarray(LSEPartial.from_array(_unpack(block, axis)).logsumexp(),
                      dtype=out_dtype)


def logsumexp(x, axis=-1, *, workers=1):
    """Log-sum-exp over the class axis of a dask array, lazily.

    Parameters
    ----------
    x : dask.array.Array or array_like
        Real input (float16/32/64; integers and bool become float64), chunked
        in any way, unevenly too, along rows and the class axis.
    axis : int, optional
        The class axis (default -1). One axis only.
    workers : int, optional
        Threads per dask task (default 1: dask runs the blocks in parallel).

    Returns
    -------
    dask.array.Array
        ``x.shape`` without `axis`, chunked as `x`'s rows, of the dtype of
        :func:`xentc.logsumexp` (inf/NaN rows as it gives them).

    See Also
    --------
    xentc.logsumexp, xentc.lse_partial

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> import xentc, xentc.dask
    >>> x = np.linspace(-3.0, 5.0, 24).reshape(4, 6)
    >>> lazy = xentc.dask.logsumexp(da.from_array(x, chunks=(2, (1, 3, 2))))
    >>> bool(np.allclose(lazy.compute(), xentc.logsumexp(x, axis=1), rtol=1e-15))
    True
    """
    func = "logsumexp"
    resolve_workers(workers)
    da, x = _as_dask(x, func)
    ax = _class_axis(axis, x.ndim, func)
    dtype = _result_dtype(x, func)
    meta = np.empty((0,) * (x.ndim - 1), dtype)
    if x.numblocks[ax] == 1:
        # Whole rows in each block: the in-memory function (same bits).
        return x.map_blocks(_lse_whole_rows, axis=ax, workers=workers, out_dtype=dtype,
                            dtype=dtype, drop_axis=ax, meta=meta)
    parts = _row_partials(da, x, ax, workers)
    return parts.map_blocks(_lse_finalize, axis=ax, out_dtype=dtype, dtype=dtype,
                            drop_axis=ax, meta=meta)


def _normalize_whole_rows(block, axis, workers, take_log, out_dtype):
    fn = _logsumexp.log_softmax if take_log else _logsumexp.softmax
    return np.asarray(fn(block, axis=axis, workers=workers), dtype=out_dtype)


def _normalize_block(block, parts, axis, take_log, out_dtype):
    whole = LSEPartial.from_array(_unpack(parts, axis))
    fn = whole.log_softmax if take_log else whole.softmax
    return np.asarray(fn(block, axis=axis), dtype=out_dtype)


def _normalize(x, axis, workers, take_log):
    func = "log_softmax" if take_log else "softmax"
    resolve_workers(workers)
    da, x = _as_dask(x, func)
    ax = _class_axis(axis, x.ndim, func)
    dtype = _result_dtype(x, func)
    if x.shape[ax] == 0:
        raise ValueError(f"xentc.dask.{func}: cannot normalise over a zero-size axis "
                         f"(input shape {x.shape}, axis {ax})")
    meta = np.empty((0,) * x.ndim, dtype)
    if x.numblocks[ax] == 1:
        return x.map_blocks(_normalize_whole_rows, axis=ax, workers=workers,
                            take_log=take_log, out_dtype=dtype, dtype=dtype,
                            meta=meta)
    # Two passes over x: the rows' partials (a reduction), then each block
    # normalised against its rows' merged partial (broadcast along the class
    # axis, where the partials have one block of length 1).
    parts = _row_partials(da, x, ax, workers)
    return da.map_blocks(_normalize_block, x, parts, axis=ax, take_log=take_log,
                         out_dtype=dtype, dtype=dtype, meta=meta)


def log_softmax(x, axis=-1, *, workers=1):
    """log_softmax over the class axis of a dask array, lazily.

    With the class axis in several chunks, the rows' log-sum-exp partials
    are reduced first, then every block becomes ``x - logsumexp(row)``; with
    one chunk, each block goes to :func:`xentc.log_softmax`.

    Parameters
    ----------
    x : dask.array.Array or array_like
        Real input, chunked in any way.
    axis : int, optional
        The class axis (default -1).
    workers : int, optional
        Threads per dask task (default 1).

    Returns
    -------
    dask.array.Array
        `x`'s shape and chunks, the dtype of :func:`xentc.log_softmax`.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> import xentc.dask
    >>> x = da.from_array(np.array([[1000.0, 1.0, 0.0]]), chunks=(1, 2))
    >>> xentc.dask.log_softmax(x).compute()
    array([[    0.,  -999., -1000.]])
    """
    return _normalize(x, axis, workers, take_log=True)


def softmax(x, axis=-1, *, workers=1):
    """softmax over the class axis of a dask array, lazily.

    As :func:`log_softmax`, with ``exp(x - logsumexp(row))``.

    Parameters
    ----------
    x : dask.array.Array or array_like
        Real input, chunked in any way.
    axis : int, optional
        The class axis (default -1).
    workers : int, optional
        Threads per dask task (default 1).

    Returns
    -------
    dask.array.Array
        `x`'s shape and chunks, the dtype of :func:`xentc.softmax`.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> import xentc.dask
    >>> x = da.from_array(np.array([[1.0, 2.0, 3.0]]), chunks=(1, (1, 2)))
    >>> xentc.dask.softmax(x).compute()
    array([[0.09003057, 0.24472847, 0.66524096]])
    """
    return _normalize(x, axis, workers, take_log=False)


# ---- cross-entropy ------------------------------------------------------------------

def _ce_chunk(logits, target, *weight, axis, ignore_index, label_smoothing, z_loss,
              softcap, workers, block_info=None):
    """CE partial of one block of logits (its class range read from dask's
    block_info), as a structured block of length 1 along the class axis."""
    offset = block_info[0]["array-location"][axis][0]
    part = cross_entropy_partial(
        logits, np.squeeze(target, axis=axis), class_offset=offset, axis=axis,
        weight=weight[0].reshape(-1) if weight else None, ignore_index=ignore_index,
        label_smoothing=label_smoothing, z_loss=z_loss, softcap=softcap, workers=workers)
    return _pack(part.to_array(), _CE_DTYPE, axis)


def _ce_finalize(block, axis):
    return np.asarray(CEPartial.from_array(_unpack(block, axis)).finalize("none"),
                      dtype=np.float64)


def _target_weight(block, axis):
    return np.array(np.squeeze(block, axis=axis)["target_weight"])


def _ce_term(block, axis, term):
    """Per-sample NLL (term 0) or smoothing (term 1) losses of the block."""
    return CEPartial.from_array(_unpack(block, axis))._per_sample(split=True)[term]


def _mean(total, denominator, nll, smooth, z, smoothing, nclasses, z_loss, out_dtype):
    # torch's division, a zero denominator included (_targets.mean_of): 0/0
    # is NaN (every sample ignored), x/0 is +-inf (signed class weights)
    return np.asarray(_targets.mean_of(total, denominator, smoothing, nclasses, z_loss,
                                       lambda: (nll, smooth, z)), dtype=out_dtype)


def cross_entropy(logits, target, *, axis=-1, weight=None, ignore_index=-100,
                  reduction="mean", label_smoothing=0.0, z_loss=0.0, softcap=None,
                  workers=1):
    """Cross-entropy of dask logits and class-index targets, lazily.

    The logits may be chunked along the class axis too (vocabulary
    parallelism): each block's :func:`xentc.cross_entropy_partial` (its
    slice of the class weights, its class offset) is merged along the class
    axis, then finalised per sample, as :func:`xentc.cross_entropy` computes
    it on the whole array.

    Parameters
    ----------
    logits : dask.array.Array or array_like
        Unnormalised scores (float16/32/64), chunked in any way.
    target : dask.array.Array or array_like of int
        Class indices, the logits' shape without the class axis (rechunked to
        the logits' row chunks when needed). Probability targets are not
        supported here.
    axis : int, optional
        The class axis (default -1).
    weight : array_like, optional
        A weight per class (length C, any finite value; a NumPy array, sliced
        per class chunk).
    ignore_index : int, optional
        Targets equal to it contribute nothing (default -100).
    reduction : {'mean', 'sum', 'none'}, optional
        As in :func:`xentc.cross_entropy`.
    label_smoothing, z_loss, softcap : optional
        As in :func:`xentc.cross_entropy`.
    workers : int, optional
        Threads per dask task (default 1).

    Returns
    -------
    dask.array.Array
        0-d for 'mean' and 'sum', per-sample losses for 'none'; the logits'
        dtype. Targets out of range raise IndexError when computed.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> import xentc, xentc.dask
    >>> logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0], [1.0, 1.0, 1.0]])
    >>> target = np.array([0, 2, -100])
    >>> lazy = xentc.dask.cross_entropy(da.from_array(logits, chunks=(2, (2, 1))), target)
    >>> float(lazy.compute())
    0.16811712653905...
    >>> float(xentc.cross_entropy(logits, target))
    0.16811712653905...
    """
    func = "cross_entropy"
    resolve_workers(workers)
    da, x = _as_dask(logits, func, "logits")
    ax = _class_axis(axis, x.ndim, func)
    if x.dtype.kind not in "iuf" or x.dtype.kind == "f" and x.dtype.itemsize > 8:
        raise TypeError(f"xentc.dask.{func}: logits must be real with at most double "
                        f"precision, got dtype {x.dtype}")
    dtype = np.dtype(np.float64) if x.dtype.kind in "iu" else x.dtype
    nclasses = x.shape[ax]
    if nclasses == 0:
        raise ValueError(f"xentc.dask.{func}: logits has no classes "
                         f"(axis {ax} has length 0)")
    _targets.check_reduction(reduction, f"xentc.dask.{func}")
    w = _targets.class_weights(weight, nclasses, f"xentc.dask.{func}")
    sample_shape = x.shape[:ax] + x.shape[ax + 1:]
    sample_chunks = x.chunks[:ax] + x.chunks[ax + 1:]
    if not isinstance(target, da.Array):
        target = np.asarray(target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"xentc.dask.{func}: target must hold integer class indices, "
                        f"got dtype {target.dtype}")
    if tuple(target.shape) != sample_shape:
        raise ValueError(f"xentc.dask.{func}: target must have shape {sample_shape} "
                         f"(the logits' shape without the class axis), got "
                         f"{tuple(target.shape)}")
    if isinstance(target, da.Array):
        target = target.rechunk(sample_chunks)
    else:
        target = da.from_array(target, chunks=sample_chunks)
    # Give target a length-1 class axis (broadcast over the class blocks),
    # and the class weights the logits' class chunks (each block its slice).
    args = [x, target[(slice(None),) * ax + (None,)]]
    if w is not None:
        wshape = [1] * x.ndim
        wshape[ax] = nclasses
        wchunks = [(1,)] * x.ndim
        wchunks[ax] = x.chunks[ax]
        args.append(da.from_array(w.reshape(wshape), chunks=tuple(wchunks)))
    chunks = tuple((1,) * len(c) if i == ax else c for i, c in enumerate(x.chunks))
    options = dict(
        ignore_index=_targets.check_ignore_index(ignore_index, func),
        label_smoothing=_targets.check_fraction(label_smoothing, "label_smoothing", func),
        z_loss=_targets.check_nonnegative(z_loss, "z_loss", func),
        softcap=_targets.check_softcap(softcap, func) or None,
    )
    blocks = da.map_blocks(
        _ce_chunk, *args, axis=ax, workers=workers, **options, chunks=chunks,
        dtype=_CE_DTYPE, meta=np.empty((0,) * x.ndim, _CE_DTYPE),
    )
    parts = da.reduction(
        blocks, chunk=_identity_chunk,
        combine=functools.partial(_merge_blocks, kind="ce"),
        aggregate=functools.partial(_merge_blocks, kind="ce"),
        axis=ax, keepdims=True, concatenate=True, dtype=_CE_DTYPE,
        meta=np.empty((0,) * x.ndim, _CE_DTYPE),
    )
    per_sample = parts.map_blocks(_ce_finalize, axis=ax, drop_axis=ax, dtype=np.float64,
                                  meta=np.empty((0,) * (x.ndim - 1), np.float64))
    if reduction == "none":
        return per_sample.astype(dtype)
    total = per_sample.sum()
    if reduction == "sum":
        return total.astype(dtype)
    # 'mean' divides by the summed class weights of the samples not ignored:
    # the target_weight column (0 for ignored samples).
    denominator = parts.map_blocks(_target_weight, axis=ax, drop_axis=ax,
                                   dtype=np.float64,
                                   meta=np.empty((0,) * (x.ndim - 1), np.float64)).sum()
    if options["label_smoothing"] or options["z_loss"]:
        # the terms 'mean' divides apart (they matter at a zero denominator)
        split = [parts.map_blocks(_ce_term, axis=ax, term=k, drop_axis=ax,
                                  dtype=np.float64,
                                  meta=np.empty((0,) * (x.ndim - 1), np.float64)).sum()
                 for k in (0, 1, 2)]
    else:
        split = [total] * 3  # not read: mean_of asks for the terms only with options
    return da.map_blocks(_mean, total, denominator, *split,
                         smoothing=options["label_smoothing"], nclasses=nclasses,
                         z_loss=options["z_loss"],
                         out_dtype=dtype, dtype=dtype,
                         meta=np.empty((), dtype))
