"""
Results are bitwise identical for any thread count (workers = 1, 2, 3, 8):
long rows are cut into fixed 65536-element chunks merged in chunk order,
short rows are computed one row at a time whatever the grouping. Checked on
every function, on the shapes that take each code path: one long 1-D array
(axis=None, > 2 chunks), long rows, many short rows, medium rows, and a
reduction over a non-trailing axis; float32 and float64; with and without
special values. Functions without `workers` (nll_loss, log_loss, kl_div)
follow the OpenMP default, set here through threadpoolctl.
"""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import xentc
from xentc import _core, _dispatch

WORKERS = [1, 2, 3, 8]
CHUNK = _core.chunk_size()

# name -> (shape, axis). The thread count only matters above 32768
# elements (smaller inputs run on one thread), so every shape is above it.
SHAPES = {
    "long-1d": ((2 * CHUNK + 12345,), None),      # one row of 3 chunks
    "long-rows": ((4, 200001), -1),               # 4 rows of 4 chunks
    "short-rows": ((50001, 10), -1),              # the short-row kernel
    "short-rows-32": ((3001, 32), -1),            # its widest rows
    "medium-rows": ((700, 333), -1),              # one chunk per row
    "axis-0": ((70001, 3), 0),                    # reduction over axis 0 (a copy)
}


def make(shape, dtype, special, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    if special:
        # a few NaN/inf/-inf and a whole -inf row (or chunk, in 1-D)
        flat = x.reshape(-1)
        idx = rng.choice(flat.size, 9, replace=False)
        flat[idx[:3]] = np.nan
        flat[idx[3:6]] = np.inf
        flat[idx[6:]] = -np.inf
        if x.ndim == 2 and x.shape[0] > 1:
            x[1] = -np.inf
        else:
            flat[CHUNK:CHUNK + 100] = -np.inf
    return x


def same_bits(results):
    """All results (arrays, scalars or tuples of them) bitwise equal."""
    first = results[0]
    for other in results[1:]:
        a_items = first if isinstance(first, tuple) else (first,)
        b_items = other if isinstance(other, tuple) else (other,)
        assert len(a_items) == len(b_items)
        for a, b in zip(a_items, b_items):
            a, b = np.asarray(a), np.asarray(b)
            assert a.dtype == b.dtype and a.shape == b.shape
            if a.tobytes() != b.tobytes():
                return False
    return True


def over_workers(call):
    results = [call(w) for w in WORKERS]
    assert same_bits(results), "results differ between workers=" + str(WORKERS)
    return results[0]


params = pytest.mark.parametrize(
    "shape_name, dtype, special",
    [(name, dt, sp) for name in SHAPES for dt in (np.float32, np.float64) for sp in (False, True)],
)


@params
def test_logsumexp(shape_name, dtype, special):
    shape, axis = SHAPES[shape_name]
    x = make(shape, dtype, special)
    over_workers(lambda w: xentc.logsumexp(x, axis=axis, workers=w))
    over_workers(lambda w: xentc.logsumexp(x, axis=axis, return_sign=True, workers=w))


@pytest.mark.parametrize("shape_name", ["long-1d", "long-rows", "short-rows"])
def test_weighted_logsumexp(shape_name):
    shape, axis = SHAPES[shape_name]
    x = make(shape, np.float64, False)
    b = np.random.default_rng(1).choice([-1.0, 0.0, 0.5, 2.0], shape)
    over_workers(lambda w: xentc.logsumexp(x, axis=axis, b=b, return_sign=True, workers=w))


@params
@pytest.mark.parametrize("func", ["softmax", "log_softmax"])
def test_softmax(func, shape_name, dtype, special):
    shape, axis = SHAPES[shape_name]
    x = make(shape, dtype, special)
    fn = getattr(xentc, func)
    over_workers(lambda w: fn(x, axis=axis, workers=w))
    # in place too (the kernels then read and write the same buffer)
    if axis in (-1, None):
        def in_place(w):
            y = x.copy()
            fn(y, axis=axis, out=y, workers=w)
            return y
        over_workers(in_place)


CE_OPTIONS = {
    "plain": {},
    "weights": {"weight": "w", "sample_weight": "sw"},
    "smoothing-zloss": {"label_smoothing": 0.1, "z_loss": 1e-3},
    "softcap": {"softcap": 5.0, "weight": "w"},
}


def ce_args(shape_name, dtype, special, options, prob=False):
    shape, axis = SHAPES[shape_name]
    if axis is None:
        shape, axis = (1,) + shape, -1  # one sample of many classes
    x = make(shape, dtype, special)
    rng = np.random.default_rng(2)
    ax = axis % x.ndim
    c = x.shape[ax]
    sample_shape = x.shape[:ax] + x.shape[ax + 1:]
    if prob:
        target = rng.random(x.shape).astype(dtype)
        target /= target.sum(axis=ax, keepdims=True)
    else:
        target = rng.integers(0, c, sample_shape)
        target[..., :1] = -100  # some ignored samples
    kw = dict(options)
    if kw.get("weight") == "w":
        kw["weight"] = rng.uniform(0.5, 2.0, c)
    if kw.get("sample_weight") == "sw":
        kw["sample_weight"] = rng.uniform(0.0, 2.0, sample_shape)
    return x, target, dict(kw, axis=axis)


@pytest.mark.parametrize("options", list(CE_OPTIONS), ids=list(CE_OPTIONS))
@pytest.mark.parametrize("prob", [False, True], ids=["index", "prob"])
@params
def test_cross_entropy_and_grad(shape_name, dtype, special, prob, options):
    x, target, kw = ce_args(shape_name, dtype, special, CE_OPTIONS[options], prob)
    for reduction in ("mean", "none"):
        over_workers(lambda w: xentc.cross_entropy(x, target, reduction=reduction,
                                                   workers=w, **kw))
        over_workers(lambda w: xentc.cross_entropy_and_grad(x, target, reduction=reduction,
                                                            workers=w, **kw))


@pytest.mark.parametrize("shape_name", ["long-rows", "medium-rows"])
def test_grad_in_place(shape_name):
    """grad_out = the logits (the kernel overwrites each row after reading it)."""
    x, target, kw = ce_args(shape_name, np.float32, False, {"label_smoothing": 0.2})

    def call(w):
        y = x.copy()
        loss, g = xentc.cross_entropy_and_grad(y, target, grad_out=y, workers=w, **kw)
        assert g is y
        return loss, g
    over_workers(call)


@pytest.mark.parametrize("shape_name", ["long-rows", "short-rows", "medium-rows"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_workers_argument(shape_name, dtype):
    """nll_loss, log_loss and kl_div under OpenMP limits of 1, 2, 3, 8."""
    x, target, kw = ce_args(shape_name, dtype, False, {})
    axis = kw["axis"]
    logp = xentc.log_softmax(x, axis=axis)
    p = xentc.softmax(x, axis=axis)
    q = np.random.default_rng(3).random(x.shape).astype(dtype)
    q /= q.sum(axis=axis, keepdims=True)
    idx = np.where(target < 0, 0, target)

    def call(n):
        with threadpool_limits(limits=n, user_api="openmp"):
            return (xentc.nll_loss(logp, target, axis=axis),
                    xentc.log_loss(p, idx, axis=axis, reduction="none"),
                    xentc.kl_div(x, q, axis=axis, reduction="none"))
    results = [call(n) for n in WORKERS]
    assert same_bits(results)


def test_same_bits_can_fail():
    """The comparison sees a one-ulp difference, and NaN payloads alike."""
    a = np.array([1.0, np.nan])
    assert same_bits([a, a.copy()])
    assert not same_bits([a, np.array([np.nextafter(1.0, 2.0), np.nan])])
    assert not same_bits([(a, 1.0), (a, np.float64(np.nextafter(1.0, 2.0)))])


@pytest.mark.parametrize("shape_name", list(SHAPES))
def test_shapes_are_threaded(shape_name):
    """Every shape above is large enough to be split among threads (else
    the comparisons would hold trivially)."""
    from xentc._validation import thread_count
    shape, axis = SHAPES[shape_name]
    n = int(np.prod(shape))
    ncols = n if axis is None else shape[axis]
    ntasks = (n // ncols) * max(1, -(-ncols // CHUNK))
    assert thread_count(3, n, ntasks) == 3


@pytest.mark.parametrize("case", ["prob-masses", "index-smoothing-sample-weights"])
def test_long_rows_with_different_row_coefficients(case):
    """Long rows (chunked path) whose gradient coefficients differ a lot
    from row to row: a coefficient shared between OpenMP threads instead of
    private (a data race) shows as a wrong row. The race found in the
    chunked cross-entropy loop (wq and bc assigned only through pointers, so
    Cython did not make them thread-private) is hidden by gcc -O3 and shows
    in the -O1 sanitizer build (tools/asan_test.sh): 10^4 relative error."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, CHUNK + 4465))
    if case == "prob-masses":
        q = rng.random(x.shape)
        q *= (10.0 ** np.arange(8) / q.sum(axis=1))[:, None]   # row sums 1 ... 1e7
        args, kw = (x, q), {"reduction": "sum"}
    else:
        args = (x, rng.integers(0, x.shape[1], 8))
        kw = {"label_smoothing": 0.3, "sample_weight": 10.0 ** np.arange(8),
              "reduction": "sum"}
    want = xentc.cross_entropy_and_grad(*args, workers=1, **kw)
    for _ in range(10):
        assert same_bits([want, xentc.cross_entropy_and_grad(*args, workers=8, **kw)])


@pytest.mark.parametrize("level", _dispatch.available_levels())
@pytest.mark.parametrize("options", list(CE_OPTIONS), ids=list(CE_OPTIONS))
@pytest.mark.parametrize("prob", [False, True], ids=["index", "prob"])
def test_grad_kept_exps_match_two_exp_route(level, options, prob):
    """Rows in cache keep the reduction's exps in grad_out and rescale them;
    in place (grad_out = logits) they cannot, and take exp a second time.
    Both must give the same bits, on every kernel level."""
    x, target, kw = ce_args("medium-rows", np.float32, True, CE_OPTIONS[options], prob)
    before = _core.active_kernels()
    assert _core.select_kernels(level)
    try:
        loss_a, g_a = xentc.cross_entropy_and_grad(x, target, reduction="sum", **kw)
        y = x.copy()
        loss_b, g_b = xentc.cross_entropy_and_grad(y, target, reduction="sum", grad_out=y,
                                                   **kw)
    finally:
        assert _core.select_kernels(before)
    assert same_bits([(loss_a, g_a), (loss_b, g_b)])


# Lane mode's rows (2 to 34 classes, as far as each level takes it): the
# array's last nrows mod W rows, and every row of an array of fewer than W,
# go as a whole group padded with zero rows (algo/row_groups.h,
# XT_K(lane_pad)), so a row has the same bits alone, in a piece of 7 rows
# and inside the array, on every kernel level; with ignored targets, class
# weights and smoothing, and the gradient in place.
@pytest.mark.parametrize("level", _dispatch.available_levels())
@pytest.mark.parametrize("C", [2, 3, 4, 9, 12, 17, 20, 21, 24, 31, 34])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lane_rows_have_the_same_bits_alone_and_in_an_array(level, C, dtype):
    n = 53
    x = make((n, C), dtype, special=False, seed=C)
    y = np.arange(n) % C
    y[5::11] = -100
    w = np.linspace(0.5, 2.0, C)

    def grad_in_place(a, t):
        g = a.copy()
        return xentc.cross_entropy_and_grad(g, t, reduction="sum", grad_out=g)[1]

    funcs = {
        "logsumexp": lambda a, t: xentc.logsumexp(a, axis=1),
        "softmax": lambda a, t: xentc.softmax(a, axis=1),
        "log_softmax": lambda a, t: xentc.log_softmax(a, axis=1),
        "cross_entropy": lambda a, t: xentc.cross_entropy(a, t, reduction="none"),
        "options": lambda a, t: xentc.cross_entropy(a, t, reduction="none", weight=w,
                                                    label_smoothing=0.1),
        "grad": lambda a, t: xentc.cross_entropy_and_grad(a, t, reduction="sum",
                                                          label_smoothing=0.1)[1],
        "grad_in_place": grad_in_place,
    }
    before = _core.active_kernels()
    assert _core.select_kernels(level)
    try:
        for name, f in funcs.items():
            whole = f(x, y)
            for start, size in [(0, 7), (7, 7), (49, 4), (50, 1), (16, 16), (37, 16)]:
                part = f(x[start:start + size], y[start:start + size])
                assert part.tobytes() == whole[start:start + size].tobytes(), (name, start)
    finally:
        assert _core.select_kernels(before)


# Row mode's rows whose last C mod W classes a whole group takes as columns
# (algo/row_groups.h): rows in a partial group (the array's last rows, or a
# short array) must give the same bits as in a whole group. The widths
# leave 1-7 columns past whole float32 vectors on AVX2 (W = 8) and on
# AVX-512 (W = 16) alike.
@pytest.mark.parametrize("C", [35, 50, 100, 300, 1001])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows_of_a_partial_group_are_those_of_a_whole_one(C, dtype):
    x = make((53, C), dtype, special=False, seed=C)
    y = np.arange(53) % C
    funcs = {
        "logsumexp": lambda a, t: xentc.logsumexp(a, axis=1),
        "softmax": lambda a, t: xentc.softmax(a, axis=1),
        "log_softmax": lambda a, t: xentc.log_softmax(a, axis=1),
        "cross_entropy": lambda a, t: xentc.cross_entropy(a, t, reduction="none"),
        "grad": lambda a, t: xentc.cross_entropy_and_grad(a, t, reduction="sum")[1],
    }
    for name, f in funcs.items():
        whole = f(x, y)
        for start in range(0, 53, 7):   # groups of 7 rows: none whole
            part = f(x[start:start + 7], y[start:start + 7])
            assert part.tobytes() == whole[start:start + 7].tobytes(), (name, start)
