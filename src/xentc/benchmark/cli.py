"""Command line: ``python -m xentc bench [options]`` and ``python -m xentc config``."""
import argparse
import importlib
import importlib.util
import json
import sys
import time

from .._config import install_hint
from .load import OtherLoad
from .registry import (DEFAULT_SHAPES, DTYPES, FULL_SHAPES, FUNCTIONS, ISOLATED, QUICK_SHAPES,
                       REFERENCE, REGIMES, default_threads, implementations, missing_peers)
from .registry import shape_str
from .report import environment, format_bandwidth, format_sweep, format_table, header, plot
from .runner import DEFAULT_BUDGET, FULL_BUDGET, QUICK_BUDGET, run
from .sweep import (QUICK_SWEEP_CLASSES, QUICK_SWEEP_TOTAL, SWEEP_CLASSES, SWEEP_FUNCTIONS,
                    SWEEP_KEYS, SWEEP_PASSES, SWEEP_THREADS, SWEEP_TOTAL, sweep)
from .timing import (BANDWIDTH_SHAPE, DEFAULT_BANDWIDTH_SHAPE, QUICK_BANDWIDTH_SHAPE,
                     bandwidth)

def _positive_int(text):
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return n


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m xentc")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser(
        "bench", help="time xentc against scipy, numpy, torch and JAX",
        description="Time xentc against scipy.special, a NumPy two-pass reference, "
                    "torch and JAX (CPU, when installed; each in a child process of its "
                    "own) on the same arrays, and print times and the speed-up of "
                    "multi-threaded xentc over each. "
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
                   help="threads of the multi-threaded xentc, torch and JAX runs "
                        f"(default: os.cpu_count(); with --sweep {SWEEP_THREADS})")
    b.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    b.add_argument("--sweep", action="store_true",
                   help="instead of the table: throughput (G elements/s) against the "
                        f"number of classes C = {', '.join(map(str, SWEEP_CLASSES))} at "
                        f"N*C = 2^{SWEEP_TOTAL.bit_length() - 1}, for cross_entropy "
                        "forward and forward+gradient (--function picks others), xentc "
                        "against torch, JAX and NumPy, with xentc's throughput as a "
                        "fraction of its own at the largest C and over JAX's and "
                        f"torch's, each point the best of {SWEEP_PASSES} passes (about 3 "
                        "minutes; --quick: one pass, a few C on smaller arrays)")
    b.add_argument("--plot", metavar="FILE.png",
                   help="draw the sweep's throughput against C (needs matplotlib); "
                        "without --sweep, the sweep runs after the table")
    b.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    b.add_argument("--linear", action="store_true",
                   help="run the linear + cross-entropy benchmark instead "
                        "(xentc.linear_cross_entropy against torch and NumPy, and the "
                        "softmax regression fit against scikit-learn; its own options "
                        "follow: --quick, --section lm|memory|fit, --json FILE)")
    b.add_argument("--dask", action="store_true",
                   help="run the dask benchmark (xentc.benchmark.dask) instead")
    sub.add_parser("config", help="print xentc.show_config()")
    return parser


def _run_dask(args):
    from . import dask as dask_benchmark

    return dask_benchmark.main(args)


def _say_missing(keys=None):
    """Name the optional peers (among `keys`) that are not installed, with
    the command that installs them; returns their names."""
    missing = missing_peers(keys)
    if missing:
        print(f"not installed, so not timed: {', '.join(missing)} (install the peers "
              f"with {install_hint('bench')})", flush=True)
    return missing


def _sweep_budget(args):
    return QUICK_BUDGET if args.quick else DEFAULT_BUDGET


def _sweep_passes(args):
    return 1 if args.quick else SWEEP_PASSES


def _sweep(args, threads, title, progress):
    """Run, print and (with --plot) draw the sweep: its panels."""
    total, classes = ((QUICK_SWEEP_TOTAL, QUICK_SWEEP_CLASSES) if args.quick
                      else (SWEEP_TOTAL, SWEEP_CLASSES))
    budget = _sweep_budget(args)
    panels = sweep(args.function or list(SWEEP_FUNCTIONS), args.dtype or list(DTYPES),
                   total, classes, budget, threads, progress, retry=not args.quick,
                   passes=_sweep_passes(args))
    print(format_sweep(panels, {REFERENCE: f"xentc {threads}T"}), flush=True)
    if args.plot:
        plot(panels, args.plot, title)
        print(f"plot written to {args.plot}")
    return panels


def _write_json(path, env, settings, **parts):
    doc = {"environment": env, "settings": settings}
    doc.update({name: part for name, part in parts.items() if part is not None})
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)


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
    if args.sweep and args.full:
        print("xentc bench: --sweep and --full exclude each other", file=sys.stderr)
        return 2
    if args.sweep:
        return bench_sweep(args)

    threads = args.threads or default_threads()
    dtypes = args.dtype or list(DTYPES)
    funcs = args.function or list(FUNCTIONS)
    shapes, budget = ((QUICK_SHAPES, QUICK_BUDGET) if args.quick else
                      (FULL_SHAPES, FULL_BUDGET) if args.full else
                      (DEFAULT_SHAPES, DEFAULT_BUDGET))
    progress = not args.no_progress

    env = environment(threads)
    print(header(env), flush=True)
    missing = _say_missing()
    if shapes is DEFAULT_SHAPES:
        print("shapes: " + ", ".join(f"{REGIMES[sh]} {shape_str(sh)}" for sh in shapes),
              flush=True)
    if not args.quick:
        print("default run: about a minute, under 1.5 GB of memory (--quick: ~10 s; "
              "--full: the large shapes, ~2.5 min, 3-4 GB)" if not args.full else
              "--full: about 2.5 minutes and 3-4 GB of memory", file=sys.stderr,
              flush=True)
    started = time.perf_counter()
    load = OtherLoad()
    rows = run(shapes, dtypes, funcs, budget, threads, progress, retry=not args.quick)
    other_cpus = load.cpus()
    # the labels of the in-process implementations, and the isolated peers'
    # keys, without importing those here
    labels = {impl.key: impl.label for f in funcs
              for impl in implementations(f, threads, isolated=False)}
    labels.update({key: key for key in ISOLATED})
    print(format_table(rows, labels), flush=True)
    bw = None
    if "logsumexp" in funcs and "float32" in dtypes:
        bw = bandwidth(QUICK_BANDWIDTH_SHAPE if args.quick else
                       BANDWIDTH_SHAPE if args.full else DEFAULT_BANDWIDTH_SHAPE,
                       threads, budget)
        print(format_bandwidth(bw, threads), flush=True)

    panels = _sweep(args, threads, header(env), progress) if args.plot else None
    elapsed = time.perf_counter() - started
    busy = "" if other_cpus is None else (
        f"; other processes kept {other_cpus:.2f} CPUs busy on average during the table")
    print(f"({elapsed:.0f} s{busy})")

    if args.json:
        _write_json(args.json, env,
                    {"quick": args.quick, "full": args.full, "budget_s": budget,
                     "threads": threads, "missing_peers": missing,
                     "other_cpus": other_cpus, "reference": REFERENCE, "labels": labels},
                    results=rows, bandwidth=bw, sweep=panels)
    return 0


def bench_sweep(args):
    """``--sweep``: only the sweep (its tables, and the plot with --plot)."""
    threads = args.threads or SWEEP_THREADS
    env = environment(threads)
    print(header(env), flush=True)
    missing = _say_missing(SWEEP_KEYS)
    started = time.perf_counter()
    load = OtherLoad()
    panels = _sweep(args, threads, header(env), not args.no_progress)
    other_cpus = load.cpus()
    busy = "" if other_cpus is None else (
        f"; other processes kept {other_cpus:.2f} CPUs busy on average")
    print(f"({time.perf_counter() - started:.0f} s{busy})")
    if args.json:
        _write_json(args.json, env,
                    {"mode": "sweep", "quick": args.quick, "budget_s": _sweep_budget(args),
                     "passes": _sweep_passes(args), "threads": threads,
                     "missing_peers": missing, "other_cpus": other_cpus,
                     "reference": REFERENCE, "keys": list(SWEEP_KEYS)},
                    sweep=panels)
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"] and "--linear" in argv:
        # its options are its own: hand them over whole
        from . import linear

        return linear.main([a for a in argv[1:] if a != "--linear"])
    args = build_parser().parse_args(argv)
    if args.command == "config":
        import xentc

        xentc.show_config()
        return 0
    return bench(args)
