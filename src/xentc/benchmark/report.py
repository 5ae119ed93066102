"""What the benchmark prints and draws: the header, the table, the sweep's
tables, the plot."""
import importlib.metadata
import os
import platform
import textwrap

import numpy as np

from .registry import IMPLEMENTATION_KEYS, PEER_PACKAGES, REFERENCE, shape_str
from .runner import BUSY_CPUS
from .sweep import RATIO_PEERS, SWEEP_KEYS, TARGETS

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
    return "\n".join(lines + _footnotes(flagged, busy))


def _footnotes(flagged, busy):
    """The legend of the "!" and "*" marks, for the marks that were used."""
    lines = []
    if flagged:
        lines.append("! result differs from xentc's beyond rounding")
    if busy:
        lines.append("* other processes kept this many CPUs busy while the row was "
                     "timed: its times, above all the multi-threaded ones, are inflated")
    return lines


def _ratio_cell(value, width):
    return f"{value:>{width - 1}.2f}x" if value is not None else f"{'-':>{width}}"


def format_sweep(panels, labels):
    """The sweep's tables, one per (function, dtype) panel: throughput of
    each implementation in G elements/s against C, then xentc's throughput
    as a fraction of its own at the largest C and divided by each peer's in
    RATIO_PEERS, a line with the worst of each, and TARGETS.

    labels: {key: column title}; a peer that was not timed (not installed)
    keeps its column, filled with "-". Marks as in format_table.
    """
    tw, rw = 9, 11
    out, flagged, busy = [], False, False
    for p in panels:
        largest = p["classes"][-1]
        ratio_heads = [f"of C={largest}"] + [f"vs {labels.get(k, k)}" for k in RATIO_PEERS]
        out += ["", f"{p['function']} ({p['name']}), {p['dtype']}, N*C = {p['total']}, "
                    f"{p['threads']} threads",
                " " * 18 + "|" + f"{'throughput (G elements/s)':^{tw * len(SWEEP_KEYS) + 1}}"
                + "| " + f"{labels.get(REFERENCE, REFERENCE)}:"]
        head = (f"{'C':>7} {'N':>9} |" + "".join(f"{labels.get(k, k):>{tw}}" for k in SWEEP_KEYS)
                + " |" + "".join(f"{h:>{rw}}" for h in ratio_heads))
        out += [head, "-" * len(head)]
        for i, (c, n) in enumerate(zip(p["classes"], p["rows"])):
            cells = []
            for k in SWEEP_KEYS:
                value, ok = p["throughput"][k][i], p["agrees"][k][i]
                if value is None:
                    cells.append(f"{'-':>{tw}}")
                    continue
                flagged |= not ok
                cells.append(f"{value:>{tw - 1}.3g}" + ("" if ok else "!"))
            ratios = ([f"{p['fraction_of_largest_C'][i]:>{rw}.2f}"]
                      + [_ratio_cell(p["xentc_over"][k][i], rw) for k in RATIO_PEERS])
            other = p["other_cpus"][i]
            row_busy = other is not None and other > BUSY_CPUS
            busy |= row_busy
            out.append(f"{c:>7} {n:>9} |" + "".join(cells) + " |" + "".join(ratios)
                       + (f"  * {other:.1f}" if row_busy else ""))
        out.append(_worst(p, labels))
    out += [""] + _footnotes(flagged, busy) + [TARGETS]
    return "\n".join(out)


def _worst(panel, labels):
    """One line: the lowest of each ratio column (with its C) and the largest
    fall of xentc's throughput from one C to the next."""
    def lowest(values):
        timed = [(v, c) for v, c in zip(values, panel["classes"]) if v is not None]
        return min(timed) if timed else None

    parts = []
    frac = lowest(panel["fraction_of_largest_C"])
    parts.append(f"of C={panel['classes'][-1]} {frac[0]:.2f} at C={frac[1]}")
    for k in RATIO_PEERS:
        low = lowest(panel["xentc_over"][k])
        if low is not None:
            parts.append(f"vs {labels.get(k, k)} {low[0]:.2f}x at C={low[1]}")
    fall = panel["largest_fall"]
    parts.append("never falls from one C to the next" if fall["from_C"] is None else
                 f"largest fall {100 * fall['fraction']:.0f}% "
                 f"(C={fall['from_C']} -> {fall['to_C']})")
    return "lowest: " + ", ".join(parts)


def format_bandwidth(bw, threads):
    return (f"read bandwidth, {shape_str(bw['shape'])} float32: xentc.logsumexp "
            f"({threads} threads) {bw['xentc_logsumexp_gbs']:.1f} GB/s, numpy.sum "
            f"(1 thread) {bw['numpy_sum_gbs']:.1f} GB/s: {100 * bw['ratio']:.0f}%")


def plot(panels, path, title):
    """The sweep's curves: throughput against C (log axis), one panel per
    (function, dtype), one line per implementation that was timed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    funcs = list(dict.fromkeys(p["function"] for p in panels))
    dtypes = list(dict.fromkeys(p["dtype"] for p in panels))
    width, height = 5.5 * len(dtypes), 3.6 * len(funcs)
    fig, axes = plt.subplots(len(funcs), len(dtypes), squeeze=False,
                             figsize=(width, height))
    for p in panels:
        ax = axes[funcs.index(p["function"])][dtypes.index(p["dtype"])]
        for key, values in p["throughput"].items():
            points = [(c, v) for c, v in zip(p["classes"], values) if v is not None]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=key)
        ax.set_xscale("log")
        ax.set_title(f"{p['function']} ({p['name']}), {p['dtype']}, N*C = {p['total']}",
                     fontsize=10)
        ax.set_xlabel("classes C (row length)")
        ax.set_ylabel("G elements / s")
        ax.set_ylim(bottom=0)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    # the header line, wrapped to the figure's width (about 17 characters of
    # 8-point text per inch), with room left above the panels for its lines
    lines = textwrap.wrap(title, width=int(17 * width))
    fig.suptitle("\n".join(lines), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - (0.15 * len(lines) + 0.05) / height))
    fig.savefig(path, dpi=120)
    plt.close(fig)
