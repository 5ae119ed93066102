"""Slow, obviously-correct references for logsumexp, softmax and log_softmax.

In the style of pydata/bottleneck's ``slow`` module: every output element is
computed on its own by a Python loop over ``np.ndindex``, straight from the
definition, in more precision than the result dtype:

* real input is computed in ``np.longdouble`` (64-bit mantissa on x86-64;
  plain double elsewhere): each term exp(a - max) in longdouble, the terms
  summed exactly (``fractions.Fraction``), the log taken as log1p when the
  sum is near 1, and the answer rounded once to the result dtype;
* complex input is computed with Python complex numbers and ``math.fsum``
  on the real and imaginary parts.

No shortcuts are taken from scipy's or xentc's algorithm (no max-term
separation, no vectorised reductions), so an agreement between this module
and an implementation is evidence, not a tautology.

The conventions -- result dtype, shapes, scalars, what inf/NaN/empty input
gives -- are scipy.special 1.17's, with the one rule xentc states on purpose:
an element whose weight ``b`` is 0 is left out of the sum even where ``a`` is
inf or NaN (scipy itself drops it only while the result stays finite; e.g.
``logsumexp([inf], b=[0])`` is NaN in scipy, -inf here).
"""
import cmath
import math
import operator
from fractions import Fraction

import numpy as np
from numpy.exceptions import AxisError

__all__ = [
    "logsumexp_ref",
    "softmax_ref",
    "log_softmax_ref",
    "logsumexp_condition",
    "result_dtype",
    "normalize_axes",
]

_LD = np.longdouble


# ----------------------------------------------------------------- helpers
def _weak_or_array(x):
    """Python int/float/complex stay 'weak' in promotion (NumPy 2, NEP 50):
    ``b=0.5`` with float32 ``a`` keeps float32. Everything else is an array."""
    if isinstance(x, (int, float, complex)) and not isinstance(x, bool):
        return x
    return np.asarray(x)


def result_dtype(*args):
    """``np.result_type(a, b, 1.0)``: ints and bool become float64, float16/32,
    longdouble and complex are kept."""
    return np.result_type(*(_weak_or_array(x) for x in args if x is not None), 1.0)


def normalize_axes(axis, ndim):
    """Sorted tuple of non-negative axes, validated as NumPy reductions do:
    only None, an int or a tuple of ints (a list or float is a TypeError), each
    in range (else AxisError), no repeats (else ValueError)."""
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, tuple) else (axis,)
    axes = []
    for ax in items:
        if isinstance(ax, (bool, np.bool_)):
            raise TypeError("an integer is required for the axis")
        ax = operator.index(ax)  # TypeError for list, float, str ...
        if not -ndim <= ax < ndim:
            raise AxisError(ax, ndim)
        axes.append(ax % ndim)
    if len(set(axes)) != len(axes):
        raise ValueError("duplicate value in 'axis'")
    return tuple(sorted(axes))


def _slices(shape, axes):
    """Yield (kept-dims output index, input index selecting one slice)."""
    kept = tuple(1 if i in axes else n for i, n in enumerate(shape))
    for idx in np.ndindex(*kept):
        sel = tuple(slice(None) if i in axes else j for i, j in enumerate(idx))
        yield idx, sel


def _exact(t):
    """A finite longdouble as an exact Fraction: t = hi + lo with hi the
    nearest double and lo = t - hi (exact, and itself a double, for x86-64's
    80-bit long double; within 2**-106 for a 128-bit one)."""
    hi = float(t)
    return Fraction(hi) + Fraction(float(t - _LD(hi)))


def _to_ld(q):
    """A Fraction rounded to longdouble (via a double-double, ~exact)."""
    hi = float(q)
    return _LD(hi) + _LD(float(q - Fraction(hi)))


def _sum_ld(terms):
    """Exact sum of finite longdouble terms, rounded once to longdouble."""
    return _to_ld(sum((_exact(t) for t in terms), Fraction(0)))


def _log_of_sum(terms):
    """log(sum(terms)) for a positive sum, in longdouble. Near 1 the sum is
    not rounded before the log: log1p of the exact (sum - 1), so that e.g.
    log(1 + exp(-40)) keeps its digits."""
    total = sum((_exact(t) for t in terms), Fraction(0))
    if abs(total - 1) < Fraction(1, 2):
        return np.log1p(_to_ld(total - 1))
    return np.log(_to_ld(total))


def _finish(out, sgn, axes, keepdims, return_sign):
    """Drop the reduced axes (unless keepdims) and turn 0-d into scalars."""
    if not keepdims:
        out = out.squeeze(axis=axes)
        sgn = sgn.squeeze(axis=axes)
    out = out[()] if out.ndim == 0 else out
    sgn = sgn[()] if sgn.ndim == 0 else sgn
    return (out, sgn) if return_sign else out


# -------------------------------------------------------- logsumexp, real
def _lse_real_slice(avals, bvals):
    """(log|sum b*exp(a)|, sign of the sum) of one slice, in longdouble.

    Every case is decided from the definition in the extended reals:
    a term with b == 0 is absent; NaN anywhere else poisons the sum; a term
    with a == +inf is +-inf; +inf - inf is NaN; exp(-inf) is 0; a zero sum
    has log -inf and sign 0.
    """
    terms = [(x, w) for x, w in zip(avals, bvals) if w != 0]  # NaN != 0: kept
    if any(math.isnan(x) or math.isnan(w) for x, w in terms):
        return _LD("nan"), _LD("nan")
    if any(math.isinf(w) for _, w in terms):
        raise NotImplementedError("infinite weights are not modelled")
    inf_signs = {w > 0 for x, w in terms if x == math.inf}
    if len(inf_signs) == 2:  # inf - inf
        return _LD("nan"), _LD("nan")
    if inf_signs:
        return _LD("inf"), _LD(1 if inf_signs == {True} else -1)
    finite = [(x, w) for x, w in terms if x != -math.inf]
    if not finite:  # nothing, or only exp(-inf) = 0 terms
        return _LD("-inf"), _LD(0)
    # Shift by the max only so exp() cannot overflow: the sum itself is the
    # plain sum of the (rescaled) terms.
    m = max(x for x, _ in finite)
    terms = [w * np.exp(x - m) for x, w in finite]
    s = _sum_ld(terms)
    if s == 0:
        return _LD("-inf"), _LD(0)
    sign = 1 if s > 0 else -1
    return m + _log_of_sum([sign * t for t in terms]), _LD(sign)


def _lse_real_condition(avals, bvals):
    """sum|terms| / |sum terms| for one slice: how much rounding of the terms
    is amplified by cancellation (1 for non-negative weights, inf for an exact
    zero sum). Slices with inf/NaN count as well conditioned (1)."""
    terms = [(x, w) for x, w in zip(avals, bvals) if w != 0]
    if any(not math.isfinite(w) or math.isnan(x) or x == math.inf for x, w in terms):
        return 1.0
    finite = [(x, w) for x, w in terms if x != -math.inf]
    if not finite:
        return 1.0
    m = max(x for x, _ in finite)
    t = [w * np.exp(x - m) for x, w in finite]
    s = abs(_sum_ld(t))
    return float(_sum_ld([abs(v) for v in t]) / s) if s else math.inf


# ----------------------------------------------------- logsumexp, complex
def _lse_complex_slice(avals, bvals):
    """(log(sum b*exp(a)) with imaginary part in (-pi, pi], phase of the sum)
    of one slice of finite complex numbers, via Python complex math."""
    terms = [(x, w) for x, w in zip(avals, bvals) if w != 0]
    if not all(cmath.isfinite(x) and cmath.isfinite(w) for x, w in terms):
        raise NotImplementedError("non-finite complex input is not modelled")
    if not terms:
        return complex(-math.inf, 0.0), 0j
    m = max(x.real for x, _ in terms)
    t = [w * cmath.exp(x - m) for x, w in terms]
    s = complex(math.fsum(v.real for v in t), math.fsum(v.imag for v in t))
    if s == 0:
        return complex(-math.inf, 0.0), 0j
    phase = cmath.phase(s)
    if phase == -math.pi:  # the branch cut belongs to +pi
        phase = math.pi
    return complex(m + math.log(abs(s)), phase), s / abs(s)


# ------------------------------------------------------------- logsumexp
def _prepared(a, b, axis):
    """Result dtype, the (mutually broadcast, at least 1-d) a and b, axes."""
    dtype = result_dtype(a, b)
    a_arr = np.atleast_1d(np.asarray(a))
    b_arr = np.ones((), dtype=np.int8) if b is None else np.atleast_1d(np.asarray(b))
    shape = np.broadcast_shapes(a_arr.shape, b_arr.shape)
    axes = normalize_axes(axis, len(shape))
    return dtype, np.broadcast_to(a_arr, shape), np.broadcast_to(b_arr, shape), axes


def _values(arr, complex_):
    """Elements as Python complex numbers or as exact longdouble scalars."""
    if complex_:
        return [complex(v) for v in arr.astype(np.complex128).ravel()]
    return list(arr.astype(_LD).ravel())


def logsumexp_ref(a, axis=None, b=None, keepdims=False, return_sign=False):
    """``log(sum(b * exp(a)))`` over `axis`, element by element.

    scipy's conventions: ``a`` is taken as at least 1-d; the result has dtype
    ``result_type(a, b, 1.0)`` (for complex input with `return_sign`, the
    magnitude is real and the sign is the complex phase); a full reduction is a
    NumPy scalar; a negative sum is NaN unless `return_sign`; an empty input
    gives -inf with sign ``sign(-inf)`` (-1 for real input).
    """
    dtype, a_arr, b_arr, axes = _prepared(a, b, axis)
    shape = a_arr.shape
    kept = tuple(1 if i in axes else n for i, n in enumerate(shape))
    is_complex = dtype.kind == "c"
    out_dtype = np.finfo(dtype).dtype if (is_complex and return_sign) else dtype

    if a_arr.size == 0:
        # The sum over nothing is 0; scipy returns log(0) = -inf and, as the
        # sign, np.sign(-inf) (which is -1, or NaN+NaNj for complex).
        out = np.full(kept, -np.inf, dtype=dtype)
        with np.errstate(invalid="ignore"):
            sgn = np.sign(out)
        return _finish(out, sgn, axes, keepdims, return_sign)

    out = np.empty(kept, dtype=out_dtype)
    sgn = np.empty(kept, dtype=dtype)
    for idx, sel in _slices(shape, axes):
        avals = _values(a_arr[sel], is_complex)
        bvals = _values(b_arr[sel], is_complex)
        if is_complex:
            value, sign = _lse_complex_slice(avals, bvals)
            out[idx] = value.real if return_sign else value
        else:
            value, sign = _lse_real_slice(avals, bvals)
            # Without return_sign a negative sum has no real logarithm.
            out[idx] = value if (return_sign or not sign < 0) else np.nan
        sgn[idx] = sign
    return _finish(out, sgn, axes, keepdims, return_sign)


def logsumexp_condition(a, axis=None, b=None):
    """Condition number of each slice's sum (see _lse_real_condition), with
    the reduced axes kept as size 1. Real input only."""
    dtype, a_arr, b_arr, axes = _prepared(a, b, axis)
    assert dtype.kind == "f", "condition numbers are for real input"
    kept = tuple(1 if i in axes else n for i, n in enumerate(a_arr.shape))
    cond = np.ones(kept)
    if a_arr.size:
        for idx, sel in _slices(a_arr.shape, axes):
            cond[idx] = _lse_real_condition(_values(a_arr[sel], False),
                                            _values(b_arr[sel], False))
    return cond


# ------------------------------------------------- softmax / log_softmax
def _softmax_axes(x, axis):
    """Axes as NumPy's max() takes them: unlike logsumexp, softmax does not
    make `x` 1-d, so a 0-d array only accepts axis None, 0, -1 or ()."""
    if x.ndim == 0:
        if axis is None or axis == ():
            return ()
        if isinstance(axis, tuple):
            raise AxisError(operator.index(axis[0]), 0)
        if isinstance(axis, (bool, np.bool_)):
            raise TypeError("an integer is required for the axis")
        ax = operator.index(axis)
        if ax not in (0, -1):
            raise AxisError(ax, 0)
        return ()
    return normalize_axes(axis, x.ndim)


def _softmax_common(x, axis, name):
    # Checked in scipy's order: axis (by max()), a zero-size reduction (max()
    # has no identity), then bool (x - max(x) is a bool subtraction).
    x = np.asarray(x)
    axes = _softmax_axes(x, axis)
    if any(x.shape[ax] == 0 for ax in axes):
        raise ValueError("zero-size array to reduction operation maximum")
    if x.dtype == np.bool_:
        raise TypeError(f"{name} does not accept boolean input (as scipy)")
    return x, result_dtype(x), axes


def _softmax_slice(vals, take_log):
    """softmax (or its log) of one slice, with scipy's special cases:

    softmax: NaN anywhere, a +inf, or all -inf -> every element NaN
    (exp(x - max) meets inf - inf or -inf - -inf).
    log_softmax: NaN anywhere or all -inf -> every element NaN; a +inf ->
    NaN at the infinities and -inf elsewhere.
    Otherwise the definition, with -inf elements giving 0 (log: -inf).
    """
    nan = _LD("nan")
    if any(math.isnan(v) for v in vals):
        return [nan] * len(vals)
    m = max(vals)
    if m == -math.inf:
        return [nan] * len(vals)
    if m == math.inf:
        if not take_log:
            return [nan] * len(vals)
        return [nan if v == math.inf else _LD("-inf") for v in vals]
    terms = [np.exp(v - m) for v in vals]
    if take_log:
        log_s = _log_of_sum(terms)
        return [(v - m) - log_s for v in vals]
    s = _sum_ld(terms)
    return [t / s for t in terms]


def _softmax_impl(x, axis, take_log, name):
    x, dtype, axes = _softmax_common(x, axis, name)
    out = np.empty(x.shape, dtype=dtype)
    if x.size:
        x1 = np.atleast_1d(x)  # a 0-d x is a single slice of one element
        out1 = np.atleast_1d(out)
        for _, sel in _slices(x1.shape, axes):
            vals = list(x1[sel].astype(_LD).ravel())
            res = _softmax_slice(vals, take_log)
            out1[sel] = np.array(res, dtype=_LD).reshape(x1[sel].shape)
    return out[()] if out.ndim == 0 else out


def softmax_ref(x, axis=None):
    """exp(x) / sum(exp(x)) over `axis` (None: the whole array), slice by
    slice; same shape as x, dtype result_type(x, 1.0), 0-d -> scalar."""
    return _softmax_impl(x, axis, False, "softmax")


def log_softmax_ref(x, axis=None):
    """x - log(sum(exp(x))) over `axis`, slice by slice (see softmax_ref)."""
    return _softmax_impl(x, axis, True, "log_softmax")
