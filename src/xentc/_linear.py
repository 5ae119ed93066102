"""
Fused linear layer + cross-entropy: ``cross_entropy(input @ W.T + b, target)``
and its gradients without the (N, C) logits.

Design: blocks of rows, each with its whole class range at once
----------------------------------------------------------------
The rows are cut into blocks of ``B`` rows. For each block one reused
(B, C) buffer receives the logits ``X_blk @ W.T (+ b)`` from BLAS (SciPy's
``cython_blas`` from a compiled loop when SciPy is installed, else NumPy's
matmul from Python; see "In C" below), the C kernels (``_core.ce_rows``, the same ones as
:func:`xentc.cross_entropy_and_grad`) turn it in place into the block's
per-row losses and ``d loss / d logits`` (``G``), and BLAS consumes ``G``:
``grad_input[blk] = G @ W``, ``grad_W += G.T @ X_blk``, ``grad_b +=
G.sum(0)``. Each logit is computed once: three matrix products' worth of
time, against four for the other design that fits the memory bound (a
statistics pass over class tiles, then recomputed tiles for the gradient),
which could not meet the speed target (see below).

Extra memory is the (B, C) buffer (at most ``_BUFFER_BYTES``, or one row
when a single row is larger), without SciPy a (tile, D) scratch for
accumulating ``grad_W`` (``_ACC_BYTES``), and O(B + C) vectors, whatever N
is. ``B``
depends only on the shapes and dtype, never on ``workers`` or the BLAS
thread count, so the blocks and the order of every sum are fixed.

Measurements behind the sizes (this 2-core VM, 2 threads, float32,
N=2048, D=512, C=32000; numpy 2.4 with OpenBLAS 0.3.31; best of 3; the
machine was shared, load 1.4-2.4, so only large differences count):

- the three products on the whole arrays: 0.97 s (0.32-0.33 s each);
- the same products by blocks of B rows: B=128: fwd 0.44 s, grad_input
  0.39 s, grad_W 0.39 s; B=256: 0.37 / 0.38 / 0.35; B=512-1024: within 5%
  of the whole arrays. Small blocks lose BLAS efficiency, and every block
  reads and writes all of grad_W (C x D) once more to accumulate it
  (0.03 s in total for B=256 with a NumPy add, 0.017 s for B=512).
- accumulating grad_W through scipy's BLAS ``sgemm(beta=1)`` (no scratch)
  from Python, the other products by NumPy's: 1.44-1.87 s against
  1.05-1.27 s for NumPy matmul into a 2 MB scratch tile plus an add (two
  OpenBLAS builds' thread pools then share the two cores). All three
  products by SciPy's BLAS from the compiled loop: the same time as NumPy's
  (1089-1098 against 1096-1103 ms, alternating processes), with no tile.

In C. With SciPy, the blocks run in one compiled loop
(``_core.linear_blocks``): one after the other for large C x D, W in the
layout it comes in; in lanes for small C x D, as follows.

Small C x D (logistic regression). The lanes below run their blocks in C
(``_core.linear_blocks``), with the products by SciPy's BLAS (the ?gemm of
``scipy.linalg.cython_blas``, found at run time: SciPy stays optional).
The blocks are then at most 1e6 / (C x D) rows, the size below which
OpenBLAS multiplies by its small-matrix kernels without packing the
operands (``_SMALL_GEMM``); with NumPy's matmul called from Python, those
hundreds of blocks would cost more in the interpreter than they save. The
bias is gemm's initial value and grad_W accumulates in gemm (beta 1).
N=200000, D=64, C=50 float64, input_grad=False, BLAS on 1 thread, 2
lanes' threads, per call, side by side with the NumPy lanes: 36 ms against
51 ms; the softmax regression fit 2.0 s against 2.7 s. With
input_grad=True: 56 ms against 73 ms. Without SciPy, or when the small
products do not apply, the lanes run NumPy's matmul from Python as
before.

Threads. Two pools share the cores: the kernels' OpenMP team and BLAS's
own (NumPy's OpenBLAS, whose workers keep spinning for a while after each
product). For large C x D the blocks run one after the other: with
SciPy's OpenBLAS found, each product split into ``_PARTS`` fixed parts of
the classes on xentc's threads, OpenBLAS set to one thread for the call,
the kernels on the same threads (_blas_threads; see ``_PARTS``);
otherwise the products on BLAS's threads and the kernels on one thread by
default (``workers`` threads if given: a 2-thread team shares the cores
with BLAS's spinning threads; see run()). For small C x D
(logistic regression: C=50, D=64), where the products are small and the
kernels a large share of the time, the blocks are dealt to ``_LANES`` lanes
run by up to ``workers`` Python threads (the GIL is released in the
products and the kernels), each lane with its own buffer and grad_W and
single-threaded kernels, and BLAS is best pinned to one thread by the
caller. Per call with the NumPy-matmul lanes (before the lanes ran in C),
N=200000, D=64, C=50 float64, 2 cores (best of 9, load about 2 from
another user): BLAS 1 thread + 2 lanes 63 ms; BLAS 2 threads
+ 2 lanes 110 ms; BLAS 2 threads + 1 lane 93 ms; BLAS 1 thread + 1 lane
119 ms; the same call with one (N, C) block and 2-thread kernels 112 ms.

Determinism: the blocks, and so the order of every sum, depend only on the
shapes, and the kernels give the same bits for every ``workers`` value.
The products are NumPy's BLAS, on its own thread pool: OpenBLAS 0.3.31 gave
the same bits with 2, 3 and 4 threads, but its single-threaded product
differs in the last bits for some shapes (grad_input = G @ W with K = 3000
classes; not for C = 128256 or 32000). To get the same bits whatever the
machine's core count, pin BLAS's threads:
``threadpoolctl.threadpool_limits(n, user_api="blas")`` around the call,
or ``OPENBLAS_NUM_THREADS`` / ``MKL_NUM_THREADS`` before NumPy loads.
The lanes in C multiply on their own thread (OpenBLAS's small-matrix
products are not threaded), and the split products of the blocks one
after the other run with OpenBLAS at one thread: both give the same bits
for any BLAS thread count. They
differ from the NumPy lanes' in the last bits (other blocks, another
BLAS), so a machine without SciPy gets other, equally deterministic, bits.
"""
import contextlib
import ctypes
import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np

from . import _blas_threads, _core, _targets
from ._cross_entropy import _finish
from ._layout import kernel_array
from ._validation import check_out, chunk_size, resolve_workers, row_threads

__all__ = ["linear_cross_entropy", "linear_cross_entropy_and_grad"]

_MiB = 1 << 20
# Cap on the (B, C) logits buffer. The case N=4096, D=256,
# C=128256 float32 must stay within 64 MB (10^6 bytes) above the inputs and
# outputs: 51 MiB of logits (103 rows) with the grad_W scratch and the
# vectors is 63.3 MB by _memory_bound, the largest whole MiB under 64 MB.
# Larger blocks are faster for large C, since every block streams all of W
# through BLAS's packing twice: N=2048, D=512, C=32000 float32, the three
# products alone by blocks, alternating processes, 4 rounds: 6 blocks of
# 342 rows (48 MiB) 1135-1163 ms, 5 of 410 (this cap) 1125-1143, 4 of 512
# 1087-1097, whole arrays 1007-1015.
_BUFFER_BYTES = 51 * _MiB
# Below this the blocks are sized for the caches instead: many rows of a
# small class count (logistic regression: C=50) fit a buffer that stays in
# L2/L3 between its product, the kernels and the two products reading it.
_CACHE_BYTES = 2 * _MiB
# ...but never fewer rows than this, so the products keep a useful shape.
_MIN_ROWS = 256
# Scratch for one tile of grad_W's accumulation (a class tile x D). Each
# tile is one multi-threaded BLAS call, whose threads meet at barriers:
# fewer, larger tiles (6 MiB: 11 per block for C=32000, D=512, against 32 of
# 2 MiB) cost less when other processes share the cores; 51 MiB of logits +
# 6 MiB keeps the N=4096, D=256, C=128256 case under 64 MB.
_ACC_BYTES = 6 * _MiB
# Small C x D (logistic regression): the blocks are dealt to _LANES lanes
# run by up to `workers` Python threads, each with its own buffer, its own
# grad_W and single-threaded kernels; the lanes' sums are added in lane
# order, so the bits do not depend on the thread count. Measured: see
# "Threads" in the module docstring.
_LANES = 4
_LANE_BYTES = 4 * _MiB

# Lanes with SciPy's BLAS (_core.linear_blocks, "Small C x D" above): blocks
# of at most _SMALL_GEMM // (C * D) rows, when that leaves _MIN_GEMM_ROWS.
# OpenBLAS (0.3.30-0.3.31 on this AVX-512 machine) multiplies products of
# M * N * K <= 1e6 by its "small matrix" kernels, which skip packing the
# operands: N=200000, D=64, C=50 float64 on one thread, products by blocks
# of B rows, scipy's dgemm from C: forward 29.7 ms at B <= 312 against
# 39.5 ms at B >= 320, grad_W 25 ms against 37 ms (41 ms at B = 5242, the
# cache-sized blocks); NumPy's matmul gave the same step at the same B.
_SMALL_GEMM = 1_000_000
_MIN_GEMM_ROWS = 64
# Whether lanes may run through _core.linear_blocks with SciPy's BLAS (None:
# not looked for yet; see _gemm_ready). Tests set it False for the NumPy path.
_GEMM = None
# Blocks one after the other in C, with SciPy's OpenBLAS found
# (_blas_threads): each product in _PARTS fixed parts of the classes, run by
# xentc's threads (up to `workers`) with OpenBLAS at one thread, grad_input
# the sum of the parts' products in part order; the kernels take the same
# threads, no BLAS thread spinning beside them. The parts are fixed, so the
# bits depend on neither `workers` nor the BLAS thread count (a product
# split differently can round differently: OpenBLAS picks its kernels by
# size). N=2048, D=512, C=32000 float32, 2 threads, alternating processes,
# 3 rounds: 1056-1074 ms split (prototype) against 1083-1094 through
# OpenBLAS's threads, torch's linear_cross_entropy 1344-1351.
# How many parts: the machine's cores (the CPUs this process may run on,
# not `workers` or OMP_NUM_THREADS, so the bits stay the same for every
# thread count), from 2 to 8: each part packs the block's rows again, so no
# more parts than threads can use. Same shape, 4 rounds: 2 parts best 1059
# / median 1079 ms, 4 parts 1064 / 1086, 8 parts 1071 / 1101. Tests set
# _SPLIT False for the products threaded by BLAS.
def _machine_cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


_PARTS = max(2, min(8, _machine_cores()))
_SPLIT = True

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# scipy.linalg.cython_blas's ?gemm: the Fortran interface, 32-bit integers
_GEMM_SIGNATURE = re.compile(
    r"void \(char \*, char \*, int \*, int \*, int \*, (\w+) \*, \1 \*, int \*, "
    r"\1 \*, int \*, \1 \*, \1 \*, int \*\)")


def _gemm_ready():
    """Whether _core.linear_blocks has a BLAS: SciPy's, looked up once.
    SciPy is optional; without it (or with a cython_blas whose ?gemm has
    another signature) the lanes run NumPy's matmul from Python."""
    global _GEMM
    if _GEMM is None:
        _GEMM = False
        try:
            from scipy.linalg import cython_blas
            caps = [cython_blas.__pyx_capi__[f] for f in ("sgemm", "dgemm")]
        except (ImportError, AttributeError, KeyError):
            return False
        names = [_capsule_name(cap) for cap in caps]
        kinds = [_GEMM_SIGNATURE.fullmatch(nm) for nm in names]
        if all(kinds) and kinds[0].group(1).endswith(("_s", "float")) \
                and kinds[1].group(1).endswith(("_d", "double")):
            _core.set_gemm(*caps)
            _GEMM = True
    return _GEMM


def _capsule_name(capsule):
    get = ctypes.pythonapi.PyCapsule_GetName
    get.restype, get.argtypes = ctypes.c_char_p, [ctypes.py_object]
    name = get(capsule)
    return "" if name is None else name.decode("ascii", "replace")


def _even(n, rows):
    """`rows` or fewer, the same for every block (N=2048 with a cap of 393
    rows gives 6 blocks of 342, not 5 of 393 and one of 83); never 0."""
    rows = min(max(n, 1), max(1, rows))
    nblocks = -(-max(n, 1) // rows)
    return -(-max(n, 1) // nblocks)


def _block_rows(n, c, itemsize, buffer_bytes=None):
    """Rows per block: as many as fit the buffer cap, made even across the
    blocks."""
    cap = _BUFFER_BYTES if buffer_bytes is None else buffer_bytes
    row = c * itemsize
    rows = max(1, cap // row)
    if buffer_bytes is None and _CACHE_BYTES // row >= _MIN_ROWS:
        # Small rows: cache-sized blocks (when that leaves _MIN_ROWS rows)
        rows = min(rows, _CACHE_BYTES // row)
    return _even(n, rows)


def _gemm_rows(n, rows, c, d):
    """Rows per block of lanes through _core.linear_blocks: `rows`, or fewer
    for OpenBLAS's small-matrix products (see _SMALL_GEMM)."""
    small = _SMALL_GEMM // max(1, c * d)
    return _even(n, small) if _MIN_GEMM_ROWS <= small < rows else rows


def _uses_lanes(n, c, d, itemsize, buffer_bytes=None):
    """Whether a call runs its blocks in lanes (see _LANES)."""
    rows = _block_rows(n, c, itemsize, buffer_bytes)
    # cache-sized blocks only: lanes multiply the buffers
    small_rows = rows * c * itemsize <= _CACHE_BYTES
    return -(-n // rows) > 1 and small_rows and c * d * itemsize <= _LANE_BYTES


def _memory_bound(n, c, d, itemsize, prob_target=False, buffer_bytes=None):
    """An upper bound on the bytes a call allocates besides its outputs (and
    the one copy of a non-contiguous input or W): per lane the (B, C)
    buffer, grad_W's accumulation tile (NumPy's products) or grad_input's
    parts (split products, one lane), and (lanes after the first) their own
    grad_W; O(B + C) vectors; a (B, C) converted block of probability
    targets."""
    rows = _block_rows(n, c, itemsize, buffer_bytes)
    lanes = _LANES if _uses_lanes(n, c, d, itemsize, buffer_bytes) else 1
    acc = min(c, max(1, _ACC_BYTES // max(1, d * itemsize))) * d * itemsize
    if lanes == 1:
        acc = max(acc, _PARTS * rows * d * itemsize)
    per_lane = rows * c * itemsize * (2 if prob_target else 1) + acc + 16 * (rows + c)
    return lanes * per_lane + (lanes - 1) * c * d * itemsize + 16 * (n + c)


def _float_operand(a, argname, func, dtype=None):
    a = np.asarray(a)
    if a.dtype.kind == "c":
        raise TypeError(f"{func}: {argname} must be real, got dtype {a.dtype}")
    if a.dtype not in _FLOATS:
        raise TypeError(f"{func}: {argname} must be a float32 or float64 array, "
                        f"got dtype {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{func}: {argname} has dtype {a.dtype}, expected input's dtype "
                        f"{dtype} (convert one of them)")
    return a


class _Linear:
    """Validated arguments of a linear cross-entropy call, as (N, D) rows."""

    def __init__(self, func, input, linear_weight, target, linear_bias, weight,
                 sample_weight, ignore_index, reduction, label_smoothing, z_loss, softcap,
                 workers):
        self.func = func
        x = _float_operand(input, "input", func)
        if x.ndim == 0:
            raise ValueError(f"{func}: input must have a feature axis (shape (..., D)), "
                             "got a 0-d array")
        self.dtype = x.dtype
        w = _float_operand(linear_weight, "linear_weight", func, x.dtype)
        d = x.shape[-1]
        if w.ndim != 2 or w.shape[1] != d:
            raise ValueError(f"{func}: linear_weight must have shape (C, D) with D = {d} "
                             f"(input's last axis), got {w.shape}")
        c = w.shape[0]
        if c == 0:
            raise ValueError(f"{func}: linear_weight has no classes (shape {w.shape})")
        self.nclasses, self.nfeatures = c, d
        self.input_shape = x.shape
        self.sample_shape = x.shape[:-1]
        self.n = math.prod(self.sample_shape)
        # One C-contiguous copy of an input that is not (documented): the
        # products read row blocks of it.
        self.x = kernel_array(x, x.dtype).reshape(self.n, d)
        # W (C, D) C-contiguous, or its transpose (D, C) C-contiguous: both
        # go to BLAS without a copy (W.T is then the C-contiguous one).
        self.w = w if (w.flags.c_contiguous or w.flags.f_contiguous) and w.flags.aligned \
            else kernel_array(w, x.dtype)
        if linear_bias is None:
            self.b = None
        else:
            b = _float_operand(linear_bias, "linear_bias", func, x.dtype)
            if b.shape != (c,):
                raise ValueError(f"{func}: linear_bias must have shape ({c},) "
                                 f"(linear_weight's C), got {b.shape}")
            self.b = b
        _targets.check_reduction(reduction, func)
        self.reduction = reduction
        self.smoothing = _targets.check_fraction(label_smoothing, "label_smoothing", func)
        self.z_loss = _targets.check_nonnegative(z_loss, "z_loss", func)
        self.softcap = _targets.check_softcap(softcap, func)
        self.weight = _targets.class_weights(weight, c, func)
        self.sw = _targets.sample_weights(sample_weight, self.sample_shape, func)
        self.kind = _targets.target_kind(target, self.sample_shape + (c,),
                                         self.sample_shape, func)
        if self.kind == "index":
            self.index, self.nvalid = _targets.index_targets(
                target, c, self.sample_shape, ignore_index, func)
            self.prob = None
        else:
            if _targets.check_ignore_index(ignore_index, func) >= 0:
                raise ValueError(
                    f"{func}: ignore_index={ignore_index} cannot apply to probability "
                    "targets; use a negative ignore_index (the default) or class indices")
            self.index = np.empty(0, np.int64)
            self.nvalid = self.n
            # the caller's (N, C) array, converted block by block when it is
            # not already C-contiguous in the input's dtype (no N x C copy)
            self.prob = np.asarray(target).reshape(self.n, c)
        self.workers = workers
        resolve_workers(workers)
        self._denominator()

    def _denominator(self):
        """What 'mean' divides by: torch's rules (as _Problem._denominator)."""
        self.denom = _targets.mean_denominator(
            self.kind, self.n, self.index, self.nvalid, self.weight, self.sw)

    def _scale(self):
        """d reduced loss / d per-sample loss: (per-sample array or empty,
        scalar)."""
        scale = 1.0
        if self.reduction == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                scale = 1.0 / np.float64(self.denom)
        if self.sw is None:
            return np.empty(0), float(scale)
        return self.sw * scale, 1.0

    def run(self, want_grad, input_grad=True, outs=(None, None, None), buffer_bytes=None):
        """Loss (reduced, or per sample for 'none'), and with want_grad the
        gradients (grad_input or None, grad_W, grad_b or None)."""
        n, c, d = self.n, self.nclasses, self.nfeatures
        dt = self.dtype
        rows = _block_rows(n, c, dt.itemsize, buffer_bytes)
        nlanes = _LANES if _uses_lanes(n, c, d, dt.itemsize, buffer_bytes) else 1
        # The blocks run in C with SciPy's BLAS (_core.linear_blocks) when it
        # is there, the targets need no conversion (class indices, or
        # probabilities C-contiguous in the dtype) and either the blocks run
        # one after the other (N=2048, D=512, C=32000 float32: the same time
        # as NumPy's matmul, 1089-1098 against 1096-1103 ms in alternating
        # processes, and 6 MiB less memory: grad_W accumulates in gemm, no
        # tile) or the lanes' products can be small-matrix ones (_SMALL_GEMM).
        # Lanes of larger products stay with NumPy's BLAS: 20000 x 256 ->
        # 1000 float32 took 204 ms through SciPy's (OpenBLAS 0.3.30) against
        # 168 ms by NumPy's matmul lanes.
        in_c = d > 0 and (nlanes == 1 or _gemm_rows(n, rows, c, d) < rows) and (
            self.kind == "index" or (self.prob.dtype == dt and self.prob.flags.c_contiguous)
        ) and _gemm_ready()
        if in_c and nlanes > 1:
            rows = _gemm_rows(n, rows, c, d)
        starts = list(range(0, n, rows))
        none = self.reduction == "none"
        self.per_sample = np.empty(n) if none else None
        self.block_totals = np.zeros(len(starts))
        self.want_grad, self.input_grad = want_grad, input_grad
        self.scale, self.scale_all = self._scale() if want_grad else (np.empty(0), 0.0)
        self.rows = rows
        gi_out = gi = gw = gb = None
        if want_grad:
            gi_out, gw, gb = outs
            if input_grad:
                gi_out = np.empty(self.input_shape, dt) if gi_out is None else gi_out
                gi = gi_out.reshape(n, d)     # a view: gi_out is C-contiguous
            if gw is None:
                gw = np.empty((c, d), dt)
            if n == 0:
                gw[...] = 0      # (otherwise the first block writes it)
        self.gi = gi
        threads = min(nlanes, resolve_workers(self.workers) or _core.max_threads())
        lanes = [starts[k::nlanes] for k in range(nlanes)]
        lanes = [lane for lane in lanes if lane]
        # lane 0 accumulates straight into grad_W; the others into their own
        # arrays, added in lane order at the end (same bits for any threads)
        targets = [gw] + [np.empty((c, d), dt) if want_grad else None
                          for _ in lanes[1:]]
        # One block after the other: BLAS's threads, which spin for a while
        # after each product, hold the other cores while the kernels run, so
        # by default (workers=None) the kernels take one thread: N=2048,
        # D=512, C=32000 float32 took 1092 ms against 1168 ms with a
        # 2-thread team (the three products alone: 979 ms; best of 4, load
        # 1.8); in C 1179-1213 ms against 1257-1277 with 2 threads. An
        # explicit `workers` is followed. In lanes the kernels take one
        # thread each. With the products split (below) no BLAS thread
        # spins, and the kernels take every thread.
        kernel_threads = 1 if nlanes > 1 or self.workers is None else None
        parts = 1
        if in_c and nlanes == 1 and _SPLIT and _blas_threads.available():
            parts = _PARTS
            kernel_threads = resolve_workers(self.workers) or _core.max_threads()
        if in_c:
            if nlanes > 1:
                # both layouts of W (a copy of at most _LANE_BYTES): each
                # product takes the one its small-matrix kernel wants
                wf = np.asfortranarray(self.w)
                wc = np.ascontiguousarray(self.w) if input_grad else None
            else:
                # W as it is (no copy of a large W): BLAS transposes
                wf = self.w if self.w.flags.f_contiguous else None
                wc = None if wf is not None else self.w
            run = partial(self._lane_in_c, wf, wc,
                          kernel_threads=kernel_threads or row_threads(self.workers, rows, c),
                          parts=parts)
        else:
            run = partial(self._lane, kernel_threads=kernel_threads)
        # SciPy's OpenBLAS at one thread for split products and for lanes
        # alike: a product OpenBLAS threads can round otherwise than the
        # same product on one thread (lanes' grad_W of 12000 rows, 50 classes,
        # 64 features differed between 1 and 2 BLAS threads on an AMD Zen 3,
        # where OpenBLAS takes its Haswell kernels), so that the bits depend
        # on neither `workers` nor the BLAS thread count
        pin = in_c and (parts > 1 or len(lanes) > 1) and _blas_threads.available()
        with _blas_threads.single_threaded() if pin else contextlib.nullcontext():
            if threads > 1 and len(lanes) > 1:
                with ThreadPoolExecutor(threads) as pool:
                    gbs = list(pool.map(run, lanes, targets))
            else:
                gbs = [run(lane, t) for lane, t in zip(lanes, targets)]
        if none:
            loss = self.per_sample if self.sw is None else self.per_sample * self.sw
            loss = loss.astype(dt).reshape(self.sample_shape)
            loss = loss[()] if loss.ndim == 0 else loss
        else:
            total = 0.0
            for t in self.block_totals:      # block order, as one sequential pass
                total += t
            loss = _finish(total, self.denom, self.reduction, dt)
        if not want_grad:
            return loss
        for t in targets[1:]:
            gw += t
        if self.b is None:
            gb = None
        else:
            gb64 = np.zeros(c)
            for g in gbs:
                gb64 += g
            if gb is None:
                gb = np.empty(c, dt)
            gb[...] = gb64
        return loss, (gi_out if input_grad else None), gw, gb

    def _lane_in_c(self, wf, wc, starts, gw, kernel_threads, parts=1):
        """_lane in _core.linear_blocks (SciPy's BLAS); wf is W
        Fortran-contiguous, wc C-contiguous (either may be None); parts: the
        products' fixed parts (linear_blocks; 1: one BLAS call each)."""
        c = self.nclasses
        dt = self.dtype
        want_grad = self.want_grad
        gb64 = np.zeros(c) if want_grad and self.b is not None else None
        index = self.index if self.kind == "index" else None
        _core.linear_blocks(
            self.x, wf, wc, None if self.b is None else np.ascontiguousarray(self.b),
            index, self.prob if index is None else None,
            _core.CEOptions(self.weight, self.smoothing, self.z_loss, self.softcap),
            self.scale if self.scale.size else None, self.scale_all,
            np.asarray(starts, np.int64), self.rows, self.per_sample, self.sw,
            self.block_totals, np.empty((self.rows, c), dt),
            None if self.per_sample is not None else np.empty(self.rows),
            np.empty((kernel_threads, min(c, chunk_size())), dt) if self.softcap else None,
            self.gi if want_grad else None, gw if want_grad else None, gb64, kernel_threads,
            parts, np.empty((parts, self.rows, self.nfeatures), dt)
            if parts > 1 and want_grad and self.gi is not None else None)
        return gb64

    def _lane(self, starts, gw, kernel_threads):
        """The blocks starting at `starts`, in order: losses into
        per_sample/block_totals, grad_input rows into self.gi, grad_W summed
        into gw; returns the float64 sum of the blocks' bias gradients (or
        None). kernel_threads: the kernels' threads (None: from workers)."""
        n, c, d = self.n, self.nclasses, self.nfeatures
        dt = self.dtype
        rows = self.rows
        want_grad = self.want_grad
        buf = np.empty((rows, c), dt)
        losses = None if self.per_sample is not None else np.empty(rows)
        wt = self.w.T
        nthreads_max = kernel_threads or row_threads(self.workers, rows, c)
        scratch = np.empty((nthreads_max, min(c, chunk_size()) if self.softcap else 0), dt)
        options = _core.CEOptions(self.weight, self.smoothing, self.z_loss, self.softcap)
        scale = self.scale
        gb64 = colsum = acc = None
        if want_grad and self.b is not None:
            gb64 = np.zeros(c)
            colsum = np.empty(c, dt)
        # grad_W's accumulation: a class tile of G.T @ X_blk into acc, then
        # added (_ACC_BYTES of it, at least one row)
        acc_rows = min(c, max(1, _ACC_BYTES // max(1, d * dt.itemsize)))
        first = True
        for start in starts:
            stop = min(n, start + rows)
            b = stop - start
            xb = self.x[start:stop]
            blk = buf[:b]
            np.matmul(xb, wt, out=blk)
            if self.b is not None:
                blk += self.b
            out = self.per_sample[start:stop] if losses is None else losses[:b]
            nt = kernel_threads or row_threads(self.workers, b, c)
            prob = kernel_array(self.prob[start:stop], dt) if self.kind == "prob" else None
            _core.ce_rows(
                blk, self.index[start:stop] if self.kind == "index" else None,
                prob, options, scale[start:stop] if scale.size else None, self.scale_all,
                out, blk if want_grad else None, scratch[:nt] if self.softcap else None, nt)
            if losses is not None:
                self.block_totals[start // rows] = _core.sum_losses(
                    out if self.sw is None else out * self.sw[start:stop])
            if not want_grad:
                continue
            # blk now holds G = d loss / d logits of the block's rows
            if self.input_grad:
                np.matmul(blk, self.w, out=self.gi[start:stop])
            if first:
                np.matmul(blk.T, xb, out=gw)
                first = False
            else:
                if acc is None:
                    acc = np.empty((acc_rows, d), dt)
                for c0 in range(0, c, acc_rows):
                    c1 = min(c, c0 + acc_rows)
                    a = acc[: c1 - c0]
                    np.matmul(blk[:, c0:c1].T, xb, out=a)
                    gw[c0:c1] += a
            if gb64 is not None:
                np.add.reduce(blk, axis=0, out=colsum)
                gb64 += colsum
        return gb64


def _check_outs(out, prob, input_grad, func):
    """The out= triple (grad_input, grad_linear_weight, grad_linear_bias),
    each None or a C-contiguous writeable array of the gradient's shape and
    dtype, apart from the inputs."""
    if out is None:
        return (None, None, None)
    if not isinstance(out, tuple) or len(out) != 3:
        raise TypeError(f"{func}: out must be a tuple (grad_input, grad_linear_weight, "
                        f"grad_linear_bias) of arrays or None, got {type(out).__name__}"
                        + (f" of length {len(out)}" if isinstance(out, tuple) else ""))
    names = ("grad_input", "grad_linear_weight", "grad_linear_bias")
    shapes = (prob.input_shape, (prob.nclasses, prob.nfeatures), (prob.nclasses,))
    for i, (o, name, shape) in enumerate(zip(out, names, shapes)):
        if o is None:
            continue
        if i == 0 and not input_grad:
            raise ValueError(f"{func}: out[0] (grad_input) must be None with "
                             "input_grad=False")
        if i == 2 and prob.b is None:
            raise ValueError(f"{func}: out[2] (grad_linear_bias) must be None without "
                             "linear_bias")
        check_out(o, shape, prob.dtype, func, f"out[{i}] ({name})")
        if not (o.flags.c_contiguous and o.flags.aligned):
            raise ValueError(f"{func}: out[{i}] ({name}) must be C-contiguous and aligned")
        others = [prob.x, prob.w] + ([prob.b] if prob.b is not None else []) \
            + [p for j, p in enumerate(out) if p is not None and j != i]
        if any(np.may_share_memory(o, a) for a in others):
            raise ValueError(f"{func}: out[{i}] ({name}) overlaps an input or another "
                             "output")
    return out


_PARAMS_DOC = """
    Parameters
    ----------
    input : array_like
        Features, shape (..., D) (commonly (N, D)); float32 or float64. A
        non-C-contiguous input is copied once.
    linear_weight : array_like
        Shape (C, D), as ``torch.nn.Linear.weight``; the input's dtype. C-
        or Fortran-contiguous arrays are used as they are, others copied once.
    target : array_like
        Class indices (integer, the input's shape without its last axis), or
        class probabilities (floating, shape (..., C)), as in
        :func:`xentc.cross_entropy`.
    linear_bias : array_like, optional
        Shape (C,), the input's dtype.
    weight : array_like, optional
        A weight per class (length C; any finite value, as in
        :func:`xentc.cross_entropy`).
    sample_weight : array_like, optional
        A weight per sample (the target's shape for indices).
    ignore_index : int, optional
        Index targets equal to it contribute nothing (default -100).
    reduction : {'mean', 'sum', 'none'}, optional
        As in :func:`xentc.cross_entropy` (torch's 'mean' denominator).
    label_smoothing, z_loss, softcap : optional
        As in :func:`xentc.cross_entropy`.
    workers : int, optional
        Threads of xentc's kernels, as in :func:`xentc.logsumexp`, or for
        small C x D the Python threads running the lanes of row blocks.
        None: every core for the lanes, one thread for the kernels between
        the products otherwise (BLAS's threads hold the other cores then).
        The matrix products use NumPy's BLAS and its own thread pool (set
        with ``threadpoolctl`` or ``OPENBLAS_NUM_THREADS``). Results are
        bitwise identical for every value.
"""

_MEMORY_DOC = """
    Memory: the logits are computed for blocks of rows into one reused
    buffer of at most 51 MiB (or one row of C, if larger), plus (without
    SciPy) a 6 MiB scratch tile or (the products split over xentc's
    threads) grad_input's partial products of a block (2-8), and O(C) vectors:
    never the (N, C) logits.
"""


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None,
                         sample_weight=None, ignore_index=-100, reduction="mean",
                         label_smoothing=0.0, z_loss=0.0, softcap=None, workers=None):
    prob = _Linear("linear_cross_entropy", input, linear_weight, target, linear_bias,
                   weight, sample_weight, ignore_index, reduction, label_smoothing,
                   z_loss, softcap, workers)
    return prob.run(want_grad=False)


linear_cross_entropy.__doc__ = """Cross-entropy of a linear layer's output, without the logits.

    Equals ``cross_entropy(input @ linear_weight.T + linear_bias, target,
    ...)`` (torch's ``F.linear_cross_entropy``), computed block by block of
    rows: each block's logits by BLAS into a reused buffer, reduced by the
    cross-entropy kernels.
""" + _MEMORY_DOC + _PARAMS_DOC + """
    Returns
    -------
    loss : NumPy scalar, or ndarray for reduction='none'
        In the input's dtype (summed in float64).

    Raises
    ------
    TypeError
        For an input, weight or bias that is not float32/float64, or whose
        dtypes differ.
    ValueError
        For shapes that do not match (D between input and linear_weight, C
        between linear_weight, linear_bias, weight and probability targets).
    IndexError
        For a class index outside [0, C) that is not `ignore_index`.

    See Also
    --------
    linear_cross_entropy_and_grad, cross_entropy

    Examples
    --------
    >>> import numpy as np
    >>> import xentc
    >>> x = np.array([[1.0, 2.0], [0.5, -1.0], [0.0, 3.0]])
    >>> W = np.array([[0.1, 0.2], [-0.3, 0.4], [0.5, -0.6], [0.0, 0.1]])
    >>> b = np.array([0.0, 0.1, 0.2, 0.3])
    >>> y = np.array([1, 2, -100])
    >>> float(xentc.linear_cross_entropy(x, W, y, linear_bias=b))
    0.90687709983...
    >>> float(xentc.cross_entropy(x @ W.T + b, y))
    0.90687709983...
    """


def linear_cross_entropy_and_grad(input, linear_weight, target, *, linear_bias=None,
                                  weight=None, sample_weight=None, ignore_index=-100,
                                  reduction="mean", label_smoothing=0.0, z_loss=0.0,
                                  softcap=None, workers=None, input_grad=True, out=None):
    func = "linear_cross_entropy_and_grad"
    prob = _Linear(func, input, linear_weight, target, linear_bias, weight, sample_weight,
                   ignore_index, reduction, label_smoothing, z_loss, softcap, workers)
    if not isinstance(input_grad, (bool, np.bool_)):
        raise TypeError(f"{func}: input_grad must be a bool, got {type(input_grad).__name__}")
    outs = _check_outs(out, prob, input_grad, func)
    loss, gi, gw, gb = prob.run(want_grad=True, input_grad=bool(input_grad), outs=outs)
    return loss, gi, gw, gb


linear_cross_entropy_and_grad.__doc__ = """Linear cross-entropy and its gradients, without the logits.

    The loss of :func:`linear_cross_entropy` and its gradients with respect
    to the input, the linear weight and the bias, as torch's autograd gives
    them for ``F.linear_cross_entropy``. Each block of rows computes its
    logits once (BLAS), turns them in place into ``G = d loss / d logits``
    (the cross-entropy kernels) and accumulates ``grad_input = G @ W``,
    ``grad_linear_weight += G.T @ X``, ``grad_linear_bias += G.sum(0)``:
    three matrix products' worth of time. With ``reduction='none'`` the
    gradients are those of the sum of the per-sample losses.
""" + _MEMORY_DOC + _PARAMS_DOC + """    input_grad : bool, optional
        Compute grad_input (default True). False skips its matrix product
        and returns None in its place (a fit over fixed data needs only the
        weight and bias gradients).
    out : tuple of 3 ndarray or None, optional
        ``(grad_input, grad_linear_weight, grad_linear_bias)`` to write the
        gradients into; any may be None (then allocated). Each must be
        C-contiguous with the gradient's shape and the input's dtype, and
        overlap no input.

    Returns
    -------
    loss : NumPy scalar, or ndarray for reduction='none'
    grad_input : ndarray or None
        The input's shape; None with ``input_grad=False``.
    grad_linear_weight : ndarray
        Shape (C, D).
    grad_linear_bias : ndarray or None
        Shape (C,); None without `linear_bias`.

    See Also
    --------
    linear_cross_entropy, cross_entropy_and_grad

    Examples
    --------
    >>> import numpy as np
    >>> import xentc
    >>> x = np.array([[1.0, 2.0], [0.5, -1.0], [0.0, 3.0]])
    >>> W = np.array([[0.1, 0.2], [-0.3, 0.4], [0.5, -0.6], [0.0, 0.1]])
    >>> b = np.zeros(4)
    >>> y = np.array([1, 2, 0])
    >>> loss, gx, gW, gb = xentc.linear_cross_entropy_and_grad(x, W, y, linear_bias=b)
    >>> _, G = xentc.cross_entropy_and_grad(x @ W.T + b, y)
    >>> np.allclose(gx, G @ W), np.allclose(gW, G.T @ x), np.allclose(gb, G.sum(0))
    (True, True, True)
    >>> _, none, gW, gb = xentc.linear_cross_entropy_and_grad(x, W, y, input_grad=False)
    >>> none is None, gb is None
    (True, True)
    """
