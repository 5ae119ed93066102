/*
 * softmax / log_softmax of a row slice, given the partial of the whole row:
 * the per-row step shared by the short-row loop (partial and write while the
 * row is in cache) and the long-row loop (partials per chunk, then writes).
 */
#ifndef XENTC_SOFTMAX_ROWS_H
#define XENTC_SOFTMAX_ROWS_H

#include "dispatch.h"
#include "row_special.h"

#define XT_DEFINE_SOFTMAX_SLICE(SUF, T)                                       \
    static inline void xt_softmax_slice_##SUF(const T *x, ptrdiff_t n,        \
                                              xt_lse_partial row, int take_log, \
                                              T *out)                         \
    {                                                                         \
        if (xt_partial_is_special(row)) {                                     \
            if (take_log)                                                     \
                xt_log_softmax_special_##SUF(x, n, row, out);                 \
            else                                                              \
                xt_softmax_special_##SUF(x, n, row, out);                     \
            return;                                                           \
        }                                                                     \
        double total = xt_partial_sum(row);                                   \
        if (take_log)                                                         \
            xt_active->shift_##SUF(x, n, row.max, log(total), out);           \
        else                                                                  \
            xt_active->expscale_##SUF(x, n, row.max, 1.0 / total, out);       \
    }

/* softmax / log_softmax of a whole row that fits in cache. softmax keeps
 * the exps of the reduction (partial_store) and rescales them: one exp per
 * element instead of two. The product is the one expscale makes
 * (exp(x - max) rounded to T, times 1 / sum rounded to T), so the result
 * has the same bits as the two-exp route. */
#define XT_DEFINE_SOFTMAX_ROW(SUF, T)                                         \
    static inline void xt_softmax_row_##SUF(const T *x, ptrdiff_t n,          \
                                            int take_log, T *out)             \
    {                                                                         \
        xt_lse_partial p;                                                     \
        if (take_log) {                                                       \
            xt_softmax_slice_##SUF(x, n, xt_active->partial_##SUF(x, n), 1, out);\
            return;                                                           \
        }                                                                     \
        if (xt_active->partial_store_##SUF(x, n, out, &p)) {                  \
            xt_active->scale_##SUF(out, n, 1.0 / xt_partial_sum(p));          \
            return;                                                           \
        }                                                                     \
        xt_softmax_slice_##SUF(x, n, p, 0, out);                              \
    }

XT_DEFINE_SOFTMAX_SLICE(f32, float)
XT_DEFINE_SOFTMAX_SLICE(f64, double)
XT_DEFINE_SOFTMAX_ROW(f32, float)
XT_DEFINE_SOFTMAX_ROW(f64, double)

#endif
