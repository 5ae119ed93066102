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
typedef int (*xt_partial_store_f32_fn)(const float *, ptrdiff_t, float *, xt_lse_partial *);
typedef int (*xt_partial_store_f64_fn)(const double *, ptrdiff_t, double *, xt_lse_partial *);
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
 * SUMEXP_FN(x, n, m, exclude_max, &nmax, out) (see kernels_avx2.h): the
 * slice max M first (block by block, remembering each block's max), then
 * the blocks' sums of exp(x - M), each added in double. Only the blocks
 * whose own max is M can hold maxima, so only they pay for the
 * compare-and-count. A slice longer than XT_CHUNK is split into chunks
 * whose partials are merged, so the bmax array stays small and on the
 * stack. One definition for every SIMD level: the levels differ in their
 * block kernels only.
 *
 * NAME##_store(x, n, out) also leaves out[j] = exp(x_j - p.max) (rounded
 * to T, as EXPSCALE_FN(x, n, p.max, 1, out) would) when the partial is not
 * special, and returns 1 then: the caller rescales out instead of taking
 * exp a second time. For a slice of one chunk the exps of the sum are
 * stored as they are made; a longer one (whose chunks have their own
 * maxima) takes a second exp pass. out may be x itself (x is read before
 * out is written, element by element); a special partial leaves out as it
 * was and returns 0.
 */
#define XT_DEFINE_CHUNK_PARTIAL(ATTR, NAME, T, BLOCK, MAX_FN, SUMEXP_FN,     \
                                SPECIAL_FN, EXPSCALE_FN)                      \
    ATTR static xt_lse_partial NAME##_chunk(const T *x, ptrdiff_t n, T *out)   \
    {                                                                         \
        T bmax[XT_CHUNK / (BLOCK) + 1];                                       \
        ptrdiff_t nblocks = (n + (BLOCK) - 1) / (BLOCK);                      \
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
                                bmax[b] == m, &cnt, out ? out + off : NULL);  \
            p.nmax += cnt;                                                    \
        }                                                                     \
        return p;                                                             \
    }                                                                         \
    ATTR static xt_lse_partial NAME(const T *x, ptrdiff_t n)                  \
    {                                                                         \
        if (n <= XT_CHUNK)                                                    \
            return NAME##_chunk(x, n, NULL);                                  \
        xt_lse_partial p = NAME##_chunk(x, XT_CHUNK, NULL);                   \
        for (ptrdiff_t off = XT_CHUNK; off < n; off += XT_CHUNK)              \
            p = xt_partial_merge(p, NAME##_chunk(x + off, n - off < XT_CHUNK  \
                                                 ? n - off : XT_CHUNK, NULL)); \
        return p;                                                             \
    }                                                                         \
    ATTR static int NAME##_store(const T *x, ptrdiff_t n, T *out,             \
                                 xt_lse_partial *p)                           \
    {                                                                         \
        if (n <= XT_CHUNK) {                                                  \
            *p = NAME##_chunk(x, n, out);                                     \
            return !xt_partial_is_special(*p);                                \
        }                                                                     \
        *p = NAME(x, n);                                                      \
        if (xt_partial_is_special(*p))                                        \
            return 0;                                                         \
        EXPSCALE_FN(x, n, p->max, 1.0, out);                                  \
        return 1;                                                             \
    }

#endif
