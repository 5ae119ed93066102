"""Argument checks and conversions shared by the public functions."""
import operator
import os

import numpy as np
from numpy.lib.array_utils import normalize_axis_tuple

from . import _core, _half

# Below this many elements a call stays on the calling thread: starting the
# OpenMP team costs more than the work it would share.
PARALLEL_MIN_ELEMENTS = 1 << 15

# CPUs in the system, read once: os.cpu_count() reads /sys on every call
# (about 15 us here, on every kernel call), and the count does not change.
_NCPU = os.cpu_count() or 1


def as_int(value, argname, func=None, expected="an int"):
    """`value` as a Python int (operator.index: ints and NumPy integers, not
    floats), or a TypeError naming the argument, what it must be and the
    type given (operator.index's own message names none of them)."""
    try:
        return operator.index(value)
    except TypeError:
        where = f"{func}: " if func else ""
        raise TypeError(
            f"{where}{argname} must be {expected}, got {type(value).__name__}"
        ) from None


def as_float(value, argname, func):
    """`value` as a Python float, or float()'s exception (TypeError for a
    type it cannot convert, ValueError for a string that is no number) with
    a message naming the argument and the value."""
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise type(exc)(
            f"{func}: {argname} must be a real number, got {value!r}"
        ) from None


def position(flat_index, shape):
    """The index tuple (of Python ints, which print plainly, not as
    np.int64(1)) of element `flat_index` of an array of `shape`."""
    return tuple(int(i) for i in np.unravel_index(int(flat_index), shape))


def normalize_axes(axis, ndim, argname="axis"):
    """Axes to reduce as a sorted tuple of non-negative ints.

    None means every axis; an int or a tuple of ints is accepted (a list is a
    TypeError, as in NumPy reductions); out-of-range axes raise
    numpy.exceptions.AxisError and repeated ones ValueError.
    """
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, tuple) else (axis,)
    if any(isinstance(ax, (bool, np.bool_)) for ax in items):
        # operator.index(True) is 1; NumPy reductions refuse a bool axis
        raise TypeError(f"{argname} must be an int or a tuple of ints, not bool")
    axes = tuple(as_int(ax, argname, expected="an int or a tuple of ints") for ax in items)
    return tuple(sorted(normalize_axis_tuple(axes, ndim, argname)))


def resolve_workers(workers):
    """Thread count asked for by `workers`, or 0 for the OpenMP default.

    As in scipy.fft: None is the default (OMP_NUM_THREADS, threadpoolctl),
    a positive int is that many threads, a negative one counts back from
    os.cpu_count() (-1 is all cores), 0 is an error.
    """
    if workers is None:
        return 0
    if isinstance(workers, bool):
        raise TypeError("workers must be an int or None, not bool")
    n = as_int(workers, "workers", expected="an int or None")
    if n == 0:
        raise ValueError("workers must not be 0 (use None for the default)")
    if n < 0:
        ncpu = _NCPU
        if n < -ncpu:
            raise ValueError(
                f"workers value out of range; got {n}, must not be less than {-ncpu}"
            )
        n += ncpu + 1
    return n


def thread_count(workers, nelements, ntasks):
    """Threads for a call over `nelements` split into `ntasks` pieces.

    Capped at a few per core: results do not depend on the count, and
    OpenMP runtimes abort or crash when asked for tens of thousands.
    """
    n = resolve_workers(workers) or _core.max_threads()
    if nelements < PARALLEL_MIN_ELEMENTS:
        return 1
    cap = 4 * max(_NCPU, 16)
    return max(1, min(n, ntasks, cap))


# Row length the kernels cut long rows at (XT_CHUNK), read once.
_CHUNK = _core.chunk_size()


def chunk_size():
    return _CHUNK


def row_threads(workers, nrows, ncols):
    """Threads for the kernels over nrows rows of ncols: one task per row
    and per fixed chunk of a long row."""
    return thread_count(workers, nrows * ncols, nrows * max(1, -(-ncols // _CHUNK)))


def check_numeric(arr, argname, func):
    """Reject arrays that cannot hold numbers (object, str, datetime...)."""
    if arr.dtype.kind not in "biufc" and not _half.is_bfloat16(arr.dtype):
        raise TypeError(
            f"{func}: {argname} must be a numeric array, got dtype {arr.dtype}"
        )


def check_out(out, shape, dtype, func, argname="out", of=""):
    """Validate a user-supplied output array: a writable ndarray of the
    given shape and dtype. argname names it in the messages; `of` says
    whose shape and dtype it must have ("the logits' ")."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{func}: {argname} must be a numpy.ndarray, "
                        f"got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(
            f"{func}: {argname} has shape {out.shape}, expected {of and of + 'shape '}"
            f"{tuple(shape)}"
        )
    if out.dtype != dtype:
        raise ValueError(f"{func}: {argname} has dtype {out.dtype}, expected "
                         f"{of and of + 'dtype '}{dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{func}: {argname} is read-only")
