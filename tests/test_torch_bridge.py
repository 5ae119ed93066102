"""xentc.torch: the autograd bridge against torch's own functions.

Skipped without torch (an optional extra); the check that `import xentc`
does not import torch runs everywhere.
"""
import subprocess
import sys

import numpy as np
import pytest


def test_import_xentc_does_not_import_torch():
    code = "import sys, xentc; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


torch = pytest.importorskip("torch")
F = torch.nn.functional
import xentc.torch as xt  # noqa: E402


def _case(shape, dtype, seed=0, ignore=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g, dtype=dtype) * 2
    c = shape[1] if len(shape) > 1 else shape[0]
    tshape = (shape[0],) + tuple(shape[2:]) if len(shape) > 1 else ()
    y = torch.randint(0, c, tshape, generator=g)
    if ignore and y.numel() > 1:
        y.view(-1)[::3] = -100
    w = torch.rand(c, generator=g, dtype=dtype) * 2 - 0.5   # signed, as torch allows
    q = torch.softmax(torch.randn(*shape, generator=g, dtype=dtype), dim=1 if len(shape) > 1 else 0)
    return x, y, w, q


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10,
                                                                          atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("shape", [(7, 5), (4, 6, 3), (3, 4, 2, 2), (6,)], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", [
    {}, {"weight": True}, {"label_smoothing": 0.2}, {"weight": True, "label_smoothing": 0.7},
    {"ignore_index": 1}, {"prob": True}, {"prob": True, "weight": True, "label_smoothing": 0.1},
], ids=lambda o: "-".join(o) or "plain")
def test_matches_torch_loss_and_gradient(dtype, shape, reduction, options):
    x, y, w, q = _case(shape, dtype)
    kw = dict(reduction=reduction, label_smoothing=options.get("label_smoothing", 0.0))
    if options.get("weight"):
        kw["weight"] = w
    if "ignore_index" in options:
        kw["ignore_index"] = options["ignore_index"]
        y = torch.where(y == -100, options["ignore_index"], y)  # a class, ignored
    target = q if options.get("prob") else y
    got_x = x.clone().requires_grad_(True)
    want_x = x.clone().requires_grad_(True)
    got = xt.cross_entropy(got_x, target, **kw)
    want = F.cross_entropy(want_x, target, **kw)
    assert got.dtype == want.dtype and got.shape == want.shape
    torch.testing.assert_close(got, want, equal_nan=True, **_tol(dtype))
    # a non-trivial grad_output (per sample for 'none')
    g_out = torch.linspace(0.5, 2.0, max(want.numel(), 1), dtype=dtype).reshape(want.shape)
    got.backward(g_out)
    want.backward(g_out)
    torch.testing.assert_close(got_x.grad, want_x.grad, equal_nan=True, **_tol(dtype))


@pytest.mark.parametrize("fn", ["cross_entropy", "cross_entropy_options", "log_softmax",
                                "softmax", "logsumexp", "logsumexp_dims"])
def test_gradcheck_float64(fn):
    x, y, w, _ = _case((5, 4, 3), torch.float64, seed=3)
    x.requires_grad_(True)
    f = {
        "cross_entropy": lambda x: xt.cross_entropy(x, y, weight=w, label_smoothing=0.1),
        "cross_entropy_options": lambda x: xt.cross_entropy(x, y, reduction="none",
                                                            z_loss=0.05, softcap=3.0),
        "log_softmax": lambda x: xt.log_softmax(x, 1),
        "softmax": lambda x: xt.softmax(x, -1),
        "logsumexp": lambda x: xt.logsumexp(x, 1),
        "logsumexp_dims": lambda x: xt.logsumexp(x, (0, 2), keepdim=True),
    }[fn]
    assert torch.autograd.gradcheck(f, (x,))
    if fn != "cross_entropy_options":  # (z_loss/softcap: once differentiable, below)
        assert torch.autograd.gradgradcheck(f, (x,))


def test_backward_twice_through_one_graph():
    """retain_graph: the first backward hands its buffer to autograd, the
    second computes the gradient again; both accumulate correctly."""
    x, y, w, _ = _case((5, 4), torch.float64)
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours, theirs = xt.cross_entropy(a, y, weight=w), F.cross_entropy(b, y, weight=w)
    for _ in range(3):
        ours.backward(retain_graph=True)
        theirs.backward(retain_graph=True)
    torch.testing.assert_close(a.grad, b.grad)


def test_second_derivative_of_z_loss_is_refused_clearly():
    x, y, _, _ = _case((3, 4), torch.float64)
    x.requires_grad_(True)
    (g,) = torch.autograd.grad(xt.cross_entropy(x, y, z_loss=0.1), x, create_graph=False)
    with pytest.raises(NotImplementedError, match="z_loss and softcap cannot be differentiated twice"):
        torch.autograd.grad(xt.cross_entropy(x, y, z_loss=0.1), x, create_graph=True)


def test_forward_reads_the_tensors_memory_without_a_copy(monkeypatch):
    import xentc.torch as bridge

    seen = {}
    real = bridge._xentc_ce_and_grad

    def spy(x, t, **kw):
        seen["x"], seen["t"] = x, t
        loss, grad = real(x, t, **kw)
        seen["grad"] = grad
        return loss, grad

    monkeypatch.setattr(bridge, "_xentc_ce_and_grad", spy)
    x, y, _, _ = _case((8, 5), torch.float32)
    x.requires_grad_(True)
    loss = xt.cross_entropy(x, y)
    assert np.shares_memory(seen["x"], x.detach().numpy())
    assert np.shares_memory(seen["t"], y.numpy())
    loss.backward()
    # loss.backward() (grad_output 1): the kernel's gradient array itself
    assert np.shares_memory(seen["grad"], x.grad.numpy())


@pytest.mark.parametrize("case", ["weight_requires_grad", "negative_smoothing",
                                  "prob_target_requires_grad"])
def test_what_the_bridge_cannot_serve_goes_to_torch(case):
    x, y, w, q = _case((6, 5), torch.float32)
    kw, target = {}, y
    if case == "weight_requires_grad":
        kw["weight"] = w.clone().requires_grad_(True)
    elif case == "negative_smoothing":
        kw["label_smoothing"] = -0.1
    else:
        target = q.clone().requires_grad_(True)
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    if case == "weight_requires_grad":  # torch refuses it: so does the bridge
        for f in (xt.cross_entropy, F.cross_entropy):
            with pytest.raises(RuntimeError, match="not differentiable with respect to"):
                f(a, target, **kw)
        return
    got, want = xt.cross_entropy(a, target, **kw), F.cross_entropy(b, target, **kw)
    assert got.grad_fn is not None and "CrossEntropy" not in type(got.grad_fn).__name__ \
        or case in ("weight_requires_grad", "prob_target_requires_grad")
    torch.testing.assert_close(got, want)
    got.backward()
    want.backward()
    torch.testing.assert_close(a.grad, b.grad)


def test_fallback_with_xentc_only_options_says_why():
    x, y, _, _ = _case((6, 5), torch.float32)
    with pytest.raises(NotImplementedError, match="meta"):
        xt.cross_entropy(x.to("meta"), y.to("meta"), z_loss=1e-4)


@pytest.mark.filterwarnings("ignore:size_average and reduce args will be deprecated")
def test_deprecated_size_average_and_reduce_as_in_torch():
    x, y, _, _ = _case((6, 5), torch.float64)
    for size_average, reduce in [(False, None), (None, False), (True, True)]:
        torch.testing.assert_close(
            xt.cross_entropy(x, y, None, size_average, -100, reduce),
            F.cross_entropy(x, y, None, size_average, -100, reduce))


def test_cross_entropy_loss_module():
    x, y, w, _ = _case((4, 6, 3), torch.float32, seed=5)
    y = torch.where(y == -100, 2, y)
    ours = xt.CrossEntropyLoss(weight=w, ignore_index=2, label_smoothing=0.1)
    theirs = torch.nn.CrossEntropyLoss(weight=w, ignore_index=2, label_smoothing=0.1)
    assert isinstance(ours, torch.nn.CrossEntropyLoss) and torch.equal(ours.weight, w)
    torch.testing.assert_close(ours(x, y), theirs(x, y))
    z = xt.CrossEntropyLoss(z_loss=0.5)(x, y)
    assert z > xt.CrossEntropyLoss()(x, y)


@pytest.mark.parametrize("setup", ["weights_ignore_smoothing", "nc_d_input"])
def test_training_curve_matches_torch(setup):
    """50 SGD steps of a small MLP classifier on fixed data: the same losses
    and parameters with xentc.torch.cross_entropy as with F.cross_entropy."""
    g = torch.Generator().manual_seed(11)
    n, d, c = 64, 10, 7
    if setup == "nc_d_input":
        data = torch.randn(n, 3, d, generator=g)            # (N, d1, D) -> (N, C, d1)
        target = torch.randint(0, c, (n, 3), generator=g)
        target[::5, 1] = -100
        kw = {}
    else:
        data = torch.randn(n, d, generator=g)
        target = torch.randint(0, c, (n,), generator=g)
        target[::4] = -100
        kw = dict(weight=torch.rand(c, generator=g) + 0.5, label_smoothing=0.1)

    def train(loss_fn):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(d, 32), torch.nn.Tanh(),
                                    torch.nn.Linear(32, c))
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        losses = []
        for _ in range(50):
            opt.zero_grad()
            logits = model(data)
            if logits.dim() == 3:
                logits = logits.permute(0, 2, 1)             # (N, C, d1), not contiguous
            loss = loss_fn(logits, target, **kw)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return np.array(losses), [p.detach().clone() for p in model.parameters()]

    ours, ours_params = train(xt.cross_entropy)
    theirs, theirs_params = train(F.cross_entropy)
    assert ours[-1] < 0.9 * ours[0]  # it learned something
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    for a, b in zip(ours_params, theirs_params):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------
# float16 / bfloat16 tensors: xentc's 16-bit kernels, zero-copy
# --------------------------------------------------------------------------

def _ulps16(got, want64, dtype):
    """Largest distance in ulps of dtype between got and want64 rounded to
    dtype (NaN nowhere)."""
    w = want64.to(dtype)
    bits = lambda t: t.contiguous().view(torch.int16).to(torch.int32)  # noqa: E731
    order = lambda b: torch.where(b < 0, -(b & 0x7FFF), b)  # noqa: E731
    return int((order(bits(got)) - order(bits(w))).abs().max())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("options", [{}, {"weight": True, "label_smoothing": 0.1},
                                     {"prob": True}], ids=lambda o: "-".join(o) or "plain")
def test_16_bit_tensors_are_served_by_the_kernels(dtype, options, monkeypatch):
    pytest.importorskip("ml_dtypes")
    import xentc.torch as bridge
    x64, y, w64, q64 = _case((33, 37), torch.float64, ignore=False)
    x = x64.to(dtype)
    seen = {}
    real = bridge._xentc_ce_and_grad

    def spy(a, t, **kw):
        seen["x"] = a
        return real(a, t, **kw)

    monkeypatch.setattr(bridge, "_xentc_ce_and_grad", spy)
    kw = dict(label_smoothing=options.get("label_smoothing", 0.0))
    target = q64.to(dtype) if options.get("prob") else y
    if options.get("weight"):
        kw["weight"] = w64.to(dtype)
    a = x.clone().requires_grad_(True)
    loss = xt.cross_entropy(a, target, **kw)
    assert "CrossEntropy" in type(loss.grad_fn).__name__  # the bridge's, not torch's
    assert np.shares_memory(seen["x"].view(np.int16), a.detach().view(torch.int16).numpy())
    loss.backward()
    assert loss.dtype == dtype and a.grad.dtype == dtype
    # the float64 computation on the same 16-bit values, rounded: within 1 ulp
    r = x.to(torch.float64).requires_grad_(True)
    kw64 = dict(kw, weight=kw["weight"].to(torch.float64)) if "weight" in kw else kw
    want = F.cross_entropy(r, target.to(torch.float64) if options.get("prob") else target,
                           **kw64)
    want.backward()
    assert _ulps16(loss, want.detach(), dtype) <= 1
    assert _ulps16(a.grad, r.grad, dtype) <= 1
    # and torch's own 16-bit function agrees to its precision
    b = x.clone().requires_grad_(True)
    ref = F.cross_entropy(b, target, **kw)
    ref.backward()
    torch.testing.assert_close(loss, ref, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(a.grad, b.grad, rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_16_bit_logsumexp_and_softmax(dtype):
    pytest.importorskip("ml_dtypes")
    x64 = torch.randn(5, 300, generator=torch.Generator().manual_seed(3),
                      dtype=torch.float64) * 3
    x = x64.to(dtype)
    xr = x.to(torch.float64)
    for got, want in [(xt.logsumexp(x, 1), torch.logsumexp(xr, 1)),
                      (xt.softmax(x, 1), torch.softmax(xr, 1)),
                      (xt.log_softmax(x, 1), torch.log_softmax(xr, 1))]:
        assert got.dtype == dtype
        assert _ulps16(got, want, dtype) <= 1
    a = x.clone().requires_grad_(True)
    xt.log_softmax(a, 1).sum().backward()
    assert a.grad.dtype == dtype
