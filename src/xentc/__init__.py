"""
xentc: fast, exact log-sum-exp, softmax, log-softmax and cross-entropy on CPUs.

The functions follow :mod:`scipy.special` (logsumexp, softmax, log_softmax)
and :func:`torch.nn.functional.cross_entropy` semantics, run on SIMD kernels
chosen for the CPU at import, and use OpenMP threads (``workers=``).
"""
from importlib.metadata import PackageNotFoundError, version as _version

from . import _dispatch
from ._config import show_config
from ._cross_entropy import (
    cross_entropy,
    cross_entropy_and_grad,
    kl_div,
    log_loss,
    nll_loss,
)
from ._linear import linear_cross_entropy, linear_cross_entropy_and_grad
from ._logsumexp import log_softmax, logsumexp, softmax
from ._outputs import set_output_cache
from ._partials import CEPartial, LSEPartial, cross_entropy_partial, lse_partial

try:
    __version__ = _version("xentc")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

_dispatch.select_from_environment()

__all__ = [
    "logsumexp",
    "softmax",
    "log_softmax",
    "cross_entropy",
    "cross_entropy_and_grad",
    "nll_loss",
    "log_loss",
    "kl_div",
    "linear_cross_entropy",
    "linear_cross_entropy_and_grad",
    "show_config",
    "set_output_cache",
    "lse_partial",
    "LSEPartial",
    "cross_entropy_partial",
    "CEPartial",
    "__version__",
]
