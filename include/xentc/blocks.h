/*
 * Block sizes and the block loop shared by every instruction-set variant.
 *
 * A row slice is reduced block by block: two passes over a block that sits
 * in L1 (its max, then the sum of exp(x - max)), each block's partial merged
 * into the running one in double precision. The data is read from memory
 * once, float32 lane sums never run long enough to lose digits, and the
 * block boundaries depend only on the slice, never on the thread count.
 */
#ifndef XENTC_BLOCKS_H
#define XENTC_BLOCKS_H

#include "lse_partial.h"

#define XT_BLOCK_F32 1024
#define XT_BLOCK_F64 512

/* Slices of a row reduced independently (by different threads when a row is
 * long); fixed, so results are bitwise identical for any `workers`. */
#define XT_CHUNK 65536

/* Signatures shared by every instruction-set level (see dispatch.h). */
typedef xt_lse_partial (*xt_partial_f32_fn)(const float *, ptrdiff_t);
typedef xt_lse_partial (*xt_partial_f64_fn)(const double *, ptrdiff_t);
typedef void (*xt_map_f32_fn)(const float *, ptrdiff_t, double, double, float *);
typedef void (*xt_map_f64_fn)(const double *, ptrdiff_t, double, double, double *);
typedef void (*xt_short_f32_fn)(const float *, ptrdiff_t, ptrdiff_t, int, float *,
                                xt_lse_partial *, double *);
typedef void (*xt_short_f64_fn)(const double *, ptrdiff_t, ptrdiff_t, int, double *,
                                xt_lse_partial *, double *);

#define XT_DEFINE_PARTIAL(ATTR, NAME, T, BLOCK_FN, BLOCK)                     \
    ATTR static xt_lse_partial NAME(const T *x, ptrdiff_t n)                       \
    {                                                                         \
        xt_lse_partial p = BLOCK_FN(x, n < (BLOCK) ? n : (BLOCK));            \
        for (ptrdiff_t i = (BLOCK); i < n; i += (BLOCK)) {                    \
            ptrdiff_t len = n - i < (BLOCK) ? n - i : (BLOCK);                \
            p = xt_partial_merge(p, BLOCK_FN(x + i, len));                    \
        }                                                                     \
        return p;                                                             \
    }

#endif
