"""Tests of the NumPy reference losses in ``ce_reference``.

(a) every golden case recorded from PyTorch (loss and gradient),
(b) the analytic gradient against central finite differences,
(c) identities linking cross-entropy, NLL, log loss and KL divergence,
plus the semantics of the xentc-only options (sample_weight, z_loss, softcap).

Only NumPy/SciPy are needed; torch is used solely by golden/make_golden.py.
"""

import itertools
import json
import os
import zlib

import numpy as np
import pytest
from scipy.special import log_softmax as sp_log_softmax
from scipy.special import logsumexp as sp_logsumexp
from scipy.special import softmax as sp_softmax

from ce_reference import (
    cross_entropy_grad_ref,
    cross_entropy_ref,
    kl_div_ref,
    log_loss_ref,
    nll_loss_ref,
)

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden",
                      "cross_entropy_golden.npz")


def _load_golden():
    with np.load(GOLDEN) as data:
        arrays = {k: data[k] for k in data.files}
    return (arrays, json.loads(str(arrays["cases_json"])),
            json.loads(str(arrays["nll_cases_json"])))


GOLDEN_ARRAYS, CE_CASES, NLL_CASES = _load_golden()


def _tolerances(dtype):
    # torch computes float32 cases in float32, the reference in float64.
    # atol covers gradient entries that are differences of nearly equal terms.
    if dtype == "float32":
        return dict(rtol=1e-5, atol=1e-6)
    return dict(rtol=1e-10, atol=1e-13)


def _golden_inputs(prefix, case, input_key):
    i = case["id"]
    a = GOLDEN_ARRAYS
    weight = a.get(f"{prefix}{i}_weight")
    return (a[f"{prefix}{i}_{input_key}"], a[f"{prefix}{i}_target"], weight,
            a[f"{prefix}{i}_loss"], a[f"{prefix}{i}_grad"])


# --------------------------------------------------------------------------
# (a) golden cases
# --------------------------------------------------------------------------

def test_golden_file_is_well_formed():
    assert 200 <= len(CE_CASES) <= 500
    kinds = {(c["target_kind"], c["dtype"], c["reduction"]) for c in CE_CASES}
    assert len(kinds) == 2 * 2 * 3
    assert {c["label_smoothing"] for c in CE_CASES} >= {0.0, 0.1, 0.7, 1.0}
    assert {c["torch_class_axis"] for c in CE_CASES} == {0, 1}
    # Every-target-ignored cases: mean is nan, sum is 0.
    for c in CE_CASES:
        if c["target_kind"] == "index" and c["n_ignored"] == int(np.prod(
                [s for k, s in enumerate(c["shape"]) if k != c["torch_class_axis"]])):
            loss = GOLDEN_ARRAYS[f"c{c['id']}_loss"]
            if c["reduction"] == "mean":
                assert np.isnan(loss)
            else:
                assert np.all(loss == 0)


@pytest.mark.parametrize("case", CE_CASES, ids=[c["name"] for c in CE_CASES])
def test_cross_entropy_matches_torch(case):
    logits, target, weight, loss_t, grad_t = _golden_inputs("c", case, "logits")
    kw = dict(axis=case["torch_class_axis"], weight=weight,
              ignore_index=case["ignore_index"], reduction=case["reduction"],
              label_smoothing=case["label_smoothing"])
    tol = _tolerances(case["dtype"])
    loss = cross_entropy_ref(logits, target, **kw)
    np.testing.assert_allclose(loss, loss_t, equal_nan=True, **tol)
    if case["reduction"] == "none":
        assert np.shape(loss) == loss_t.shape
    grad = cross_entropy_grad_ref(logits, target, **kw)
    assert grad.shape == logits.shape
    np.testing.assert_allclose(grad, grad_t, equal_nan=True, **tol)


@pytest.mark.parametrize("case", CE_CASES[::7], ids=[c["name"] for c in CE_CASES[::7]])
def test_cross_entropy_golden_with_class_axis_last(case):
    # xentc's default is axis=-1; moving torch's class axis there must not
    # change anything.
    logits, target, weight, loss_t, grad_t = _golden_inputs("c", case, "logits")
    ax = case["torch_class_axis"]
    if case["target_kind"] == "prob":
        target = np.moveaxis(target, ax, -1)
    kw = dict(weight=weight, ignore_index=case["ignore_index"],
              reduction=case["reduction"], label_smoothing=case["label_smoothing"])
    tol = _tolerances(case["dtype"])
    x_last = np.moveaxis(logits, ax, -1)
    np.testing.assert_allclose(cross_entropy_ref(x_last, target, **kw), loss_t,
                               equal_nan=True, **tol)
    np.testing.assert_allclose(cross_entropy_grad_ref(x_last, target, **kw),
                               np.moveaxis(grad_t, ax, -1), equal_nan=True, **tol)


@pytest.mark.parametrize("case", NLL_CASES, ids=[c["name"] for c in NLL_CASES])
def test_nll_loss_matches_torch(case):
    x, target, weight, loss_t, _ = _golden_inputs("n", case, "input")
    loss = nll_loss_ref(x, target, axis=case["torch_class_axis"], weight=weight,
                        ignore_index=case["ignore_index"], reduction=case["reduction"])
    np.testing.assert_allclose(loss, loss_t, equal_nan=True,
                               **_tolerances(case["dtype"]))


def test_torch_error_messages_recorded():
    errors = json.loads(str(GOLDEN_ARRAYS["torch_errors_json"]))
    assert errors["index_target_out_of_range_high"] == {
        "type": "IndexError", "message": "Target 4 is out of bounds."}
    # The reference uses torch's text for the same situation.
    with pytest.raises(IndexError, match=r"^Target 4 is out of bounds\.$"):
        cross_entropy_ref(np.zeros((3, 4)), np.array([0, 4, 1]))


# --------------------------------------------------------------------------
# (b) analytic gradient vs central finite differences
# --------------------------------------------------------------------------

def numerical_grad(f, x, h=1e-6):
    """Central finite-difference gradient of scalar ``f`` at float64 ``x``."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        idx = it.multi_index
        orig = x[idx]
        x[idx] = orig + h
        fp = f(x)
        x[idx] = orig - h
        fm = f(x)
        x[idx] = orig
        g[idx] = (fp - fm) / (2 * h)
    return g


def _scalar_loss(x, target, **kw):
    loss = cross_entropy_ref(x, target, **kw)
    return float(np.sum(loss))  # 'none': gradient of the sum of per-sample losses


def _make_problem(rng, shape, axis, target_kind, *, ignore=False,
                  ignore_index=-100):
    x = 1.5 * rng.standard_normal(shape)
    ax = axis % len(shape)
    C = shape[ax]
    batch = shape[:ax] + shape[ax + 1:]
    if target_kind == "index":
        y = np.array(rng.integers(0, C, size=batch), dtype=np.int64)
        if ignore and y.size > 1:
            # Keep the rows meant to survive off the ignored class, so the
            # mean's denominator is never 0 (that case gives nan everywhere).
            y[y == ignore_index] = (ignore_index + 1) % C
            y.reshape(-1)[:: 3] = ignore_index
        return x, y, batch, C
    q = rng.dirichlet(np.ones(C), size=batch)  # class axis last
    return x, np.moveaxis(q, -1, ax), batch, C


FD_SHAPES = [((5,), 0), ((4, 5), -1), ((4, 5), 0), ((2, 4, 3), 1), ((3, 2, 4), -1)]
FD_OPTIONS = [
    dict(),
    dict(weight=True),
    dict(sample_weight=True),
    dict(weight=True, sample_weight=True, label_smoothing=0.2),
    dict(z_loss=1e-2),
    dict(z_loss=0.3, weight=True, sample_weight=True),
    dict(softcap=2.0),
    dict(softcap=1.5, label_smoothing=0.7, z_loss=0.1, weight=True, sample_weight=True),
    dict(label_smoothing=1.0, weight=True),
    dict(ignore=True, weight=True, label_smoothing=0.1, z_loss=0.05, sample_weight=True),
    dict(ignore=True, ignore_index=2, softcap=3.0),
]


def _fd_params():
    for (shape, axis), opts, kind, red in itertools.product(
            FD_SHAPES, FD_OPTIONS, ("index", "prob"), ("none", "sum", "mean")):
        if kind == "prob" and opts.get("ignore"):
            continue  # probability targets have no ignored rows
        yield pytest.param(shape, axis, opts, kind, red,
                           id=f"{shape}-ax{axis}-{kind}-{red}-" + ",".join(
                               f"{k}={v}" for k, v in opts.items()))


@pytest.mark.parametrize("shape,axis,opts,kind,reduction", list(_fd_params()))
def test_gradient_matches_finite_differences(shape, axis, opts, kind, reduction):
    # crc32, not hash(): str hashing is randomised per process.
    rng = np.random.default_rng(zlib.crc32(repr((shape, axis, kind, reduction,
                                                 sorted(opts.items()))).encode()))
    opts = dict(opts)
    ignore = opts.pop("ignore", False)
    ignore_index = opts.pop("ignore_index", -100)
    x, y, batch, C = _make_problem(rng, shape, axis, kind, ignore=ignore,
                                   ignore_index=ignore_index)
    kw = dict(axis=axis, reduction=reduction, ignore_index=ignore_index)
    if opts.pop("weight", False):
        kw["weight"] = rng.uniform(0.3, 2.0, C)
    if opts.pop("sample_weight", False):
        kw["sample_weight"] = rng.uniform(0.0, 2.0, batch)
    kw.update(opts)
    analytic = cross_entropy_grad_ref(x, y, **kw)
    numeric = numerical_grad(lambda z: _scalar_loss(z, y, **kw), x)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_ignored_rows_have_zero_gradient():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 4))
    y = np.array([0, -100, 3, -100, 1, 2])
    g = cross_entropy_grad_ref(x, y, label_smoothing=0.4, z_loss=0.2,
                               weight=rng.uniform(0.5, 1.5, 4))
    assert np.all(g[[1, 3]] == 0)
    assert np.all(g[[0, 2, 4, 5]] != 0)


# --------------------------------------------------------------------------
# xentc-only options: sample_weight, z_loss, softcap
# --------------------------------------------------------------------------

def test_integer_sample_weight_equals_repeating_rows():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 4))
    y = np.array([0, 3, -100, 2, 1])
    w = rng.uniform(0.5, 2.0, 4)
    counts = np.array([1, 3, 2, 0, 2])
    xr, yr = np.repeat(x, counts, axis=0), np.repeat(y, counts)
    for red, ls, z in itertools.product(("sum", "mean"), (0.0, 0.3), (0.0, 0.1)):
        kw = dict(weight=w, reduction=red, label_smoothing=ls, z_loss=z)
        np.testing.assert_allclose(
            cross_entropy_ref(x, y, sample_weight=counts.astype(float), **kw),
            cross_entropy_ref(xr, yr, **kw), rtol=1e-12)
    q = rng.dirichlet(np.ones(4), size=5)
    for red in ("sum", "mean"):
        np.testing.assert_allclose(
            cross_entropy_ref(x, q, sample_weight=counts.astype(float),
                              weight=w, reduction=red, label_smoothing=0.2),
            cross_entropy_ref(xr, np.repeat(q, counts, axis=0), weight=w,
                              reduction=red, label_smoothing=0.2), rtol=1e-12)


def test_z_loss_term():
    # Independent vectorised formula: lam * lse^2, sample- but not class-weighted,
    # same denominator as the main term under 'mean'.
    rng = np.random.default_rng(11)
    x = 3 * rng.standard_normal((6, 5))
    y = np.array([4, 0, -100, 2, 2, 1])
    w = rng.uniform(0.5, 2.0, 5)
    s = rng.uniform(0.1, 2.0, 6)
    lam = 0.05
    keep = y != -100
    lse = sp_logsumexp(x, axis=1)
    zsum = lam * np.sum((s * lse ** 2)[keep])
    den = np.sum(s[keep] * w[y[keep]])
    base = dict(weight=w, sample_weight=s, label_smoothing=0.1)
    for red, expect in (("sum", zsum), ("mean", zsum / den)):
        diff = (cross_entropy_ref(x, y, z_loss=lam, reduction=red, **base)
                - cross_entropy_ref(x, y, reduction=red, **base))
        np.testing.assert_allclose(diff, expect, rtol=1e-12)
    diff = (cross_entropy_ref(x, y, z_loss=lam, reduction="none", **base)
            - cross_entropy_ref(x, y, reduction="none", **base))
    np.testing.assert_allclose(diff, np.where(keep, lam * s * lse ** 2, 0.0),
                               rtol=1e-12, atol=1e-14)
    q = sp_softmax(rng.standard_normal((6, 5)), axis=1)
    diff = (cross_entropy_ref(x, q, z_loss=lam, sample_weight=s)
            - cross_entropy_ref(x, q, sample_weight=s))
    np.testing.assert_allclose(diff, lam * np.sum(s * lse ** 2) / np.sum(s), rtol=1e-12)


def test_softcap_is_tanh_of_logits():
    rng = np.random.default_rng(13)
    x = 10 * rng.standard_normal((4, 3, 5))
    y = rng.integers(0, 3, size=(4, 5))
    cap = 4.0
    xc = cap * np.tanh(x / cap)
    kw = dict(axis=1, label_smoothing=0.2, z_loss=0.01)
    np.testing.assert_allclose(cross_entropy_ref(x, y, softcap=cap, **kw),
                               cross_entropy_ref(xc, y, **kw), rtol=1e-13)
    np.testing.assert_allclose(
        cross_entropy_grad_ref(x, y, softcap=cap, **kw),
        cross_entropy_grad_ref(xc, y, **kw) * (1 - np.tanh(x / cap) ** 2), rtol=1e-13)


def test_mean_with_all_weight_zero_is_nan():
    x = np.zeros((3, 4))
    y = np.array([0, 0, -100])
    w = np.array([0.0, 1.0, 1.0, 1.0])
    # Observed in torch 2.13: loss nan, non-ignored rows' gradient nan, ignored 0.
    assert np.isnan(cross_entropy_ref(x, y, weight=w))
    assert np.isnan(cross_entropy_ref(x, y, weight=w, label_smoothing=0.3))
    g = cross_entropy_grad_ref(x, y, weight=w, label_smoothing=0.3)
    assert np.all(np.isnan(g[:2])) and np.all(g[2] == 0)
    assert cross_entropy_ref(x, y, weight=w, reduction="sum") == 0.0
    # Zero sample weights behave the same way.
    assert np.isnan(cross_entropy_ref(x, np.array([1, 2, 3]), sample_weight=np.zeros(3)))


# --------------------------------------------------------------------------
# (c) identities between the losses
# --------------------------------------------------------------------------

def _one_hot(y, C):
    out = np.zeros(y.shape + (C,))
    np.put_along_axis(out, y[..., None], 1.0, axis=-1)
    return out


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("shape", [(7, 5), (3, 2, 6), (4,)])
def test_log_loss_of_softmax_equals_cross_entropy(shape, reduction):
    rng = np.random.default_rng(17)
    x = 2 * rng.standard_normal(shape)
    C = shape[-1]
    y = np.array(rng.integers(0, C, size=shape[:-1]), dtype=np.int64)
    s = rng.uniform(0.5, 1.5, shape[:-1])
    p = sp_softmax(x, axis=-1)
    ce = cross_entropy_ref(x, y, sample_weight=s, reduction=reduction)
    np.testing.assert_allclose(
        log_loss_ref(p, _one_hot(y, C), sample_weight=s, reduction=reduction), ce,
        rtol=1e-12)
    np.testing.assert_allclose(
        log_loss_ref(p, y, sample_weight=s, reduction=reduction), ce, rtol=1e-12)


def test_log_loss_clips_probabilities():
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    y = np.array([1, 0])
    eps = np.finfo(np.float64).eps
    expect = (-np.log(eps) - np.log(0.5)) / 2
    np.testing.assert_allclose(log_loss_ref(p, y), expect, rtol=1e-12)
    p32 = p.astype(np.float32)
    eps32 = float(np.finfo(np.float32).eps)
    np.testing.assert_allclose(log_loss_ref(p32, y), (-np.log(eps32) - np.log(0.5)) / 2,
                               rtol=1e-12)
    np.testing.assert_allclose(log_loss_ref(p, y, eps=1e-3),
                               (-np.log(1e-3) - np.log(0.5)) / 2, rtol=1e-12)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("axis", [-1, 0])
def test_kl_div_equals_cross_entropy_minus_entropy(axis, reduction):
    rng = np.random.default_rng(19)
    x = 2 * rng.standard_normal((6, 5))
    q = rng.dirichlet(np.full(5, 0.7), size=6)
    q[0] = [0.0, 0.0, 1.0, 0.0, 0.0]  # exercise 0 log 0 = 0
    q[3, 1] = 0.0
    q[3] /= q[3].sum()
    if axis == 0:
        x, q = x.T.copy(), q.T.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(q > 0, q * np.log(q), 0.0)
    entropy = -np.sum(plogp, axis=axis)
    ce_rows = cross_entropy_ref(x, q, axis=axis, reduction="none")
    expect = {"none": ce_rows - entropy, "sum": np.sum(ce_rows - entropy),
              "mean": np.mean(ce_rows - entropy)}[reduction]
    np.testing.assert_allclose(kl_div_ref(x, q, axis=axis, reduction=reduction),
                               expect, rtol=1e-12, atol=1e-14)
    # And directly from SciPy's log_softmax, as torch's kl_div(batchmean) would.
    kl_rows = np.sum(plogp - q * sp_log_softmax(x, axis=axis), axis=axis)
    np.testing.assert_allclose(kl_div_ref(x, q, axis=axis, reduction="none"),
                               kl_rows, rtol=1e-12, atol=1e-14)


def test_kl_div_of_matching_distribution_is_zero():
    rng = np.random.default_rng(23)
    x = rng.standard_normal((4, 6))
    assert abs(kl_div_ref(x, sp_softmax(x, axis=1))) < 1e-14


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_nll_of_log_softmax_equals_cross_entropy(reduction):
    rng = np.random.default_rng(29)
    x = rng.standard_normal((3, 5, 4))
    y = np.array(rng.integers(0, 5, size=(3, 4)), dtype=np.int64)
    y[0, 0] = -100
    w = rng.uniform(0.5, 2.0, 5)
    s = rng.uniform(0.5, 2.0, (3, 4))
    kw = dict(axis=1, weight=w, sample_weight=s, reduction=reduction)
    np.testing.assert_allclose(
        nll_loss_ref(sp_log_softmax(x, axis=1), y, **kw),
        cross_entropy_ref(x, y, **kw), rtol=1e-12)


def test_label_smoothing_one_is_uniform_target():
    # eps=1 with index targets is the uniform-probability target, except that
    # 'mean' divides by sum w[y_n] rather than the number of rows.
    rng = np.random.default_rng(31)
    x = rng.standard_normal((5, 4))
    y = np.array([0, 1, 2, 3, 1])
    w = rng.uniform(0.5, 2.0, 4)
    u = np.full((5, 4), 0.25)
    np.testing.assert_allclose(
        cross_entropy_ref(x, y, weight=w, label_smoothing=1.0, reduction="none"),
        cross_entropy_ref(x, u, weight=w, reduction="none"), rtol=1e-12)
    np.testing.assert_allclose(
        cross_entropy_ref(x, y, weight=w, label_smoothing=1.0) * np.sum(w[y]),
        cross_entropy_ref(x, u, weight=w) * 5, rtol=1e-12)


# --------------------------------------------------------------------------
# input validation
# --------------------------------------------------------------------------

def test_invalid_inputs_raise():
    x = np.zeros((3, 4))
    with pytest.raises(IndexError, match="Target -1 is out of bounds"):
        cross_entropy_ref(x, np.array([0, -1, 1]))
    with pytest.raises(IndexError):
        cross_entropy_grad_ref(x, np.array([0, 4, 1]), label_smoothing=0.1)
    # An out-of-range value equal to ignore_index is simply ignored (as torch).
    assert cross_entropy_ref(x, np.array([0, 7, 1]), ignore_index=7) == pytest.approx(np.log(4))
    with pytest.raises(TypeError):
        cross_entropy_ref(x, np.zeros(3))  # float index target
    with pytest.raises(TypeError):
        cross_entropy_ref(x, np.zeros((3, 4), dtype=np.int64))  # integer prob target
    with pytest.raises(ValueError):
        cross_entropy_ref(x, np.full((3, 4), 0.25), ignore_index=1)
    with pytest.raises(ValueError):
        cross_entropy_ref(x, np.array([0, 1]))
    with pytest.raises(ValueError):
        cross_entropy_ref(x, np.array([0, 1, 2]), weight=np.ones(3))
    with pytest.raises(ValueError):
        cross_entropy_ref(x, np.array([0, 1, 2]), reduction="avg")
    with pytest.raises(ValueError):
        cross_entropy_ref(x, np.array([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(ValueError):
        cross_entropy_ref(x, np.array([0, 1, 2]), sample_weight=np.ones(4))
