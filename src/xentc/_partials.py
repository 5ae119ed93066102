"""
Mergeable partial results: log-sum-exp and cross-entropy over class shards.

A row's classes can be cut into shards (slices of the class axis) that are
reduced separately -- by other processes, machines, or dask tasks -- into
small per-row summaries. Summaries merge associatively, and the merged
summary finalises to the log-sum-exp, softmax, log-softmax or cross-entropy
of the whole row, as if it had been computed in one piece. This is the
"vocabulary-parallel" cross-entropy of large-vocabulary language models,
and what :mod:`xentc.dask` builds on.

The log-sum-exp summary is the C kernels' partial (include/xentc/lse_partial.h):

    max    the largest non-NaN element seen (-inf for none, and for shards
           whose maximum is +inf, whose value is decided by `flags`),
    nmax   how many elements equal `max`,
    rest   sum of exp(x - max) over the other elements (NaN once a NaN has
           been summed),
    flags  bit 1: a NaN was seen in a shard without finite elements;
           bit 2: +inf was seen.

Merging keeps the maxima apart from the rest, so the finalised value keeps
the accuracy of :func:`xentc.logsumexp` (``max + log(nmax) + log1p(rest /
nmax)``). Merging is commutative exactly and associative up to rounding;
merging the same shards in the same order gives the same bits every time.
"""
import numpy as np
from numpy.lib.array_utils import normalize_axis_index

from . import _core, _targets
from ._layout import Rows, kernel_array
from ._validation import as_int, check_numeric, position, resolve_workers, row_threads

__all__ = ["LSEPartial", "CEPartial", "lse_partial", "cross_entropy_partial"]


# Input dtype -> dtype the partial kernels read. float16 is widened exactly.
_KERNEL_DTYPE = {
    np.dtype(np.float16): np.dtype(np.float32),
    np.dtype(np.float32): np.dtype(np.float32),
    np.dtype(np.float64): np.dtype(np.float64),
}


def _kernel_input(x, func, argname="x"):
    """`x` as an array the partial kernels can read, and its result dtype
    (that of the matching xentc function: float16/32/64 stay, integers and
    bool become float64)."""
    x = np.asarray(x)
    check_numeric(x, argname, func)
    dtype = np.result_type(x.dtype, 1.0)
    if dtype not in _KERNEL_DTYPE:
        raise TypeError(
            f"{func}: {argname} must be real with at most double precision, "
            f"got dtype {x.dtype} (no partial kernel for it)"
        )
    return x, dtype


def _single_axis(axis, ndim, func):
    if ndim == 0:
        raise ValueError(f"{func}: the input must have a class axis, got a 0-d array")
    return normalize_axis_index(as_int(axis, "axis", func), ndim, func)


def _readonly(a):
    a.flags.writeable = False
    return a


def _scalar_or_array(a):
    return a[()] if a.ndim == 0 else a


def _row_partials(rows, workers):
    """(nrows, 4) float64 partials of the C-contiguous rows (nrows, ncols)."""
    n, c = rows.shape
    out = np.empty((n, 4))
    if n:
        _core.partial_rows(rows, out, row_threads(workers, n, c))
    return out


def _merge_rows(p, q):
    """Row-wise C merge of two (..., 4) float64 partial arrays."""
    shape = p.shape
    out = np.empty((p.size // 4, 4))
    _core.merge_partials(kernel_array(p, np.float64).reshape(-1, 4),
                         kernel_array(q, np.float64).reshape(-1, 4), out)
    return out.reshape(shape)


def _finalize_rows(p):
    """float64 log-sum-exp of a (..., 4) partial array, of shape p.shape[:-1]."""
    out = np.empty(p.size // 4)
    _core.finalize_partials(kernel_array(p, np.float64).reshape(-1, 4), out)
    return out.reshape(p.shape[:-1])


def _partial_array(arr, ncols, cls):
    """`arr` validated as a (..., ncols) float64 array, copied (the
    partial owns it)."""
    a = np.asarray(arr)
    check_numeric(a, "array", f"{cls}.from_array")
    if a.dtype.kind == "c":
        raise TypeError(f"{cls}.from_array: the array must be real, got {a.dtype}")
    if a.ndim == 0 or a.shape[-1] != ncols:
        raise ValueError(
            f"{cls}.from_array: expected an array of shape (..., {ncols}), got {a.shape}"
        )
    a = np.array(a, dtype=np.float64, order="C", copy=True)
    flags = a[..., 3]
    if not np.all(np.isin(flags, (0, 1, 2, 3))):
        raise ValueError(f"{cls}.from_array: column 3 (flags) must hold 0, 1, 2 or 3")
    if np.any(a[..., 1] < 0):
        raise ValueError(f"{cls}.from_array: column 1 (nmax) must be >= 0")
    return a


class LSEPartial:
    """Log-sum-exp summary of a slice of the classes of every row.

    Made by :func:`lse_partial` (from data), :meth:`from_array` (from its
    array form) or :meth:`empty`; immutable. Its fields are float64 arrays
    of the row shape (the input's shape without the class axis).

    Attributes
    ----------
    max, nmax, rest : ndarray of float64
        See the module description: the largest element, how many elements
        equal it, and ``sum(exp(x - max))`` over the others.
    flags : ndarray of int
        Bit 1: NaN seen (in a shard without finite elements); bit 2: +inf seen.
    shape : tuple
        The row shape.

    See Also
    --------
    lse_partial, CEPartial, xentc.logsumexp

    Examples
    --------
    Two halves of the classes, reduced separately and merged:

    >>> import numpy as np
    >>> import xentc
    >>> x = np.array([[0.0, 1.0, 2.0, 3.0], [1000.0, 0.0, -5.0, 1000.0]])
    >>> left, right = xentc.lse_partial(x[:, :2]), xentc.lse_partial(x[:, 2:])
    >>> left.merge(right).logsumexp()
    array([   3.4401897 , 1000.69314718])
    >>> xentc.logsumexp(x, axis=1)
    array([   3.4401897 , 1000.69314718])
    >>> left.merge(right).max, left.merge(right).nmax
    (array([   3., 1000.]), array([1., 2.]))
    """

    __slots__ = ("_a",)

    def __init__(self, array):
        """From the array form (..., 4); prefer :meth:`from_array`."""
        object.__setattr__(self, "_a", _readonly(_partial_array(array, 4, "LSEPartial")))

    @classmethod
    def _wrap(cls, a):
        # a: a fresh C-contiguous float64 (..., 4) array the partial may own
        self = object.__new__(cls)
        object.__setattr__(self, "_a", _readonly(a))
        return self

    def __setattr__(self, name, value):
        raise AttributeError("LSEPartial is immutable")

    def __reduce__(self):
        # Pickles as its array form: plain float64 data for dask/multiprocessing.
        return (LSEPartial._wrap, (np.array(self._a),))

    def __repr__(self):
        return f"LSEPartial(shape={self.shape})"

    @classmethod
    def from_array(cls, array):
        """The partial whose :meth:`to_array` form is `array` (..., 4):
        columns max, nmax, rest, flags.

        Examples
        --------
        >>> import numpy as np
        >>> from xentc import LSEPartial
        >>> p = LSEPartial.from_array([[0.0, 2.0, 0.0, 0.0]])  # two zeros
        >>> p.logsumexp()
        array([0.69314718])
        """
        return cls(array)

    @classmethod
    def empty(cls, shape=()):
        """The partial of no classes: the identity of :meth:`merge`
        (max -inf, nmax 0, rest 0, flags 0); its log-sum-exp is -inf.

        Examples
        --------
        >>> import numpy as np
        >>> import xentc
        >>> p = xentc.lse_partial(np.array([1.0, 2.0]))
        >>> float(xentc.LSEPartial.empty().merge(p).logsumexp()) == float(p.logsumexp())
        True
        """
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        a = np.zeros(shape + (4,))
        a[..., 0] = -np.inf
        return cls._wrap(a)

    def to_array(self):
        """A (..., 4) float64 copy: columns max, nmax, rest, flags (ready to
        ship between processes; :meth:`from_array` reads it back).

        Examples
        --------
        >>> import numpy as np
        >>> import xentc
        >>> xentc.lse_partial(np.array([[1.0, 1.0, 0.0]])).to_array()
        array([[1.        , 2.        , 0.36787944, 0.        ]])
        """
        return np.array(self._a)

    @property
    def shape(self):
        return self._a.shape[:-1]

    @property
    def ndim(self):
        return self._a.ndim - 1

    @property
    def max(self):
        return self._a[..., 0]

    @property
    def nmax(self):
        return self._a[..., 1]

    @property
    def rest(self):
        return self._a[..., 2]

    @property
    def flags(self):
        return self._a[..., 3].astype(np.int64)

    def merge(self, other):
        """The partial of both slices of classes (disjoint slices of the
        same rows), row by row.

        Commutative exactly; associative up to rounding (merge in a fixed
        order for reproducible bits).

        Parameters
        ----------
        other : LSEPartial
            Of the same row shape.

        Returns
        -------
        LSEPartial

        Examples
        --------
        >>> import numpy as np
        >>> import xentc
        >>> a = xentc.lse_partial(np.array([0.0, 5.0]))
        >>> b = xentc.lse_partial(np.array([5.0, -np.inf]))
        >>> m = a.merge(b)
        >>> float(m.max), float(m.nmax)
        (5.0, 2.0)
        """
        if not isinstance(other, LSEPartial):
            raise TypeError(f"LSEPartial.merge: expected an LSEPartial, got "
                            f"{type(other).__name__}")
        if other.shape != self.shape:
            raise ValueError(f"LSEPartial.merge: row shapes differ: {self.shape} "
                             f"and {other.shape}")
        return LSEPartial._wrap(_merge_rows(self._a, other._a))

    def logsumexp(self):
        """``log(sum(exp(x)))`` over every class the partial has seen, per
        row, in float64 (NaN if any NaN was seen, +inf for +inf, -inf for
        no classes).

        Returns
        -------
        ndarray of float64, or a float64 scalar for a 0-d row shape

        Examples
        --------
        >>> import numpy as np
        >>> import xentc
        >>> float(xentc.lse_partial(np.array([0.0, -40.0])).logsumexp())
        4.248354255291589e-18
        """
        return _scalar_or_array(_finalize_rows(self._a))

    def _normalize(self, x, axis, take_log, func):
        x, dtype = _kernel_input(x, func)
        ax = _single_axis(axis, x.ndim, func)
        row_shape = x.shape[:ax] + x.shape[ax + 1:]
        if row_shape != self.shape:
            raise ValueError(f"{func}: x has row shape {row_shape} (without axis {ax}), "
                             f"the partial {self.shape}")
        # The kernels' softmax of a row slice given the whole row's partial
        # (softmax_rows.h), special rows included (row_special.h).
        rows = Rows(x, (ax,), _KERNEL_DTYPE[dtype])
        out = np.empty_like(rows.data)
        n = rows.nrows
        _core.softmax_with_partials(rows.data, np.ascontiguousarray(self._a).reshape(n, 4),
                                    take_log, out, row_threads(None, n, rows.ncols))
        return np.ascontiguousarray(rows.restore(out)).astype(dtype, copy=False)

    def softmax(self, x, axis=-1):
        """softmax of a slice of the classes of every row, the partial being
        that of the whole rows (all slices merged).

        Parameters
        ----------
        x : array_like
            Any slice of the classes (the input's shape with fewer classes).
        axis : int, optional
            The class axis of `x` (default -1).

        Returns
        -------
        ndarray
            ``exp(x - logsumexp(row))``, of x's shape and the dtype of
            :func:`xentc.softmax`; the special values of :func:`xentc.softmax`
            for rows with NaN, +inf or only -inf.

        Examples
        --------
        >>> import numpy as np
        >>> import xentc
        >>> x = np.array([[1.0, 2.0, 3.0, 4.0]])
        >>> whole = xentc.lse_partial(x[:, :1]).merge(xentc.lse_partial(x[:, 1:]))
        >>> whole.softmax(x[:, 1:])
        array([[0.08714432, 0.23688282, 0.64391426]])
        >>> xentc.softmax(x, axis=1)[:, 1:]
        array([[0.08714432, 0.23688282, 0.64391426]])
        """
        return self._normalize(x, axis, False, "LSEPartial.softmax")

    def log_softmax(self, x, axis=-1):
        """log_softmax of a slice of the classes of every row, the partial
        being that of the whole rows; see :meth:`softmax`.

        Examples
        --------
        >>> import numpy as np
        >>> import xentc
        >>> x = np.array([[1000.0, 1.0, 0.0]])
        >>> whole = xentc.lse_partial(x[:, :2]).merge(xentc.lse_partial(x[:, 2:]))
        >>> whole.log_softmax(x[:, :2])
        array([[   0., -999.]])
        """
        return self._normalize(x, axis, True, "LSEPartial.log_softmax")


def lse_partial(x, axis=-1, *, workers=None):
    """Log-sum-exp partial of every row of `x` over its (slice of the) class axis.

    `x` may hold any slice of the classes -- a shard of a vocabulary, a
    block of a dask array, even no classes at all; partials of disjoint
    slices of the same rows :meth:`~LSEPartial.merge` into the partial of
    their union, and :meth:`~LSEPartial.logsumexp` finalises it.

    Parameters
    ----------
    x : array_like
        Real input; float32 and float64 are read as they are, float16 is
        widened to float32, integers and bool to float64.
    axis : int, optional
        The class axis (default -1); it may have length 0.
    workers : int, optional
        Threads, as in :func:`xentc.logsumexp`; results are bitwise identical
        for every value.

    Returns
    -------
    LSEPartial
        Of row shape ``x.shape`` without `axis`.

    See Also
    --------
    LSEPartial, cross_entropy_partial, xentc.dask.logsumexp

    Examples
    --------
    Shards of the classes, reduced apart (in any process), merged in order:

    >>> import functools
    >>> import numpy as np
    >>> import xentc
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((3, 1000))
    >>> shards = np.array_split(x, 4, axis=1)
    >>> parts = [xentc.lse_partial(s) for s in shards]
    >>> lse = functools.reduce(xentc.LSEPartial.merge, parts).logsumexp()
    >>> bool(np.allclose(lse, xentc.logsumexp(x, axis=1), rtol=1e-14, atol=0))
    True
    """
    func = "lse_partial"
    resolve_workers(workers)
    x, _ = _kernel_input(x, func)
    ax = _single_axis(axis, x.ndim, func)
    rows = Rows(x, (ax,), _KERNEL_DTYPE[np.result_type(x.dtype, 1.0)])
    out = _row_partials(rows.data, workers)
    return LSEPartial._wrap(out.reshape(x.shape[:ax] + x.shape[ax + 1:] + (4,)))


# ---- cross-entropy ----------------------------------------------------------

# Columns of CEPartial.to_array(), format 2. The first nine are per sample
# (in the order of _core's CEP_* columns); the last five are the same on
# every row: they travel with the rows so the array describes itself.
_CE_COLUMNS = (
    "max", "nmax", "rest", "flags",  # the log-sum-exp partial
    "wx",              # sum of weight[c] * (x[c] - shift) over the merged shards,
                       # shift the partial's max (0 where not finite), as the
                       # kernels' xt_ce_stats (label smoothing; 0 without it)
    "target_logit",    # x[y] where the target y is in a merged shard, else 0
    "target_weight",   # weight[y] likewise (1 without class weights)
    "hits",            # how many merged shards held y (1 once all are merged)
    "ignored",         # 1 where target == ignore_index
    "nclasses",        # classes merged so far
    "weight_total",    # sum of their class weights
    "label_smoothing",
    "z_loss",
    "format",          # _FORMAT
)
_COL = {name: k for k, name in enumerate(_CE_COLUMNS)}
_NCOLS = len(_CE_COLUMNS)
_SCALARS = ("nclasses", "weight_total", "label_smoothing", "z_loss", "format")
# Format 1 (xentc 0.1, 13 columns) carried plain sums of the logits, whose
# label-smoothing term cancels for huge logits; it is not read.
_FORMAT = 2
_FORMAT_1_NCOLS = 13


class CEPartial:
    """Cross-entropy summary of a shard of the classes of every sample.

    Made by :func:`cross_entropy_partial` or :meth:`from_array`; immutable.
    Partials of disjoint shards of the same samples (same targets and
    options) :meth:`merge`; once every class is merged, :meth:`finalize`
    gives the losses of :func:`xentc.cross_entropy`.

    Attributes
    ----------
    lse : LSEPartial
        The log-sum-exp partial of the (soft-capped) logits.
    target_logit, target_weight : ndarray of float64
        The target's logit and class weight where the target's class lies in
        a merged shard, 0 elsewhere (so 0 for ignored samples). The sum of
        `target_weight` over samples is the 'mean' denominator.
    hits : ndarray of int
        Merged shards holding the target (1 for every sample not ignored
        once all classes are merged).
    ignored : ndarray of bool
        Samples whose target is `ignore_index`.
    shifted_class_sum : ndarray of float64
        ``sum(weight[c] * (x[c] - shift))`` over the merged classes, shift
        the max of the log-sum-exp partial (0 where that is not finite), as
        the kernels keep it (a plain sum of huge logits would lose the
        label-smoothing term); computed only for label smoothing (0
        otherwise). Format 1 (xentc 0.1) had the plain ``class_sum``.
    nclasses : int
        Classes merged so far.
    weight_total : float
        Their summed class weights (`nclasses` without class weights).
    label_smoothing, z_loss : float
        The options the partial was made with.
    shape : tuple
        The sample shape.

    Examples
    --------
    Vocabulary-parallel cross-entropy: each shard of the classes (and of
    the class weights) is reduced on its own, with the full target vector.

    >>> import functools
    >>> import numpy as np
    >>> import xentc
    >>> rng = np.random.default_rng(0)
    >>> logits = rng.standard_normal((5, 10))
    >>> target = np.array([0, 9, 4, -100, 5])
    >>> weight = rng.random(10)
    >>> bounds = [0, 3, 3, 8, 10]  # an empty shard is allowed
    >>> parts = [
    ...     xentc.cross_entropy_partial(logits[:, a:b], target, class_offset=a,
    ...                                 weight=weight[a:b])
    ...     for a, b in zip(bounds, bounds[1:])
    ... ]
    >>> merged = functools.reduce(xentc.CEPartial.merge, parts)
    >>> loss = merged.finalize(reduction="mean")
    >>> bool(np.isclose(loss, xentc.cross_entropy(logits, target, weight=weight),
    ...                 rtol=1e-13))
    True
    """

    __slots__ = ("_a", "_scalars")

    @classmethod
    def _wrap(cls, rows, scalars):
        # rows: a fresh (..., 9) float64 array of the per-sample columns;
        # scalars: dict of the four per-partial values.
        self = object.__new__(cls)
        object.__setattr__(self, "_a", _readonly(rows))
        object.__setattr__(self, "_scalars", dict(scalars))
        return self

    def __setattr__(self, name, value):
        raise AttributeError("CEPartial is immutable")

    def __reduce__(self):
        return (CEPartial._wrap, (np.array(self._a), dict(self._scalars)))

    def __repr__(self):
        return (f"CEPartial(shape={self.shape}, nclasses={self.nclasses}, "
                f"label_smoothing={self.label_smoothing}, z_loss={self.z_loss})")

    @classmethod
    def from_array(cls, array):
        """The partial whose :meth:`to_array` form is `array`.

        Examples
        --------
        >>> import numpy as np
        >>> import xentc
        >>> p = xentc.cross_entropy_partial(np.array([[1.0, 2.0]]), np.array([1]))
        >>> q = xentc.CEPartial.from_array(p.to_array())
        >>> q.finalize("none")
        array([0.31326169])
        """
        a = np.asarray(array)
        if a.ndim and a.shape[-1] == _FORMAT_1_NCOLS:
            raise ValueError(
                "CEPartial.from_array: a (..., 13) array is CEPartial's format 1 "
                "(xentc 0.1), whose plain sums of the logits lose the label-smoothing "
                f"term for huge logits; this xentc reads format {_FORMAT} ((..., "
                f"{_NCOLS}) arrays): make the partials again with it")
        a = _partial_array(a, _NCOLS, "CEPartial")
        if a.size and not np.all(a[..., _COL["format"]] == _FORMAT):
            raise ValueError(f"CEPartial.from_array: column {_COL['format']} (format) "
                             f"must hold {_FORMAT}, the format this xentc reads")
        nper = _NCOLS - len(_SCALARS)
        scalars = {}
        for name in _SCALARS:
            col = a[..., _COL[name]]
            if col.size and not np.all(col == col.flat[0]):
                raise ValueError(f"CEPartial.from_array: column {_COL[name]} ({name}) "
                                 "must hold one value on every row")
            scalars[name] = float(col.flat[0]) if col.size else 0.0
        scalars["nclasses"] = int(scalars["nclasses"])
        return cls._wrap(np.ascontiguousarray(a[..., :nper]), scalars)

    def to_array(self):
        """A (..., 14) float64 array: per sample, the columns max, nmax,
        rest, flags, wx, target_logit, target_weight, hits, ignored, then
        nclasses, weight_total, label_smoothing, z_loss and the format (2),
        the same on every row, for shipping between processes.

        Examples
        --------
        >>> import numpy as np
        >>> import xentc
        >>> xentc.cross_entropy_partial(np.zeros((2, 3)), np.array([1, 7])).to_array()[:, 5:]
        array([[0., 1., 1., 0., 3., 3., 0., 0., 2.],
               [0., 0., 0., 0., 3., 3., 0., 0., 2.]])
        """
        out = np.empty(self._a.shape[:-1] + (_NCOLS,))
        nper = self._a.shape[-1]
        out[..., :nper] = self._a
        for name in _SCALARS:
            out[..., _COL[name]] = self._scalars[name]
        return out

    def _col(self, name):
        return self._a[..., _COL[name]]

    @property
    def shape(self):
        return self._a.shape[:-1]

    @property
    def lse(self):
        return LSEPartial._wrap(np.ascontiguousarray(self._a[..., :4]))

    @property
    def target_logit(self):
        return self._col("target_logit")

    @property
    def target_weight(self):
        return self._col("target_weight")

    @property
    def hits(self):
        return self._col("hits").astype(np.int64)

    @property
    def ignored(self):
        return self._col("ignored") != 0

    @property
    def shifted_class_sum(self):
        return self._col("wx")

    @property
    def nclasses(self):
        return self._scalars["nclasses"]

    @property
    def weight_total(self):
        return self._scalars["weight_total"]

    @property
    def label_smoothing(self):
        return self._scalars["label_smoothing"]

    @property
    def z_loss(self):
        return self._scalars["z_loss"]

    def merge(self, other):
        """The partial of both shards of classes (disjoint shards of the same
        samples, made with the same targets and options).

        Parameters
        ----------
        other : CEPartial

        Returns
        -------
        CEPartial

        Raises
        ------
        ValueError
            If the sample shapes, the options or the ignored samples differ.

        Examples
        --------
        >>> import numpy as np
        >>> import xentc
        >>> x, y = np.array([[0.0, 1.0, 2.0]]), np.array([2])
        >>> a = xentc.cross_entropy_partial(x[:, :1], y, class_offset=0)
        >>> b = xentc.cross_entropy_partial(x[:, 1:], y, class_offset=1)
        >>> a.merge(b).finalize("none"), xentc.cross_entropy(x, y, reduction="none")
        (array([0.40760596]), array([0.40760596]))
        """
        if not isinstance(other, CEPartial):
            raise TypeError(f"CEPartial.merge: expected a CEPartial, got "
                            f"{type(other).__name__}")
        if other.shape != self.shape:
            raise ValueError(f"CEPartial.merge: sample shapes differ: {self.shape} "
                             f"and {other.shape}")
        for name in ("label_smoothing", "z_loss"):
            if self._scalars[name] != other._scalars[name]:
                raise ValueError(f"CEPartial.merge: the partials were made with "
                                 f"different {name} ({self._scalars[name]} and "
                                 f"{other._scalars[name]})")
        if not np.array_equal(self._col("ignored"), other._col("ignored")):
            raise ValueError("CEPartial.merge: the partials ignore different samples "
                             "(were they made with the same targets and ignore_index?)")
        # The kernels' merge of the stats (xt_ce_stats_merge: wx moved to the
        # merged max); only one shard holds a target, so x_y and w_y add
        # exactly (x + 0).
        n = self._a.size // self._a.shape[-1]
        out = np.empty((n, self._a.shape[-1]))
        ncols = self._a.shape[-1]
        _core.ce_merge_partials(self._a.reshape(n, ncols), self.weight_total,
                                other._a.reshape(n, ncols), other.weight_total, out)
        out = out.reshape(self._a.shape)
        scalars = dict(self._scalars)
        scalars["nclasses"] += other._scalars["nclasses"]
        scalars["weight_total"] += other._scalars["weight_total"]
        return CEPartial._wrap(out, scalars)

    def finalize(self, reduction="mean"):
        """Cross-entropy losses of the merged partial, as
        :func:`xentc.cross_entropy` gives them for the whole logits.

        Parameters
        ----------
        reduction : {'mean', 'sum', 'none'}, optional
            As in :func:`xentc.cross_entropy`: 'mean' divides by the summed
            class weights of the samples not ignored (NaN when that is 0).

        Returns
        -------
        float64 scalar, or ndarray of float64 for 'none'
            (per-sample losses of the sample shape, 0 where ignored; NaN
            for rows with inf or NaN logits).

        Raises
        ------
        IndexError
            If a target (not ignored) lies in none of the merged shards.
        ValueError
            If a target lies in more than one (overlapping shards).

        Examples
        --------
        >>> import numpy as np
        >>> import xentc
        >>> x, y = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]]), np.array([0, 2])
        >>> a = xentc.cross_entropy_partial(x[:, :2], y, class_offset=0)
        >>> b = xentc.cross_entropy_partial(x[:, 2:], y, class_offset=2)
        >>> float(a.merge(b).finalize())
        0.16811712653905...
        """
        _targets.check_reduction(reduction, "CEPartial.finalize")
        per_sample = self._per_sample()
        if reduction == "none":
            return _scalar_or_array(per_sample)
        total = _core.sum_losses(np.ascontiguousarray(per_sample, np.float64).reshape(-1))
        if reduction == "sum":
            return np.float64(total)
        # divided as torch divides, a zero denominator (signed class
        # weights, or every sample ignored) included
        return _targets.mean_of(total, np.sum(self.target_weight), self.label_smoothing,
                                max(self.nclasses, 1), self.z_loss, self._split_totals)

    def _split_totals(self):
        """Totals of the NLL, smoothing and z-loss terms, which 'mean'
        divides apart (see _targets.mean_of)."""
        return tuple(_core.sum_losses(np.ascontiguousarray(t, np.float64).reshape(-1))
                     for t in self._per_sample(split=True))

    def _per_sample(self, split=False):
        valid = ~self.ignored
        hits = self._col("hits")
        missing = valid & (hits == 0)
        if np.any(missing):
            pos = position(np.argmax(missing), self.shape)
            raise IndexError(
                f"CEPartial.finalize: the target at position {pos} is in none of the "
                f"merged shards (classes seen: {self.nclasses}); targets must be class "
                "indices of the full class range, or ignore_index"
            )
        if np.any(valid & (hits > 1)):
            raise ValueError("CEPartial.finalize: a target lies in more than one merged "
                             "shard: the shards overlap")
        # the kernels' per-row loss (xt_ce_index_loss); split: its terms
        # apart (NLL, smoothing sum, z-loss), for a 'mean' over a zero
        # denominator (_targets.mean_of)
        n = self._a.size // self._a.shape[-1]
        rows = self._a.reshape(n, self._a.shape[-1])
        terms = (0, 1, 2) if split else (-1,)
        out = []
        for term in terms:
            loss = np.empty(n)
            _core.ce_finalize_partials(rows, self.nclasses, self.weight_total,
                                       self.label_smoothing, self.z_loss, term, loss)
            out.append(loss.reshape(self.shape))
        return tuple(out) if split else out[0]


def cross_entropy_partial(logits, target, *, class_offset=0, axis=-1, weight=None,
                          ignore_index=-100, label_smoothing=0.0, z_loss=0.0,
                          softcap=None, workers=None):
    """Cross-entropy partial of a shard of the classes (vocabulary parallelism).

    `logits` holds the classes ``[class_offset, class_offset + C_shard)``
    of every sample; `target` holds the full class indices (the same array
    for every shard). Each shard's partial records the log-sum-exp partial,
    the target's logit and class weight where the target falls in the shard,
    and the sums label smoothing needs. :meth:`CEPartial.merge` the shards'
    partials and :meth:`CEPartial.finalize` to get the losses of
    :func:`xentc.cross_entropy` on the whole logits.

    Parameters
    ----------
    logits : array_like
        The shard of the logits (float16/32/64; integers become float64).
        Its class axis may have length 0.
    target : array_like of int
        Class indices of the full class range (shape: the logits' without
        the class axis), or `ignore_index`.
    class_offset : int, optional
        The full-range index of the shard's first class (default 0).
    axis : int, optional
        The class axis (default -1).
    weight : array_like, optional
        The shard's slice of the class weights (length C_shard, any finite
        value, as in :func:`xentc.cross_entropy`): ``weight[class_offset:class_offset + C_shard]``.
    ignore_index : int, optional
        Targets equal to it contribute nothing (default -100).
    label_smoothing, z_loss, softcap : optional
        As in :func:`xentc.cross_entropy`; every shard must use the same.
    workers : int, optional
        Threads, as in :func:`xentc.logsumexp`.

    Returns
    -------
    CEPartial

    Raises
    ------
    IndexError
        For a negative target that is not `ignore_index` (targets beyond the
        shard are checked by :meth:`CEPartial.finalize`).

    See Also
    --------
    CEPartial, lse_partial, xentc.cross_entropy, xentc.dask.cross_entropy

    Examples
    --------
    >>> import numpy as np
    >>> import xentc
    >>> logits = np.array([[2.0, 0.5, -1.0, 0.0], [0.0, 0.0, 3.0, 1.0]])
    >>> target = np.array([0, 3])
    >>> kw = dict(label_smoothing=0.1)
    >>> a = xentc.cross_entropy_partial(logits[:, :2], target, class_offset=0, **kw)
    >>> b = xentc.cross_entropy_partial(logits[:, 2:], target, class_offset=2, **kw)
    >>> a.merge(b).finalize("none")
    array([0.50484958, 2.21099762])
    >>> xentc.cross_entropy(logits, target, reduction="none", **kw)
    array([0.50484958, 2.21099762])
    """
    func = "cross_entropy_partial"
    resolve_workers(workers)
    x = _targets.float_array(logits, "logits", func)
    ax = _single_axis(axis, x.ndim, func)
    cdtype = _targets.compute_dtype(x.dtype)
    nclasses = x.shape[ax]
    sample_shape = x.shape[:ax] + x.shape[ax + 1:]
    offset = as_int(class_offset, "class_offset", func)
    if offset < 0:
        raise ValueError(f"{func}: class_offset must be >= 0, got {offset}")
    smoothing = _targets.check_fraction(label_smoothing, "label_smoothing", func)
    z = _targets.check_nonnegative(z_loss, "z_loss", func)
    cap = _targets.check_softcap(softcap, func)
    w = _targets.class_weights(weight, nclasses, func)

    t = np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{func}: target must hold integer class indices, got dtype "
                        f"{t.dtype} (probability targets are not supported here)")
    if t.shape != sample_shape:
        raise ValueError(f"{func}: target must have shape {sample_shape} (the logits' "
                         f"shape without the class axis), got {t.shape}")
    ignore_index = _targets.check_ignore_index(ignore_index, func)
    t = t.reshape(-1)
    ignored = t == ignore_index
    if t.dtype == np.uint64:
        # Values beyond int64 are in no shard (finalize reports them).
        t = np.minimum(t, np.iinfo(np.int64).max)
    t = t.astype(np.int64, copy=False)
    bad = ~ignored & (t < 0)
    if np.any(bad):
        first = int(np.argmax(bad))
        pos = position(first, sample_shape)
        raise IndexError(f"{func}: Target {t[first]} is out of bounds at position "
                         f"{pos}: expected a class index >= 0 or "
                         f"ignore_index={ignore_index}")

    rows = Rows(x, (ax,), cdtype).data
    n = rows.shape[0]
    # Where each target lies: its index in this shard, or outside it (-1),
    # or ignored (-2), for the kernel (_core.ce_partial_rows).
    local = t - offset
    local = np.where(ignored, -2, np.where((local >= 0) & (local < nclasses), local, -1))
    nthreads = row_threads(workers, n, nclasses)
    scratch = np.empty((nthreads, nclasses) if cap and nclasses else (0, 0), cdtype)
    out = np.empty((n, _NCOLS - len(_SCALARS)))
    _core.ce_partial_rows(rows, np.ascontiguousarray(local, np.int64),
                          _NO_WEIGHTS if w is None else w, w is not None, cap,
                          smoothing > 0.0, scratch, out, nthreads)
    scalars = {
        "nclasses": nclasses,
        "weight_total": float(nclasses) if w is None else float(np.sum(w)),
        "label_smoothing": smoothing,
        "z_loss": z,
        "format": _FORMAT,
    }
    return CEPartial._wrap(out.reshape(sample_shape + (out.shape[1],)), scalars)


_NO_WEIGHTS = np.empty(0)
