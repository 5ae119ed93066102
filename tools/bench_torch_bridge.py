"""Issue 14's speed figures, measured side by side in one process:

* forward+backward through ``xentc.torch.cross_entropy`` against
  ``torch.nn.functional.cross_entropy``, float32, on 4096x1000, 2048x32000
  and 16x128256;
* the cross-entropy forward of bfloat16 and float16 logits (NumPy arrays of
  ml_dtypes.bfloat16 / numpy.float16, and torch tensors through the bridge)
  against xentc's float32 on the same values and torch's own 16-bit
  ``F.cross_entropy``, on 2048x32000 and 16x128256.

Both libraries run in this one process (the bridge is torch), each timed
as the best of several rounds after a warm-up, with `--threads` threads for
both (default 2). Usage: ``python tools/bench_torch_bridge.py [--threads N]``.
Needs torch and ml_dtypes.
"""
import argparse
import time

import ml_dtypes
import numpy as np
import torch
import torch.nn.functional as F

import xentc
import xentc.torch as xt

SHAPES_GRAD = ((4096, 1000), (2048, 32000), (16, 128256))
SHAPES_16 = ((2048, 32000), (16, 128256))


def best(fn, budget=1.0, rounds=5):
    """Best seconds per call: rounds of as many calls as fit budget / rounds."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-6)
    per_round = max(1, int(budget / rounds / once))
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(per_round):
            fn()
        times.append((time.perf_counter() - t0) / per_round)
    return min(times)


def fwd_bwd(ce, x, y):
    def run():
        xx = x.detach().requires_grad_()
        ce(xx, y).backward()
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__}, xentc {xentc.__version__}, {args.threads} threads")
    print("\nforward+backward, float32 (ms)")
    print("| shape | xentc.torch | torch | speed-up |\n| --- | ---: | ---: | ---: |")
    for n, c in SHAPES_GRAD:
        x = torch.from_numpy((rng.standard_normal((n, c)) * 3).astype(np.float32))
        y = torch.from_numpy(rng.integers(0, c, n))
        tx = best(fwd_bwd(xt.cross_entropy, x, y))
        tt = best(fwd_bwd(F.cross_entropy, x, y))
        print(f"| {n}x{c} | {tx * 1e3:.3f} | {tt * 1e3:.3f} | {tt / tx:.2f}x |")
    print("\ncross_entropy forward, 16-bit logits (ms)")
    print("| shape | dtype | xentc float32 | xentc (NumPy) | xentc.torch | torch | "
          "vs xentc float32 | vs torch |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n, c in SHAPES_16:
        x32 = (rng.standard_normal((n, c)) * 3).astype(np.float32)
        y = rng.integers(0, c, n)
        yt = torch.from_numpy(y)
        t32 = best(lambda: xentc.cross_entropy(x32, y, workers=args.threads))
        for name, npdt, tdt in (("bfloat16", ml_dtypes.bfloat16, torch.bfloat16),
                                ("float16", np.float16, torch.float16)):
            xa = x32.astype(npdt)
            xtn = torch.from_numpy(x32).to(tdt)
            ta = best(lambda: xentc.cross_entropy(xa, y, workers=args.threads))
            tb = best(lambda: xt.cross_entropy(xtn, yt))
            tt = best(lambda: F.cross_entropy(xtn, yt))
            print(f"| {n}x{c} | {name} | {t32 * 1e3:.3f} | {ta * 1e3:.3f} | {tb * 1e3:.3f} | "
                  f"{tt * 1e3:.3f} | {t32 / ta:.2f}x | {tt / tb:.2f}x |")


if __name__ == "__main__":
    main()
