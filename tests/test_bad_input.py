"""
Bad input gives a clear exception: the right type, and a message that names
the argument and says what was expected. Also the reliability bugs found by
the fuzzers (tests/test_fuzz.py, tools/fuzz.py), each with its minimal
reproducer, and allocation failure (MemoryError, not a crash).
"""
import os
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from numpy.exceptions import AxisError

import xentc

X = np.zeros((3, 4))
Y = np.array([0, 1, 2])
P = np.full((3, 4), 0.25)


def case(id, call, exc, *patterns, xfail=None):
    """A bad call, the exception type expected and regexes its message must
    match (the argument's name, what was expected, what was given)."""
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(call, exc, patterns, id=id, marks=marks)


LSE_CASES = [
    case("a-object", lambda: xentc.logsumexp(np.array([1.0], dtype=object)), TypeError,
         r"logsumexp", r"\ba\b", r"numeric", r"object"),
    case("a-str", lambda: xentc.logsumexp(np.array(["1"])), TypeError, r"\ba\b", r"numeric"),
    case("b-str", lambda: xentc.logsumexp(X, b=np.array(["1"])), TypeError, r"\bb\b", r"numeric"),
    case("b-shape", lambda: xentc.logsumexp(X, b=np.ones(3)), ValueError,
         r"\(3, 4\)", r"\(3,\)", r"\bb\b"),
    case("axis-out-of-range", lambda: xentc.logsumexp(X, axis=2), AxisError,
         r"axis", r"\b2\b", r"dimension 2"),
    case("axis-repeated", lambda: xentc.logsumexp(X, axis=(0, 0)), ValueError,
         r"repeated axis"),
    case("axis-list", lambda: xentc.logsumexp(X, axis=[0]), TypeError, r"axis"),
    case("axis-float", lambda: xentc.logsumexp(X, axis=1.0), TypeError, r"axis"),
    case("axis-bool", lambda: xentc.logsumexp(X, axis=True), TypeError, r"axis", r"bool"),
    case("workers-0", lambda: xentc.logsumexp(X, workers=0), ValueError, r"workers", r"\b0\b"),
    case("workers-too-negative", lambda: xentc.logsumexp(X, workers=-1000), ValueError,
         r"workers", r"-1000"),
    case("workers-float", lambda: xentc.logsumexp(X, workers=1.5), TypeError,
         r"workers", r"int", r"float"),
    case("workers-bool", lambda: xentc.logsumexp(X, workers=True), TypeError,
         r"workers", r"bool"),
]

SOFTMAX_CASES = [
    case("bool", lambda: xentc.softmax(np.ones(3, bool)), TypeError, r"softmax", r"boolean"),
    case("object", lambda: xentc.log_softmax(np.ones(3, object)), TypeError,
         r"log_softmax", r"\bx\b", r"numeric"),
    case("zero-size-axis", lambda: xentc.softmax(np.zeros((0, 3)), axis=0), ValueError,
         r"zero-size axis", r"\(0, 3\)"),
    case("axis-out-of-range", lambda: xentc.log_softmax(X, axis=-3), AxisError, r"axis"),
    case("axis-bool", lambda: xentc.softmax(X, axis=False), TypeError, r"axis", r"bool"),
    case("out-shape", lambda: xentc.softmax(X, out=np.zeros(3)), ValueError,
         r"\bout\b", r"shape \(3,\)", r"expected \(3, 4\)"),
    case("out-dtype", lambda: xentc.softmax(X, out=np.zeros((3, 4), np.float32)), ValueError,
         r"\bout\b", r"float32", r"expected float64"),
    case("out-readonly", lambda: xentc.log_softmax(X, out=np.broadcast_to(0.0, (3, 4))),
         ValueError, r"\bout\b", r"read-only"),
    case("out-list", lambda: xentc.softmax(X, out=[[0.0] * 4] * 3), TypeError,
         r"\bout\b", r"ndarray", r"list"),
    case("workers-0", lambda: xentc.softmax(X, workers=0), ValueError, r"workers"),
]


def ce(**kw):
    return lambda: xentc.cross_entropy(kw.pop("logits", X), kw.pop("target", Y), **kw)


CE_CASES = [
    case("logits-bool", ce(logits=np.ones((3, 4), bool)), TypeError, r"logits", r"bool"),
    case("logits-complex", ce(logits=np.ones((3, 4), complex)), TypeError,
         r"logits", r"real", r"complex"),
    case("logits-str", ce(logits=np.array([["a"]]), target=np.array([0])), TypeError,
         r"logits", r"numeric"),
    case("logits-0d", ce(logits=np.float64(1.0), target=np.array(0)), ValueError,
         r"logits", r"class axis", r"0-d"),
    case("no-classes", ce(logits=np.zeros((3, 0))), ValueError, r"logits", r"no classes"),
    case("axis-out-of-range", ce(axis=2), AxisError,
         r"^cross_entropy: axis 2 is out of bounds", r"dimension 2"),
    case("torch-layout-without-axis-1",
         ce(logits=np.zeros((2, 5, 7)), target=np.zeros((2, 7), np.int64)), ValueError,
         r"shape \(2, 5\)", r"got \(2, 7\)", r"PyTorch's \(N, C, d1, \.\.\.\) layout",
         r"pass axis=1"),
    case("axis-tuple", ce(axis=(1,)), TypeError, r"axis", r"int", r"tuple"),
    case("target-out-of-range", ce(target=np.array([0, 4, 1])), IndexError,
         r"Target 4 is out of bounds", r"position \(1,\)", r"\[0, 4\)", r"ignore_index=-100"),
    case("target-negative", ce(target=np.array([0, -1, 1])), IndexError,
         r"Target -1", r"position \(1,\)"),
    case("target-uint64-huge", ce(target=np.array([0, 2**64 - 1, 1], np.uint64)), IndexError,
         r"Target 18446744073709551615", r"position \(1,\)"),
    case("target-shape", ce(target=np.array([0, 1])), ValueError,
         r"target", r"shape \(3,\)", r"got \(2,\)"),
    case("target-float-shape", ce(target=np.array([0.0, 1.0, 2.0])), ValueError,
         r"floating target", r"probabilities", r"\(3, 4\)", r"integer"),
    case("target-bool", ce(target=np.array([True, False, True])), TypeError,
         r"target", r"integer class indices or floating probabilities", r"bool"),
    case("target-object", ce(target=np.array([0, 1, 2], dtype=object)), TypeError,
         r"target", r"numeric", r"object"),
    case("weight-length", ce(weight=np.ones(3)), ValueError,
         r"weight", r"\(4,\)", r"got \(3,\)"),
    case("weight-neg-inf", ce(weight=np.array([1, -np.inf, 1, 1.0])), ValueError,
         r"weight\[1\]", r"-inf", r"must be finite"),
    case("weight-nan", ce(weight=np.array([1, np.nan, 1, 1.0])), ValueError,
         r"weight\[1\]", r"nan", r"finite"),
    case("weight-str", ce(weight=np.array(["1"] * 4)), TypeError, r"weight", r"numeric"),
    case("sample_weight-shape", ce(sample_weight=np.ones(4)), ValueError,
         r"sample_weight", r"\(3,\)", r"got \(4,\)"),
    case("sample_weight-nan", ce(sample_weight=np.array([1, np.nan, 1.0])), ValueError,
         r"sample_weight\[1\]", r"nan", r"must be finite"),
    case("sample_weight-inf", ce(sample_weight=np.array([1, np.inf, 1.0])), ValueError,
         r"sample_weight", r"inf", r"finite"),
    case("ignore_index-huge", ce(ignore_index=2**70), ValueError, r"ignore_index", r"int64"),
    case("ignore_index-float", ce(ignore_index=1.5), TypeError, r"ignore_index"),
    case("ignore_index-prob-target", ce(target=P, ignore_index=0), ValueError,
         r"ignore_index=0", r"probability targets"),
    case("reduction", ce(reduction="batchmean"), ValueError,
         r"reduction", r"'none', 'mean', 'sum'", r"batchmean"),
    case("label_smoothing-range", ce(label_smoothing=1.5), ValueError,
         r"label_smoothing", r"\[0, 1\]", r"1\.5"),
    case("label_smoothing-nan", ce(label_smoothing=float("nan")), ValueError,
         r"label_smoothing", r"nan"),
    case("label_smoothing-str", ce(label_smoothing="x"), (TypeError, ValueError),
         r"label_smoothing"),
    case("z_loss-negative", ce(z_loss=-1.0), ValueError, r"z_loss", r">= 0", r"-1\.0"),
    case("z_loss-nan", ce(z_loss=float("nan")), ValueError, r"z_loss", r"finite"),
    case("softcap-0", ce(softcap=0.0), ValueError, r"softcap", r"> 0"),
    case("softcap-inf", ce(softcap=float("inf")), ValueError, r"softcap", r"finite"),
    case("workers-0", ce(workers=0), ValueError, r"workers"),
]


def ceg(grad_out):
    return lambda: xentc.cross_entropy_and_grad(X, Y, grad_out=grad_out)


CE_GRAD_CASES = [
    case("grad_out-shape", ceg(np.zeros(3)), ValueError,
         r"grad_out", r"\(3,\)", r"\(3, 4\)"),
    case("grad_out-dtype", ceg(np.zeros((3, 4), np.float32)), ValueError,
         r"grad_out", r"float32", r"float64"),
    case("grad_out-readonly", ceg(np.broadcast_to(0.0, (3, 4))), ValueError,
         r"grad_out", r"read-only"),
    case("grad_out-list", ceg([0.0]), TypeError, r"grad_out", r"ndarray", r"list"),
    case("target-out-of-range", lambda: xentc.cross_entropy_and_grad(X, np.array([9, 0, 0])),
         IndexError, r"cross_entropy_and_grad", r"Target 9"),
]

OTHER_CASES = [
    case("nll-float-target", lambda: xentc.nll_loss(X, P), TypeError,
         r"nll_loss", r"target", r"integer class indices"),
    case("nll-target-out-of-range", lambda: xentc.nll_loss(X, np.array([0, 9, 1])),
         IndexError, r"nll_loss", r"Target 9", r"position \(1,\)"),
    case("nll-weight-length", lambda: xentc.nll_loss(X, Y, weight=np.ones(5)), ValueError,
         r"nll_loss", r"weight", r"\(4,\)"),
    case("nll-reduction", lambda: xentc.nll_loss(X, Y, reduction=None), ValueError,
         r"reduction", r"None"),
    case("log_loss-probs-above-1", lambda: xentc.log_loss(np.array([[0.5, 1.5]]), [0]),
         ValueError, r"log_loss", r"probs\[0, 1\]", r"1\.5", r"\[0, 1\]"),
    case("log_loss-probs-nan", lambda: xentc.log_loss(np.array([[0.5, np.nan]]), [0]),
         ValueError, r"probs\[0, 1\]", r"nan"),
    case("log_loss-eps", lambda: xentc.log_loss(np.array([[0.5, 0.5]]), [0], eps=0.7),
         ValueError, r"eps", r"\[0, 0\.5\)", r"0\.7"),
    case("log_loss-eps-str", lambda: xentc.log_loss(np.array([[0.5, 0.5]]), [0], eps="tiny"),
         (TypeError, ValueError), r"eps"),
    case("log_loss-target-out-of-range",
         lambda: xentc.log_loss(np.array([[0.5, 0.5]]), np.array([2])),
         IndexError, r"log_loss", r"Target 2", r"\[0, 2\)"),
    case("log_loss-target-minus-100",
         lambda: xentc.log_loss(np.array([[0.5, 0.5]]), np.array([-100])),
         IndexError, r"log_loss", r"Target -100", r"\[0, 2\)"),
    case("log_loss-sample_weight",
         lambda: xentc.log_loss(np.array([[0.5, 0.5]]), [0], sample_weight=[1, 2]),
         ValueError, r"sample_weight", r"\(1,\)", r"\(2,\)"),
    case("kl_div-target-shape", lambda: xentc.kl_div(X, np.ones((3, 3))), ValueError,
         r"kl_div", r"\(3, 4\)", r"\(3, 3\)"),
    case("kl_div-target-bool", lambda: xentc.kl_div(X, np.ones((3, 4), bool)), TypeError,
         r"kl_div", r"target_probs", r"bool"),
    case("kl_div-reduction", lambda: xentc.kl_div(X, P, reduction="batchmean"), ValueError,
         r"reduction", r"batchmean"),
]


@pytest.mark.parametrize("call, exc, patterns",
                         LSE_CASES + SOFTMAX_CASES + CE_CASES + CE_GRAD_CASES + OTHER_CASES)
def test_clear_error(call, exc, patterns):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    for pattern in patterns:
        assert re.search(pattern, message), (
            f"message {message!r} lacks {pattern!r}")


def test_messages_show_plain_values():
    """Values in messages read as the user wrote them, not as NumPy reprs
    (np.int64(1), np.float64(-1.0))."""
    with pytest.raises(ValueError) as info:
        xentc.cross_entropy(X, Y, sample_weight=np.array([1, -np.inf, 1.0]))
    assert "np." not in str(info.value), str(info.value)
    assert "sample_weight[1] = -inf" in str(info.value), str(info.value)


def test_log_loss_message_has_no_ignore_index():
    """log_loss takes no ignore_index: its message must not mention one."""
    with pytest.raises(IndexError) as info:
        xentc.log_loss(np.array([[0.5, 0.5]]), np.array([2]))
    assert "ignore_index" not in str(info.value), str(info.value)


# ------------------------------------------------------------ found bugs
def test_grad_out_may_alias_the_probability_target():
    """grad_out=target (allowed: same shape and dtype) must give the same
    gradient as a fresh array: the kernel must not read targets it has
    already overwritten."""
    rng = np.random.default_rng(0)
    for c in (5, 40, 70000):
        x = rng.standard_normal((3, c))
        q = rng.random((3, c))
        q /= q.sum(axis=1, keepdims=True)
        _, want = xentc.cross_entropy_and_grad(x, q.copy())
        q2 = q.copy()
        _, got = xentc.cross_entropy_and_grad(x, q2, grad_out=q2)
        assert got is q2
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15, err_msg=f"C={c}")


def test_grad_out_partly_overlapping_the_target():
    x = np.random.default_rng(1).standard_normal((4, 6))
    buf = np.full(25, 1 / 6)
    q, g = buf[:24].reshape(4, 6), buf[1:].reshape(4, 6)
    _, want = xentc.cross_entropy_and_grad(x, q.copy())
    _, got = xentc.cross_entropy_and_grad(x, q, grad_out=g)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_infinite_weights_b():
    """b = inf on two elements of a slice: scipy's +inf, not inf/inf = NaN."""
    assert xentc.logsumexp([0.0, -1.0], b=np.inf) == np.inf
    res, sign = xentc.logsumexp([0.0, 0.0], b=-np.inf, return_sign=True)
    assert (res, sign) == (np.inf, -1.0)


@pytest.mark.parametrize("func", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [0, -1])
def test_0d_input_with_axis_0(func, axis):
    """scipy (NumPy's max) takes axis 0 or -1 for a 0-d array."""
    got = getattr(xentc, func)(np.array(3.0), axis=axis)
    assert got == (1.0 if func == "softmax" else 0.0)


@pytest.mark.parametrize("func", ["softmax", "log_softmax"])
def test_0d_input_with_a_tuple_axis(func):
    """...but not axis=(0,): scipy raises AxisError there."""
    with pytest.raises(AxisError):
        getattr(xentc, func)(np.array(3.0), axis=(0,))


def test_label_smoothing_1_with_a_minus_inf_logit():
    """Probability targets, smoothing 1: the target term is gone, the
    uniform term is +inf (torch: inf), not 0 * -inf = NaN."""
    x = np.array([[-2.5, -np.inf, -1.7]])
    q = np.array([[0.3, 0.3, 0.4]])
    assert xentc.cross_entropy(x, q, label_smoothing=1.0) == np.inf


def test_float32_gradient_scale_beyond_float32_range():
    """float32 logits whose gradient coefficient exceeds FLT_MAX (huge class
    weights with reduction='sum', or z-loss on huge logits): entries whose
    softmax underflows are ~0, not 0 * inf = NaN."""
    x = np.array([[0.0, -200.0]], np.float32)
    _, g32 = xentc.cross_entropy_and_grad(x, np.array([0]), weight=[1e39, 1.0],
                                          reduction="sum")
    assert not np.isnan(g32).any(), g32
    _, g64 = xentc.cross_entropy_and_grad(x.astype(np.float64), np.array([0]),
                                          weight=[1e39, 1.0], reduction="sum")
    np.testing.assert_allclose(g32, g64.astype(np.float32), atol=1e-30)


def _python(code, timeout=300, env=None):
    """Run code in a fresh interpreter: (exit status, stdout + stderr)."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=env)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("func", ["logsumexp", "softmax", "cross_entropy"])
def test_huge_workers_do_not_crash(func):
    """workers=100000 on an input big enough to be threaded: OpenMP cannot
    start that many threads (libgomp aborts the process, or it segfaults).
    Expected: the thread count is capped (results do not depend on it) or a
    clean error."""
    code = f"""
        import numpy as np, xentc
        x = np.zeros((200000, 40), np.float32)
        try:
            if "{func}" == "cross_entropy":
                r = xentc.cross_entropy(x, np.zeros(200000, np.int64), workers=100000)
            else:
                r = xentc.{func}(x, axis=1, workers=100000)
            print("RESULT OK")
        except (ValueError, RuntimeError, MemoryError) as e:
            print("CLEAN", type(e).__name__, e)
    """
    status, out = _python(code)
    assert status == 0 and ("RESULT OK" in out or "CLEAN" in out), (status, out[-2000:])


# ------------------------------------------------------ allocation failure
@pytest.mark.parametrize("call", [
    lambda big: xentc.logsumexp(big),
    lambda big: xentc.softmax(big),
    lambda big: xentc.log_softmax(big),
    lambda big: xentc.logsumexp(np.float32(0), b=big),
    lambda big: xentc.logsumexp(big.reshape(2**20, 2**20), axis=0),
    lambda big: xentc.cross_entropy(big.reshape(2**20, 2**20), np.zeros(2**20, np.int64)),
    lambda big: xentc.cross_entropy_and_grad(big.reshape(2**20, 2**20),
                                             np.zeros(2**20, np.int64)),
    lambda big: xentc.kl_div(big.reshape(2**20, 2**20), big.reshape(2**20, 2**20)),
], ids=["logsumexp", "softmax", "log_softmax", "logsumexp-b", "logsumexp-axis0",
        "cross_entropy", "cross_entropy_and_grad", "kl_div"])
def test_allocation_failure_is_memory_error(call):
    """A broadcast (0-stride) input whose contiguous copy needs 4 TiB."""
    big = np.broadcast_to(np.float32(1), (2**40,))
    with pytest.raises(MemoryError):
        call(big)


def test_private_hooks_check_their_buffers():
    """The _core hooks are documented test hooks; a wrong output length must
    not write past the buffer (checked in a child process: a heap overflow
    may crash only later)."""
    code = """
        import numpy as np
        from xentc import _core
        errors = 0
        for call in (lambda: _core.lse_rows(np.zeros((1000, 100)), np.empty(1), 1),
                     lambda: _core.partial_rows(np.zeros((100, 5)), np.empty((2, 4)), 1),
                     lambda: _core.exp_nonpositive(np.zeros(1000), np.empty(3)),
                     lambda: _core.finalize_partials(np.zeros((100, 4)), np.empty(1))):
            try:
                call()
            except (ValueError, IndexError):
                errors += 1
        print("ERRORS", errors)
    """
    status, out = _python(code)
    assert status == 0 and "ERRORS 4" in out, (status, out[-2000:])


# ------------------------------------------------------------ huge inputs
# More than 2**31 elements: every index computation must be 64-bit. Run with
# XENTC_BIG_TESTS=1. The inputs are np.zeros arrays, whose untouched pages
# are the kernel's shared zero page: reading 8.6 GB of them costs no memory
# (the few elements set below touch one page each). The tests that write a
# full-size result need that much free memory and check for it first.
BIG = pytest.mark.skipif(os.environ.get("XENTC_BIG_TESTS") != "1",
                         reason="set XENTC_BIG_TESTS=1 (inputs of 2**31+ elements)")
N31 = 2**31 + 17


def _available_bytes():
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _need(nbytes):
    if _available_bytes() < nbytes + (2 << 30):
        pytest.skip(f"needs {nbytes / 2**30:.1f} GiB of free memory (+2 GiB margin)")


@BIG
@pytest.mark.parametrize("workers", [1, 2])
def test_big_logsumexp_one_long_row(workers):
    """One row of 2**31 + 17 float32 (8.6 GB): the maximum is the last
    element, beyond index 2**31."""
    x = np.zeros(N31, np.float32)
    x[-1] = 5.0
    x[2**31 + 3] = -1.0
    want = 5.0 + np.log1p(((N31 - 2) + np.exp(-1.0)) * np.exp(-5.0))
    got = xentc.logsumexp(x, workers=workers)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-7)


@BIG
def test_big_logsumexp_many_short_rows():
    """2**27 + 3 rows of 16 (8.6 GB): row offsets beyond 2**31 elements in
    the short-row kernel."""
    n = 2**27 + 3
    x = np.zeros((n, 16), np.float32)
    x[-1, 7] = 3.0
    _need(n * 4)
    out = xentc.logsumexp(x, axis=1, workers=2)
    assert out.shape == (n,)
    np.testing.assert_allclose(out[-1], np.log(15 + np.exp(3.0)), rtol=2e-7)
    assert np.all(out[:-1] == np.float32(np.log(16.0)))


@BIG
def test_big_cross_entropy_long_rows():
    """2 rows of 2**30 + 9 classes: targets and their logits at offsets
    beyond 2**31 elements; loss, nll_loss and log_loss pick them."""
    c = 2**30 + 9
    x = np.zeros((2, c), np.float32)
    x[1, c - 4] = 2.0
    y = np.array([3, c - 4])
    loss = xentc.cross_entropy(x, y, reduction="none", workers=2)
    want = [np.log(c), np.log(c - 1 + np.exp(2.0)) - 2.0]
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    np.testing.assert_array_equal(xentc.nll_loss(x, y, reduction="none"), [0.0, -2.0])


@BIG
def test_big_cross_entropy_many_short_rows():
    n = 2**27 + 3
    x = np.zeros((n, 16), np.float32)
    x[-1, 5] = 1.0
    _need(n * (8 + 8 + 8))  # targets, per-sample losses, float64 row weights
    y = np.full(n, 5, np.int64)
    y[0] = -100
    loss = xentc.cross_entropy(x, y, reduction="sum", workers=2)
    want = (n - 2) * np.log(16.0) + (np.log(15 + np.e) - 1.0)
    np.testing.assert_allclose(loss, want, rtol=1e-6)


@BIG
def test_big_softmax_in_place():
    """Writes all 8.6 GB (needs the memory)."""
    _need(N31 * 4)
    x = np.zeros(N31, np.float32)
    x[-1] = np.log(2.0)
    xentc.softmax(x, out=x, workers=2)
    total = N31 + 1.0  # N31 - 1 ones and one 2
    np.testing.assert_allclose(x[[0, 2**31 + 1, -1]], [1 / total, 1 / total, 2 / total],
                               rtol=2e-6)


@BIG
def test_big_gradient_in_place():
    _need(2 * (2**30 + 9) * 4)
    c = 2**30 + 9
    x = np.zeros((2, c), np.float32)
    y = np.array([0, c - 1])
    loss, g = xentc.cross_entropy_and_grad(x, y, grad_out=x, reduction="sum", workers=2)
    assert g is x
    np.testing.assert_allclose(loss, 2 * np.log(c), rtol=1e-6)
    np.testing.assert_allclose(g[1, [0, c - 2, c - 1]], [1 / c, 1 / c, 1 / c - 1], rtol=1e-5)


# ------------------------------------------------- partials (xentc 0.1 API)
def test_partial_of_no_classes_with_smoothing():
    """An empty class shard is allowed ('its class axis may have length 0');
    with every sample ignored the losses are 0, not a ZeroDivisionError."""
    p = xentc.cross_entropy_partial(np.zeros((2, 0)), np.array([-100, -100]),
                                    label_smoothing=0.1)
    np.testing.assert_array_equal(p.finalize("none"), [0.0, 0.0])


def test_partial_label_smoothing_1_with_a_minus_inf_logit():
    x, y = np.array([[-np.inf, 0.0, 1.0]]), np.array([0])
    want = xentc.cross_entropy(x, y, label_smoothing=1.0, reduction="none")
    got = xentc.cross_entropy_partial(x, y, label_smoothing=1.0).finalize("none")
    np.testing.assert_array_equal(got, want)


def test_partial_ignore_index_beyond_int64():
    with pytest.raises(ValueError, match="ignore_index"):
        xentc.cross_entropy_partial(np.zeros((1, 3)), np.array([0]), ignore_index=2**70)


def test_partial_softmax_of_special_rows_is_silent():
    p = xentc.LSEPartial.from_array(np.array([[np.inf, np.inf, -np.inf, 2.0]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = p.softmax(np.zeros((1, 3)))
    assert np.isnan(out).all()


# ------------------------------------------------------- alignment (UB)
def _unaligned(shape, dtype, value=None):
    """An array whose data sit one byte off their natural alignment."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape)) * dtype.itemsize
    arr = np.zeros(n + 1, np.uint8)[1:].view(dtype).reshape(shape)
    arr[...] = np.random.default_rng(0).standard_normal(shape) if value is None else value
    assert not arr.flags.aligned
    return arr


KERNELS = ["lse_rows", "softmax_rows", "lse_weighted_rows", "ce_rows", "gather_rows",
           "prepare_index_targets", "partial_rows"]


def test_kernels_get_aligned_buffers(monkeypatch):
    """Every array the Python layer hands to the C kernels is aligned: C may
    assume it (a misaligned double* is undefined behaviour; UBSan reports
    it, and vectorised code may fault on other platforms). Unaligned user
    arrays must be copied, unaligned out=/grad_out= written through a buffer."""
    from xentc import _core
    seen = []

    def wrap(name):
        real = getattr(_core, name)

        def checked(*args):
            for a in args:
                if isinstance(a, np.ndarray):
                    seen.append((name, a.flags.aligned))
            return real(*args)
        return checked

    for name in KERNELS:
        monkeypatch.setattr(_core, name, wrap(name))
    for dtype in (np.float32, np.float64):
        x = _unaligned((50, 7), dtype)
        xentc.logsumexp(x, axis=1)
        xentc.logsumexp(x, axis=1, b=_unaligned((50, 7), np.float64, 0.5))
        xentc.softmax(x, axis=1)
        xentc.log_softmax(np.ones((50, 7), dtype), axis=1, out=_unaligned((50, 7), dtype))
        y = _unaligned((50,), np.int64, 3)
        xentc.cross_entropy(x, y)
        xentc.cross_entropy(x, _unaligned((50, 7), dtype, 1 / 7))
        xentc.cross_entropy_and_grad(np.ones((50, 7), dtype), y,
                                     grad_out=_unaligned((50, 7), dtype))
        xentc.nll_loss(x, y)
        xentc.lse_partial(x)
    assert seen and all(aligned for _, aligned in seen), sorted(
        {name for name, aligned in seen if not aligned})
