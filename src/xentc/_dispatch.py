"""
Choice of the instruction-set level of the kernels, made once at import.

XENTC_CPU=baseline|avx2|avx512|neon|auto (unset: auto) forces a level; an unknown value is
a ValueError, and a level the CPU (or this build) lacks falls back to the
best available one with a RuntimeWarning.
"""
import os
import warnings

from . import _core

KNOWN_LEVELS = ("auto", "baseline", "avx2", "avx512", "neon")


def available_levels():
    """Levels this build has and this CPU can run, best first."""
    return [lvl for lvl in _core.compiled_levels() if _core.cpu_supports(lvl)]


def select(request=None):
    """Activate a level ('auto' or None: the best available); returns its name."""
    request = (request or "auto").strip().lower()
    if request not in KNOWN_LEVELS:
        raise ValueError(
            f"XENTC_CPU={request!r} is not a known level; expected one of "
            f"{', '.join(KNOWN_LEVELS)}"
        )
    best = available_levels()[0]
    if request == "auto":
        level = best
    elif request in available_levels():
        level = request
    else:
        warnings.warn(
            f"XENTC_CPU={request!r}: this CPU or build does not support it; "
            f"using {best!r}",
            RuntimeWarning,
            stacklevel=2,
        )
        level = best
    _core.select_kernels(level)
    return level


def select_from_environment():
    return select(os.environ.get("XENTC_CPU"))
