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
 * mode XT_SHORT_PARTIALS:     parts[r] = partial of row r, and lse[r] its
 *                             log-sum-exp in double when lse is not NULL
 * out may be x itself for the softmax modes.
 */
#define XT_DEFINE_SHORT_ROWS(SUF, T)                                          \
    static void xt_short_rows_generic_##SUF(                                  \
        const T *x, ptrdiff_t nrows, ptrdiff_t C, int mode, T *out,           \
        xt_lse_partial *parts, double *lse, xt_map_##SUF##_fn expscale)       \
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
                if (lse)                                                      \
                    for (ptrdiff_t r = 0; r < nb; r++)                        \
                        lse[r0 + r] = xt_partial_lse(p[r]);                   \
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

static void xt_short_rows_f32_baseline(const float *x, ptrdiff_t nrows, ptrdiff_t C,
                                       int mode, float *out, xt_lse_partial *parts,
                                       double *lse)
{
    xt_short_rows_generic_f32(x, nrows, C, mode, out, parts, lse,
                               xt_expscale_f32_baseline);
}

static void xt_short_rows_f64_baseline(const double *x, ptrdiff_t nrows, ptrdiff_t C,
                                       int mode, double *out, xt_lse_partial *parts,
                                       double *lse)
{
    xt_short_rows_generic_f64(x, nrows, C, mode, out, parts, lse,
                               xt_expscale_f64_baseline);
}

#endif
