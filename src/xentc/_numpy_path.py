"""
NumPy implementations for dtypes without C kernels (long double, complex).

They follow scipy.special's algorithms at the array's own precision, so these
dtypes give scipy's answers (complex phases included). Only whole-array
NumPy operations: no Python loop over rows.
"""
import numpy as np


def _wrap_phase(x):
    """Angles wrapped to (-pi, pi], keeping precision for small ones."""
    wrapped = -((-x + np.pi) % (2 * np.pi) - np.pi)
    return np.where(np.abs(x) < np.pi, x, wrapped)


def _sign(z):
    """sign as the array API defines it: z / |z| for complex z (NaN for
    infinite z, where numpy.sign returns a unit phase), as scipy uses it."""
    if not np.iscomplexobj(z):
        return np.sign(z)
    with np.errstate(all="ignore"):
        return np.where(z == 0, 0, z / np.abs(z))


def _max_real_element(a, axes):
    """Per slice: the element of largest real part (one of them, for complex)
    and the mask of the elements treated as the maximum."""
    if np.iscomplexobj(a):
        real = a.real
        mask = real == np.max(real, axis=axes, keepdims=True)
        index = np.arange(a.size).reshape(a.shape)
        index[~mask] = -1
        mask = index == np.max(index, axis=axes, keepdims=True)
        a_max = np.sum(np.where(mask, a, 0), axis=axes, keepdims=True, dtype=a.dtype)
    else:
        a_max = np.max(a, axis=axes, keepdims=True)
        mask = a == a_max
    return a_max, mask


def logsumexp(a, b, axes, return_sign):
    """(log|sum b exp a|, sign), both with the reduced axes kept as size 1.

    `a` (and `b`, broadcast to a's shape) are non-empty arrays of the result
    dtype. Elements with b == 0 are left out even where a is inf or NaN.
    """
    with np.errstate(all="ignore"):
        # Direct sum: decides the slices whose stable value is not finite
        # (inf/NaN inputs), where IEEE arithmetic gives the right answer.
        terms = np.exp(a) if b is None else np.where(b == 0, 0, b * np.exp(a))
        direct = np.sum(terms, axis=axes, keepdims=True)
        direct_sign = _sign(direct)
        direct_out = np.log(np.abs(direct) if return_sign else direct)

        if b is not None:
            a = np.where(b == 0, -np.inf, a)
        a_max, is_max = _max_real_element(a, axes)
        weight_max = is_max.astype(a.dtype) if b is None else b * is_max
        m = np.sum(weight_max, axis=axes, keepdims=True, dtype=a.dtype)
        others = np.where(is_max, -np.inf, a)
        e = np.exp(others - a_max)
        if b is not None:
            e = b * e
        s = np.sum(e, axis=axes, keepdims=True, dtype=a.dtype)
        s = np.where(s == 0, s, s / m)
        sign = _sign(s + 1) * _sign(m)
        if np.iscomplexobj(a):
            sign = sign * np.exp(np.imag(a_max) * 1j)
        else:
            s = np.where(s < -1, -s - 2, s)
            m = np.abs(m)
        out = np.log1p(s) + np.log(m) + a_max
        # A finite stable value of a negative sum stays NaN below: the direct
        # sum may have underflowed to -0 and would give log(-0) = -inf.
        negative = np.zeros(out.shape, bool)
        if return_sign:
            out = np.real(out)
        elif not np.iscomplexobj(out):
            negative = (sign < 0) & np.isfinite(out)
            out = np.where(sign < 0, np.nan, out)

        finite = np.isfinite(out) | negative
        out = np.where(finite, out, direct_out)
        sign = np.where(finite, sign, direct_sign)
        if np.iscomplexobj(a):
            if return_sign:
                sign = np.real(sign) + _wrap_phase(np.imag(sign)) * 1j
            else:
                out = np.real(out) + _wrap_phase(np.imag(out)) * 1j
    return out, sign


def softmax(x, axes):
    with np.errstate(all="ignore"):
        shifted = np.exp(x - np.max(x, axis=axes, keepdims=True))
        return shifted / np.sum(shifted, axis=axes, keepdims=True)


def log_softmax(x, axes):
    with np.errstate(all="ignore"):
        x_max = np.max(x, axis=axes, keepdims=True)
        x_max = np.where(np.isfinite(x_max), x_max, 0)
        shifted = x - x_max
        return shifted - np.log(np.sum(np.exp(shifted), axis=axes, keepdims=True))
