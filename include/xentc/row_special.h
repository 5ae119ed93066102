/*
 * softmax / log_softmax of a row whose partial is "special" (holds NaN or
 * +inf, or is all -inf). The values reproduce scipy.special's arithmetic on
 * such rows:
 *   softmax:      exp(x - max) / sum is NaN everywhere (inf - inf, or
 *                 -inf - -inf, poisons the sum).
 *   log_softmax:  scipy replaces a non-finite max by 0, so a row with +inf
 *                 and no NaN gives x - log(inf): NaN at +inf, -inf elsewhere;
 *                 an all -inf row gives -inf - log(0) = NaN.
 * Functions take a slice of the row, so long rows can be written in chunks.
 */
#ifndef XENTC_ROW_SPECIAL_H
#define XENTC_ROW_SPECIAL_H

#include "lse_partial.h"

#define XT_DEFINE_SPECIAL_ROWS(SUF, T)                                        \
    static inline void xt_softmax_special_##SUF(const T *x, ptrdiff_t n,      \
                                                xt_lse_partial p, T *out)     \
    {                                                                         \
        (void)x;                                                              \
        (void)p;                                                              \
        for (ptrdiff_t i = 0; i < n; i++)                                     \
            out[i] = (T)NAN;                                                  \
    }                                                                         \
    static inline void xt_log_softmax_special_##SUF(                          \
        const T *x, ptrdiff_t n, xt_lse_partial p, T *out)                    \
    {                                                                         \
        int only_inf = !(p.flags & XT_HAS_NAN) && !isnan(p.rest) &&           \
                       (p.flags & XT_HAS_POSINF);                             \
        for (ptrdiff_t i = 0; i < n; i++) {                                   \
            if (only_inf)                                                     \
                out[i] = (x[i] == (T)INFINITY) ? (T)NAN : (T)(-INFINITY);     \
            else                                                              \
                out[i] = (T)NAN;                                              \
        }                                                                     \
    }

XT_DEFINE_SPECIAL_ROWS(f32, float)
XT_DEFINE_SPECIAL_ROWS(f64, double)

#endif
