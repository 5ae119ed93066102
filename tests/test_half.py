"""float16 and bfloat16 (ml_dtypes) inputs on the 16-bit kernels.

The kernels widen 16-bit rows to float32, compute in float32 (sums in
double) and round each result once to the input's format
(include/xentc/half.h, half_tiles.h). Checked here, at every
instruction-set level this CPU runs:
  - the conversions themselves, bit for bit against NumPy / ml_dtypes,
    every 16-bit pattern and the float32 values around every rounding
    boundary;
  - every result against a float64 reference rounded to 16 bits: within
    1 ulp of 16 bits (ulp_error), over the sweeps of the float32 tests
    (empty, 0-d, every tail length 1..40, rows past 4096 and past a chunk,
    other axes, NaN/inf in every lane);
  - that inputs are never written and dtypes are checked.
bfloat16 tests skip without ml_dtypes (an optional dependency).
"""
import numpy as np
import pytest
import scipy.special as sc

import xentc
from xentc import _core, _dispatch, _half
from test_kernels_isa import kernels  # the level switch, always restored

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)
F16 = np.dtype(np.float16)
DTYPES = [F16, BF16]
LEVELS = _dispatch.available_levels()
KIND = {F16: 0, BF16: 1}
FLT_MIN = float(np.finfo(np.float32).tiny)
EPS32 = float(np.finfo(np.float32).eps)


def ids(d):
    return str(d)


# --------------------------------------------------------------------------
# the conversions
# --------------------------------------------------------------------------

ALL_BITS = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
def test_widen_every_pattern(level, dtype):
    want = ALL_BITS.view(dtype).astype(np.float32)
    for n in list(range(0, 41)) + [ALL_BITS.size]:
        got = np.empty(n, np.float32)
        with kernels(level):
            _core.widen_h16(ALL_BITS[-n:] if n else ALL_BITS[:0], KIND[dtype], got)
        w = want[-n:] if n else want[:0]
        nan = np.isnan(w)
        # NaN stays NaN (F16C quiets signalling NaNs: the payload may differ)
        np.testing.assert_array_equal(np.isnan(got), nan)
        np.testing.assert_array_equal(got[~nan].view(np.uint32), w[~nan].view(np.uint32))


def _narrow_cases(dtype):
    """float32 values at and around every rounding boundary of dtype: every
    16-bit value, its float32 neighbours, the midpoints between consecutive
    values and theirs, random bit patterns."""
    v = ALL_BITS.view(dtype).astype(np.float32)
    v = v[np.isfinite(v)]
    v = np.sort(v)
    mid = ((v[:-1].astype(np.float64) + v[1:]) / 2).astype(np.float32)
    rng = np.random.default_rng(5)
    raw = rng.integers(0, 1 << 32, 1 << 17, dtype=np.uint64).astype(np.uint32).view(np.float32)
    parts = [v, mid, raw, np.float32([np.inf, -np.inf, np.nan, 65504, 65519.99, 65520,
                                      3.3895314e38, 3.4028235e38])]
    with np.errstate(invalid="ignore"):
        for a in (v, mid):
            parts += [np.nextafter(a, np.float32(np.inf)), np.nextafter(a, np.float32(-np.inf))]
    return np.concatenate(parts)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
def test_narrow_rounds_to_nearest_even(level, dtype):
    f = _narrow_cases(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        want = f.astype(dtype)
    nan = np.isnan(f)
    for n in list(range(0, 41)) + [f.size]:
        got = np.empty(n, np.uint16)
        with kernels(level):
            _core.narrow_h16(np.ascontiguousarray(f[:n]), KIND[dtype], got)
        g = got.view(dtype)
        np.testing.assert_array_equal(np.isnan(g.astype(np.float32)), nan[:n])
        np.testing.assert_array_equal(got[~nan[:n]], want[:n][~nan[:n]].view(np.uint16))


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
def test_double_to_16_bits_rounds_once(dtype):
    with np.errstate(invalid="ignore"):
        v = ALL_BITS.view(dtype).astype(np.float64)
    v = np.sort(v[np.isfinite(v)])
    mid = (v[:-1] + v[1:]) / 2
    d = np.concatenate([mid, mid * (1 + 2.0 ** -40), mid * (1 - 2.0 ** -40), v,
                        [np.inf, -np.inf, np.nan, 1e300, -1e300, 1e-300]])
    got = _half.from_float64(d, dtype).astype(np.float64)
    # exact reference: the nearest of the two neighbours, ties to even bits
    for x, g in zip(d, got):
        if np.isnan(x):
            assert np.isnan(g)
            continue
        if x in (np.inf, -np.inf) or abs(x) > 1e38:
            assert np.sign(g) == np.sign(x) and (np.isinf(g) or abs(g) <= 3.4e38)
            continue
        i = np.searchsorted(v, x)
        cands = [v[j] for j in (i - 1, i) if 0 <= j < v.size]
        best = min(abs(c - x) for c in cands)
        near = [c for c in cands if abs(c - x) == best]
        if len(near) == 2:  # a tie: the even one
            near = [c for c in near
                    if int(np.array([c]).astype(dtype).view(np.uint16)[0]) % 2 == 0]
        if abs(x) > float(v[-1]):  # beyond the largest finite value
            continue
        assert g == near[0] or (g == 0 and near[0] == 0), (x, g, near)


# --------------------------------------------------------------------------
# results against float64, rounded to 16 bits
# --------------------------------------------------------------------------

def ordered(bits16):
    """16-bit patterns as integers in the order of their values (+0 = -0)."""
    b = bits16.astype(np.int32)
    return np.where(b & 0x8000, -(b & 0x7FFF), b & 0x7FFF)


def ulp_error(got, want64, dtype, abs_allow=0.0):
    """Largest distance in 16-bit ulps between got (of dtype) and the
    float64 reference rounded to dtype, with NaN exactly where the
    reference has NaN; elements within abs_allow (per element or scalar)
    of the reference count as 0."""
    got = np.asarray(got)
    assert got.dtype == dtype, (got.dtype, dtype)
    want64 = np.asarray(want64, np.float64)
    assert got.shape == want64.shape
    g64 = got.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(g64), np.isnan(want64))
    fin = ~np.isnan(want64)
    w16 = _half.from_float64(want64, dtype)
    d = np.abs(ordered(np.atleast_1d(got).view(np.uint16))
               - ordered(np.atleast_1d(w16).view(np.uint16))).reshape(got.shape)
    with np.errstate(invalid="ignore"):
        close = np.abs(g64 - want64) <= abs_allow
    d = np.where(fin & ~close, d, 0)
    return int(d.max(initial=0))


def rows16(dtype, shape, seed, scale=4.0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    if x.ndim == 2 and x.shape[0] >= 3 and x.shape[1]:
        x[0] = dtype.type(1.5)                       # all maxima
        x[1, ::2] = x[1].max()                       # every other one a maximum
        x[2] = (x[2].astype(np.float32) * 30).astype(dtype)  # exps that underflow
    return x


def ref_lse(x64, axis):
    with np.errstate(all="ignore"):
        return sc.logsumexp(x64, axis=axis)


def check_lse_softmax(x, axis, errs):
    dtype = x.dtype
    x_before = x.copy()
    x64 = x.astype(np.float64)
    got = xentc.logsumexp(x, axis=axis)
    assert np.asarray(got).dtype == dtype
    errs["logsumexp"] = max(errs.get("logsumexp", 0), ulp_error(got, ref_lse(x64, axis), dtype))
    if x.ndim == 0 or x.size == 0:
        return
    with np.errstate(all="ignore"):
        sm64 = sc.softmax(x64, axis=axis)
        lsm64 = sc.log_softmax(x64, axis=axis)
    sm = xentc.softmax(x, axis=axis)
    lsm = xentc.log_softmax(x, axis=axis)
    # softmax values below float32's smallest normal: the float32 vector
    # exp flushes them to 0 (bfloat16 reaches that range)
    errs["softmax"] = max(errs.get("softmax", 0), ulp_error(sm, sm64, dtype, FLT_MIN))
    errs["log_softmax"] = max(errs.get("log_softmax", 0), ulp_error(lsm, lsm64, dtype))
    np.testing.assert_array_equal(x.view(np.uint16), x_before.view(np.uint16))


def ce_reference(x64, target, **kw):
    """xentc's float64 cross-entropy (checked against torch and exact
    references elsewhere) on the same values."""
    loss = xentc.cross_entropy(x64, target, reduction="none", **kw)
    _, grad = xentc.cross_entropy_and_grad(x64, target, reduction="sum", **kw)
    return loss, grad


def check_ce(x, errs, **kw):
    dtype = x.dtype
    x_before = x.copy()
    n, c = x.shape
    target = (np.arange(n) * 7) % c
    if n > 3:
        target[3] = -100
    x64 = x.astype(np.float64)
    want_loss, want_grad = ce_reference(x64, target, **kw)
    loss = xentc.cross_entropy(x, target, reduction="none", **kw)
    loss2, grad = xentc.cross_entropy_and_grad(x, target, reduction="sum", **kw)
    assert grad.dtype == dtype and loss2.dtype == dtype
    key = "ce" + ("_" + "_".join(sorted(kw)) if kw else "")
    errs[key] = max(errs.get(key, 0), ulp_error(loss, want_loss, dtype))
    # The gradient p - onehot at the target class: p ~ 1 carries float32's
    # absolute error (a few eps32) into a difference that may be tiny; the
    # rest is within 1 ulp of 16 bits. Below FLT_MIN: flushed exps.
    onehot = np.zeros_like(want_grad)
    ok = target >= 0
    onehot[np.flatnonzero(ok), target[ok]] = 1.0
    # Exps below FLT_MIN flush to 0 before the z-loss scale (1 + 2 z lse)
    # multiplies them. With a soft cap, cap' = 1 - (c/s)^2 of the float32
    # capped logit c has an absolute error of ~eps32 (0 where tanh
    # saturates in float32, where float64 keeps 1e-10 or so): the float32
    # path's arithmetic, an absolute error of a few eps32.
    allow = 4 * FLT_MIN + 4 * EPS32 * onehot * (1 + 10 * kw.get("z_loss", 0))
    if kw.get("softcap"):
        allow = allow + 4 * EPS32
    errs[key + "_grad"] = max(errs.get(key + "_grad", 0),
                              ulp_error(grad, want_grad, dtype, allow))
    total = xentc.cross_entropy(x, target, reduction="sum", **kw)
    assert total.dtype == dtype
    errs[key + "_sum"] = max(errs.get(key + "_sum", 0),
                             ulp_error(total, np.sum(want_loss), dtype))
    np.testing.assert_array_equal(x.view(np.uint16), x_before.view(np.uint16))


# every tail length 1..40 (AVX-512: 16 floats a vector, the short-row
# kernel's 32 columns), rows past 4096, past a block, at the 16 KB (8192
# 16-bit elements) up to which a row's max is taken first (blocks.h) and
# past a chunk
TAIL_LENGTHS = list(range(1, 41))
LONG_LENGTHS = [1023, 1024, 1025, 4097, 5000, 8191, 8192, 8193, 16385, 40000]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
def test_every_tail_length(level, dtype):
    errs = {}
    with kernels(level):
        for n in TAIL_LENGTHS:
            x = rows16(dtype, (5, n), n)
            check_lse_softmax(x, -1, errs)
            check_ce(x, errs)
            check_ce(x, errs, label_smoothing=0.1)
    assert max(errs.values()) <= 1, errs


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
def test_long_rows(level, dtype):
    errs = {}
    with kernels(level):
        for n in LONG_LENGTHS:
            x = rows16(dtype, (4, n), n)
            check_lse_softmax(x, -1, errs)
            check_ce(x, errs)
        x = rows16(dtype, (3, 65536 + 4097), 3)      # past a chunk: chunks merged
        check_lse_softmax(x, -1, errs)
        check_ce(x, errs)
        check_ce(x, errs, label_smoothing=0.2)
    assert max(errs.values()) <= 1, errs


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
def test_options(level, dtype):
    errs = {}
    rng = np.random.default_rng(1)
    with kernels(level):
        for n in (7, 33, 300, 70000):
            x = rows16(dtype, (4, n), n)
            w = rng.uniform(0.1, 2.0, n)
            check_ce(x, errs, weight=w)
            check_ce(x, errs, z_loss=1e-3)
            check_ce(x, errs, softcap=5.0)
            check_ce(x, errs, weight=w, label_smoothing=0.3)
    assert max(errs.values()) <= 1, errs


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
def test_probability_targets(dtype):
    rng = np.random.default_rng(2)
    for n in (5, 40, 3000):
        x = rows16(dtype, (6, n), n)
        q = sc.softmax(rng.standard_normal((6, n)), axis=1)
        for qd in (np.float64, np.float32, dtype):
            qq = q.astype(qd)
            want = xentc.cross_entropy(x.astype(np.float64), qq.astype(np.float64),
                                       reduction="none")
            got, grad = xentc.cross_entropy_and_grad(x, qq, reduction="none")
            assert got.dtype == dtype and grad.dtype == dtype
            assert ulp_error(got, want, dtype) <= 1


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
def test_axes_and_shapes(level, dtype):
    errs = {}
    with kernels(level):
        x = rows16(dtype, (6, 5, 7), 4)
        for axis in (0, 1, 2, -1, (0, 2), None):
            check_lse_softmax(x, axis, errs)
        check_lse_softmax(x[:, ::2, :], 1, errs)          # strided
        check_lse_softmax(np.asfortranarray(x[0]), 0, errs)
        check_lse_softmax(dtype.type(1.5), None, errs)     # 0-d
        check_lse_softmax(np.zeros((0, 4), dtype), -1, errs)
        check_lse_softmax(np.zeros((3, 0), dtype), 0, errs)
        big = rows16(dtype, (5000, 3), 7)                   # many tiles of short rows
        check_lse_softmax(big, -1, errs)
        check_ce(big, errs)
        check_ce(np.ascontiguousarray(x.transpose(0, 2, 1).reshape(-1, 5)), errs)
    assert max(errs.values()) <= 1, errs
    assert xentc.logsumexp(np.zeros((0, 4), dtype), axis=1).dtype == dtype
    assert xentc.softmax(dtype.type(3.0)).dtype == dtype
    s = xentc.logsumexp(x, axis=1, keepdims=True)
    assert s.shape == (6, 1, 7) and s.dtype == dtype


SPECIALS = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "nan+inf": None}


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("n", [17, 33, 1030, 9000])
def test_special_values_in_every_lane(level, dtype, n):
    errs = {}
    rng = np.random.default_rng(n)
    with kernels(level):
        for case, v in SPECIALS.items():
            x = (rng.standard_normal((min(n, 40), n))).astype(dtype)
            for i in range(x.shape[0]):
                j = i % n
                if v is None:
                    x[i, j] = np.nan
                    x[i, (j + 5) % n] = np.inf
                else:
                    x[i, j] = v
            x[-1] = -np.inf                                  # a row of -inf only
            check_lse_softmax(x, -1, errs)
            check_ce(x, errs)
    assert max(errs.values()) <= 1, errs


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("n", [8189, 9000], ids=["max-first", "by-block"])
def test_running_max_over_blocks(level, dtype, n):
    # test_kernels_isa's rows (maxima rising, tied across blocks, NaN/inf
    # hidden), in 16 bits: up to 8192 elements a row takes its max first,
    # past it block by block (blocks.h)
    from test_kernels_isa import _running_max_rows
    errs = {}
    with kernels(level):
        for name, row in _running_max_rows(np.float32, True, n).items():
            x = row.astype(dtype)[None, :]
            check_lse_softmax(x, -1, errs)
            assert max(errs.values()) <= 1, (name, errs)


# --------------------------------------------------------------------------
# dtypes, inputs, outputs
# --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
def test_input_is_never_modified_and_out_works(dtype):
    x = rows16(dtype, (9, 50), 0)
    keep = x.copy()
    xentc.logsumexp(x, axis=1)
    xentc.softmax(x, axis=0)
    xentc.cross_entropy_and_grad(x, np.arange(9) % 50, label_smoothing=0.1, softcap=3.0)
    xentc.cross_entropy_and_grad(x, np.arange(9) % 50, label_smoothing=0.1, softcap=3.0,
                                 reduction="mean", weight=np.linspace(-1, 1, 50) + 1.5)
    np.testing.assert_array_equal(x.view(np.uint16), keep.view(np.uint16))
    # out= and grad_out= in place give what a fresh output gives
    want = xentc.log_softmax(x, axis=1)
    y = x.copy()
    assert xentc.log_softmax(y, axis=1, out=y) is y
    np.testing.assert_array_equal(y.view(np.uint16), want.view(np.uint16))
    loss, grad = xentc.cross_entropy_and_grad(x, np.arange(9) % 50)
    y = x.copy()
    loss2, g2 = xentc.cross_entropy_and_grad(y, np.arange(9) % 50, grad_out=y)
    assert g2 is y and loss2 == loss
    np.testing.assert_array_equal(y.view(np.uint16), grad.view(np.uint16))


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
def test_dtypes_are_checked(dtype):
    x = rows16(dtype, (3, 4), 0)
    other = np.float32 if dtype == BF16 else BF16
    with pytest.raises(ValueError, match="dtype"):
        xentc.softmax(x, out=np.empty((3, 4), other))
    with pytest.raises(ValueError, match="dtype"):
        xentc.cross_entropy_and_grad(x, np.arange(3), grad_out=np.empty((3, 4), np.float32))
    with pytest.raises(ValueError, match="kind"):
        _core.lse_rows_h16(x.view(np.uint16), 7, np.empty(3, np.uint16), 1)
    with pytest.raises(TypeError, match="numeric"):
        xentc.logsumexp(np.array(["a"]))


def test_result_dtypes():
    x16 = np.ones(3, F16)
    xb = np.ones(3, BF16)
    assert xentc.logsumexp(xb).dtype == BF16
    assert xentc.logsumexp(xb, b=2.0).dtype == BF16
    assert xentc.logsumexp(xb, b=np.ones(3, BF16)).dtype == BF16
    assert xentc.logsumexp(xb, b=x16).dtype == np.float32      # as torch promotes
    assert xentc.logsumexp(xb, b=np.ones(3)).dtype == np.float64
    assert xentc.logsumexp(x16, b=2.0).dtype == F16             # scipy's
    assert xentc.softmax(xb).dtype == BF16
    assert xentc.cross_entropy(xb[None], np.array([1])).dtype == BF16
    assert xentc.cross_entropy(x16[None], np.array([1])).dtype == F16
    assert xentc.nll_loss(xb[None], np.array([1])).dtype == BF16
    assert xentc.kl_div(xb[None], np.full((1, 3), 1 / 3)).dtype == BF16
    assert xentc.log_loss(np.full((1, 3), 1 / 3, BF16), np.array([1])).dtype == BF16
    # weighted logsumexp: the float64 kernel, rounded once
    a = np.array([0.0, 1.0], BF16)
    v, s = xentc.logsumexp(a, b=np.array([1.0, -1.0], BF16), return_sign=True)
    assert v.dtype == BF16 and float(s) == -1.0


def test_bfloat16_is_recognised_without_importing_ml_dtypes():
    import subprocess
    import sys
    code = ("import sys, xentc, numpy as np; xentc.logsumexp(np.ones(3, np.float16)); "
            "print('ml_dtypes' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
def test_same_bits_for_any_thread_count(dtype):
    x = rows16(dtype, (64, 3000), 9)
    t = np.arange(64) % 3000
    a = [xentc.cross_entropy_and_grad(x, t, reduction="none", workers=w) for w in (1, 2, 3)]
    for loss, grad in a[1:]:
        np.testing.assert_array_equal(loss.view(np.uint16), a[0][0].view(np.uint16))
        np.testing.assert_array_equal(grad.view(np.uint16), a[0][1].view(np.uint16))
    s = [xentc.softmax(x, axis=1, workers=w) for w in (1, 2)]
    np.testing.assert_array_equal(s[0].view(np.uint16), s[1].view(np.uint16))


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("shape", [(1, 5), (37, 17), (300, 40), (3, 5000)])
def test_plain_call_takes_the_fast_path_with_the_general_bits(dtype, shape, monkeypatch):
    # The common call (C-contiguous 2-D logits, int64 targets, default
    # options) runs _core.ce_plain_h16; the general path (int32 targets are
    # not that call) must give the same bits, for 'mean' and 'sum'.
    x = rows16(dtype, shape, 11)
    t = np.arange(shape[0]) % shape[1]
    calls = []
    plain = _core.ce_plain_h16
    monkeypatch.setattr(_core, "ce_plain_h16", lambda *a: calls.append(1) or plain(*a))
    for reduction in ("mean", "sum"):
        fast = xentc.cross_entropy(x, t, reduction=reduction)
        general = xentc.cross_entropy(x, t.astype(np.int32), reduction=reduction)
        assert fast.dtype == general.dtype == dtype
        assert np.asarray(fast).view(np.uint16) == np.asarray(general).view(np.uint16)
    assert len(calls) == 2
    # an ignored target hands the call back to the general path
    t2 = t.copy()
    t2[0] = -100
    want = xentc.cross_entropy(x, t2.astype(np.int32))
    got = xentc.cross_entropy(x, t2)
    assert np.asarray(got).view(np.uint16) == np.asarray(want).view(np.uint16)
    # and a target out of range gets the general path's error
    t2[0] = shape[1]
    with pytest.raises(IndexError, match=r"Target \d+ is out of bounds at position \(0,\)"):
        xentc.cross_entropy(x, t2)
