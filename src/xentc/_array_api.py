"""Arrays of other libraries in, the same library's arrays out.

A CPU array of any library that implements DLPack (a torch tensor, a JAX
array, CuPy's on the host...) is viewed as a NumPy array without a copy
(``numpy.from_dlpack``) where its memory layout allows, computed on, and the
results are handed back to the input's own library (its array-API
namespace, found by ``array_api_compat``, which is imported only when such
an array arrives). An array on another device gets a ValueError that names
the device: xentc computes on the CPU. NumPy input never comes here: the
check for it is one type test.
"""
import functools
import inspect

import numpy as np

from ._config import install_hint

_NATIVE = (np.ndarray, np.generic, list, tuple, int, float, complex, bool)
_DLPACK_CPU = 1  # kDLCPU in DLPack's device types


def _foreign(x):
    return not isinstance(x, _NATIVE) and hasattr(type(x), "__dlpack__")


def _namespace(x, func):
    try:
        import array_api_compat
    except ImportError:
        raise ImportError(
            f"xentc.{func}: arrays of {type(x).__module__.split('.')[0]} need "
            f"array-api-compat: {install_hint('array-api')} (or pip install array-api-compat)"
        ) from None
    return array_api_compat.array_namespace(x)


def _check_cpu(x, argname, func):
    try:
        on_cpu = x.__dlpack_device__()[0] == _DLPACK_CPU
    except Exception:  # no DLPack device at all (torch's meta tensors)
        on_cpu = False
    if not on_cpu:
        device = getattr(x, "device", None)
        if device is None:
            try:
                device = x.__dlpack_device__()
            except Exception:
                device = "unknown"
        raise ValueError(
            f"xentc.{func}: {argname} is on device {device}; xentc computes on the CPU: "
            "move it there first (e.g. .cpu() in torch, jax.device_put in JAX)")


def _to_numpy(x, argname, func):
    _check_cpu(x, argname, func)
    if getattr(x, "requires_grad", False):
        raise TypeError(
            f"xentc.{func}: {argname} requires grad; for autograd use xentc.torch."
            f"{func if func != 'cross_entropy_and_grad' else 'cross_entropy'}, or pass "
            f"{argname}.detach()")
    return np.from_dlpack(x)


def _from_numpy(xp, a):
    a = np.asarray(a)
    return xp.from_dlpack(a)


def same_namespace(func, arrays):
    """Wrap func so that DLPack arrays of another library (the first argument
    decides) are computed on as NumPy views and returned as that library's
    arrays. arrays: func's parameters that may hold arrays, first first."""
    name = func.__name__
    first = arrays[0]
    positional = [p.name for p in inspect.signature(func).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        x = args[0] if args else kwargs.get(first)
        if not _foreign(x):
            return func(*args, **kwargs)
        _check_cpu(x, first, name)
        xp = _namespace(x, name)
        args = [_to_numpy(a, positional[i], name)
                if i < len(positional) and positional[i] in arrays and _foreign(a) else a
                for i, a in enumerate(args)]
        for key in arrays:
            if key in kwargs and _foreign(kwargs[key]):
                kwargs[key] = _to_numpy(kwargs[key], key, name)
        if kwargs.get("out") is not None or kwargs.get("grad_out") is not None:
            raise TypeError(f"xentc.{name}: out=/grad_out= take NumPy arrays; with arrays "
                            "of another library, use the returned arrays")
        result = func(*args, **kwargs)
        if isinstance(result, tuple):
            return tuple(_from_numpy(xp, r) for r in result)
        return _from_numpy(xp, result)

    return wrapper
