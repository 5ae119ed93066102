/*
 * Many short rows (C up to XT_SHORT_MAX_COLS classes, e.g. 10^6 x 10).
 *
 * The per-row kernels would spend most of their time in loop set-up and
 * masked tails. Here a block of consecutive rows is handled together: the
 * row maxima by a scalar scan, then x - max for the whole block into a small
 * buffer, one vector exp over that buffer (the caller's level's expscale,
 * so every instruction-set level is served by this one piece of code), and
 * the row sums. Each row's arithmetic depends only on that row, so results do
 * not depend on how rows are grouped into blocks or threads.
 */
#ifndef XENTC_SHORT_ROWS_H
#define XENTC_SHORT_ROWS_H

#include "kernels_baseline.h"
#include "row_special.h"

#define XT_SHORT_MAX_COLS 32
/* Elements of the block buffer and rows of a block: about 16 KB of stack
 * per call, small enough for any thread's stack (musl gives 128 KB). */
#define XT_SHORT_TMP 2048
#define XT_SHORT_ROWS 128

enum { XT_SHORT_LSE = 0, XT_SHORT_SOFTMAX = 1, XT_SHORT_LOG_SOFTMAX = 2,
       XT_SHORT_PARTIALS = 3 };

/*
 * mode XT_SHORT_LSE:          out[r] = logsumexp(row r)          (out: nrows)
 * mode XT_SHORT_SOFTMAX:      out[r, :] = softmax(row r)         (out: nrows x C)
 * mode XT_SHORT_LOG_SOFTMAX:  out[r, :] = log_softmax(row r)
 * mode XT_SHORT_PARTIALS:     parts[r] = partial of row r, and, when
 *                             logsum is not NULL, logsum[r] its
 *                             log(sum(exp(x - max))) = lse - max in double
 *                             (NaN for a special row; see
 *                             xt_partial_log_sum)
 * out may be x itself for the softmax modes.
 */
#define XT_DEFINE_SHORT_ROWS(SUF, T)                                          \
    static void xt_short_rows_generic_##SUF(                                  \
        const T *x, ptrdiff_t nrows, ptrdiff_t C, int mode, T *out,           \
        xt_lse_partial *parts, double *logsum, xt_map_##SUF##_fn expscale)    \
    {                                                                         \
        T tmp[XT_SHORT_TMP];                                                  \
        xt_lse_partial local[XT_SHORT_ROWS];                                  \
        if (C <= 0 || C > XT_SHORT_MAX_COLS)                                  \
            return;                                                           \
        const ptrdiff_t block = XT_SHORT_TMP / C < XT_SHORT_ROWS              \
                                    ? XT_SHORT_TMP / C                        \
                                    : XT_SHORT_ROWS;                          \
        for (ptrdiff_t r0 = 0; r0 < nrows; r0 += block) {                     \
            const ptrdiff_t nb = nrows - r0 < block ? nrows - r0 : block;     \
            const T *xb = x + r0 * C;                                         \
            /* Partials go straight to the caller's array when it wants     \
             * them (no struct copies). */                                    \
            xt_lse_partial *p = mode == XT_SHORT_PARTIALS ? parts + r0 : local;\
            for (ptrdiff_t r = 0; r < nb; r++) {                              \
                const T *row = xb + r * C;                                    \
                T *d = tmp + r * C;                                           \
                T m = (T)(-INFINITY);                                         \
                for (ptrdiff_t j = 0; j < C; j++)                             \
                    m = row[j] > m ? row[j] : m;                              \
                if (!isfinite(m)) {                                           \
                    p[r] = xt_special_block_##SUF(row, C);                    \
                    for (ptrdiff_t j = 0; j < C; j++)                         \
                        d[j] = (T)(-INFINITY);                                \
                    continue;                                                 \
                }                                                             \
                /* x - m is 0 exactly at the maxima: count them there and    \
                 * send them to exp as -inf, so the sum below holds the      \
                 * other elements only (NaN stays NaN). */                    \
                T count = 0;                                                  \
                for (ptrdiff_t j = 0; j < C; j++) {                           \
                    T dj = row[j] - m;                                        \
                    count += (T)(dj == 0);                                    \
                    d[j] = dj == 0 ? (T)(-INFINITY) : dj;                     \
                }                                                             \
                p[r].max = (double)m;                                         \
                p[r].nmax = (double)count;                                    \
                p[r].flags = 0;                                               \
            }                                                                 \
            expscale(tmp, nb * C, 0.0, 1.0, tmp);                 \
            for (ptrdiff_t r = 0; r < nb; r++) {                              \
                if (p[r].flags || !isfinite(p[r].max)) {                      \
                    p[r].rest = 0.0;                                          \
                    continue;                                                 \
                }                                                             \
                const T *e = tmp + r * C;                                     \
                double rest0 = 0.0, rest1 = 0.0;                              \
                ptrdiff_t j = 0;                                              \
                for (; j + 1 < C; j += 2) {                                   \
                    rest0 += (double)e[j];                                    \
                    rest1 += (double)e[j + 1];                                \
                }                                                             \
                if (j < C)                                                    \
                    rest0 += (double)e[j];                                    \
                p[r].rest = rest0 + rest1;                                    \
            }                                                                 \
            if (mode == XT_SHORT_PARTIALS) {                                  \
                if (logsum)                                                   \
                    for (ptrdiff_t r = 0; r < nb; r++)                        \
                        logsum[r0 + r] = xt_partial_is_special(p[r])          \
                                             ? NAN : xt_partial_log_sum(p[r]);\
                continue;                                                     \
            }                                                                 \
            for (ptrdiff_t r = 0; r < nb; r++) {                              \
                const T *row = xb + r * C;                                    \
                T *orow = mode == XT_SHORT_LSE ? NULL : out + (r0 + r) * C;   \
                if (mode == XT_SHORT_LSE) {                                   \
                    out[r0 + r] = (T)xt_partial_lse(p[r]);                    \
                } else if (xt_partial_is_special(p[r])) {                     \
                    if (mode == XT_SHORT_SOFTMAX)                             \
                        xt_softmax_special_##SUF(row, C, p[r], orow);         \
                    else                                                      \
                        xt_log_softmax_special_##SUF(row, C, p[r], orow);     \
                } else if (mode == XT_SHORT_SOFTMAX) {                        \
                    const T m = (T)p[r].max;                                  \
                    const T *e = tmp + r * C;                                 \
                    double inv = 1.0 / xt_partial_sum(p[r]);                  \
                    for (ptrdiff_t j = 0; j < C; j++)                         \
                        orow[j] = (T)((row[j] == m ? 1.0 : (double)e[j]) * inv); \
                } else {                                                      \
                    double ls = log(xt_partial_sum(p[r]));                    \
                    for (ptrdiff_t j = 0; j < C; j++)                         \
                        orow[j] = (T)(((double)row[j] - p[r].max) - ls);      \
                }                                                             \
            }                                                                 \
        }                                                                     \
    }

XT_DEFINE_SHORT_ROWS(f32, float)
XT_DEFINE_SHORT_ROWS(f64, double)

/*
 * The vector short-row kernels (algo/short_rows.h)
 * take a group of W rows at a time, one row per lane, and hand what each
 * lane found to xt_short_emit_*, which writes the group's rows in the
 * caller's mode:
 *   mm, cc, rr:  row max, count of maxima and sum of the other exps;
 *   ls:          the row's log-sum-exp (LSE, LOG_SOFTMAX), or its log-sum-exp
 *                less the max (PARTIALS with logsum);
 *   e:           SOFTMAX only: the softmax, column by column (e[W j + l] is
 *                row l, class j);
 *   g:           the group's rows of x; out, parts, logsum as for the kernel,
 *                already offset to the group's first row.
 */
#define XT_DEFINE_SHORT_EMIT(SUF, T)                                          \
    static inline void xt_short_emit_##SUF(                                   \
        int mode, const T *g, ptrdiff_t C, int W, const double *mm,           \
        const double *cc, const double *rr, const double *ls, const T *e,     \
        T *out, xt_lse_partial *parts, double *logsum)                        \
    {                                                                         \
        if (mode == XT_SHORT_LSE) {                                           \
            for (int l = 0; l < W; l++)                                       \
                out[l] = (T)ls[l];                                            \
        } else if (mode == XT_SHORT_LOG_SOFTMAX) {                            \
            for (int l = 0; l < W; l++)                                       \
                for (ptrdiff_t j = 0; j < C; j++)                             \
                    out[l * C + j] = (T)((double)g[l * C + j] - ls[l]);       \
        } else if (mode == XT_SHORT_SOFTMAX) {                                \
            for (int l = 0; l < W; l++)                                       \
                for (ptrdiff_t j = 0; j < C; j++)                             \
                    out[l * C + j] = e[W * j + l];                            \
        } else {                                                              \
            for (int l = 0; l < W; l++) {                                     \
                parts[l].max = mm[l];                                         \
                parts[l].nmax = cc[l];                                        \
                parts[l].rest = rr[l];                                        \
                parts[l].flags = 0;                                           \
                if (logsum)                                                   \
                    logsum[l] = ls[l];                                        \
            }                                                                 \
        }                                                                     \
    }
XT_DEFINE_SHORT_EMIT(f32, float)
XT_DEFINE_SHORT_EMIT(f64, double)

/* A group's place in out (per row for LSE, per element for the softmax
 * modes, unused for PARTIALS). A macro: it serves float and double. */
#define xt_short_out(mode, out, r0, C)                                        \
    ((mode) == XT_SHORT_LSE ? (out) + (r0)                                    \
     : (mode) == XT_SHORT_PARTIALS ? NULL : (out) + (r0) * (C))

/* Does the mode need the rows' log-sum-exp? */
#define xt_short_wants_lse(mode, logsum)                                      \
    ((mode) == XT_SHORT_LSE || (mode) == XT_SHORT_LOG_SOFTMAX ||              \
     ((mode) == XT_SHORT_PARTIALS && (logsum) != NULL))

/* Groups ahead whose rows the vector kernels prefetch: their gathers touch
 * 8-16 rows at once, which the hardware prefetcher does not follow far
 * enough (10^6 x 10 float32 ran at 40% of the read bandwidth without). */
#define XT_SHORT_PREFETCH_GROUPS 4

static inline void xt_short_prefetch(const void *group, ptrdiff_t bytes)
{
    /* integer arithmetic: the address may lie past the array (a prefetch
     * never faults, but such a pointer would be undefined behaviour) */
    uintptr_t p = (uintptr_t)group + (uintptr_t)(XT_SHORT_PREFETCH_GROUPS * bytes);
    for (ptrdiff_t b = 0; b < bytes; b += 64)
        __builtin_prefetch((const void *)(p + (uintptr_t)b));
}

static void xt_short_rows_f32_baseline(const float *x, ptrdiff_t nrows, ptrdiff_t C,
                                       int mode, float *out, xt_lse_partial *parts,
                                       double *logsum)
{
    xt_short_rows_generic_f32(x, nrows, C, mode, out, parts, logsum,
                               xt_expscale_f32_baseline);
}

static void xt_short_rows_f64_baseline(const double *x, ptrdiff_t nrows, ptrdiff_t C,
                                       int mode, double *out, xt_lse_partial *parts,
                                       double *logsum)
{
    xt_short_rows_generic_f64(x, nrows, C, mode, out, parts, logsum,
                               xt_expscale_f64_baseline);
}

#endif
