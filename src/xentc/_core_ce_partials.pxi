# Cross-entropy partials (CEPartial): shard statistics, merge, per-sample loss.
# (included by _core.pyx: one extension module, one dispatch table)

# ---- cross-entropy partials (xentc.CEPartial) -------------------------------
from libc.math cimport INFINITY, NAN

# One arithmetic for the partials: the kernels' own xt_ce_stats (sums of
# weighted logits taken relative to the row's max, xt_ce_shift), its merge
# and xt_ce_index_loss, so that _partials.py holds no copy of them.
# Per-sample columns of CEPartial's format 2 (_partials._COLUMNS).
cdef enum:
    CEP_MAX = 0
    CEP_NMAX = 1
    CEP_REST = 2
    CEP_FLAGS = 3
    CEP_WX = 4
    CEP_TARGET_LOGIT = 5
    CEP_TARGET_WEIGHT = 6
    CEP_HITS = 7
    CEP_IGNORED = 8
    CEP_NCOLS = 9

# local_target values besides an index into the shard
cdef enum:
    CEP_OUTSIDE = -1
    CEP_IGNORE = -2


def ce_partial_rows(const real[:, ::1] x, const long long[::1] local_target,
                    const double[::1] class_weight, bint has_weight, double softcap,
                    bint want_sums, real[:, ::1] scratch, double[:, ::1] out,
                    int nthreads):
    """CEPartial columns of every row of a shard of the classes: the
    log-sum-exp partial of the (capped) row, wx = sum_c w_c (x_c - shift)
    (with want_sums; 0 otherwise), and where local_target[i] is an index
    into the shard its (capped) logit, class weight and a hit.
    local_target: -1 for a target outside the shard, -2 for an ignored one.
    scratch: (nthreads, ncols) for a soft cap, else unused."""
    cdef Py_ssize_t nrows = x.shape[0], ncols = x.shape[1], i
    cdef long long y
    cdef int tid
    cdef const real *row
    cdef xt_ce_stats st
    cdef const double *w = &class_weight[0] if has_weight else NULL
    _expect("ce_partial_rows", "len(local_target)", local_target.shape[0], nrows)
    _expect("ce_partial_rows", "out.shape[0]", out.shape[0], nrows)
    _expect("ce_partial_rows", "out.shape[1]", out.shape[1], CEP_NCOLS)
    if has_weight:
        _expect("ce_partial_rows", "len(class_weight)", class_weight.shape[0], ncols)
    if softcap > 0.0 and ncols:
        _expect("ce_partial_rows", "scratch.shape[0]", scratch.shape[0], nthreads)
        _expect("ce_partial_rows", "scratch.shape[1]", scratch.shape[1], ncols)
    for i in range(nrows):
        y = local_target[i]
        if y >= ncols or y < CEP_IGNORE:
            raise ValueError(f"xentc._core.ce_partial_rows: local_target[{i}] is {y}, "
                             f"expected < {ncols} and >= -2")
    for i in prange(nrows, nogil=True, num_threads=nthreads, schedule="static"):
        tid = threadid()
        y = local_target[i]
        if ncols == 0:
            st.lse.max = -INFINITY
            st.lse.nmax = 0.0
            st.lse.rest = 0.0
            st.lse.flags = 0
            st.wx = 0.0
        else:
            row = _capped(&x[i, 0], ncols, softcap,
                          &scratch[tid, 0] if softcap > 0.0 else <real *> NULL)
            st = _stats(row, ncols, w, <const real *> NULL, want_sums)
        out[i, CEP_MAX] = st.lse.max
        out[i, CEP_NMAX] = st.lse.nmax
        out[i, CEP_REST] = st.lse.rest
        out[i, CEP_FLAGS] = st.lse.flags
        out[i, CEP_WX] = st.wx if want_sums else 0.0
        if y >= 0:
            out[i, CEP_TARGET_LOGIT] = row[y]
            out[i, CEP_TARGET_WEIGHT] = w[y] if has_weight else 1.0
            out[i, CEP_HITS] = 1.0
        else:
            out[i, CEP_TARGET_LOGIT] = 0.0
            out[i, CEP_TARGET_WEIGHT] = 0.0
            out[i, CEP_HITS] = 0.0
        out[i, CEP_IGNORED] = 1.0 if y == CEP_IGNORE else 0.0


cdef inline xt_ce_stats _cep_stats(const double[:, ::1] p, Py_ssize_t i,
                                   double weight_total) noexcept nogil:
    cdef xt_ce_stats st
    st.lse.max = p[i, CEP_MAX]
    st.lse.nmax = p[i, CEP_NMAX]
    st.lse.rest = p[i, CEP_REST]
    st.lse.flags = <int> p[i, CEP_FLAGS]
    st.w = weight_total
    st.wx = p[i, CEP_WX]
    st.wq = 0.0
    st.wqx = 0.0
    return st


def ce_merge_partials(const double[:, ::1] p, double p_weight_total,
                      const double[:, ::1] q, double q_weight_total, double[:, ::1] out):
    """Row-wise merge of two CEPartial column arrays (n, 9) of disjoint
    shards, with xt_ce_stats_merge (wx moved to the merged shift); the
    target columns add (one shard at most holds a target)."""
    cdef Py_ssize_t i, n = p.shape[0]
    cdef xt_ce_stats r
    for name, buf in (("p", p), ("q", q), ("out", out)):
        _expect("ce_merge_partials", name + ".shape[0]", buf.shape[0], n)
        _expect("ce_merge_partials", name + ".shape[1]", buf.shape[1], CEP_NCOLS)
    for i in range(n):
        r = xt_ce_stats_merge(_cep_stats(p, i, p_weight_total),
                              _cep_stats(q, i, q_weight_total))
        out[i, CEP_MAX] = r.lse.max
        out[i, CEP_NMAX] = r.lse.nmax
        out[i, CEP_REST] = r.lse.rest
        out[i, CEP_FLAGS] = r.lse.flags
        out[i, CEP_WX] = r.wx
        out[i, CEP_TARGET_LOGIT] = p[i, CEP_TARGET_LOGIT] + q[i, CEP_TARGET_LOGIT]
        out[i, CEP_TARGET_WEIGHT] = p[i, CEP_TARGET_WEIGHT] + q[i, CEP_TARGET_WEIGHT]
        out[i, CEP_HITS] = p[i, CEP_HITS] + q[i, CEP_HITS]
        out[i, CEP_IGNORED] = p[i, CEP_IGNORED]


def ce_finalize_partials(const double[:, ::1] p, Py_ssize_t nclasses,
                         double weight_total, double smoothing, double z_loss, int term,
                         double[::1] out):
    """Per-sample losses of merged CEPartial columns (n, 9) by the kernels'
    xt_ce_index_loss (0 for ignored samples). term -1: the loss; 0, 1, 2:
    the NLL term w_y (lse - x_y), the smoothing sum W lse - sum w x, the
    z-loss lse^2 alone, unscaled (a 'mean' over a zero denominator divides
    them apart, _targets.mean_of)."""
    cdef Py_ssize_t i, n = p.shape[0]
    cdef xt_ce_stats st
    cdef xt_ce_options o
    cdef double ls, m
    _expect("ce_finalize_partials", "p.shape[1]", p.shape[1], CEP_NCOLS)
    _expect("ce_finalize_partials", "len(out)", out.shape[0], n)
    if term < -1 or term > 2:
        raise ValueError(f"xentc._core.ce_finalize_partials: term is {term}, "
                         "expected -1, 0, 1 or 2")
    o.nclasses = nclasses if nclasses > 0 else 1
    o.class_weight = NULL
    o.weight_total = weight_total
    o.softcap = 0.0
    o.smoothing = smoothing if term == -1 else (1.0 if term == 1 else 0.0)
    o.z_loss = z_loss if term == -1 else (1.0 if term == 2 else 0.0)
    for i in range(n):
        if p[i, CEP_IGNORED] != 0.0:
            out[i] = 0.0
            continue
        st = _cep_stats(p, i, weight_total)
        ls = xt_ce_log_sum(st.lse)
        m = st.lse.max
        if term == 2:
            out[i] = z_loss * (m + ls) * (m + ls)  # NaN for a special row, as ls
        elif term == 1:
            # smoothing 1: the loss is the smoothing sum over C
            out[i] = xt_ce_index_loss(&o, &st, ls, m, 0.0, 0.0) * o.nclasses
        else:
            out[i] = xt_ce_index_loss(&o, &st, ls, m, p[i, CEP_TARGET_LOGIT],
                                      p[i, CEP_TARGET_WEIGHT])
