"""
``python -m xentc bench``: xentc against SciPy, a NumPy reference and (when
installed) PyTorch, timed side by side in one process on the same arrays.

On a shared or noisy machine absolute times drift from run to run; the ratios
between implementations timed back to back on the same array are what this
command is built to report.

The implementation registry (:func:`implementations`) is also what the
pytest-benchmark suite in ``benchmarks/`` times, so both measure the same code.
"""
import argparse
import gc
import importlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from typing import Callable, NamedTuple

import numpy as np

from ._config import install_hint

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

# Seconds of timed calls per implementation and case (after the warm-up call).
DEFAULT_BUDGET = 0.1
FULL_BUDGET = 0.25
QUICK_BUDGET = 0.02

# Throughput sweep for --plot: N*C fixed, C over powers of two.
SWEEP_TOTAL = 1 << 22
SWEEP_CLASSES = tuple(1 << k for k in range(1, 18))          # 2 .. 131072
# Per point (17 per panel): the sweep's many points matter more than each one's precision.
SWEEP_BUDGET = 0.1
QUICK_SWEEP_TOTAL = 1 << 16
QUICK_SWEEP_CLASSES = tuple(1 << k for k in range(1, 17, 3))  # 2 .. 65536

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


# --------------------------------------------------------------------------
# Implementations
# --------------------------------------------------------------------------

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
# them in a child process (_PeerProcess). In the same process their OpenMP
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


# --------------------------------------------------------------------------
# Timing and checking
# --------------------------------------------------------------------------

MIN_ROUNDS, MAX_ROUNDS = 3, 9


def _plan(first, budget):
    """(rounds, calls per round) so the timed calls take about `budget`
    seconds, given the duration of one warm-up call; slow calls still get
    MIN_ROUNDS rounds of one call."""
    first = max(first, 1e-7)
    rounds = int(min(max(budget / first, MIN_ROUNDS), MAX_ROUNDS))
    return rounds, max(1, int(budget / rounds / first))


def _round(fn, number):
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


class _NoGC:
    """Garbage collection off while timing (as timeit does)."""

    def __enter__(self):
        self.was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc):
        if self.was_enabled:
            gc.enable()


def best_time(fn, budget):
    """(best seconds per call, result of the warm-up call) for one callable."""
    t0 = time.perf_counter()
    result = fn()
    rounds, number = _plan(time.perf_counter() - t0, budget)
    with _NoGC():
        best = min(_round(fn, number) for _ in range(rounds))
    return best, result


BANDWIDTH_SHAPE = (2048, 32000)
DEFAULT_BANDWIDTH_SHAPE = (512, 32000)
QUICK_BANDWIDTH_SHAPE = (256, 8000)


def bandwidth(shape, threads, budget):
    """Read bandwidth (bytes/s) of float32 xentc.logsumexp over rows of
    `shape` with `threads` workers, beside that of numpy.sum of the same
    array (one thread: NumPy's reductions are not threaded): how close the
    one-read-per-element design comes to streaming the array."""
    import xentc

    x = make_inputs(shape, "float32")[0]
    t_sum, _ = best_time(lambda: x.sum(), budget)
    t_lse, _ = best_time(lambda: xentc.logsumexp(x, axis=1, workers=threads), budget)
    return {"shape": list(shape), "dtype": "float32", "bytes": x.nbytes,
            "numpy_sum_gbs": x.nbytes / t_sum / 1e9,
            "xentc_logsumexp_gbs": x.nbytes / t_lse / 1e9,
            "ratio": t_sum / t_lse}


def format_bandwidth(bw, threads):
    return (f"read bandwidth, {_shape_str(bw['shape'])} float32: xentc.logsumexp "
            f"({threads} threads) {bw['xentc_logsumexp_gbs']:.1f} GB/s, numpy.sum "
            f"(1 thread) {bw['numpy_sum_gbs']:.1f} GB/s: {100 * bw['ratio']:.0f}%")


def _sample(result, size=1 << 16):
    """Small float64 copies of a result's parts (loss, first values of arrays)."""
    parts = result if isinstance(result, tuple) else (result,)
    out = []
    for part in parts:
        if hasattr(part, "detach"):  # torch tensor
            part = part.detach().numpy()
        out.append(np.asarray(part, dtype=np.float64).reshape(-1)[:size].copy())
    return out


def _agrees(sample, reference, dtype):
    rtol = 2e-4 if np.dtype(dtype) == np.float32 else 1e-9
    if len(sample) != len(reference):
        return False
    for a, b in zip(sample, reference):
        if a.shape != b.shape:
            return False
        atol = rtol * max(float(np.max(np.abs(b), initial=0.0)), 1e-300)
        if not np.allclose(a, b, rtol=rtol, atol=atol):
            return False
    return True


class _Progress:
    """One status line on stderr (rewritten in place on a terminal)."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.width = 0

    def show(self, text):
        if not self.enabled:
            return
        if self.tty:
            pad = max(self.width - len(text), 0)
            print("\r" + text + " " * pad, end="", file=sys.stderr, flush=True)
            self.width = len(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def done(self):
        if self.tty and self.width:
            print("\r" + " " * self.width + "\r", end="", file=sys.stderr, flush=True)
        self.width = 0


# Rows timed while other processes kept this much CPU busy (in CPUs, averaged)
# are marked: on a small machine a busy neighbour slows multi-threaded runs most.
BUSY_CPUS = 0.25
# Busy rows are timed again once each, within at most this fraction of the
# first pass's time and this many seconds: a machine that stays busy costs
# the run at most that, not endless retries.
RETRY_FRACTION, RETRY_MAX_SECONDS = 0.25, 20
RETRY_NOTE = ("[retry, busy]: a row was timed while other processes kept more than "
              f"{BUSY_CPUS} CPUs busy (hypervisor steal not counted); such rows are "
              f"timed once more at the end (at most {RETRY_MAX_SECONDS} s in all) and "
              "the quieter measurement is kept. Rows still marked * in the table "
              "were busy both times.")


class _OtherLoad:
    """CPU time used by other processes over an interval, as an average
    number of CPUs; None where /proc/stat is not available.

    Whole-machine busy time from /proc/stat minus this process's own CPU
    time (and what the peer child process reports as its own). Time the
    hypervisor stole is not counted: on an otherwise idle VM it is
    ever-present background that no retry avoids (it made a quiet machine
    retry ten rows, adding ~60 s), and no process of this machine causes it.
    """

    def __init__(self):
        self.start = self._sample()

    @staticmethod
    def _sample():
        try:
            with open("/proc/stat") as f:
                fields = f.readline().split()
        except OSError:
            return None
        if not fields or fields[0] != "cpu":
            return None
        # user nice system idle iowait irq softirq (steal, guest... left out)
        ticks = [int(v) for v in fields[1:8]]
        busy = sum(ticks) - ticks[3] - ticks[4]
        own = os.times()
        return (time.perf_counter(), busy / os.sysconf("SC_CLK_TCK"), own.user + own.system)

    def cpus(self, also_own=0.0):
        """also_own: CPU seconds of helpers of ours (the peer process) to
        leave out as well."""
        end = self._sample()
        if self.start is None or end is None:
            return None
        wall = end[0] - self.start[0]
        if wall < 0.25:  # the counters tick every 10 ms: too coarse below that
            return None
        other = (end[1] - self.start[1]) - (end[2] - self.start[2]) - also_own
        return max(other, 0.0) / wall


class _PeerProcess:
    """One isolated peer (see ISOLATED), timed in a child process on the
    same arrays (make_inputs with the same seed) and with the same timing
    rules, one request at a time over a pipe: while it waits for the next
    request its threads go idle, and while it runs the parent waits.
    """

    SAMPLE = 4096  # values sent back for the agreement check

    def __init__(self, key, threads):
        self.key = key
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from xentc._bench import _peer_main; _peer_main()",
             key, str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def time(self, func, shape, dtype, budget):
        """(seconds per call, result sample, CPU seconds the child used)."""
        request = {"func": func, "shape": list(shape), "dtype": dtype, "budget": budget}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.key} benchmark process ended unexpectedly")
        reply = json.loads(line)
        return (reply["seconds"], [np.array(v, dtype=np.float64) for v in reply["sample"]],
                reply["cpu"])

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def _peer_main():
    """The child side of _PeerProcess: argv = [key, threads]."""
    key, threads = sys.argv[1], int(sys.argv[2])
    factory = {"torch": _torch_impl}[key]
    impls, cached = {}, (None, None)
    for line in sys.stdin:
        req = json.loads(line)
        case = (tuple(req["shape"]), req["dtype"])
        if cached[0] != case:
            cached = (None, None)  # free the previous arrays first
            cached = (case, make_inputs(*case))
        x, target = cached[1]
        if req["func"] not in impls:
            impls[req["func"]] = factory(req["func"], threads)
        fn = impls[req["func"]].prepare(x, target)
        t0 = os.times()
        seconds, result = best_time(fn, req["budget"])
        t1 = os.times()
        sample = [v.tolist() for v in _sample(result, _PeerProcess.SAMPLE)]
        del result, fn
        print(json.dumps({"seconds": seconds, "sample": sample,
                          "cpu": (t1.user + t1.system) - (t0.user + t0.system)}),
              flush=True)


def time_case(x, target, impls, budget, reference_out=None):
    """Time each implementation on (x, target): {key: seconds}, {key: agrees}.

    Each implementation is warmed up once (its result checked against the
    first implementation's, xentc on one thread), then the timed rounds are
    interleaved: round k runs every implementation in turn, so a burst of
    load from elsewhere on the machine hits all of them rather than skewing
    one ratio. Each time is the best round's per-call mean.
    reference_out: a list that receives the first implementation's result
    sample (what the peers timed in a child process are checked against).
    """
    fns, plans, agrees = {}, {}, {}
    reference = None
    for impl in impls:
        fn = impl.prepare(x, target)
        t0 = time.perf_counter()
        result = fn()
        plans[impl.key] = _plan(time.perf_counter() - t0, budget)
        sample = _sample(result)
        del result  # large outputs: free before the next implementation runs
        if reference is None:
            reference = sample
            if reference_out is not None:
                reference_out.append(sample)
        agrees[impl.key] = _agrees(sample, reference, x.dtype)
        fns[impl.key] = fn
    best = dict.fromkeys(fns, float("inf"))
    with _NoGC():
        for k in range(max(rounds for rounds, _ in plans.values())):
            for key, fn in fns.items():
                rounds, number = plans[key]
                if k < rounds:
                    best[key] = min(best[key], _round(fn, number))
    return best, agrees


def _measure(func, shape, dtype, x, target, impls, peers, budget):
    """Times of the in-process implementations (interleaved) and then of each
    peer process on the same case: (times, agrees, other CPUs busy)."""
    load = _OtherLoad()
    reference = []
    times, agrees = time_case(x, target, impls, budget, reference_out=reference)
    other = load.cpus()
    for peer in peers:
        load = _OtherLoad()
        seconds, sample, cpu = peer.time(func, shape, dtype, budget)
        times[peer.key] = seconds
        ref = [r[: _PeerProcess.SAMPLE] for r in reference[0]]
        agrees[peer.key] = _agrees(sample, ref, x.dtype)
        busy = load.cpus(also_own=cpu)
        if busy is not None:
            other = busy if other is None else max(other, busy)
    return times, agrees, other


def _time_row(func, shape, dtype, x, target, impls, budget, peers=()):
    times, agrees, other = _measure(func, shape, dtype, x, target, impls, peers, budget)
    ref = times[REFERENCE]
    return {
        "function": func,
        "shape": list(shape),
        "dtype": dtype,
        "times_s": times,
        "speedup": {key: t / ref for key, t in times.items() if key != REFERENCE},
        "agrees": agrees,
        "other_cpus": other,
    }


def _busy(row):
    return row["other_cpus"] is not None and row["other_cpus"] > BUSY_CPUS


def start_peers(threads, isolate=True):
    """(in-process implementations per function, peer processes): the
    isolated peers that are installed run in child processes."""
    peers = []
    if isolate:
        for key in ISOLATED:
            if importlib.util.find_spec(PEER_PACKAGES[key]) is not None:
                peers.append(_PeerProcess(key, threads or default_threads()))
    return peers


def run(shapes, dtypes, funcs, budget, threads=None, progress=True, retry=False,
        isolate=True):
    """Time every (function, shape, dtype) case: a list of result dicts.

    Each array is generated once and used by all functions and
    implementations, then freed (2048x32000 float64 is 524 MB).

    retry: time again, once, the rows timed while other processes kept the
    CPUs busy, for a limited time (RETRY_*), keeping the measurement taken
    under the lighter load (whole rows, so each row's ratios come from one
    measurement). The first retry prints RETRY_NOTE on stderr.
    isolate: time ISOLATED peers in child processes (else not at all).
    """
    bar = _Progress(progress)
    peers = start_peers(threads, isolate)
    impls = {f: [i for i in implementations(f, threads) if i.key not in ISOLATED]
             for f in funcs}
    try:
        ncases = len(shapes) * len(dtypes) * len(funcs)
        rows, k = [], 0
        started = time.perf_counter()
        for shape in shapes:
            for dtype in dtypes:
                x, target = make_inputs(shape, dtype)
                for func in funcs:
                    k += 1
                    bar.show(f"[{k}/{ncases}] {func} {_shape_str(shape)} {dtype}")
                    rows.append(_time_row(func, shape, dtype, x, target, impls[func],
                                          budget, peers))
                del x, target

        if retry:
            now = time.perf_counter()
            retry_until = now + min(RETRY_FRACTION * (now - started), RETRY_MAX_SECONDS)
            busy = [i for i, row in enumerate(rows) if _busy(row)]
            explained = False
            for shape in shapes:
                for dtype in dtypes:
                    todo = [i for i in busy if rows[i]["shape"] == list(shape)
                            and rows[i]["dtype"] == dtype]
                    if not todo or time.perf_counter() > retry_until:
                        continue
                    x, target = make_inputs(shape, dtype)
                    for i in todo:
                        if time.perf_counter() > retry_until:
                            break
                        if not explained and progress:
                            bar.done()
                            print(RETRY_NOTE, file=sys.stderr, flush=True)
                            explained = True
                        func = rows[i]["function"]
                        bar.show(f"[retry, busy] {func} {_shape_str(shape)} {dtype}")
                        again = _time_row(func, shape, dtype, x, target, impls[func],
                                          budget, peers)
                        if again["other_cpus"] is not None and \
                                again["other_cpus"] < rows[i]["other_cpus"]:
                            rows[i] = again
                    del x, target
    finally:
        for peer in peers:
            peer.close()
    bar.done()
    return rows


def sweep(funcs, dtypes, total, classes, budget, threads=None, progress=True):
    """Throughput (elements/ns) against the number of classes C, N*C = total."""
    bar = _Progress(progress)
    panels = []
    peers = start_peers(threads)
    try:
        for func in funcs:
            impls = [i for i in implementations(func, threads) if i.key not in ISOLATED]
            labels = {impl.key: impl.label for impl in impls}
            labels.update({peer.key: peer.key for peer in peers})
            for dtype in dtypes:
                panel = {"function": func, "dtype": dtype, "total": total,
                         "classes": list(classes),
                         "throughput": {key: [] for key in labels},
                         "labels": labels}
                for c in classes:
                    bar.show(f"[plot] {func} {dtype} C={c}")
                    n = max(total // c, 1)
                    x, target = make_inputs((n, c), dtype)
                    times, _, _ = _measure(func, (n, c), dtype, x, target, impls, peers,
                                           budget)
                    for key, seconds in times.items():
                        panel["throughput"][key].append(n * c / seconds / 1e9)
                    del x, target
                panels.append(panel)
    finally:
        for peer in peers:
            peer.close()
    bar.done()
    return panels


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------

def _shape_str(shape):
    return "x".join(map(str, shape))


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _versions():
    out = {"numpy": np.__version__}
    for name in ("scipy", "torch"):
        try:
            out[name] = importlib.import_module(name).__version__
        except ImportError:
            pass
    return out


def environment(threads):
    import xentc

    cfg = xentc.show_config(print_out=False)
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "simd": cfg["simd_in_use"],
        "xentc_config": cfg,
        "versions": _versions(),
        "python": platform.python_version(),
    }


def header(env):
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    return (f"CPU: {env['cpu']} ({env['cpu_count']} logical CPUs) | "
            f"xentc {env['xentc_config']['version']}, SIMD {env['simd']}, "
            f"{env['threads']} threads | {versions}")


def format_table(rows, labels):
    """Times in ms per implementation, then the speed-up of xentc over each.

    labels: {key: column title}; a "!" after a time marks an implementation
    whose result disagreed with xentc's (the timing may not be comparable),
    a "*" after a row one timed while other processes were busy.
    """
    keys = [k for k in IMPLEMENTATION_KEYS if any(k in r["times_s"] for r in rows)]
    others = [k for k in keys if k != REFERENCE]
    tw, rw = 10, 8
    times_w, ratios_w = tw * len(keys) + 7, rw * len(others)
    # two header lines: what each group of columns holds (with its unit),
    # then the implementations
    group = (" " * 44 + "|" + f"{'time per call (ms)':^{times_w}}" + "|"
             + f" speed-up of {labels.get(REFERENCE, REFERENCE)} over:")
    head = (f"{'function':<22} {'shape':<12} {'dtype':<7} |"
            + "".join(f"{labels.get(k, k):>{tw}}" for k in keys) + " " * 7 + "|"
            + "".join(f"{labels.get(k, k):>{rw}}" for k in others))
    lines = [group, head, "-" * max(len(head), 44 + 2 + times_w + ratios_w)]
    flagged = busy = False
    for r in rows:
        t, ok = r["times_s"], r["agrees"]
        cells = []
        for k in keys:
            if k in t:
                mark = "" if ok[k] else "!"
                flagged |= not ok[k]
                cells.append(f"{t[k] * 1e3:>{tw - 1}.4g}{mark:1}")
            else:
                cells.append(f"{'-':>{tw - 1}} ")
        ratios = [f"{r['speedup'][k]:>{rw - 1}.2f}x" if k in r["speedup"]
                  else f"{'-':>{rw}}" for k in others]
        other = r.get("other_cpus")
        row_busy = other is not None and other > BUSY_CPUS
        busy |= row_busy
        lines.append(f"{r['function']:<22} {_shape_str(r['shape']):<12} {r['dtype']:<7} |"
                     + "".join(cells) + "       |" + "".join(ratios)
                     + (f"  * {other:.1f}" if row_busy else ""))
    if flagged:
        lines.append("! result differs from xentc's beyond rounding")
    if busy:
        lines.append("* other processes kept this many CPUs busy while the row was "
                     "timed: its times, above all the multi-threaded ones, are inflated")
    return "\n".join(lines)


def plot(panels, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    funcs = list(dict.fromkeys(p["function"] for p in panels))
    dtypes = list(dict.fromkeys(p["dtype"] for p in panels))
    fig, axes = plt.subplots(len(funcs), len(dtypes), squeeze=False,
                             figsize=(5.5 * len(dtypes), 3.6 * len(funcs)))
    for p in panels:
        ax = axes[funcs.index(p["function"])][dtypes.index(p["dtype"])]
        for key, values in p["throughput"].items():
            ax.plot(p["classes"], values, marker="o", markersize=3, label=p["labels"][key])
        ax.set_xscale("log", base=2)
        ax.set_title(f"{p['function']}, {p['dtype']}, N*C = {p['total']}", fontsize=10)
        ax.set_xlabel("classes C (row length)")
        ax.set_ylabel("elements / ns")
        ax.set_ylim(bottom=0)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.98))  # leave the suptitle its own line
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def _positive_int(text):
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return n


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m xentc")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser(
        "bench", help="time xentc against scipy, numpy and torch",
        description="Time xentc against scipy.special, a NumPy two-pass reference and "
                    "torch (CPU, when installed; in a child process) on the same arrays, "
                    "and print times and the speed-up of multi-threaded xentc over each. "
                    "The default run (one shape per regime: short, medium and long "
                    "rows and a DRAM-sized array) takes about a minute and under "
                    "1.5 GB of memory on a 2-core machine; --full about 2.5 minutes "
                    "and 3-4 GB.")
    b.add_argument("--quick", action="store_true",
                   help="small shapes and short timings (a smoke test, ~10 s)")
    b.add_argument("--full", action="store_true",
                   help="the whole table of large shapes (4096x1000, 2048x32000, "
                        "16x128256, 1000000x10) and longer timings: ~2.5 min, 3-4 GB "
                        "peak memory")
    b.add_argument("--dtype", action="append", choices=DTYPES,
                   help="only this dtype (repeatable; default: all)")
    b.add_argument("--function", action="append", choices=FUNCTIONS,
                   help="only this function (repeatable; default: all)")
    b.add_argument("--threads", type=_positive_int, metavar="N",
                   help="threads of the multi-threaded xentc and torch runs "
                        "(default: os.cpu_count())")
    b.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    b.add_argument("--plot", metavar="FILE.png",
                   help="also sweep the number of classes C at fixed N*C and plot "
                        "throughput (needs matplotlib)")
    b.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    b.add_argument("--dask", action="store_true",
                   help="run the dask benchmark (xentc._bench_dask) instead")
    sub.add_parser("config", help="print xentc.show_config()")
    return parser


def _run_dask(args):
    # The dask comparison lives in its own module, written separately; it may
    # not be part of this installation.
    if importlib.util.find_spec("xentc._bench_dask") is None:
        print("xentc bench --dask: the dask benchmark (xentc._bench_dask) is not "
              "available in this installation.", file=sys.stderr)
        return 2
    module = importlib.import_module("xentc._bench_dask")
    return module.main(args)


def bench(args):
    if args.dask:
        return _run_dask(args)
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        # Checked before any timing so a long run is not wasted.
        print("xentc bench --plot needs matplotlib, which is not installed: "
              f"pip install matplotlib (or {install_hint('bench')}).", file=sys.stderr)
        return 2
    if args.quick and args.full:
        print("xentc bench: --quick and --full exclude each other", file=sys.stderr)
        return 2

    threads = args.threads or default_threads()
    dtypes = args.dtype or list(DTYPES)
    funcs = args.function or list(FUNCTIONS)
    shapes, budget = ((QUICK_SHAPES, QUICK_BUDGET) if args.quick else
                      (FULL_SHAPES, FULL_BUDGET) if args.full else
                      (DEFAULT_SHAPES, DEFAULT_BUDGET))
    progress = not args.no_progress

    env = environment(threads)
    print(header(env), flush=True)
    missing = missing_peers()
    if missing:
        print(f"not installed, so not timed: {', '.join(missing)} (install the peers "
              f"with {install_hint('bench')})", flush=True)
    if shapes is DEFAULT_SHAPES:
        print("shapes: " + ", ".join(f"{REGIMES[sh]} {_shape_str(sh)}" for sh in shapes),
              flush=True)
    if not args.quick:
        print("default run: about a minute, under 1.5 GB of memory (--quick: ~10 s; "
              "--full: the large shapes, ~2.5 min, 3-4 GB)" if not args.full else
              "--full: about 2.5 minutes and 3-4 GB of memory", file=sys.stderr,
              flush=True)
    started = time.perf_counter()
    load = _OtherLoad()
    rows = run(shapes, dtypes, funcs, budget, threads, progress, retry=not args.quick)
    other_cpus = load.cpus()
    labels = {impl.key: impl.label for f in funcs for impl in implementations(f, threads)}
    labels.update({key: key for key in ISOLATED})
    print(format_table(rows, labels), flush=True)
    bw = None
    if "logsumexp" in funcs and "float32" in dtypes:
        bw = bandwidth(QUICK_BANDWIDTH_SHAPE if args.quick else
                       BANDWIDTH_SHAPE if args.full else DEFAULT_BANDWIDTH_SHAPE,
                       threads, budget)
        print(format_bandwidth(bw, threads), flush=True)

    panels = None
    if args.plot:
        total, classes = ((QUICK_SWEEP_TOTAL, QUICK_SWEEP_CLASSES) if args.quick
                          else (SWEEP_TOTAL, SWEEP_CLASSES))
        panels = sweep(funcs, dtypes, total, classes, min(budget, SWEEP_BUDGET),
                       threads, progress)
        plot(panels, args.plot, header(env))
        print(f"plot written to {args.plot}")
    elapsed = time.perf_counter() - started
    busy = "" if other_cpus is None else (
        f"; other processes kept {other_cpus:.2f} CPUs busy on average during the table")
    print(f"({elapsed:.0f} s{busy})")

    if args.json:
        doc = {
            "environment": env,
            "settings": {"quick": args.quick, "full": args.full, "budget_s": budget,
                         "threads": threads, "missing_peers": missing,
                         "other_cpus": other_cpus,
                         "reference": REFERENCE, "labels": labels},
            "results": rows,
        }
        if bw is not None:
            doc["bandwidth"] = bw
        if panels is not None:
            doc["sweep"] = panels
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "config":
        import xentc

        xentc.show_config()
        return 0
    return bench(args)
