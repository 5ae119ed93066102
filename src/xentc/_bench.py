"""
``python -m xentc bench``: xentc against SciPy, NumPy and (when installed)
PyTorch, timed side by side in one run on the same arrays.
"""
import argparse
import json
import sys
import time

import numpy as np

DEFAULT_SHAPES = ((4096, 1000), (2048, 32000), (16, 128256), (1000000, 10))
QUICK_SHAPES = ((512, 1000), (16, 20000), (20000, 10))


def _best_time(fn, min_time=0.2, repeat=5):
    """Best per-call time of fn over `repeat` rounds of at least min_time/repeat."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    number = max(1, int(min_time / repeat / once))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def _numpy_lse(x):
    m = x.max(axis=-1, keepdims=True)
    return np.log(np.exp(x - m).sum(axis=-1)) + m[..., 0]


def implementations(func):
    """name -> callable(x) for every implementation of `func` available here."""
    import xentc

    impls = {}
    if func == "logsumexp":
        impls["xentc (1 thread)"] = lambda x: xentc.logsumexp(x, axis=-1, workers=1)
        impls["xentc"] = lambda x: xentc.logsumexp(x, axis=-1)
        impls["numpy"] = _numpy_lse
        try:
            import scipy.special as sp

            impls["scipy"] = lambda x: sp.logsumexp(x, axis=-1)
        except ImportError:
            pass
        torch = _torch()
        if torch is not None:
            impls["torch"] = lambda x: torch.logsumexp(torch.from_numpy(x), dim=-1)
    elif func == "log_softmax":
        impls["xentc (1 thread)"] = lambda x: xentc.log_softmax(x, axis=-1, workers=1)
        impls["xentc"] = lambda x: xentc.log_softmax(x, axis=-1)
        impls["numpy"] = lambda x: x - _numpy_lse(x)[..., None]
        try:
            import scipy.special as sp

            impls["scipy"] = lambda x: sp.log_softmax(x, axis=-1)
        except ImportError:
            pass
        torch = _torch()
        if torch is not None:
            impls["torch"] = lambda x: torch.log_softmax(torch.from_numpy(x), dim=-1)
    return impls


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def run(shapes, dtypes, funcs, min_time, progress=True):
    rows = []
    rng = np.random.default_rng(0)
    cases = [(f, s, d) for f in funcs for s in shapes for d in dtypes]
    for k, (func, shape, dtype) in enumerate(cases, 1):
        x = (rng.standard_normal(shape) * 3).astype(dtype)
        impls = implementations(func)
        times = {}
        for name, fn in impls.items():
            if progress:
                print(f"\r[{k}/{len(cases)}] {func} {shape} {dtype} {name:<18}",
                      end="", file=sys.stderr, flush=True)
            times[name] = _best_time(lambda: fn(x), min_time=min_time)
        rows.append({"function": func, "shape": list(shape), "dtype": dtype,
                     "times": times})
    if progress:
        print("\r" + " " * 78 + "\r", end="", file=sys.stderr)
    return rows


def format_table(rows):
    lines = []
    header = f"{'function':<12} {'shape':<16} {'dtype':<8} {'xentc ms':>9}  speed-up of xentc vs"
    lines.append(header)
    for r in rows:
        t = r["times"]
        ref = t["xentc"]
        others = ", ".join(
            f"{name} {t[name] / ref:.1f}x" for name in t if name != "xentc"
        )
        shape = "x".join(map(str, r["shape"]))
        lines.append(f"{r['function']:<12} {shape:<16} {r['dtype']:<8} {ref * 1e3:9.3f}  {others}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m xentc")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bench", help="time xentc against scipy, numpy and torch")
    b.add_argument("--quick", action="store_true", help="small shapes, short timings")
    b.add_argument("--dtype", action="append", choices=["float32", "float64"])
    b.add_argument("--function", action="append", choices=["logsumexp", "log_softmax"])
    b.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    sub.add_parser("config", help="print xentc.show_config()")
    args = parser.parse_args(argv)

    if args.command == "config":
        import xentc

        xentc.show_config()
        return 0
    shapes = QUICK_SHAPES if args.quick else DEFAULT_SHAPES
    dtypes = args.dtype or ["float32", "float64"]
    funcs = args.function or ["logsumexp", "log_softmax"]
    rows = run(shapes, dtypes, funcs, min_time=0.05 if args.quick else 0.3)
    import xentc

    cfg = xentc.show_config(print_out=False)
    print(f"xentc {cfg['version']}, SIMD {cfg['simd_in_use']}, "
          f"{cfg['default_threads']} threads, {cfg['machine']}")
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": cfg, "results": rows}, f, indent=2)
    return 0
