"""
``python -m xentc bench``: xentc against SciPy, a NumPy reference and (when
installed) PyTorch and JAX, timed side by side on the same arrays.

On a shared or noisy machine absolute times drift from run to run; the ratios
between implementations timed back to back on the same array are what this
command is built to report.

Modules, one concern each:

- :mod:`.registry`: the implementations timed and the arrays (the
  pytest-benchmark suite in ``benchmarks/`` times the same registry);
- :mod:`.timing`: timing one callable, several side by side, bandwidth;
- :mod:`.load`: how busy the rest of the machine was meanwhile;
- :mod:`.peers`: peers with thread pools of their own, each in a child process;
- :mod:`.runner`: the rows, the busy-row retries;
- :mod:`.sweep`: ``--sweep`` (and ``--plot``), throughput against the number
  of classes;
- :mod:`.report`: header, tables, plot;
- :mod:`.cli`: the command line; :mod:`.dask`: ``--dask``.

The names below are the public entry point (``benchmarks/`` uses them).
"""
from .cli import main
from .registry import (
    DEFAULT_SHAPES,
    DTYPES,
    FULL_SHAPES,
    FUNCTIONS,
    IMPLEMENTATION_KEYS,
    QUICK_SHAPES,
    Impl,
    implementations,
    make_inputs,
    missing_peers,
)
from .runner import run

__all__ = ["main", "run", "implementations", "make_inputs", "missing_peers", "Impl",
           "FUNCTIONS", "DTYPES", "DEFAULT_SHAPES", "FULL_SHAPES", "QUICK_SHAPES",
           "IMPLEMENTATION_KEYS"]
