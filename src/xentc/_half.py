"""
16-bit floating inputs: ``numpy.float16`` and ``ml_dtypes.bfloat16``.

The kernels read their bits (a uint16 view, no copy), widen tiles of rows
to float32 in registers, compute in float32 (double for the sums) and round
results once to the input's format (include/xentc/half.h,
half_tiles.h). bfloat16 is recognised by its dtype's name and kind, so
ml_dtypes is never imported here: whoever made the array has imported it,
and results are made with the input's own dtype object.
"""
import numpy as np

from . import _core

F16 = np.dtype(np.float16)
# the format codes of _core's 16-bit functions (XT_H16_F16, XT_H16_BF16)
_KIND_F16, _KIND_BF16 = 0, 1


def is_bfloat16(dtype):
    """ml_dtypes.bfloat16 (a 2-byte 'V'-kind dtype of that name)."""
    # the scalar type's name: dtype.name is a Python property (0.8 against
    # 0.1 us, and a 16-bit call asks several times)
    return dtype.kind == "V" and dtype.itemsize == 2 and dtype.type.__name__ == "bfloat16"


def is_half(dtype):
    return dtype == F16 or is_bfloat16(dtype)


def kind(dtype):
    """_core's format code of a 16-bit dtype."""
    return _KIND_BF16 if is_bfloat16(dtype) else _KIND_F16


def bits(a):
    """A 16-bit array's bits, as the kernels take them (a view)."""
    return a.view(np.uint16)


def result_dtype(*dtypes):
    """np.result_type with bfloat16 promoted as torch and JAX do: with
    itself and Python scalars it stays bfloat16, with float16 it gives
    float32, with wider floats the wider float. (NumPy, which knows no
    bfloat16 rules, gives float64 for ``bfloat16 + 1.0``.)"""
    bf = [d for d in dtypes if isinstance(d, np.dtype) and is_bfloat16(d)]
    if not bf:
        return np.result_type(*dtypes)
    # bfloat16's range is float32's: promote as float16 would, then widen
    # a float16 result (from bfloat16 alone: bfloat16 itself)
    others = [F16 if (isinstance(d, np.dtype) and is_bfloat16(d)) else d for d in dtypes]
    res = np.result_type(*others)
    if res != F16:
        return res
    if any(isinstance(d, np.dtype) and d == F16 for d in dtypes):
        return np.dtype(np.float32)
    return bf[0]


def from_float64(values, dtype):
    """float64 `values` (array or scalar) in a 16-bit dtype, rounded once
    (ml_dtypes' float64 -> bfloat16 cast goes through float32 and can
    round twice); a NumPy scalar for a scalar."""
    if type(values) is float:
        # (one loss: 0.6 against 2.6 us the array way)
        return np.uint16(_core.narrow_f64_scalar(values, kind(dtype))).view(dtype)
    v = np.asarray(values, dtype=np.float64)
    out = np.empty(v.shape, dtype)
    _core.narrow_f64(np.ascontiguousarray(v).reshape(-1), kind(dtype),
                     bits(out).reshape(-1))
    return out[()] if out.ndim == 0 else out


def cast(values, dtype):
    """float64 results in `dtype`: once-rounded for the 16-bit ones, astype
    for the others."""
    if is_half(dtype):
        return from_float64(values, dtype)
    return np.asarray(values).astype(dtype)
