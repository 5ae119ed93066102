"""
Memory stays flat over repeated calls of every function, on its valid paths
(short rows, long chunked rows, probability targets, soft cap, out=, in
place, gradients) and its error paths (exceptions raised after the C code
allocated, or before).

Three measures per function over 2000 calls, after a warm-up: the bytes in
use in malloc's heap (glibc's mallinfo2; exact for C-level leaks such as a
malloc'ed partials buffer not freed), the resident set size (RSS,
/proc/self/statm; noisier) and tracemalloc's traced memory (Python objects
and NumPy arrays, which NumPy reports to tracemalloc). The limits allow for
allocator noise, but a leak of 1 KB per call exceeds them;
test_detects_a_planted_leak shows it. tools/leak_check.py runs the same
calls 10^5 times per function.
"""
import ctypes
import ctypes.util
import gc
import os
import resource
import tracemalloc

import numpy as np
import pytest

import xentc

RNG = np.random.default_rng(0)
LONG = RNG.standard_normal((3, 70001)).astype(np.float32)        # 2 chunks per row
SHORT = RNG.standard_normal((40000, 10))                          # short-row kernel, threaded
MEDIUM = RNG.standard_normal((64, 500)).astype(np.float32)
Y_LONG = np.array([5, -100, 70000])
Y_SHORT = RNG.integers(0, 10, 40000)
Y_MEDIUM = RNG.integers(0, 500, 64)
Q_MEDIUM = RNG.random(MEDIUM.shape).astype(np.float32)
Q_MEDIUM /= Q_MEDIUM.sum(axis=1, keepdims=True)
Q_LONG = np.full(LONG.shape, 1 / LONG.shape[1], np.float32)
W10 = RNG.uniform(0.5, 2.0, 10)
OUT_LONG = np.empty_like(LONG)
OUT_SHORT = np.empty_like(SHORT)
BIG = np.broadcast_to(np.float32(1), (2**40,))                   # 4 TiB if copied


def _raises(call, *exc):
    def run():
        try:
            call()
        except exc:
            return
        raise AssertionError("expected an exception")
    return run


# function -> [(label, call)]; every call allocates in the C layer or the
# Python layer and, on error paths, raises after doing so.
CALLS = {
    "logsumexp": [
        ("long rows", lambda: xentc.logsumexp(LONG, axis=1, workers=2)),
        ("axis None", lambda: xentc.logsumexp(LONG)),
        ("short rows", lambda: xentc.logsumexp(SHORT, axis=1, return_sign=True)),
        ("weighted", lambda: xentc.logsumexp(MEDIUM, axis=0, b=-0.5, return_sign=True)),
        ("complex", lambda: xentc.logsumexp(MEDIUM[:4].astype(complex), axis=1)),
        ("bad axis", _raises(lambda: xentc.logsumexp(LONG, axis=3), ValueError)),
        ("bad b", _raises(lambda: xentc.logsumexp(LONG, b=np.ones(3)), ValueError)),
        ("no memory", _raises(lambda: xentc.logsumexp(BIG), MemoryError)),
    ],
    "softmax": [
        ("long rows", lambda: xentc.softmax(LONG, axis=1)),
        ("out=", lambda: xentc.softmax(SHORT, axis=1, out=OUT_SHORT)),
        ("axis 0", lambda: xentc.softmax(MEDIUM, axis=0)),
        ("bad out", _raises(lambda: xentc.softmax(LONG, axis=1, out=OUT_SHORT), ValueError)),
        ("bool", _raises(lambda: xentc.softmax(np.ones(3, bool)), TypeError)),
        ("no memory", _raises(lambda: xentc.softmax(BIG), MemoryError)),
    ],
    "log_softmax": [
        ("long rows, out=", lambda: xentc.log_softmax(LONG, axis=1, out=OUT_LONG)),
        ("short rows", lambda: xentc.log_softmax(SHORT, axis=-1)),
        ("in place", lambda: xentc.log_softmax(OUT_SHORT, axis=1, out=OUT_SHORT)),
        ("workers 0", _raises(lambda: xentc.log_softmax(LONG, workers=0), ValueError)),
    ],
    "cross_entropy": [
        ("long rows", lambda: xentc.cross_entropy(LONG, Y_LONG, label_smoothing=0.1)),
        ("short rows", lambda: xentc.cross_entropy(SHORT, Y_SHORT, weight=W10)),
        ("softcap", lambda: xentc.cross_entropy(MEDIUM, Y_MEDIUM, softcap=3.0, z_loss=1e-3)),
        ("prob target", lambda: xentc.cross_entropy(MEDIUM, Q_MEDIUM, reduction="none")),
        ("target out of range", _raises(
            lambda: xentc.cross_entropy(SHORT, np.full(40000, 10)), IndexError)),
        ("bad weight", _raises(
            lambda: xentc.cross_entropy(SHORT, Y_SHORT, weight=W10 * np.nan), ValueError)),
        ("no memory", _raises(lambda: xentc.cross_entropy(BIG.reshape(2**20, 2**20),
                                                          np.zeros(2**20, np.int64)),
                              MemoryError)),
    ],
    "cross_entropy_and_grad": [
        ("long rows", lambda: xentc.cross_entropy_and_grad(LONG, Y_LONG, z_loss=1e-3)),
        ("long prob", lambda: xentc.cross_entropy_and_grad(LONG, Q_LONG, softcap=4.0)),
        ("short rows, grad_out", lambda: xentc.cross_entropy_and_grad(
            SHORT, Y_SHORT, grad_out=OUT_SHORT)),
        ("medium prob", lambda: xentc.cross_entropy_and_grad(MEDIUM, Q_MEDIUM)),
        ("bad grad_out", _raises(lambda: xentc.cross_entropy_and_grad(
            LONG, Y_LONG, grad_out=OUT_SHORT), ValueError)),
        ("target out of range", _raises(lambda: xentc.cross_entropy_and_grad(
            LONG, np.array([0, 1, 70001])), IndexError)),
    ],
    "nll_loss": [
        ("short rows", lambda: xentc.nll_loss(SHORT, Y_SHORT, reduction="sum")),
        ("weights", lambda: xentc.nll_loss(MEDIUM, Y_MEDIUM, weight=np.ones(500))),
        ("float target", _raises(lambda: xentc.nll_loss(MEDIUM, Q_MEDIUM), TypeError)),
    ],
    "log_loss": [
        ("index target", lambda: xentc.log_loss(Q_MEDIUM, Y_MEDIUM)),
        ("prob target", lambda: xentc.log_loss(Q_MEDIUM, Q_MEDIUM, reduction="none")),
        ("not probabilities", _raises(lambda: xentc.log_loss(MEDIUM, Y_MEDIUM), ValueError)),
    ],
    "kl_div": [
        ("medium", lambda: xentc.kl_div(MEDIUM, Q_MEDIUM)),
        ("long", lambda: xentc.kl_div(LONG, Q_LONG, reduction="none")),
        ("bad shape", _raises(lambda: xentc.kl_div(MEDIUM, Q_LONG), ValueError)),
    ],
}


# ------------------------------------------------------------- measuring
_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if os.name == "posix" else None


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]


_MALLINFO2 = getattr(_LIBC, "mallinfo2", None)
if _MALLINFO2 is not None:
    _MALLINFO2.restype = _Mallinfo2


def heap_bytes():
    """Bytes malloc has handed out and not got back, all arenas (glibc >=
    2.33), or None. Exact for C-level leaks, unlike RSS."""
    if _MALLINFO2 is None:
        return None
    info = _MALLINFO2()
    return info.uordblks + info.hblkhd


def rss_bytes():
    """Resident set size now (Linux), or the peak (elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if os.uname().sysname == "Darwin" else peak * 1024


def traced_bytes():
    """tracemalloc's traced memory, leaving out NumPy's record of a failed
    allocation: NumPy tracks the 4 TiB request of a MemoryError at address 0
    and never untracks it (a NumPy quirk, not memory in use)."""
    snapshot = tracemalloc.take_snapshot()
    return sum(t.size for t in snapshot.traces if t.size < 1 << 40)


def settle():
    """Collect garbage and give freed heap back to the OS (glibc), so that
    RSS shows memory still in use rather than the allocator's caches."""
    gc.collect()
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


class Growth:
    """Growth of the three measures, in bytes, over `ncalls` calls cycling
    through `calls`, after a warm-up."""

    def __init__(self, calls, ncalls, warmup=50, trace=True):
        rounds = -(-ncalls // len(calls))
        self.ncalls = rounds * len(calls)
        for _ in range(warmup):
            for call in calls:
                call()
        if trace:
            tracemalloc.start()
        try:
            settle()
            rss0, heap0 = rss_bytes(), heap_bytes()
            traced0 = traced_bytes() if trace else 0
            for _ in range(rounds):
                for call in calls:
                    call()
            settle()
            self.rss = rss_bytes() - rss0
            self.heap = None if heap0 is None else heap_bytes() - heap0
            self.traced = traced_bytes() - traced0 if trace else 0
        finally:
            if trace:
                tracemalloc.stop()

    def __str__(self):
        heap = "n/a" if self.heap is None else f"{self.heap / 1024:.0f} KiB"
        return (f"over {self.ncalls} calls: heap {heap}, RSS {self.rss / 1024:.0f} KiB, "
                f"traced {self.traced / 1024:.0f} KiB")


NCALLS = 2000
# A leak of 1 KB a call is 2 MB here: over every limit. RSS is the noisiest
# (malloc arenas of the OpenMP threads, page granularity).
HEAP_LIMIT = 256 << 10
RSS_LIMIT = 4 << 20
TRACED_LIMIT = 128 << 10


# AddressSanitizer replaces malloc and keeps freed memory in quarantine:
# none of the three measures means anything under it (tools/asan_test.sh).
NOT_UNDER_ASAN = pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                                    reason="memory measures are meaningless under ASan")


@NOT_UNDER_ASAN
@pytest.mark.parametrize("func", list(CALLS))
def test_memory_is_flat(func):
    g = Growth([call for _, call in CALLS[func]], NCALLS)
    assert g.heap is None or g.heap < HEAP_LIMIT, f"{func}: {g}"
    assert g.rss < RSS_LIMIT, f"{func}: {g}"
    assert g.traced < TRACED_LIMIT, f"{func}: {g}"


@NOT_UNDER_ASAN
def test_detects_a_planted_leak():
    """A C-level leak of 1 KB a call (malloc'ed, touched, never freed) and a
    Python-level one (arrays kept) are over the limits."""
    if heap_bytes() is None:
        pytest.skip("needs glibc's mallinfo2")
    _LIBC.malloc.restype = ctypes.c_void_p

    def leak_c():
        ctypes.memset(_LIBC.malloc(1024), 1, 1024)

    g = Growth([leak_c, CALLS["logsumexp"][0][1]], NCALLS, warmup=5)
    assert g.heap >= HEAP_LIMIT, str(g)
    kept = []
    g = Growth([lambda: kept.append(np.ones(16)), CALLS["softmax"][1][1]], NCALLS, warmup=5)
    assert g.traced >= TRACED_LIMIT, str(g)
