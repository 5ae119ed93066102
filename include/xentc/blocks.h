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

#include <stdint.h>

#include "lse_partial.h"

#define XT_BLOCK_F32 1024
#define XT_BLOCK_F64 512

/* Slices of a row reduced independently (by different threads when a row is
 * long); fixed, so results are bitwise identical for any `workers`. */
#define XT_CHUNK 65536

/* Signatures shared by every instruction-set level (see dispatch.h). */
typedef xt_lse_partial (*xt_partial_f32_fn)(const float *, ptrdiff_t);
typedef xt_lse_partial (*xt_partial_f64_fn)(const double *, ptrdiff_t);
typedef xt_lse_partial (*xt_partial_h16_fn)(const uint16_t *, ptrdiff_t);
typedef int (*xt_partial_store_f32_fn)(const float *, ptrdiff_t, float *, xt_lse_partial *);
typedef int (*xt_partial_store_f64_fn)(const double *, ptrdiff_t, double *, xt_lse_partial *);
typedef void (*xt_map_f32_fn)(const float *, ptrdiff_t, double, double, float *);
typedef void (*xt_map_f64_fn)(const double *, ptrdiff_t, double, double, double *);
/* out[j] *= (T)scale in place */
typedef void (*xt_scale_f32_fn)(float *, ptrdiff_t, double);
typedef void (*xt_scale_f64_fn)(double *, ptrdiff_t, double);
/* the ops of the vector maps (algo/partial.h) */
enum { XT_MAP_SHIFT = 0, XT_MAP_EXPSCALE = 1, XT_MAP_SCALE = 2 };
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
 * Software prefetch distance of the sum-of-exp loops, in bytes: while a
 * block's exps are computed (arithmetic-bound), the next rows or blocks are
 * pulled towards L1, so the max pass that follows reads from cache instead
 * of waiting on memory. Measured on 4096x1000 float32: -12% time against
 * none; 4 KiB ahead against 8 KiB (C harness, AVX-512, one thread, data in
 * L3): 4096x1000 float32 -17%, 16x128256 -12%, float64 -5%; 1, 2, 6 and
 * 16 KiB were slower, and AVX2 (bound by its arithmetic) does not care.
 * (XT_PREFETCH_SPAN, simd/common.h, issues it.)
 */
#define XT_PREFETCH_BYTES 4096

/*
 * Slices up to this many bytes have their partial taken max first (the
 * slice's max, then the sums from L1), longer ones block by block
 * (XT_DEFINE_CHUNK_PARTIAL's NAME). Block by block, every block whose max
 * is the running max pays for the compare-and-count that keeps maxima
 * apart, about half the blocks of a 4-block row (1 + 1/2 + 1/3 + 1/4 of
 * 4), and a block that raises the max a scalar exp; max first, only the
 * block holding the row's max (in cache, 4096 float32 classes: 4.22 G/s,
 * 4.48 with no count at all). What max first costs is the second read,
 * which L1 serves while the row fits in it with the next one, prefetched
 * by the sums. Forward at 2^23 elements, 2 threads, float32: 2048 classes
 * 7.40 -> 8.16 G/s, 4096 8.08 -> 8.85; 32 KB rows (8192 classes) gained
 * nothing.
 */
#define XT_ROWMAX_FIRST_BYTES 16384

/*
 * NAME##_store's sums (a slice of one chunk, max first) prefetch the lines
 * a slice length ahead, the next row's (or chunk's) that its max pass
 * reads next, when the slice is longer than this; shorter ones prefetch
 * XT_PREFETCH_BYTES ahead. The max pass otherwise read each row from
 * memory with nothing to overlap it, after the sums' stores of the
 * gradient (perf, float32 forward+gradient at 32000 classes: the max loop
 * a fifth of the samples, the stores of the gradient a third). 2 threads,
 * 2^23 elements, alternating against the build before, best of 4-6:
 * float32 forward+gradient 2500-3000 classes +10%, 4096-8192 +4 to +11%,
 * 16384-32000 +7 to +14% (2^25: 32000 +17%); float64 1500-16000 +10 to
 * +20%; softmax into out=, float32, 3000-4096 +3%, 8192 +8%. Rows of 8
 * KB and less lost by it (float32 2048 classes -7 to -12%, 1100 -4%).
 */
#define XT_STORE_NEXT_BYTES 8192

/*
 * Partials of a slice with vector kernels MAX_FN(x, n) and
 * SUMEXP_FN(x, n, m, exclude_max, &nmax, out, ahead) (see algo/partial.h).
 * One definition for every SIMD level: the levels differ in their block
 * kernels only.
 *
 * NAME##_stream(x, n): blocks in order, each read from memory once: its
 * max, then the sum of its exps (from L1) relative to the running max of
 * the blocks so far; when a block raises the running max, what came
 * before is rescaled (one scalar exp, as xt_partial_merge does). Only
 * blocks whose own max is the running max can hold maxima, so only they
 * pay for the compare-and-count that keeps maxima apart. A +inf, or a
 * slice with no finite element, is decided by SPECIAL_FN; a block of -inf
 * (and maybe NaN) adds only its NaN flag.
 *
 * NAME(x, n): NAME##_chunk's max first up to XT_ROWMAX_FIRST_BYTES of
 * input (8192 16-bit elements), its sums prefetching the next slice of the
 * same length (the next row of a matrix); NAME##_stream beyond. 16-bit
 * inputs (XT_DEFINE_SLICE_PARTIAL alone) gained 3-8% by it at 2048-8192
 * classes (2 threads, 2^23 elements, logsumexp and cross-entropy).
 *
 * NAME##_store(x, n, out, &p): the partial, and out[j] = exp(x_j - p.max)
 * rounded to T (as EXPSCALE_FN(x, n, p.max, 1, out) would) when p is not
 * special, returning 1 then: the caller rescales out instead of taking exp
 * a second time. The exps need the slice max before the first one, so a
 * slice of one chunk takes its max first (the block maxima are kept, for
 * the compare-and-count above) and stores the exps of the sum as they are
 * made (prefetching the next slice of the same length when it is longer
 * than XT_STORE_NEXT_BYTES); a longer slice takes a second exp pass. out
 * may be x itself (x is read before out is written, element by element);
 * when 0 is returned, out's content is unspecified (the caller writes the
 * special values).
 */
/* NAME##_stream, NAME##_chunk and NAME (XT_DEFINE_SLICE_PARTIAL), on
 * input elements IN (16-bit ones: algo/partial.h) of arithmetic type T;
 * XT_DEFINE_CHUNK_PARTIAL adds NAME##_store for IN = T. */
#define XT_DEFINE_STREAM_PARTIAL(ATTR, NAME, IN, T, BLOCK, MAX_FN, SUMEXP_FN, \
                                 SPECIAL_FN)                                  \
    ATTR static xt_lse_partial NAME(const IN *x, ptrdiff_t n)                 \
    {                                                                         \
        xt_lse_partial p = {-INFINITY, 0.0, 0.0, 0};                          \
        for (ptrdiff_t off = 0; off < n; off += (BLOCK)) {                    \
            ptrdiff_t len = n - off < (BLOCK) ? n - off : (BLOCK);            \
            T bm = MAX_FN(x + off, len);                                      \
            if (!isfinite(bm)) {                                              \
                if (bm > 0)                                                   \
                    return SPECIAL_FN(x, n);                                  \
                p.flags |= SPECIAL_FN(x + off, len).flags;                    \
                continue;                                                     \
            }                                                                 \
            if ((double)bm > p.max) {                                         \
                /* no libm call for the first block: nothing to rescale */  \
                if (p.max != -INFINITY)                                       \
                    p.rest = (p.nmax + p.rest) * exp(p.max - (double)bm);     \
                p.nmax = 0.0;                                                 \
                p.max = (double)bm;                                           \
            }                                                                 \
            double cnt = 0.0;                                                 \
            p.rest += SUMEXP_FN(x + off, len, (T)p.max, bm == (T)p.max, &cnt, \
                                NULL, XT_PREFETCH_BYTES);                     \
            p.nmax += cnt;                                                    \
        }                                                                     \
        if (p.max == -INFINITY)                                               \
            return SPECIAL_FN(x, n);                                          \
        return p;                                                             \
    }
#define XT_DEFINE_SLICE_PARTIAL_X(...) XT_DEFINE_SLICE_PARTIAL(__VA_ARGS__)

#define XT_DEFINE_SLICE_PARTIAL(ATTR, NAME, IN, T, BLOCK, MAX_FN, SUMEXP_FN,  \
                                SPECIAL_FN)                                   \
    XT_DEFINE_STREAM_PARTIAL(ATTR, NAME##_stream, IN, T, BLOCK, MAX_FN,       \
                             SUMEXP_FN, SPECIAL_FN)                           \
    /* inlined into both callers: out NULL or not, constant in each */       \
    ATTR XT_ALWAYS_INLINE static inline xt_lse_partial NAME##_chunk(          \
        const IN *x, ptrdiff_t n, T *out, ptrdiff_t ahead)                     \
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
                                bmax[b] == m, &cnt, out ? out + off : NULL,   \
                                ahead);                                       \
            p.nmax += cnt;                                                    \
        }                                                                     \
        return p;                                                             \
    }                                                                         \
    ATTR static xt_lse_partial NAME(const IN *x, ptrdiff_t n)                 \
    {                                                                         \
        const ptrdiff_t bytes = n * (ptrdiff_t)sizeof(IN);                    \
        return bytes <= XT_ROWMAX_FIRST_BYTES ? NAME##_chunk(x, n, NULL, bytes) \
                                              : NAME##_stream(x, n);          \
    }

#define XT_DEFINE_CHUNK_PARTIAL(ATTR, NAME, T, BLOCK, MAX_FN, SUMEXP_FN,     \
                                SPECIAL_FN, EXPSCALE_FN)                      \
    XT_DEFINE_SLICE_PARTIAL(ATTR, NAME, T, T, BLOCK, MAX_FN, SUMEXP_FN,       \
                            SPECIAL_FN)                                       \
    ATTR static int NAME##_store(const T *x, ptrdiff_t n, T *out,             \
                                 xt_lse_partial *p)                           \
    {                                                                         \
        if (n <= XT_CHUNK) {                                                  \
            const ptrdiff_t bytes = n * (ptrdiff_t)sizeof(T);                 \
            *p = NAME##_chunk(x, n, out,                                      \
                              bytes > XT_STORE_NEXT_BYTES ? bytes : XT_PREFETCH_BYTES); \
            return !xt_partial_is_special(*p);                                \
        }                                                                     \
        *p = NAME##_stream(x, n);                                             \
        if (xt_partial_is_special(*p))                                        \
            return 0;                                                         \
        EXPSCALE_FN(x, n, p->max, 1.0, out);                                  \
        return 1;                                                             \
    }

/* The same, for arguments that are macros themselves (XT_K(partial)):
 * they are expanded before XT_DEFINE_CHUNK_PARTIAL pastes NAME##_store. */
#define XT_DEFINE_CHUNK_PARTIAL_X(...) XT_DEFINE_CHUNK_PARTIAL(__VA_ARGS__)

#endif
