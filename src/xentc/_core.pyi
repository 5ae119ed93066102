"""Type stubs for the compiled array loops (xentc._core)."""
import numpy as np
import numpy.typing as npt

_Real = np.float32 | np.float64

def lse_rows(x: npt.NDArray[_Real], out: npt.NDArray[_Real], nthreads: int) -> None: ...
def softmax_rows(
    x: npt.NDArray[_Real], out: npt.NDArray[_Real], take_log: bool, nthreads: int
) -> None: ...
def lse_weighted_rows(
    a: npt.NDArray[np.float64],
    b: npt.NDArray[np.float64],
    out: npt.NDArray[np.float64],
    sign: npt.NDArray[np.float64],
    nthreads: int,
) -> None: ...
def compiled_levels() -> list[str]: ...
def cpu_supports(name: str) -> bool: ...
def select_kernels(name: str) -> bool: ...
def active_kernels() -> str: ...
def max_threads() -> int: ...
def openmp_version() -> int: ...
def chunk_size() -> int: ...
def ce_plain_h16(
    x: npt.NDArray[np.uint16],
    kind: int,
    target: npt.NDArray[np.int64],
    ignore_index: int,
    tile_rows: int,
    nthreads: int,
) -> float | None: ...
def partial_rows(x: npt.NDArray[_Real], out: npt.NDArray[np.float64], nthreads: int) -> None: ...
def merge_partials(
    p: npt.NDArray[np.float64], q: npt.NDArray[np.float64], out: npt.NDArray[np.float64]
) -> None: ...
def finalize_partials(p: npt.NDArray[np.float64], out: npt.NDArray[np.float64]) -> None: ...
def sum_losses(loss: npt.NDArray[np.float64], chunk: int = ..., total: float = ...) -> float: ...
def loss_order(ncols: int, tile_rows: int) -> tuple[int, int]: ...
def placed_losses(m: int, x: int, target: int) -> npt.NDArray[np.float64]: ...
def ce_plain(
    x: npt.NDArray[_Real],
    target: npt.NDArray[np.int64],
    ignore_index: int,
    tile_rows: int,
    nthreads: int,
    grad: npt.NDArray[_Real] | None = ...,
    grad_scale_all: float = ...,
) -> float | None: ...
def exp_nonpositive(x: npt.NDArray[_Real], out: npt.NDArray[_Real]) -> None: ...
class CEOptions:
    """The constant options of a cross-entropy call (xt_ce_options)."""
    class_weight: npt.NDArray[np.float64] | None
    smoothing: float
    z_loss: float
    softcap: float
    def __init__(
        self,
        class_weight: npt.NDArray[np.float64] | None = None,
        smoothing: float = 0.0,
        z_loss: float = 0.0,
        softcap: float = 0.0,
    ) -> None: ...

def ce_rows(
    x: npt.NDArray[_Real],
    target: npt.NDArray[np.int64] | None,
    target_prob: npt.NDArray[_Real] | None,
    options: CEOptions,
    grad_scale: npt.NDArray[np.float64] | None,
    grad_scale_all: float,
    loss: npt.NDArray[np.float64],
    grad: npt.NDArray[_Real] | None,
    scratch: npt.NDArray[_Real] | None,
    nthreads: int,
) -> None: ...
def gather_rows(
    x: npt.NDArray[_Real], target: npt.NDArray[np.int64], out: npt.NDArray[np.float64],
    nthreads: int,
) -> None: ...
def prepare_index_targets(
    target: npt.NDArray[np.int64], nclasses: int, ignore_index: int,
    out: npt.NDArray[np.int64], nthreads: int = 1,
) -> tuple[int, int]: ...
def ce_partial_rows(
    x: npt.NDArray[_Real],
    local_target: npt.NDArray[np.int64],
    class_weight: npt.NDArray[np.float64],
    has_weight: bool,
    softcap: float,
    want_sums: bool,
    scratch: npt.NDArray[_Real],
    out: npt.NDArray[np.float64],
    nthreads: int,
) -> None: ...
def ce_merge_partials(
    p: npt.NDArray[np.float64], p_weight_total: float,
    q: npt.NDArray[np.float64], q_weight_total: float,
    out: npt.NDArray[np.float64],
) -> None: ...
def ce_finalize_partials(
    p: npt.NDArray[np.float64], nclasses: int, weight_total: float, smoothing: float,
    z_loss: float, term: int, out: npt.NDArray[np.float64],
) -> None: ...
def softmax_with_partials(
    x: npt.NDArray[_Real], p: npt.NDArray[np.float64], take_log: bool,
    out: npt.NDArray[_Real], nthreads: int,
) -> None: ...

# 16-bit inputs (_core_half.pxi): uint16 views of float16 / bfloat16 data,
# kind 0 (float16) or 1 (bfloat16)
def widen_h16(x: npt.NDArray[np.uint16], kind: int, out: npt.NDArray[np.float32]) -> None: ...
def narrow_h16(x: npt.NDArray[np.float32], kind: int, out: npt.NDArray[np.uint16]) -> None: ...
def narrow_f64(x: npt.NDArray[np.float64], kind: int, out: npt.NDArray[np.uint16]) -> None: ...
def narrow_f64_scalar(x: float, kind: int) -> int: ...
def lse_rows_h16(
    x: npt.NDArray[np.uint16], kind: int, out: npt.NDArray[np.uint16], nthreads: int
) -> None: ...
def softmax_rows_h16(
    x: npt.NDArray[np.uint16], kind: int, out: npt.NDArray[np.uint16], take_log: bool,
    nthreads: int,
) -> None: ...
def ce_rows_h16(
    x: npt.NDArray[np.uint16],
    kind: int,
    target: npt.NDArray[np.int64] | None,
    target_prob: npt.NDArray[np.float32] | None,
    options: CEOptions,
    grad_scale: npt.NDArray[np.float64] | None,
    grad_scale_all: float,
    loss: npt.NDArray[np.float64],
    grad: npt.NDArray[np.uint16] | None,
    nthreads: int,
) -> None: ...

# Linear + cross-entropy lanes (_core_linear.pxi), with a BLAS from SciPy
def set_gemm(sgemm: object | None, dgemm: object | None) -> None: ...
def have_gemm() -> bool: ...
def linear_blocks(
    x: npt.NDArray[_Real],
    w_f: npt.NDArray[_Real] | None,
    w_c: npt.NDArray[_Real] | None,
    bias: npt.NDArray[_Real] | None,
    target: npt.NDArray[np.int64] | None,
    target_prob: npt.NDArray[_Real] | None,
    options: CEOptions,
    grad_scale: npt.NDArray[np.float64] | None,
    grad_scale_all: float,
    starts: npt.NDArray[np.int64],
    rows: int,
    per_sample: npt.NDArray[np.float64] | None,
    sample_weight: npt.NDArray[np.float64] | None,
    block_totals: npt.NDArray[np.float64],
    buf: npt.NDArray[_Real],
    losses: npt.NDArray[np.float64] | None,
    scratch: npt.NDArray[_Real] | None,
    grad_input: npt.NDArray[_Real] | None,
    grad_weight: npt.NDArray[_Real] | None,
    grad_bias: npt.NDArray[np.float64] | None,
    nthreads: int = 1,
    parts: int = 1,
    gi_parts: npt.NDArray[_Real] | None = None,
) -> None: ...
