"""
xentc against torch.nn.functional.cross_entropy / nll_loss values and
gradients stored in golden/cross_entropy_golden.npz (made by
golden/make_golden.py with torch CPU; the test suite itself needs no torch).
"""
import json
import pathlib

import numpy as np
import pytest

import xentc

GOLDEN = pathlib.Path(__file__).parent / "golden" / "cross_entropy_golden.npz"

with np.load(GOLDEN) as _data:
    ARRAYS = {k: _data[k] for k in _data.files}
CE_CASES = json.loads(str(ARRAYS["cases_json"]))
NLL_CASES = json.loads(str(ARRAYS["nll_cases_json"]))


def tolerances(dtype):
    if dtype == "float32":
        return dict(rtol=1e-5, atol=2e-6)
    return dict(rtol=1e-11, atol=1e-13)


def case_args(prefix, case, input_key):
    x = ARRAYS[f"{prefix}{case['id']}_{input_key}"]
    target = ARRAYS[f"{prefix}{case['id']}_target"]
    weight = ARRAYS.get(f"{prefix}{case['id']}_weight")
    kwargs = dict(axis=case["torch_class_axis"], weight=weight,
                  ignore_index=case["ignore_index"], reduction=case["reduction"])
    return x, target, kwargs


@pytest.mark.parametrize("case", CE_CASES, ids=lambda c: c["name"])
def test_cross_entropy_matches_torch(case):
    x, target, kw = case_args("c", case, "logits")
    if case["target_kind"] == "prob":
        kw["ignore_index"] = -100  # torch rejects ignore_index >= 0 here
    x0 = x.copy()
    kw["label_smoothing"] = case["label_smoothing"]
    want_loss = ARRAYS[f"c{case['id']}_loss"]
    want_grad = ARRAYS[f"c{case['id']}_grad"]
    loss = xentc.cross_entropy(x, target, **kw)
    loss2, grad = xentc.cross_entropy_and_grad(x, target, **kw)
    tol = tolerances(case["dtype"])
    np.testing.assert_allclose(loss, want_loss, equal_nan=True, **tol)
    np.testing.assert_allclose(loss2, want_loss, equal_nan=True, **tol)
    np.testing.assert_allclose(grad, want_grad, equal_nan=True, **tol)
    assert np.shape(loss) == np.shape(want_loss)
    assert np.asarray(loss).dtype == x.dtype and grad.dtype == x.dtype
    np.testing.assert_array_equal(x, x0)


@pytest.mark.parametrize("case", NLL_CASES, ids=lambda c: c["name"])
def test_nll_loss_matches_torch(case):
    x, target, kw = case_args("n", case, "input")
    got = xentc.nll_loss(x, target, **kw)
    np.testing.assert_allclose(got, ARRAYS[f"n{case['id']}_loss"], equal_nan=True,
                               **tolerances(case["dtype"]))


def test_golden_file_covers_the_options():
    # The golden set is only useful if it spans what the tests claim.
    kinds = {(c["target_kind"], c["dtype"], c["reduction"], c["has_weight"])
             for c in CE_CASES}
    assert len(kinds) == 2 * 2 * 3 * 2
    assert {c["label_smoothing"] for c in CE_CASES} >= {0.0, 0.1, 0.7, 1.0}
    assert any(c["n_ignored"] == int(np.prod(c["shape"])) // c["shape"][c["torch_class_axis"]]
               for c in CE_CASES if c["target_kind"] == "index")
    assert {len(c["shape"]) for c in CE_CASES} >= {1, 2, 4}
    # signed class weights, and target weights summing to zero under 'mean'
    # (torch divides by zero: +-inf and NaN both present)
    signed = [c for c in CE_CASES if c.get("weight_style") == "signed"]
    assert {c["reduction"] for c in signed} == set(("none", "sum", "mean"))
    assert {c["target_kind"] for c in signed} == {"index", "prob"}
    zero = [ARRAYS[f"c{c['id']}_loss"] for c in CE_CASES
            if c.get("weight_style") == "zero_sum" and c["reduction"] == "mean"]
    assert any(np.isinf(v) for v in zero) and any(np.isnan(v) for v in zero)
    assert any(c.get("weight_style") == "zero_sum" for c in NLL_CASES)
