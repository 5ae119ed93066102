"""Arrays of other libraries in, the same library's arrays out (DLPack +
array-api-compat): torch tensors and JAX arrays, each skipped when absent."""
import numpy as np
import pytest

import xentc

FUNCS = ["logsumexp", "softmax", "log_softmax", "cross_entropy", "cross_entropy_and_grad"]


def _call(name, x, y, w=None):
    f = getattr(xentc, name)
    if name.startswith("cross_entropy"):
        return f(x, y, weight=w, label_smoothing=0.1)
    if name == "logsumexp":
        return f(x, axis=1, b=w)
    return f(x, axis=1)


def _numpy_case(dtype=np.float32):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((6, 5)) * 3).astype(dtype)
    y = rng.integers(0, 5, 6)
    w = rng.uniform(0.5, 2.0, 5).astype(dtype)
    return x, y, w


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_in_torch_out(name, dtype):
    torch = pytest.importorskip("torch")
    pytest.importorskip("array_api_compat")
    x, y, w = _numpy_case(np.dtype(dtype))
    tx, ty, tw = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(w)
    got = _call(name, tx, ty, tw if name != "softmax" and name != "log_softmax" else None)
    want = _call(name, x, y, w if name != "softmax" and name != "log_softmax" else None)
    got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
    for g, v in zip(got, want):
        assert isinstance(g, torch.Tensor) and g.device.type == "cpu"
        assert g.dtype == torch.from_numpy(np.asarray(v)).dtype
        assert tuple(g.shape) == np.shape(v)
        np.testing.assert_array_equal(g.numpy(), v)  # the same computation, bit for bit
    np.testing.assert_array_equal(tx.numpy(), x)   # inputs untouched


def test_jax_in_jax_out():
    jnp = pytest.importorskip("jax.numpy")
    pytest.importorskip("array_api_compat")
    x, y, _ = _numpy_case()
    got = xentc.logsumexp(jnp.asarray(x), axis=1)
    assert type(got).__module__.startswith("jax")
    np.testing.assert_array_equal(np.asarray(got), xentc.logsumexp(x, axis=1))
    loss = xentc.cross_entropy(jnp.asarray(x), jnp.asarray(y))
    np.testing.assert_array_equal(np.asarray(loss), xentc.cross_entropy(x, y))


def test_input_is_viewed_not_copied(monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("array_api_compat")
    from xentc import _logsumexp

    seen = []
    real = _logsumexp._softmax_impl

    def spy(x, *args, **kwargs):
        seen.append(x)
        return real(x, *args, **kwargs)

    monkeypatch.setattr(_logsumexp, "_softmax_impl", spy)
    t = torch.randn(8, 3)
    xentc.softmax(t, axis=1)
    assert np.shares_memory(seen[0], t.numpy())


def test_other_devices_are_named():
    class OnGpu:  # what a CUDA array looks like through DLPack
        device = "cuda:0"

        def __dlpack__(self, **kw):
            raise AssertionError("must not be read")

        def __dlpack_device__(self):
            return (2, 0)  # kDLCUDA

    with pytest.raises(ValueError, match=r"xentc.logsumexp: a is on device cuda:0; xentc "
                                         r"computes on the CPU"):
        xentc.logsumexp(OnGpu())
    with pytest.raises(ValueError, match="logits is on device cuda:0"):
        xentc.cross_entropy(OnGpu(), np.zeros(2, int))


def test_tensors_that_need_a_gradient_point_to_the_bridge():
    torch = pytest.importorskip("torch")
    pytest.importorskip("array_api_compat")
    x = torch.randn(3, 4, requires_grad=True)
    with pytest.raises(TypeError, match=r"requires grad; for autograd use "
                                        r"xentc.torch.cross_entropy"):
        xentc.cross_entropy(x, torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="out=/grad_out= take NumPy arrays"):
        xentc.softmax(x.detach(), axis=1, out=np.empty((3, 4), np.float32))


def test_numpy_and_python_input_stay_numpy():
    assert type(xentc.logsumexp([1.0, 2.0])) is np.float64
    assert type(xentc.softmax(np.ones(3))) is np.ndarray
