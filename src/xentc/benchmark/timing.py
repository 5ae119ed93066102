"""Timing one callable, and several side by side on the same case."""
import gc
import time

import numpy as np

from .registry import make_inputs

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


def result_sample(result, size=1 << 16):
    """Small float64 copies of a result's parts (loss, first values of arrays)."""
    parts = result if isinstance(result, tuple) else (result,)
    out = []
    for part in parts:
        if hasattr(part, "detach"):  # torch tensor
            part = part.detach().numpy()
        out.append(np.asarray(part, dtype=np.float64).reshape(-1)[:size].copy())
    return out


def agrees_with(sample, reference, dtype):
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
        sample = result_sample(result)
        del result  # large outputs: free before the next implementation runs
        if reference is None:
            reference = sample
            if reference_out is not None:
                reference_out.append(sample)
        agrees[impl.key] = agrees_with(sample, reference, x.dtype)
        fns[impl.key] = fn
    best = dict.fromkeys(fns, float("inf"))
    with _NoGC():
        for k in range(max(rounds for rounds, _ in plans.values())):
            for key, fn in fns.items():
                rounds, number = plans[key]
                if k < rounds:
                    best[key] = min(best[key], _round(fn, number))
    return best, agrees


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
