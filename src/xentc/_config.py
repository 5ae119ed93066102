"""xentc.show_config(): what this build is and what it runs on."""
import platform
import sysconfig

from . import _core, _dispatch


def install_hint(extra):
    """How to install one of xentc's optional extras, worded as the README
    words the install (``pip install ".[test]"`` in the source tree), so
    every message and the README name the same command."""
    return f'pip install ".[{extra}]" in the xentc source tree'


def _omp_description():
    version = _core.openmp_version()
    if not version:
        return "none (single-threaded build)"
    return f"OpenMP {version}"


def show_config(print_out=True):
    """Print and return the build and run-time configuration.

    Returns
    -------
    dict
        ``version``, ``compiler``, ``openmp``, ``simd_in_use``,
        ``simd_available``, ``simd_compiled``, ``default_threads``,
        ``machine``.

    Examples
    --------
    >>> import xentc
    >>> cfg = xentc.show_config(print_out=False)
    >>> cfg["simd_in_use"] in cfg["simd_available"]
    True
    """
    from . import __version__

    cfg = {
        "version": __version__,
        "compiler": sysconfig.get_config_var("CC") or "unknown",
        "openmp": _omp_description(),
        "simd_in_use": _core.active_kernels(),
        "simd_available": _dispatch.available_levels(),
        "simd_compiled": _core.compiled_levels(),
        "default_threads": _core.max_threads(),
        "machine": platform.machine(),
    }
    if print_out:
        width = max(len(k) for k in cfg)
        for key, value in cfg.items():
            print(f"{key:<{width}} : {value}")
    return cfg
