"""Slow, deliberately plain NumPy reference implementations of the losses.

These are the oracle the tests compare ``xentc`` against.  They follow the
semantics of ``torch.nn.functional.cross_entropy`` / ``nll_loss`` exactly
(checked against the golden file written by ``tests/golden/make_golden.py``),
plus the extensions xentc adds: ``sample_weight``, ``z_loss`` and ``softcap``.

Everything is computed in float64 with a Python loop over rows: clarity is the
point, speed is not.  Results are always float64 (a Python float for 'sum' and
'mean', an ndarray for 'none').

Conventions
-----------
``axis`` is the class axis of ``logits``.  An *index* target has the logits'
shape without the class axis and an integer dtype; a *probability* target has
exactly the logits' shape and a floating dtype.  A "row" (sample) is one
position of the target-without-class-axis shape.

Index targets, per row n with target y_n, log-probabilities lp_n = log_softmax(x_n),
class weights w (default all ones), sample weight s_n (default 1), smoothing eps::

    l_n = s_n * [ (1-eps) * (-w[y_n] lp_n[y_n])
                  + (eps/C) * (-sum_c w_c lp_n[c])
                  + z * lse_n**2 ]                  (0 if y_n == ignore_index)
    mean = sum_n l_n / sum_{n not ignored} s_n w[y_n]

Probability targets q_n (no ignoring)::

    q'_n = (1-eps) q_n + eps/C
    l_n  = s_n * [ -sum_c w_c q'_nc lp_n[c] + z * lse_n**2 ]
    mean = sum_n l_n / sum_n s_n

``softcap`` s replaces the logits by ``s * tanh(x / s)`` before anything else.
"""

import numpy as np

__all__ = [
    "cross_entropy_ref",
    "cross_entropy_grad_ref",
    "nll_loss_ref",
    "log_loss_ref",
    "kl_div_ref",
    "softmax_ref",
    "log_softmax_ref",
]

_REDUCTIONS = ("none", "sum", "mean")


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------

def _row_logsumexp(row):
    """log(sum(exp(row))) for one 1-D float64 row, shifted by the max for stability."""
    m = np.max(row)
    if not np.isfinite(m):
        # All -inf gives -inf; a +inf or nan entry makes the result inf/nan,
        # which is what the unshifted formula would give too.
        with np.errstate(invalid="ignore", over="ignore"):
            return np.log(np.sum(np.exp(row)))
    return m + np.log(np.sum(np.exp(row - m)))


def _row_log_softmax(row):
    """(log_softmax(row), logsumexp(row)) for one 1-D float64 row. The max
    is subtracted first, (row - m) - log(sum(exp(row - m))), as torch does:
    row - lse would lose log(sum) to lse's rounding for huge logits."""
    m = np.max(row)
    with np.errstate(invalid="ignore", over="ignore"):
        if not np.isfinite(m):
            lse = _row_logsumexp(row)
            return row - lse, lse
        ls = np.log(np.sum(np.exp(row - m)))
        return (row - m) - ls, m + ls


def log_softmax_ref(x, axis=-1):
    """Row-by-row log-softmax along ``axis`` in float64."""
    xm, shape = _rows(np.asarray(x, dtype=np.float64), axis)
    out = np.empty_like(xm)
    for n in range(xm.shape[0]):
        out[n] = _row_log_softmax(xm[n])[0]
    return _unrows(out, shape, axis)


def softmax_ref(x, axis=-1):
    """Row-by-row softmax along ``axis`` in float64."""
    return np.exp(log_softmax_ref(x, axis))


def _normalize_axis(axis, ndim):
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(axis, ndim)
    return axis % ndim


def _rows(a, axis):
    """Move ``axis`` last and flatten the rest: returns ((M, C) array, moved shape)."""
    axis = _normalize_axis(axis, a.ndim)
    moved = np.moveaxis(a, axis, -1)
    return moved.reshape(-1, moved.shape[-1]).copy(), moved.shape


def _unrows(rows, moved_shape, axis):
    """Inverse of :func:`_rows`."""
    return np.moveaxis(rows.reshape(moved_shape), -1, axis)


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _classify_target(x, target, axis):
    """Return ("index" | "prob", target array) after checking shape and dtype."""
    target = np.asarray(target)
    axis = _normalize_axis(axis, x.ndim)
    batch_shape = x.shape[:axis] + x.shape[axis + 1:]
    if target.shape == x.shape:
        if not np.issubdtype(target.dtype, np.floating):
            raise TypeError("probability targets must have a floating dtype, "
                            f"got {target.dtype}")
        return "prob", target
    if target.shape == batch_shape:
        if not (np.issubdtype(target.dtype, np.integer)):
            raise TypeError("index targets must have an integer dtype, "
                            f"got {target.dtype}")
        return "index", target
    raise ValueError(f"target shape {target.shape} matches neither the logits "
                     f"shape {x.shape} nor the batch shape {batch_shape}")


def _per_sample(sample_weight, batch_shape):
    """Sample weights flattened to one value per row (ones if None)."""
    if sample_weight is None:
        return np.ones(int(np.prod(batch_shape, dtype=np.int64)))
    sw = np.asarray(sample_weight, dtype=np.float64)
    if sw.shape != tuple(batch_shape):
        raise ValueError(f"sample_weight shape {sw.shape} != batch shape "
                         f"{tuple(batch_shape)}")
    return sw.reshape(-1)


def _class_weight(weight, C):
    if weight is None:
        return np.ones(C)
    w = np.asarray(weight, dtype=np.float64)
    if w.shape != (C,):
        raise ValueError(f"weight should have shape ({C},), got {w.shape}")
    return w


def _check_target_index(y, C):
    if not 0 <= y < C:
        # Same text as torch, so tests can compare messages if they wish.
        raise IndexError(f"Target {y} is out of bounds.")


def _divide(num, den):
    """num / den with IEEE results (0/0 -> nan, x/0 -> inf) and no warnings."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.float64(num) / np.float64(den)


# --------------------------------------------------------------------------
# cross entropy (loss and gradient share one row-wise core)
# --------------------------------------------------------------------------

def _cross_entropy_core(logits, target, *, axis, weight, sample_weight,
                        ignore_index, reduction, label_smoothing, z_loss,
                        softcap, want_grad):
    """Compute the loss (and optionally its gradient) of cross_entropy_ref.

    The gradient is derived by hand from the formulas in the module docstring:
    with p = softmax(x'), lse = logsumexp(x') and x' the (soft-capped) logits,

      d/dx' [-lp[y]]          = p - e_y
      d/dx' [-sum_c w_c lp_c] = (sum_c w_c) p - w
      d/dx' [-sum_c a_c lp_c] = (sum_c a_c) p - a          (a = w * q')
      d/dx' [lse**2]          = 2 lse p
      d x' / d x              = 1 - tanh(x/s)**2           (softcap s)

    and, for 'mean', everything divided by the same denominator as the loss.
    """
    _check_reduction(reduction)
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim == 0:
        raise ValueError("logits must have at least one dimension (the class axis)")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError("label_smoothing must be between 0.0 and 1.0. "
                         f"Got: {label_smoothing}")
    if softcap is not None and not softcap > 0:
        raise ValueError("softcap must be positive")
    kind, target = _classify_target(x, target, axis)
    if kind == "prob" and ignore_index >= 0:
        # torch rejects this; negative ignore_index values are silently unused.
        raise ValueError("ignore_index is not supported for floating point target")

    X, moved_shape = _rows(x, axis)
    M, C = X.shape
    batch_shape = moved_shape[:-1]
    w = _class_weight(weight, C)
    s = _per_sample(sample_weight, batch_shape)
    eps = float(label_smoothing)
    lam = float(z_loss)

    if softcap is not None:
        tanh = np.tanh(X / softcap)
        Xc = softcap * tanh
        dcap = 1.0 - tanh ** 2
    else:
        Xc = X
        dcap = np.ones_like(X)

    if kind == "index":
        T = target.reshape(-1)
    else:
        Q = np.asarray(_rows(target.astype(np.float64), axis)[0])

    # Per-row pieces.  Each loss term keeps its own numerator so that 'mean'
    # can divide term by term like torch does (this matters only when the
    # denominator is 0: torch's NLL term is then 0/0 = nan and poisons the sum).
    nll = np.zeros(M)        # (1-eps) term  (index)  /  full CE term (prob)
    smooth = np.zeros(M)     # eps/C term (index targets only)
    zterm = np.zeros(M)      # z-loss term
    counted = np.zeros(M, dtype=bool)
    denom_contrib = np.zeros(M)
    g_nll = np.zeros((M, C))
    g_smooth = np.zeros((M, C))
    g_z = np.zeros((M, C))

    P = np.zeros((M, C))
    LSE = np.zeros(M)
    for n in range(M):
        row = Xc[n]
        lp, lse = _row_log_softmax(row)
        if not np.isfinite(lse):
            # torch's log_softmax of a row with +inf or NaN, or only -inf,
            # is NaN everywhere (its max subtraction gives inf - inf); the
            # loss follows from it. (scipy's log_softmax keeps -inf there.)
            lp = np.full_like(lp, np.nan)
        p = np.exp(lp)
        P[n], LSE[n] = p, lse
        if kind == "index":
            y = int(T[n])
            if y == ignore_index:
                continue  # contributes nothing, not even to the denominator
            _check_target_index(y, C)
            counted[n] = True
            denom_contrib[n] = s[n] * w[y]
            e_y = np.zeros(C)
            e_y[y] = 1.0
            with np.errstate(invalid="ignore"):
                nll[n] = s[n] * (1.0 - eps) * (-w[y] * lp[y])
                smooth[n] = s[n] * (eps / C) * (-np.sum(w * lp))
            g_nll[n] = s[n] * (1.0 - eps) * w[y] * (p - e_y)
            g_smooth[n] = s[n] * (eps / C) * (np.sum(w) * p - w)
        else:
            counted[n] = True
            denom_contrib[n] = s[n]
            q = (1.0 - eps) * Q[n] + eps / C
            a = w * q
            with np.errstate(invalid="ignore"):
                # 0 * (-inf) stays nan on purpose: torch gives nan there too.
                nll[n] = s[n] * (-np.sum(a * lp))
            g_nll[n] = s[n] * (np.sum(a) * p - a)
        with np.errstate(invalid="ignore", over="ignore"):
            zterm[n] = s[n] * lam * lse ** 2
            g_z[n] = s[n] * 2.0 * lam * lse * p

    if reduction == "none":
        per_row = nll + smooth + zterm
        loss = per_row.reshape(batch_shape)
        row_scale = np.ones(M)
    elif reduction == "sum":
        loss = float(np.sum(nll) + np.sum(smooth) + np.sum(zterm))
        row_scale = np.ones(M)
    else:
        den = np.sum(denom_contrib)
        parts = [_divide(np.sum(nll), den)]
        if kind == "index" and eps > 0.0:
            # torch adds the smoothing term only when label_smoothing > 0:
            # at a zero denominator (signed weights) 0/0 would make it NaN
            parts.append(_divide(np.sum(smooth), den))
        if lam != 0.0:
            parts.append(_divide(np.sum(zterm), den))
        with np.errstate(invalid="ignore"):
            loss = float(np.sum(parts))  # inf + -inf: NaN, as in torch
        row_scale = np.full(M, _divide(1.0, den))

    if not want_grad:
        return loss

    grad = np.zeros((M, C))
    zero_den = reduction == "mean" and kind == "index" and row_scale.size and \
        not np.isfinite(row_scale[0])
    for n in range(M):
        if not counted[n]:
            continue  # ignored rows get exactly zero gradient, whatever the scale
        if zero_den:
            # 'mean' over a zero denominator (signed class weights): every
            # term is +-inf or NaN, and which depends on torch's order of
            # operations: nll_loss's and the smoothing sum's backward give
            # d loss / d log_softmax, then log_softmax's backward g - p sum(g)
            inv = row_scale[n]
            y = int(T[n])
            with np.errstate(invalid="ignore", over="ignore"):
                g = np.zeros(C)
                g[y] = -w[y] * ((1.0 - eps) * inv)
                if eps > 0.0:
                    g = g - w * ((eps / C) * inv)
                g = g * s[n]
                gx = g - P[n] * np.sum(g)
                if lam != 0.0:
                    gx = gx + s[n] * 2.0 * lam * LSE[n] * inv * P[n]
            grad[n] = gx * dcap[n]
            continue
        with np.errstate(invalid="ignore"):
            # Scale each term separately: when the mean's denominator is 0
            # (all remaining class/sample weights zero) the NLL gradient is
            # 0 * inf = nan and the whole row becomes nan, as in torch.
            g = (g_nll[n] * row_scale[n] + g_smooth[n] * row_scale[n]
                 + (g_z[n] * row_scale[n] if lam != 0.0 else 0.0))
        grad[n] = g * dcap[n]
    return _unrows(grad, moved_shape, axis)


def cross_entropy_ref(logits, target, *, axis=-1, weight=None,
                      sample_weight=None, ignore_index=-100, reduction="mean",
                      label_smoothing=0.0, z_loss=0.0, softcap=None):
    """Cross-entropy between ``softmax(logits, axis)`` and ``target``.

    Same semantics as ``torch.nn.functional.cross_entropy`` with the class
    axis given by ``axis`` (see the module docstring for the formulas), plus:

    sample_weight : array of the target-without-class-axis shape, or None
        Multiplies each sample's loss; for 'mean' the denominator becomes
        ``sum s_n w[y_n]`` over non-ignored rows (index) or ``sum s_n`` (prob).
    z_loss : float
        Adds ``z_loss * logsumexp(x_n)**2`` to every non-ignored sample,
        weighted by the sample weight but not by the class weight.
    softcap : float or None
        If given, logits are replaced by ``softcap * tanh(logits / softcap)``.

    Returns a Python float for 'sum'/'mean' and a float64 ndarray of the
    batch shape for 'none' (0-d for 1-D logits).  'mean' with no counted
    weight (e.g. every target ignored) is nan; 'sum' is then 0.

    Raises IndexError ("Target {y} is out of bounds.") for a non-ignored
    index outside [0, C), TypeError for a target of the wrong dtype kind and
    ValueError for shape mismatches, bad options, or a non-negative
    ``ignore_index`` with probability targets (torch rejects that too).
    """
    return _cross_entropy_core(
        logits, target, axis=axis, weight=weight, sample_weight=sample_weight,
        ignore_index=ignore_index, reduction=reduction,
        label_smoothing=label_smoothing, z_loss=z_loss, softcap=softcap,
        want_grad=False)


def cross_entropy_grad_ref(logits, target, *, axis=-1, weight=None,
                           sample_weight=None, ignore_index=-100,
                           reduction="mean", label_smoothing=0.0, z_loss=0.0,
                           softcap=None):
    """Analytic gradient of :func:`cross_entropy_ref` w.r.t. ``logits``.

    Same arguments as :func:`cross_entropy_ref`.  Returns a float64 array of
    the logits' shape; for reduction='none' it is the gradient of the sum of
    the per-sample losses.  Ignored rows get exactly zero gradient.
    """
    return _cross_entropy_core(
        logits, target, axis=axis, weight=weight, sample_weight=sample_weight,
        ignore_index=ignore_index, reduction=reduction,
        label_smoothing=label_smoothing, z_loss=z_loss, softcap=softcap,
        want_grad=True)


# --------------------------------------------------------------------------
# other losses
# --------------------------------------------------------------------------

def nll_loss_ref(log_probs, target, *, axis=-1, weight=None,
                 sample_weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood with index targets, like ``torch.nn.functional.nll_loss``.

    ``log_probs`` is used as given (it is not normalised):
    ``l_n = -s_n w[y_n] log_probs[n, y_n]`` (0 for ignored rows), and 'mean'
    divides by ``sum s_n w[y_n]`` over non-ignored rows (nan if that is 0).
    """
    _check_reduction(reduction)
    x = np.asarray(log_probs, dtype=np.float64)
    kind, target = _classify_target(x, target, axis)
    if kind != "index":
        raise ValueError("nll_loss_ref takes index targets only")
    X, moved_shape = _rows(x, axis)
    M, C = X.shape
    w = _class_weight(weight, C)
    s = _per_sample(sample_weight, moved_shape[:-1])
    T = target.reshape(-1)
    losses = np.zeros(M)
    den = 0.0
    for n in range(M):
        y = int(T[n])
        if y == ignore_index:
            continue
        _check_target_index(y, C)
        losses[n] = -s[n] * w[y] * X[n, y]
        den += s[n] * w[y]
    if reduction == "none":
        return losses.reshape(moved_shape[:-1])
    if reduction == "sum":
        return float(np.sum(losses))
    return float(_divide(np.sum(losses), den))


def log_loss_ref(probs, target, *, axis=-1, eps="auto", sample_weight=None,
                 reduction="mean"):
    """Log loss of predicted probabilities, in the manner of sklearn's ``log_loss``.

    ``probs`` are clipped to ``[eps, 1 - eps]`` (``eps="auto"`` means
    ``np.finfo(probs.dtype).eps``, float64's for non-float input) and not
    renormalised.  ``target`` is either class indices (the probs' shape
    without ``axis``) or a one-hot / probability array of the probs' shape.
    ``l_n = -sum_c y_nc log p_nc``; 'mean' is ``sum s_n l_n / sum s_n``.
    """
    _check_reduction(reduction)
    probs = np.asarray(probs)
    if eps == "auto":
        dt = probs.dtype if np.issubdtype(probs.dtype, np.floating) else np.float64
        eps = float(np.finfo(dt).eps)
    P, moved_shape = _rows(probs.astype(np.float64), axis)
    M, C = P.shape
    P = np.clip(P, eps, 1.0 - eps)
    target = np.asarray(target)
    if target.shape == probs.shape:
        Y = _rows(target.astype(np.float64), axis)[0]
    elif target.shape == moved_shape[:-1]:
        if not np.issubdtype(target.dtype, np.integer):
            raise TypeError("index targets must have an integer dtype")
        Y = np.zeros((M, C))
        for n, y in enumerate(target.reshape(-1)):
            _check_target_index(int(y), C)
            Y[n, int(y)] = 1.0
    else:
        raise ValueError(f"target shape {target.shape} does not fit probs "
                         f"shape {probs.shape}")
    s = _per_sample(sample_weight, moved_shape[:-1])
    losses = np.zeros(M)
    for n in range(M):
        losses[n] = -np.sum(Y[n] * np.log(P[n]))
    if reduction == "none":
        return (s * losses).reshape(moved_shape[:-1])
    if reduction == "sum":
        return float(np.sum(s * losses))
    return float(_divide(np.sum(s * losses), np.sum(s)))


def kl_div_ref(logits, target_probs, *, axis=-1, reduction="mean"):
    """KL(target || softmax(logits)) per row, with the convention 0 log 0 = 0.

    ``l_n = sum_c q_nc (log q_nc - log_softmax(x_n)_c)``; 'mean' divides by
    the number of rows (torch's ``reduction='batchmean'`` for 2-D input).
    """
    _check_reduction(reduction)
    x = np.asarray(logits, dtype=np.float64)
    q_in = np.asarray(target_probs, dtype=np.float64)
    if q_in.shape != x.shape:
        raise ValueError("target_probs must have the logits' shape")
    X, moved_shape = _rows(x, axis)
    Q = _rows(q_in, axis)[0]
    M, C = X.shape
    losses = np.zeros(M)
    for n in range(M):
        lp = _row_log_softmax(X[n])[0]
        for c in range(C):
            if Q[n, c] != 0.0:  # 0 log 0 = 0, and the -log p term vanishes too
                losses[n] += Q[n, c] * (np.log(Q[n, c]) - lp[c])
    if reduction == "none":
        return losses.reshape(moved_shape[:-1])
    if reduction == "sum":
        return float(np.sum(losses))
    return float(_divide(np.sum(losses), M))
