"""Cross-entropy family: cross_entropy (+ gradient), nll_loss, log_loss, kl_div."""

import numpy as np

from . import _core, _half, _outputs, _targets
from ._array_api import same_namespace
from ._layout import Rows, last_axis_rows
from ._logsumexp import logsumexp, softmax
from ._validation import (as_float, as_int, check_out, chunk_size, position,
                          resolve_workers, row_threads)

__all__ = ["cross_entropy", "cross_entropy_and_grad", "nll_loss", "log_loss", "kl_div"]


def _reduce(per_sample, row_weight, denominator, reduction, sample_shape, dtype):
    """Apply sample weights and the reduction to per-sample losses.

    per_sample: float64 losses of the flattened samples; row_weight: what
    multiplies each (sample weights, or None); denominator: what 'mean'
    divides by.
    """
    weighted = per_sample if row_weight is None else per_sample * row_weight
    if reduction == "none":
        out = _half.cast(weighted.reshape(sample_shape), dtype)
        return out[()] if out.ndim == 0 else out
    return _finish(_core.sum_losses(np.ascontiguousarray(weighted, np.float64)),
                   denominator, reduction, dtype)


def _loss_scale(reduction, denominator):
    """d reduced loss / d summed loss: 1 for 'sum', 1 / denominator for
    'mean' (inf or NaN for a zero one, as torch gives)."""
    if reduction != "mean":
        return 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 / np.float64(denominator)


def _finish(total, denominator, reduction, dtype, prob=None, parts=None):
    """'sum' or 'mean' of losses whose (weighted) sum is `total`; 'mean'
    divides as torch does (_targets.mean_of: a zero denominator gives NaN
    or +-inf, never an error; `prob`, the _Problem, and `parts` give the
    terms torch divides apart)."""
    # The loss has the logits' dtype, float16 and bfloat16 included, as
    # torch's cross_entropy returns it (and scipy's logsumexp of float16):
    # a drop-in gives the dtype the caller's code expects. Computed in
    # double and rounded once (_half.cast), a 16-bit loss is the best value
    # its dtype holds; a caller who needs more digits passes float32 logits.
    if reduction == "sum":
        return _scalar(total, dtype)
    if denominator != 0:
        # Python floats: the same IEEE double division as NumPy's, less code
        return _scalar(float(total) / float(denominator), dtype)
    if prob is None:
        return _scalar(_targets.mean_of(total, denominator), dtype)
    # (probability targets: the smoothing is inside q, no term of its own)
    smoothing = prob.smoothing if prob.kind == "index" else 0.0
    return _scalar(_targets.mean_of(total, denominator, smoothing, prob.nclasses,
                                    prob.z_loss, parts), dtype)


def _scalar(value, dtype):
    """A double result as a NumPy scalar of dtype (16-bit: rounded once)."""
    return _half.from_float64(value, dtype) if _half.is_half(dtype) else dtype.type(value)


# Rows per call of the kernels when only the reduced loss is wanted: the
# per-sample losses of a tile (2 MiB) are summed and the buffer reused, so
# a call on 10^6 rows allocates no fresh N-sized array, whose pages the OS
# would have to zero (several ms of system time per call). A multiple of
# the short-row kernel's task (1024 rows), so rows fall in the same groups;
# rounded down to whole chunks of _core.loss_order, the order every path
# sums in (ce_plain sums inside the fused kernels' tasks).
_TILE_ROWS = 1 << 18


class _Problem:
    """Validated cross-entropy arguments, arranged as (N, C) rows."""

    def __init__(self, func, logits, target, axis, weight, sample_weight, ignore_index,
                 reduction, label_smoothing, z_loss, softcap):
        x = _targets.float_array(logits, "logits", func)
        self.dtype = x.dtype
        self.cdtype = _targets.compute_dtype(x.dtype)
        self.axis = _targets.class_axis(axis, x, func)
        self.shape = x.shape
        self.nclasses = x.shape[self.axis]
        self.sample_shape = x.shape[: self.axis] + x.shape[self.axis + 1:]
        _targets.check_reduction(reduction, func)
        self.reduction = reduction
        self.smoothing = _targets.check_fraction(label_smoothing, "label_smoothing", func)
        self.z_loss = _targets.check_nonnegative(z_loss, "z_loss", func)
        self.softcap = _targets.check_softcap(softcap, func)
        self.weight = _targets.class_weights(weight, self.nclasses, func)
        self.sample_weight = _targets.sample_weights(sample_weight, self.sample_shape, func)

        self.kind = _targets.target_kind(target, x.shape, self.sample_shape, func)
        self.x = x
        # 16-bit logits stay 16-bit: the kernels read them as such
        self.half = _half.is_half(x.dtype)
        self.rows = Rows(x, (self.axis,), x.dtype if self.half else self.cdtype)
        if self.kind == "index":
            self.index, self.nvalid = _targets.index_targets(
                target, self.nclasses, self.sample_shape, ignore_index, func,
                x.shape, self.axis)
            self.prob = None
        else:
            if as_int(ignore_index, "ignore_index", func) >= 0:
                # torch: "ignore_index is not supported for floating point target"
                raise ValueError(
                    f"{func}: ignore_index={ignore_index} cannot apply to probability "
                    "targets; use a negative ignore_index (the default) or class indices"
                )
            self.index = np.empty(0, np.int64)
            self.nvalid = self.rows.nrows
            self.prob = Rows(np.asarray(target), (self.axis,), self.cdtype).data
        self._denominator()

    @classmethod
    def plain(cls, x, index, reduction):
        """The problem of 2-D logits x (C-contiguous, aligned float32/64,
        classes along axis 1) with class indices `index` (int64, every one
        in [0, C)) and every option at its default, set up without the
        general validation: what __init__ would make of it."""
        p = cls.__new__(cls)
        p.dtype = p.cdtype = x.dtype
        p.half = False
        p.axis = 1
        p.shape = x.shape
        p.nclasses = x.shape[1]
        p.sample_shape = x.shape[:1]
        p.reduction = reduction
        p.smoothing = p.z_loss = p.softcap = 0.0
        p.weight = p.sample_weight = None
        p.kind = "index"
        p.x = x
        p.rows = Rows.of_matrix(x)
        p.index = index
        p.nvalid = p.denom = x.shape[0]
        p.prob = None
        return p

    def _denominator(self):
        """What 'mean' divides by (torch's rules, with sample weights)."""
        self.denom = _targets.mean_denominator(self.kind, self.rows.nrows, self.index,
                                               self.nvalid, self.weight,
                                               self.sample_weight)

    def grad_scale(self):
        """d reduced loss / d per-sample loss: (per-sample array, or an empty
        one when every sample shares the scalar)."""
        scale = _loss_scale(self.reduction, self.denom)
        if self.sample_weight is None:
            return None, float(scale)
        return self.sample_weight * scale, 1.0

    def run(self, workers, grad=None):
        """Per-sample losses (float64) of every row; fills grad ((N, C)
        rows) if given."""
        per_sample = np.empty(self.rows.nrows)
        self._kernel(self._threads(workers), grad, 0, self.rows.nrows, per_sample)
        return per_sample

    def loss(self, workers, grad=None):
        """The reduced loss (or per-sample losses for reduction='none');
        fills grad if given. Reductions run over tiles of rows (see
        _TILE_ROWS)."""
        if self.reduction == "none":
            return self.reduce(self.run(workers, grad))
        parts = None
        if self.reduction == "mean" and self.denom == 0 and (
                self.z_loss or (self.smoothing and self.kind == "index")):
            # taken before the kernel: the gradient may overwrite the logits
            split = self._split_totals()
            parts = lambda: split  # noqa: E731
        n = self.rows.nrows
        nthreads = self._threads(workers)
        # tiles of whole chunks, summed chunk by chunk: ce_plain's order
        chunk, tile_rows = _core.loss_order(max(self.rows.ncols, 1), _TILE_ROWS)
        # placed away from the logits and targets (4K aliasing, see
        # _core._tile_losses)
        targets = self.index if self.kind == "index" else self.prob
        buf = _core.placed_losses(min(n, tile_rows), self.rows.data.ctypes.data,
                                  targets.ctypes.data)
        sw = self.sample_weight
        total = 0.0
        for start in range(0, n, tile_rows):
            stop = min(n, start + tile_rows)
            tile = buf[: stop - start]
            self._kernel(nthreads, grad, start, stop, tile)
            total = _core.sum_losses(tile if sw is None else tile * sw[start:stop], chunk,
                                     total)
        return _finish(total, self.denom, self.reduction, self.dtype, self, parts)

    def _split_totals(self):
        """The totals of the NLL, smoothing and z-loss terms apart, for a
        'mean' whose denominator is zero (see _targets.mean_of): the kernel
        with one option at a time (smoothing 1 gives the smoothing sum over
        C; the z-loss is what it adds to the plain NLL). Only their signs
        and zeros matter there, so the rounding of these steps does not."""
        smoothing, z_loss = self.smoothing, self.z_loss
        sw = self.sample_weight
        # probability targets: torch smooths inside q, one term (the
        # smoothing stays as it is, and the z-loss is the second term)
        settings = (((0.0, 0.0), (1.0, 0.0), (0.0, z_loss)) if self.kind == "index" else
                    ((smoothing, 0.0), (smoothing, 0.0), (smoothing, z_loss)))
        try:
            losses = []
            for self.smoothing, self.z_loss in settings:
                losses.append(self.run(None))
        finally:
            self.smoothing, self.z_loss = smoothing, z_loss
        nll, smooth, with_z = losses
        if self.kind == "prob":
            smooth = np.zeros_like(smooth)
        terms = (nll, smooth * self.nclasses, with_z - nll)
        return tuple(_core.sum_losses(t if sw is None else t * sw) for t in terms)

    def _threads(self, workers):
        return row_threads(workers, self.rows.nrows, self.rows.ncols)

    def _kernel(self, nthreads, grad, start, stop, out):
        """The kernel on rows [start, stop): losses into out, gradient into
        grad's rows if grad is given; what the call does not use is None."""
        whole = start == 0 and stop == self.rows.nrows

        def part(a):
            return a if whole else a[start:stop]

        want_grad = grad is not None
        if want_grad and not hasattr(self, "_scale"):
            self._scale = self.grad_scale()
        scale, scale_all = self._scale if want_grad else (None, 0.0)
        if self.half:
            # (the widened tiles are soft-capped in place: no scratch)
            _core.ce_rows_h16(
                _half.bits(part(self.rows.data)), _half.kind(self.dtype),
                part(self.index) if self.kind == "index" else None,
                part(self.prob) if self.kind == "prob" else None, self.options(),
                part(scale) if scale is not None else None, scale_all, out,
                _half.bits(part(grad)) if want_grad else None, nthreads,
            )
            return
        scratch = (np.empty((nthreads, min(self.rows.ncols, chunk_size())), self.cdtype)
                   if self.softcap else None)
        _core.ce_rows(
            part(self.rows.data), part(self.index) if self.kind == "index" else None,
            part(self.prob) if self.kind == "prob" else None, self.options(),
            part(scale) if scale is not None else None, scale_all, out,
            part(grad) if want_grad else None, scratch, nthreads,
        )

    def options(self):
        """The constant options as the kernels take them (_core.CEOptions)."""
        if self.weight is None and not (self.smoothing or self.z_loss or self.softcap):
            return _DEFAULT_OPTIONS
        return _core.CEOptions(self.weight, self.smoothing, self.z_loss, self.softcap)

    def reduce(self, per_sample):
        return _reduce(per_sample, self.sample_weight, self.denom,
                       self.reduction, self.sample_shape, self.dtype)


_I64 = np.dtype(np.int64)
_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_NO_TARGETS = np.empty(0, np.int64)
_DEFAULT_OPTIONS = _core.CEOptions()


def _is_plain(logits, target, axis, weight, sample_weight, ignore_index, reduction,
              label_smoothing, z_loss, softcap, halves=False):
    """Is this the common call? 2-D aligned C-contiguous float32/float64
    logits (with `halves`, float16/bfloat16 too) with classes on the last
    axis, 1-D int64 targets and every option at its default. Its targets
    still need the scan (an ignored or out-of-range one sends the call to
    the general path).

    The fast paths for it skip the general set-up, which costs ~10 us warm
    but runs with cold caches: right after the previous call's kernel has
    streamed its logits through them, it took ~150 us of a 620 us call on
    4096x1000 float32.
    """
    if (weight is not None or sample_weight is not None or softcap is not None
            or type(label_smoothing) not in (int, float) or label_smoothing != 0
            or type(z_loss) not in (int, float) or z_loss != 0
            or type(reduction) is not str or type(axis) is not int
            or type(ignore_index) is not int
            or type(logits) is not np.ndarray or type(target) is not np.ndarray):
        return False
    if logits.ndim != 2 or last_axis_rows(logits, axis, halves) is None:
        return False
    return (target.dtype is _I64 and target.shape == logits.shape[:1]
            and reduction in ("mean", "sum", "none")
            and -(1 << 63) <= ignore_index < (1 << 63)
            and target.flags.c_contiguous and target.flags.aligned)


def _plain_problem(logits, target, axis, weight, sample_weight, ignore_index, reduction,
                   label_smoothing, z_loss, softcap, workers=None):
    """_Problem.plain for the common call (_is_plain) whose targets are all
    class indices, or None for any other (which takes the general
    validation, with the same results)."""
    if not _is_plain(logits, target, axis, weight, sample_weight, ignore_index, reduction,
                     label_smoothing, z_loss, softcap):
        return None
    n, c = logits.shape
    first_bad, nvalid = _core.prepare_index_targets(target, c, ignore_index, _NO_TARGETS,
                                                    row_threads(workers, n, c))
    if first_bad >= 0 or nvalid != target.shape[0]:
        return None
    return _Problem.plain(logits, target, reduction)


_CE_PARAMS_DOC = """
    Parameters
    ----------
    logits : array_like
        Unnormalised scores; float16/32/64 or ``ml_dtypes.bfloat16`` (integers
        are taken as float64). 16-bit logits are read as such and computed
        in float32.
    target : array_like
        Either class indices (any integer dtype) with the logits' shape
        without the class axis, or class probabilities (floating, the logits'
        shape), chosen as torch does.
    axis : int, optional
        The class axis (default -1). ``axis=1`` is torch's (N, C, d1, ...)
        layout.
    weight : array_like, optional
        A weight per class (length C). Any finite value, negative and zero
        included, as in torch (a negative weight pushes probability away
        from its class); NaN and inf raise ValueError.
    sample_weight : array_like, optional
        A weight per sample (the target's shape for indices; the logits'
        shape without the class axis). 'mean' becomes sum(w * l) / sum(w)
        (times the class weight of the target for index targets). Any
        finite value, as for `weight`: a sample weight scales its sample's
        loss and gradient exactly as a class weight does (passing
        ``weight[target]`` as `sample_weight` gives the class-weighted
        loss), so the two follow one rule.
    ignore_index : int, optional
        Index targets equal to it contribute nothing, to the loss, to the
        'mean' denominator or to the gradient (default -100).
    reduction : {'mean', 'sum', 'none'}, optional
        'mean' divides by the sum of the target-class weights of the samples
        not ignored (index targets) or by the number of samples (probability
        targets), as torch does. The sum is divided by as it is, as torch
        does: when every sample is ignored the mean is NaN (0/0), and signed
        weights that sum to zero give +-inf or NaN (the loss and the
        gradient as torch's autograd gives them). 'none' returns the
        per-sample losses.
    label_smoothing : float, optional
        In [0, 1]: the target becomes (1 - e) * onehot + e / C, weighted as
        in torch.
    z_loss : float, optional
        Adds ``z_loss * logsumexp(logits)**2`` per sample (PaLM).
    softcap : float, optional
        Replaces logits by ``softcap * tanh(logits / softcap)`` first
        (Gemma 2).
    workers : int, optional
        Threads, as in :func:`xentc.logsumexp`; results are bitwise
        identical for every value.
"""


def cross_entropy(logits, target, *, axis=-1, weight=None, sample_weight=None,
                  ignore_index=-100, reduction="mean", label_smoothing=0.0,
                  z_loss=0.0, softcap=None, workers=None):
    if reduction != "none" and _is_plain(logits, target, axis, weight, sample_weight,
                                         ignore_index, reduction, label_smoothing,
                                         z_loss, softcap, halves=True):
        # the common call in one kernel call: _Problem.loss's arithmetic
        n, c = logits.shape
        if logits.dtype is _F32 or logits.dtype is _F64:
            total = _core.ce_plain(logits, target, ignore_index, _TILE_ROWS,
                                   row_threads(workers, n, c))
        else:
            total = _core.ce_plain_h16(_half.bits(logits), _half.kind(logits.dtype), target,
                                       ignore_index, _TILE_ROWS, row_threads(workers, n, c))
        if total is not None:
            return _finish(total, n, reduction, logits.dtype)
    resolve_workers(workers)
    prob = (_plain_problem(logits, target, axis, weight, sample_weight, ignore_index,
                           reduction, label_smoothing, z_loss, softcap, workers)
            or _Problem("cross_entropy", logits, target, axis, weight, sample_weight,
                        ignore_index, reduction, label_smoothing, z_loss, softcap))
    return prob.loss(workers)


cross_entropy.__doc__ = """Cross-entropy between logits and targets, as ``torch.nn.functional.cross_entropy``.

    For class indices y: ``loss_n = logsumexp(x_n) - x_n[y_n]`` (times the
    class weight of y_n), computed in one pass per row by the C kernels, with
    no (N, C) temporary. For probabilities q: ``loss_n = -sum_c q_c
    log_softmax(x_n)_c``.
""" + _CE_PARAMS_DOC + """
    Returns
    -------
    loss : NumPy scalar, or ndarray for reduction='none'
        In the logits' dtype (accumulated in float64), float16 and bfloat16
        included, as torch returns it: computed in double and rounded once,
        a 16-bit loss is the nearest value of its dtype (pass float32
        logits for more digits).

    Raises
    ------
    IndexError
        For a class index outside [0, C) that is not `ignore_index`.
    ValueError
        For targets, weights or options of the wrong shape or range.

    See Also
    --------
    cross_entropy_and_grad, nll_loss, log_loss, kl_div

    Examples
    --------
    >>> import numpy as np
    >>> from xentc import cross_entropy
    >>> logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]])
    >>> float(cross_entropy(logits, np.array([0, 2])))
    0.16811712653905...
    >>> cross_entropy(logits, np.array([0, -100]), reduction="none")
    array([0.2413113, 0.       ])
    """


def cross_entropy_and_grad(logits, target, *, axis=-1, weight=None, sample_weight=None,
                           ignore_index=-100, reduction="mean", label_smoothing=0.0,
                           z_loss=0.0, softcap=None, workers=None, grad_out=None):
    if reduction != "none" and _is_plain(logits, target, axis, weight, sample_weight,
                                         ignore_index, reduction, label_smoothing,
                                         z_loss, softcap):
        got = _plain_and_grad(logits, target, ignore_index, reduction, workers, grad_out)
        if got is not None:
            return got
    resolve_workers(workers)
    prob = (_plain_problem(logits, target, axis, weight, sample_weight, ignore_index,
                           reduction, label_smoothing, z_loss, softcap, workers)
            or _Problem("cross_entropy_and_grad", logits, target, axis, weight,
                        sample_weight, ignore_index, reduction, label_smoothing, z_loss,
                        softcap))
    if grad_out is not None:
        _check_grad_out(grad_out, prob)
    rows = prob.rows
    # Write straight into grad_out when the kernels can (grad_out may be the
    # logits themselves), otherwise into a buffer copied over at the end.
    direct = None if grad_out is None else rows.direct_output(grad_out)
    if (direct is not None and prob.prob is not None
            and np.may_share_memory(direct, prob.prob)):
        # the kernels read probability targets while writing the gradient
        direct = None
    buf = _outputs.empty_like(rows.data) if direct is None else direct
    if (prob.reduction == "mean" and prob.denom == 0 and prob.kind == "index"
            and prob.nvalid):
        # the rare zero denominator: copy the logits before the kernels
        # (the gradient may overwrite them), then torch's gradient pattern
        logits_rows = rows.data.astype(prob.cdtype)
        loss = prob.loss(workers, grad=buf)
        buf[...] = _zero_denominator_grad(prob, logits_rows)
    else:
        loss = prob.loss(workers, grad=buf)
    if direct is not None:
        return loss, grad_out
    grad = rows.restore(buf)
    if grad_out is None:
        return loss, grad.astype(prob.dtype, copy=False)
    grad_out[...] = grad
    return loss, grad_out


cross_entropy_and_grad.__doc__ = """Cross-entropy and its gradient with respect to the logits, fused.

    One pass per row computes the log-sum-exp, the loss and
    ``d loss / d logits`` (softmax minus the smoothed target, scaled as the
    reduction scales the loss). With ``reduction='none'`` the gradient is
    that of the sum of the per-sample losses. The pair fits
    ``scipy.optimize.minimize(fun, x0, jac=True)``.
""" + _CE_PARAMS_DOC + """    grad_out : ndarray, optional
        Where to write the gradient: an array of the logits' shape and dtype,
        or the logits array itself (in place, no extra memory).

    Returns
    -------
    loss : NumPy scalar, or ndarray for reduction='none'
    grad : ndarray
        The logits' shape and dtype (`grad_out` when given).

    Examples
    --------
    >>> import numpy as np
    >>> from xentc import cross_entropy_and_grad
    >>> logits = np.array([[2.0, 0.5, -1.0]])
    >>> loss, grad = cross_entropy_and_grad(logits, np.array([0]))
    >>> grad.round(4)
    array([[-0.2144,  0.1753,  0.0391]])
    >>> bool(abs(grad.sum()) < 1e-15)
    True
    """


def _zero_denominator_grad(prob, x):
    """The gradient of a 'mean' whose denominator is zero (signed class
    weights), as torch's autograd produces it: d = 0 makes every term +-inf
    or NaN, and which one depends on the order of torch's operations, so
    they are followed here (nll_loss and the smoothing sum backward, then
    log_softmax's ``g - softmax * sum(g)``) rather than the kernels'
    fused formula, which would give +-inf where torch gives NaN. Rows x are
    the (N, C) logits; only this degenerate case runs NumPy arithmetic.
    """
    if prob.softcap:
        t = np.tanh(x.astype(np.float64) / prob.softcap)
        x = prob.softcap * t
    p = softmax(x, axis=1)
    n, c = x.shape
    valid = prob.index >= 0
    w = np.ones(c) if prob.weight is None else prob.weight
    inv = np.float64(1.0) / np.float64(prob.denom) if prob.denom else (
        np.copysign(np.inf, prob.denom))
    e = prob.smoothing
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        g = np.zeros((n, c))
        rows = np.flatnonzero(valid)
        g[rows, prob.index[rows]] = -w[prob.index[rows]] * ((1.0 - e) * inv)
        if e:
            g[rows] += -w * ((e / c) * inv)
        if prob.sample_weight is not None:
            g *= prob.sample_weight[:, None]
        grad = g - p * g.sum(axis=1, keepdims=True)
        if prob.z_loss:
            lse = logsumexp(x, axis=1)
            zw = 2 * prob.z_loss * lse * inv
            if prob.sample_weight is not None:
                zw = zw * prob.sample_weight
            grad[rows] += zw[rows, None] * p[rows]
        if prob.softcap:
            grad *= 1.0 - t * t
        grad[~valid] = 0.0  # ignored rows: exactly zero, whatever their logits
    return grad


def _plain_and_grad(logits, target, ignore_index, reduction, workers, grad_out):
    """cross_entropy_and_grad's common call (_is_plain, 'mean' or 'sum') in
    one _core.ce_plain call: (loss, gradient), or None when a target is
    not a class index or grad_out is not simply the logits' shape, dtype
    and layout, apart from them or the logits themselves (the general path
    then answers, and raises what it raises)."""
    n, c = logits.shape
    if n == 0:
        return None
    if grad_out is None:
        grad = _outputs.empty_like(logits)
    elif (type(grad_out) is np.ndarray and grad_out.shape == logits.shape
          and grad_out.dtype == logits.dtype and grad_out.flags.c_contiguous
          and grad_out.flags.aligned and grad_out.flags.writeable
          and not np.may_share_memory(grad_out, target)
          and (grad_out.ctypes.data == logits.ctypes.data
               or not np.may_share_memory(grad_out, logits))):
        grad = grad_out
    else:
        return None
    scale = float(_loss_scale(reduction, n))
    total = _core.ce_plain(logits, target, ignore_index, _TILE_ROWS,
                           row_threads(workers, n, c), grad, scale)
    if total is None:
        return None
    return _finish(total, n, reduction, logits.dtype), grad


def _check_grad_out(grad_out, prob):
    func = "cross_entropy_and_grad"
    check_out(grad_out, prob.shape, prob.dtype, func, "grad_out", "the logits' ")


def nll_loss(log_probs, target, *, axis=-1, weight=None, sample_weight=None,
             ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of class indices, as ``torch.nn.functional.nll_loss``.

    ``loss_n = -weight[y_n] * log_probs[n, y_n]``; 'mean' divides by the sum
    of ``weight[y_n]`` (times `sample_weight`) over samples not ignored.

    Parameters
    ----------
    log_probs : array_like
        Log-probabilities (e.g. from :func:`xentc.log_softmax`).
    target : array_like of int
        Class indices, the shape of `log_probs` without the class axis.
    axis, weight, sample_weight, ignore_index, reduction
        As in :func:`cross_entropy`.

    Returns
    -------
    loss : NumPy scalar, or ndarray for reduction='none'

    Examples
    --------
    >>> import numpy as np
    >>> from xentc import nll_loss, log_softmax
    >>> logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]])
    >>> float(nll_loss(log_softmax(logits, axis=1), np.array([0, 2])))
    0.16811712653905...
    """
    func = "nll_loss"
    x = _targets.float_array(log_probs, "log_probs", func)
    ax = _targets.class_axis(axis, x, func, "log_probs")
    _targets.check_reduction(reduction, func)
    nclasses = x.shape[ax]
    sample_shape = x.shape[:ax] + x.shape[ax + 1:]
    if _targets.target_kind(target, x.shape, sample_shape, func) != "index":
        raise TypeError(f"{func}: target must hold integer class indices")
    index, _ = _targets.index_targets(target, nclasses, sample_shape, ignore_index, func,
                                      x.shape, ax)
    w = _targets.class_weights(weight, nclasses, func)
    sw = _targets.sample_weights(sample_weight, sample_shape, func)
    rows = Rows(x, (ax,), _targets.compute_dtype(x.dtype))
    picked = np.empty(rows.nrows)
    _core.gather_rows(rows.data, index, picked, 1)
    valid = index >= 0
    wy = valid.astype(np.float64)
    if w is not None:
        wy = np.where(valid, w[np.where(valid, index, 0)], 0.0)
    per_sample = -wy * picked
    denom = np.sum(wy if sw is None else wy * sw)
    return _reduce(per_sample, sw, denom, reduction, sample_shape, x.dtype)


def log_loss(probs, target, *, axis=-1, eps="auto", sample_weight=None, reduction="mean"):
    """Cross-entropy from probabilities and targets, as scikit-learn's log loss.

    ``loss_n = -sum_c y_nc log p_nc`` with `probs` clipped to
    ``[eps, 1 - eps]``; `target` holds class indices or one-hot (or soft)
    rows of the probabilities' shape.

    Parameters
    ----------
    probs : array_like
        Probabilities in [0, 1] (other values, NaN included, raise ValueError).
    target : array_like
        Integer class indices (the shape of `probs` without the class axis)
        or floating rows with the shape of `probs`.
    axis : int, optional
        The class axis (default -1).
    eps : float or "auto", optional
        Clipping; "auto" is ``numpy.finfo(probs.dtype).eps``.
    sample_weight : array_like, optional
        Per-sample weights (any finite value, as in :func:`cross_entropy`);
        'mean' becomes sum(w * l) / sum(w).
    reduction : {'mean', 'sum', 'none'}, optional
        'mean' (default) averages the per-sample losses (weighted by
        `sample_weight`), 'sum' adds them, 'none' returns them, with the
        shape of `probs` without the class axis.

    Returns
    -------
    loss : NumPy scalar, or ndarray for reduction='none'

    Examples
    --------
    >>> import numpy as np
    >>> from xentc import log_loss
    >>> p = np.array([[0.9, 0.1], [0.2, 0.8]])
    >>> float(log_loss(p, np.array([0, 1])))
    0.164252033486018
    >>> float(log_loss(p, np.array([[1.0, 0.0], [0.0, 1.0]])))
    0.164252033486018
    """
    func = "log_loss"
    p = _targets.float_array(probs, "probs", func)
    ax = _targets.class_axis(axis, p, func, "probs")
    _targets.check_reduction(reduction, func)
    bad = ~((p >= 0) & (p <= 1))
    if bad.any():
        pos = position(np.argmax(bad), p.shape)
        raise ValueError(f"{func}: probs{list(pos)} = {float(p[pos])!r} is not a "
                         "probability in [0, 1]")
    if eps == "auto":
        # (NumPy's finfo knows no bfloat16: its eps is 2^-7)
        eps = 2.0 ** -7 if _half.is_bfloat16(p.dtype) else np.finfo(p.dtype).eps
    else:
        eps = as_float(eps, "eps", func)
    if not 0.0 <= eps < 0.5:
        raise ValueError(f"{func}: eps must be in [0, 0.5) or 'auto', got {eps!r}")
    nclasses = p.shape[ax]
    sample_shape = p.shape[:ax] + p.shape[ax + 1:]
    sw = _targets.sample_weights(sample_weight, sample_shape, func)
    rows = Rows(p, (ax,), np.float64)
    if _targets.target_kind(target, p.shape, sample_shape, func) == "index":
        index, _ = _targets.index_targets(target, nclasses, sample_shape, None, func,
                                          p.shape, ax)
        picked = np.empty(rows.nrows)
        _core.gather_rows(rows.data, index, picked, 1)
        per_sample = -np.log(np.clip(picked, eps, 1 - eps))
    else:
        y = Rows(np.asarray(target), (ax,), np.float64).data
        per_sample = -np.sum(y * np.log(np.clip(rows.data, eps, 1 - eps)), axis=1)
    denom = per_sample.size if sw is None else np.sum(sw)
    return _reduce(per_sample, sw, denom, reduction, sample_shape, p.dtype)


def kl_div(logits, target_probs, *, axis=-1, reduction="mean"):
    """Kullback-Leibler divergence KL(target || softmax(logits)) per sample.

    ``sum_c q_c (log q_c - log_softmax(x)_c)`` with ``0 log 0 = 0``: the
    cross-entropy with probability targets minus the targets' entropy.
    'mean' divides by the number of samples (torch's 'batchmean').

    Parameters
    ----------
    logits : array_like
        Unnormalised scores.
    target_probs : array_like
        Target distributions, the logits' shape.
    axis : int, optional
        The class axis (default -1).
    reduction : {'mean', 'sum', 'none'}, optional

    Returns
    -------
    loss : NumPy scalar, or ndarray for reduction='none'

    Examples
    --------
    >>> import numpy as np
    >>> from xentc import kl_div
    >>> x = np.log(np.array([[0.5, 0.25, 0.25]]))
    >>> float(kl_div(x, np.array([[0.5, 0.25, 0.25]])))
    0.0
    """
    func = "kl_div"
    q = _targets.float_array(target_probs, "target_probs", func)
    prob = _Problem(func, logits, q, axis, None, None, -100, reduction, 0.0, 0.0, None)
    if prob.kind != "prob":
        raise TypeError(f"{func}: target_probs must be floating probabilities")
    cross = prob.run(None)
    qd = prob.prob.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        neg_entropy = np.sum(np.where(qd > 0, qd * np.log(np.where(qd > 0, qd, 1)), 0.0),
                             axis=1)
    return _reduce(cross + neg_entropy, None, cross.size, reduction, prob.sample_shape,
                   prob.dtype)


# Arrays of other libraries (torch, JAX...) in, the same library's out.
_ARRAY_ARGS = ("logits", "target", "weight", "sample_weight")
cross_entropy = same_namespace(cross_entropy, _ARRAY_ARGS)
cross_entropy_and_grad = same_namespace(cross_entropy_and_grad, _ARRAY_ARGS)
