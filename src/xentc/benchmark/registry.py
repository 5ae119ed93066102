"""The implementations the benchmark times, and the arrays it times them on.

:func:`implementations` is what both ``python -m xentc bench`` and the
pytest-benchmark suite in ``benchmarks/`` time, so both measure the same code.
"""
import importlib.util
import os
from typing import Callable, NamedTuple

import numpy as np

FUNCTIONS = ("logsumexp", "log_softmax", "cross_entropy", "cross_entropy_and_grad")


DTYPES = ("float32", "float64")


# The default run: one shape per regime, every function and dtype, in about
# a minute and well under 1.5 GB on a 2-core machine (README, Benchmarks).
# Short rows (one row per vector lane), medium rows, long rows that stay in
# cache, and a DRAM-sized array (66 MB in float32, 131 MB in float64: twice
# this machine's 32 MB L3 and more, yet small enough that SciPy's full-size
# temporaries and the NumPy reference's reused buffer stay within the memory
# bound; 1024x32000 peaked at 1.9 GB).
DEFAULT_SHAPES = ((100000, 10), (16384, 256), (16, 128256), (512, 32000))


REGIMES = {(100000, 10): "short rows", (16384, 256): "medium rows",
           (16, 128256): "long rows", (512, 32000): "DRAM-sized"}


# --full: the whole table of earlier releases (about 2.5 minutes, 3-4 GB peak:
# SciPy's temporaries of the 524 MB 2048x32000 float64 array dominate).
FULL_SHAPES = ((4096, 1000), (2048, 32000), (16, 128256), (1000000, 10))


QUICK_SHAPES = ((256, 1000), (8, 20000), (20000, 10))


# Stable implementation keys, in table order. "xentc" (all threads) is the
# reference the speed-up ratios are taken against.
REFERENCE = "xentc"


IMPLEMENTATION_KEYS = ("xentc_1thread", "xentc", "scipy", "numpy", "torch")


class Impl(NamedTuple):
    """One implementation of one function.

    ``prepare(x, target)`` does the untimed set-up (tensor wrapping, leaf
    tensors) and returns the zero-argument callable that is timed.
    """

    key: str
    label: str
    prepare: Callable


def default_threads():
    return os.cpu_count() or 1


def _xentc_impl(func, workers, key, label):
    import xentc

    f = getattr(xentc, func)
    if func in ("logsumexp", "log_softmax"):
        def prepare(x, target):
            return lambda: f(x, axis=1, workers=workers)
    else:
        def prepare(x, target):
            return lambda: f(x, target, workers=workers)
    return Impl(key, label, prepare)


def _scipy_impl(func):
    try:
        import scipy.special as sp
    except ImportError:
        return None

    if func == "logsumexp":
        def prepare(x, target):
            return lambda: sp.logsumexp(x, axis=1)
    elif func == "log_softmax":
        def prepare(x, target):
            return lambda: sp.log_softmax(x, axis=1)
    elif func == "cross_entropy":
        def prepare(x, target):
            rows = np.arange(x.shape[0])
            return lambda: np.mean(sp.logsumexp(x, axis=1) - x[rows, target])
    else:
        def prepare(x, target):
            rows = np.arange(x.shape[0])

            def run():
                lse = sp.logsumexp(x, axis=1)
                loss = np.mean(lse - x[rows, target])
                grad = np.exp(x - lse[:, None])
                grad[rows, target] -= 1
                grad /= x.shape[0]
                return loss, grad
            return run
    return Impl("scipy", "scipy", prepare)


def _numpy_two_pass(x, out=None):
    """Row max, then exp(x - max) and its row sum: (max, exp(x - max), sum).

    out: where exp(x - max) goes (a fresh array if None).
    """
    m = x.max(axis=1, keepdims=True)
    e = np.subtract(x, m, out=out)
    np.exp(e, out=e)
    return m, e, e.sum(axis=1, keepdims=True)


def _numpy_impl(func):
    # Where the N x C temporary is not the result, it is allocated once and
    # reused with out= (what a NumPy user who cares writes): a fresh one per
    # call would charge NumPy the kernel's zeroing of new pages, which costs
    # more than the arithmetic on these VMs. Results are fresh arrays, as
    # xentc's are.
    if func == "logsumexp":
        def prepare(x, target):
            buf = np.empty_like(x)

            def run():
                m, _, s = _numpy_two_pass(x, buf)
                return (np.log(s) + m)[:, 0]
            return run
    elif func == "log_softmax":
        def prepare(x, target):
            buf = np.empty_like(x)

            def run():
                m, _, s = _numpy_two_pass(x, buf)
                return x - (np.log(s) + m)
            return run
    elif func == "cross_entropy":
        def prepare(x, target):
            rows = np.arange(x.shape[0])
            buf = np.empty_like(x)

            def run():
                m, _, s = _numpy_two_pass(x, buf)
                return np.mean((np.log(s) + m)[:, 0] - x[rows, target])
            return run
    else:
        def prepare(x, target):
            rows = np.arange(x.shape[0])

            def run():
                m, e, s = _numpy_two_pass(x)
                loss = np.mean((np.log(s) + m)[:, 0] - x[rows, target])
                e /= s
                e[rows, target] -= 1
                e /= x.shape[0]
                return loss, e
            return run
    return Impl("numpy", "numpy", prepare)


def _torch_impl(func, threads):
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    torch.set_num_threads(threads)

    if func == "logsumexp":
        def prepare(x, target):
            tx = torch.from_numpy(x)
            return lambda: torch.logsumexp(tx, dim=1)
    elif func == "log_softmax":
        def prepare(x, target):
            tx = torch.from_numpy(x)
            return lambda: torch.log_softmax(tx, dim=1)
    elif func == "cross_entropy":
        def prepare(x, target):
            tx, ty = torch.from_numpy(x), torch.from_numpy(target)
            return lambda: F.cross_entropy(tx, ty)
    else:
        def prepare(x, target):
            # Forward and backward from a leaf tensor: what a training step pays.
            leaf = torch.from_numpy(x).requires_grad_(True)
            ty = torch.from_numpy(target)

            def run():
                leaf.grad = None  # no accumulation into the previous call's gradient
                loss = F.cross_entropy(leaf, ty)
                loss.backward()
                return loss.detach(), leaf.grad
            return run
    return Impl("torch", "torch", prepare)


# Peers that start thread pools of their own: `python -m xentc bench` times
# them in a child process (PeerProcess). In the same process their OpenMP
# threads keep spinning after each call and take the cores from xentc's team
# (a mixed run timed xentc 2.4x slower than alone); the pytest-benchmark
# suite, one implementation per test, still takes them from
# implementations().
ISOLATED = ("torch",)


# Optional peers and where they come from (the [bench] extra has both).
PEER_PACKAGES = {"scipy": "scipy", "torch": "torch"}


def missing_peers():
    """Names of the optional peers that are not installed here."""
    return [name for name, module in PEER_PACKAGES.items()
            if importlib.util.find_spec(module) is None]


def implementations(func, threads=None):
    """Every implementation of `func` available here, in table order.

    threads: the thread count of the multi-threaded "xentc" entry and of
    torch (default: os.cpu_count()).
    """
    if func not in FUNCTIONS:
        raise ValueError(f"unknown function {func!r}; expected one of {FUNCTIONS}")
    threads = threads or default_threads()
    impls = [
        _xentc_impl(func, 1, "xentc_1thread", "xentc 1T"),
        _xentc_impl(func, threads, "xentc", f"xentc {threads}T"),
        _scipy_impl(func),
        _numpy_impl(func),
        _torch_impl(func, threads),
    ]
    return [impl for impl in impls if impl is not None]


def make_inputs(shape, dtype, seed=0):
    """Logits of `shape` and `dtype` (N(0, 3^2)) and int64 class targets."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape, dtype=np.dtype(dtype).type)
    x *= 3
    target = rng.integers(0, shape[1], size=shape[0], dtype=np.int64)
    return x, target


def shape_str(shape):
    return "x".join(map(str, shape))
