"""
The large arrays xentc's functions return (gradients, softmax and
log_softmax outputs), from a small cache of the memory of ones the caller
has dropped.

Why: a fresh array of tens of MB costs the kernel's page zeroing on first
touch, and on this VM that is as long as the computation itself. perf of
``cross_entropy_and_grad`` on 8388 x 1000 float32 without ``grad_out``:
clear_page 31% of the samples, the kernel 24%; 0.6-0.7x the throughput of
the same call with a reused ``grad_out`` at 10-1000 classes (glibc returns
blocks of 32 MiB and more to the system at every free, and below that
keeps them only as its thresholds happen to allow). JAX reuses its buffers
the same way; torch's CPU allocator does not.

How: an array of at least ``_MIN_BYTES`` is a view of an owner block
through a handle object that is the base of the array and of every view of
it (NumPy collapses chains of views to the first base that is not an
ndarray); when the last of them dies, a ``weakref.finalize`` on the handle
hands the block back. At most ``_PER_SIZE`` blocks of one size are kept, and at most
``set_output_cache``'s bytes in all (default 64 MiB; 0 turns it off),
the sizes given back least recently dropped first.
Blocks are handed out whole, never while an array still uses them. The
arrays are ordinary writeable, aligned, C-contiguous ndarrays, but they do
not own their data (``flags.owndata`` is False; ``ndarray.resize`` refuses
them, as for any view).
"""
import math
import weakref

import numpy as np

__all__ = ["set_output_cache"]

# Below this, malloc keeps and reuses freed memory itself.
_MIN_BYTES = 4 << 20
# A loop holds at most two results of one shape at a time: the one it has
# and the one being made (the name is rebound after the call returns).
_PER_SIZE = 2
# 64 MiB: two float32 outputs of 2^23 elements, or one in float64. The main
# job (`python -m xentc bench`, farm-bench, one run each against the build
# without the cache) peaked at 1262 MiB against 1056 with 256 MiB, at 1107
# against 1070 with 64, in the same time (34.6-35.4 s against 34.4-34.9):
# its shapes each come back a few times and no more.
_max_bytes = 64 << 20
# nbytes -> owner blocks (1-D uint8 arrays) no array uses; changed only by
# list.append/list.pop and dict.setdefault, single operations under the GIL
# (a finalizer may run in any thread, and inside a garbage collection
# triggered here: no lock to re-enter).
_free = {}


def set_output_cache(max_bytes):
    """Bound the memory xentc keeps of its dropped output arrays.

    xentc's functions that return arrays as large as their input
    (``cross_entropy_and_grad``'s gradient, ``softmax``, ``log_softmax``)
    take the memory of outputs of at least 4 MiB from a cache of blocks
    whose arrays have been dropped: a fresh block costs the operating
    system's page zeroing, as long as the computation itself on large
    arrays. At most two blocks of one size are kept.

    Parameters
    ----------
    max_bytes : int
        The most memory the cache holds (default 64 MiB); 0 turns it off
        and frees what it holds.

    Returns
    -------
    int
        The previous bound.

    Examples
    --------
    >>> import xentc
    >>> previous = xentc.set_output_cache(0)      # every output fresh memory
    >>> xentc.set_output_cache(previous)
    0
    """
    global _max_bytes
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)):
        raise TypeError(f"set_output_cache: max_bytes must be an int, got "
                        f"{type(max_bytes).__name__}")
    if max_bytes < 0:
        raise ValueError(f"set_output_cache: max_bytes must be >= 0, got {max_bytes}")
    previous, _max_bytes = _max_bytes, int(max_bytes)
    if _max_bytes == 0:
        _free.clear()
    else:
        while _held() > _max_bytes and _drop_one():
            pass
    return previous


def _held():
    return sum(nbytes * len(blocks) for nbytes, blocks in list(_free.items()))


def _drop_one(keep=None):
    """Drop a block of the least recently given back size (not `keep`):
    whether there was one."""
    for nbytes, blocks in list(_free.items()):
        if blocks and nbytes != keep:
            try:
                blocks.pop()
            except IndexError:
                continue
            return True
    return False


def _give_back(owner):
    """The finalizer of a block's last array: keep the block, making room
    by dropping blocks of the sizes given back least recently (a sweep over
    shapes, or a last smaller batch, would otherwise fill the cache with
    sizes that do not come again: `python -m xentc bench --sweep` measured
    forward+gradient at 500-1000 classes at half its speed in a fresh
    process, every block refused)."""
    nbytes = owner.nbytes
    if nbytes > _max_bytes:
        return
    # this size becomes the most recent (dict order: least recent first)
    blocks = _free.pop(nbytes, None)
    if blocks is None:
        blocks = []
    _free[nbytes] = blocks
    if len(blocks) >= _PER_SIZE:
        return
    while _held() + nbytes > _max_bytes and _drop_one(keep=nbytes):
        pass
    if _held() + nbytes <= _max_bytes:
        blocks.append(owner)


def empty(shape, dtype):
    """np.empty(shape, dtype), from a dropped output's memory when large."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < _MIN_BYTES or _max_bytes == 0:
        return np.empty(shape, dtype)
    owner = None
    blocks = _free.get(nbytes)
    if blocks:
        try:
            owner = blocks.pop()
        except IndexError:       # another thread took the last one
            owner = None
    if owner is None:
        owner = np.empty(nbytes, np.uint8)
    handle = _Handle(owner)
    weakref.finalize(handle, _give_back, owner)
    return np.asarray(handle).view(dtype).reshape(shape)


class _Handle:
    """The base of a cached block's arrays: NumPy keeps the first object in
    a chain of views that is not an ndarray as every view's base, so the
    handle lives exactly as long as some array uses the block (the owner
    itself, an ndarray, would be skipped over)."""

    __slots__ = ("__array_interface__", "__weakref__")

    def __init__(self, owner):
        self.__array_interface__ = dict(shape=(owner.nbytes,), typestr="|u1", version=3,
                                        data=(owner.ctypes.data, False))


def empty_like(a):
    """empty(a.shape, a.dtype): C-contiguous whatever a's layout."""
    return empty(a.shape, a.dtype)
