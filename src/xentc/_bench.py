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
import sys
import time
from typing import Callable, NamedTuple

import numpy as np

FUNCTIONS = ("logsumexp", "log_softmax", "cross_entropy", "cross_entropy_and_grad")
DTYPES = ("float32", "float64")
DEFAULT_SHAPES = ((4096, 1000), (2048, 32000), (16, 128256), (1000000, 10))
QUICK_SHAPES = ((256, 1000), (8, 20000), (20000, 10))

# Seconds of timed calls per implementation and case (after the warm-up call).
DEFAULT_BUDGET = 0.25
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


def _numpy_two_pass(x):
    """Row max, then exp(x - max) and its row sum: (max, exp(x - max), sum)."""
    m = x.max(axis=1, keepdims=True)
    e = x - m
    np.exp(e, out=e)
    return m, e, e.sum(axis=1, keepdims=True)


def _numpy_impl(func):
    if func == "logsumexp":
        def prepare(x, target):
            def run():
                m, _, s = _numpy_two_pass(x)
                return (np.log(s) + m)[:, 0]
            return run
    elif func == "log_softmax":
        def prepare(x, target):
            def run():
                m, _, s = _numpy_two_pass(x)
                return x - (np.log(s) + m)
            return run
    elif func == "cross_entropy":
        def prepare(x, target):
            rows = np.arange(x.shape[0])

            def run():
                m, _, s = _numpy_two_pass(x)
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
# Busy rows are timed again for at most this fraction of the first pass's
# time, and this many seconds (the default run stays within ~4 min).
RETRY_FRACTION, RETRY_MAX_SECONDS = 0.5, 70


class _OtherLoad:
    """CPU time used by other processes (and stolen by the hypervisor) over
    an interval, as an average number of CPUs; None where /proc/stat is not
    available.

    Whole-machine busy time from /proc/stat minus this process's own CPU time.
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
        # user nice system idle iowait irq softirq steal ...
        ticks = [int(v) for v in fields[1:9]]
        busy = sum(ticks) - ticks[3] - ticks[4]
        own = os.times()
        return (time.perf_counter(), busy / os.sysconf("SC_CLK_TCK"), own.user + own.system)

    def cpus(self):
        end = self._sample()
        if self.start is None or end is None:
            return None
        wall = end[0] - self.start[0]
        if wall < 0.5:  # the counters tick every 10 ms: too coarse below that
            return None
        other = (end[1] - self.start[1]) - (end[2] - self.start[2])
        return max(other, 0.0) / wall


def time_case(x, target, impls, budget):
    """Time each implementation on (x, target): {key: seconds}, {key: agrees}.

    Each implementation is warmed up once (its result checked against the
    first implementation's, xentc on one thread), then the timed rounds are
    interleaved: round k runs every implementation in turn, so a burst of
    load from elsewhere on the machine hits all of them rather than skewing
    one ratio. Each time is the best round's per-call mean.
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


def _time_row(func, shape, dtype, x, target, impls, budget):
    load = _OtherLoad()
    times, agrees = time_case(x, target, impls, budget)
    ref = times[REFERENCE]
    return {
        "function": func,
        "shape": list(shape),
        "dtype": dtype,
        "times_s": times,
        "speedup": {key: t / ref for key, t in times.items() if key != REFERENCE},
        "agrees": agrees,
        "other_cpus": load.cpus(),
    }


def _busy(row):
    return row["other_cpus"] is not None and row["other_cpus"] > BUSY_CPUS


def run(shapes, dtypes, funcs, budget, threads=None, progress=True, retry=False):
    """Time every (function, shape, dtype) case: a list of result dicts.

    Each array is generated once and used by all functions and
    implementations, then freed (2048x32000 float64 is 524 MB).

    retry: time again the rows timed while other processes kept the CPUs
    busy, for a limited time (RETRY_*), keeping the measurement taken under
    the lighter load (whole rows, so each row's ratios come from one
    interleaved measurement).
    """
    bar = _Progress(progress)
    impls = {f: implementations(f, threads) for f in funcs}
    ncases = len(shapes) * len(dtypes) * len(funcs)
    rows, k = [], 0
    started = time.perf_counter()
    for shape in shapes:
        for dtype in dtypes:
            x, target = make_inputs(shape, dtype)
            for func in funcs:
                k += 1
                bar.show(f"[{k}/{ncases}] {func} {_shape_str(shape)} {dtype}")
                rows.append(_time_row(func, shape, dtype, x, target, impls[func], budget))
            del x, target

    if retry:
        now = time.perf_counter()
        retry_until = now + min(RETRY_FRACTION * (now - started), RETRY_MAX_SECONDS)
        busy = [i for i, row in enumerate(rows) if _busy(row)]
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
                    func = rows[i]["function"]
                    bar.show(f"[retry, busy] {func} {_shape_str(shape)} {dtype}")
                    again = _time_row(func, shape, dtype, x, target, impls[func], budget)
                    if again["other_cpus"] < rows[i]["other_cpus"]:
                        rows[i] = again
                del x, target
    bar.done()
    return rows


def sweep(funcs, dtypes, total, classes, budget, threads=None, progress=True):
    """Throughput (elements/ns) against the number of classes C, N*C = total."""
    bar = _Progress(progress)
    panels = []
    for func in funcs:
        impls = implementations(func, threads)
        for dtype in dtypes:
            panel = {"function": func, "dtype": dtype, "total": total,
                     "classes": list(classes),
                     "throughput": {impl.key: [] for impl in impls},
                     "labels": {impl.key: impl.label for impl in impls}}
            for c in classes:
                bar.show(f"[plot] {func} {dtype} C={c}")
                n = max(total // c, 1)
                x, target = make_inputs((n, c), dtype)
                times, _ = time_case(x, target, impls, budget)
                for key, seconds in times.items():
                    panel["throughput"][key].append(n * c / seconds / 1e9)
                del x, target
            panels.append(panel)
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
    head = (f"{'function':<22} {'shape':<12} {'dtype':<7} |"
            + "".join(f"{labels.get(k, k):>{tw}}" for k in keys)
            + "  (ms) | speed-up of " + labels.get(REFERENCE, REFERENCE) + " over:")
    sub = (" " * 44 + "|" + " " * (tw * len(keys) + 7) + "|"
           + "".join(f"{labels.get(k, k):>{rw}}" for k in others))
    lines = [head, sub, "-" * len(sub)]
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
                    "torch (CPU, when installed) on the same arrays, and print times "
                    "and the speed-up of multi-threaded xentc over each.")
    b.add_argument("--quick", action="store_true",
                   help="small shapes and short timings (a smoke test, < 30 s)")
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
              "pip install matplotlib (or pip install 'xentc[bench]').", file=sys.stderr)
        return 2

    threads = args.threads or default_threads()
    dtypes = args.dtype or list(DTYPES)
    funcs = args.function or list(FUNCTIONS)
    shapes = QUICK_SHAPES if args.quick else DEFAULT_SHAPES
    budget = QUICK_BUDGET if args.quick else DEFAULT_BUDGET
    progress = not args.no_progress

    env = environment(threads)
    print(header(env), flush=True)
    started = time.perf_counter()
    load = _OtherLoad()
    rows = run(shapes, dtypes, funcs, budget, threads, progress, retry=not args.quick)
    other_cpus = load.cpus()
    labels = {impl.key: impl.label for f in funcs for impl in implementations(f, threads)}
    print(format_table(rows, labels), flush=True)
    bw = None
    if "logsumexp" in funcs and "float32" in dtypes:
        bw = bandwidth(QUICK_BANDWIDTH_SHAPE if args.quick else BANDWIDTH_SHAPE,
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
            "settings": {"quick": args.quick, "budget_s": budget, "threads": threads,
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
