/* Everything the Cython layer includes. */
#ifndef XENTC_XENTC_H
#define XENTC_XENTC_H

#include "lse_partial.h"
#include "blocks.h"
#include "dispatch.h"
#include "softmax_rows.h"
#include "lse_weighted.h"
#include "threads.h"
#include "cross_entropy.h"
#include "half_tiles.h"

static inline xt_lse_partial xt_partial_f32(const float *x, ptrdiff_t n)
{
    return xt_active->partial_f32(x, n);
}

static inline xt_lse_partial xt_partial_f64(const double *x, ptrdiff_t n)
{
    return xt_active->partial_f64(x, n);
}

static inline int xt_partial_store_f32(const float *x, ptrdiff_t n, float *out,
                                       xt_lse_partial *p)
{
    return xt_active->partial_store_f32(x, n, out, p);
}

static inline int xt_partial_store_f64(const double *x, ptrdiff_t n, double *out,
                                       xt_lse_partial *p)
{
    return xt_active->partial_store_f64(x, n, out, p);
}

static inline void xt_short_rows_f32(const float *x, ptrdiff_t nrows, ptrdiff_t C,
                                     int mode, float *out, xt_lse_partial *parts,
                                     double *lse)
{
    xt_active->short_rows_f32(x, nrows, C, mode, out, parts, lse);
}

static inline void xt_short_rows_f64(const double *x, ptrdiff_t nrows, ptrdiff_t C,
                                     int mode, double *out, xt_lse_partial *parts,
                                     double *lse)
{
    xt_active->short_rows_f64(x, nrows, C, mode, out, parts, lse);
}

/* The fused index-target cross-entropy kernels (algo/ce_rows.h), when the
 * active level has them (not at baseline). */
static inline int xt_have_ce_index(void) { return xt_active->ce_index_f32 != NULL; }

static inline ptrdiff_t xt_ce_index_f32(const float *x, ptrdiff_t nrows,
                                        const long long *target, const double *gscale,
                                        const xt_ce_index_args *a, double *loss,
                                        float *grad, unsigned char *special)
{
    return xt_active->ce_index_f32(x, nrows, target, gscale, a, loss, grad, special);
}

static inline ptrdiff_t xt_ce_index_f64(const double *x, ptrdiff_t nrows,
                                        const long long *target, const double *gscale,
                                        const xt_ce_index_args *a, double *loss,
                                        double *grad, unsigned char *special)
{
    return xt_active->ce_index_f64(x, nrows, target, gscale, a, loss, grad, special);
}

/* Log-sum-exp, softmax or log_softmax of rows by groups (algo/row_groups.h),
 * when the active level has them (not at baseline). */
static inline int xt_have_rows(void) { return xt_active->rows_f32 != NULL; }

static inline ptrdiff_t xt_rows_f32(const float *x, ptrdiff_t nrows, ptrdiff_t C, int mode,
                                    float *out, unsigned char *special)
{
    return xt_active->rows_f32(x, nrows, C, mode, out, special);
}

static inline ptrdiff_t xt_rows_f64(const double *x, ptrdiff_t nrows, ptrdiff_t C, int mode,
                                    double *out, unsigned char *special)
{
    return xt_active->rows_f64(x, nrows, C, mode, out, special);
}

static inline void xt_active_expscale_f32(const float *x, ptrdiff_t n, double shift,
                                          double scale, float *out)
{
    xt_active->expscale_f32(x, n, shift, scale, out);
}

static inline void xt_active_expscale_f64(const double *x, ptrdiff_t n, double shift,
                                          double scale, double *out)
{
    xt_active->expscale_f64(x, n, shift, scale, out);
}

#endif
