"""
xentc.linear_cross_entropy(_and_grad) against torch's F.linear_cross_entropy
under autograd (and, for z_loss / softcap / sample_weight, the formula of
ce_reference.py written in torch), stored in
golden/linear_cross_entropy_golden.npz by golden/make_linear_golden.py. The
tests need no torch.

Each case runs with the default blocks (one block for these sizes) and with
blocks shrunk to a few rows, so that blocks, the last partial block and
grad_W's accumulation tiles are all exercised on shapes that divide none
of them.
"""
import json
import pathlib

import numpy as np
import pytest

import xentc
from xentc import _linear

GOLDEN = pathlib.Path(__file__).parent / "golden" / "linear_cross_entropy_golden.npz"

with np.load(GOLDEN) as _data:
    ARRAYS = {k: _data[k] for k in _data.files}
CASES = json.loads(str(ARRAYS["cases_json"]))
SETS = json.loads(str(ARRAYS["sets_json"]))

# The bound: 1e-5 relative in float32, 1e-12 in float64, relative to
# the largest magnitude of each result (an element near zero in a gradient
# is compared with the gradient's scale: torch's float32 products round it
# differently from NumPy's BLAS).
RTOL = {"float32": 1e-5, "float64": 1e-12}
BY_NAME = {c["name"]: c for c in CASES}


def error(got, want):
    """max |got - want| / max |want| (NaNs must match), as float64."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    scale = np.max(np.abs(want[ok]), initial=0.0)
    diff = np.max(np.abs(got[ok] - want[ok]), initial=0.0)
    return diff / scale if scale > 0 else diff


def check(got, key, case, what, rows=None):
    """got against torch's result `key` of the case.

    float64: within 1e-12 of torch's float64 result. float32: within 1e-5
    of torch's float64 result on the same inputs (exact in both dtypes: the
    golden file's float64 twin of the case), and within 1e-5 of torch's
    float32 result unless that one is itself further than ours from the
    float64 answer: torch's float32 grad_input for C=128256 is 4e-5 away
    from it (a float32 sum over 128256 classes), ours 6e-7.
    """
    if rows is not None:
        got = got[rows]
    tol = RTOL[case["dtype"]]
    want = ARRAYS[f"c{case['id']}_{key}"]
    if case["dtype"] == "float64":
        assert error(got, want) <= tol, (what, error(got, want))
        return
    twin = BY_NAME[case["name"].replace("-float32", "-float64")]
    want64 = ARRAYS[f"c{twin['id']}_{key}"]
    ours = error(got, want64)
    assert ours <= tol, (what, "vs torch float64", ours)
    vs32 = error(got, want)
    assert vs32 <= tol or error(want, want64) > ours, (what, "vs torch float32", vs32)


def prob_targets(codes):
    q = codes.astype(np.float64)
    return q / q.sum(axis=1, keepdims=True)


def case_inputs(case):
    s = SETS[case["set"]]
    k = s["id"]
    dt = np.dtype(case["dtype"])
    x = (ARRAYS[f"s{k}_x"] * s["x_scale"]).astype(dt)
    w = (ARRAYS[f"s{k}_w"] * s["w_scale"]).astype(dt)
    kw = dict(reduction=case["reduction"], label_smoothing=case["label_smoothing"],
              z_loss=case["z_loss"], softcap=case["softcap"])
    if case["bias"]:
        kw["linear_bias"] = (ARRAYS[f"s{k}_b"] * s["b_scale"]).astype(dt)
    if case["weight"]:
        kw["weight"] = (ARRAYS[f"s{k}_cw"] * s["cw_scale"]).astype(dt)
    if case["sample_weight"]:
        kw["sample_weight"] = (ARRAYS[f"s{k}_sw"] * s["sw_scale"]).astype(dt)
    if case["target_kind"] == "prob":
        target = prob_targets(ARRAYS[f"s{k}_q_codes"]).astype(dt)
    else:
        target = ARRAYS[f"s{k}_y"].copy()
        target[target == -100] = case["ignore_index"]
        if case["all_ignored"]:
            target[:] = case["ignore_index"]
        kw["ignore_index"] = case["ignore_index"]
    return x, w, target, kw, ARRAYS.get(f"s{k}_rows")


def test_golden_covers_the_sweep():
    classes = {s["C"] for s in SETS}
    assert min(classes) == 2 and max(classes) == 128256
    for key in ("bias", "weight", "sample_weight", "label_smoothing", "z_loss", "softcap",
                "all_ignored"):
        assert any(c[key] for c in CASES), key
    assert {c["reduction"] for c in CASES} == {"none", "sum", "mean"}
    assert {c["target_kind"] for c in CASES} == {"index", "prob"}
    assert any(c["ignore_index"] != -100 for c in CASES)


@pytest.fixture(params=["default", "small_blocks_sequential", "small_blocks_sequential_numpy",
                        "small_blocks_lanes", "small_blocks_lanes_numpy"])
def blocks(request, monkeypatch):
    if request.param != "default":
        # 3-row blocks at most for C <= 1000 and one row for the largest C;
        # accumulation tiles of 32 KiB of grad_W; the blocks one after the
        # other, or dealt to lanes (Python threads)
        monkeypatch.setattr(_linear, "_BUFFER_BYTES", 24000)
        monkeypatch.setattr(_linear, "_MIN_ROWS", 1)
        monkeypatch.setattr(_linear, "_ACC_BYTES", 1 << 15)
        lanes = request.param.startswith("small_blocks_lanes")
        if request.param.endswith("_numpy"):
            # the blocks by NumPy's matmul from Python, as without SciPy
            monkeypatch.setattr(_linear, "_GEMM", False)
        monkeypatch.setattr(_linear, "_CACHE_BYTES", (1 << 30) if lanes else 0)
        monkeypatch.setattr(_linear, "_LANE_BYTES", (1 << 30) if lanes else 0)
    return request.param


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_matches_torch(case, blocks):
    x, w, target, kw, rows = case_inputs(case)
    dt = case["dtype"]
    originals = [a.copy() for a in (x, w, target)]
    loss = xentc.linear_cross_entropy(x, w, target, **kw)
    loss2, gx, gw, gb = xentc.linear_cross_entropy_and_grad(x, w, target, **kw)
    for a, a0 in zip((x, w, target), originals):
        np.testing.assert_array_equal(a, a0)  # inputs untouched
    assert np.asarray(loss).dtype == dt and gx.dtype == dt and gw.dtype == dt
    check(loss, "loss", case, "loss")
    np.testing.assert_array_equal(loss, loss2)
    check(gx, "gx", case, "grad_input")
    check(gw, "gw", case, "grad_linear_weight", rows)
    if case["bias"]:
        check(gb, "gb", case, "grad_linear_bias", rows)
    else:
        assert gb is None
