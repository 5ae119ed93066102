/*
 * Many short rows (C up to XT_SHORT_MAX_COLS classes, e.g. 10^6 x 10).
 *
 * The per-row kernels would spend most of their time in loop set-up and
 * masked tails. Here a block of consecutive rows is handled together: the
 * row maxima by a scalar scan, then x - max for the whole block into a small
 * buffer, one vector exp over that buffer (the dispatch table's expscale, so
 * every instruction-set level is served by this one piece of code), and the
 * row sums. Each row's arithmetic depends only on that row, so results do
 * not depend on how rows are grouped into blocks or threads.
 */
#ifndef XENTC_SHORT_ROWS_H
#define XENTC_SHORT_ROWS_H

#include "dispatch.h"
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
 * mode XT_SHORT_PARTIALS:     parts[r] = partial of row r
 * out may be x itself for the softmax modes.
 */
#define XT_DEFINE_SHORT_ROWS(SUF, T)                                          \
    static void xt_short_rows_##SUF(const T *x, ptrdiff_t nrows, ptrdiff_t C, \
                                    int mode, T *out, xt_lse_partial *parts)  \
    {                                                                         \
        T tmp[XT_SHORT_TMP];                                                  \
        xt_lse_partial p[XT_SHORT_ROWS];                                      \
        if (C <= 0 || C > XT_SHORT_MAX_COLS)                                  \
            return;                                                           \
        const ptrdiff_t block = XT_SHORT_TMP / C < XT_SHORT_ROWS              \
                                    ? XT_SHORT_TMP / C                        \
                                    : XT_SHORT_ROWS;                          \
        for (ptrdiff_t r0 = 0; r0 < nrows; r0 += block) {                     \
            const ptrdiff_t nb = nrows - r0 < block ? nrows - r0 : block;     \
            const T *xb = x + r0 * C;                                         \
            for (ptrdiff_t r = 0; r < nb; r++) {                              \
                const T *row = xb + r * C;                                    \
                T m = (T)(-INFINITY);                                         \
                for (ptrdiff_t j = 0; j < C; j++)                             \
                    m = row[j] > m ? row[j] : m;                              \
                if (!isfinite(m)) {                                           \
                    p[r] = xt_special_block_##SUF(row, C);                    \
                    for (ptrdiff_t j = 0; j < C; j++)                         \
                        tmp[r * C + j] = (T)(-INFINITY);                      \
                    continue;                                                 \
                }                                                             \
                p[r].max = (double)m;                                         \
                for (ptrdiff_t j = 0; j < C; j++)                             \
                    tmp[r * C + j] = row[j] - m;                              \
            }                                                                 \
            xt_active->expscale_##SUF(tmp, nb * C, 0.0, 1.0, tmp);            \
            for (ptrdiff_t r = 0; r < nb; r++) {                              \
                if (!isfinite(p[r].max))                                      \
                    continue;                                                 \
                const T *row = xb + r * C;                                    \
                const T m = (T)p[r].max;                                      \
                double nmax = 0.0, rest = 0.0;                                \
                for (ptrdiff_t j = 0; j < C; j++) {                           \
                    if (row[j] == m)                                          \
                        nmax += 1.0;                                          \
                    else                                                      \
                        rest += (double)tmp[r * C + j];                       \
                }                                                             \
                p[r].nmax = nmax;                                             \
                p[r].rest = rest;                                             \
                p[r].flags = 0;                                               \
            }                                                                 \
            for (ptrdiff_t r = 0; r < nb; r++) {                              \
                const T *row = xb + r * C;                                    \
                T *orow = out ? out + (r0 + r) * C : NULL;                    \
                switch (mode) {                                               \
                case XT_SHORT_LSE:                                            \
                    out[r0 + r] = (T)xt_partial_lse(p[r]);                    \
                    break;                                                    \
                case XT_SHORT_PARTIALS:                                       \
                    parts[r0 + r] = p[r];                                     \
                    break;                                                    \
                case XT_SHORT_SOFTMAX:                                        \
                    if (xt_partial_is_special(p[r])) {                        \
                        xt_softmax_special_##SUF(row, C, p[r], orow);         \
                    } else {                                                  \
                        double inv = 1.0 / xt_partial_sum(p[r]);              \
                        for (ptrdiff_t j = 0; j < C; j++)                     \
                            orow[j] = (T)((double)tmp[r * C + j] * inv);      \
                    }                                                         \
                    break;                                                    \
                default:                                                      \
                    if (xt_partial_is_special(p[r])) {                        \
                        xt_log_softmax_special_##SUF(row, C, p[r], orow);     \
                    } else {                                                  \
                        double ls = log(xt_partial_sum(p[r]));                \
                        for (ptrdiff_t j = 0; j < C; j++)                     \
                            orow[j] = (T)(((double)row[j] - p[r].max) - ls);  \
                    }                                                         \
                }                                                             \
            }                                                                 \
        }                                                                     \
    }

XT_DEFINE_SHORT_ROWS(f32, float)
XT_DEFINE_SHORT_ROWS(f64, double)

#endif
