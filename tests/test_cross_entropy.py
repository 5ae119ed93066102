"""
xentc's cross-entropy family against the slow NumPy references of
ce_reference.py (themselves checked against torch's golden values in
test_ce_reference.py), central finite differences, the identities between
the seed formulations, and bad input.
"""
import itertools

import numpy as np
import pytest

import xentc
from ce_reference import (
    cross_entropy_grad_ref,
    cross_entropy_ref,
    kl_div_ref,
    log_loss_ref,
    nll_loss_ref,
)

RNG = np.random.default_rng(20261122)


def make_case(shape, axis, dtype, ignore_frac=0.25, ignore_index=-100, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    c = shape[axis]
    sample_shape = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
    y = rng.integers(0, c, sample_shape)
    if ignore_frac and y.size:
        y = np.where(rng.random(sample_shape) < ignore_frac, ignore_index, y)
    return x, np.asarray(y)


OPTIONS = [
    dict(),
    dict(weight="w"),
    dict(label_smoothing=0.1),
    dict(weight="w", label_smoothing=0.3),
    dict(label_smoothing=1.0),
    dict(z_loss=1e-2),
    dict(softcap=2.5),
    dict(sample_weight="s"),
    dict(weight="w", sample_weight="s", label_smoothing=0.2, z_loss=0.05, softcap=4.0),
]
REDUCTIONS = ["mean", "sum", "none"]
LAYOUTS = [((7, 5), -1), ((5,), -1), ((4, 6, 3), 1), ((3, 4, 2, 2), 1), ((2, 3, 5), 0)]


def resolve(opts, x, axis, rng):
    c = x.shape[axis]
    sample_shape = x.shape[:axis % x.ndim] + x.shape[axis % x.ndim + 1:]
    out = dict(opts)
    if out.get("weight") == "w":
        out["weight"] = rng.random(c) + 0.25
    if out.get("sample_weight") == "s":
        out["sample_weight"] = rng.random(sample_shape) + 0.1
    return out


def tol(dtype):
    return dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("shape,axis", LAYOUTS)
def test_index_targets_match_reference(shape, axis, opts, reduction, dtype):
    x, y = make_case(shape, axis, dtype)
    kw = resolve(opts, x, axis, np.random.default_rng(1))
    x0, y0 = x.copy(), y.copy()
    got = xentc.cross_entropy(x, y, axis=axis, reduction=reduction, **kw)
    want = cross_entropy_ref(x, y, axis=axis, reduction=reduction, **kw)
    np.testing.assert_allclose(got, want, equal_nan=True, **tol(dtype))
    assert np.asarray(got).dtype == dtype
    assert np.asarray(got).shape == np.asarray(want).shape

    loss, grad = xentc.cross_entropy_and_grad(x, y, axis=axis, reduction=reduction, **kw)
    np.testing.assert_allclose(loss, want, equal_nan=True, **tol(dtype))
    gwant = cross_entropy_grad_ref(x, y, axis=axis, reduction=reduction, **kw)
    np.testing.assert_allclose(grad, gwant, equal_nan=True, **tol(dtype))
    assert grad.dtype == dtype and grad.shape == x.shape
    # inputs untouched
    assert np.array_equal(x, x0) and np.array_equal(y, y0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("shape,axis", [((7, 5), -1), ((4, 6, 3), 1)])
def test_probability_targets_match_reference(shape, axis, opts, reduction, dtype):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    q = rng.random(shape).astype(dtype)
    q /= q.sum(axis=axis, keepdims=True)
    kw = resolve(opts, x, axis, rng)
    got = xentc.cross_entropy(x, q, axis=axis, reduction=reduction, **kw)
    want = cross_entropy_ref(x, q, axis=axis, reduction=reduction, **kw)
    np.testing.assert_allclose(got, want, **tol(dtype))
    loss, grad = xentc.cross_entropy_and_grad(x, q, axis=axis, reduction=reduction, **kw)
    np.testing.assert_allclose(loss, want, **tol(dtype))
    np.testing.assert_allclose(
        grad, cross_entropy_grad_ref(x, q, axis=axis, reduction=reduction, **kw), **tol(dtype))


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("target_kind", ["index", "prob"])
def test_gradient_matches_finite_differences(opts, target_kind):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 5)) * 2
    if target_kind == "index":
        t = np.array([0, 3, -100, 4])
    else:
        t = rng.random((4, 5))
        t /= t.sum(axis=1, keepdims=True)
    kw = resolve(opts, x, -1, rng)
    for reduction in REDUCTIONS:
        def f(z):
            return np.sum(xentc.cross_entropy(z, t, reduction=reduction, **kw))
        _, grad = xentc.cross_entropy_and_grad(x, t, reduction=reduction, **kw)
        h = 1e-6
        fd = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            xp, xm = x.copy(), x.copy()
            xp[idx] += h
            xm[idx] -= h
            fd[idx] = (f(xp) - f(xm)) / (2 * h)
        np.testing.assert_allclose(grad, fd, atol=2e-7, rtol=1e-6)


@pytest.mark.parametrize("ncols", [3, 31, 33, 1000, 65536, 65537, 140001])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_lengths_short_cached_and_split(ncols, dtype):
    # Short rows, rows in cache and rows split into chunks take different
    # loops; all must agree with the reference.
    rng = np.random.default_rng(ncols)
    nrows = 3 if ncols > 10000 else 50
    x = (rng.standard_normal((nrows, ncols)) * 4).astype(dtype)
    y = rng.integers(0, ncols, nrows)
    y[1] = -100
    w = rng.random(ncols) + 0.5
    for kw in (dict(), dict(weight=w, label_smoothing=0.1, z_loss=0.01, softcap=3.0)):
        want = cross_entropy_ref(x, y, reduction="none", **kw)
        loss, grad = xentc.cross_entropy_and_grad(x, y, reduction="none", **kw)
        np.testing.assert_allclose(loss, want, **tol(dtype))
        np.testing.assert_allclose(
            grad, cross_entropy_grad_ref(x, y, reduction="none", **kw),
            rtol=tol(dtype)["rtol"], atol=1e-6 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_split_rows_whose_chunks_differ(dtype):
    # Rows of three chunks (65536, 65536, 8465): the gradient rescales each
    # chunk's kept exps (taken relative to the chunk's own max) by
    # exp(chunk max - row max). Chunks far below the row's max (their exps
    # underflow relative to it), a chunk of -inf only, the max in the last
    # chunk, +inf and NaN in one chunk: against the float64 reference, and
    # ignored rows give 0.
    chunk = xentc._core.chunk_size()
    ncols = 2 * chunk + 8465
    rng = np.random.default_rng(7)
    x = rng.standard_normal((8, ncols))
    x[0, :chunk] -= 120.0                 # exp(x - rowmax) below float32's range
    x[1, chunk:2 * chunk] = -np.inf       # a chunk of -inf
    x[2, -1] = 40.0                       # the max in the last chunk
    x[3, :chunk] -= 700.0                 # below float64's range too
    x[4, 5] = np.inf
    x[5, chunk + 3] = np.nan
    x[6] += 1e4                           # large logits
    x = x.astype(dtype)
    y = np.array([3, 0, ncols - 1, 2 * chunk + 7, 0, 4, 9, -100])
    # (a loss of 1e-12 in row 2: float32's sum of 140000 tiny exps carries a
    # relative error near 1e-4, hence an absolute tolerance too)
    atol = 1e-6 if dtype == np.float32 else 1e-13
    rows = [0, 2, 3, 4, 5, 6, 7]          # row 1 below: the reference takes no -inf
    for kw in (dict(), dict(weight=rng.random(ncols) + 0.5, label_smoothing=0.1, z_loss=0.01)):
        loss, grad = xentc.cross_entropy_and_grad(x, y, reduction="none", **kw)
        want_loss = cross_entropy_ref(x[rows], y[rows], reduction="none", **kw)
        want_grad = cross_entropy_grad_ref(x[rows], y[rows], reduction="none", **kw)
        np.testing.assert_allclose(loss[rows], want_loss, rtol=tol(dtype)["rtol"], atol=atol)
        np.testing.assert_allclose(grad[rows], want_grad, rtol=tol(dtype)["rtol"], atol=atol)
        assert np.all(grad[7] == 0)
        # and as a loss alone, the same values
        np.testing.assert_allclose(xentc.cross_entropy(x, y, reduction="none", **kw), loss,
                                   rtol=tol(dtype)["rtol"], atol=atol)
    # the row with a chunk of -inf: the row without that chunk, and 0 there
    loss, grad = xentc.cross_entropy_and_grad(x[1:2], y[1:2], reduction="none")
    kept = np.r_[0:chunk, 2 * chunk:ncols]
    want_grad = cross_entropy_grad_ref(x[1:2, kept], y[1:2], reduction="none")
    np.testing.assert_allclose(loss, cross_entropy_ref(x[1:2, kept], y[1:2], reduction="none"),
                               rtol=tol(dtype)["rtol"], atol=atol)
    np.testing.assert_allclose(grad[:, kept], want_grad, rtol=tol(dtype)["rtol"], atol=atol)
    assert np.all(grad[0, chunk:2 * chunk] == 0)


@pytest.mark.parametrize("workers", [1, 2])
def test_split_rows_with_a_large_gradient_go_in_tiles(workers):
    # Logits past 32 MiB with a gradient: the chunked path takes its rows in
    # tiles of about 8 MiB (_chunked_tile_rows), all its passes one tile
    # after the other. The same bits as the same rows in calls too small
    # for tiles; special, ignored and smoothed rows, and in place.
    chunk = xentc._core.chunk_size()
    ncols = chunk + 1                          # two chunks, the second of 1
    nrows = (33 << 20) // (ncols * 4) + 3      # past 32 MiB of float32
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((nrows, ncols)) * 2).astype(np.float32)
    x[5, 7] = np.nan
    x[40, -1] = np.inf
    x[77, :chunk] = -np.inf                    # the max in the one-element chunk
    y = rng.integers(0, ncols, nrows)
    y[::9] = -100
    piece = 40                                 # 10 MiB: one tile
    for kw in ({}, {"label_smoothing": 0.1}):
        loss, grad = xentc.cross_entropy_and_grad(x, y, reduction="none", workers=workers, **kw)
        inplace = x.copy()
        loss2, _ = xentc.cross_entropy_and_grad(inplace, y, reduction="none", workers=workers,
                                                grad_out=inplace, **kw)
        for r0 in range(0, nrows, piece):
            part = slice(r0, r0 + piece)
            l, g = xentc.cross_entropy_and_grad(x[part], y[part], reduction="none",
                                                workers=workers, **kw)
            np.testing.assert_array_equal(l, loss[part])
            np.testing.assert_array_equal(g, grad[part])
            xp = x[part].copy()
            l, _ = xentc.cross_entropy_and_grad(xp, y[part], reduction="none",
                                                workers=workers, grad_out=xp, **kw)
            np.testing.assert_array_equal(l, loss2[part])
            np.testing.assert_array_equal(xp, inplace[part])


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32,
                                   np.uint32, np.int64, np.uint64])
def test_any_integer_target_dtype(dtype):
    x, y = make_case((6, 5), -1, np.float64, ignore_frac=0)
    want = xentc.cross_entropy(x, y.astype(np.int64))
    assert xentc.cross_entropy(x, y.astype(dtype)) == want


def test_one_hot_probability_targets_equal_indices():
    x, y = make_case((9, 6), -1, np.float64, ignore_frac=0)
    onehot = np.eye(6)[y]
    w = RNG.random(6) + 0.5
    for kw in (dict(), dict(weight=w)):
        a = xentc.cross_entropy(x, y, reduction="none", **kw)
        b = xentc.cross_entropy(x, onehot, reduction="none", **kw)
        np.testing.assert_allclose(a, b, rtol=1e-13)
    # Without class weights 'mean' also agrees (both divide by N).
    np.testing.assert_allclose(xentc.cross_entropy(x, y), xentc.cross_entropy(x, onehot),
                               rtol=1e-13)
    np.testing.assert_allclose(xentc.cross_entropy_and_grad(x, y)[1],
                               xentc.cross_entropy_and_grad(x, onehot)[1], atol=1e-15)


def test_from_probabilities_and_from_logits_agree():
    # Formulation 1 (probabilities + one-hot / indices) on softmax(x) equals
    # formulation 2 (logits + indices).
    x, y = make_case((50, 7), -1, np.float64, ignore_frac=0)
    p = xentc.softmax(x, axis=1)
    ce = xentc.cross_entropy(x, y)
    np.testing.assert_allclose(xentc.log_loss(p, y), ce, rtol=1e-12)
    np.testing.assert_allclose(xentc.log_loss(p, np.eye(7)[y]), ce, rtol=1e-12)
    np.testing.assert_allclose(xentc.nll_loss(xentc.log_softmax(x, axis=1), y), ce,
                               rtol=1e-12)


def test_kl_div_is_cross_entropy_minus_entropy():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 5))
    q = rng.random((8, 5))
    q[0, 2] = 0.0  # 0 log 0 = 0
    q /= q.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.sum(np.where(q > 0, q * np.log(q), 0.0), axis=1)
    for reduction in REDUCTIONS:
        kl = xentc.kl_div(x, q, reduction=reduction)
        np.testing.assert_allclose(kl, kl_div_ref(x, q, reduction=reduction), rtol=1e-12)
    np.testing.assert_allclose(xentc.kl_div(x, q, reduction="none"),
                               xentc.cross_entropy(x, q, reduction="none") - entropy,
                               rtol=1e-12, atol=1e-14)
    assert xentc.kl_div(np.log(q[1:]), q[1:]) == pytest.approx(0.0, abs=1e-14)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_and_log_loss_match_reference(reduction):
    x, y = make_case((10, 4), -1, np.float64)
    lp = xentc.log_softmax(x, axis=1)
    w = RNG.random(4) + 0.2
    s = RNG.random(10) + 0.2
    np.testing.assert_allclose(
        xentc.nll_loss(lp, y, weight=w, sample_weight=s, reduction=reduction),
        nll_loss_ref(lp, y, weight=w, sample_weight=s, reduction=reduction), rtol=1e-12)
    yv = np.where(y < 0, 0, y)
    p = np.exp(lp)
    p[0, :] = [1.0, 0.0, 0.0, 0.0]  # clipping at 0 and 1
    for target in (yv, np.eye(4)[yv]):
        np.testing.assert_allclose(
            xentc.log_loss(p, target, sample_weight=s, reduction=reduction),
            log_loss_ref(p, target, sample_weight=s, reduction=reduction), rtol=1e-12)


def test_all_ignored():
    x = RNG.standard_normal((3, 4))
    y = np.full(3, -100)
    assert np.isnan(xentc.cross_entropy(x, y))
    assert xentc.cross_entropy(x, y, reduction="sum") == 0.0
    loss, grad = xentc.cross_entropy_and_grad(x, y)
    assert np.isnan(loss) and np.all(grad == 0)


def test_custom_ignore_index_is_a_valid_class():
    x = RNG.standard_normal((4, 3))
    y = np.array([0, 2, 1, 2])
    got = xentc.cross_entropy(x, y, ignore_index=2, reduction="none")
    assert got[1] == 0 and got[3] == 0 and got[0] > 0


def test_non_finite_logits_give_nan_rows():
    x = np.array([[np.inf, 0.0, 1.0], [np.nan, 0, 0], [-np.inf] * 3, [0.0, 1.0, 2.0]])
    loss, grad = xentc.cross_entropy_and_grad(x, np.array([1, 0, 2, 2]), reduction="none")
    assert np.isnan(loss[:3]).all() and np.isfinite(loss[3])
    assert np.isnan(grad[:3]).all() and np.isfinite(grad[3]).all()


class TestGradOut:
    def test_preallocated(self):
        x, y = make_case((6, 5), -1, np.float32)
        want = xentc.cross_entropy_and_grad(x, y)
        buf = np.empty_like(x)
        loss, grad = xentc.cross_entropy_and_grad(x, y, grad_out=buf)
        assert grad is buf and loss == want[0]
        np.testing.assert_array_equal(grad, want[1])

    @pytest.mark.parametrize("axis", [-1, 0])
    def test_in_place_on_logits(self, axis):
        x, y = make_case((6, 5), axis, np.float64)
        loss0, grad0 = xentc.cross_entropy_and_grad(x, y, axis=axis, label_smoothing=0.1)
        loss, grad = xentc.cross_entropy_and_grad(x, y, axis=axis, label_smoothing=0.1,
                                                  grad_out=x)
        assert grad is x and loss == loss0
        np.testing.assert_array_equal(x, grad0)

    def test_non_contiguous_grad_out(self):
        x, y = make_case((6, 5), -1, np.float64)
        big = np.zeros((6, 10))
        view = big[:, ::2]
        _, grad = xentc.cross_entropy_and_grad(x, y, grad_out=view)
        assert grad is view
        np.testing.assert_array_equal(view, xentc.cross_entropy_and_grad(x, y)[1])
        assert np.all(big[:, 1::2] == 0)

    @pytest.mark.parametrize("bad", [np.empty((6, 4)), np.empty((6, 5), np.float32)])
    def test_wrong_shape_or_dtype(self, bad):
        x, y = make_case((6, 5), -1, np.float64)
        with pytest.raises(ValueError, match="grad_out"):
            xentc.cross_entropy_and_grad(x, y, grad_out=bad)


class TestBadInput:
    x = np.zeros((4, 3))

    def test_index_target_wrong_shape(self):
        with pytest.raises(ValueError, match=r"shape \(4,\)"):
            xentc.cross_entropy(self.x, np.zeros(3, int))

    def test_float_target_wrong_shape(self):
        with pytest.raises(ValueError, match="probabilities"):
            xentc.cross_entropy(self.x, np.zeros(4))

    def test_out_of_range_target_names_value_and_position(self):
        with pytest.raises(IndexError, match=r"Target 3 .*position \(2,\)"):
            xentc.cross_entropy(self.x, np.array([0, 1, 3, 7]))
        with pytest.raises(IndexError, match=r"Target -1 "):
            xentc.cross_entropy(self.x, np.array([0, -1, 0, 0]))

    def test_weights(self):
        with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
            xentc.cross_entropy(self.x, np.zeros(4, int), weight=[1.0, 2.0])
        with pytest.raises(ValueError, match=r"weight\[1\] = nan; weights must be finite"):
            xentc.cross_entropy(self.x, np.zeros(4, int), weight=[1.0, np.nan, 1.0])
        # any finite weight is accepted, as torch accepts it
        xentc.cross_entropy(self.x, np.zeros(4, int), weight=[1.0, -2.0, 0.0])
        xentc.cross_entropy(self.x, np.zeros(4, int), sample_weight=[1.0, -2.0, 0.0, 1])
        with pytest.raises(ValueError, match="sample_weight"):
            xentc.cross_entropy(self.x, np.zeros(4, int), sample_weight=[1.0, 2.0])

    @pytest.mark.parametrize("eps", [-0.1, 1.5, np.nan])
    def test_label_smoothing_range(self, eps):
        with pytest.raises(ValueError, match="label_smoothing"):
            xentc.cross_entropy(self.x, np.zeros(4, int), label_smoothing=eps)

    def test_reduction(self):
        with pytest.raises(ValueError, match="reduction"):
            xentc.cross_entropy(self.x, np.zeros(4, int), reduction="avg")

    def test_other_options(self):
        with pytest.raises(ValueError, match="softcap"):
            xentc.cross_entropy(self.x, np.zeros(4, int), softcap=0.0)
        with pytest.raises(ValueError, match="z_loss"):
            xentc.cross_entropy(self.x, np.zeros(4, int), z_loss=-1.0)
        with pytest.raises(TypeError, match="target"):
            xentc.cross_entropy(self.x, np.zeros(4, bool))
        with pytest.raises(TypeError, match="logits"):
            xentc.cross_entropy(self.x.astype(bool), np.zeros(4, int))
        with pytest.raises(ValueError, match="class axis"):
            xentc.cross_entropy(np.float64(1.0), np.int64(0))
        with pytest.raises(ValueError, match="no classes"):
            xentc.cross_entropy(np.zeros((4, 0)), np.zeros(4, int))

    def test_log_loss_probabilities_checked(self):
        with pytest.raises(ValueError, match=r"probs\[0, 1\]"):
            xentc.log_loss(np.array([[0.5, 1.5]]), np.array([0]))
        with pytest.raises(ValueError, match="probs"):
            xentc.log_loss(np.array([[0.5, np.nan]]), np.array([0]))


def test_empty_batch():
    x = np.zeros((0, 3))
    y = np.zeros(0, int)
    assert np.isnan(xentc.cross_entropy(x, y))
    assert xentc.cross_entropy(x, y, reduction="sum") == 0
    assert xentc.cross_entropy(x, y, reduction="none").shape == (0,)
    loss, grad = xentc.cross_entropy_and_grad(x, y)
    assert grad.shape == (0, 3)


def test_workers_bitwise_identical():
    rng = np.random.default_rng(9)
    for shape in [(300, 1000), (3, 200001), (40000, 7)]:
        x = rng.standard_normal(shape).astype(np.float32)
        y = rng.integers(0, shape[1], shape[0])
        results = [xentc.cross_entropy_and_grad(x, y, label_smoothing=0.1, workers=w)
                   for w in (1, 2, 3, -1)]
        for loss, grad in results[1:]:
            assert loss.tobytes() == results[0][0].tobytes()
            assert grad.tobytes() == results[0][1].tobytes()


def test_multinomial_logistic_regression_example_converges():
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parents[1] / "examples" / "multinomial_logistic_regression.py"
    spec = importlib.util.spec_from_file_location("mlr_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    X, y, _ = mod.make_data(n_samples=1500, seed=1)
    W, res = mod.fit(X, y, n_classes=4)
    assert res.success
    Xb = np.hstack([X, np.ones((X.shape[0], 1))])
    # Training accuracy of the fitted model is well above chance (0.25), and
    # the gradient at the optimum vanishes.
    assert np.mean(np.argmax(Xb @ W, axis=1) == y) > 0.7
    assert np.max(np.abs(res.jac)) < 1e-4


def test_zero_mean_denominator_is_nan_as_in_torch():
    # Every non-ignored target has class weight 0: torch's mean is NaN (0/0),
    # with or without label smoothing; the gradient is NaN on those rows.
    x = np.random.default_rng(4).random((3, 4))
    y = np.array([0, 1, -100])
    w = np.array([0.0, 0.0, 1.0, 1.0])
    for eps in (0.0, 0.1):
        loss, grad = xentc.cross_entropy_and_grad(x, y, weight=w, label_smoothing=eps)
        assert np.isnan(loss)
        np.testing.assert_array_equal(
            grad, cross_entropy_grad_ref(x, y, weight=w, label_smoothing=eps))


def test_probability_targets_reject_nonnegative_ignore_index():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="ignore_index"):
        xentc.cross_entropy(x, np.full((2, 3), 1 / 3), ignore_index=0)


@pytest.mark.parametrize("target_kind", ["index", "prob"])
def test_reduction_over_tiles_matches_per_sample_losses(monkeypatch, target_kind):
    # The reduced loss is summed tile by tile (_TILE_ROWS rows per kernel
    # call); with small tiles, every tile boundary and the short last tile
    # must give the sum of the per-sample losses and the untiled gradient.
    from xentc import _cross_entropy
    rng = np.random.default_rng(21)
    n, c = 5000, 7
    x = rng.standard_normal((n, c))
    if target_kind == "index":
        y = rng.integers(0, c, n)
        y[::13] = -100
    else:
        y = rng.dirichlet(np.ones(c), n)
    opts = dict(weight=rng.uniform(0.5, 2.0, c), sample_weight=rng.uniform(0, 1, n),
                label_smoothing=0.1)
    if target_kind == "prob":
        del opts["weight"]
    for reduction in ("sum", "mean"):
        whole_loss, whole_grad = xentc.cross_entropy_and_grad(x, y, reduction=reduction,
                                                               **opts)
        monkeypatch.setattr(_cross_entropy, "_TILE_ROWS", 1024)
        loss, grad = xentc.cross_entropy_and_grad(x, y, reduction=reduction, **opts)
        plain = xentc.cross_entropy(x, y, reduction=reduction, **opts)
        monkeypatch.undo()
        per_sample = xentc.cross_entropy(x, y, reduction="none", **opts)
        want = np.sum(per_sample)
        if reduction == "mean":
            sw = opts["sample_weight"]
            if target_kind == "index":
                valid = y >= 0
                want = want / np.sum(np.where(valid, opts["weight"][np.where(valid, y, 0)],
                                              0.0) * sw)
            else:
                want = want / np.sum(sw)
        np.testing.assert_allclose([loss, plain, whole_loss], want, rtol=1e-13)
        np.testing.assert_array_equal(grad, whole_grad)


def test_valid_index_targets_are_not_copied():
    from xentc import _targets
    y = np.array([0, 2, 1, 2, 0])
    flat, nvalid = _targets.index_targets(y, 3, (5,), -100, "f")
    assert nvalid == 5 and np.shares_memory(flat, y)
    # An ignored target needs the -1 marking: a copy, the input unchanged.
    y2 = np.array([0, -100, 1])
    flat, nvalid = _targets.index_targets(y2, 3, (3,), -100, "f")
    assert nvalid == 2 and flat.tolist() == [0, -1, 1]
    assert y2.tolist() == [0, -100, 1]
    # ignore_index may be a class: those targets are ignored, not valid.
    flat, nvalid = _targets.index_targets(y, 3, (5,), 2, "f")
    assert nvalid == 3 and flat.tolist() == [0, -1, 1, -1, 0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_plain_fast_path_matches_general_path(dtype, reduction):
    # The common call (2-D logits, int64 targets, default options) skips
    # the general set-up (_plain_problem); int32 targets take the general
    # one. Same losses, same reduction: the same bits.
    from xentc import _cross_entropy
    rng = np.random.default_rng(3)
    for n, c in [(1, 5), (37, 10), (300, 1000), (3, 70000)]:
        x = rng.standard_normal((n, c)).astype(dtype)
        y = rng.integers(0, c, n)
        assert _cross_entropy._plain_problem(x, y, -1, None, None, -100, reduction,
                                             0.0, 0.0, None) is not None
        fast = xentc.cross_entropy(x, y, reduction=reduction)
        general = xentc.cross_entropy(x, y.astype(np.int32), reduction=reduction)
        assert np.asarray(fast).dtype == dtype and np.shape(fast) == np.shape(general)
        assert np.asarray(fast).tobytes() == np.asarray(general).tobytes()
        fl, fg = xentc.cross_entropy_and_grad(x, y, reduction=reduction)
        gl, gg = xentc.cross_entropy_and_grad(x, y.astype(np.int32), reduction=reduction)
        assert np.asarray(fl).tobytes() == np.asarray(gl).tobytes()
        assert fg.dtype == gg.dtype and fg.tobytes() == gg.tobytes()


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("where", [0, 70000, 99999])
def test_many_targets_checked_in_parallel(workers, where):
    # 100000 targets: the fast paths count them on `workers` threads
    # (_count_class_indices, _expect_targets) and scan in order only for
    # the error: the first bad or ignored position wherever it is
    from xentc import _core
    rng = np.random.default_rng(5)
    n, c = 100000, 3
    x = rng.standard_normal((n, c)).astype(np.float32)
    y = rng.integers(0, c, n)
    want = xentc.cross_entropy(x, y)
    ignored = y.copy()
    ignored[where] = -100
    assert _core.ce_plain(x, ignored, -100, 1 << 18, workers) is None
    assert _core.prepare_index_targets(ignored, c, -100, np.empty(0, np.int64),
                                       workers) == (-1, n - 1)
    ref = xentc.cross_entropy(np.delete(x, where, 0), np.delete(y, where), reduction="sum")
    got = xentc.cross_entropy(x, ignored, reduction="sum", workers=workers)
    assert abs(got - ref) <= 1e-5 * abs(ref)
    bad = y.copy()
    bad[where] = c
    assert _core.prepare_index_targets(bad, c, -100, np.empty(0, np.int64),
                                       workers) == (where, n - 1)
    with pytest.raises(IndexError, match=f"Target 3 is out of bounds at position \\({where},\\)"):
        xentc.cross_entropy(x, bad, workers=workers)
    with pytest.raises(ValueError, match=f"target\\[{where}\\] is 3, expected < 3"):
        _core.ce_rows(x, bad, None, _core.CEOptions(), None, 1.0, np.empty(n), None, None,
                      workers)
    assert xentc.cross_entropy(x, y, workers=workers) == want


def test_plain_fast_path_declines_what_it_does_not_handle():
    from xentc import _cross_entropy
    x = RNG.standard_normal((6, 4))
    y = np.array([0, 1, 2, 3, 0, 1])

    def plain(**kw):
        args = dict(logits=x, target=y, axis=-1, weight=None, sample_weight=None,
                    ignore_index=-100, reduction="mean", label_smoothing=0.0,
                    z_loss=0.0, softcap=None)
        args.update(kw)
        return _cross_entropy._plain_problem(**args)

    assert plain() is not None
    for kw in [dict(target=np.array([0, 1, -100, 3, 0, 1])),   # an ignored row
               dict(target=np.array([0, 1, 4, 3, 0, 1])),      # out of range
               dict(ignore_index=2), dict(weight=np.ones(4)), dict(label_smoothing=0.1),
               dict(z_loss=1e-4), dict(softcap=30.0), dict(sample_weight=np.ones(6)),
               dict(reduction="avg"), dict(axis=0), dict(logits=x.T.copy().T),
               dict(logits=x[None]), dict(logits=x.astype(np.float16)),
               dict(target=y.astype(np.int32)), dict(label_smoothing=False),
               dict(ignore_index=1 << 70)]:
        assert plain(**kw) is None, kw
    # and those calls keep the general path's answers and errors
    with pytest.raises(IndexError, match="out of bounds"):
        xentc.cross_entropy(x, np.array([0, 1, 4, 3, 0, 1]))
    with pytest.raises(ValueError, match="reduction"):
        xentc.cross_entropy(x, y, reduction="avg")


def test_one_call_plain_path_tiles_and_declines(monkeypatch):
    # _core.ce_plain serves cross_entropy's common call ('mean'/'sum'): its
    # tiles must sum as _Problem.loss's do, and it leaves ignored or bad
    # targets to the general path.
    from xentc import _core, _cross_entropy
    rng = np.random.default_rng(8)
    x = rng.standard_normal((37, 9)).astype(np.float32)
    y = rng.integers(0, 9, 37)
    monkeypatch.setattr(_cross_entropy, "_TILE_ROWS", 16)
    for reduction in ("mean", "sum"):
        fast = xentc.cross_entropy(x, y, reduction=reduction)
        general = xentc.cross_entropy(x, y.astype(np.int32), reduction=reduction)
        assert fast.tobytes() == general.tobytes()
    total = _core.ce_plain(x, y, -100, 16, 2)
    assert np.float32(total) == xentc.cross_entropy(x, y, reduction="sum")
    y_ignored = y.copy()
    y_ignored[3] = -100
    assert _core.ce_plain(x, y_ignored, -100, 16, 1) is None
    assert _core.ce_plain(x, np.where(y == 0, 9, y), -100, 16, 1) is None
    with pytest.raises(ValueError, match="len\\(target\\)"):
        _core.ce_plain(x, y[:5], -100, 16, 1)
    with pytest.raises(ValueError, match="nthreads"):
        _core.ce_plain(x, y, -100, 16, 0)


def _rows_over_chunks(seed, ncols, nchunks, extra, dtype=np.float32):
    """Logits and class indices of nchunks whole loss_order chunks of rows
    and `extra` more (the fused kernels' tasks), and the chunk."""
    from xentc import _core
    rng = np.random.default_rng(seed)
    chunk, _ = _core.loss_order(ncols, 1)
    n = nchunks * chunk + extra
    return rng.standard_normal((n, ncols)).astype(dtype), rng.integers(0, ncols, n), chunk


def _sum_in_order(losses, chunk, total=0.0):
    """loss_order's sum, spelled out: chunks of `chunk` values, each as
    eight running sums over the positions mod 8 added pairwise, the chunk
    sums added in order."""
    for s in range(0, len(losses), chunk):
        part = [0.0] * 8
        for i, v in enumerate(losses[s:s + chunk]):
            part[i % 8] += float(v)
        total += ((part[0] + part[1]) + (part[2] + part[3])) + (
            (part[4] + part[5]) + (part[6] + part[7]))
    return total


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ncols", [2, 9, 5000])
def test_plain_path_sums_in_chunks_as_the_general_path(monkeypatch, dtype, ncols):
    # ce_plain sums each fused task's losses on its thread, the task sums in
    # order; the general path's tiles must add up the same: whole chunks of
    # loss_order, summed chunk by chunk, whatever _TILE_ROWS is. 5000
    # classes are past the fused kernels (ce_rows over tiles).
    from xentc import _core, _cross_entropy
    rng = np.random.default_rng(81)
    chunk, tile = _core.loss_order(ncols, 16)
    assert tile == chunk and chunk % 16 == 0
    assert _core.loss_order(ncols, 5 * chunk + 3) == (chunk, 5 * chunk)
    n = 3 * chunk + 37                       # several chunks, a short last one
    x = rng.standard_normal((n, ncols)).astype(dtype)
    y = rng.integers(0, ncols, n)
    per_row = xentc.cross_entropy(x, y, reduction="none").astype(np.float64)
    losses = np.empty(n)
    _core.ce_rows(x, y, None, _core.CEOptions(), None, 1.0, losses, None, None, 1)
    want = _sum_in_order(losses, chunk)
    assert _core.sum_losses(losses, chunk) == want
    assert _core.sum_losses(losses[chunk:], chunk, _core.sum_losses(losses[:chunk])) == want
    for workers in (1, 2, 3):
        assert _core.ce_plain(x, y, -100, 1 << 18, workers) == want
    monkeypatch.setattr(_cross_entropy, "_TILE_ROWS", 16)   # tiles of one chunk
    for reduction in ("mean", "sum"):
        fast = xentc.cross_entropy(x, y, reduction=reduction)
        general = xentc.cross_entropy(x, y.astype(np.int32), reduction=reduction)
        assert fast.tobytes() == general.tobytes()
    assert xentc.cross_entropy(x, y, reduction="sum") == dtype(want)
    assert abs(want - per_row.sum()) <= 1e-6 * abs(want)


@pytest.mark.parametrize("workers", [1, 2])
def test_plain_fused_path_checks_targets_in_every_task(workers):
    # the fused kernels check each task's targets before reading a logit
    # (check_targets): ce_plain declines a bad, huge, negative or ignored
    # target in any task, a class-valued ignore_index included, and the
    # general path then answers
    from xentc import _core
    ncols = 4
    x, y, chunk = _rows_over_chunks(82, ncols, 3, 5)
    n = len(y)
    assert _core.ce_plain(x, y, -100, 1 << 18, workers) is not None
    for where in (0, chunk - 1, 2 * chunk + 7, n - 1):
        for value in (ncols, 1 << 40, -1, -(1 << 62), -100):
            bad = y.copy()
            bad[where] = value
            assert _core.ce_plain(x, bad, -100, 1 << 18, workers) is None, (where, value)
        assert _core.ce_plain(x, y, int(y[where]), 1 << 18, workers) is None
    bad = y.copy()
    bad[n - 1] = ncols
    with pytest.raises(IndexError, match=f"Target 4 is out of bounds at position \\({n - 1},\\)"):
        xentc.cross_entropy(x, bad, workers=workers)
    ignored = y.copy()
    ignored[chunk] = 2
    got = xentc.cross_entropy(x, ignored, ignore_index=2, reduction="sum")
    mask = ignored != 2     # every row of class 2 is ignored
    ref = xentc.cross_entropy(x[mask], ignored[mask], reduction="sum")
    assert abs(got - ref) <= 1e-5 * abs(ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ncols", [3, 9, 5000])
def test_plain_and_grad_path_matches_the_general_path(dtype, ncols):
    # cross_entropy_and_grad's common call runs in one _core.ce_plain call;
    # its loss and gradient must be the general path's bits (int32 targets
    # take that path), into a new array, into grad_out, and in place
    x, y, _ = _rows_over_chunks(83, ncols, 2, 21, dtype)
    for reduction in ("mean", "sum"):
        want_loss, want_grad = xentc.cross_entropy_and_grad(x, y.astype(np.int32),
                                                           reduction=reduction)
        assert want_loss.dtype == dtype and want_grad.dtype == dtype
        for workers in (1, 2, 3):
            loss, grad = xentc.cross_entropy_and_grad(x, y, reduction=reduction,
                                                      workers=workers)
            assert loss.tobytes() == want_loss.tobytes()
            assert grad.tobytes() == want_grad.tobytes()
            out = np.full_like(x, np.nan)
            loss, grad = xentc.cross_entropy_and_grad(x, y, reduction=reduction,
                                                      grad_out=out, workers=workers)
            assert grad is out and loss.tobytes() == want_loss.tobytes()
            assert out.tobytes() == want_grad.tobytes()
            # in place against the general path in place (past the fused
            # kernels, rows computed in place take their exps again from the
            # logits: an ulp from the gradient into another array)
            z, z32 = x.copy(), x.copy()
            xentc.cross_entropy_and_grad(z32, y.astype(np.int32), reduction=reduction,
                                         grad_out=z32)
            loss, grad = xentc.cross_entropy_and_grad(z, y, reduction=reduction,
                                                      grad_out=z, workers=workers)
            assert grad is z and loss.tobytes() == want_loss.tobytes()
            assert z.tobytes() == z32.tobytes()


@pytest.mark.parametrize("workers", [1, 2])
def test_plain_and_grad_path_declines_bad_targets(workers):
    # a target that is not a class index in the last task: the fused check
    # finds it after other tasks wrote their gradient rows; the general
    # path then answers (its error, or its result for an ignored row), and
    # logits given as grad_out are untouched when it raises
    from xentc import _core
    ncols = 6
    x, y, _ = _rows_over_chunks(84, ncols, 3, 9)
    n = len(y)
    bad = y.copy()
    bad[n - 2] = ncols
    z = x.copy()
    with pytest.raises(IndexError, match=f"out of bounds at position \\({n - 2},\\)"):
        xentc.cross_entropy_and_grad(z, bad, grad_out=z, workers=workers)
    assert z.tobytes() == x.tobytes()
    with pytest.raises(IndexError, match="out of bounds"):
        xentc.cross_entropy_and_grad(x, bad, grad_out=np.empty_like(x), workers=workers)
    assert _core.ce_plain(z, bad, -100, 1 << 18, workers, z, 1.0) is None
    assert z.tobytes() == x.tobytes()
    ignored = y.copy()
    ignored[n - 2] = -100
    want_loss, want_grad = xentc.cross_entropy_and_grad(x, ignored.astype(np.int32))
    out = np.full_like(x, np.nan)
    loss, grad = xentc.cross_entropy_and_grad(x, ignored, grad_out=out, workers=workers)
    assert loss.tobytes() == want_loss.tobytes() and out.tobytes() == want_grad.tobytes()
    assert not grad[n - 2].any()
    # grad_out overlapping the logits without being them: the general path
    # (which computes into a buffer first), same answer as with int32 targets
    def overlapped():
        base = np.empty((n + 1) * ncols, np.float32)
        logits = base[ncols:].reshape(n, ncols)
        logits[...] = x
        return logits, base[:-ncols].reshape(n, ncols)

    logits, out = overlapped()
    loss, grad = xentc.cross_entropy_and_grad(logits, y, grad_out=out, workers=workers)
    logits, out32 = overlapped()
    want_loss, _ = xentc.cross_entropy_and_grad(logits, y.astype(np.int32), grad_out=out32)
    assert loss.tobytes() == want_loss.tobytes() and out.tobytes() == out32.tobytes()


@pytest.mark.parametrize("dtype,big", [(np.float32, 2.0**100), (np.float32, -2.0**100),
                                       (np.float64, 2.0**1000), (np.float64, -2.0**1000)])
@pytest.mark.parametrize("ncols", [10, 1000, 70001])
def test_huge_logits_lose_nothing(dtype, big, ncols):
    # Rows of huge logits: lse = max + log(S) rounds log(S) away, so the
    # loss must be taken relative to the max (as torch's log_softmax does):
    # lse - x_y as max + log(S) - x_y gave 0 and the probability-target sums
    # cancelled to millions (found by tools/fuzz.py, seed 11).
    # Rows 0, 1: all classes equal; row 2: three maxima, the rest far below.
    x = np.full((3, ncols), big, dtype)
    x[2, 3:] = big / 2 if big > 0 else big * 2
    y = np.array([0, ncols - 1, 2])
    logc, log3 = np.log(ncols), np.log(3.0)
    want = np.array([logc, logc, log3])
    rtol = 4 * np.finfo(dtype).eps
    got = xentc.cross_entropy(x, y, reduction="none")
    np.testing.assert_allclose(got, want, rtol=rtol)
    w = np.linspace(0.5, 2.0, ncols)
    got_w = xentc.cross_entropy(x[:2], y[:2], weight=w, reduction="none")
    np.testing.assert_allclose(got_w, w[y[:2]] * logc, rtol=rtol)
    # smoothing sums every class: equal rows only (row 2 has -log p = inf)
    got_s = xentc.cross_entropy(x[:2], y[:2], label_smoothing=0.2, reduction="none")
    np.testing.assert_allclose(got_s, [logc, logc], rtol=rtol)
    q = np.zeros((3, ncols), dtype)
    q[:2] = 1.0 / ncols
    q[2, :3] = 1.0 / 3
    got_p = xentc.cross_entropy(x, q, reduction="none")
    # sum q is 1 only up to its summation's rounding, ~ncols eps
    np.testing.assert_allclose(got_p, want, rtol=ncols * np.finfo(dtype).eps)
    loss, grad = xentc.cross_entropy_and_grad(x, y, reduction="sum")
    np.testing.assert_allclose(loss, want.sum(), rtol=rtol)
    p = np.zeros((3, ncols))
    p[:2] = 1.0 / ncols
    p[2, :3] = 1.0 / 3
    p[np.arange(3), y] -= 1.0
    np.testing.assert_allclose(grad, p, rtol=rtol, atol=rtol / ncols)


SIGNED_W = np.array([2.0, -2.0, 0.0, 1.5])


@pytest.mark.parametrize("smoothing", [0.0, 0.2, 1.0])
@pytest.mark.parametrize("z_loss", [0.0, 1e-2])
@pytest.mark.parametrize("targets", [
    [0, 1, 3, 3, -100],      # sum of w[y] = 3: an ordinary signed mean
    [0, 1, 0, 1, -100],      # sum of w[y] = 0: torch divides by zero
    [2, 2, 2, -100, 2],      # only zero weights: 0/0 in the NLL term
    [-100] * 5,              # every sample ignored
])
def test_signed_class_weights_agree_everywhere(targets, smoothing, z_loss):
    """Signed class weights (torch accepts any finite weight): cross_entropy,
    its gradient, the class-sharded partials and the reference agree, the
    zero 'mean' denominator included (+-inf or NaN, never an exception).
    tests/golden pins the torch values; this pins every xentc path to the
    same division."""
    from ce_reference import cross_entropy_grad_ref, cross_entropy_ref

    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 4)) * 3
    y = np.array(targets)
    kw = dict(weight=SIGNED_W, label_smoothing=smoothing, z_loss=z_loss)
    for reduction in ("mean", "sum", "none"):
        want = cross_entropy_ref(x, y, reduction=reduction, **kw)
        got = xentc.cross_entropy(x, y, reduction=reduction, **kw)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, equal_nan=True)
        loss, grad = xentc.cross_entropy_and_grad(x, y, reduction=reduction, **kw)
        np.testing.assert_array_equal(loss, got)
        np.testing.assert_allclose(grad, cross_entropy_grad_ref(x, y, reduction=reduction,
                                                                **kw),
                                   rtol=1e-10, atol=1e-12, equal_nan=True)
        parts = [xentc.cross_entropy_partial(x[:, a:b], y, class_offset=a,
                                             weight=SIGNED_W[a:b], label_smoothing=smoothing,
                                             z_loss=z_loss) for a, b in ((0, 2), (2, 4))]
        merged = parts[0].merge(parts[1]).finalize(reduction)
        np.testing.assert_allclose(merged, want, rtol=1e-12, atol=1e-12, equal_nan=True)
    if np.sum(SIGNED_W[y[y >= 0]]) == 0:
        assert not np.isfinite(xentc.cross_entropy(x, y, **kw))


def test_signed_sample_weights_scale_like_class_weights():
    """A sample weight is a per-sample factor on the same footing as the class
    weight: weight[target] passed as sample_weight gives the class-weighted
    loss and gradient, negative values included."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 4))
    y = np.array([0, 1, 3, 3, 2, 1])
    for reduction in ("mean", "sum", "none"):
        a = xentc.cross_entropy_and_grad(x, y, weight=SIGNED_W, reduction=reduction)
        b = xentc.cross_entropy_and_grad(x, y, sample_weight=SIGNED_W[y], reduction=reduction)
        np.testing.assert_allclose(a[0], b[0], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-13, atol=1e-15)


def test_zero_denominator_ignored_rows_stay_zero_with_a_soft_cap():
    """(fuzz seed 7, case 44154) an ignored row holding NaN keeps a zero
    gradient at a zero 'mean' denominator, soft cap or not: the cap's
    derivative (NaN there) must not reach it."""
    x = np.array([[0.0, np.nan, 1.0], [1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    y = np.array([-100, 1, 2])
    w = np.array([1.0, 2.0, -2.0])   # w[1] + w[2] = 0
    for softcap in (None, 5.0):
        loss, grad = xentc.cross_entropy_and_grad(x, y, weight=w, softcap=softcap)
        assert np.isinf(loss)
        np.testing.assert_array_equal(grad[0], 0.0)
        assert not np.isfinite(grad[1:]).any()
