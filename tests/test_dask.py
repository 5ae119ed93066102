"""xentc.dask against the in-memory xentc functions: rows and/or classes
chunked (unevenly), on the synchronous scheduler and on a real
dask.distributed cluster of two worker processes."""
import pathlib
import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import xentc  # noqa: E402
import xentc.dask as xd  # noqa: E402

RTOL = {np.float32: 2e-6, np.float64: 1e-13}

# (shape, chunks): rows only, classes only (uneven, with a one-class and an
# empty chunk), both.
CHUNKINGS = [
    ((37, 101), ((10, 20, 7), 101)),
    ((37, 101), (37, (30, 1, 0, 50, 20))),
    ((37, 101), ((5, 32), (64, 37))),
    ((3, 5000), ((2, 1), (1000, 2500, 1499, 1))),
]


@pytest.fixture
def synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


def make(shape, dtype=np.float64, seed=0, scale=5.0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale).astype(dtype)


def check(got, want, dtype, atol=0.0):
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=atol)


# ---- (a) synchronous scheduler ---------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, chunks", CHUNKINGS)
def test_logsumexp_and_softmax_family(synchronous, shape, chunks, dtype):
    x = make(shape, dtype)
    dx = da.from_array(x, chunks=chunks)
    lazy = xd.logsumexp(dx)
    assert isinstance(lazy, da.Array)
    assert lazy.shape == shape[:1] and lazy.dtype == dtype
    assert lazy.chunks == dx.chunks[:1]
    check(lazy.compute(), xentc.logsumexp(x, axis=1), dtype)
    for fn, ref in ((xd.log_softmax, xentc.log_softmax), (xd.softmax, xentc.softmax)):
        lazy = fn(dx)
        assert lazy.chunks == dx.chunks and lazy.dtype == dtype
        got = lazy.compute()
        want = ref(x, axis=1)
        assert got.dtype == want.dtype
        # xentc's float32 vector exp rounds x - max to float32 first: tiny
        # probabilities are off by up to |x - max| * 2**-24 relative (2e-6
        # here); the shard path computes exp(x - max) in double.
        tol = 1e-5 if dtype == np.float32 else RTOL[dtype]
        np.testing.assert_allclose(got, want, rtol=tol, atol=1e-300)


def test_one_class_chunk_is_the_in_memory_function(synchronous):
    # Whole rows per block: the very same kernels, so the same bits.
    x = make((50, 300), np.float32)
    dx = da.from_array(x, chunks=(7, 300))
    assert np.array_equal(xd.logsumexp(dx).compute(), xentc.logsumexp(x, axis=1))
    assert np.array_equal(xd.log_softmax(dx).compute(), xentc.log_softmax(x, axis=1))
    assert np.array_equal(xd.softmax(dx).compute(), xentc.softmax(x, axis=1))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_other_axes_and_ndim(synchronous, axis):
    x = make((6, 7, 8))
    dx = da.from_array(x, chunks=(4, 3, (5, 3)))
    check(xd.logsumexp(dx, axis=axis).compute(), xentc.logsumexp(x, axis=axis),
          np.float64)
    # x - lse cancels near 0: absolute error of lse's size times eps
    check(xd.log_softmax(dx, axis=axis).compute(), xentc.log_softmax(x, axis=axis),
          np.float64, atol=1e-14)
    x1 = x[0, 0]
    assert float(xd.logsumexp(da.from_array(x1, chunks=3)).compute()) == pytest.approx(
        float(xentc.logsumexp(x1)), rel=1e-15)


def test_special_values_across_class_chunks(synchronous):
    x = np.array([
        [np.nan, 1.0, 2.0, 3.0, 4.0],
        [1.0, 2.0, 3.0, 4.0, np.inf],
        [-np.inf] * 5,
        [np.inf, 0.0, 0.0, np.nan, 0.0],
        [-np.inf, 0.0, 1.0, -np.inf, 2.0],
        [np.inf, -np.inf, 0.0, 1.0, 0.0],
    ])
    dx = da.from_array(x, chunks=(4, (2, 1, 2)))
    np.testing.assert_allclose(xd.logsumexp(dx).compute(), xentc.logsumexp(x, axis=1),
                               rtol=1e-15)
    np.testing.assert_allclose(xd.softmax(dx).compute(), xentc.softmax(x, axis=1),
                               rtol=1e-15)
    np.testing.assert_allclose(xd.log_softmax(dx).compute(), xentc.log_softmax(x, axis=1),
                               rtol=1e-15)


def test_dtypes(synchronous):
    x16 = make((9, 20), np.float16, scale=2.0)
    dx = da.from_array(x16, chunks=(4, (8, 12)))
    assert xd.logsumexp(dx).dtype == np.float16
    np.testing.assert_allclose(xd.logsumexp(dx).compute(), xentc.logsumexp(x16, axis=1),
                               rtol=1e-3)
    xi = np.arange(24).reshape(4, 6)
    got = xd.log_softmax(da.from_array(xi, chunks=(3, 4))).compute()
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, xentc.log_softmax(xi, axis=1), rtol=1e-14)
    with pytest.raises(TypeError, match="complex"):
        xd.logsumexp(da.ones((2, 3), dtype=complex))


def test_numpy_input_and_errors(synchronous):
    x = make((5, 6))
    check(xd.logsumexp(x).compute(), xentc.logsumexp(x, axis=1), np.float64)
    with pytest.raises(ValueError, match="0-d"):
        xd.logsumexp(da.from_array(np.float64(1.0)))
    with pytest.raises(TypeError, match="axis"):
        xd.softmax(x, axis=(0, 1))
    with pytest.raises(ValueError, match="zero-size"):
        xd.softmax(da.ones((3, 0)))


def test_unknown_chunk_sizes():
    dx = da.from_array(make((5, 6)), chunks=2)
    try:
        unknown = dx[dx[:, 0] > -100]  # rows selected by a mask: unknown sizes
    except NotImplementedError:  # dask's array-expr backend, for now
        pytest.skip("boolean indexing not supported by this dask backend")
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        xd.logsumexp(unknown)


def test_same_bits_every_run_and_scheduler():
    x = make((64, 999), np.float32, seed=3)
    dx = da.from_array(x, chunks=(16, (100, 500, 399)))
    t = np.random.default_rng(3).integers(0, 999, 64)
    w = np.random.default_rng(4).random(999)
    results = []
    for scheduler in ("synchronous", "threads", "synchronous"):
        with dask.config.set(scheduler=scheduler):
            results.append((xd.logsumexp(dx).compute(),
                            xd.cross_entropy(dx, t, weight=w, reduction="none").compute()))
    for lse, ce in results[1:]:
        assert np.array_equal(lse, results[0][0])
        assert np.array_equal(ce, results[0][1])


# ---- cross-entropy ---------------------------------------------------------------

def ce_problem(shape=(40, 97), dtype=np.float64, seed=5):
    rng = np.random.default_rng(seed)
    x = make(shape, dtype, seed)
    t = rng.integers(0, shape[1], shape[0])
    t[rng.random(shape[0]) < 0.25] = -100
    w = rng.random(shape[1]) + 0.05
    return x, t, w


@pytest.mark.parametrize("chunks", [((13, 27), 97), (40, (30, 1, 0, 66)),
                                    ((7, 33), (50, 47)), ((1, 1, 38), (1, 1, 1, 94))])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy(synchronous, chunks, reduction, weighted):
    x, t, w = ce_problem()
    w = w if weighted else None
    lazy = xd.cross_entropy(da.from_array(x, chunks=chunks), t, weight=w,
                            reduction=reduction)
    assert isinstance(lazy, da.Array)
    want = xentc.cross_entropy(x, t, weight=w, reduction=reduction)
    got = lazy.compute()
    assert got.dtype == want.dtype and got.shape == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("options", [
    dict(label_smoothing=0.1),
    dict(label_smoothing=0.2, z_loss=1e-3, softcap=4.0),
    dict(ignore_index=5),
])
def test_cross_entropy_options(synchronous, options):
    x, t, w = ce_problem(seed=6)
    t[t == -100] = options.get("ignore_index", -100)
    dx = da.from_array(x, chunks=(16, (40, 20, 37)))
    for weight in (None, w):
        got = xd.cross_entropy(dx, t, weight=weight, reduction="none", **options).compute()
        want = xentc.cross_entropy(x, t, weight=weight, reduction="none", **options)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_cross_entropy_float32_axis1_and_dask_target(synchronous):
    x, t, w = ce_problem((30, 50), np.float32, seed=7)
    dt = da.from_array(t, chunks=7)  # unlike the logits' row chunks
    got = xd.cross_entropy(da.from_array(x, chunks=(10, (20, 30))), dt, weight=w)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got.compute(), xentc.cross_entropy(x, t, weight=w),
                               rtol=2e-6)
    x3 = make((4, 9, 5), seed=8)
    t3 = np.random.default_rng(8).integers(0, 9, (4, 5))
    got = xd.cross_entropy(da.from_array(x3, chunks=(3, (4, 5), 2)), t3, axis=1,
                           reduction="none")
    np.testing.assert_allclose(got.compute(),
                               xentc.cross_entropy(x3, t3, axis=1, reduction="none"),
                               rtol=1e-13)


def test_cross_entropy_edge_cases(synchronous):
    x = np.zeros((4, 6))
    dx = da.from_array(x, chunks=(2, (3, 3)))
    assert np.isnan(xd.cross_entropy(dx, np.full(4, -100)).compute())
    with pytest.raises(IndexError):
        xd.cross_entropy(dx, np.array([0, 1, 6, 2])).compute()
    with pytest.raises(IndexError):
        xd.cross_entropy(dx, np.array([0, -3, 1, 2])).compute()
    with pytest.raises(TypeError, match="integer class indices"):
        xd.cross_entropy(dx, np.zeros((4, 6)))
    with pytest.raises(ValueError, match="shape"):
        xd.cross_entropy(dx, np.zeros(5, int))
    with pytest.raises(ValueError, match="weight"):
        xd.cross_entropy(dx, np.zeros(4, int), weight=np.ones(5))
    with pytest.raises(ValueError, match="reduction"):
        xd.cross_entropy(dx, np.zeros(4, int), reduction="avg")
    one = np.array([1.0, 2.0, 3.0, 0.5])  # a single sample: 0-d results
    for reduction in ("none", "mean"):
        got = xd.cross_entropy(da.from_array(one, chunks=3), np.array(2), weight=one,
                               reduction=reduction)
        assert got.shape == ()
        assert float(got.compute()) == pytest.approx(float(xentc.cross_entropy(
            one, np.array(2), weight=one, reduction=reduction)), rel=1e-14)
    inf_row = np.array([[np.inf, 0.0, 1.0], [0.0, 1.0, 2.0]])
    got = xd.cross_entropy(da.from_array(inf_row, chunks=(1, (1, 2))), np.array([1, 2]),
                           reduction="none").compute()
    want = xentc.cross_entropy(inf_row, np.array([1, 2]), reduction="none")
    np.testing.assert_allclose(got, want, rtol=1e-15)
    assert np.isnan(got[0])


def test_workers_per_task(synchronous):
    x, t, _ = ce_problem((64, 4000), np.float32, seed=9)
    dx = da.from_array(x, chunks=(32, (3000, 1000)))
    assert np.array_equal(xd.logsumexp(dx, workers=2).compute(),
                          xd.logsumexp(dx).compute())
    with pytest.raises(ValueError, match="workers"):
        xd.logsumexp(dx, workers=0)


# ---- (b) a dask.distributed cluster of two worker processes ------------------

@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=40)
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def test_cluster_runs_two_worker_processes(client):
    pids = client.run(lambda: __import__("os").getpid())
    assert len(set(pids.values())) == 2


def test_cluster_logsumexp_and_log_softmax(client):
    x = make((300, 2001), np.float32, seed=10)
    dx = da.from_array(x, chunks=((100, 150, 50), (700, 1, 1000, 300)))
    lse, lsm = client.compute([xd.logsumexp(dx), xd.log_softmax(dx)], sync=True)
    check(lse, xentc.logsumexp(x, axis=1), np.float32)
    np.testing.assert_allclose(lsm, xentc.log_softmax(x, axis=1), rtol=2e-6)
    with dask.config.set(scheduler="synchronous"):
        # The merge tree is fixed by the chunks: same bits on the cluster.
        assert np.array_equal(lse, xd.logsumexp(dx).compute())


def test_cluster_cross_entropy(client):
    x, t, w = ce_problem((500, 777), np.float64, seed=11)
    dx = da.from_array(x, chunks=((200, 300), (100, 400, 277)))
    dt = da.from_array(t, chunks=125)
    for reduction in ("none", "mean"):
        got = client.compute(xd.cross_entropy(dx, dt, weight=w, reduction=reduction,
                                              label_smoothing=0.1), sync=True)
        want = xentc.cross_entropy(x, t, weight=w, reduction=reduction, label_smoothing=0.1)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_cluster_reports_bad_targets(client):
    x = make((20, 30))
    t = np.zeros(20, int)
    t[7] = 30
    with pytest.raises(IndexError, match="none of the merged shards"):
        client.compute(xd.cross_entropy(da.from_array(x, chunks=(10, 16)), t),
                       sync=True)


def test_clear_error_without_dask():
    # Simulate an environment without dask: importing xentc.dask still works,
    # using it explains what to install.
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['dask'] = None; sys.modules['dask.array'] = None\n"
        "import xentc.dask\n"
        "try:\n"
        "    xentc.dask.logsumexp([[1.0, 2.0]])\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    # the README's wording of the install
    assert 'pip install ".[dask]"' in out
    readme = pathlib.Path(__file__).resolve().parents[1] / "README.md"
    if readme.exists():  # (a wheel's test run has no README beside tests/)
        assert 'pip install ".[dask]"' in readme.read_text()


@pytest.mark.parametrize("smoothing", [0.0, 0.2, 1.0])
@pytest.mark.parametrize("target", [[0, 1, 0, 1, 2, 3], [0, 1, 3, 3, 2, -100]])
def test_signed_class_weights_as_in_memory(target, smoothing):
    """Signed class weights on class-chunked dask logits divide as
    xentc.cross_entropy (and torch) do, a zero 'mean' denominator included."""
    x = np.random.default_rng(0).standard_normal((6, 4))
    w = np.array([1.0, -1.0, 0.0, 2.5])
    kw = dict(weight=w, label_smoothing=smoothing, z_loss=0.01)
    want = xentc.cross_entropy(x, np.array(target), **kw)
    got = xd.cross_entropy(da.from_array(x, chunks=(3, 2)), np.array(target), **kw)
    np.testing.assert_allclose(got.compute(), want, rtol=1e-13, equal_nan=True)
