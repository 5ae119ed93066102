"""
Arranging an N-d array as C-contiguous rows for the kernels, and back.

The reduced axes are moved to the end and the array viewed as
(rows, row_length). When they already are the trailing axes of a
C-contiguous, aligned array of the compute dtype this is a view; otherwise
it is the single contiguous copy NumPy makes (no Python loop over rows).
"""
import math

import numpy as np

from . import _half

# dtypes the fast paths take as they are (native byte order)
_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


def last_axis_rows(a, axis, halves=False):
    """`a` as (rows, last axis) for the fast paths: a view when `a` is a
    non-empty, aligned, C-contiguous float32/float64 ndarray (with
    `halves`, float16 and bfloat16 too) and `axis` (an int) its last axis;
    None otherwise (the general path then takes the call, with the same
    results).

    The general path's steps cost a few microseconds warm, but they run
    right after the kernel has streamed the array through the caches: on
    4096x1000 float32 a logsumexp call spent ~100 us in Python besides
    the kernel's 450 us. The fast paths run a fraction of that code.
    """
    if type(a) is not np.ndarray or type(axis) is not int:
        return None
    # `is`: the builtin dtypes' instances (an equal but distinct dtype
    # object just takes the general path)
    if not (a.dtype is _F32 or a.dtype is _F64
            or (halves and _half.is_half(a.dtype))) or a.ndim == 0 or a.size == 0:
        return None
    if axis != -1 and axis != a.ndim - 1:
        return None
    if not (a.flags.c_contiguous and a.flags.aligned):
        return None
    return a.reshape(-1, a.shape[-1])


def kernel_array(x, dtype):
    """`x` as a C-contiguous, aligned array of `dtype` for the C kernels:
    `x` itself when it is one, else a copy.

    np.ascontiguousarray alone keeps misaligned data (a byte-offset view is
    C-contiguous), and the kernels may assume natural alignment: a
    misaligned double* is undefined behaviour (UBSan reports it, vector code
    may fault on other platforms).
    """
    arr = np.ascontiguousarray(x, dtype=dtype)
    return arr if arr.flags.aligned else arr.copy()


class Rows:
    """`x` seen as rows over `axes` (sorted, non-negative)."""

    def __init__(self, x, axes, dtype):
        keep = [ax for ax in range(x.ndim) if ax not in axes]
        self.perm = tuple(keep) + tuple(axes)
        self.moved_shape = tuple(x.shape[ax] for ax in self.perm)
        self.nrows = math.prod(x.shape[ax] for ax in keep)
        self.ncols = math.prod(x.shape[ax] for ax in axes)
        self.data = kernel_array(x.transpose(self.perm), dtype).reshape(
            self.nrows, self.ncols
        )
        self.identity = self.perm == tuple(range(x.ndim))

    @classmethod
    def of_matrix(cls, x):
        """Rows of a 2-D array that is already C-contiguous, aligned and of
        the compute dtype, over its last axis: what __init__ would make of
        it, with none of its general steps (for the fast paths)."""
        r = cls.__new__(cls)
        r.perm = (0, 1)
        r.moved_shape = x.shape
        r.nrows, r.ncols = x.shape
        r.data = x
        r.identity = True
        return r

    def restore(self, rows2d):
        """Per-element result (rows, row_length) back in the input's layout."""
        inverse = np.argsort(self.perm)
        return rows2d.reshape(self.moved_shape).transpose(inverse)

    def direct_output(self, out):
        """`out` (the input's shape) viewed as rows the kernels may write
        their per-element result into, or None when they must write into a
        buffer copied to `out` afterwards.

        That needs `out` laid out as the rows: no axes moved, the compute
        dtype, C-contiguous and aligned (an unaligned out= is written
        through the buffer). It may be the rows' own memory (in place: the
        kernels read each row before writing it), but must not overlap
        them otherwise.
        """
        if not (self.identity and out.dtype == self.data.dtype
                and out.flags.c_contiguous and out.flags.aligned):
            return None
        view = out.reshape(self.data.shape)
        same = (view.__array_interface__["data"][0]
                == self.data.__array_interface__["data"][0])
        if same or not np.may_share_memory(view, self.data):
            return view
        return None
