"""
Arranging an N-d array as C-contiguous rows for the kernels, and back.

The reduced axes are moved to the end and the array viewed as
(rows, row_length). When they already are the trailing axes of a
C-contiguous array of the compute dtype this is a view; otherwise it is the
single contiguous copy NumPy makes (no Python loop over rows).
"""
import math

import numpy as np


class Rows:
    """`x` seen as rows over `axes` (sorted, non-negative)."""

    def __init__(self, x, axes, dtype):
        keep = [ax for ax in range(x.ndim) if ax not in axes]
        self.perm = tuple(keep) + tuple(axes)
        self.moved_shape = tuple(x.shape[ax] for ax in self.perm)
        self.nrows = math.prod(x.shape[ax] for ax in keep)
        self.ncols = math.prod(x.shape[ax] for ax in axes)
        moved = x.transpose(self.perm)
        self.data = np.ascontiguousarray(moved, dtype=dtype).reshape(
            self.nrows, self.ncols
        )
        self.identity = self.perm == tuple(range(x.ndim))

    def restore(self, rows2d):
        """Per-element result (rows, row_length) back in the input's layout."""
        inverse = np.argsort(self.perm)
        return rows2d.reshape(self.moved_shape).transpose(inverse)
