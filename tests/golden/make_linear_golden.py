#!/usr/bin/env python
"""Generate golden cases for xentc.linear_cross_entropy(_and_grad) from PyTorch (CPU).

Run with an interpreter that has ``torch`` (2.13, which has
``F.linear_cross_entropy``) and ``numpy``::

    python tests/golden/make_linear_golden.py      # rewrites linear_cross_entropy_golden.npz
    python tests/golden/make_linear_golden.py -o out.npz

The tests that read the file need only NumPy. Inputs are small integers
scaled by powers of two (exact in float32 and float64), drawn from NumPy
generators seeded per input set and stored as int8 codes, so the archive
stays small; it is written with fixed zip timestamps (byte-identical on a
re-run with the same torch).

References, under torch's autograd (``loss.sum().backward()``: the gradient
of the sum of the per-sample losses for reduction='none'):

- options torch has (class weights, ignore_index, label smoothing, bias,
  probability targets, the three reductions): ``F.linear_cross_entropy``
  itself, checked here against its chunked variant
  (``options=LinearCrossEntropyOptions()``);
- xentc's extensions (z_loss, softcap, sample_weight): the formula of
  tests/ce_reference.py written in torch on ``F.linear(input, W, b)``.

Layout of the ``.npz``
----------------------
``cases_json``
    JSON list of cases: ``id``, ``name``, ``set`` (the input set), ``dtype``,
    ``bias``, ``weight``, ``sample_weight``, ``target_kind``,
    ``ignore_index``, ``reduction``, ``label_smoothing``, ``z_loss``,
    ``softcap`` (null for none), ``reference`` (``"linear_cross_entropy"``
    or ``"formula"``).
``sets_json``
    JSON list of input sets: ``name``, ``N``, ``D``, ``C``, ``x_scale``,
    ``w_scale``, ``b_scale``, ``cw_scale``, ``sw_scale`` (value = codes * scale).
``s{k}_x``, ``s{k}_w``, ``s{k}_b`` (int8 codes), ``s{k}_y`` (int64 class
indices, with -100 at ignored rows and class 1 often present),
``s{k}_q_codes`` (uint8; the probability targets are
``q = codes / codes.sum(axis=1, keepdims=True)`` in float64, then the
case's dtype; only for C <= 4096),
``s{k}_cw``, ``s{k}_sw`` (uint8 codes of the class and sample weights).
``c{i}_loss``, ``c{i}_gx``, ``c{i}_gw``, ``c{i}_gb``
    torch's loss (0-d, or (N,) for 'none') and gradients in the case's
    dtype. For C > 4096 only the rows ``s{k}_rows`` of grad_W and the
    elements ``s{k}_rows`` of grad_b are stored (the targets' classes, the
    first and last 16, and 200 drawn ones).
``info_json``
    torch / numpy versions used.
"""
import argparse
import json
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.modules.linear_cross_entropy_options import LinearCrossEntropyOptions

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "linear_cross_entropy_golden.npz")
BASE_SEED = 20261130

# (name, N, D, C): C from 2 to 128256, shapes that divide nothing in particular
SETS = [
    ("tiny", 1, 1, 2),
    ("c2", 5, 3, 2),
    ("c7", 37, 8, 7),
    ("c50", 60, 8, 50),
    ("c1000", 41, 5, 1000),
    ("c32000", 19, 4, 32000),
    ("c128256", 6, 2, 128256),
]
# Above this many classes only some rows of grad_W (and elements of grad_b)
# are stored, and probability targets are not tried (an N x C array).
SUBSET_ABOVE = 256
PROB_MAX_CLASSES = 4096


def make_set(k, name, n, d, c):
    rng = np.random.default_rng([BASE_SEED, k])
    x = rng.integers(-64, 64, size=(n, d), dtype=np.int8)
    w = rng.integers(-16, 16, size=(c, d), dtype=np.int8)
    b = rng.integers(-16, 16, size=c, dtype=np.int8)
    y = rng.integers(0, c, size=n).astype(np.int64)
    if n >= 3:
        y[1] = min(1, c - 1)            # class 1 present (a custom ignore_index)
        y[n // 2] = -100                # an ignored row
    q_codes = rng.integers(0, 256, size=(n, c), dtype=np.uint8)
    cw = rng.integers(16, 128, size=c, dtype=np.uint8)     # weights codes / 64
    sw = rng.integers(0, 192, size=n, dtype=np.uint8)      # sample weights codes / 64
    arrays = dict(x=x, w=w, b=b, y=y, cw=cw, sw=sw)
    if c <= PROB_MAX_CLASSES:
        arrays["q_codes"] = q_codes
    if c <= SUBSET_ABOVE:
        rows = None
    else:
        picked = rng.choice(c, size=100, replace=False)
        rows = np.unique(np.concatenate([y[y >= 0], np.arange(16), np.arange(c - 16, c),
                                         picked])).astype(np.int64)
        arrays["rows"] = rows
    meta = dict(name=name, N=n, D=d, C=c, x_scale=1 / 32, w_scale=1 / 16, b_scale=1 / 8,
                cw_scale=1 / 64, sw_scale=1 / 64)
    return meta, arrays, rows


# option variants: (name, options); applied to every input set
VARIANTS = [
    ("plain", {}),
    ("bias", dict(bias=True)),
    ("weight", dict(bias=True, weight=True)),
    ("ignore_class1", dict(ignore_index=1)),
    ("smoothing", dict(bias=True, weight=True, label_smoothing=0.1)),
    ("sum", dict(bias=True, reduction="sum")),
    ("none", dict(bias=True, weight=True, reduction="none")),
    ("prob", dict(target_kind="prob", bias=True, label_smoothing=0.2)),
    ("prob_weight_sum", dict(target_kind="prob", weight=True, reduction="sum")),
    ("z_loss", dict(bias=True, z_loss=1e-2)),
    ("softcap", dict(bias=True, softcap=1.5)),
    ("sample_weight", dict(bias=True, weight=True, sample_weight=True)),
    ("everything", dict(bias=True, weight=True, sample_weight=True, label_smoothing=0.3,
                        z_loss=1e-3, softcap=2.0, ignore_index=1)),
    ("everything_none", dict(bias=True, weight=True, sample_weight=True,
                             label_smoothing=0.3, z_loss=1e-3, softcap=2.0,
                             reduction="none")),
    ("all_ignored", dict(bias=True, all_ignored=True)),
]


def prob_targets(codes):
    """Probability rows from uint8 codes (the tests repeat this expression)."""
    q = codes.astype(np.float64)
    return q / q.sum(axis=1, keepdims=True)


def case_targets(y, m):
    """The set's class indices for case m (the tests repeat this): the
    ignored row marked with the case's ignore_index, or every row ignored."""
    y = y.copy()
    y[y == -100] = m["ignore_index"]
    if m["all_ignored"]:
        y[:] = m["ignore_index"]
    return y


def case_meta(variant, opts, set_id, dtype):
    m = dict(set=set_id, dtype=dtype, bias=False, weight=False, sample_weight=False,
             target_kind="index", ignore_index=-100, reduction="mean", label_smoothing=0.0,
             z_loss=0.0, softcap=None, all_ignored=False)
    m.update(opts)
    m["reference"] = ("formula" if m["z_loss"] or m["softcap"] or m["sample_weight"]
                      else "linear_cross_entropy")
    return m


def torch_case(m, meta, arrays):
    dt = torch.float32 if m["dtype"] == "float32" else torch.float64
    x = torch.tensor(arrays["x"].astype(np.float64) * meta["x_scale"], dtype=dt,
                     requires_grad=True)
    w = torch.tensor(arrays["w"].astype(np.float64) * meta["w_scale"], dtype=dt,
                     requires_grad=True)
    b = (torch.tensor(arrays["b"].astype(np.float64) * meta["b_scale"], dtype=dt,
                      requires_grad=True) if m["bias"] else None)
    cw = (torch.tensor(arrays["cw"] * meta["cw_scale"], dtype=dt) if m["weight"]
          else None)
    y = case_targets(arrays["y"], m)
    if m["target_kind"] == "prob":
        target = torch.tensor(prob_targets(arrays["q_codes"]), dtype=dt)
    else:
        target = torch.from_numpy(y)
    kw = dict(weight=cw, reduction=m["reduction"], label_smoothing=m["label_smoothing"])
    if m["target_kind"] == "index":
        kw["ignore_index"] = m["ignore_index"]

    if m["reference"] == "linear_cross_entropy":
        loss = F.linear_cross_entropy(x, w, target, linear_bias=b, **kw)
        # the chunked variant must agree (a check of the reference itself)
        # where it applies (it falls back with a warning otherwise)
        if m["label_smoothing"] or m["target_kind"] != "index":
            return finish(loss, x, w, b)
        xc, wc = x.detach().clone(), w.detach().clone()
        bc = None if b is None else b.detach().clone()
        chunked = F.linear_cross_entropy(xc, wc, target, linear_bias=bc,
                                         options=LinearCrossEntropyOptions(), **kw)
        tol = 1e-5 if dt == torch.float32 else 1e-12
        assert torch.allclose(loss.detach(), chunked, rtol=tol, atol=tol, equal_nan=True), \
            (m, loss, chunked)
    else:
        logits = F.linear(x, w, b)
        if m["softcap"]:
            logits = m["softcap"] * torch.tanh(logits / m["softcap"])
        ce_kw = dict(kw, reduction="none")
        per = F.cross_entropy(logits, target, **ce_kw)
        lse = torch.logsumexp(logits, dim=1)
        if m["target_kind"] == "index":
            valid = torch.from_numpy(y != m["ignore_index"])
            safe = torch.from_numpy(np.where(y != m["ignore_index"], y, 0))
            wy = valid.to(dt) if cw is None else torch.where(valid, cw[safe], 0.0)
        else:
            valid = torch.ones(len(y), dtype=torch.bool)
            wy = torch.ones(len(y), dtype=dt)
        per = per + m["z_loss"] * lse ** 2 * valid
        sw = torch.tensor(arrays["sw"] * meta["sw_scale"], dtype=dt) if m["sample_weight"] else torch.ones_like(wy)
        per = per * sw
        if m["reduction"] == "none":
            loss = per
        elif m["reduction"] == "sum":
            loss = per.sum()
        else:
            loss = per.sum() / (wy * sw).sum()
    return finish(loss, x, w, b)


def finish(loss, x, w, b):
    loss.sum().backward()
    out = dict(loss=loss.detach().numpy().copy(), gx=x.grad.numpy().copy(),
               gw=w.grad.numpy().copy())
    if b is not None:
        out["gb"] = b.grad.numpy().copy()
    return out


def build():
    arrays, sets, cases = {}, [], []
    for k, (name, n, d, c) in enumerate(SETS):
        meta, arrs, rows = make_set(k, name, n, d, c)
        sets.append(dict(meta, id=k))
        for key, a in arrs.items():
            arrays[f"s{k}_{key}"] = a
        for vname, opts in VARIANTS:
            if opts.get("target_kind") == "prob" and c > PROB_MAX_CLASSES:
                continue
            for dtype in ("float32", "float64"):
                m = case_meta(vname, opts, k, dtype)
                m["name"] = f"{name}-{vname}-{dtype}"
                i = len(cases)
                m["id"] = i
                got = torch_case(m, meta, arrs)
                if rows is not None:
                    got["gw"] = got["gw"][rows]
                    if "gb" in got:
                        got["gb"] = got["gb"][rows]
                for key, a in got.items():
                    arrays[f"c{i}_{key}"] = a
                cases.append(m)
    arrays["cases_json"] = np.array(json.dumps(cases))
    arrays["sets_json"] = np.array(json.dumps(sets))
    arrays["info_json"] = np.array(json.dumps(dict(torch=torch.__version__,
                                                   numpy=np.__version__)))
    return arrays


def save(arrays, path):
    # the same deterministic zip writer as the cross-entropy golden data
    from make_golden import write_npz_deterministic

    write_npz_deterministic(path, arrays)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=DEFAULT_OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)  # single-threaded reductions: a stable summation order
    arrays = build()
    save(arrays, args.output)
    ncases = len(json.loads(str(arrays["cases_json"])))
    print(f"wrote {ncases} cases to {args.output} ({os.path.getsize(args.output)} bytes)")


if __name__ == "__main__":
    main()
