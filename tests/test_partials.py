"""Mergeable partials: lse_partial / LSEPartial and the vocabulary-parallel
cross_entropy_partial / CEPartial, checked against the in-memory functions
on the whole rows."""
import functools
import pickle

import numpy as np
import pytest

import xentc
from xentc import CEPartial, LSEPartial, cross_entropy_partial, lse_partial

RTOL = {np.float32: 2e-6, np.float64: 1e-13}


def random_bounds(rng, n, nshards, allow_empty=True):
    """Sorted cut points 0 = b0 <= b1 <= ... <= b_k = n (empty shards allowed)."""
    cuts = rng.integers(0, n + 1, size=nshards - 1)
    if not allow_empty:
        cuts = rng.choice(np.arange(1, n), size=nshards - 1, replace=False)
    return [0, *sorted(int(c) for c in cuts), n]


def shards(x, bounds, axis=-1):
    idx = [slice(None)] * x.ndim
    out = []
    for a, b in zip(bounds, bounds[1:]):
        idx[axis] = slice(a, b)
        out.append(x[tuple(idx)])
    return out


def merged(parts):
    return functools.reduce(lambda p, q: p.merge(q), parts)


def bits(p):
    return p.to_array().view(np.uint64)


# ---- LSEPartial -------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(6))
def test_random_splits_match_logsumexp(dtype, seed):
    rng = np.random.default_rng(seed)
    c = int(rng.integers(1, 300))
    x = (rng.standard_normal((7, c)) * rng.choice([1.0, 30.0])).astype(dtype)
    bounds = random_bounds(rng, c, int(rng.integers(1, 7)))
    got = merged([lse_partial(s) for s in shards(x, bounds)]).logsumexp()
    want = xentc.logsumexp(x.astype(np.float64), axis=1)
    # float32 terms come from the float32 vector exp (accumulated in double):
    # float32-accurate; float64 input is float64-accurate.
    np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=0)
    assert got.dtype == np.float64


def test_long_rows_split_across_kernel_chunks():
    # Shards longer than the kernels' chunk (65536) and cut inside a chunk.
    rng = np.random.default_rng(1)
    c = xentc._core.chunk_size() * 2 + 777
    x = rng.standard_normal((2, c))
    bounds = [0, 1000, xentc._core.chunk_size() + 5, c]
    got = merged([lse_partial(s) for s in shards(x, bounds)]).logsumexp()
    np.testing.assert_allclose(got, xentc.logsumexp(x, axis=1), rtol=1e-14, atol=0)


@pytest.mark.parametrize("axis", [0, 1, 2, -2])
def test_any_axis_and_row_shape(axis):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 5, 6))
    n = x.shape[axis]
    got = merged([lse_partial(s, axis=axis)
                  for s in shards(x, [0, 1, n - 1, n], axis=axis)])
    assert got.shape == tuple(np.delete(x.shape, axis))
    np.testing.assert_allclose(got.logsumexp(), xentc.logsumexp(x, axis=axis),
                               rtol=1e-14, atol=0)


def test_one_d_input_gives_scalar():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    lse = merged([lse_partial(x[:3]), lse_partial(x[3:])]).logsumexp()
    assert np.ndim(lse) == 0
    assert float(lse) == pytest.approx(float(xentc.logsumexp(x)), rel=1e-15)


def test_empty_shard_is_the_identity():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 9))
    empty = lse_partial(x[:, :0])
    assert np.array_equal(empty.to_array(), LSEPartial.empty(5).to_array())
    p = lse_partial(x)
    assert np.array_equal(bits(empty.merge(p)), bits(p))
    assert np.array_equal(bits(p.merge(empty)), bits(p))
    assert np.all(empty.logsumexp() == -np.inf)


def test_merge_is_commutative_bitwise():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((50, 40)) * 10
    x[::7, 3] = x[::7, 30]  # ties of the maximum across shards
    a, b = lse_partial(x[:, :20]), lse_partial(x[:, 20:])
    assert np.array_equal(bits(a.merge(b)), bits(b.merge(a)))


def test_merge_is_associative_in_value():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((50, 60)) * 20
    a, b, c = (lse_partial(s) for s in shards(x, [0, 13, 41, 60]))
    left, right = a.merge(b).merge(c), a.merge(b.merge(c))
    assert np.array_equal(left.max, right.max)
    assert np.array_equal(left.nmax, right.nmax)
    assert np.array_equal(left.flags, right.flags)
    np.testing.assert_allclose(left.rest, right.rest, rtol=1e-14)
    np.testing.assert_allclose(left.logsumexp(), right.logsumexp(), rtol=1e-15)


def test_merge_is_deterministic_and_thread_independent():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((300, 2000)).astype(np.float32)
    parts1 = [lse_partial(s, workers=1) for s in shards(x, [0, 700, 1999, 2000])]
    parts2 = [lse_partial(s, workers=2) for s in shards(x, [0, 700, 1999, 2000])]
    for p, q in zip(parts1, parts2):
        assert np.array_equal(bits(p), bits(q))
    assert np.array_equal(bits(merged(parts1)), bits(merged(parts2)))


def test_keeps_small_terms_as_logsumexp_does():
    # [0, -40]: log1p(exp(-40)) = 4.2e-18 survives the merge of the shards.
    lse = merged([lse_partial([0.0]), lse_partial([-40.0])]).logsumexp()
    assert float(lse) == pytest.approx(4.248354255291589e-18, rel=1e-15)


SPECIAL_ROWS = [
    [np.nan, 1.0, 2.0, 3.0],
    [1.0, 2.0, 3.0, np.nan],
    [np.inf, 1.0, 2.0, 3.0],
    [1.0, 2.0, 3.0, np.inf],
    [np.inf, np.nan, 0.0, 1.0],
    [-np.inf, -np.inf, -np.inf, -np.inf],
    [-np.inf, 0.0, -np.inf, 1.0],
    [np.inf, -np.inf, 0.0, 0.0],
    [np.inf, np.inf, 0.0, 0.0],
    [np.nan, np.nan, np.nan, np.nan],
    [5.0, 5.0, 5.0, 5.0],
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bounds", [[0, 4], [0, 1, 4], [0, 2, 2, 4], [0, 1, 2, 3, 4]])
def test_special_values_in_any_shard(dtype, bounds):
    x = np.array(SPECIAL_ROWS, dtype=dtype)
    whole = merged([lse_partial(s) for s in shards(x, bounds)])
    np.testing.assert_allclose(whole.logsumexp().astype(dtype),
                               xentc.logsumexp(x, axis=1), rtol=RTOL[dtype], atol=0)
    for take_log, ref in ((False, xentc.softmax), (True, xentc.log_softmax)):
        want = ref(x, axis=1)
        got = np.concatenate(
            [(whole.log_softmax if take_log else whole.softmax)(s) for s in shards(x, bounds)],
            axis=1)
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=0)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_softmax_of_shards(dtype):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((6, 50)) * 5).astype(dtype)
    bounds = [0, 10, 10, 33, 50]
    whole = merged([lse_partial(s) for s in shards(x, bounds)])
    for method, ref in ((whole.softmax, xentc.softmax), (whole.log_softmax, xentc.log_softmax)):
        got = np.concatenate([method(s) for s in shards(x, bounds)], axis=1)
        want = ref(x, axis=1)
        assert got.dtype == want.dtype
        tol = 2e-3 if dtype == np.float16 else RTOL[dtype]
        np.testing.assert_allclose(got, want, rtol=tol, atol=1e-300)


def test_integer_and_float16_input():
    x = np.arange(12).reshape(3, 4)
    np.testing.assert_allclose(lse_partial(x).logsumexp(), xentc.logsumexp(x, axis=1),
                               rtol=1e-15)
    h = x.astype(np.float16)  # read by the float32 kernels
    np.testing.assert_allclose(lse_partial(h).logsumexp(),
                               xentc.logsumexp(h.astype(np.float64), axis=1), rtol=2e-6)


def test_array_form_round_trip_and_pickle():
    rng = np.random.default_rng(8)
    p = lse_partial(rng.standard_normal((3, 4, 5)))
    a = p.to_array()
    assert a.shape == (3, 4, 4) and a.dtype == np.float64
    assert np.array_equal(bits(LSEPartial.from_array(a)), bits(p))
    q = pickle.loads(pickle.dumps(p))
    assert isinstance(q, LSEPartial) and np.array_equal(bits(q), bits(p))
    a[...] = 0  # to_array is a copy
    assert not np.array_equal(p.to_array(), a)


def test_immutable():
    p = lse_partial(np.ones((2, 3)))
    with pytest.raises(AttributeError):
        p.foo = 1
    with pytest.raises(ValueError):
        p.max[0] = 5.0


def test_errors():
    p = lse_partial(np.ones((2, 3)))
    with pytest.raises(ValueError, match="row shapes differ"):
        p.merge(lse_partial(np.ones((3, 3))))
    with pytest.raises(TypeError):
        p.merge(p.to_array())
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        LSEPartial.from_array(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="flags"):
        LSEPartial.from_array([[0.0, 1.0, 0.0, 7.0]])
    with pytest.raises(TypeError, match="dtype complex128"):
        lse_partial(np.ones(3, dtype=complex))
    with pytest.raises(ValueError, match="0-d"):
        lse_partial(1.0)
    with pytest.raises(ValueError, match="row shape"):
        p.softmax(np.ones((3, 3)))


# ---- CEPartial ----------------------------------------------------------------

def vocab_parallel(logits, target, bounds, *, weight=None, reduction="none", **kw):
    parts = [
        cross_entropy_partial(s, target, class_offset=a,
                              weight=None if weight is None else weight[a:b], **kw)
        for s, a, b in zip(shards(logits, bounds), bounds, bounds[1:])
    ]
    return merged(parts).finalize(reduction)


def ce_case(seed, dtype=np.float64, n=40):
    rng = np.random.default_rng(seed)
    c = int(rng.integers(2, 200))
    logits = (rng.standard_normal((n, c)) * 4).astype(dtype)
    target = rng.integers(0, c, size=n)
    target[rng.random(n) < 0.2] = -100
    weight = rng.random(c) + 0.1
    bounds = random_bounds(rng, c, int(rng.integers(1, 6)))
    return logits, target, weight, bounds


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_vocab_parallel_equals_cross_entropy(seed, weighted, reduction):
    logits, target, weight, bounds = ce_case(seed)
    w = weight if weighted else None
    got = vocab_parallel(logits, target, bounds, weight=w, reduction=reduction)
    want = xentc.cross_entropy(logits, target, weight=w, reduction=reduction)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    if reduction == "none":
        assert np.all(got[target == -100] == 0)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("options", [
    dict(label_smoothing=0.1),
    dict(label_smoothing=0.3, z_loss=1e-3),
    dict(softcap=3.0),
    dict(label_smoothing=0.05, softcap=5.0, ignore_index=1),
])
def test_vocab_parallel_options(seed, options):
    logits, target, weight, bounds = ce_case(seed)
    target[target == -100] = options.get("ignore_index", -100)
    for w in (None, weight):
        got = vocab_parallel(logits, target, bounds, weight=w, **options)
        want = xentc.cross_entropy(logits, target, weight=w, reduction="none", **options)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_vocab_parallel_float32_and_axis():
    logits, target, weight, bounds = ce_case(11, np.float32)
    got = vocab_parallel(logits, target, bounds, weight=weight, label_smoothing=0.1)
    want = xentc.cross_entropy(logits, target, weight=weight, label_smoothing=0.1,
                               reduction="none")
    np.testing.assert_allclose(got, want, rtol=2e-6)
    # torch's (N, C, d) layout: classes on axis 1
    rng = np.random.default_rng(12)
    x = rng.standard_normal((3, 10, 4))
    t = rng.integers(0, 10, size=(3, 4))
    parts = [cross_entropy_partial(x[:, a:b], t, class_offset=a, axis=1)
             for a, b in ((0, 4), (4, 10))]
    np.testing.assert_allclose(merged(parts).finalize("none"),
                               xentc.cross_entropy(x, t, axis=1, reduction="none"),
                               rtol=1e-13)


def test_merge_order_does_not_change_value():
    logits, target, weight, _ = ce_case(13)
    c = logits.shape[1]
    bounds = [0, c // 3, 2 * c // 3, c]
    parts = [cross_entropy_partial(s, target, class_offset=a, weight=weight[a:b],
                                   label_smoothing=0.2)
             for s, a, b in zip(shards(logits, bounds), bounds, bounds[1:])]
    ab_c = parts[0].merge(parts[1]).merge(parts[2]).finalize("none")
    c_ba = parts[2].merge(parts[1].merge(parts[0])).finalize("none")
    np.testing.assert_allclose(ab_c, c_ba, rtol=1e-14)


def test_special_logits_and_ignored_rows():
    x = np.array([[np.nan, 1.0, 2.0], [np.inf, 1.0, 2.0], [-np.inf, 0.0, 1.0],
                  [np.nan, 0.0, 0.0]])
    t = np.array([1, 2, 2, -100])
    got = vocab_parallel(x, t, [0, 1, 3])
    want = xentc.cross_entropy(x, t, reduction="none")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-14)
    assert got[3] == 0.0  # ignored, even with NaN logits


def test_all_ignored_mean_is_nan():
    x = np.zeros((3, 4))
    t = np.full(3, -100)
    assert np.isnan(vocab_parallel(x, t, [0, 2, 4], reduction="mean"))
    assert vocab_parallel(x, t, [0, 2, 4], reduction="sum") == 0.0


def test_target_outside_every_shard():
    x = np.zeros((2, 4))
    t = np.array([1, 3])
    # shards cover classes [0, 3) only
    with pytest.raises(IndexError, match=r"position \(1,\)"):
        vocab_parallel(x[:, :3], t, [0, 1, 3])
    with pytest.raises(IndexError, match="out of bounds"):
        cross_entropy_partial(x, np.array([1, -5]))


def test_overlapping_shards_are_reported():
    x = np.zeros((2, 4))
    t = np.array([1, 2])
    a = cross_entropy_partial(x[:, :3], t, class_offset=0)
    b = cross_entropy_partial(x[:, 1:], t, class_offset=1)
    with pytest.raises(ValueError, match="overlap"):
        a.merge(b).finalize()


def test_merge_checks_options_and_targets():
    x = np.zeros((2, 4))
    t = np.array([1, 2])
    a = cross_entropy_partial(x[:, :2], t, label_smoothing=0.1)
    with pytest.raises(ValueError, match="label_smoothing"):
        a.merge(cross_entropy_partial(x[:, 2:], t, class_offset=2))
    with pytest.raises(ValueError, match="ignore different samples"):
        a.merge(cross_entropy_partial(x[:, 2:], np.array([-100, 2]), class_offset=2,
                                      label_smoothing=0.1))


def test_ce_array_form_round_trip():
    logits, target, weight, bounds = ce_case(14)
    parts = [cross_entropy_partial(s, target, class_offset=a, weight=weight[a:b],
                                   label_smoothing=0.1, z_loss=1e-4)
             for s, a, b in zip(shards(logits, bounds), bounds, bounds[1:])]
    shipped = [CEPartial.from_array(pickle.loads(pickle.dumps(p.to_array())))
               for p in parts]
    assert np.array_equal(merged(shipped).finalize("none"), merged(parts).finalize("none"))
    m = merged(shipped)
    assert m.nclasses == logits.shape[1]
    assert m.weight_total == pytest.approx(weight.sum(), rel=1e-14)
    assert (m.label_smoothing, m.z_loss) == (0.1, 1e-4)
    assert np.array_equal(m.hits, (target != -100).astype(int))
    assert np.array_equal(m.ignored, target == -100)
    q = pickle.loads(pickle.dumps(m))
    assert np.array_equal(q.to_array(), m.to_array())
    bad = m.to_array()
    bad[0, 9] += 1  # nclasses must be one value
    with pytest.raises(ValueError, match="nclasses"):
        CEPartial.from_array(bad)


def test_ce_argument_errors():
    x = np.zeros((2, 4))
    with pytest.raises(TypeError, match="integer class indices"):
        cross_entropy_partial(x, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="shape"):
        cross_entropy_partial(x, np.zeros(3, int))
    with pytest.raises(ValueError, match="class_offset"):
        cross_entropy_partial(x, np.zeros(2, int), class_offset=-1)
    with pytest.raises(ValueError, match="weight"):
        cross_entropy_partial(x, np.zeros(2, int), weight=np.ones(5))


def test_ce_partial_of_huge_logits_loses_nothing():
    # lse - x_y with lse = max + log(S) rounded would give 0 here; the
    # partial finalises relative to the max, as cross_entropy does.
    x = np.full((3, 10), 2.0**1000)
    x[2, 3:] = 2.0**999
    y = np.array([0, 9, 2])
    parts = [xentc.cross_entropy_partial(x[:, a:b], y, class_offset=a)
             for a, b in [(0, 4), (4, 7), (7, 10)]]
    merged = functools.reduce(xentc.CEPartial.merge, parts)
    want = [np.log(10), np.log(10), np.log(3)]
    np.testing.assert_allclose(merged.finalize("none"), want, rtol=1e-15)
    np.testing.assert_allclose(xentc.cross_entropy(x, y, reduction="none"), want, rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1e30, -1e30])
def test_ce_partial_with_smoothing_of_huge_logits_matches_cross_entropy(dtype, scale):
    """The smoothing term sums weighted logits: relative to the max (format
    2), as the kernels' xt_ce_stats do, logits of +-1e30 lose nothing
    (format 1's plain sums cancelled it away)."""
    rng = np.random.default_rng(4)
    x = (scale + scale * 1e-6 * rng.standard_normal((5, 12))).astype(dtype)
    x[1] = dtype(scale)                       # a row of equal maxima
    y = np.array([0, 11, 3, -100, 7])
    w = rng.uniform(0.5, 2.0, 12)
    kw = dict(label_smoothing=0.3, z_loss=0.0)
    parts = [xentc.cross_entropy_partial(x[:, a:b], y, class_offset=a, weight=w[a:b], **kw)
             for a, b in [(0, 5), (5, 6), (6, 12)]]
    merged = functools.reduce(xentc.CEPartial.merge, parts)
    for reduction in ("none", "mean", "sum"):
        want = xentc.cross_entropy(x, y, weight=w, reduction=reduction, **kw)
        got = merged.finalize(reduction)
        np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert np.all(np.isfinite(merged.finalize("none")))


def test_ce_partial_format_1_arrays_are_refused_clearly():
    old = np.zeros((3, 13))
    with pytest.raises(ValueError, match=r"\(\.\.\., 13\) array is CEPartial's format 1"):
        xentc.CEPartial.from_array(old)
    good = xentc.cross_entropy_partial(np.zeros((3, 4)), np.array([0, 1, 2])).to_array()
    assert good.shape == (3, 14) and np.all(good[:, -1] == 2)
    bad = good.copy()
    bad[:, -1] = 3
    with pytest.raises(ValueError, match=r"column 13 \(format\) must hold 2"):
        xentc.CEPartial.from_array(bad)
    np.testing.assert_array_equal(xentc.CEPartial.from_array(good).to_array(), good)


def test_partials_module_holds_no_copy_of_the_kernels_math():
    """_partials.py validates, arranges and documents; the arithmetic on
    logits is the kernels' (one arithmetic for the partials)."""
    import pathlib
    import re

    source = (pathlib.Path(xentc.__file__).parent / "_partials.py").read_text()
    code = "\n".join(line.split("#")[0] for line in source.splitlines()
                     if not line.lstrip().startswith((">>>", "...")))
    for pattern in (r"np\.(exp|log|log1p|tanh|expm1)\(", r"np\.logaddexp", r"@ *w\b"):
        assert not re.search(pattern, code), pattern


def test_ce_partials_of_no_samples():
    # (found by the fuzzer: a (0, 9) merge and finalisation)
    a = xentc.cross_entropy_partial(np.zeros((0, 2)), np.zeros(0, int))
    b = xentc.cross_entropy_partial(np.zeros((0, 1)), np.zeros(0, int), class_offset=2)
    merged = a.merge(b)
    assert merged.finalize("none").shape == (0,)
    assert np.isnan(merged.finalize("mean")) and merged.finalize("sum") == 0.0
