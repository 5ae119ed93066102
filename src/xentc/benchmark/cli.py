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
from .report import environment, format_bandwidth, format_table, header, plot
from .runner import (DEFAULT_BUDGET, FULL_BUDGET, QUICK_BUDGET, QUICK_SWEEP_CLASSES,
                     QUICK_SWEEP_TOTAL, SWEEP_BUDGET, SWEEP_CLASSES, SWEEP_TOTAL, run, sweep)
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
                        "(default: os.cpu_count())")
    b.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    b.add_argument("--plot", metavar="FILE.png",
                   help="also sweep the number of classes C at fixed N*C and plot "
                        "throughput (needs matplotlib)")
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
