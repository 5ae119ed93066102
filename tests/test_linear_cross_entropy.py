"""
xentc.linear_cross_entropy(_and_grad): against cross_entropy_and_grad on the
explicit logits, across blocks; determinism over workers and BLAS threads;
out=, input_grad=False, layouts, N-d input, the memory bound, bad input;
and, when torch is installed, against F.linear_cross_entropy live.
"""
import re
import tracemalloc

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import xentc
from xentc import _blas_threads, _core, _linear

OPTIONS = {
    "plain": {},
    "weight-smoothing": dict(weight=True, label_smoothing=0.2),
    "zloss-softcap": dict(z_loss=1e-2, softcap=3.0),
    "sample_weight-sum": dict(sample_weight=True, reduction="sum"),
    "everything-none": dict(weight=True, sample_weight=True, label_smoothing=0.1,
                            z_loss=1e-3, softcap=4.0, reduction="none"),
}


def make(rng, n, d, c, dtype, bias=True, ignored=True):
    x = rng.standard_normal((n, d)).astype(dtype)
    w = (rng.standard_normal((c, d)) / np.sqrt(d)).astype(dtype)
    b = rng.standard_normal(c).astype(dtype) if bias else None
    y = rng.integers(0, c, n)
    if ignored and n > 2:
        y[:: 5] = -100
    return x, w, b, y


def resolve(opts, rng, n, c, dtype):
    kw = dict(opts)
    if kw.pop("weight", False):
        kw["weight"] = rng.uniform(0.2, 2.0, c)
    if kw.pop("sample_weight", False):
        kw["sample_weight"] = rng.uniform(0.0, 2.0, n)
    return kw


def explicit(x, w, b, y, **kw):
    """The composition the fused functions equal: logits, then
    cross_entropy_and_grad, then the chain rule, all in float64."""
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    logits = x64 @ w64.T + (0 if b is None else b.astype(np.float64))
    target = y.astype(np.float64) if y.dtype.kind == "f" else y
    loss, g = xentc.cross_entropy_and_grad(logits, target, **kw)
    return loss, g @ w64, g.T @ x64, g.sum(0)


def rel(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.fixture(params=["sequential", "sequential_blas", "sequential_numpy", "lanes",
                        "lanes_numpy"])
def small_blocks(monkeypatch, request):
    """Blocks of at most 7 rows (for C=101 float64) and 3-class accumulation
    tiles, one after the other or in lanes (in C with SciPy's BLAS, the
    products split into fixed parts or, _blas, threaded by BLAS; or by
    NumPy's matmul as without SciPy): every path of the block loop on
    shapes that divide nothing (101 classes: parts of 64 and 37, and
    empty ones)."""
    monkeypatch.setattr(_linear, "_BUFFER_BYTES", 101 * 8 * 7)
    monkeypatch.setattr(_linear, "_MIN_ROWS", 1)
    monkeypatch.setattr(_linear, "_ACC_BYTES", 3 * 13 * 8)
    if request.param.endswith("_numpy"):
        monkeypatch.setattr(_linear, "_GEMM", False)
    if request.param.endswith("_blas"):
        monkeypatch.setattr(_linear, "_SPLIT", False)
    lanes = request.param.startswith("lanes")
    monkeypatch.setattr(_linear, "_CACHE_BYTES", (1 << 30) if lanes else 0)
    monkeypatch.setattr(_linear, "_LANE_BYTES", (1 << 30) if lanes else 0)
    assert _linear._uses_lanes(53, 101, 13, 8) == lanes


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opt", list(OPTIONS))
def test_matches_explicit_composition(dtype, opt, small_blocks):
    rng = np.random.default_rng(1)
    n, d, c = 53, 13, 101
    x, w, b, y = make(rng, n, d, c, dtype)
    kw = resolve(OPTIONS[opt], rng, n, c, dtype)
    want = explicit(x, w, b, y, **kw)
    loss, gx, gw, gb = xentc.linear_cross_entropy_and_grad(x, w, y, linear_bias=b, **kw)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    for got, ref, name in zip((loss, gx, gw, gb), want, ("loss", "gx", "gw", "gb")):
        assert rel(got, ref) < tol, name
    assert rel(xentc.linear_cross_entropy(x, w, y, linear_bias=b, **kw), want[0]) < tol


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_probability_targets(dtype, small_blocks):
    rng = np.random.default_rng(2)
    n, d, c = 29, 13, 101
    x, w, b, _ = make(rng, n, d, c, dtype)
    q = rng.random((n, c)) ** 3
    q /= q.sum(1, keepdims=True)
    # float64 targets for float32 input, and a non-contiguous view: both
    # converted block by block
    q_view = np.asfortranarray(q)
    want = explicit(x, w, b, q, label_smoothing=0.1)
    got = xentc.linear_cross_entropy_and_grad(x, w, q_view, linear_bias=b,
                                              label_smoothing=0.1)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    for g, ref in zip(got, want):
        assert rel(g, ref) < tol
    with pytest.raises(ValueError, match=r"ignore_index=3.*probability targets"):
        xentc.linear_cross_entropy(x, w, q, ignore_index=3)


def test_probability_targets_in_c(small_blocks):
    # probabilities C-contiguous in the input's dtype go to linear_blocks
    # as they are (other layouts are converted block by block, above)
    rng = np.random.default_rng(12)
    n, d, c = 31, 13, 101
    x, w, b, _ = make(rng, n, d, c, np.float64)
    q = rng.random((n, c)) ** 3
    q /= q.sum(1, keepdims=True)
    want = explicit(x, w, b, q, label_smoothing=0.1, reduction="sum")
    got = xentc.linear_cross_entropy_and_grad(x, w, q, linear_bias=b, label_smoothing=0.1,
                                              reduction="sum")
    for g, ref in zip(got, want):
        assert rel(g, ref) < 1e-13


def test_lanes_run_in_c_by_small_products(monkeypatch):
    # The logistic-regression shape (C * D = 3200): lanes through
    # _core.linear_blocks with SciPy's BLAS, blocks of at most
    # _SMALL_GEMM // (C * D) rows; the same values as the NumPy lanes
    assert _linear._gemm_ready(), "scipy.linalg.cython_blas's ?gemm not taken"
    calls = []
    real = _linear._core.linear_blocks

    def spy(*args):
        calls.append(args[10])           # rows
        return real(*args)

    rng = np.random.default_rng(13)
    n, d, c = 6000, 64, 50
    x, w, b, y = make(rng, n, d, c, np.float64)
    w = np.asfortranarray(w)
    monkeypatch.setattr(_linear._core, "linear_blocks", spy)
    got = xentc.linear_cross_entropy_and_grad(x, w, y, linear_bias=b, input_grad=False)
    assert calls and set(calls) == {300}          # 6000 rows in 20 blocks of <= 312
    assert got[1] is None
    monkeypatch.setattr(_linear, "_GEMM", False)
    calls.clear()
    numpy_lanes = xentc.linear_cross_entropy_and_grad(x, w, y, linear_bias=b,
                                                      input_grad=False)
    assert not calls
    for g, ref in zip(got, numpy_lanes):
        if ref is not None:
            assert rel(g, ref) < 1e-14


def test_linear_blocks_checks_its_arguments():
    from xentc import _core
    assert _linear._gemm_ready()
    rng = np.random.default_rng(14)
    x, w, b, y = make(rng, 10, 3, 4, np.float64)
    wf = np.asfortranarray(w)
    opts = _core.CEOptions()

    def call(starts=(0, 5), rows=5, buf_rows=5, target=y, gw=np.empty((4, 3)), totals=2):
        _core.linear_blocks(x, wf, None, b, target, None, opts, None, 1.0,
                            np.asarray(starts, np.int64), rows, None, None, np.zeros(totals),
                            np.empty((buf_rows, 4)), np.empty(5), None, None, gw, None)

    call()
    with pytest.raises(ValueError, match=r"starts\[1\] is 4, expected a multiple of rows"):
        call(starts=(0, 4))
    with pytest.raises(ValueError, match=r"starts\[0\] is 10"):
        call(starts=(10,))
    with pytest.raises(ValueError, match="rows is 6, expected 1 .. buf.shape"):
        call(rows=6)
    with pytest.raises(ValueError, match="len\\(target\\)"):
        call(target=y[:9])
    with pytest.raises(ValueError, match="grad_weight.shape"):
        call(gw=np.empty((3, 3)))
    with pytest.raises(ValueError, match="block_totals has no entry"):
        call(totals=1)
    with pytest.raises(ValueError, match="W is needed"):
        _core.linear_blocks(x, None, None, b, y, None, opts, None, 1.0,
                            np.zeros(1, np.int64), 5, None, None, np.zeros(2),
                            np.empty((5, 4)), np.empty(5), None, None, None, None)
    # W C-contiguous only: the forward product through BLAS's transpose
    gw_f, gw_c = np.empty((4, 3)), np.empty((4, 3))
    gi_f, gi_c = np.empty((10, 3)), np.empty((10, 3))
    for wf_, wc_, gi, gw in [(wf, None, gi_f, gw_f), (None, w, gi_c, gw_c)]:
        _core.linear_blocks(x, wf_, wc_, b, y, None, opts, None, 1.0,
                            np.asarray((0, 5), np.int64), 5, None, None, np.zeros(2),
                            np.empty((5, 4)), np.empty(5), None, gi, gw, None)
    np.testing.assert_allclose(gw_c, gw_f, rtol=1e-14)
    np.testing.assert_allclose(gi_c, gi_f, rtol=1e-14)
    caps = [__import__("scipy.linalg.cython_blas", fromlist=["x"]).__pyx_capi__[f]
            for f in ("sgemm", "dgemm")]
    _core.set_gemm(None, None)
    try:
        with pytest.raises(RuntimeError, match="no BLAS"):
            call()
    finally:
        _core.set_gemm(*caps)
    call()


def test_blocks_are_even_and_bounded():
    # the cap in rows, evened out over the blocks; never 0 rows
    assert _linear._block_rows(2048, 32000, 4, 48 << 20) == 342
    assert _linear._block_rows(2048, 32000, 4) == 410      # the default cap: 51 MiB
    assert _linear._block_rows(4096, 128256, 4, None) * 128256 * 4 <= _linear._BUFFER_BYTES
    # issue 13's memory case stays within 64 MB (10^6 bytes) by the design's
    # bound, with the NumPy path's scratch tile counted
    assert _linear._memory_bound(4096, 128256, 256, 4) <= 64e6
    assert _linear._block_rows(10, 10**9, 4, None) == 1
    assert _linear._block_rows(0, 5, 8, None) == 1
    # small C: cache-sized blocks, not one 80 MB block
    rows = _linear._block_rows(200000, 50, 8, None)
    assert _linear._MIN_ROWS <= rows and rows * 50 * 8 <= 2 * _linear._CACHE_BYTES
    # in C with small products: at most 1e6 / (C * D) rows, evened out;
    # unchanged when that would leave fewer than _MIN_GEMM_ROWS
    assert _linear._gemm_rows(200000, rows, 50, 64) == 312
    assert _linear._gemm_rows(6000, rows, 50, 64) == 300
    assert _linear._gemm_rows(200000, rows, 1000, 64) == rows


@pytest.mark.parametrize("lanes, split", [(True, True), (False, True), (False, False)])
def test_same_bits_for_any_workers(monkeypatch, lanes, split):
    # several blocks, each large enough for the kernels to use threads; in
    # lanes (Python threads) or one after the other (OpenMP in the kernels;
    # the products split into fixed parts, or threaded by BLAS)
    monkeypatch.setattr(_linear, "_BUFFER_BYTES", 160 * 3000 * 4)
    monkeypatch.setattr(_linear, "_LANE_BYTES", (4 << 20) if lanes else 0)
    monkeypatch.setattr(_linear, "_SPLIT", split)
    assert _linear._uses_lanes(700, 3000, 64, 4) == lanes
    rng = np.random.default_rng(3)
    x, w, b, y = make(rng, 700, 64, 3000, np.float32)
    kw = dict(linear_bias=b, label_smoothing=0.1, z_loss=1e-3, softcap=5.0)
    by_blas = {}
    for blas in (1, 2):
        with threadpool_limits(blas, user_api="blas"):
            results = [xentc.linear_cross_entropy_and_grad(x, w, y, workers=workers, **kw)
                       for workers in (1, 2, None)]
        for r in results[1:]:
            for a, b_ in zip(results[0], r):
                np.testing.assert_array_equal(a, b_)
        by_blas[blas] = results[0]
    # OpenBLAS's single-threaded product is not always the same bits as its
    # threaded one (here for grad_input = G @ W, K = 3000; the module
    # docstring says how to pin it): close, not equal. Split into fixed
    # parts, with SciPy's OpenBLAS set to one thread for the call, the bits
    # do not depend on the BLAS thread count either.
    for a, b_ in zip(by_blas[1], by_blas[2]):
        if split and not lanes and _blas_threads.available():
            np.testing.assert_array_equal(a, b_)
        else:
            assert rel(a, b_) < 1e-6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bits_for_any_workers_in_c(dtype):
    # lanes through _core.linear_blocks (small products, SciPy's BLAS): the
    # same bits for every workers value and BLAS thread count
    rng = np.random.default_rng(15)
    n, d, c = 12000, 64, 50
    assert _linear._uses_lanes(n, c, d, np.dtype(dtype).itemsize)
    assert _linear._gemm_rows(n, 6000, c, d) < 6000 and _linear._gemm_ready()
    x, w, b, y = make(rng, n, d, c, dtype)
    kw = dict(linear_bias=b, label_smoothing=0.1, sample_weight=rng.uniform(0, 2, n))
    results = []
    for blas in (1, 2):
        with threadpool_limits(blas, user_api="blas"):
            results += [xentc.linear_cross_entropy_and_grad(x, w, y, workers=workers, **kw)
                        for workers in (1, 2, None)]
    for r in results[1:]:
        for a, b_ in zip(results[0], r):
            np.testing.assert_array_equal(a, b_)


def test_input_grad_false_and_out():
    rng = np.random.default_rng(4)
    x, w, b, y = make(rng, 40, 7, 30, np.float64)
    loss, gx, gw, gb = xentc.linear_cross_entropy_and_grad(x, w, y, linear_bias=b)
    l2, none, gw2, gb2 = xentc.linear_cross_entropy_and_grad(x, w, y, linear_bias=b,
                                                             input_grad=False)
    assert none is None
    np.testing.assert_array_equal(l2, loss)
    np.testing.assert_array_equal(gw2, gw)
    np.testing.assert_array_equal(gb2, gb)
    outs = (np.full_like(x, np.nan), np.full_like(w, np.nan), np.full_like(b, np.nan))
    r = xentc.linear_cross_entropy_and_grad(x, w, y, linear_bias=b, out=outs)
    for got, o, want in zip(r[1:], outs, (gx, gw, gb)):
        assert got is o
        np.testing.assert_array_equal(o, want)
    # some of them given
    gw_out = np.empty_like(w)
    r = xentc.linear_cross_entropy_and_grad(x, w, y, input_grad=False,
                                            out=(None, gw_out, None))
    assert r[2] is gw_out and r[1] is None and r[3] is None


def test_layouts_and_nd_input():
    rng = np.random.default_rng(5)
    x, w, b, y = make(rng, 24, 9, 17, np.float64)
    base = xentc.linear_cross_entropy_and_grad(x, w, y, linear_bias=b)
    x_f = np.asfortranarray(x)
    w_f = np.asfortranarray(w)                        # W.T C-contiguous: no copy
    w_strided = np.repeat(w, 2, axis=0)[::2]          # copied once
    x_strided = np.repeat(x, 2, axis=1)[:, ::2]
    for xi, wi in ((x_f, w), (x, w_f), (x_strided, w_strided)):
        got = xentc.linear_cross_entropy_and_grad(xi, wi, y, linear_bias=b)
        for g, want in zip(got, base):
            np.testing.assert_allclose(g, want, rtol=1e-13, atol=1e-15)
    # (batch, seq, D) input with (batch, seq) targets: the 2-D result reshaped
    x3, y3 = x.reshape(4, 6, 9), y.reshape(4, 6)
    for red in ("mean", "none"):
        l2, gx2, gw2, gb2 = xentc.linear_cross_entropy_and_grad(x, w, y, linear_bias=b,
                                                                reduction=red)
        l3, gx3, gw3, gb3 = xentc.linear_cross_entropy_and_grad(x3, w, y3, linear_bias=b,
                                                                reduction=red)
        np.testing.assert_array_equal(np.reshape(l2, np.shape(l3)), l3)
        assert gx3.shape == x3.shape
        np.testing.assert_array_equal(gx3.reshape(x.shape), gx2)
        np.testing.assert_array_equal(gw3, gw2)
    # a single sample: 1-D input, 0-d target
    l1 = xentc.linear_cross_entropy(x[3], w, y[3], linear_bias=b, reduction="none")
    assert np.ndim(l1) == 0
    assert l1 == xentc.linear_cross_entropy(x[3:4], w, y[3:4], linear_bias=b,
                                            reduction="none")[0]


def test_no_rows():
    w = np.ones((5, 3))
    x = np.empty((0, 3))
    y = np.empty(0, np.int64)
    assert np.isnan(xentc.linear_cross_entropy(x, w, y))
    assert xentc.linear_cross_entropy(x, w, y, reduction="sum") == 0
    loss, gx, gw, gb = xentc.linear_cross_entropy_and_grad(x, w, y, linear_bias=np.ones(5),
                                                           reduction="sum")
    assert gx.shape == (0, 3)
    np.testing.assert_array_equal(gw, np.zeros((5, 3)))
    np.testing.assert_array_equal(gb, np.zeros(5))


@pytest.mark.parametrize("lanes", [True, False])
def test_memory_is_bounded_by_the_block(monkeypatch, lanes):
    # The logits would be 2000 x 5000 float32 = 40 MB; with a 2 MB buffer
    # the call allocates (tracemalloc sees NumPy's allocations) the buffers,
    # accumulation tiles and O(N + C) vectors besides its outputs, per lane.
    monkeypatch.setattr(_linear, "_BUFFER_BYTES", 2 << 20)
    monkeypatch.setattr(_linear, "_LANE_BYTES", (4 << 20) if lanes else 0)
    rng = np.random.default_rng(6)
    n, d, c = 2000, 32, 5000
    assert _linear._uses_lanes(n, c, d, 4) == lanes
    x, w, b, y = make(rng, n, d, c, np.float32)
    outs = (np.empty_like(x), np.empty_like(w), np.empty_like(b))
    tracemalloc.start()
    try:
        xentc.linear_cross_entropy_and_grad(x, w, y, linear_bias=b, out=outs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    bound = _linear._memory_bound(n, c, d, 4)
    assert bound < (16 << 20 if lanes else 5 << 20)   # a few MB, not the 40 MB logits
    # (+ 64 KiB: Python objects and the thread pool)
    assert peak <= bound + (64 << 10), (peak, bound)


def test_inputs_not_modified_and_in_dtype():
    rng = np.random.default_rng(7)
    x, w, b, y = make(rng, 30, 5, 11, np.float32)
    copies = [a.copy() for a in (x, w, b, y)]
    loss, gx, gw, gb = xentc.linear_cross_entropy_and_grad(x, w, y, linear_bias=b,
                                                           z_loss=1e-2, softcap=2.0)
    for a, a0 in zip((x, w, b, y), copies):
        np.testing.assert_array_equal(a, a0)
    assert loss.dtype == gx.dtype == gw.dtype == gb.dtype == np.float32


X = np.zeros((4, 3))
W = np.zeros((5, 3))
Y = np.array([0, 1, 4, -100])


def lce(**kw):
    args = dict(input=X, linear_weight=W, target=Y)
    for k in list(args):
        if k in kw:
            args[k] = kw.pop(k)
    return lambda: xentc.linear_cross_entropy(args["input"], args["linear_weight"],
                                              args["target"], **kw)


def lceg(**kw):
    return lambda: xentc.linear_cross_entropy_and_grad(X, W, Y, **kw)


BAD = [
    ("D-mismatch", lce(linear_weight=np.zeros((5, 4))), ValueError,
     r"linear_cross_entropy: linear_weight must have shape \(C, D\) with D = 3 "
     r"\(input's last axis\), got \(5, 4\)"),
    ("weight-1d", lce(linear_weight=np.zeros(3)), ValueError, r"linear_weight.*\(3,\)"),
    ("no-classes", lce(linear_weight=np.zeros((0, 3))), ValueError, r"no classes"),
    ("input-0d", lce(input=np.float64(1)), ValueError, r"input.*0-d"),
    ("input-int", lce(input=np.zeros((4, 3), int)), TypeError,
     r"input must be a float32 or float64 array, got dtype int64"),
    ("input-complex", lce(input=np.zeros((4, 3), complex)), TypeError, r"input.*real"),
    ("dtype-mismatch", lce(linear_weight=np.zeros((5, 3), np.float32)), TypeError,
     r"linear_weight has dtype float32, expected input's dtype float64"),
    ("bias-shape", lce(linear_bias=np.zeros(4)), ValueError,
     r"linear_bias must have shape \(5,\).*got \(4,\)"),
    ("bias-dtype", lce(linear_bias=np.zeros(5, np.float32)), TypeError,
     r"linear_bias has dtype float32"),
    ("target-shape", lce(target=np.array([0, 1, 2])), ValueError,
     r"target must have shape \(4,\).*got \(3,\)"),
    ("target-range", lce(target=np.array([0, 5, 1, 1])), IndexError,
     r"Target 5 is out of bounds at position \(1,\).*\[0, 5\)"),
    ("prob-shape", lce(target=np.zeros((4, 4))), ValueError,
     r"probabilities.*\(4, 5\)"),
    ("class-weight", lce(weight=np.ones(4)), ValueError, r"weight must have shape \(5,\)"),
    ("sample-weight", lce(sample_weight=np.ones(3)), ValueError, r"sample_weight"),
    ("reduction", lce(reduction="batchmean"), ValueError, r"reduction"),
    ("smoothing", lce(label_smoothing=2.0), ValueError, r"label_smoothing"),
    ("softcap", lce(softcap=-1.0), ValueError, r"softcap"),
    ("workers", lce(workers=0), ValueError, r"workers"),
    ("out-type", lceg(out=[None, None, None]), TypeError, r"out must be a tuple"),
    ("out-shape", lceg(out=(None, np.zeros((5, 4)), None)), ValueError,
     r"out\[1\] \(grad_linear_weight\) has shape \(5, 4\), expected \(5, 3\)"),
    ("out-dtype", lceg(out=(np.zeros((4, 3), np.float32), None, None)), ValueError,
     r"out\[0\] \(grad_input\) has dtype float32"),
    ("out-bias-without-bias", lceg(out=(None, None, np.zeros(5))), ValueError,
     r"out\[2\].*without linear_bias"),
    ("out-input-grad-false", lceg(input_grad=False, out=(np.zeros((4, 3)), None, None)),
     ValueError, r"out\[0\].*input_grad=False"),
    ("out-overlap", lceg(out=(X, None, None)), ValueError, r"out\[0\].*overlaps"),
    ("out-noncontiguous", lceg(out=(None, np.zeros((3, 5)).T, None)), ValueError,
     r"out\[1\].*C-contiguous"),
    ("input_grad-type", lceg(input_grad="yes"), TypeError, r"input_grad must be a bool"),
]


@pytest.mark.parametrize("call, exc, pattern", [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
def test_bad_input(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_error_messages_name_the_function():
    with pytest.raises(ValueError, match=re.escape("linear_cross_entropy_and_grad:")):
        xentc.linear_cross_entropy_and_grad(X, np.zeros((5, 4)), Y)


# ---------------------------------------------------------------- torch, live

def torch_reference(x, w, b, y, options=None, **kw):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    xt = torch.from_numpy(x.copy()).requires_grad_()
    wt = torch.from_numpy(w.copy()).requires_grad_()
    bt = None if b is None else torch.from_numpy(b.copy()).requires_grad_()
    wcls = kw.pop("weight", None)
    if wcls is not None:
        kw["weight"] = torch.from_numpy(wcls.astype(x.dtype))
    loss = F.linear_cross_entropy(xt, wt, torch.from_numpy(y), linear_bias=bt,
                                  options=options, **kw)
    loss.sum().backward()
    return (loss.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(),
            None if b is None else bt.grad.numpy())


@pytest.mark.parametrize("n, d, c", [(64, 32, 2), (257, 64, 1000), (33, 16, 128256)])
@pytest.mark.parametrize("opts", [dict(), dict(weight=True, label_smoothing=0.1),
                                  dict(reduction="none", ignore_index=0)])
def test_against_torch_live(n, d, c, opts):
    pytest.importorskip("torch")
    rng = np.random.default_rng(n + c)
    x, w, b, y = make(rng, n, d, c, np.float64)
    kw = dict(opts)
    if kw.pop("weight", False):
        kw["weight"] = rng.uniform(0.2, 2.0, c)
    y[y == -100] = kw.get("ignore_index", -100)
    want = torch_reference(x, w, b, y, **dict(kw))
    got = xentc.linear_cross_entropy_and_grad(x, w, y, linear_bias=b, **kw)
    for g, ref in zip(got, want):
        assert rel(g, ref) < 1e-12


# ------------------------------------------- products split over xentc's threads
def test_split_products_found_and_used(monkeypatch):
    # SciPy's wheels ship the OpenBLAS whose thread count _blas_threads sets;
    # the blocks one after the other then split their products into parts
    scipy = pytest.importorskip("scipy")
    if "openblas" not in str(scipy.show_config(mode="dicts")).lower():
        pytest.skip("SciPy is built on another BLAS")
    assert _blas_threads.available()
    calls = []
    real = _core.linear_blocks

    def spy(*args):
        calls.append((args[21], None if args[22] is None else args[22].shape))
        return real(*args)

    monkeypatch.setattr(_core, "linear_blocks", spy)
    rng = np.random.default_rng(20)
    x, w, b, y = make(rng, 300, 600, 2000, np.float32)
    assert not _linear._uses_lanes(300, 2000, 600, 4)
    xentc.linear_cross_entropy_and_grad(x, w, y, linear_bias=b)
    rows = _linear._block_rows(300, 2000, 4)
    assert calls == [(_linear._PARTS, (_linear._PARTS, rows, 600))]
    calls.clear()
    xentc.linear_cross_entropy(x, w, y)
    assert calls == [(_linear._PARTS, None)]


def test_split_restores_blas_threads(monkeypatch):
    if not _blas_threads.available():
        pytest.skip("SciPy's OpenBLAS not found")
    rng = np.random.default_rng(21)
    x, w, b, y = make(rng, 100, 600, 2000, np.float64)
    for blas in (1, 2, 3):
        with threadpool_limits(blas, user_api="blas"):
            before = _blas_threads.threads()
            xentc.linear_cross_entropy_and_grad(x, w, y, linear_bias=b)
            assert _blas_threads.threads() == before
    # also when the call fails inside
    before = _blas_threads.threads()

    def boom(*args):
        assert _blas_threads.threads() == 1      # one BLAS thread during the call
        raise MemoryError("planted")

    monkeypatch.setattr(_core, "linear_blocks", boom)
    with pytest.raises(MemoryError, match="planted"):
        xentc.linear_cross_entropy_and_grad(x, w, y)
    assert _blas_threads.threads() == before


def test_split_concurrent_calls():
    # calls from several Python threads at once: each result as when alone,
    # and OpenBLAS's thread count back once the last one is done
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(22)
    problems = [make(rng, 150, 300, 3000 + 64 * k, np.float32) for k in range(4)]
    alone = [xentc.linear_cross_entropy_and_grad(x, w, y, linear_bias=b)
             for x, w, b, y in problems]
    before = _blas_threads.threads()
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda p: xentc.linear_cross_entropy_and_grad(
            p[0], p[1], p[3], linear_bias=p[2]), problems * 3))
    for k, got in enumerate(together):
        for a, b_ in zip(got, alone[k % 4]):
            np.testing.assert_array_equal(a, b_)
    assert _blas_threads.threads() == before
