"""Parametrized sweep of logsumexp / softmax / log_softmax against scipy.special
and the slow reference (tests/reference.py), in the style of pydata/bottleneck.

Every case checks, for xentc against scipy and against the reference:
* the same exception type (exactly), or
* the same result structure -- tuple or not, ndarray or NumPy scalar, dtype,
  shape -- and the same values (NaN/inf positions exactly, finite values
  within a per-dtype tolerance, signs exactly);
and, for xentc alone, that the input arrays (including the memory around
strided views) are bitwise unchanged and that logsumexp on real input emits
no warning.

Two places where scipy is not the oracle (the reference is):
* ``b == 0`` entries are left out by xentc even where ``a`` is inf/NaN; scipy
  drops them only while its result stays finite, so scipy is called with
  those ``a`` entries replaced by 0 (the same sum, by that rule);
* scipy's empty-array branch does not validate ``axis``, raises IndexError
  for reductions over several axes, gives shape (1,) for ``axis=()`` and, for
  complex input, the sign NaN+NaNj (its array-API sign(-inf) is -inf/inf);
  for empty input the reference decides (sign ``np.sign(-inf)``: -1, as for
  real input), and scipy is compared only for reductions over exactly one
  axis of real input or without return_sign.

Data are drawn from a generator seeded by the case id, so every case is
reproducible on its own (``pytest -k``).
"""
import math
import warnings
import zlib

import numpy as np
import pytest
import scipy.special as sc

import reference as ref
from scipy_version import needs_followed_scipy

xentc = pytest.importorskip("xentc")

# ---------------------------------------------------------------- tolerances
_LD_IS_EXTENDED = np.finfo(np.longdouble).eps < np.finfo(np.float64).eps

# Relative to max(|expected|, 1). Wide enough for scipy's own rounding (it
# computes float16 in float16 and float32 in float32), narrow enough to catch
# a wrong formula, a dropped term or a float64 computation of longdouble
# input (which errs by ~1e-16).
RTOL = {
    np.dtype(np.float16): 1e-2,
    np.dtype(np.float32): 2e-6,
    np.dtype(np.float64): 1e-13,
    np.dtype(np.longdouble): 2e-17 if _LD_IS_EXTENDED else 1e-13,
}


def rtol_for(dtype):
    return RTOL[np.finfo(dtype).dtype]  # complex -> its real dtype


# ------------------------------------------------------------- case axes
LSE_DTYPES = [np.float16, np.float32, np.float64, np.longdouble,
              np.int32, np.int64, np.bool_, np.complex128]
SOFTMAX_DTYPES = [np.float16, np.float32, np.float64, np.longdouble,
                  np.int32, np.int64, np.bool_]
FLOAT_DTYPES = [np.float16, np.float32, np.float64, np.longdouble]
SHAPES = [(), (1,), (7,), (0,), (3, 0), (0, 3), (2, 3, 4), (5, 1, 3)]
LAYOUTS = ["C", "F", "strided", "reversed"]


def lse_axes(ndim):
    """Valid axis arguments: every int (negative too), tuples including ()
    and the reversed full tuple. logsumexp sees `a` as at least 1-d, so a 0-d
    array takes the 1-d axes."""
    n = max(ndim, 1)
    axes = [None, *range(n), *range(-n, 0), (), (n - 1,), tuple(range(n))]
    if n >= 2:
        axes += [tuple(range(n - 1, -1, -1))]
    if n >= 3:
        axes += [(-1, -2), (0, 2), (1, 2)]
    return unique(axes)


def softmax_axes(ndim):
    """As lse_axes, but softmax does not make x 1-d: a 0-d array accepts only
    None, 0, -1 and ()."""
    if ndim == 0:
        return [None, 0, -1, ()]
    axes = [None, *range(ndim), -1, (), tuple(range(ndim))]
    if ndim >= 2:
        axes += [tuple(range(ndim - 1, -1, -1))]
    if ndim >= 3:
        axes += [-3, (0, 2)]
    return unique(axes)


def bad_axes(ndim):
    """Invalid axis arguments for an ndim-dimensional input: out of range
    (AxisError), repeated (ValueError), a list or a float (TypeError)."""
    n = max(ndim, 1)
    return [n, -n - 1, (0, 0), (0, n), [0], 1.5]


def layouts_for(shape):
    # A 0-d array has one layout, an empty one no data to lay out, and a 1-d
    # Fortran array is a C array.
    if shape == () or 0 in shape:
        return ["C"]
    if len(shape) == 1:
        return [lay for lay in LAYOUTS if lay != "F"]
    return LAYOUTS


def fmt(shape):
    return "x".join(map(str, shape)) if shape else "0d"


def fmt_axis(axis):
    return "".join(str(axis).split())  # (0, 1) -> "(0,1)"


def unique(seq):
    return list(dict.fromkeys(seq))


def shape_axis_params(pairs):
    return [pytest.param(shape, axis, id=f"{fmt(shape)}-axis={fmt_axis(axis)}")
            for shape, axis in pairs]


def _cases(axes_for, dtypes, layouts=True, shapes=SHAPES):
    for dtype in dtypes:
        for shape in shapes:
            for layout in (layouts_for(shape) if layouts else ["C"]):
                for axis in axes_for(len(shape)):
                    yield pytest.param(
                        np.dtype(dtype), layout, shape, axis,
                        id=f"{np.dtype(dtype).name}-{layout}-{fmt(shape)}-axis={fmt_axis(axis)}",
                    )


# ------------------------------------------------------------ data making
def rng_for(request):
    """A generator seeded by the test id: reproducible case by case."""
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


def random_values(rng, shape, dtype):
    """Values of `dtype` in C order: moderate floats (wide enough that the
    max term matters, small enough that float16 exp does not overflow),
    small ints, random bools."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return np.asarray(rng.integers(0, 2, shape), dtype=bool)
    if dtype.kind in "iu":
        return np.asarray(rng.integers(-5, 6, shape), dtype=dtype)
    real = rng.normal(0.0, 3.0, shape)
    if dtype.kind == "c":
        real = real + 1j * rng.normal(0.0, 2.0, shape)
    return np.asarray(real, dtype=dtype)  # an array even for shape ()


def laid_out(values, layout, rng):
    """(array with the values in the given memory layout, the buffer that
    owns its memory). Views live inside a larger buffer full of other data,
    so a write outside the view would show up as well."""
    if layout == "C":
        arr = np.ascontiguousarray(values)
        return arr, arr
    if layout == "F":
        arr = np.asfortranarray(values)
        return arr, arr
    if layout == "strided":
        owner = random_values(rng, tuple(2 * n + 1 for n in values.shape), values.dtype)
        arr = owner[tuple(slice(1, 1 + 2 * n, 2) for n in values.shape)]
    elif layout == "reversed":
        owner = random_values(rng, values.shape, values.dtype)
        arr = owner[(slice(None, None, -1),) * values.ndim]
    else:
        raise AssertionError(layout)
    arr[...] = values
    assert not arr.flags.c_contiguous or arr.size <= 1
    return arr, owner


def inject(rng, values, kind):
    """Special values at random positions; returns the mask of them.
    For complex input the real part carries the special value."""
    if kind == "slice_-inf":
        # a whole sub-array (the first index of axis 0) at -inf: an all -inf
        # slice for reductions over the other axes, part of one otherwise.
        mask = np.zeros(values.shape, bool)
        mask[(0,) * min(values.ndim, 1)] = True
        specials = np.full(values.shape, -np.inf)
    else:
        mask = rng.random(values.shape) < 0.25
        mask.flat[rng.integers(values.size)] = True
        pool = {"inf": [np.inf], "-inf": [-np.inf], "nan": [np.nan],
                "mixed": [np.inf, -np.inf, np.nan]}[kind]
        specials = rng.choice(pool, values.shape)
    if values.dtype.kind == "c":
        values[mask] = specials[mask] + 1j * values[mask].imag
    else:
        values[mask] = specials[mask]
    return mask


def weights(rng, kind, a, layout="C", mask=None):
    """The `b` argument for a weight kind, for (final) array `a`."""
    shape, dtype = a.shape, a.dtype
    if kind == "none":
        return None
    if kind == "py_scalar":   # weak: keeps float16/float32
        return 0.75
    if kind == "np_scalar":   # strong: float16/float32 become float64
        return np.float64(0.75)
    bdtype = np.dtype(np.float32) if dtype.kind == "b" else dtype
    if kind == "f64":
        bdtype = np.dtype(np.float64)
    if kind == "bcast":       # fewer dims, size-1 dims: broadcast to a
        shape = tuple(1 if i % 2 else n for i, n in enumerate(shape))[1:]
    elif kind == "mutual":    # a grows too: (2,) + a's shape with 1 <-> 4
        shape = (2,) + tuple(4 if n == 1 else 1 for n in shape)
    mag = rng.uniform(0.25, 2.0, shape)
    if bdtype.kind in "iu":
        mag = rng.integers(1, 4, shape)
    if kind == "neg":         # ~40% negative: some sums end up negative
        mag = mag * np.where(rng.random(shape) < 0.4, -1, 1)
    if kind == "zeros":       # ~1/3 zero weights, or exactly at `mask`
        zero = rng.random(shape) < 0.33 if mask is None else mask
        mag = np.where(zero, 0, mag)
    if bdtype.kind == "c":
        mag = mag + 0.25j * rng.uniform(-1.0, 1.0, shape)
    b = np.asarray(mag).astype(bdtype)
    if kind in ("same", "zeros", "neg", "f64") and b.ndim:
        b, _ = laid_out(b, layout, rng)
    return b


# ------------------------------------------------------------- comparison
def outcome(func, *args, **kwargs):
    """('ok', result) or ('raise', exception)."""
    try:
        return "ok", func(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 -- compared by type below
        return "raise", exc


def assert_structure(actual, expected, who):
    assert isinstance(actual, np.ndarray) == isinstance(expected, np.ndarray), (
        f"ndarray-vs-scalar differs from {who}: {type(actual)} vs {type(expected)}")
    assert isinstance(actual, np.generic) == isinstance(expected, np.generic), (
        f"scalar-ness differs from {who}: {type(actual)} vs {type(expected)}")
    assert actual.dtype == expected.dtype, f"dtype differs from {who}"
    assert np.shape(actual) == np.shape(expected), f"shape differs from {who}"


def assert_values(actual, expected, rtol, who, cond=None, skip=None):
    """NaN and inf (with sign) exactly where expected; finite values within
    rtol * (max(|expected|, 1) + cond - 1): the conditioning of a sum with
    negative weights multiplies the rounding error of its terms."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.dtype.kind == "c":
        assert_values(actual.real, expected.real, rtol, who + " (real)", cond, skip)
        assert_values(actual.imag, expected.imag, rtol, who + " (imag)", cond, skip)
        return
    x = actual.astype(np.longdouble)
    y = expected.astype(np.longdouble)
    keep = np.ones(y.shape, bool) if skip is None else ~skip
    assert np.array_equal(np.isnan(x)[keep], np.isnan(y)[keep]), (
        f"NaN positions differ from {who}:\n{actual}\n{expected}")
    inf = np.isinf(y) & keep
    assert np.array_equal(np.isinf(x) & keep, inf), (
        f"inf positions differ from {who}:\n{actual}\n{expected}")
    assert np.array_equal(x[inf], y[inf]), f"inf signs differ from {who}"
    fin = np.isfinite(y) & keep
    scale = np.maximum(np.abs(y), 1) + (0 if cond is None else cond - 1)
    with np.errstate(invalid="ignore"):  # inf - inf where not compared
        err = np.abs(x - y)
    bad = fin & ~(err <= rtol * scale)
    assert not bad.any(), (
        f"values differ from {who} beyond rtol={rtol}:\n{actual[bad]}\n{expected[bad]}")


def assert_result(actual, expected, return_sign, who, cond=None, skip=None):
    """Structure and values of a logsumexp result (pair with return_sign)."""
    if return_sign:
        assert isinstance(actual, tuple) and len(actual) == 2, "expected (res, sgn)"
        pairs = [(actual[0], expected[0]), (actual[1], expected[1])]
    else:
        assert not isinstance(actual, tuple)
        pairs = [(actual, expected)]
    for i, (act, exp) in enumerate(pairs):
        assert_structure(act, exp, who)
        # Signs are +1/0/-1/NaN: exact (a complex phase: tolerance).
        tol = 0 if (i == 1 and exp.dtype.kind == "f") else rtol_for(exp.dtype)
        assert_values(act, exp, tol, who, cond, skip)


def snapshot(arrays):
    return [None if a is None else np.asarray(a).tobytes() for a in arrays]


# ---------------------------------------------------------- logsumexp core
def check_logsumexp(a, owners, axis, b=None, keepdims=False, return_sign=False):
    a_arr = np.asarray(a)
    b_arr = None if b is None else np.asarray(b)
    before = snapshot(owners + [b])
    is_complex = a_arr.dtype.kind == "c" or (b_arr is not None and b_arr.dtype.kind == "c")
    kw = dict(axis=axis, keepdims=keepdims, return_sign=return_sign)

    # The oracles. scipy gets the b == 0 rule applied (see module docstring).
    a_sc = a
    if b_arr is not None and b_arr.size and np.any((b_arr == 0) & ~np.isfinite(a_arr)):
        a_sc = np.where(b_arr == 0, 0, a_arr)
    shape = np.broadcast_shapes(np.shape(np.atleast_1d(a_arr)),
                                () if b is None else np.shape(np.atleast_1d(b_arr)))
    empty = 0 in shape
    ref_kind, expected = outcome(ref.logsumexp_ref, a, b=b, **kw)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc_kind, sc_expected = outcome(sc.logsumexp, a_sc, b=b, **kw)
    if not empty:  # keeps the reference honest about what is an error
        assert ref_kind == sc_kind, (expected, sc_expected)
        assert ref_kind == "ok" or type(expected) is type(sc_expected)

    with warnings.catch_warnings():
        # No RuntimeWarning (or any warning) from real input.
        warnings.simplefilter("ignore" if is_complex else "error")
        kind, actual = outcome(xentc.logsumexp, a, b=b, **kw)

    assert snapshot(owners + [b]) == before, "input modified"

    if ref_kind == "raise":
        assert kind == "raise", f"expected {type(expected).__name__}, got a result"
        assert type(actual) is type(expected), (actual, expected)
        return
    if kind == "raise":
        raise actual

    cond = skip = None
    if b_arr is not None and not is_complex and not empty:
        # Near-cancelling sums (negative weights): scale the tolerance by the
        # condition number, and leave out the slices where the result dtype's
        # rounding alone could flip the sign of the sum.
        cond = ref.logsumexp_condition(a, axis=axis, b=b)
        out_shape = np.shape(expected[0] if return_sign else expected)
        cond = cond.reshape(out_shape)
        skip = cond * np.finfo(np.result_type(expected[0] if return_sign else expected)).eps > 0.05
    assert_result(actual, expected, return_sign, "reference", cond, skip)
    if not empty or (len(ref.normalize_axes(axis, len(shape))) == 1
                     and not (is_complex and return_sign)):
        assert sc_kind == "ok", sc_expected
        assert_result(actual, sc_expected, return_sign, "scipy", cond, skip)
    # else: scipy's empty branch mishandles these (see module docstring).


# --------------------------------------------------------- logsumexp sweeps
@needs_followed_scipy
@pytest.mark.parametrize("return_sign", [False, True], ids=["value", "sign"])
@pytest.mark.parametrize("keepdims", [False, True], ids=["squeeze", "keepdims"])
@pytest.mark.parametrize("dtype, layout, shape, axis", list(_cases(lse_axes, LSE_DTYPES)))
def test_logsumexp(request, dtype, layout, shape, axis, keepdims, return_sign):
    """Unweighted: dtype x layout x shape x axis x keepdims x return_sign."""
    rng = rng_for(request)
    a, owner = laid_out(random_values(rng, shape, dtype), layout, rng)
    check_logsumexp(a, [owner], axis, None, keepdims, return_sign)


WEIGHT_KINDS = ["py_scalar", "np_scalar", "same", "bcast", "mutual", "zeros", "neg", "f64"]


def weighted_axes(ndim):
    return {0: [None, 0, ()], 1: [None, 0, ()], 2: [None, 1, (0, 1), ()],
            3: [None, 1, -1, (0, 2), ()]}[ndim]


# keepdims is swept fully above; here it rides along with return_sign.
@needs_followed_scipy
@pytest.mark.parametrize("keepdims, return_sign", [(False, False), (True, True)],
                         ids=["value", "keepdims-sign"])
@pytest.mark.parametrize("bkind", WEIGHT_KINDS)
@pytest.mark.parametrize("dtype, layout, shape, axis", list(_cases(
    weighted_axes, [d for d in LSE_DTYPES if d is not np.int32], layouts=False)))
def test_logsumexp_weighted(request, dtype, layout, shape, axis, bkind, keepdims, return_sign):
    """b: Python scalar (weak), NumPy scalar (strong), same shape, fewer and
    size-1 dims, mutual broadcasting, zeros, negatives, a wider dtype."""
    rng = rng_for(request)
    a = random_values(rng, shape, dtype)
    b = weights(rng, bkind, a)
    check_logsumexp(a, [a], axis, b, keepdims, return_sign)


@pytest.mark.parametrize("bkind", ["same", "zeros", "neg"])
@pytest.mark.parametrize("layout", ["F", "strided", "reversed"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis", shape_axis_params(
    [((7,), None), ((2, 3, 4), 1), ((2, 3, 4), (0, 2)), ((5, 1, 3), -1), ((2, 3, 4), None)]))
def test_logsumexp_weighted_layouts(request, dtype, layout, shape, axis, bkind):
    """a and b both as non-C-contiguous views."""
    rng = rng_for(request)
    a, owner = laid_out(random_values(rng, shape, dtype), layout, rng)
    b = weights(rng, bkind, a, layout)
    check_logsumexp(a, [owner, b.base if b.base is not None else b], axis, b, False, True)


SPECIALS = ["inf", "-inf", "nan", "slice_-inf", "mixed"]
SPECIAL_SHAPES_AXES = [((), None), ((), ()), ((1,), None), ((1,), 0), ((7,), None), ((7,), ()),
                       ((2, 3, 4), None), ((2, 3, 4), 0), ((2, 3, 4), 2), ((2, 3, 4), (0, 1)),
                       ((2, 3, 4), (1, 2)), ((2, 3, 4), ()), ((5, 1, 3), None), ((5, 1, 3), 1),
                       ((5, 1, 3), (0, 2)), ((5, 1, 3), -1)]


@needs_followed_scipy
@pytest.mark.parametrize("return_sign", [False, True], ids=["value", "sign"])
@pytest.mark.parametrize("bkind", ["none", "zeros", "neg"])
@pytest.mark.parametrize("special", SPECIALS)
@pytest.mark.parametrize("shape, axis", shape_axis_params(SPECIAL_SHAPES_AXES))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES + [np.complex128], ids=lambda d: np.dtype(d).name)
def test_logsumexp_specials(request, dtype, shape, axis, special, bkind, return_sign):
    """inf, -inf, NaN and all -inf slices; with zero weights exactly at the
    special values (which must then be ignored) and with negative weights."""
    rng = rng_for(request)
    a = random_values(rng, shape, dtype)
    mask = inject(rng, a, special)
    b = weights(rng, bkind, a, mask=mask)
    if np.dtype(dtype).kind == "c":
        # The reference models finite complex input only: compare with scipy.
        check_complex_specials(a, axis, b, return_sign)
    else:
        check_logsumexp(a, [a], axis, b, False, return_sign)


def check_complex_specials(a, axis, b, return_sign):
    before = snapshot([a, b])
    a_sc = a if b is None else np.where(b == 0, 0, a)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = sc.logsumexp(a_sc, axis=axis, b=b, return_sign=return_sign)
        actual = xentc.logsumexp(a, axis=axis, b=b, return_sign=return_sign)
    assert snapshot([a, b]) == before, "input modified"
    assert_result(actual, expected, return_sign, "scipy")


@pytest.mark.parametrize("axis", range(6), ids=lambda i: f"bad{i}")
@pytest.mark.parametrize("shape", SHAPES, ids=fmt)
@pytest.mark.parametrize("func", ["logsumexp", "softmax", "log_softmax"])
def test_bad_axis(func, shape, axis):
    """Out-of-range -> AxisError, duplicate -> ValueError, list or float ->
    TypeError, exactly as the reference (and, where it validates, scipy)."""
    axis = bad_axes(len(shape))[axis]
    x = np.ones(shape)
    refs = {"logsumexp": ref.logsumexp_ref, "softmax": ref.softmax_ref,
            "log_softmax": ref.log_softmax_ref}
    with pytest.raises(Exception) as expected:
        refs[func](x, axis=axis)
    with pytest.raises(Exception) as actual:
        getattr(xentc, func)(x, axis=axis)
    assert type(actual.value) is type(expected.value), (actual.value, expected.value)
    if func != "logsumexp" or x.size:
        with pytest.raises(Exception) as scipy_exc:
            getattr(sc, func)(x, axis=axis)
        assert type(scipy_exc.value) is type(expected.value)


# ---------------------------------------------------- softmax / log_softmax
FUNCS = {"softmax": (ref.softmax_ref, sc.softmax),
         "log_softmax": (ref.log_softmax_ref, sc.log_softmax)}


def check_softmax(name, x, owners, axis):
    ref_func, sc_func = FUNCS[name]
    func = getattr(xentc, name)
    before = snapshot(owners)
    ref_kind, expected = outcome(ref_func, x, axis=axis)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on inf input
        sc_kind, sc_expected = outcome(sc_func, x, axis=axis)
    assert ref_kind == sc_kind, (expected, sc_expected)
    kind, actual = outcome(func, x, axis=axis)
    assert snapshot(owners) == before, "input modified"

    if ref_kind == "raise":
        assert kind == "raise", f"expected {type(expected).__name__}, got a result"
        assert type(sc_expected) is type(expected)
        allowed = {type(expected)}
        if x.dtype == np.bool_:
            # Boolean input with a zero-size reduction is wrong twice; scipy
            # happens to notice the empty max() first (ValueError).
            allowed.add(TypeError)
        assert type(actual) in allowed, (actual, expected)
        return
    if kind == "raise":
        raise actual
    rtol = rtol_for(expected.dtype)
    for oracle, who in [(expected, "reference"), (sc_expected, "scipy")]:
        assert_structure(actual, oracle, who)
        assert_values(actual, oracle, rtol, who)

    if np.ndim(x):
        # out=: the same numbers, written into (and returned as) `out`,
        # whatever `out` held before.
        out = np.full(np.shape(x), 7, dtype=expected.dtype)
        returned = func(x, axis=axis, out=out)
        assert returned is out
        np.testing.assert_array_equal(out, actual)
        assert snapshot(owners) == before, "input modified (out=)"


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype, layout, shape, axis", list(_cases(softmax_axes, SOFTMAX_DTYPES)))
def test_softmax(request, name, dtype, layout, shape, axis):
    """dtype x layout x shape x axis; bool -> TypeError, zero-size
    reductions -> ValueError, ints -> float64."""
    rng = rng_for(request)
    x, owner = laid_out(random_values(rng, shape, dtype), layout, rng)
    check_softmax(name, x, [owner], axis)


SOFTMAX_SPECIAL_SHAPES_AXES = [((), None), ((1,), None), ((7,), None), ((7,), 0),
                               ((2, 3, 4), None), ((2, 3, 4), 0), ((2, 3, 4), 2),
                               ((2, 3, 4), (0, 1)), ((2, 3, 4), ()), ((5, 1, 3), None),
                               ((5, 1, 3), 1), ((5, 1, 3), -1), ((5, 1, 3), (0, 2))]


@pytest.mark.parametrize("special", SPECIALS)
@pytest.mark.parametrize("shape, axis", shape_axis_params(SOFTMAX_SPECIAL_SHAPES_AXES))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_specials(request, name, dtype, shape, axis, special):
    """Slices with inf, -inf, NaN or only -inf give scipy's NaN/inf pattern."""
    rng = rng_for(request)
    x = random_values(rng, shape, dtype)
    inject(rng, x, special)
    check_softmax(name, x, [x], axis)


def test_sweep_is_not_vacuous():
    """The comparison helpers reject wrong answers (no tautologies)."""
    y = np.array([1.0, np.nan, np.inf, -2.0])
    assert_values(y.copy(), y, 1e-13, "self")
    for wrong in ([1.0 + 1e-12, np.nan, np.inf, -2.0], [1.0, 0.0, np.inf, -2.0],
                  [1.0, np.nan, -np.inf, -2.0], [1.0, np.nan, np.inf, np.nan]):
        with pytest.raises(AssertionError):
            assert_values(np.array(wrong), y, 1e-13, "wrong")
    with pytest.raises(AssertionError):
        assert_structure(np.float64(1.0), np.array(1.0), "0-d array vs scalar")
    with pytest.raises(AssertionError):
        assert_structure(np.float32(1.0), np.float64(1.0), "dtype")
    # The reference itself: the classic examples.
    assert math.isclose(ref.logsumexp_ref(np.arange(10)), 9.4586297444267107, rel_tol=1e-15)
    assert ref.logsumexp_ref([0.0, -40.0]) == np.log1p(np.exp(-40.0))
