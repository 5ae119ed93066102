"""
``python -m xentc bench --dask``: xentc.dask against a dask.array expression.

On a dask.distributed LocalCluster of two single-threaded worker processes
with a memory limit each, times the row log-sum-exp of a float32 array made
by ``dask.array.random`` and chunked along rows and classes:

* xentc.dask.logsumexp: one read of each block by the C kernels into a
  per-row partial, merged along the class axis by dask's reduction tree;
* the scipy-style dask.array expression ``log(sum(exp(x - max))) + max``:
  two passes over x (the max, then the exp-sum), so dask keeps a row of
  blocks alive between them.

Two cases: "streamed" (the array, larger than the workers' memory together,
is generated block by block inside the timed graph, as data read from disk
would be; a generation-only run is timed as well, to be subtracted) and
"in memory" (a smaller array persisted on the workers first: compute only).
"""
import json
import logging
import os
import platform
import shutil
import tempfile
import time

import numpy as np

# (rows, classes), (row chunk, class chunk)
STREAM = ((16384, 49152), (2048, 16384))        # 3.0 GiB float32, 128 MiB chunks
STREAM_QUICK = ((4096, 16384), (1024, 4096))    # 256 MiB
IN_MEMORY = ((8192, 32768), (1024, 8192))       # 1.0 GiB
IN_MEMORY_QUICK = ((2048, 8192), (512, 2048))   # 64 MiB
MEMORY_LIMIT = "1.5GiB"
NWORKERS = 2


def _touch(block, axis, keepdims):
    """A reduction that only receives each block: the cost of making them."""
    return np.zeros((block.shape[0], 1) if keepdims else block.shape[:1], np.float32)


def _scipy_style(x):
    """scipy.special.logsumexp's algorithm as a dask.array expression."""
    import dask.array as da

    m = x.max(axis=1, keepdims=True)
    return da.log(da.exp(x - m).sum(axis=1)) + m[:, 0]


def _gib(nbytes):
    return nbytes / 2**30


def _time(client, make, repeat):
    """Best wall time of computing make() on the cluster, and its result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        arr = make()
        t0 = time.perf_counter()
        result = client.compute(arr, sync=True)
        best = min(best, time.perf_counter() - t0)
    return best, result


def _max_rel_diff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), np.finfo(np.float64).tiny)))


def main(args=None):
    """Run the comparison and print a table; `args` is the bench command's
    argparse Namespace (uses quick, dtype, json) or None for the defaults."""
    try:
        import dask
        import dask.array as da
        import distributed
    except ImportError:
        import sys

        from ._config import install_hint

        print("xentc bench --dask needs dask and distributed: "
              f"{install_hint('dask')}", file=sys.stderr)
        return 2
    import xentc
    import xentc.dask as xd

    quick = bool(getattr(args, "quick", False))
    dtype = np.dtype((getattr(args, "dtype", None) or ["float32"])[0])
    repeat = 1 if quick else 2
    stream_shape, stream_chunks = STREAM_QUICK if quick else STREAM
    mem_shape, mem_chunks = IN_MEMORY_QUICK if quick else IN_MEMORY

    spill_dir = tempfile.mkdtemp(prefix="xentc-dask-bench-")
    cluster = distributed.LocalCluster(
        n_workers=NWORKERS, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, memory_limit=MEMORY_LIMIT, local_directory=spill_dir,
        silence_logs=logging.ERROR)
    client = distributed.Client(cluster)
    rows = []
    try:
        print(f"xentc {xentc.__version__} ({xentc._core.active_kernels()}), "
              f"dask {dask.__version__}, numpy {np.__version__}, "
              f"{platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs")
        print(f"LocalCluster: {NWORKERS} worker processes x 1 thread, memory_limit "
              f"{MEMORY_LIMIT} each; best of {repeat}")

        def random_array(shape, chunks, seed):
            # Uniform values: a quarter of the cost of normal ones to generate
            # (the streamed case times generation too); the log-sum-exp
            # kernels' work does not depend on the values.
            return da.random.default_rng(seed).random(shape, chunks=chunks, dtype=dtype)

        # Warm-up: the workers import xentc, dask's RNG, etc. before timing.
        tiny = random_array((64, 64), (32, 32), 0)
        client.compute([xd.logsumexp(tiny), _scipy_style(tiny)], sync=True)
        load_before = os.getloadavg()[0]

        # -- streamed: generated inside the graph, larger than the cluster's memory
        size = _gib(np.prod(stream_shape) * dtype.itemsize)
        label = (f"streamed {stream_shape[0]}x{stream_shape[1]} {dtype} "
                 f"({size:.2f} GiB, chunks {stream_chunks[0]}x{stream_chunks[1]})")
        gen_t, _ = _time(client, lambda: da.reduction(
            random_array(stream_shape, stream_chunks, 1), _touch, _touch, axis=1,
            dtype=np.float32, concatenate=True), repeat)
        x_t, x_res = _time(client, lambda: xd.logsumexp(
            random_array(stream_shape, stream_chunks, 1), axis=1), repeat)
        s_t, s_res = _time(client, lambda: _scipy_style(
            random_array(stream_shape, stream_chunks, 1)), repeat)
        rows.append(dict(case=label, generate_s=gen_t, xentc_s=x_t, dask_expr_s=s_t,
                         max_rel_diff=_max_rel_diff(x_res, s_res)))

        # -- in memory: persisted on the workers, compute only
        size = _gib(np.prod(mem_shape) * dtype.itemsize)
        label = (f"in memory {mem_shape[0]}x{mem_shape[1]} {dtype} "
                 f"({size:.2f} GiB, chunks {mem_chunks[0]}x{mem_chunks[1]})")
        x = random_array(mem_shape, mem_chunks, 2).persist()
        distributed.wait(x)
        x_t, x_res = _time(client, lambda: xd.logsumexp(x, axis=1), repeat)
        s_t, s_res = _time(client, lambda: _scipy_style(x), repeat)
        rows.append(dict(case=label, generate_s=None, xentc_s=x_t, dask_expr_s=s_t,
                         max_rel_diff=_max_rel_diff(x_res, s_res)))
        del x
        load_after = os.getloadavg()[0]
    finally:
        client.close()
        cluster.close()
        shutil.rmtree(spill_dir, ignore_errors=True)

    print()
    print(f"{'case':<68} {'generate':>9} {'xentc.dask':>11} {'dask expr':>10} "
          f"{'ratio':>6} {'ratio-gen':>9}")
    for r in rows:
        gen = r["generate_s"]
        net = (f"{(r['dask_expr_s'] - gen) / (r['xentc_s'] - gen):9.2f}"
               if gen is not None and r["xentc_s"] > gen else f"{'':>9}")
        r["ratio"] = r["dask_expr_s"] / r["xentc_s"]
        print(f"{r['case']:<68} {'' if gen is None else f'{gen:8.2f}s':>9} "
              f"{r['xentc_s']:10.2f}s {r['dask_expr_s']:9.2f}s {r['ratio']:6.2f} {net}")
    print("ratio = dask expression time / xentc.dask time; ratio-gen: both minus the "
          "time to generate the blocks.")
    print(f"load average (1 min) before/after: {load_before:.2f}/{load_after:.2f} on "
          f"{os.cpu_count()} CPUs (other processes inflate both columns)")
    print("max relative difference of the results: "
          + ", ".join(f"{r['max_rel_diff']:.1e}" for r in rows))
    if getattr(args, "json", None):
        with open(args.json, "w") as f:
            json.dump({"dask": dask.__version__, "workers": NWORKERS,
                       "memory_limit": MEMORY_LIMIT, "repeat": repeat,
                       "load_before": load_before, "load_after": load_after,
                       "results": rows},
                      f, indent=2)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
