"""The fused index-target cross-entropy kernel (include/xentc/algo/ce_rows.h)
at every vector level against the baseline's per-row path.

The fused kernel takes rows in groups of W (the level's lane count): lane
mode (one row per lane, columns by permutes or gathers) up to 16 classes,
row mode above, with a group of fewer than W rows at the end of each task,
and hands groups holding a special row (NaN, +-inf, a gradient scale
beyond the dtype) to the per-row path. So the cases that can go wrong are:
every number of classes around the mode and L1 boundaries, every number of
rows around the group size, a special value or an ignored target in each
lane position, each option that enters the finish (class weights, label
smoothing, z-loss, per-row gradient scales), and the gradient written over
the logits. The baseline level has no fused kernel: it is the reference.
"""
import numpy as np
import pytest

import xentc
from xentc import _dispatch

from test_kernels_isa import NULP, assert_close, exp_scale, kernels, make_rows

SIMD_LEVELS = [lvl for lvl in _dispatch.available_levels() if lvl != "baseline"]
DTYPES = [np.float32, np.float64]

# Classes: every count through lane mode's limits (AVX2 20, AVX-512 32 and
# 34 for float32) and past the widest group (16 floats) twice; row mode's
# vector tails, taken as columns up to 8 of them (40: 8 past 32; 41: 9,
# along the rows); the group-max limit
# (16 KB of rows: 256 classes for float32 and float64 alike) and its
# neighbours, which are also where row mode's log turns double
# (XT_ROW_DOUBLE_LOG_COLS); the 4 KB rows up to which the forward and
# log-sum-exp take the group kernels (512 float64, 1024 float32 classes)
# and one past them; the fused limit (4096) and one past it (the per-row
# path).
CLASSES = list(range(1, 36)) + [40, 41, 48, 63, 64, 65, 100, 255, 256, 257, 512, 513, 1000,
                                 1024, 1025, 4096, 4097]
# Rows: around one and two groups of every level (4, 8, 16 lanes).
ROWS = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47]

OPTIONS = {
    "plain": {},
    "weights": {"weight": "w"},
    "smoothing": {"label_smoothing": 0.2},
    "z_loss": {"z_loss": 1e-2},
    "everything": {"weight": "w", "z_loss": 1e-3, "sample_weight": "s"},
}


def _kwargs(option, nrows, ncols, rng):
    kw = dict(OPTIONS[option])
    if kw.get("weight") == "w":
        kw["weight"] = rng.uniform(0.1, 2.0, ncols)
    if kw.get("sample_weight") == "s":
        kw["sample_weight"] = rng.uniform(0.0, 3.0, nrows)
    return kw


def _results(x, target, kw, in_place):
    """Per-row losses, and the summed loss with its gradient (in place over
    a copy of x when asked)."""
    loss = xentc.cross_entropy(x, target, reduction="none", **kw)
    grad_out = x.copy() if in_place else None
    total, grad = xentc.cross_entropy_and_grad(x, target, reduction="sum", grad_out=grad_out,
                                               **kw)
    if in_place:
        assert grad is grad_out
    return {"loss": loss, "total": np.asarray(total), "grad": grad}


def compare(level, x, target, kw, in_place=False, relative=False):
    """got == want up to NULP of each result's error scale, or (relative)
    of max(|want|, 1)."""
    with kernels("baseline"), np.errstate(all="ignore"):
        want = _results(x, target, kw, in_place)
    with kernels(level), np.errstate(all="ignore"):
        got = _results(x, target, kw, in_place)
    # error scales: a loss is a difference of terms of the row's size; the
    # gradient's entries are weighted probabilities (exp's condition number)
    # plus one where the target's one is subtracted
    dtype = x.dtype.type
    row_scale = np.maximum(np.max(np.abs(np.where(np.isfinite(x), x, 0)), axis=-1,
                                  initial=0.0), 1.0)
    wmax = max(1.0, float(np.max(np.abs(kw["weight"])))) if "weight" in kw else 1.0
    smax = max(1.0, float(np.max(kw["sample_weight"]))) if "sample_weight" in kw else 1.0
    scales = {} if relative else {
        "loss": row_scale * wmax * (1 + abs(kw.get("z_loss", 0)) * row_scale),
        "total": np.sum(row_scale) * wmax * smax * (1 + abs(kw.get("z_loss", 0))
                                                    * np.max(row_scale, initial=1.0)),
        "grad": (exp_scale(np.nan_to_num(want["grad"])) + 1.0) * wmax * smax
                * (1 + abs(kw.get("z_loss", 0)) * row_scale[:, None]),
    }
    for key in want:
        if relative:   # of the values themselves (exp's condition for the gradient)
            w = np.abs(np.nan_to_num(want[key].astype(np.float64), posinf=0, neginf=0))
            scale = np.maximum(w, 1.0) + (exp_scale(w) if key == "grad" else 0)
        else:
            scale = np.broadcast_to(scales[key], np.shape(want[key]))
        try:
            assert_close(got[key], want[key], NULP[dtype], scale)
        except AssertionError as exc:
            raise AssertionError(f"{level}, {key}, rows {x.shape}, {sorted(kw)}: {exc}") \
                from None


@pytest.mark.parametrize("level", SIMD_LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_every_class_count(level, dtype, option):
    rng = np.random.default_rng(1)
    for ncols in CLASSES:
        nrows = 37 if ncols <= 1025 else 5
        x = make_rows(dtype, nrows, ncols, seed=ncols)
        target = rng.integers(0, ncols, nrows)
        target[3::7] = -100   # ignored rows in several lane positions
        compare(level, x, target, _kwargs(option, nrows, ncols, rng))


@pytest.mark.parametrize("level", SIMD_LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("ncols", [2, 5, 16, 17, 100])
def test_every_row_count(level, dtype, ncols):
    rng = np.random.default_rng(2)
    for nrows in ROWS:
        x = make_rows(dtype, nrows, ncols, seed=nrows) if nrows >= 3 else \
            rng.standard_normal((nrows, ncols)).astype(dtype)
        compare(level, x, rng.integers(0, ncols, nrows), {})


SPECIALS = {"nan": np.nan, "+inf": np.inf, "-inf": -np.inf}


@pytest.mark.parametrize("level", SIMD_LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("special", sorted(SPECIALS))
@pytest.mark.parametrize("ncols", [2, 7, 16, 33, 40, 300, 1000])
@pytest.mark.parametrize("in_place", [False, True], ids=["grad", "grad_in_place"])
@pytest.mark.parametrize("from_end", [False, True], ids=["head", "tail"])
def test_special_value_in_every_lane(level, dtype, special, ncols, in_place, from_end):
    # Block p of 16 rows holds the value in its row p (in column p mod C,
    # or counted from the row's end: row mode takes a row's last C mod W
    # elements as columns), so every lane of every group size meets it next
    # to clean lanes; a row of -inf only, and a target whose logit is -inf.
    x = make_rows(dtype, 16 * 16 + 5, ncols, seed=ncols)
    target = np.arange(x.shape[0]) % ncols
    for p in range(16):
        x[16 * p + p, ncols - 1 - p % ncols if from_end else p % ncols] = SPECIALS[special]
    x[5] = -np.inf
    x[6, target[6]] = -np.inf
    compare(level, x, target, {}, in_place=in_place)
    compare(level, x, target, {"label_smoothing": 0.1}, in_place=in_place)


@pytest.mark.parametrize("level", SIMD_LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("ncols", [3, 16, 40, 300])
def test_gradient_in_place(level, dtype, ncols):
    rng = np.random.default_rng(3)
    x = make_rows(dtype, 50, ncols, seed=3)
    target = rng.integers(0, ncols, 50)
    target[::5] = -100
    compare(level, x, target, _kwargs("everything", 50, ncols, rng), in_place=True)
    compare(level, x, target, {"label_smoothing": 0.3}, in_place=True)


@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_float32_scale_beyond_range(level):
    # z-loss and class weights large enough that the gradient's scale of
    # the exps passes FLT_MAX: the fused kernel hands those rows back.
    rng = np.random.default_rng(4)
    for ncols in (4, 40):
        x = (rng.standard_normal((33, ncols)) * 3).astype(np.float32)
        target = rng.integers(0, ncols, 33)
        compare(level, x, target, {"weight": np.full(ncols, 1e38), "z_loss": 1e3},
                relative=True)


@pytest.mark.parametrize("level", SIMD_LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_many_rows_across_tasks(level, dtype):
    # More rows than one parallel task (2^17 elements), with every thread
    # count: the same bits at every one (rows never change groups).
    rng = np.random.default_rng(5)
    for ncols in (3, 10, 100):
        nrows = (1 << 17) // ncols * 2 + 13
        x = (rng.standard_normal((nrows, ncols)) * 2).astype(dtype)
        target = rng.integers(0, ncols, nrows)
        with kernels(level):
            ref = xentc.cross_entropy_and_grad(x, target, workers=1)
            for workers in (2, 3):
                got = xentc.cross_entropy_and_grad(x, target, workers=workers)
                assert got[0] == ref[0]
                np.testing.assert_array_equal(got[1], ref[1])
        compare(level, x[:3000], target[:3000], {})


@pytest.mark.parametrize("level", SIMD_LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("ncols", [3, 10, 16, 24])
def test_gradient_from_memory_in_short_blocks(level, dtype, ncols):
    # A gradient past XT_CE_GRAD_BIG_BYTES (8 MiB) goes through lane mode in
    # shorter blocks: the same bits as the same rows in calls of under
    # 8 MiB, which take the usual blocks; a NaN row among them is left to
    # the per-row path either way. (Pieces of whole groups: a call's last
    # rows short of a group go by row mode, an ulp apart from lane mode.)
    rng = np.random.default_rng(ncols)
    nrows = (9 << 20) // (ncols * np.dtype(dtype).itemsize) // 64 * 64 + 37
    x = (rng.standard_normal((nrows, ncols)) * 3).astype(dtype)
    x[1000, ncols // 2] = np.nan
    target = rng.integers(0, ncols, nrows)
    target[::97] = -100
    piece = nrows // 4 // 16 * 16
    with kernels(level):
        for kw in ({}, {"label_smoothing": 0.1}):
            loss, grad = xentc.cross_entropy_and_grad(x, target, reduction="none", **kw)
            for r0 in range(0, nrows, piece):
                part = slice(r0, r0 + piece)
                l, g = xentc.cross_entropy_and_grad(x[part], target[part], reduction="none",
                                                    **kw)
                np.testing.assert_array_equal(l, loss[part])
                np.testing.assert_array_equal(g, grad[part])


# ---- log-sum-exp, softmax and log_softmax by groups (algo/row_groups.h) ---

def _reductions(x, in_place):
    out = {"logsumexp": xentc.logsumexp(x, axis=-1)}
    if x.shape[-1]:
        for name in ("softmax", "log_softmax"):
            dst = x.copy() if in_place else None
            out[name] = getattr(xentc, name)(dst if in_place else x, axis=-1, out=dst)
    return out


def compare_reductions(level, x, in_place=False):
    with kernels("baseline"), np.errstate(all="ignore"):
        want = _reductions(x, in_place)
    with kernels(level), np.errstate(all="ignore"):
        got = _reductions(x, in_place)
    row_scale = np.maximum(np.max(np.abs(np.where(np.isfinite(x), x, 0)), axis=-1,
                                  initial=0.0), 1.0)
    for key in want:
        scale = (exp_scale(np.nan_to_num(want[key])) if key == "softmax"
                 else row_scale if key == "logsumexp" else row_scale[:, None])
        try:
            assert_close(got[key], want[key], NULP[x.dtype.type],
                         np.broadcast_to(scale, np.shape(want[key])))
        except AssertionError as exc:
            raise AssertionError(f"{level}, {key}, rows {x.shape}: {exc}") from None


@pytest.mark.parametrize("level", SIMD_LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_reductions_every_class_and_row_count(level, dtype):
    for ncols in CLASSES:
        compare_reductions(level, make_rows(dtype, 37 if ncols <= 1025 else 5, ncols,
                                            seed=ncols))
    for nrows in ROWS:
        for ncols in (2, 5, 16, 17, 24, 25, 33, 100):
            x = np.random.default_rng(nrows).standard_normal((nrows, ncols)).astype(dtype)
            compare_reductions(level, x, in_place=nrows % 2 == 1)


@pytest.mark.parametrize("level", SIMD_LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("special", sorted(SPECIALS))
@pytest.mark.parametrize("ncols", [2, 7, 16, 24, 33, 40, 300, 1000])
@pytest.mark.parametrize("from_end", [False, True], ids=["head", "tail"])
def test_reductions_special_value_in_every_lane(level, dtype, special, ncols, from_end):
    x = make_rows(dtype, 16 * 16 + 5, ncols, seed=ncols)
    for p in range(16):
        x[16 * p + p, ncols - 1 - p % ncols if from_end else p % ncols] = SPECIALS[special]
    x[5] = -np.inf
    compare_reductions(level, x)
    compare_reductions(level, x, in_place=True)


# ---- the weighted sums and gradient class terms (algo/ce_sums.h) ---------

@pytest.mark.parametrize("level", SIMD_LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_probability_targets_and_weighted_smoothing(level, dtype):
    # The rows the fused kernel leaves: probability targets (with zeros
    # where the logit is -inf: no term, not 0 * inf), class weights with
    # label smoothing, rows past its 4096 classes; every tail length of
    # the sums' vectors and past them.
    rng = np.random.default_rng(6)
    for ncols in list(range(1, 20)) + [33, 100, 4100]:
        nrows = 9 if ncols < 4100 else 2
        x = make_rows(dtype, nrows, ncols, seed=ncols) if nrows >= 3 and ncols > 0 else \
            rng.standard_normal((nrows, ncols)).astype(dtype)
        q = rng.random((nrows, ncols)).astype(dtype)
        q[:, ::3] = 0
        x[1, ::3] = -np.inf                     # under q = 0 only
        q /= np.maximum(q.sum(axis=1, keepdims=True), 1e-30)
        w = rng.uniform(0.2, 2.0, ncols)
        for kw in ({}, {"weight": w}, {"label_smoothing": 0.1},
                   {"weight": w, "label_smoothing": 0.3}):
            with kernels("baseline"), np.errstate(all="ignore"):
                want = xentc.cross_entropy_and_grad(x, q, reduction="none", **kw)
            with kernels(level), np.errstate(all="ignore"):
                got = xentc.cross_entropy_and_grad(x, q, reduction="none", **kw)
            assert np.isfinite(got[0][1]) == np.isfinite(want[0][1])
            scale = np.maximum(np.max(np.abs(np.where(np.isfinite(x), x, 0)), axis=-1), 1.0)
            assert_close(got[0], want[0], NULP[dtype] * 4, scale * 2)
            assert_close(got[1], want[1], NULP[dtype] * 4, np.ones_like(want[1], float))
        with kernels("baseline"), np.errstate(all="ignore"):
            lw = xentc.cross_entropy(x, np.arange(nrows) % ncols, reduction="none",
                                     weight=w, label_smoothing=0.2)
        with kernels(level), np.errstate(all="ignore"):
            lg = xentc.cross_entropy(x, np.arange(nrows) % ncols, reduction="none",
                                     weight=w, label_smoothing=0.2)
        assert_close(lg, lw, NULP[dtype] * 4, np.broadcast_to(scale * 2, lw.shape))


@pytest.mark.parametrize("level", SIMD_LEVELS)
@pytest.mark.parametrize("ncols", [4, 40])
def test_smoothing_with_extreme_logits(level, ncols):
    # sum_c (x_c - max) in double: in float32, -3e38 - 3e38 overflows
    # (fuzz seed 47, case 62439: an inf loss where the per-row path's is
    # 1.1e38)
    rng = np.random.default_rng(7)
    x = rng.choice(np.array([-3e38, -1e38, 0.0, 1e38, 3e38], np.float32), (48, ncols))
    target = rng.integers(0, ncols, 48)
    for e in (0.5, 1.0):
        with kernels("baseline"), np.errstate(all="ignore"):
            want = xentc.cross_entropy(x, target, reduction="none", label_smoothing=e)
        with kernels(level), np.errstate(all="ignore"):
            got = xentc.cross_entropy(x, target, reduction="none", label_smoothing=e)
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
        np.testing.assert_allclose(got[np.isfinite(want)], want[np.isfinite(want)], rtol=1e-6)
