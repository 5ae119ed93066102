"""The implementations the benchmark times, and the arrays it times them on.

:func:`implementations` is what both ``python -m xentc bench`` and the
pytest-benchmark suite in ``benchmarks/`` time, so both measure the same code.
"""
import contextlib
import functools
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


IMPLEMENTATION_KEYS = ("xentc_1thread", "xentc", "scipy", "numpy", "torch", "jax")


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


def _scipy_impl(func, threads=None):
    # threads: SciPy's and NumPy's element-wise functions and reductions are
    # single-threaded; taken only so every peer is made the same way.
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


def _numpy_impl(func, threads=None):
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


def _jax_impl(func, threads):
    """JAX (XLA on the CPU): ``jax.jit`` of the expression, compiled and run
    once in ``prepare``, every timed call waited for with
    ``block_until_ready``.

    threads: not applied here. XLA sizes its thread pools from the CPUs the
    process may run on, once, when JAX starts; the benchmark's JAX process
    limits those before it imports JAX (peers.limit_cpus). In-process users
    (the pytest-benchmark suite, the tests) run JAX as it comes.
    """
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None

    def cross_entropy(x, y):
        # mean cross-entropy with class indices, as a JAX user writes it
        return jnp.mean(jax.nn.logsumexp(x, -1) - jnp.take_along_axis(x, y[:, None], -1)[:, 0])

    if func == "logsumexp":
        f, unary = jax.jit(lambda a: jax.nn.logsumexp(a, axis=1)), True
    elif func == "log_softmax":
        f, unary = jax.jit(lambda a: jax.nn.log_softmax(a, axis=1)), True
    elif func == "cross_entropy":
        f, unary = jax.jit(cross_entropy), False
    else:
        # the loss and its gradient with respect to the logits
        f, unary = jax.jit(jax.value_and_grad(cross_entropy)), False

    def prepare(x, target):
        # Without 64-bit mode JAX turns float64 logits into float32 and the
        # int64 targets into int32. The JAX peer process turns it on for
        # the whole process before any array exists (peers.peer_main); in
        # any other process it is on only around this implementation's own
        # calls (about 1 us each), so the caller's JAX keeps its setting.
        scope = (contextlib.nullcontext if jax.config.jax_enable_x64
                 else functools.partial(jax.enable_x64, True))
        with scope():
            args = (jnp.asarray(x),) if unary else (jnp.asarray(x), jnp.asarray(target))
            jax.block_until_ready(f(*args))  # compile for this shape: not timed

        def run():
            with scope():
                return jax.block_until_ready(f(*args))
        return run
    return Impl("jax", "jax", prepare)


# Peers that start thread pools of their own: `python -m xentc bench` times
# each in a child process of its own (PeerProcess), never beside xentc or
# each other. In the same process their threads keep spinning after each
# call and take the cores from xentc's team (a mixed run timed xentc 2.4x
# slower than alone); the pytest-benchmark suite, one implementation per
# test, still takes them from implementations().
ISOLATED = ("torch", "jax")


# Optional peers and where they come from (the [bench] extra has them all).
PEER_PACKAGES = {"scipy": "scipy", "torch": "torch", "jax": "jax"}


# How each peer is made, factory(func, threads), by key (the child process
# of an isolated peer looks its factory up here).
PEER_FACTORIES = {"scipy": _scipy_impl, "numpy": _numpy_impl, "torch": _torch_impl,
                  "jax": _jax_impl}


def missing_peers(keys=None):
    """Names of the optional peers that are not installed here.

    keys: only among these implementation keys (default: every optional peer).
    """
    return [name for name, module in PEER_PACKAGES.items()
            if (keys is None or name in keys) and importlib.util.find_spec(module) is None]


def implementations(func, threads=None, keys=None, isolated=True):
    """Every implementation of `func` available here, in table order.

    threads: the thread count of the multi-threaded "xentc" entry and of
    torch (default: os.cpu_count()); JAX's is set by its process (_jax_impl).
    keys: only these implementation keys (default: all of IMPLEMENTATION_KEYS).
    isolated: include the ISOLATED peers; False leaves them out without
    importing them (what a process that times them in children wants).
    """
    if func not in FUNCTIONS:
        raise ValueError(f"unknown function {func!r}; expected one of {FUNCTIONS}")
    threads = threads or default_threads()
    made = {
        "xentc_1thread": lambda: _xentc_impl(func, 1, "xentc_1thread", "xentc 1T"),
        "xentc": lambda: _xentc_impl(func, threads, "xentc", f"xentc {threads}T"),
    }
    made.update({key: functools.partial(factory, func, threads)
                 for key, factory in PEER_FACTORIES.items()})
    impls = [made[key]() for key in IMPLEMENTATION_KEYS
             if (keys is None or key in keys) and (isolated or key not in ISOLATED)]
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
