"""The thread count of SciPy's OpenBLAS, for linear + cross-entropy's products
split over xentc's own threads (``_core.linear_blocks(..., parts=P)``).

Why: in the blocks one after the other (the LM head), each of the three
products per block is one OpenBLAS call threaded by OpenBLAS, whose threads
meet at barriers inside every call and spin for a while after it, holding
the cores the cross-entropy kernels want next. Split by xentc instead (its
threads multiply fixed parts of the classes, OpenBLAS set to one thread),
the same products take less time: see _linear.py's _PARTS for the
measurements.

OpenBLAS's thread count is one number for the whole process, so it is set to
1 while any such call runs (a count of the calls inside, under a lock) and
put back after the last one. Other code calling SciPy's BLAS from another
thread meanwhile runs single-threaded. Only SciPy's own OpenBLAS (the
``libscipy_openblas`` its wheels ship, found among the loaded libraries) is
controlled; with any other BLAS this module reports itself unavailable and
the products stay threaded by the BLAS.
"""

import ctypes
import os
import threading

_lock = threading.Lock()
_inside = 0        # calls between enter() and leave()
_saved = None      # OpenBLAS's thread count before the first of them
_funcs = None      # (get, set) once looked up; False: none found


def _candidates():
    """Paths of loaded libraries that are SciPy's 32-bit-integer OpenBLAS
    (NumPy's is the ILP64 ``libscipy_openblas64_``)."""
    try:
        with open("/proc/self/maps") as f:
            # address perms offset device inode [path]
            fields = [line.split(None, 5) for line in f]
    except OSError:
        return []
    paths = {fl[5].strip() for fl in fields if len(fl) == 6}
    return sorted(p for p in paths
                  if os.path.basename(p).startswith("libscipy_openblas")
                  and "64_" not in os.path.basename(p))


def _lookup():
    global _funcs
    if _funcs is None:
        _funcs = False
        try:
            from scipy.linalg import cython_blas  # noqa: F401  (loads the library)
        except ImportError:
            return _funcs
        paths = _candidates()
        if len(paths) == 1:
            try:
                lib = ctypes.CDLL(paths[0])
                get, set_ = lib.scipy_openblas_get_num_threads, lib.scipy_openblas_set_num_threads
            except (OSError, AttributeError):
                return _funcs
            get.restype, get.argtypes = ctypes.c_int, []
            set_.restype, set_.argtypes = None, [ctypes.c_int]
            _funcs = (get, set_)
    return _funcs


def available():
    """Whether SciPy's OpenBLAS was found and its thread count can be set."""
    return bool(_lookup())


def threads():
    """OpenBLAS's thread count now (None when unavailable)."""
    funcs = _lookup()
    return funcs[0]() if funcs else None


class single_threaded:
    """Context manager: SciPy's OpenBLAS at one thread inside, its count
    before put back when the last caller inside leaves."""

    def __enter__(self):
        global _inside, _saved
        funcs = _lookup()
        if not funcs:
            raise RuntimeError("xentc: SciPy's OpenBLAS was not found")
        with _lock:
            if _inside == 0:
                _saved = funcs[0]()
                if _saved != 1:
                    funcs[1](1)
            _inside += 1
        return self

    def __exit__(self, *exc):
        global _inside, _saved
        set_ = _lookup()[1]
        with _lock:
            _inside -= 1
            if _inside == 0:
                if _saved != 1:
                    set_(_saved)
                _saved = None
        return False
