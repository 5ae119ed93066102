"""
PyTorch autograd functions on xentc's kernels (``import xentc.torch``).

``xentc.torch.cross_entropy`` takes exactly the arguments of
:func:`torch.nn.functional.cross_entropy` (class dimension 1, or 0 for 1-D
input; (N, C, d1, ...) inputs; class indices or probabilities; class weights,
``ignore_index``, ``reduction``, ``label_smoothing``), plus xentc's ``z_loss``
and ``softcap``. Its forward runs the fused loss-and-gradient kernel, keeps
the gradient, and its backward only scales it by ``grad_output`` (nothing
at all when that is 1, as after ``loss.backward()``): no second pass over the
logits. Tensors are viewed as NumPy arrays (``Tensor.numpy()``), never
copied when contiguous, and the gradient is handed back the same way.
float16 and bfloat16 tensors are read as 16 bits by xentc's kernels
(a bfloat16 tensor is viewed as an ``ml_dtypes.bfloat16`` array through
its int16 bits); the loss and gradient have the input's dtype, as torch's.

What the bridge does not serve is handed to torch's own function with the
same arguments, with the same result:

- tensors that are not on the CPU (CUDA, MPS, meta), not strided (sparse),
  or of a dtype other than float32/float64/float16/bfloat16 (bfloat16 also
  needs ``ml_dtypes``, through which NumPy sees it: without it bfloat16
  goes to torch);
- class weights or probability targets that require a gradient;
- ``label_smoothing`` outside [0, 1] (torch takes negative values);
- ``cross_entropy`` differentiated twice (``create_graph=True``): the second
  backward recomputes torch's own graph from the saved input (``z_loss`` and
  ``softcap`` have no torch counterpart and raise NotImplementedError there).

``logsumexp``, ``log_softmax`` and ``softmax`` (torch's signatures) run the
forward on xentc's kernels and their backward with torch operations on the
saved result, so they can be differentiated twice as well.

torch is an optional dependency (``pip install ".[torch]"``): ``import xentc``
never imports it; this module does.

Examples
--------
>>> import torch, xentc.torch
>>> x = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]], requires_grad=True)
>>> loss = xentc.torch.cross_entropy(x, torch.tensor([0, 2]))
>>> round(loss.item(), 6)
0.168117
>>> loss.backward()
>>> torch.allclose(x.grad.sum(dim=1), torch.zeros(2), atol=1e-7)
True
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch.nn import _reduction

from . import _half
from ._cross_entropy import cross_entropy as _xentc_ce
from ._cross_entropy import cross_entropy_and_grad as _xentc_ce_and_grad
from ._logsumexp import log_softmax as _xentc_log_softmax
from ._logsumexp import logsumexp as _xentc_logsumexp
from ._logsumexp import softmax as _xentc_softmax

__all__ = ["cross_entropy", "CrossEntropyLoss", "logsumexp", "log_softmax", "softmax"]

_KERNEL_DTYPES = (torch.float32, torch.float64, torch.float16)


def _ml_dtypes():
    """ml_dtypes (NumPy's bfloat16), imported when a bfloat16 tensor
    arrives, or None when it is not installed."""
    try:
        import ml_dtypes
    except ImportError:
        return None
    return ml_dtypes


def _servable(t):
    """Can the kernels read this tensor as it is (a NumPy view of it)?"""
    return (t.device.type == "cpu" and t.layout == torch.strided
            and (t.dtype in _KERNEL_DTYPES
                 or (t.dtype == torch.bfloat16 and _ml_dtypes() is not None))
            and not t.is_conj() and not t.is_neg())


def _view(t):
    """The tensor's memory as a NumPy array, without a copy (bfloat16: its
    int16 bits viewed as ml_dtypes.bfloat16, which NumPy knows and torch's
    numpy() refuses)."""
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(_ml_dtypes().bfloat16)
    return t.numpy()


def _tensor(a):
    """A NumPy result as a tensor, without a copy (0-d for NumPy scalars)."""
    a = np.asarray(a)
    if _half.is_bfloat16(a.dtype):
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


# --------------------------------------------------------------------------
# cross-entropy
# --------------------------------------------------------------------------

def _class_dim(input):
    """torch's class dimension: 1, or 0 for an input of one sample."""
    return 1 if input.dim() >= 2 else 0


def _arguments(input, target, weight, ignore_index, reduction, label_smoothing, z_loss,
               softcap):
    """The tensors as arrays (views) and the keywords of xentc's functions."""
    kw = dict(axis=_class_dim(input),
              weight=None if weight is None else _view(weight),
              ignore_index=ignore_index, reduction=reduction,
              label_smoothing=label_smoothing, z_loss=z_loss, softcap=softcap)
    return _view(input), _view(target), kw


def _loss(input, target, weight, *options):
    """The loss alone, as a tensor."""
    x, t, kw = _arguments(input, target, weight, *options)
    return _tensor(_xentc_ce(x, t, **kw))


class _CrossEntropy(torch.autograd.Function):
    """Forward: the fused kernel (loss and gradient); backward: the kept
    gradient times grad_output."""

    @staticmethod
    def forward(ctx, input, target, weight, ignore_index, reduction, label_smoothing,
                z_loss, softcap):
        ctx.options = (ignore_index, reduction, label_smoothing, z_loss, softcap)
        ctx.class_dim = _class_dim(input)
        if not ctx.needs_input_grad[0]:
            return _loss(input, target, weight, *ctx.options)
        x, t, kw = _arguments(input, target, weight, *ctx.options)
        loss, grad = _xentc_ce_and_grad(x, t, **kw)
        ctx.grad = _tensor(grad)
        # (references, not copies: for a second backward only)
        ctx.save_for_backward(input, target, weight)
        return _tensor(loss)

    @staticmethod
    def backward(ctx, grad_output):
        ignore_index, reduction, label_smoothing, z_loss, softcap = ctx.options
        if torch.is_grad_enabled():
            # create_graph=True: a gradient that can itself be differentiated,
            # from torch's own graph of the same loss
            if z_loss or softcap is not None:
                raise NotImplementedError(
                    "xentc.torch.cross_entropy: z_loss and softcap cannot be "
                    "differentiated twice (torch has no function to hand them to)")
            input, target, weight = ctx.saved_tensors
            loss = F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                                   reduction=reduction, label_smoothing=label_smoothing)
            (grad,) = torch.autograd.grad(loss, input, grad_output, create_graph=True)
        else:
            grad, ctx.grad = ctx.grad, None
            if grad is None:
                # backward through the same graph again (retain_graph=True):
                # the first call handed its buffer over, so compute it anew
                input, target, weight = ctx.saved_tensors
                grad = _tensor(_xentc_ce_and_grad(
                    _view(input), _view(target), axis=ctx.class_dim,
                    weight=None if weight is None else _view(weight),
                    ignore_index=ignore_index, reduction=reduction,
                    label_smoothing=label_smoothing, z_loss=z_loss, softcap=softcap)[1])
            # The kernel's gradient buffer itself goes to autograd when
            # grad_output is 1 (loss.backward()): no reference is kept here,
            # so torch takes it as input.grad without copying it.
            if reduction == "none" and grad_output.dim() > 0:
                # each sample's row of the gradient times its grad_output
                grad = grad * grad_output.unsqueeze(ctx.class_dim)
            elif not (grad_output.numel() == 1 and grad_output.item() == 1.0):
                grad = grad * grad_output
        return grad, None, None, None, None, None, None, None


def _torch_cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing,
                         z_loss, softcap):
    if z_loss or softcap is not None:
        raise NotImplementedError(
            "xentc.torch.cross_entropy: z_loss and softcap need xentc's kernels, which "
            f"cannot serve this input (device {input.device}, dtype {input.dtype}); "
            "torch's cross_entropy has no such options")
    return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                           reduction=reduction, label_smoothing=label_smoothing)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0, *, z_loss=0.0,
                  softcap=None):
    """:func:`torch.nn.functional.cross_entropy` on xentc's fused kernel.

    Same arguments and results as torch's (``size_average`` and ``reduce``
    are its deprecated spellings of `reduction`), plus ``z_loss`` (adds
    ``z_loss * logsumexp(input)**2`` per sample) and ``softcap`` (logits
    replaced by ``softcap * tanh(input / softcap)``). Inputs the kernels
    cannot serve go to torch's function (see the module's docstring).

    Examples
    --------
    >>> import torch, xentc.torch
    >>> x = torch.zeros(2, 4, 3, requires_grad=True)        # (N, C, d1)
    >>> y = torch.tensor([[0, 1, 2], [3, 3, -100]])
    >>> loss = xentc.torch.cross_entropy(x, y)
    >>> round(loss.item(), 6)   # log(4)
    1.386294
    """
    if size_average is not None or reduce is not None:
        reduction = _reduction.legacy_get_string(size_average, reduce)
    options = (ignore_index, reduction, label_smoothing, z_loss, softcap)
    served = (isinstance(input, torch.Tensor) and isinstance(target, torch.Tensor)
              and _servable(input) and target.device.type == "cpu"
              and not (target.is_floating_point() and target.requires_grad)
              and (weight is None or (_servable(weight) and not weight.requires_grad))
              and isinstance(label_smoothing, (int, float)) and 0 <= label_smoothing <= 1)
    if not served:
        return _torch_cross_entropy(input, target, weight, *options)
    if not (input.requires_grad and torch.is_grad_enabled()):
        # no graph to record: the loss without autograd.Function's ~10 us
        # a call (16x128256 float16: 0.255 against 0.236 ms for the array)
        return _loss(input, target, weight, *options)
    return _CrossEntropy.apply(input, target, weight, *options)


class CrossEntropyLoss(torch.nn.CrossEntropyLoss):
    """:class:`torch.nn.CrossEntropyLoss` computed by :func:`cross_entropy`.

    The constructor is torch's, plus ``z_loss`` and ``softcap``; the class
    weights are its ``weight`` buffer, as in torch.

    Examples
    --------
    >>> import torch, xentc.torch
    >>> criterion = xentc.torch.CrossEntropyLoss(label_smoothing=0.1)
    >>> x = torch.tensor([[2.0, 0.5, -1.0]], requires_grad=True)
    >>> round(criterion(x, torch.tensor([0])).item(), 6)
    0.391311
    """

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", label_smoothing=0.0, *, z_loss=0.0, softcap=None):
        super().__init__(weight, size_average, ignore_index, reduce, reduction,
                         label_smoothing)
        self.z_loss = z_loss
        self.softcap = softcap

    def forward(self, input, target):
        return cross_entropy(input, target, weight=self.weight,
                             ignore_index=self.ignore_index, reduction=self.reduction,
                             label_smoothing=self.label_smoothing, z_loss=self.z_loss,
                             softcap=self.softcap)


# --------------------------------------------------------------------------
# logsumexp, log_softmax, softmax
# --------------------------------------------------------------------------

def _dims(dim, ndim):
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    return tuple(sorted(d % ndim for d in dims)) if ndim else ()


class _LogSumExp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, dim, keepdim):
        out = _tensor(_xentc_logsumexp(_view(input), axis=dim, keepdims=keepdim))
        ctx.dim, ctx.keepdim = dim, keepdim
        ctx.save_for_backward(input, out)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        input, out = ctx.saved_tensors
        if not ctx.keepdim:
            for d in ctx.dim:
                out, grad_output = out.unsqueeze(d), grad_output.unsqueeze(d)
        # torch operations: differentiable again
        return grad_output * torch.exp(input - out), None, None


def logsumexp(input, dim, keepdim=False):
    """:func:`torch.logsumexp` with xentc's kernel in the forward.

    Examples
    --------
    >>> import torch, xentc.torch
    >>> round(xentc.torch.logsumexp(torch.tensor([0.0, 0.0]), 0).item(), 6)
    0.693147
    """
    if not (isinstance(input, torch.Tensor) and _servable(input) and input.dim() > 0):
        return torch.logsumexp(input, dim, keepdim)
    return _LogSumExp.apply(input, _dims(dim, input.dim()), keepdim)


class _Softmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, dim, take_log):
        f = _xentc_log_softmax if take_log else _xentc_softmax
        out = _tensor(f(_view(input), axis=dim))
        ctx.dim, ctx.take_log = dim, take_log
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        d = ctx.dim
        if ctx.take_log:  # torch's log_softmax backward
            grad = grad_output - torch.exp(out) * grad_output.sum(d, keepdim=True)
        else:             # torch's softmax backward
            grad = out * (grad_output - (grad_output * out).sum(d, keepdim=True))
        return grad, None, None


def _softmax(input, dim, dtype, take_log):
    torch_f = F.log_softmax if take_log else F.softmax
    if dim is None or not isinstance(input, torch.Tensor):
        return torch_f(input, dim, dtype=dtype)  # torch's implicit-dim rule
    if dtype is not None:
        input = input.to(dtype)
    if not _servable(input) or input.dim() == 0:
        return torch_f(input, dim)
    return _Softmax.apply(input, dim % input.dim(), take_log)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """:func:`torch.nn.functional.log_softmax` with xentc's kernel in the forward.

    Examples
    --------
    >>> import torch, xentc.torch
    >>> xentc.torch.log_softmax(torch.tensor([0.0, 0.0]), dim=0)
    tensor([-0.6931, -0.6931])
    """
    return _softmax(input, dim, dtype, take_log=True)


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """:func:`torch.nn.functional.softmax` with xentc's kernel in the forward.

    Examples
    --------
    >>> import torch, xentc.torch
    >>> xentc.torch.softmax(torch.tensor([0.0, 0.0]), dim=0)
    tensor([0.5000, 0.5000])
    """
    return _softmax(input, dim, dtype, take_log=False)
