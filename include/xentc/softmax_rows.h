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

XT_DEFINE_SOFTMAX_SLICE(f32, float)
XT_DEFINE_SOFTMAX_SLICE(f64, double)

#endif
