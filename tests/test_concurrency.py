"""
Concurrent use: many Python threads calling every function at once (the
kernels run without the GIL, each call with its own OpenMP team) give
exactly the single-threaded results; and Ctrl-C during a long call ends the
program with KeyboardInterrupt, not a crash, leaving the module usable when
the interrupt is caught.
"""
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import xentc

RNG = np.random.default_rng(42)
LONG = (RNG.standard_normal((3, 70001)) * 3).astype(np.float32)   # chunked rows
SHORT = RNG.standard_normal((40000, 12))                           # short-row kernel
MEDIUM = (RNG.standard_normal((300, 400)) * 2).astype(np.float32)
SPECIAL = MEDIUM.copy()
SPECIAL[::7, ::5] = -np.inf
SPECIAL[3, 3] = np.nan
Y_LONG = np.array([1, 70000, -100])
Y_SHORT = RNG.integers(0, 12, 40000)
Y_MEDIUM = RNG.integers(0, 400, 300)
Q_MEDIUM = RNG.random(MEDIUM.shape).astype(np.float32)
Q_MEDIUM /= Q_MEDIUM.sum(axis=1, keepdims=True)
W = RNG.uniform(0.5, 2, 400)


def _in_place_softmax(x, workers):
    y = x.copy()
    xentc.log_softmax(y, axis=1, out=y, workers=workers)
    return y


def _in_place_grad(x, y, workers):
    g = x.copy()
    loss, _ = xentc.cross_entropy_and_grad(g, y, grad_out=g, label_smoothing=0.1,
                                           workers=workers)
    return loss, g


# name -> f(workers); functions without `workers` ignore it
TASKS = {
    "logsumexp-long": lambda w: xentc.logsumexp(LONG, axis=1, workers=w),
    "logsumexp-all": lambda w: xentc.logsumexp(LONG, workers=w),
    "logsumexp-short-sign": lambda w: xentc.logsumexp(SHORT, axis=1, return_sign=True,
                                                      workers=w),
    "logsumexp-weighted": lambda w: xentc.logsumexp(MEDIUM, axis=0, b=W[:300, None] - 1,
                                                    return_sign=True, workers=w),
    "softmax-long": lambda w: xentc.softmax(LONG, axis=1, workers=w),
    "softmax-special": lambda w: xentc.softmax(SPECIAL, axis=1, workers=w),
    "log_softmax-short": lambda w: xentc.log_softmax(SHORT, axis=1, workers=w),
    "log_softmax-in-place": lambda w: _in_place_softmax(MEDIUM, w),
    "ce-long": lambda w: xentc.cross_entropy(LONG, Y_LONG, z_loss=1e-3, workers=w),
    "ce-short-weights": lambda w: xentc.cross_entropy(SHORT, Y_SHORT, reduction="none",
                                                      workers=w),
    "ce-softcap": lambda w: xentc.cross_entropy(MEDIUM, Y_MEDIUM, softcap=2.0, weight=W,
                                                workers=w),
    "grad-long": lambda w: xentc.cross_entropy_and_grad(LONG, Y_LONG, workers=w),
    "grad-prob": lambda w: xentc.cross_entropy_and_grad(MEDIUM, Q_MEDIUM, workers=w),
    "grad-short": lambda w: xentc.cross_entropy_and_grad(SHORT, Y_SHORT, workers=w),
    "grad-in-place": lambda w: _in_place_grad(MEDIUM, Y_MEDIUM, w),
    "nll_loss": lambda w: xentc.nll_loss(SHORT, Y_SHORT, reduction="none"),
    "log_loss": lambda w: xentc.log_loss(Q_MEDIUM, Y_MEDIUM),
    "kl_div": lambda w: xentc.kl_div(MEDIUM, Q_MEDIUM, reduction="none"),
}
WORKERS = [None, 1, 2, 3, -1, 8]


def as_bytes(result):
    items = result if isinstance(result, tuple) else (result,)
    return tuple((np.asarray(r).dtype.str, np.shape(r), np.asarray(r).tobytes()) for r in items)


def test_threads_give_the_single_threaded_results():
    expected = {name: as_bytes(task(1)) for name, task in TASKS.items()}
    jobs = [(name, w) for name in TASKS for w in WORKERS] * 3
    random.Random(0).shuffle(jobs)
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [(name, w, pool.submit(TASKS[name], w)) for name, w in jobs]
        for name, w, fut in futures:
            assert as_bytes(fut.result(timeout=300)) == expected[name], (
                f"{name} with workers={w} in a thread differs from the serial result")


def test_threads_with_errors_mixed_in():
    """Exceptions raised in some threads leave the others' results intact."""
    def bad(i):
        try:
            xentc.cross_entropy(SHORT, np.full(40000, 12 + i))
        except IndexError as exc:
            return str(exc)
        return "no error"

    expected = as_bytes(TASKS["grad-short"](2))
    with ThreadPoolExecutor(max_workers=8) as pool:
        goods = [pool.submit(TASKS["grad-short"], 2) for _ in range(8)]
        bads = [pool.submit(bad, i) for i in range(8)]
        for fut in goods:
            assert as_bytes(fut.result(timeout=300)) == expected
        for i, fut in enumerate(bads):
            assert f"Target {12 + i} is out of bounds" in fut.result(timeout=300)


# ------------------------------------------------------------------ Ctrl-C
CHILD = """
    import signal, sys, time
    import numpy as np
    import xentc

    # Python leaves SIGINT alone when it starts ignored (a background job of
    # a non-interactive shell, nohup): install the usual handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    x = np.random.default_rng(0).standard_normal((64, 400_000)).astype(np.float32)
    y = np.zeros(64, np.int64)
    kind = sys.argv[1]
    call = {
        "logsumexp": lambda: xentc.logsumexp(x, axis=1, workers=2),
        "softmax": lambda: xentc.softmax(x, axis=1, out=out, workers=2),
        "grad": lambda: xentc.cross_entropy_and_grad(x, y, grad_out=out, workers=2),
    }[kind]
    out = np.empty_like(x)
    want = xentc.logsumexp(x[:2], axis=1)
    print("READY", flush=True)
    try:
        t_end = time.time() + 120
        while time.time() < t_end:
            call()
    except KeyboardInterrupt:
        # interrupted between two calls: the module still works
        assert np.array_equal(xentc.logsumexp(x[:2], axis=1), want)
        print("STILL OK", flush=True)
        raise
    print("NOT INTERRUPTED", flush=True)
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGINT to a child process")
@pytest.mark.parametrize("kind", ["logsumexp", "softmax", "grad"])
def test_ctrl_c_during_a_long_call(kind):
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD), kind],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(1.5)  # well inside the loop of calls (each ~50 ms)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Python ends an uncaught KeyboardInterrupt by killing itself with SIGINT
    # (exit status -2); a crash would be -11 (SIGSEGV) or -6 (SIGABRT).
    assert proc.returncode in (-signal.SIGINT, 1, 130), (proc.returncode, err[-2000:])
    assert "KeyboardInterrupt" in err, err[-2000:]
    assert "STILL OK" in out, (out, err[-2000:])
