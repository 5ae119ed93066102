"""Validation of cross-entropy arguments, shared by the loss functions."""
import math

import numpy as np
from numpy.lib.array_utils import normalize_axis_index

from . import _core, _half
from ._layout import kernel_array
from ._validation import as_float, as_int, check_numeric, position

REDUCTIONS = ("none", "mean", "sum")

# Logits dtype -> dtype the kernels compute in (accumulation is float64);
# the 16-bit dtypes (float16, bfloat16) compute in float32.
COMPUTE_DTYPE = {
    np.dtype(np.float16): np.dtype(np.float32),
    np.dtype(np.float32): np.dtype(np.float32),
    np.dtype(np.float64): np.dtype(np.float64),
}


def float_array(x, argname, func):
    """`x` as a real floating array (integers become float64)."""
    x = np.asarray(x)
    check_numeric(x, argname, func)
    if x.dtype.kind == "b":
        raise TypeError(f"{func}: {argname} must be a floating-point array, not bool")
    if x.dtype.kind == "c":
        raise TypeError(f"{func}: {argname} must be real, got dtype {x.dtype}")
    if x.dtype.kind in "iu":
        x = x.astype(np.float64)
    return x


def compute_dtype(dtype):
    dtype = np.dtype(dtype)
    if _half.is_bfloat16(dtype):
        return np.dtype(np.float32)
    return COMPUTE_DTYPE.get(dtype, np.dtype(np.float64))


def class_axis(axis, x, func, argname="logits"):
    if x.ndim == 0:
        raise ValueError(f"{func}: {argname} must have a class axis, got a 0-d array")
    # prefixed like every other message ("cross_entropy: axis 2 is out of
    # bounds for array of dimension 2"), still numpy's AxisError
    ax = normalize_axis_index(as_int(axis, "axis", func), x.ndim, func)
    if x.shape[ax] == 0:
        raise ValueError(f"{func}: {argname} has no classes (axis {ax} has length 0)")
    return ax


def check_reduction(reduction, func):
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"{func}: reduction must be one of {REDUCTIONS}, got {reduction!r}"
        )


def check_fraction(value, argname, func):
    v = as_float(value, argname, func)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{func}: {argname} must be in [0, 1], got {v!r}")
    return v


def check_nonnegative(value, argname, func):
    v = as_float(value, argname, func)
    if not (v >= 0.0 and math.isfinite(v)):
        raise ValueError(f"{func}: {argname} must be finite and >= 0, got {v!r}")
    return v


def check_softcap(softcap, func):
    if softcap is None:
        return 0.0
    v = as_float(softcap, "softcap", func)
    if not (v > 0.0 and math.isfinite(v)):
        raise ValueError(f"{func}: softcap must be None or finite and > 0, got {v!r}")
    return v


def check_ignore_index(ignore_index, func):
    """ignore_index as a Python int; it must fit the int64 targets the
    kernels compare it with."""
    ignore_index = as_int(ignore_index, "ignore_index", func)
    int64 = np.iinfo(np.int64)
    if not int64.min <= ignore_index <= int64.max:
        raise ValueError(f"{func}: ignore_index must fit in int64, got {ignore_index}")
    return ignore_index


def _check_weights(w, argname, what, func):
    """Every element of w finite, else a ValueError naming the first bad one.

    Any finite value is accepted, negative and zero included, as torch's
    class weights are: a weight scales its samples' losses and gradients
    linearly, and objectives with negative weights (pushing probability
    away from a class) are legitimate. NaN and inf have no such reading.
    """
    bad = ~np.isfinite(w)
    if bad.any():
        pos = position(np.argmax(bad), w.shape)
        raise ValueError(f"{func}: {argname}{list(pos)} = {float(w[pos])!r}; "
                         f"{what} must be finite (any sign)")


def mean_of(total, denominator, smoothing=0.0, nclasses=1, z_loss=0.0, parts=None):
    """'mean' as torch computes it: the loss total divided by the
    denominator as it is, with IEEE rules when the denominator is zero
    (0/0 is NaN, x/0 is +-inf), which signed class weights can give.

    torch divides the NLL term and the label-smoothing term apart,
    ``(1 - e) * (nll / d) + (e / C) * (smooth / d)`` (and the z-loss, which
    torch lacks, is a third term here), so at a zero denominator each
    term's sign decides (inf + -inf is NaN, and so is 0 * inf at e = 1).
    `parts` is then a callable returning the totals (nll, smooth, z) of the
    unscaled terms, asked for only in that case. Elsewhere the one division
    of the combined total is kept: the bits every earlier release gave.
    """
    total, denominator = np.float64(total), np.float64(denominator)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if denominator != 0 or parts is None or not (smoothing or z_loss):
            return total / denominator
        nll, smooth, z = (np.float64(v) for v in parts())
        out = (1.0 - smoothing) * (nll / denominator)
        if smoothing:
            out = out + smoothing / nclasses * (smooth / denominator)
        if z_loss:
            out = out + z / denominator
        return out


def mean_denominator(kind, nrows, index, nvalid, weight, sample_weight):
    """What 'mean' divides by, by torch's rules with xentc's sample weights:
    probability targets the number of samples (or the sum of their sample
    weights); class indices the sum over the samples not ignored (index >=
    0) of their target's class weight (times their sample weight), which is
    nvalid when neither weight is given."""
    sw = sample_weight
    if kind == "prob":
        return nrows if sw is None else np.sum(sw)
    if weight is None and sw is None:
        return nvalid
    valid = index >= 0
    wy = valid.astype(np.float64)
    if weight is not None:
        wy = np.where(valid, weight[np.where(valid, index, 0)], 0.0)
    return np.sum(wy if sw is None else wy * sw)


def class_weights(weight, nclasses, func):
    """Class weights as float64 of length nclasses, or None."""
    if weight is None:
        return None
    w = np.asarray(weight)
    check_numeric(w, "weight", func)
    w = w.astype(np.float64)
    if w.shape != (nclasses,):
        raise ValueError(
            f"{func}: weight must have shape ({nclasses},) (one per class), got {w.shape}"
        )
    _check_weights(w, "weight", "weights", func)
    return np.ascontiguousarray(w)


def sample_weights(sample_weight, sample_shape, func):
    """Per-sample weights flattened to float64, or None."""
    if sample_weight is None:
        return None
    s = np.asarray(sample_weight)
    check_numeric(s, "sample_weight", func)
    s = s.astype(np.float64)
    if s.shape != tuple(sample_shape):
        raise ValueError(
            f"{func}: sample_weight must have the target's shape {tuple(sample_shape)}, "
            f"got {s.shape}"
        )
    _check_weights(s, "sample_weight", "sample weights", func)
    return np.ascontiguousarray(s).reshape(-1)


def _layout_hint(target_shape, logits_shape, axis):
    """A hint for a class-index target that would fit PyTorch's (N, C, d1,
    ...) layout, with the class axis at 1, when `axis` (normalised) is
    another: the most common reason for a target shape mismatch."""
    if logits_shape is None or len(logits_shape) < 3 or axis == 1:
        return ""
    if tuple(target_shape) == tuple(logits_shape[:1]) + tuple(logits_shape[2:]):
        return (f"; the target fits PyTorch's (N, C, d1, ...) layout: for it pass "
                f"axis=1 (classes on axis 1, size {logits_shape[1]})")
    return ""


def index_targets(target, nclasses, sample_shape, ignore_index, func,
                  logits_shape=None, axis=None):
    """Class indices flattened to int64 with ignored samples as -1, and the
    number of samples not ignored.

    Raises IndexError naming the first target outside [0, nclasses) that is
    not ignore_index, and its position. ignore_index None: no target is
    ignored (for functions that take no ignore_index). logits_shape and
    axis (the class axis), when given, let a shape mismatch say whether
    the target fits PyTorch's layout instead.
    """
    t = np.asarray(target)
    if t.shape != tuple(sample_shape):
        where = ("" if logits_shape is None else
                 f" {tuple(logits_shape)} without axis {axis}, the class axis")
        raise ValueError(
            f"{func}: class-index target must have shape {tuple(sample_shape)} "
            f"(the logits' shape{where or ' without the class axis'}), got {t.shape}"
            + _layout_hint(t.shape, logits_shape, axis)
        )
    if ignore_index is not None:
        ignore_index = check_ignore_index(ignore_index, func)
    int64 = np.iinfo(np.int64)
    if t.dtype == np.uint64 and t.size and t.max() > int64.max:
        # Would wrap to negative values in int64: report it as it is.
        first_bad = int(np.argmax(t.reshape(-1) > int64.max))
    else:
        flat = kernel_array(t, np.int64).reshape(-1)
        ignored = -1 if ignore_index is None else ignore_index
        # Scan first: with every target a class index (the usual case) the
        # kernels read `flat` itself and no N-sized copy is made.
        first_bad, nvalid = _core.prepare_index_targets(
            flat, nclasses, ignored, np.empty(0, np.int64))
        if first_bad < 0 and nvalid == flat.size:
            return flat, nvalid
        out = np.empty(flat.shape, np.int64)
        first_bad, nvalid = _core.prepare_index_targets(flat, nclasses, ignored, out)
        if ignore_index is None and nvalid < flat.size:
            # The kernel took -1 for ignore_index: here every target it left
            # out (marked -1 in out) is out of bounds, -1 itself included.
            first_bad = int(np.argmax(out < 0))
        if first_bad < 0:
            return out, nvalid
    pos = position(first_bad, t.shape)
    expected = f"a class index in [0, {nclasses})"
    if ignore_index is not None:
        expected += f" or ignore_index={ignore_index}"
    raise IndexError(f"{func}: Target {t[pos]} is out of bounds at position {pos}: "
                     f"expected {expected}")


def target_kind(target, logits_shape, sample_shape, func):
    """'index' or 'prob', by torch's rule: floating targets of the logits'
    shape are probabilities, integer targets are class indices."""
    t = np.asarray(target)
    check_numeric(t, "target", func)
    if t.dtype.kind in "iu":
        return "index"
    if t.dtype.kind == "f" or _half.is_bfloat16(t.dtype):
        if t.shape != tuple(logits_shape):
            raise ValueError(
                f"{func}: a floating target holds class probabilities and must have "
                f"the logits' shape {tuple(logits_shape)}, got {t.shape}; for class "
                f"indices (shape {tuple(sample_shape)}) use an integer array"
            )
        return "prob"
    raise TypeError(
        f"{func}: target must be integer class indices or floating probabilities, "
        f"got dtype {t.dtype}"
    )
