"""
The cache of dropped output arrays (xentc._outputs, set_output_cache): a
block is reused only once no array or view uses it, within its bounds, and
results do not depend on it.
"""
import gc
import threading

import numpy as np
import pytest

import xentc
from xentc import _outputs

BIG = (1024, 2048)          # 8 MiB of float32: cached (>= 4 MiB)


@pytest.fixture(autouse=True)
def fresh_cache():
    previous = xentc.set_output_cache(0)
    xentc.set_output_cache(256 << 20)
    yield
    xentc.set_output_cache(previous)


def _span(a):
    lo = a.__array_interface__["data"][0]
    return lo, lo + a.nbytes


def _overlap(a, b):
    (a0, a1), (b0, b1) = _span(a), _span(b)
    return a0 < b1 and b0 < a1


def test_a_block_comes_back_only_when_no_view_uses_it():
    a = _outputs.empty(BIG, np.float32)
    view = a[::3].T
    del a
    gc.collect()
    b = _outputs.empty(BIG, np.float32)
    assert not _overlap(b, view)          # the view still holds a's block
    base = _span(view)[0]
    del view
    gc.collect()
    c = _outputs.empty(BIG, np.float32)
    assert _span(c)[0] <= base < _span(c)[1]     # now reused
    m = memoryview(c)                            # a buffer export holds it too
    del c
    gc.collect()
    d = _outputs.empty(BIG, np.float32)
    assert not _overlap(d, np.asarray(m))
    assert b.flags.writeable and b.flags.c_contiguous and b.flags.aligned


def test_live_arrays_never_share_memory():
    rng = np.random.default_rng(0)
    live = []
    for step in range(60):
        if live and rng.random() < 0.4:
            live.pop(rng.integers(len(live)))
        shape = BIG if rng.random() < 0.7 else (512, 4096, 2)
        a = _outputs.empty(shape, np.float32)
        a.fill(step)
        live.append((a, step))
        gc.collect() if step % 7 == 0 else None
        for i, (x, _) in enumerate(live):
            for y, _ in live[i + 1:]:
                assert not _overlap(x, y)
    for a, step in live:
        assert (a == step).all()


def test_bounds():
    xentc.set_output_cache(10 << 20)      # room for one 8 MiB block
    arrays = [_outputs.empty(BIG, np.float32) for _ in range(3)]
    del arrays
    gc.collect()
    assert _outputs._held() == 8 << 20
    xentc.set_output_cache(256 << 20)
    arrays = [_outputs.empty(BIG, np.float32) for _ in range(4)]
    del arrays
    gc.collect()
    assert _outputs._held() == 2 * (8 << 20)      # at most two of a size
    # a new size makes room by dropping the least recently given back
    other = (1024, 2560)                          # 10 MiB
    xentc.set_output_cache(20 << 20)
    assert _outputs._held() <= 20 << 20
    b = _outputs.empty(other, np.float32)
    del b
    gc.collect()
    assert len(_outputs._free[10 << 20]) == 1 and _outputs._held() <= 20 << 20
    xentc.set_output_cache(256 << 20)
    assert xentc.set_output_cache(0) == 256 << 20
    assert _outputs._held() == 0
    a = _outputs.empty(BIG, np.float32)
    assert a.flags.owndata                      # off: plain np.empty
    small = (10, 10)
    xentc.set_output_cache(256 << 20)
    assert _outputs.empty(small, np.float64).flags.owndata   # small: plain np.empty
    for bad, exc in [(-1, ValueError), (1.5, TypeError), (True, TypeError), ("1", TypeError)]:
        with pytest.raises(exc, match="max_bytes"):
            xentc.set_output_cache(bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_do_not_depend_on_the_cache(dtype):
    # reused blocks hold an earlier output (NaNs here): every element of a
    # gradient or softmax is written, ignored rows included
    rng = np.random.default_rng(1)
    n, c = 2048, 1000
    x = rng.standard_normal((n, c)).astype(dtype)
    y = rng.integers(0, c, n)
    y[::7] = -100
    xentc.set_output_cache(0)
    want_g = xentc.cross_entropy_and_grad(x, y)[1]
    want_s = xentc.softmax(x, axis=-1)
    want_ls = xentc.log_softmax(x, axis=1)
    xentc.set_output_cache(256 << 20)
    for _ in range(3):
        junk = _outputs.empty(x.shape, dtype)
        junk.fill(np.nan)
        del junk
        g = xentc.cross_entropy_and_grad(x, y)[1]
        assert not g.flags.owndata and g.tobytes() == want_g.tobytes()
        del g
        assert xentc.softmax(x, axis=-1).tobytes() == want_s.tobytes()
        assert xentc.log_softmax(x, axis=1).tobytes() == want_ls.tobytes()


def test_default_bound():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "import xentc; print(xentc.set_output_cache(0))"],
                         capture_output=True, text=True, check=True).stdout
    assert int(out) == 64 << 20


def test_threads_share_the_cache_safely():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1024, 1100)).astype(np.float32)
    y = rng.integers(0, 1100, 1024)
    want = xentc.cross_entropy_and_grad(x, y, workers=1)[1]
    errors = []

    def work():
        try:
            kept = []
            for i in range(12):
                g = xentc.cross_entropy_and_grad(x, y, workers=1)[1]
                kept.append(g)
                if len(kept) > 2:
                    kept.pop(0)
                for k in kept:
                    assert k.tobytes() == want.tobytes()
        except AssertionError as exc:      # pragma: no cover - the failure
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
