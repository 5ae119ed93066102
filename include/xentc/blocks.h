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

/*
 * Partial of a slice with vector kernels MAX_FN(x, n) and
 * SUMEXP_FN(x, n, m, exclude_max, &nmax) (see kernels_avx2.h): the slice
 * max M first (block by block, remembering each block's max), then the
 * blocks' sums of exp(x - M), each added in double. Only the blocks whose
 * own max is M can hold maxima, so only they pay for the compare-and-count.
 * A slice longer than XT_CHUNK is split into chunks whose partials are
 * merged, so the bmax array stays small and on the stack. One definition
 * for every SIMD level: the levels differ in their block kernels only.
 */
#define XT_DEFINE_CHUNK_PARTIAL(ATTR, NAME, T, BLOCK, MAX_FN, SUMEXP_FN,     \
                                SPECIAL_FN)                                   \
    ATTR static xt_lse_partial NAME(const T *x, ptrdiff_t n)                  \
    {                                                                         \
        T bmax[XT_CHUNK / (BLOCK) + 1];                                       \
        ptrdiff_t nblocks = (n + (BLOCK) - 1) / (BLOCK);                      \
        if (nblocks > XT_CHUNK / (BLOCK))                                     \
            return xt_partial_merge(NAME(x, XT_CHUNK),                        \
                                    NAME(x + XT_CHUNK, n - XT_CHUNK));        \
        T m = (T)(-INFINITY);                                                 \
        for (ptrdiff_t b = 0; b < nblocks; b++) {                             \
            ptrdiff_t off = b * (BLOCK);                                      \
            bmax[b] = MAX_FN(x + off, n - off < (BLOCK) ? n - off : (BLOCK)); \
            m = bmax[b] > m ? bmax[b] : m;                                    \
        }                                                                     \
        if (!isfinite(m))                                                     \
            return SPECIAL_FN(x, n);                                          \
        xt_lse_partial p = {(double)m, 0.0, 0.0, 0};                          \
        for (ptrdiff_t b = 0; b < nblocks; b++) {                             \
            ptrdiff_t off = b * (BLOCK);                                      \
            double cnt = 0.0;                                                 \
            p.rest += SUMEXP_FN(x + off,                                      \
                                n - off < (BLOCK) ? n - off : (BLOCK), m,     \
                                bmax[b] == m, &cnt);                          \
            p.nmax += cnt;                                                    \
        }                                                                     \
        return p;                                                             \
    }

#endif
