"""Every instruction-set level of the kernels against the portable baseline.

xentc picks its kernels at import (include/xentc/dispatch.h); the SIMD
levels must give the baseline's answers to within a few ulp, on every row
length a vector kernel can mishandle (empty, shorter than a vector, one
past a whole number of vectors, masked tails, block and chunk boundaries),
with NaN/inf in every lane, and their vector exp must be accurate on the
whole range xentc calls it on (x <= 0).

The baseline (libm exp in double precision) is itself checked against
scipy.special and slow exact references elsewhere; here it is the yardstick.
Levels are switched with the private hook xentc._core.select_kernels and
always restored, so the rest of the suite runs on the default level.
"""
import contextlib

import numpy as np
import pytest
import scipy.special as sc

import xentc
from xentc import _core, _dispatch

LEVELS = _dispatch.available_levels()
SIMD_LEVELS = [lvl for lvl in LEVELS if lvl != "baseline"]
DTYPES = [np.float32, np.float64]

# Row lengths: every length up to two of the widest vectors plus one
# (AVX-512: 16 floats / 8 doubles a vector), the short-row kernel's limit (32 columns), the
# block size (1024 floats / 512 doubles), the 16 KB up to which a row's
# partial takes its max first (blocks.h, XT_ROWMAX_FIRST_BYTES: 4096 floats,
# 2048 doubles) and the chunk size (65536) with their neighbours, and a
# row of two chunks plus one element.
SHORT_LENGTHS = {np.float32: list(range(0, 34)), np.float64: list(range(0, 18))}
BOUNDARY_LENGTHS = [31, 32, 33, 511, 512, 513, 1023, 1024, 1025, 2047, 2048, 2049,
                    4095, 4096, 4097, 65535, 65536, 65537, 131073]
# Lengths of the rows that carry a NaN/inf in each lane position.
SPECIAL_LENGTH = {np.float32: 33, np.float64: 17}

# Tolerances in units of the dtype's eps (see assert_close). Measured
# maxima (AVX2 vs baseline, this module's data): float32 1.97 eps
# (log_softmax), float64 3.5 eps (softmax); the bounds leave room for other
# compilers and CPUs.
NULP = {np.float32: 4, np.float64: 45}   # float64: 45 eps = 1e-14


@contextlib.contextmanager
def kernels(level):
    """Run the body with `level`'s kernels, then restore the level in use."""
    before = _core.active_kernels()
    assert _core.select_kernels(level), level
    try:
        yield
    finally:
        assert _core.select_kernels(before)


@pytest.fixture(autouse=True)
def _level_is_restored():
    # A failing test must not leave the rest of the suite on another level.
    before = _core.active_kernels()
    yield
    assert _core.active_kernels() == before


def assert_close(actual, expected, nulp, scale=None):
    """actual == expected up to nulp * eps * scale (default max(|expected|, 1))
    plus the smallest normal number (SIMD exps flush results below it to 0,
    libm's does not), with NaN exactly where expected has NaN and the same
    infinities. Returns the largest error in units of eps * scale."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    info = np.finfo(expected.dtype)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    inf = np.isinf(expected)
    np.testing.assert_array_equal(actual[inf], expected[inf])
    fin = np.isfinite(expected)
    e = expected[fin].astype(np.float64)
    a = actual[fin].astype(np.float64)
    s = np.maximum(np.abs(e), 1.0) if scale is None else np.asarray(scale, float)[fin]
    err = np.maximum(np.abs(a - e) - float(info.tiny), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        units = np.where(err > 0, err / (float(info.eps) * s), 0.0)
    bad = units > nulp
    if np.any(bad):
        i = int(np.argmax(units))
        raise AssertionError(
            f"{bad.sum()} of {e.size} elements differ by more than {nulp} eps; "
            f"worst (finite element {i}): {a[i]!r} vs {e[i]!r} ({units[i]:.3g} eps)"
        )
    return float(np.max(units, initial=0.0))


def make_rows(dtype, nrows, n, seed):
    """Random rows with the cases a kernel gets wrong: several equal maxima,
    all elements equal, a spread wide enough that exp underflows."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((nrows, n)) * 4).astype(dtype)
    if n:
        x[0] = dtype(1.5)                           # all equal: nmax = n
        x[1, ::2] = x[1].max()                      # every other one a maximum
        x[2] *= dtype(60)                           # terms below ln(FLT_MIN)
    return x


def all_results(x, target):
    """What the kernels feed: each public function on rows x (last axis)."""
    n = x.shape[-1]
    out = {"logsumexp": xentc.logsumexp(x, axis=-1)}
    if n == 0:
        return out
    out["softmax"] = xentc.softmax(x, axis=-1)
    out["log_softmax"] = xentc.log_softmax(x, axis=-1)
    out["ce"] = xentc.cross_entropy(x, target, reduction="none")
    out["ce_smooth"] = xentc.cross_entropy(x, target, reduction="none",
                                           label_smoothing=0.1)
    out["ce_loss"], out["ce_grad"] = xentc.cross_entropy_and_grad(
        x, target, reduction="sum")
    return out


def exp_scale(p):
    """Error scale of p = exp(z): |p| max(1, |z|). exp's condition number
    is |z|, and the kernels round z = x - max (or x - lse) to the input
    dtype before the exp, so p carries a relative error of eps |z|."""
    p = np.abs(np.asarray(p, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, p * np.maximum(1.0, np.abs(np.log(p))), 0.0)


def grad_scale(grad, target, lse, dtype):
    """Error scale of the gradient p - onehot (reduction='sum'): p's
    (exp_scale), plus |p| |lse| eps64 for lse's own rounding in double, and
    eps * 1 where p ~ 1 is subtracted from the one."""
    onehot = np.zeros(grad.shape)
    onehot[np.arange(grad.shape[0]), target] = 1.0
    p = np.abs(grad.astype(np.float64) + onehot)
    lse_units = np.finfo(np.float64).eps / np.finfo(dtype).eps
    lse_term = p * np.abs(np.where(np.isfinite(lse), lse, 0.0))[:, None] * lse_units
    return exp_scale(p) + lse_term + onehot


def compare_to_baseline(level, x, nulp):
    target = np.arange(x.shape[0]) % max(x.shape[-1], 1)
    with kernels("baseline"):
        want = all_results(x, target)
    with kernels(level):
        got = all_results(x, target)
    assert got.keys() == want.keys()
    # The log-domain results carry absolute errors of about eps * |x|:
    # scale them by the row's magnitude, so a loss near 0 (lse - x_y, a
    # cancellation) is judged against the size of its terms.
    row_scale = np.maximum(np.max(np.abs(np.where(np.isfinite(x), x, 0)), axis=-1,
                                  initial=0.0), 1.0).astype(np.float64)
    lse = want["logsumexp"].astype(np.float64)
    worst = {}
    for key in want:
        if key == "softmax":
            scale = exp_scale(want[key])
        elif key == "log_softmax":
            scale = np.broadcast_to(row_scale[:, None], x.shape)
        elif key == "ce_grad":
            scale = grad_scale(want[key], target, lse, x.dtype)
        elif key == "ce_loss":
            scale = np.sum(row_scale)
        else:
            scale = row_scale
        try:
            worst[key] = assert_close(got[key], want[key], nulp,
                                      np.broadcast_to(scale, np.shape(want[key])))
        except AssertionError as exc:
            raise AssertionError(f"{level} vs baseline, {key}, rows {x.shape}: {exc}") from None
    return worst


# ---- results of every level against the baseline --------------------------

@pytest.mark.parametrize("level", SIMD_LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_short_rows_match_baseline(level, dtype):
    # 37 rows: not a whole number of the 8 (4) rows a vector lane group
    # takes in the short-row kernel, so the left-over path runs too.
    for n in SHORT_LENGTHS[dtype]:
        compare_to_baseline(level, make_rows(dtype, 37, n, seed=n), NULP[dtype])


@pytest.mark.parametrize("level", SIMD_LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("n", BOUNDARY_LENGTHS)
def test_boundary_lengths_match_baseline(level, dtype, n):
    nrows = 3 if n > 4096 else 11
    compare_to_baseline(level, make_rows(dtype, nrows, n, seed=n), NULP[dtype])


@pytest.mark.parametrize("level", SIMD_LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_many_short_rows_match_baseline(level, dtype):
    # More rows than one parallel task of the short-row loop (1024).
    for n in (1, 3, 8, 10, 32):
        compare_to_baseline(level, make_rows(dtype, 2500, n, seed=100 + n), NULP[dtype])


@pytest.mark.parametrize("level", SIMD_LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_partials_match_baseline(level, dtype):
    # The raw (max, nmax, rest, flags) partials: max, count and flags are
    # exact at every level; rest is a sum of exps.
    for n in SHORT_LENGTHS[dtype] + [1025, 65537]:
        x = make_rows(dtype, 5, n, seed=7 * n + 1)
        parts = {}
        for lvl in ("baseline", level):
            with kernels(lvl):
                parts[lvl] = np.empty((x.shape[0], 4))
                _core.partial_rows(x, parts[lvl], 1)
        want, got = parts["baseline"], parts[level]
        np.testing.assert_array_equal(got[:, [0, 1, 3]], want[:, [0, 1, 3]])
        # rest matters relative to the whole sum nmax + rest, at the input
        # dtype's precision (the partials are float64 arrays).
        units = np.finfo(dtype).eps / np.finfo(np.float64).eps
        assert_close(got[:, 2], want[:, 2], NULP[dtype],
                     scale=(want[:, 1] + want[:, 2]) * units)


@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_float32_gradient_of_large_logits(level):
    # Logits near 1000: p = exp(x - lse) must keep float32 accuracy (the
    # baseline, and torch, which shifts by the max, do). The SIMD
    # exp-and-scale kernels round their shift to float32, so the gradient
    # must shift by the row max (a float32 value), not by lse: with lse the
    # error was eps32 * |lse| / 2, 245 eps here.
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((16, 1000)) * 2 + 1000).astype(np.float32)
    target = rng.integers(0, 1000, 16)
    with kernels("baseline"):
        _, want = xentc.cross_entropy_and_grad(x, target, reduction="sum")
    with kernels(level):
        _, got = xentc.cross_entropy_and_grad(x, target, reduction="sum")
    onehot = np.zeros(x.shape)
    onehot[np.arange(16), target] = 1.0
    p = np.abs(want.astype(np.float64) + onehot)
    assert_close(got, want, NULP[np.float32], exp_scale(p) + onehot)


# ---- NaN and infinities in every lane -------------------------------------

SPECIALS = {"nan": np.nan, "+inf": np.inf, "-inf": -np.inf}


def rows_with_special(dtype, n, values):
    """One row per lane position: row k holds values[0] at k (and
    values[1], if given, at the mirrored position n-1-k) in random data."""
    x = make_rows(dtype, n, n, seed=n)[:, ::-1].copy()
    x[0] = np.random.default_rng(1).standard_normal(n).astype(dtype)
    x[1] = np.random.default_rng(2).standard_normal(n).astype(dtype)
    x[2] = np.random.default_rng(3).standard_normal(n).astype(dtype)
    for k in range(n):
        x[k, k] = values[0]
        if len(values) > 1 and n - 1 - k != k:
            x[k, n - 1 - k] = values[1]
    return x


SPECIAL_CASES = [("nan",), ("+inf",), ("-inf",), ("+inf", "-inf"), ("nan", "+inf"),
                 ("-inf", "-inf")]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("case", SPECIAL_CASES, ids="/".join)
@pytest.mark.parametrize("long_row", [0, 1025, 5000], ids=["short", "max-first", "by-block"])
def test_special_values_in_every_lane_match_scipy(level, dtype, case, long_row):
    n = SPECIAL_LENGTH[dtype]
    x = rows_with_special(dtype, n, [SPECIALS[c] for c in case])
    if long_row:
        # The same lanes at the start of a row past the short-row kernel's
        # limit, and again in the masked tail of its last block; 1025
        # columns take the row's max first, 5000 (past 16 KB) go block by
        # block (blocks.h).
        pad = make_rows(dtype, n, long_row, seed=5)
        pad[:, :n] = x
        pad[:, -n:] = x
        x = pad
    with kernels(level), np.errstate(all="ignore"):
        got = {f: getattr(xentc, f)(x, axis=-1)
               for f in ("logsumexp", "softmax", "log_softmax")}
        want = {f: getattr(sc, f)(x, axis=-1)
                for f in ("logsumexp", "softmax", "log_softmax")}
    for f in got:
        # scipy computes float32 in float32: its own error is a few ulp.
        try:
            assert_close(got[f], want[f].astype(dtype), 16,
                         scale=np.maximum(np.abs(np.nan_to_num(want[f])), 1.0)
                         if f != "softmax" else np.abs(np.nan_to_num(want[f])))
        except AssertionError as exc:
            raise AssertionError(f"{level}, {f}: {exc}") from None


def short_rows_with_special(dtype, ncols, values):
    """Short rows with the special values in one row of each group of 16:
    block p (16 rows) holds them in its row p, so every lane position of the
    short-row kernels' groups (16 or 8 float rows, 8 or 4 double rows per
    vector) meets them, next to clean lanes; 5 clean rows follow (the
    left-over path)."""
    x = make_rows(dtype, 16 * 16 + 5, ncols, seed=ncols)
    for p in range(16):
        row = x[16 * p + p]
        row[p % ncols] = values[0]
        if len(values) > 1 and ncols - 1 - p % ncols != p % ncols:
            row[ncols - 1 - p % ncols] = values[1]
    return x


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("case", SPECIAL_CASES, ids="/".join)
@pytest.mark.parametrize("ncols", [3, 10, 32])
def test_special_values_in_every_lane_of_short_rows(level, dtype, case, ncols):
    x = short_rows_with_special(dtype, ncols, [SPECIALS[c] for c in case])
    with kernels(level), np.errstate(all="ignore"):
        got = {f: getattr(xentc, f)(x, axis=-1)
               for f in ("logsumexp", "softmax", "log_softmax")}
    with np.errstate(all="ignore"):
        want = {f: getattr(sc, f)(x.astype(np.float64), axis=-1).astype(dtype)
                for f in got}
    # error scales as in compare_to_baseline: exp's condition number for
    # softmax, the row's magnitude for the log-domain results
    row_scale = np.maximum(np.max(np.abs(np.where(np.isfinite(x), x, 0)), axis=-1),
                           1.0).astype(np.float64)
    for f in got:
        scale = (exp_scale(np.nan_to_num(want[f])) if f == "softmax"
                 else row_scale if f == "logsumexp" else row_scale[:, None])
        try:
            assert_close(got[f], want[f], NULP[dtype], np.broadcast_to(scale, x.shape
                                                                       if f != "logsumexp"
                                                                       else row_scale.shape))
        except AssertionError as exc:
            raise AssertionError(f"{level}, {f}: {exc}") from None
    if level != "baseline":
        with np.errstate(all="ignore"):
            compare_to_baseline(level, x, NULP[dtype])


@pytest.mark.parametrize("level", SIMD_LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("case", SPECIAL_CASES, ids="/".join)
def test_special_values_cross_entropy_match_baseline(level, dtype, case):
    n = SPECIAL_LENGTH[dtype]
    x = rows_with_special(dtype, n, [SPECIALS[c] for c in case])
    with np.errstate(all="ignore"):
        compare_to_baseline(level, x, NULP[dtype])


# ---- the vector exp --------------------------------------------------------

def ulp_error(y, ref, mantissa_bits):
    """|y - ref| in units of the last place of ref (ref in higher precision,
    ulp taken from ref's own binade, not from ref rounded)."""
    _, e = np.frexp(ref)
    ulp = np.ldexp(np.ones_like(ref), e - mantissa_bits)
    return np.abs(y.astype(ref.dtype) - ref) / ulp


def vector_exp(x):
    y = np.empty_like(x)
    _core.exp_nonpositive(x, y)
    return y


# Bounds on the vector exp's error, ulp. Measured (2^22 points, AVX2 and
# AVX-512 alike): float32 1.97 ulp; float64 0.94 ulp (at x = -644.96) with
# the degree-11 fit of tools/fit_exp_poly.py, whose own error is 0.15 ulp;
# the degree-12 Taylor polynomial before it measured 2.29 ulp.
EXP_MAX_ULP = {np.float32: 3.0, np.float64: 1.0}
LN_TINY = {np.float32: np.log(np.finfo(np.float32).tiny),
           np.float64: np.log(np.finfo(np.float64).tiny)}


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_vector_exp_accuracy(level, dtype):
    if dtype is np.float64 and np.finfo(np.longdouble).nmant < 63:
        pytest.skip("needs an extended long double for a float64 reference")
    lo = {np.float32: -87.3, np.float64: -708.0}[dtype]
    x = np.linspace(lo, 0.0, 1 << 22).astype(dtype)
    with kernels(level):
        y = vector_exp(x)
    if dtype is np.float32:
        ref = np.exp(x.astype(np.float64))                 # exact to 2^-53
        err = ulp_error(y, ref, 24)
    else:
        ref = np.exp(x.astype(np.longdouble))
        err = ulp_error(y, ref, 53)
    worst = int(np.argmax(err))
    assert err[worst] <= EXP_MAX_ULP[dtype], (
        f"{level}: {float(err[worst]):.3f} ulp at x = {x[worst]!r}")


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_vector_exp_edges(level, dtype):
    tiny = np.finfo(dtype).tiny
    with kernels(level):
        # Below ln(smallest normal): 0 or a subnormal (never NaN, never
        # above the smallest normal, never negative).
        below = np.linspace(LN_TINY[dtype] - 60, LN_TINY[dtype], 100001).astype(dtype)
        below = below[below < LN_TINY[dtype]]
        y = vector_exp(below)
        assert np.all((y >= 0) & (y <= tiny))
        assert np.all(y[below < LN_TINY[dtype] - 50] == 0)   # past every subnormal
        # Exact points and propagation, in every lane of two AVX-512 vectors + 1.
        for value, want in [(0.0, 1.0), (-0.0, 1.0), (-np.inf, 0.0)]:
            np.testing.assert_array_equal(vector_exp(np.full(33, value, dtype)),
                                          np.full(33, want, dtype))
        x = np.full(33, -1.0, dtype)
        for k in range(33):
            z = x.copy()
            z[k] = np.nan
            y = vector_exp(z)
            assert np.isnan(y[k]) and not np.any(np.isnan(np.delete(y, k)))
        # A lone element, the masked tails: the same as a full vector.
        x = np.linspace(-20, 0, 33).astype(dtype)
        full = vector_exp(x)
        for n in range(1, 33):
            np.testing.assert_array_equal(vector_exp(x[:n].copy()), full[:n])


def test_levels_are_reported_consistently():
    assert LEVELS, "no level available"
    assert LEVELS[-1] == "baseline"
    assert set(LEVELS) <= set(_core.compiled_levels())
    assert _core.active_kernels() in LEVELS
    for lvl in LEVELS:
        assert _core.cpu_supports(lvl)
    # A level this build or CPU lacks is refused and changes nothing.
    before = _core.active_kernels()
    assert not _core.select_kernels("no-such-level")
    assert _core.active_kernels() == before


@pytest.mark.skipif(not {"avx2", "avx512"} <= set(SIMD_LEVELS),
                    reason="needs both the AVX2 and the AVX-512 kernels")
@pytest.mark.parametrize("dtype", DTYPES)
def test_vector_exp_is_the_same_at_every_width(dtype):
    """exp_avx512.h runs exp_avx2.h's algorithm and constants: the same bits
    per element, so the levels differ only in the order of their sums."""
    x = -np.geomspace(1e-30, 800.0, 200003).astype(dtype)
    x = np.concatenate([x, [0.0, -0.0, -np.inf, np.nan]]).astype(dtype)
    with kernels("avx2"):
        a = vector_exp(x)
    with kernels("avx512"):
        b = vector_exp(x)
    np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))


def _running_max_rows(dtype, max_first, n=None):
    """Rows of several blocks that move the running max around (see
    XT_DEFINE_CHUNK_PARTIAL): name -> row. max_first: four blocks less
    three elements (16 KB less 12 or 24 bytes: the row's max first), else
    5 float32 blocks and 7 elements (past 16 KB in either type); n, when
    given, is the length (test_half's 16-bit rows)."""
    block = 1024 if dtype == np.float32 else 512
    if n is None:
        n = 4 * block - 3 if max_first else 5 * 1024 + 7
    rng = np.random.default_rng(5)
    rows = {
        "ascending": np.linspace(-30.0, 30.0, n),
        "descending": np.linspace(30.0, -30.0, n),
        "max-in-last-block": np.r_[rng.normal(0, 1, n - 1), 50.0],
    }
    ties = np.full(n, -50.0)
    ties[[5, block + 476, 2 * block + 552, n - 1]] = 0.0  # a maximum in four blocks
    rows["ties-across-blocks"] = ties
    rising = np.full(n, -60.0)
    rising[[10, block + 76, 2 * block + 152]] = [-1.0, 0.0, 0.0]  # max raised, then tied
    rows["raised-then-tied"] = rising
    lead = rng.normal(0, 1, n)
    lead[:2 * block] = -np.inf                   # whole blocks of -inf first
    rows["neginf-blocks-first"] = lead
    nan_hidden = lead.copy()
    nan_hidden[700] = np.nan                     # NaN in a block whose max is -inf
    rows["nan-in-neginf-block"] = nan_hidden
    late_inf = rng.normal(0, 1, n)
    late_inf[-3] = np.inf
    rows["inf-in-last-block"] = late_inf
    return {k: v.astype(dtype) for k, v in rows.items()}


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("max_first", [True, False], ids=["max-first", "by-block"])
def test_running_max_over_blocks(level, dtype, max_first):
    """Rows of several blocks whose block maxima rise, tie and hide NaN/inf:
    by block (past 16 KB) the partial folds earlier blocks when the max
    rises, and counts maxima in every block holding one; max first (up to
    16 KB), only in the blocks holding the row's max. The result is scipy's
    (float64), to a few ulp."""
    for name, row in _running_max_rows(dtype, max_first).items():
        with kernels(level):
            got = xentc.logsumexp(row)
        with np.errstate(invalid="ignore"):
            want = sc.logsumexp(row.astype(np.float64))
        if not np.isfinite(want):
            assert np.array_equal(got, want, equal_nan=True), (name, got, want)
        else:
            assert got == pytest.approx(want, rel=8 * float(np.finfo(dtype).eps), abs=0), name
