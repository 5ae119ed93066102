"""Targeted tests of xentc.logsumexp / softmax / log_softmax: errors, out=,
workers, accuracy, properties (hypothesis), complex input, scipy's doc
examples and the documented edge-case contract.

The broad dtype x layout x shape x axis sweep lives in
test_logsumexp_sweep.py; this module checks the things a sweep cannot:
exact error types of the extra arguments, bitwise reproducibility across
thread counts, and accuracy against references far more precise than the
result dtype.
"""
import contextlib
import math
import os
import warnings

import numpy as np
import pytest
import scipy.special as sc

import scipy_version
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.exceptions import AxisError

import reference as ref

xentc = pytest.importorskip("xentc")

FUNCS = ["logsumexp", "softmax", "log_softmax"]
SOFTMAX_FUNCS = ["softmax", "log_softmax"]
EPS64 = np.finfo(np.float64).eps
HAVE_EXTENDED = np.finfo(np.longdouble).eps < EPS64

# Bounded, reproducible property tests; no example database in the work tree.
# (Every pytest.approx below passes abs=0: its default absolute tolerance of
# 1e-12 would accept 0 for 4e-18.)
PROPERTY = settings(max_examples=100, deadline=None, database=None, derandomize=True)


@contextlib.contextmanager
def no_warnings():
    """Any warning (RuntimeWarning from inf/NaN arithmetic) is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ===================================================================== errors
@pytest.mark.parametrize("func", FUNCS)
def test_axis_list_is_type_error(func):
    with pytest.raises(TypeError):
        getattr(xentc, func)(np.ones((2, 3)), axis=[0])


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("axis", [2, -3, (0, 2)])
def test_axis_out_of_range_is_axis_error(func, axis):
    with pytest.raises(AxisError):
        getattr(xentc, func)(np.ones((2, 3)), axis=axis)


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("axis", [(0, 0), (1, -1)])
def test_duplicate_axis_is_value_error(func, axis):
    with pytest.raises(ValueError) as exc:
        getattr(xentc, func)(np.ones((2, 3)), axis=axis)
    assert not isinstance(exc.value, AxisError)  # duplicate, not out of range


@pytest.mark.parametrize("func", SOFTMAX_FUNCS)
def test_softmax_bool_is_type_error(func):
    with pytest.raises(TypeError):
        getattr(xentc, func)(np.array([True, False]))


def test_logsumexp_bool_is_float64():
    # ... while logsumexp takes bool like scipy: as 0/1, in float64.
    res = xentc.logsumexp(np.array([True, False]))
    assert res.dtype == np.float64
    assert res == pytest.approx(np.log(np.e + 1), rel=1e-15, abs=0)


@pytest.mark.parametrize("func", SOFTMAX_FUNCS)
@pytest.mark.parametrize("shape, axis", [((0,), None), ((0,), 0), ((3, 0), 1), ((0, 3), 0),
                                         ((3, 0), None)])
def test_softmax_zero_size_reduction_is_value_error(func, shape, axis):
    with pytest.raises(ValueError):
        getattr(xentc, func)(np.zeros(shape), axis=axis)


@pytest.mark.parametrize("func", SOFTMAX_FUNCS)
def test_softmax_zero_size_without_empty_reduction(func):
    # (3, 0) along axis 0 reduces over 3 elements for each of 0 columns:
    # fine, and empty, as in scipy.
    res = getattr(xentc, func)(np.zeros((3, 0)), axis=0)
    assert res.shape == (3, 0) and res.dtype == np.float64


@pytest.mark.parametrize("func", FUNCS)
def test_workers_zero_is_value_error(func):
    with pytest.raises(ValueError):
        getattr(xentc, func)(np.ones(5), workers=0)


@pytest.mark.parametrize("func", FUNCS)
def test_workers_below_minus_cpu_count_is_value_error(func):
    # As scipy.fft: -1 is every core, -cpu_count() one thread, lower is wrong.
    ncpu = os.cpu_count() or 1
    getattr(xentc, func)(np.ones(5), workers=-ncpu)
    with pytest.raises(ValueError):
        getattr(xentc, func)(np.ones(5), workers=-ncpu - 1)


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("workers", [1.5, 2.0, "2", [2]])
def test_workers_non_int_is_type_error(func, workers):
    with pytest.raises(TypeError):
        getattr(xentc, func)(np.ones(5), workers=workers)


@pytest.mark.parametrize("func", FUNCS)
def test_workers_accepts_numpy_int(func):
    x = np.linspace(-3, 3, 11)
    np.testing.assert_array_equal(getattr(xentc, func)(x, workers=np.int64(2)),
                                  getattr(xentc, func)(x, workers=1))


@pytest.mark.parametrize("func", SOFTMAX_FUNCS)
@pytest.mark.parametrize("out_shape, out_dtype, x_dtype", [
    ((3, 5), np.float64, np.float64),   # transposed shape
    ((4, 4), np.float64, np.float64),   # same size, other shape
    ((4, 5, 1), np.float64, np.float64),
    ((4, 5), np.float32, np.float64),   # narrower dtype
    ((4, 5), np.float64, np.float32),   # wider dtype: float32 in, float32 out
    ((4, 5), np.float32, np.int64),     # ints give float64
    ((4, 5), np.complex128, np.float64),
])
def test_out_wrong_shape_or_dtype_is_value_error(func, out_shape, out_dtype, x_dtype):
    x = np.arange(20, dtype=x_dtype).reshape(4, 5)
    out = np.full(out_shape, 7, dtype=out_dtype)
    before = out.copy()
    with pytest.raises(ValueError):
        getattr(xentc, func)(x, axis=1, out=out)
    np.testing.assert_array_equal(out, before)  # nothing written on error


# ====================================================================== out=
@pytest.mark.parametrize("func", SOFTMAX_FUNCS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.longdouble, np.int32])
@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)])
def test_out_is_filled_and_returned(func, dtype, axis):
    rng = np.random.default_rng(5)
    x = (rng.normal(0, 3, (6, 7)) * (10 if dtype == np.int32 else 1)).astype(dtype)
    expected = getattr(xentc, func)(x, axis=axis)
    out = np.full(x.shape, np.nan, dtype=np.result_type(x, 1.0))
    res = getattr(xentc, func)(x, axis=axis, out=out)
    assert res is out
    np.testing.assert_array_equal(out, expected)
    # and the numbers are scipy's
    np.testing.assert_allclose(out.astype(np.float64),
                               getattr(sc, func)(x, axis=axis).astype(np.float64),
                               rtol=1e-2 if dtype == np.float16 else 2e-6, atol=1e-6)


@pytest.mark.parametrize("func", SOFTMAX_FUNCS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [0, 1, None])
def test_out_in_place(func, dtype, axis):
    # out=x overwrites the input with its own (log-)softmax.
    rng = np.random.default_rng(6)
    x = rng.normal(0, 3, (33, 70)).astype(dtype)
    expected = getattr(xentc, func)(x.copy(), axis=axis)
    res = getattr(xentc, func)(x, axis=axis, out=x)
    assert res is x
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("func", SOFTMAX_FUNCS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ncols", [5, 1000, 70001], ids=["short", "cached", "chunked"])
def test_out_in_place_special_rows(func, dtype, ncols):
    """In place on every row path, with rows holding NaN, +inf, -inf and
    all -inf: softmax may keep its exps in out while it reduces, so a row
    that turns out special must still get scipy's values, not leftovers."""
    rng = np.random.default_rng(11)
    x = rng.normal(0, 3, (6, ncols)).astype(dtype)
    x[1, ncols // 2] = np.nan
    x[2, ncols - 1] = np.inf
    x[3, 0] = -np.inf
    x[4] = -np.inf
    x[5, 1:3] = np.inf
    with np.errstate(invalid="ignore"):   # scipy's inf - inf on these rows
        want = getattr(sc, func)(x.astype(np.float64), axis=1)
    expected = getattr(xentc, func)(x.copy(), axis=1)
    res = getattr(xentc, func)(x, axis=1, out=x)
    assert res is x
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_allclose(x, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("func", SOFTMAX_FUNCS)
def test_out_strided_view(func):
    # A non-contiguous out of the right shape and dtype is fine; the memory
    # between its elements is left alone.
    rng = np.random.default_rng(7)
    x = rng.normal(size=(257, 101))
    buf = np.full((257, 202), -5.0)
    out = buf[:, ::2]
    res = getattr(xentc, func)(x, axis=1, out=out)
    assert res is out
    np.testing.assert_array_equal(out, getattr(xentc, func)(x, axis=1))
    assert np.all(buf[:, 1::2] == -5.0)


# =================================================================== workers
WORKERS = [1, 2, 3, -1, None]
BIG_CASES = [
    ((257, 1001), 1), ((257, 1001), 0), ((257, 1001), None),
    ((3, 300001), -1),          # a few long rows: split inside a row
    ((100000, 3), -1),          # many short rows
    ((100000, 3), 0),           # long strided columns
]


def _bits(res):
    if isinstance(res, tuple):
        return tuple(_bits(r) for r in res)
    return np.asarray(res).tobytes()


@pytest.mark.parametrize("variant", ["logsumexp", "logsumexp_b", "softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis", BIG_CASES,
                         ids=[f"{'x'.join(map(str, s))}-axis={a}" for s, a in BIG_CASES])
def test_workers_bitwise_identical(variant, dtype, shape, axis):
    """Every thread count gives the same bits (fixed chunking, fixed merge
    order), for full reductions, long rows and many short rows."""
    rng = np.random.default_rng(8)
    x = rng.normal(0, 4, shape).astype(dtype)
    x[0, 0] = -np.inf  # a -inf must not change the answer's bits either
    b = rng.uniform(-0.2, 1, shape).astype(dtype)  # some negative sums

    def call(workers):
        if variant == "logsumexp_b":
            return xentc.logsumexp(x, axis=axis, b=b, return_sign=True, workers=workers)
        return getattr(xentc, variant)(x, axis=axis, workers=workers)

    first = _bits(call(1))
    for workers in WORKERS[1:]:
        assert _bits(call(workers)) == first, f"workers={workers} differs from workers=1"


# ================================================================== accuracy
def test_separates_max_terms():
    # log(1 + e^-40) = 4.248e-18: lost entirely by log(sum(exp(x - max))).
    res = xentc.logsumexp(np.array([0.0, -40.0]))
    assert res == pytest.approx(np.log1p(np.exp(-40.0)), rel=4 * EPS64, abs=0)
    res32 = xentc.logsumexp(np.array([0.0, -40.0], dtype=np.float32))
    assert res32.dtype == np.float32
    assert res32 == pytest.approx(np.float32(np.log1p(np.exp(-40.0))), rel=2e-7, abs=0)
    # and the same for a repeated maximum
    assert xentc.logsumexp([3.0, 3.0, -37.0]) == pytest.approx(
        3 + np.log(2) + np.log1p(np.exp(-40.0) / 2), rel=4 * EPS64, abs=0)


def _fsum_lse(x64):
    """log(sum(exp(x))) for a float64 vector: exp in float64 (relative error
    ~1e-16 per term), the sum exact (math.fsum), one log."""
    m = float(np.max(x64))
    return m + math.log(math.fsum(np.exp(x64 - m).tolist()))


def _float32_ulps(value, exact):
    return abs(float(value) - exact) / float(np.spacing(np.float32(exact)))


def test_float32_long_row_accuracy():
    """10**7 float32 elements, one row: xentc accumulates in float64, so the
    float32 answer is within 1 ulp of the exact one."""
    rng = np.random.default_rng(9)
    x = rng.normal(0, 1, 10**7).astype(np.float32)
    res = xentc.logsumexp(x)
    assert res.dtype == np.float32
    assert _float32_ulps(res, _fsum_lse(x.astype(np.float64))) <= 1.0


def test_float32_long_column_accuracy():
    """5*10**6 float32 elements down each of 2 columns (a strided reduction,
    which NumPy sums naively in float32: scipy is ~1000 ulp off here). The
    float64 accumulation keeps xentc within 1 ulp."""
    rng = np.random.default_rng(10)
    x = rng.normal(0, 1, (5 * 10**6, 2)).astype(np.float32)
    res = xentc.logsumexp(x, axis=0)
    assert res.dtype == np.float32 and res.shape == (2,)
    for j in range(2):
        assert _float32_ulps(res[j], _fsum_lse(x[:, j].astype(np.float64))) <= 1.0


def _longdouble_lse(x, axis):
    xl = x.astype(np.longdouble)
    m = xl.max(axis=axis, keepdims=True)
    s = np.exp(xl - m).sum(axis=axis, keepdims=True)
    return np.squeeze(m + np.log(s), axis=axis), m, s


ROWS = {
    "normal10": lambda rng: rng.normal(0, 10, (64, 1000)),
    "normal1": lambda rng: rng.normal(0, 1, (64, 1000)),
    "uniform": lambda rng: rng.uniform(-1, 1, (64, 5000)),
    "scaled": lambda rng: rng.normal(0, 1, (64, 37)) * rng.uniform(0, 50, (64, 1)),
    "very_negative": lambda rng: rng.normal(-700, 1, (64, 100)),
}


@pytest.mark.skipif(not HAVE_EXTENDED, reason="needs an extended long double reference")
@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("axis", [1, 0])
def test_float64_accuracy(rows, axis):
    """float64 logsumexp within 2 ulp of a long double reference (2048 times
    more precise), along contiguous rows and strided columns."""
    x = ROWS[rows](np.random.default_rng(11))
    exact, _, _ = _longdouble_lse(x, axis)
    res = xentc.logsumexp(x, axis=axis)
    ulps = np.abs(res.astype(np.longdouble) - exact) / np.spacing(exact.astype(np.float64))
    assert float(ulps.max()) <= 2.0


@pytest.mark.skipif(not HAVE_EXTENDED, reason="needs an extended long double reference")
@pytest.mark.parametrize("rows", ["normal10", "normal1", "uniform"])
@pytest.mark.parametrize("axis", [1, 0])
def test_float64_softmax_accuracy(rows, axis):
    """softmax: relative error of each probability within a few ulp times the
    conditioning of exp at x - max, plus a summation allowance of a few ulp per
    halving of the row (pairwise-summation order); log_softmax: absolute error
    within a few ulp of |x - max| + log(sum), plus the same allowance."""
    x = ROWS[rows](np.random.default_rng(12))
    _, m, s = _longdouble_lse(x, axis)
    shifted = x.astype(np.longdouble) - m
    p = np.exp(shifted) / s
    lp = shifted - np.log(s)
    sm = xentc.softmax(x, axis=axis)
    lsm = xentc.log_softmax(x, axis=axis)
    summing = 8 * EPS64 * np.log2(x.shape[axis])
    rel = np.abs(sm - p) / p
    assert np.all(rel <= 4 * EPS64 * (1 + np.abs(shifted)) + summing)
    err = np.abs(lsm - lp)
    assert np.all(err <= 4 * EPS64 * (np.abs(shifted) + np.log(s) + 1) + summing)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset", [1e4, -1e4, 700.0, -800.0])
def test_large_offsets(dtype, offset):
    """No overflow or underflow from large inputs: results shift exactly with
    the input. x are multiples of 1/8 so x + offset is exact in float32."""
    rng = np.random.default_rng(13)
    x = (rng.integers(-80, 81, (16, 50)) / 8).astype(dtype)
    y = x + dtype(offset)
    assert np.array_equal(y - dtype(offset), x)  # the shift itself is exact
    eps = np.finfo(dtype).eps
    lse_x = xentc.logsumexp(x, axis=1).astype(np.float64)
    lse_y = xentc.logsumexp(y, axis=1)
    assert lse_y.dtype == dtype and np.all(np.isfinite(lse_y))
    np.testing.assert_allclose(lse_y.astype(np.float64), lse_x + offset,
                               rtol=0, atol=2 * eps * abs(offset) + 4 * eps * 10)
    np.testing.assert_allclose(xentc.softmax(y, axis=1), xentc.softmax(x, axis=1),
                               rtol=8 * eps * 20, atol=0)
    np.testing.assert_allclose(xentc.log_softmax(y, axis=1), xentc.log_softmax(x, axis=1),
                               rtol=0, atol=8 * eps * 20)


# ================================================================ properties
def _arrays(dtype, min_dims=1):
    return hnp.arrays(
        dtype, hnp.array_shapes(min_dims=min_dims, max_dims=3, min_side=1, max_side=6),
        elements=st.floats(-50, 50, width=np.dtype(dtype).itemsize * 8),
    )


@st.composite
def array_and_axis(draw, dtype=None):
    if dtype is None:
        dtype = draw(st.sampled_from([np.float32, np.float64]))
    x = draw(_arrays(dtype))
    axis = draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)))
    return x, axis


@PROPERTY
@given(array_and_axis(), st.floats(-1000, 1000))
def test_property_shift_invariance(xa, c):
    x, axis = xa
    dtype = x.dtype.type
    eps = np.finfo(dtype).eps
    c = dtype(c)
    shifted = x + c
    expected = xentc.logsumexp(x, axis=axis).astype(np.float64) + float(c)
    res = xentc.logsumexp(shifted, axis=axis)
    # x + c rounds each element by <= eps/2 * |x + c|: the answer moves as much.
    tol = 4 * eps * (abs(float(c)) + float(np.max(np.abs(x))) + np.abs(expected) + 1)
    assert np.all(np.abs(res.astype(np.float64) - expected) <= tol)


@PROPERTY
@given(array_and_axis())
def test_property_softmax_is_a_distribution(xa):
    x, axis = xa
    p = xentc.softmax(x, axis=axis)
    assert p.dtype == x.dtype and p.shape == x.shape
    assert np.all((p >= 0) & (p <= 1))
    n = x.size if axis is None else x.shape[axis]
    total = p.astype(np.float64).sum(axis=axis)
    assert np.all(np.abs(total - 1) <= 4 * (n + 1) * np.finfo(x.dtype).eps)


@PROPERTY
@given(array_and_axis())
def test_property_log_softmax_is_x_minus_lse(xa):
    x, axis = xa
    eps = np.finfo(x.dtype).eps
    lse = xentc.logsumexp(x, axis=axis, keepdims=True).astype(np.float64)
    expected = x.astype(np.float64) - lse
    res = xentc.log_softmax(x, axis=axis)
    assert res.dtype == x.dtype
    tol = 8 * eps * (np.abs(x) + np.abs(lse) + 1)
    assert np.all(np.abs(res - expected) <= tol)


@PROPERTY
@given(array_and_axis())
def test_property_exp_log_softmax_is_softmax(xa):
    x, axis = xa
    eps = np.finfo(x.dtype).eps
    p = xentc.softmax(x, axis=axis).astype(np.float64)
    q = np.exp(xentc.log_softmax(x, axis=axis).astype(np.float64))
    # log_softmax is off by ~eps * |value| absolutely: that much relatively in exp.
    rtol = 16 * eps * (2 * float(np.max(np.abs(x))) + np.log(x.size) + 1)
    assert np.all(np.abs(p - q) <= rtol * p + np.finfo(x.dtype).tiny)


@PROPERTY
@given(array_and_axis(np.float64), st.data())
def test_property_matches_reference(xa, data):
    """float64, random weights of both signs, against the slow reference."""
    x, axis = xa
    b = data.draw(hnp.arrays(np.float64, x.shape,
                             elements=st.sampled_from([0.0, 0.5, 1.0, -0.25, 2.0])))
    res, sgn = xentc.logsumexp(x, axis=axis, b=b, return_sign=True)
    exp_res, exp_sgn = ref.logsumexp_ref(x, axis=axis, b=b, return_sign=True)
    cond = ref.logsumexp_condition(x, axis=axis, b=b).reshape(np.shape(exp_res))
    ok = cond < 1e8  # beyond that the sign of the sum is rounding noise
    np.testing.assert_array_equal(np.asarray(sgn)[ok], np.asarray(exp_sgn)[ok])
    r, e = np.asarray(res)[ok], np.asarray(exp_res)[ok]
    fin = np.isfinite(e)
    np.testing.assert_array_equal(r[~fin], e[~fin])
    tol = 1e-13 * (np.maximum(np.abs(e[fin]), 1) + cond[ok][fin])
    assert np.all(np.abs(r[fin] - e[fin]) <= tol)


# =================================================================== complex
COMPLEX_CASES = [
    (np.array([1 + 1j, 2 + 3j, -1 - 2j]), None, None),
    (np.array([[1 + 1j, 2], [0.5j, -3 + 4j]]), 1, None),
    (np.array([[1 + 1j, 2], [0.5j, -3 + 4j]]), 0, np.array([1, -1])),
    (np.array([1 + 1j, 2 + 3j]), None, np.array([1j, -1])),
    (np.array([3 + 3.1j, 3 - 3.1j]), None, None),  # imaginary parts near +-pi
    (np.array([0.1 + 10j, 2 - 7j, 1]), None, 0.5),
    (np.array([1 + 1j, 2 + 3j], dtype=np.complex64), None, None),
]


@pytest.mark.parametrize("return_sign", [False, True])
@pytest.mark.parametrize("a, axis, b", COMPLEX_CASES)
def test_complex_matches_scipy(a, axis, b, return_sign):
    expected = sc.logsumexp(a, axis=axis, b=b, return_sign=return_sign)
    res = xentc.logsumexp(a, axis=axis, b=b, return_sign=return_sign)
    rtol = 2e-6 if a.dtype == np.complex64 else 1e-13
    pairs = zip(res, expected) if return_sign else [(res, expected)]
    for r, e in pairs:
        assert np.asarray(r).dtype == np.asarray(e).dtype
        assert type(r) is type(e)
        np.testing.assert_allclose(r, e, rtol=rtol, atol=rtol)
    if not return_sign:
        # the imaginary part is the principal one, in (-pi, pi]
        assert np.all(np.abs(np.imag(res)) <= np.pi)


# ======================================================= scipy's doc examples
def test_doc_example_logsumexp():
    a = np.arange(10)
    assert xentc.logsumexp(a) == pytest.approx(9.4586297444267107, rel=1e-15, abs=0)
    assert xentc.logsumexp(a) == pytest.approx(np.log(np.sum(np.exp(a))), rel=1e-15, abs=0)
    b = np.arange(10, 0, -1)
    assert xentc.logsumexp(a, b=b) == pytest.approx(9.9170178533034665, rel=1e-15, abs=0)
    res, sgn = xentc.logsumexp([1, 2], b=[1, -1], return_sign=True)
    assert res == pytest.approx(1.5413248546129181, rel=1e-15, abs=0) and sgn == -1.0
    masked = np.ma.array([np.log(2), 2, np.log(3)], mask=[False, True, False])
    weights = (~masked.mask).astype(int)
    assert xentc.logsumexp(masked.data, b=weights) == pytest.approx(np.log(5), rel=1e-15,
                                                                     abs=0)


def test_doc_example_softmax():
    x = np.array([[1, 0.5, 0.2, 3], [1, -1, 7, 3], [2, 12, 13, 3]])
    m = xentc.softmax(x)
    np.testing.assert_allclose(m, [[4.48309e-06, 2.71913e-06, 2.01438e-06, 3.31258e-05],
                                   [4.48309e-06, 6.06720e-07, 1.80861e-03, 3.31258e-05],
                                   [1.21863e-05, 2.68421e-01, 7.29644e-01, 3.31258e-05]],
                               rtol=1e-5)
    assert m.sum() == pytest.approx(1.0, rel=1e-15, abs=0)
    m0 = xentc.softmax(x, axis=0)
    np.testing.assert_allclose(m0[:, 0], [2.11942e-01, 2.11942e-01, 5.76117e-01], rtol=1e-5)
    np.testing.assert_allclose(m0.sum(axis=0), 1.0, rtol=1e-15)
    m1 = xentc.softmax(x, axis=1)
    np.testing.assert_allclose(m1[1], [2.42746e-03, 3.28521e-04, 9.79307e-01, 1.79366e-02],
                               rtol=1e-5)
    np.testing.assert_allclose(m1.sum(axis=1), 1.0, rtol=1e-15)


def test_doc_example_log_softmax():
    x = np.array([1000.0, 1.0])
    np.testing.assert_array_equal(xentc.log_softmax(x), [0.0, -999.0])
    with np.errstate(divide="ignore"):
        assert np.log(xentc.softmax(x))[1] == -np.inf  # why log_softmax exists


# ===================================================== the contract, by hand
@pytest.mark.parametrize("a, b, dtype", [
    (np.array([1, 2], dtype=np.float32), 0.5, np.float32),            # weak Python scalar
    (np.array([1, 2], dtype=np.float32), np.float64(0.5), np.float64),  # strong NumPy scalar
    (np.array([1, 2], dtype=np.float16), 2, np.float16),
    (np.array([1, 2], dtype=np.float16), np.array([1, 2], dtype=np.float32), np.float32),
    (np.array([1, 2], dtype=np.int8), np.array([2, 1], dtype=np.float16), np.float16),
    (np.array([1, 2], dtype=np.int32), None, np.float64),
    (np.array([True, False]), None, np.float64),
    (np.array([True, False]), np.array([1, 2], dtype=np.float32), np.float32),
    (np.array([1, 2], dtype=np.longdouble), None, np.longdouble),
    (np.array([1, 2], dtype=np.float64), np.array([2, 1], dtype=np.longdouble), np.longdouble),
    (np.array([1, 2], dtype=np.complex64), None, np.complex64),
    ([1, 2], None, np.float64),
    (3.0, None, np.float64),
])
def test_result_dtype(a, b, dtype):
    res = xentc.logsumexp(a, b=b)
    assert isinstance(res, np.generic) and res.dtype == dtype
    rtol = 1e-2 if dtype == np.float16 else 1e-6
    # every a here is real-valued (complex64 ones with zero imaginary parts)
    want = np.log(np.sum(np.exp(np.real(np.asarray(a)).astype(np.float64))
                         * (1 if b is None else np.asarray(b, np.float64))))
    assert res == pytest.approx(float(want), rel=rtol, abs=0)
    if scipy_version.INSTALLED >= scipy_version.FOLLOWED:
        # the dtypes above are SciPy 1.17's (1.15, on Python 3.10, differs)
        assert res.dtype == sc.logsumexp(a, b=b).dtype
        assert res == pytest.approx(sc.logsumexp(a, b=b), rel=rtol, abs=0)


def test_full_reduction_is_numpy_scalar():
    x = np.ones((2, 3))
    assert type(xentc.logsumexp(x)) is np.float64
    assert type(xentc.logsumexp(x, axis=(0, 1))) is np.float64
    res, sgn = xentc.logsumexp(x, return_sign=True)
    assert type(res) is np.float64 and type(sgn) is np.float64
    kept = xentc.logsumexp(x, keepdims=True)
    assert type(kept) is np.ndarray and kept.shape == (1, 1)
    # a 0-d input is a 1-d one: axis=() leaves shape (1,), as in scipy
    assert xentc.logsumexp(np.array(2.0), axis=()).shape == (1,)
    assert type(xentc.softmax(np.array(2.0))) is np.float64


def test_empty_input():
    res, sgn = xentc.logsumexp(np.array([]), return_sign=True)
    assert res == -np.inf and sgn == -1.0  # scipy: sign(-inf)
    assert xentc.logsumexp(np.array([])) == -np.inf
    res, sgn = xentc.logsumexp(np.zeros((3, 0)), axis=1, return_sign=True)
    np.testing.assert_array_equal(res, [-np.inf] * 3)
    np.testing.assert_array_equal(sgn, [-1.0] * 3)
    assert xentc.logsumexp(np.zeros((0, 3)), axis=0).shape == (3,)
    assert xentc.logsumexp(np.zeros((0, 3)), axis=1).shape == (0,)
    # scipy raises IndexError for these (a bug in its empty branch); the sum
    # over nothing is still -inf.
    assert xentc.logsumexp(np.zeros((0, 3))) == -np.inf
    assert xentc.logsumexp(np.zeros((3, 0)), axis=(0, 1), keepdims=True).shape == (1, 1)


def test_signs_and_negative_sums():
    with no_warnings():
        assert np.isnan(xentc.logsumexp([1.0, 2.0], b=[1, -1]))
        res, sgn = xentc.logsumexp([1.0, 2.0], b=[1, -1], return_sign=True)
        assert res == pytest.approx(np.log(np.e**2 - np.e), rel=1e-15, abs=0) and sgn == -1
        res, sgn = xentc.logsumexp([1.0, 1.0], b=[1, -1], return_sign=True)
        assert res == -np.inf and sgn == 0  # exact cancellation
        res, sgn = xentc.logsumexp(np.array([[1.0, 2.0], [3.0, 0.0]], dtype=np.float32),
                                   axis=1, b=np.array([[1, 1], [-1, 0.5]], dtype=np.float32),
                                   return_sign=True)
        assert res.dtype == sgn.dtype == np.float32
        np.testing.assert_array_equal(sgn, [1, -1])


def test_special_values():
    inf, nan = np.inf, np.nan
    with no_warnings():  # no RuntimeWarning from real input
        assert xentc.logsumexp([1.0, inf]) == inf
        assert np.isnan(xentc.logsumexp([1.0, nan]))
        assert np.isnan(xentc.logsumexp([inf, nan]))
        res, sgn = xentc.logsumexp([-inf, -inf], return_sign=True)
        assert res == -inf and sgn == 0
        res, sgn = xentc.logsumexp([1.0, nan], return_sign=True)
        assert np.isnan(res) and np.isnan(sgn)
        res, sgn = xentc.logsumexp([inf, 1.0], b=[-1, 1], return_sign=True)
        assert res == inf and sgn == -1
        assert np.isnan(xentc.logsumexp([inf, inf], b=[1, -1]))  # inf - inf
        np.testing.assert_array_equal(
            xentc.logsumexp(np.array([[0.0, -inf], [-inf, -inf], [inf, 0.0]]), axis=1),
            [0.0, -inf, inf])


def test_zero_weights_are_ignored():
    """b == 0 leaves the element out, even where a is inf or NaN (scipy
    agrees while its result is finite, and gives NaN for the last three)."""
    inf, nan = np.inf, np.nan
    with no_warnings():
        assert xentc.logsumexp([inf, 1.0], b=[0, 1]) == 1.0
        assert xentc.logsumexp([nan, 1.0], b=[0, 1]) == 1.0
        assert xentc.logsumexp([inf, nan], b=[1, 0]) == inf
        res, sgn = xentc.logsumexp([inf], b=[0], return_sign=True)
        assert res == -inf and sgn == 0
        res, sgn = xentc.logsumexp([nan, inf], b=[0, 0], return_sign=True)
        assert res == -inf and sgn == 0


def test_mutual_broadcasting():
    a = np.array([[0.0], [1.0], [2.0]])       # (3, 1)
    b = np.array([[1.0, 2.0, 0.5, 1.5]])     # (1, 4)
    res = xentc.logsumexp(a, b=b, axis=1)
    expected = np.log(np.sum(np.broadcast_to(b, (3, 4)) * np.exp(a), axis=1))
    np.testing.assert_allclose(res, expected, rtol=1e-15)
    assert xentc.logsumexp(np.array([1.0, 2.0]), b=np.ones((3, 2))).shape == ()
    assert xentc.logsumexp(np.array([1.0, 2.0]), b=np.ones((3, 2)), axis=0).shape == (2,)


@pytest.mark.parametrize("func", SOFTMAX_FUNCS)
def test_softmax_contract(func):
    f = getattr(xentc, func)
    x = np.array([[1, 2, 3], [4, 5, 6]])
    res = f(x)  # axis None: the whole array is one distribution
    assert res.dtype == np.float64
    np.testing.assert_allclose(res, getattr(sc, func)(x.astype(float)), rtol=1e-14)
    assert f(np.array([1, 2], dtype=np.float16)).dtype == np.float16
    assert f(np.array([1, 2], dtype=np.longdouble)).dtype == np.longdouble
    inf, nan = np.inf, np.nan
    rows = np.array([[inf, 1.0, -inf], [-inf, -inf, -inf], [nan, 0.0, 1.0], [-inf, 0.0, 0.0]])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = getattr(sc, func)(rows, axis=1)
    np.testing.assert_array_equal(f(rows, axis=1), expected)


@pytest.mark.parametrize("func", FUNCS)
def test_inputs_not_modified(func):
    rng = np.random.default_rng(14)
    x = rng.normal(size=(40, 30))
    x[3, 4], x[5] = np.nan, -np.inf
    b = rng.uniform(-1, 1, (40, 30))
    keep_x, keep_b = x.copy(), b.copy()
    kwargs = {"b": b, "return_sign": True} if func == "logsumexp" else {}
    getattr(xentc, func)(x, axis=1, **kwargs)
    assert x.tobytes() == keep_x.tobytes() and b.tobytes() == keep_b.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.longdouble])
def test_negative_sum_that_underflows_is_nan(dtype):
    """A negative sum has no real log, even when exp(a) underflows: NaN (as
    every other negative sum; scipy's direct sum gives log(-0) = -inf there),
    and its magnitude and sign -1 with return_sign. longdouble takes the
    NumPy path, the others the C kernels: the same answer."""
    a = np.array([-1e5, -1e5 - 1.0], dtype)
    b = np.array([-1.0, -2.0], dtype)
    res = xentc.logsumexp(a, b=b)
    assert res.dtype == dtype and np.isnan(res)
    value, sign = xentc.logsumexp(a, b=b, return_sign=True)
    assert sign == -1
    assert value == pytest.approx(float(sc.logsumexp(a.astype(np.float64), b=np.abs(b))),
                                  rel=1e-6)


class _Sub(np.ndarray):
    """An ndarray subclass: logsumexp's fast path leaves it to the general
    path (np.asarray gives a plain view of the same data)."""


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_last_axis_fast_path_matches_general_path(dtype):
    from xentc import _logsumexp
    rng = np.random.default_rng(4)
    for shape in [(7,), (5, 3), (4, 1000), (2, 3, 40), (2, 70000)]:
        x = rng.standard_normal(shape).astype(dtype)
        for axis in (-1, len(shape) - 1):
            for keepdims in (False, True):
                assert _logsumexp._lse_last_axis(x, axis, keepdims, None) is not None
                fast = xentc.logsumexp(x, axis=axis, keepdims=keepdims)
                general = xentc.logsumexp(x.view(_Sub), axis=axis, keepdims=keepdims)
                assert type(fast) is type(general)
                assert np.shape(fast) == np.shape(general)
                assert np.asarray(fast).dtype == dtype
                assert np.asarray(fast).tobytes() == np.asarray(general).tobytes()
    x = rng.standard_normal((4, 6)).astype(np.float32)
    for a, axis in [(x, 0), (x, None), (x, (1,)), (x.T, -1), (x.astype(np.float16), -1),
                    (x[:, :0], -1), (np.float32(1.0), -1), (x.view(_Sub), -1)]:
        assert _logsumexp._lse_last_axis(a, axis, False, None) is None


@pytest.mark.parametrize("func", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_fast_path_matches_general_path(func, dtype):
    from xentc import _layout
    rng = np.random.default_rng(5)
    f = getattr(xentc, func)
    for shape in [(7,), (5, 3), (4, 1000), (2, 3, 40), (3, 140000)]:
        x = rng.standard_normal(shape).astype(dtype)
        assert _layout.last_axis_rows(x, -1) is not None
        fast = f(x, axis=-1)
        general = f(x.view(_Sub), axis=-1)
        assert type(fast) is np.ndarray and type(general) is np.ndarray
        assert fast.shape == x.shape and fast.dtype == dtype
        assert fast.tobytes() == general.tobytes()
        assert not np.shares_memory(fast, x)
