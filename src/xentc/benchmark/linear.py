"""
``python -m xentc bench --linear``: the fused linear + cross-entropy against
its alternatives, and the softmax regression fit against scikit-learn.

Three sections, each implementation in a fresh subprocess (torch's and the
BLAS thread pools keep spinning after a call and would slow whatever runs
next in the same process; a fresh process also gives each its own peak RSS):

``lm``      N=2048, D=512, V=32000 float32, loss + gradients (input, weight):
            xentc.linear_cross_entropy_and_grad; NumPy matmul + xentc
            cross_entropy_and_grad on the materialised logits; the three
            matrix products alone (the floor); torch's cross_entropy on
            ``x @ W.T``, F.linear_cross_entropy and its chunked variant
            (``options=LinearCrossEntropyOptions()``).
``memory``  N=4096, D=256, C=128256 float32, loss + gradients by xentc: peak
            memory above inputs and outputs (tracemalloc and RSS).
``fit``     softmax regression, N=200000, D=64, C=50 float64:
            scikit-learn's ``LogisticRegression().fit`` against
            examples/softmax_regression.py (L-BFGS-B on
            linear_cross_entropy_and_grad), same objective and tolerance.

Time is the best (and median) of the repeats after a warm-up call; the
implementations of a section run in rounds, one after the other, so that a
burst of load from elsewhere hits them alike. Peak memory is measured on
the call after the warm-up: RSS high-water mark (VmHWM, reset just before)
above the RSS with inputs and outputs allocated, and NumPy's allocations
under tracemalloc for the NumPy-based implementations.
"""
import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

import numpy as np

LM_SHAPE = (2048, 512, 32000)
LM_QUICK = (2048, 64, 16000)
MEM_SHAPE = (4096, 256, 128256)
MEM_QUICK = (512, 64, 32000)
FIT_SHAPE = (200000, 64, 50)
FIT_QUICK = (20000, 16, 10)

LM_IMPLS = ("xentc", "numpy_xentc", "three_products", "torch_materialised", "torch_lce",
            "torch_lce_chunked")
LM_LABELS = {
    "xentc": "xentc.linear_cross_entropy_and_grad",
    "numpy_xentc": "NumPy matmul + xentc.cross_entropy_and_grad (logits stored)",
    "three_products": "the three products alone (NumPy matmul)",
    "torch_materialised": "torch: cross_entropy(x @ W.T) fwd+bwd",
    "torch_lce": "torch: F.linear_cross_entropy fwd+bwd",
    "torch_lce_chunked": "torch: F.linear_cross_entropy, LinearCrossEntropyOptions()",
}


# ---------------------------------------------------------------- measuring

def _rss_now():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak():
    """Reset the RSS high-water mark (Linux >= 4.0); False if unavailable."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _measure(fn, repeats, trace=False):
    """(times, peak RSS above the current RSS, tracemalloc peak or None, result)
    of fn (already called once): a call measured for memory, then `repeats`
    timed calls."""
    import gc
    import tracemalloc
    gc.collect()
    base = _rss_now()
    resettable = _reset_peak()
    if trace:
        tracemalloc.start()
    result = fn()
    traced = None
    if trace:
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    rss_extra = _peak_rss() - base if resettable else None
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times, rss_extra, traced, result


def _lm_inputs(shape, seed=0):
    n, d, c = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.float32)
    w = rng.standard_normal((c, d), dtype=np.float32)
    w *= np.float32(1 / np.sqrt(d))
    y = rng.integers(0, c, n)
    return x, w, y


def _summary(loss, gx, gw):
    return [float(loss), float(np.linalg.norm(np.asarray(gx, np.float64))),
            float(np.linalg.norm(np.asarray(gw, np.float64)))]


def _worker_lm(spec):
    impl, shape, repeats = spec["impl"], tuple(spec["shape"]), spec["repeats"]
    x, w, y = _lm_inputs(shape)
    n, d, c = shape
    if impl.startswith("torch"):
        import torch
        import torch.nn.functional as F
        torch.set_num_threads(spec["threads"])
        xt = torch.from_numpy(x).requires_grad_()
        wt = torch.from_numpy(w).requires_grad_()
        yt = torch.from_numpy(y)
        opts = None
        if impl == "torch_lce_chunked":
            from torch.nn.modules.linear_cross_entropy_options import (
                LinearCrossEntropyOptions)
            opts = LinearCrossEntropyOptions()

        def fn():
            xt.grad = wt.grad = None
            if impl == "torch_materialised":
                loss = F.cross_entropy(xt @ wt.T, yt)
            else:
                loss = F.linear_cross_entropy(xt, wt, yt, options=opts)
            loss.backward()
            return loss.item(), xt.grad, wt.grad
        fn()      # warm-up (and the grads allocated: outputs, not extra)
        times, rss, traced, (loss, gx, gw) = _measure(fn, repeats)
        return dict(times=times, rss_extra=rss, traced=None,
                    summary=_summary(loss, gx.numpy(), gw.numpy()))
    import xentc
    gx = np.empty((n, d), np.float32)
    gw = np.empty((c, d), np.float32)
    gx[...] = 0
    gw[...] = 0
    if impl == "xentc":
        def fn():
            loss, _, _, _ = xentc.linear_cross_entropy_and_grad(x, w, y, out=(gx, gw, None))
            return loss
    elif impl == "numpy_xentc":
        def fn():
            logits = x @ w.T
            loss, g = xentc.cross_entropy_and_grad(logits, y, grad_out=logits)
            np.matmul(g, w, out=gx)
            np.matmul(g.T, x, out=gw)
            return loss
    elif impl == "three_products":
        logits = np.empty((n, c), np.float32)
        logits[...] = 0

        def fn():
            np.matmul(x, w.T, out=logits)
            np.matmul(logits, w, out=gx)
            np.matmul(logits.T, x, out=gw)
            return np.nan
    else:
        raise ValueError(impl)
    fn()
    times, rss, traced, loss = _measure(fn, repeats, trace=True)
    return dict(times=times, rss_extra=rss, traced=traced, summary=_summary(loss, gx, gw))


def _worker_memory(spec):
    import xentc
    shape = tuple(spec["shape"])
    x, w, y = _lm_inputs(shape, seed=1)
    n, d, c = shape
    outs = (np.empty((n, d), np.float32), np.empty((c, d), np.float32), None)
    for o in outs[:2]:
        o[...] = 0          # touched: their pages count in the baseline RSS

    def fn():
        return xentc.linear_cross_entropy_and_grad(x, w, y, out=outs)[0]
    fn()      # warm-up: BLAS allocates its work buffers on first use
    times, rss, traced, loss = _measure(fn, spec["repeats"], trace=True)
    from xentc import _linear
    return dict(times=times, rss_extra=rss, traced=traced, loss=float(loss),
                bound=_linear._memory_bound(n, c, d, 4),
                logits_bytes=n * c * 4)


def _find_example():
    here = pathlib.Path(__file__).resolve()
    for base in (pathlib.Path.cwd(), here.parents[2]):
        path = base / "examples" / "softmax_regression.py"
        if path.is_file():
            return path
    return None


def _load_example():
    import importlib.util
    path = _find_example()
    spec = importlib.util.spec_from_file_location("softmax_regression", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _worker_fit(spec):
    ex = _load_example()
    n, d, c = spec["shape"]
    (X, y), (X_test, y_test) = ex.make_data(n, d, c)
    import gc
    gc.collect()
    base = _rss_now()
    resettable = _reset_peak()
    if spec["impl"] == "sklearn":
        from sklearn.linear_model import LogisticRegression
        t = time.perf_counter()
        clf = LogisticRegression().fit(X, y)
        elapsed = time.perf_counter() - t
        coef, intercept, nit = clf.coef_, clf.intercept_, int(clf.n_iter_[0])
    else:
        t = time.perf_counter()
        coef, intercept, res = ex.fit(X, y, c, blas_threads=spec["blas_threads"] or None)
        elapsed = time.perf_counter() - t
        nit = int(res.nit)
    rss_extra = _peak_rss() - base if resettable else None
    pred = np.argmax(X_test @ coef.T + intercept, axis=1)
    return dict(time=elapsed, nit=nit, rss_extra=rss_extra, coef=coef.tolist(),
                intercept=intercept.tolist(),
                pred=pred.tolist(), accuracy=float(np.mean(pred == y_test)))


def _run_worker(section, spec, timeout=1800):
    proc = subprocess.run(
        [sys.executable, "-m", "xentc.benchmark.linear", "--worker", section, json.dumps(spec)],
        capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return dict(error=(proc.stderr.strip().splitlines() or ["failed"])[-1])
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- reporting

def _mb(b):
    return "n/a" if b is None else f"{b / 2**20:.1f}"


def _environment(threads):
    env = dict(python=platform.python_version(), numpy=np.__version__,
               cpus=os.cpu_count(), threads=threads, load=list(os.getloadavg()))
    try:
        import xentc
        cfg = xentc.show_config(print_out=False)
        env["xentc"] = cfg.get("version")
        env["simd"] = cfg.get("simd_in_use")
    except Exception:       # pragma: no cover
        pass
    for mod in ("torch", "sklearn", "scipy"):
        try:
            env[mod] = __import__(mod).__version__
        except ImportError:
            env[mod] = None
    try:
        from threadpoolctl import threadpool_info
        env["blas"] = sorted({f"{i['internal_api']} {i['version']}" for i in threadpool_info()
                              if i["user_api"] == "blas"})
    except ImportError:
        pass
    return env


def _lm_section(shape, repeats, rounds, threads, have_torch, out):
    impls = [k for k in LM_IMPLS if have_torch or not k.startswith("torch")]
    runs = {k: [] for k in impls}
    for _ in range(rounds):
        for k in impls:
            runs[k].append(_run_worker("lm", dict(impl=k, shape=shape, repeats=repeats,
                                                  threads=threads)))
    n, d, c = shape
    print(f"\n### Linear + cross-entropy, forward + gradients: N={n}, D={d}, C={c} float32")
    print(f"(logits would be {n * c * 4 / 2**20:.0f} MiB; best / median of "
          f"{rounds} x {repeats} calls; extra memory of a call after the warm-up)\n")
    print("| implementation | best (ms) | median (ms) | xentc speed-up | "
          "peak RSS extra (MiB) | tracemalloc peak (MiB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    rows = {}
    for k in impls:
        ok = [r for r in runs[k] if "error" not in r]
        if not ok:
            print(f"| {LM_LABELS[k]} | failed: {runs[k][0]['error']} | | | | |")
            continue
        times = [t for r in ok for t in r["times"]]
        rows[k] = dict(best=min(times), median=float(np.median(times)),
                       rss_extra=min(r["rss_extra"] for r in ok
                                     if r["rss_extra"] is not None)
                       if any(r["rss_extra"] is not None for r in ok) else None,
                       traced=ok[0]["traced"], summary=ok[0]["summary"])
    ref = rows.get("xentc")
    for k, r in rows.items():
        ratio = "" if ref is None or k == "xentc" else f"{r['best'] / ref['best']:.2f}x"
        print(f"| {LM_LABELS[k]} | {r['best'] * 1e3:.0f} | {r['median'] * 1e3:.0f} | "
              f"{ratio} | {_mb(r['rss_extra'])} | {_mb(r['traced'])} |")
    if ref is not None:
        agree = []
        for k, r in rows.items():
            if k in ("xentc", "three_products"):
                continue
            diff = max(abs(a - b) / abs(b) for a, b in zip(r["summary"], ref["summary"]))
            agree.append(f"{k} {diff:.1e}")
        print("\nLoss and gradient norms, relative difference from xentc: "
              + ", ".join(agree))
        torch_best = [rows[k]["best"] for k in ("torch_lce", "torch_lce_chunked")
                      if k in rows]
        if torch_best:
            print(f"xentc vs the faster torch.linear_cross_entropy: "
                  f"{min(torch_best) / ref['best']:.2f}x faster")
        if "three_products" in rows:
            print(f"xentc / the three products alone: "
                  f"{ref['best'] / rows['three_products']['best']:.3f}")
    out["lm"] = rows


def _memory_section(shape, repeats, out):
    r = _run_worker("memory", dict(shape=shape, repeats=repeats))
    n, d, c = shape
    print(f"\n### Memory: N={n}, D={d}, C={c} float32, forward + gradients (xentc)\n")
    if "error" in r:
        print(f"failed: {r['error']}")
        return
    print(f"logits would be {r['logits_bytes'] / 2**20:.0f} MiB; peak above inputs and "
          f"outputs: RSS {_mb(r['rss_extra'])} MiB, tracemalloc {_mb(r['traced'])} MiB "
          f"(bound of the design {_mb(r['bound'])} MiB); time best "
          f"{min(r['times']) * 1e3:.0f} ms")
    out["memory"] = r


def _fit_section(shape, blas_threads, out):
    if _find_example() is None:
        print("\n### Softmax regression fit: skipped (examples/softmax_regression.py not "
              "found: run from the repository)")
        return
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print("\n### Softmax regression fit: skipped (scikit-learn not installed)")
        return
    n, d, c = shape
    sk = _run_worker("fit", dict(impl="sklearn", shape=shape))
    xs = [_run_worker("fit", dict(impl="xentc", shape=shape, blas_threads=bt))
          for bt in blas_threads]
    print(f"\n### Softmax regression fit (L-BFGS-B, tol 1e-4): N={n}, D={d}, C={c} "
          "float64\n")
    if "error" in sk:
        print(f"scikit-learn failed: {sk['error']}")
        return
    print("| fit | time (s) | iterations | speed-up | coef max rel. diff | "
          "held-out predictions equal | accuracy | peak RSS extra (MiB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| scikit-learn LogisticRegression().fit | {sk['time']:.2f} | {sk['nit']} | | | "
          f"| {sk['accuracy']:.4f} | {_mb(sk['rss_extra'])} |")
    coef_sk = np.array(sk["coef"])
    for bt, r in zip(blas_threads, xs):
        label = ("xentc + L-BFGS-B, BLAS pinned to 1 thread" if bt == 1 else
                 "xentc + L-BFGS-B, BLAS threads as they are" if not bt else
                 f"xentc + L-BFGS-B, BLAS {bt} threads")
        if "error" in r:
            print(f"| {label} | failed: {r['error']} | | | | | | |")
            continue
        diff = float(np.max(np.abs(np.array(r["coef"]) - coef_sk)) / np.max(np.abs(coef_sk)))
        same = r["pred"] == sk["pred"]
        print(f"| {label} | {r['time']:.2f} | {r['nit']} | {sk['time'] / r['time']:.1f}x | "
              f"{diff:.1e} | {same} | {r['accuracy']:.4f} | {_mb(r['rss_extra'])} |")
        r["coef_rel_diff"], r["same_predictions"] = diff, same
    for r in [sk] + xs:
        for key in ("coef", "intercept", "pred"):
            r.pop(key, None)
    out["fit"] = dict(sklearn=sk, xentc=dict(zip(map(str, blas_threads), xs)))


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m xentc bench --linear",
        description="Fused linear + cross-entropy and the softmax regression fit, "
                    "against NumPy, torch and scikit-learn.")
    ap.add_argument("--quick", action="store_true", help="small shapes, one round")
    ap.add_argument("--section", action="append", choices=("lm", "memory", "fit"),
                    help="run only these sections (repeatable; default all)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed calls per process (default 3, quick 2)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="processes per implementation in the lm section (default 2)")
    ap.add_argument("--fit-blas-threads", default="1,0",
                    help="BLAS threads for the xentc fits, comma-separated; 0 leaves them "
                         "as they are (default '1,0': pinned to 1, then as they are)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        section, spec = args.worker[0], json.loads(args.worker[1])
        result = {"lm": _worker_lm, "memory": _worker_memory, "fit": _worker_fit}[section](spec)
        print(json.dumps(result))
        return 0

    sections = args.section or ["lm", "memory", "fit"]
    repeats = args.repeats or (2 if args.quick else 3)
    rounds = args.rounds or (1 if args.quick else 2)
    import xentc
    threads = xentc.show_config(print_out=False).get("default_threads") or os.cpu_count()
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    env = _environment(threads)
    print("## xentc bench --linear")
    print(f"\n{platform.processor() or platform.machine()}, {env['cpus']} CPUs, "
          f"{threads} threads; numpy {env['numpy']}, torch {env['torch']}, "
          f"scikit-learn {env['sklearn']}; BLAS {', '.join(env.get('blas', []))}; "
          f"load average at start {env['load'][0]:.2f}")
    out = dict(environment=env)
    if "lm" in sections:
        _lm_section(LM_QUICK if args.quick else LM_SHAPE, repeats, rounds, threads,
                    have_torch, out)
    if "memory" in sections:
        # one timed call: each is ~1 TFLOP here
        _memory_section(MEM_QUICK if args.quick else MEM_SHAPE, 1, out)
    if "fit" in sections:
        blas = [int(v) for v in args.fit_blas_threads.split(",") if v.strip()]
        _fit_section(FIT_QUICK if args.quick else FIT_SHAPE, blas, out)
    out["environment"]["load_at_end"] = list(os.getloadavg())
    print(f"\nload average at end {out['environment']['load_at_end'][0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
