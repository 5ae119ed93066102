"""What the benchmark prints and draws: the header, the table, the plot."""
import importlib.metadata
import os
import platform

import numpy as np

from .registry import IMPLEMENTATION_KEYS, PEER_PACKAGES, REFERENCE, shape_str
from .runner import BUSY_CPUS

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
    # From the installed packages' metadata: importing torch or JAX here
    # would load their runtimes into the process that times xentc.
    out = {"numpy": np.__version__}
    for name in PEER_PACKAGES.values():
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
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
        lines.append(f"{r['function']:<22} {shape_str(r['shape']):<12} {r['dtype']:<7} |"
                     + "".join(cells) + "       |" + "".join(ratios)
                     + (f"  * {other:.1f}" if row_busy else ""))
    if flagged:
        lines.append("! result differs from xentc's beyond rounding")
    if busy:
        lines.append("* other processes kept this many CPUs busy while the row was "
                     "timed: its times, above all the multi-threaded ones, are inflated")
    return "\n".join(lines)


def format_bandwidth(bw, threads):
    return (f"read bandwidth, {shape_str(bw['shape'])} float32: xentc.logsumexp "
            f"({threads} threads) {bw['xentc_logsumexp_gbs']:.1f} GB/s, numpy.sum "
            f"(1 thread) {bw['numpy_sum_gbs']:.1f} GB/s: {100 * bw['ratio']:.0f}%")


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
