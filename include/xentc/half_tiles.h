/*
 * float16 / bfloat16 rows (half.h) on the float32 kernels, tile by tile.
 *
 * A tile is whole rows, about XT_H16_TILE elements (a row longer than that
 * is a tile alone): its 16-bit values are widened into the calling
 * thread's float32 buffer, the float32 row kernels run there (so no
 * algorithm exists in a 16-bit copy), and element-wise results are written
 * in that buffer and narrowed into the caller's 16-bit output; reductions
 * (a log-sum-exp, a loss) stay in double until one rounding to 16 bits.
 * A tile is 64 KB of floats: with its 16-bit source it sits in L2 between
 * the widening, the kernels' passes and the narrowing, and the source is
 * read from memory once, at half float32's bytes.
 *
 * Each row's arithmetic depends on the row alone (long rows are reduced
 * in the float32 path's fixed XT_CHUNK chunks, merged in order), so the
 * results do not depend on how tiles are shared between threads. The
 * output may be the input itself: a tile is widened whole before anything
 * is written back.
 *
 * The Cython loops (src/xentc/_core_half.pxi) give each thread a workspace
 * of xt_h16_workspace_bytes(C) and call the tile functions below, or, for
 * cross-entropy, its row kernels (_core_ce.pxi) on the widened buffer.
 */
#ifndef XENTC_HALF_TILES_H
#define XENTC_HALF_TILES_H

#include "half.h"
#include "dispatch.h"
#include "softmax_rows.h"

/* floats of a tile */
#define XT_H16_TILE 16384
/* rows of a tile of short rows (C <= XT_SHORT_MAX_COLS) at most: their
 * partials and log-sums also live in the workspace */
#define XT_H16_SHORT_TILE_ROWS 1024

static inline void xt_h16_widen(int kind, const uint16_t *src, ptrdiff_t n, float *dst)
{
    if (kind == XT_H16_BF16)
        xt_active->widen_bf16(src, n, dst);
    else
        xt_active->widen_f16(src, n, dst);
}

static inline void xt_h16_narrow(int kind, const float *src, ptrdiff_t n, uint16_t *dst)
{
    if (kind == XT_H16_BF16)
        xt_active->narrow_bf16(src, n, dst);
    else
        xt_active->narrow_f16(src, n, dst);
}

/* Rows of C elements in a tile. */
static inline ptrdiff_t xt_h16_tile_rows(ptrdiff_t C)
{
    if (C <= 0 || C >= XT_H16_TILE)
        return 1;
    ptrdiff_t r = XT_H16_TILE / C;
    return C <= XT_SHORT_MAX_COLS && r > XT_H16_SHORT_TILE_ROWS ? XT_H16_SHORT_TILE_ROWS : r;
}

/* Floats of one thread's tile buffer. */
static inline ptrdiff_t xt_h16_tile_elems(ptrdiff_t C)
{
    return xt_h16_tile_rows(C) * (C > 0 ? C : 1);
}

/* Bytes of one thread's workspace for the tile functions below: the tile
 * buffer, then (short rows) a partial and a log-sum per row, rounded up
 * to whole cache lines so that threads' workspaces share none. */
static inline size_t xt_h16_round64(size_t b) { return (b + 63) / 64 * 64; }

static inline size_t xt_h16_workspace_bytes(ptrdiff_t C)
{
    return xt_h16_round64((size_t)xt_h16_tile_elems(C) * sizeof(float)) +
           xt_h16_round64((size_t)xt_h16_tile_rows(C) *
                          (sizeof(xt_lse_partial) + sizeof(double)));
}

/* The partial of a widened row: fixed XT_CHUNK chunks merged in order, as
 * the float32 path reduces a long row (_core_common.pxi's _row_partials). */
static inline xt_lse_partial xt_h16_row_partial(const float *x, ptrdiff_t n)
{
    xt_lse_partial p = xt_active->partial_f32(x, n < XT_CHUNK ? n : XT_CHUNK);
    for (ptrdiff_t off = XT_CHUNK; off < n; off += XT_CHUNK)
        p = xt_partial_merge(p, xt_active->partial_f32(x + off, n - off < XT_CHUNK
                                                                    ? n - off
                                                                    : XT_CHUNK));
    return p;
}

/* One 16-bit element as a float. */
static inline float xt_h16_to_f32(int kind, uint16_t h)
{
    return kind == XT_H16_BF16 ? xt_bf16_to_f32(h) : xt_f16_to_f32(h);
}

/* The partial of a row of n 16-bit elements, read once: the level's
 * 16-bit partial (algo/partial.h: the float32 reductions on widening
 * loads), for the reductions alone (log-sum-exp, a loss). The tiles'
 * whole-row widening reads the row in a pass of its own: 2048x32000
 * bfloat16 cross-entropy spent as long widening (perf: 37%) as reducing
 * (37%), 0.6x float32's speed. */
static inline xt_lse_partial xt_h16_stream_partial(int kind, const uint16_t *x, ptrdiff_t n)
{
    return kind == XT_H16_BF16 ? xt_active->partial_bf16(x, n) : xt_active->partial_f16(x, n);
}

/* logsumexp of nrows (<= xt_h16_tile_rows(C)) rows of C > 0 16-bit
 * elements into out[0:nrows), each rounded once from double. */
static inline void xt_h16_lse_tile(int kind, const uint16_t *x, ptrdiff_t nrows, ptrdiff_t C,
                                   uint16_t *out, void *workspace)
{
    float *buf = (float *)workspace;
    if (C > XT_SHORT_MAX_COLS) {
        for (ptrdiff_t r = 0; r < nrows; r++)
            out[r] = xt_h16_from_double(kind, xt_partial_lse(xt_h16_stream_partial(
                                                  kind, x + r * C, C)));
        return;
    }
    /* short rows: the short-row kernel's partials and lse - max, in double */
    xt_lse_partial *parts = (xt_lse_partial *)((char *)workspace + xt_h16_round64(
        (size_t)xt_h16_tile_elems(C) * sizeof(float)));
    double *logsum = (double *)(parts + xt_h16_tile_rows(C));
    xt_h16_widen(kind, x, nrows * C, buf);
    xt_active->short_rows_f32(buf, nrows, C, XT_SHORT_PARTIALS, NULL, parts, logsum);
    for (ptrdiff_t r = 0; r < nrows; r++) {
        double lse = isnan(logsum[r]) ? xt_partial_lse(parts[r]) : parts[r].max + logsum[r];
        out[r] = xt_h16_from_double(kind, lse);
    }
}

/* softmax (or log_softmax) of nrows (<= xt_h16_tile_rows(C)) rows of C > 0
 * 16-bit elements into out (which may be x): float32 results rounded once. */
static inline void xt_h16_softmax_tile(int kind, const uint16_t *x, ptrdiff_t nrows, ptrdiff_t C,
                                       int take_log, uint16_t *out, void *workspace)
{
    float *buf = (float *)workspace;
    xt_h16_widen(kind, x, nrows * C, buf);
    if (C <= XT_SHORT_MAX_COLS) {
        xt_active->short_rows_f32(buf, nrows, C,
                                  take_log ? XT_SHORT_LOG_SOFTMAX : XT_SHORT_SOFTMAX, buf,
                                  NULL, NULL);
    } else if (C <= XT_CHUNK) {
        for (ptrdiff_t r = 0; r < nrows; r++)
            xt_softmax_row_f32(buf + r * C, C, take_log, buf + r * C);
    } else {
        for (ptrdiff_t r = 0; r < nrows; r++) {
            float *row = buf + r * C;
            xt_lse_partial p = xt_h16_row_partial(row, C);
            for (ptrdiff_t off = 0; off < C; off += XT_CHUNK)
                xt_softmax_slice_f32(row + off, C - off < XT_CHUNK ? C - off : XT_CHUNK, p,
                                     take_log, row + off);
        }
    }
    xt_h16_narrow(kind, buf, nrows * C, out);
}

#endif
