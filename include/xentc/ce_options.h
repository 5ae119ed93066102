/*
 * The constant options of a cross-entropy call, shared by every row: what
 * the per-row formulas of cross_entropy.h and the fused index-target
 * kernels (algo/ce_rows.h) both read, so in a header of its own that
 * neither has to include the other for.
 */
#ifndef XENTC_CE_OPTIONS_H
#define XENTC_CE_OPTIONS_H

#include <stddef.h>

/* Constant part of the loss, shared by every row of a call. */
typedef struct {
    ptrdiff_t nclasses;
    const double *class_weight; /* NULL: every weight 1 */
    double weight_total;        /* sum of the class weights */
    double smoothing;
    double z_loss;
    double softcap;             /* 0: none */
} xt_ce_options;

/* Per-call arguments of the fused index-target kernels (algo/ce_rows.h)
 * besides the arrays. */
typedef struct {
    xt_ce_options o;
    double grad_scale_all;      /* the gradient's scale without per-row ones */
    /* Nonzero: the kernel first checks that every target is a class index
     * in [0, nclasses) other than ignore_index, and returns -1, having
     * read no logit, when one is not. ce_plain's check, on the kernels'
     * threads task by task: the targets are then in cache for the kernel,
     * where a separate pass read them from memory first. */
    int check_targets;
    long long ignore_index;
    /* Output, or NULL: the sum of loss[0:nrows) in _sum_doubles' order
     * (_core_ce.pxi: eight running sums over the rows mod 8, added
     * pairwise), taken as the losses are made, for a call that returns 0
     * having left no group to the per-row path; NaN when it did. The
     * caller's separate pass over the losses was 5% of the samples at 2
     * classes. */
    double *loss_total;
    /* Nonzero: the gradient is larger than XT_CE_GRAD_BIG_BYTES, so its
     * lines come from memory as they are written: lane mode then makes it
     * in shorter blocks (algo/ce_rows.h, XT_CE_LANE_EXPS_BIG). */
    int grad_big;
} xt_ce_index_args;

/* The constants of the fused kernels' finish (algo/ce_rows.h,
 * XT_K(ce_finish)), made once a call by xt_ce_consts_of. Read from the
 * caller's xt_ce_index_args they were made again for every group: the
 * kernel's stores of losses might have changed the options as far as the
 * compiler knew, so it loaded them again and divided e by C each time
 * (perf: about 7% of the samples of float32 forward at 2 classes on the
 * division). In a local the compiler knows no store reaches them. */
typedef struct {
    double e, one_e, c, c_total; /* e = smoothing, 1 - e, e / C, e / C * weight total */
    double weight_total, z_loss, z_loss2;   /* z_loss2 = 2 z_loss */
    double grad_scale_all;
} xt_ce_consts;

static inline xt_ce_consts xt_ce_consts_of(const xt_ce_index_args *a)
{
    xt_ce_consts k;
    k.e = a->o.smoothing;
    k.one_e = 1.0 - k.e;
    k.c = k.e / (double)a->o.nclasses;
    k.c_total = k.c * a->o.weight_total;
    k.weight_total = a->o.weight_total;
    k.z_loss = a->o.z_loss;
    k.z_loss2 = 2.0 * a->o.z_loss;
    k.grad_scale_all = a->grad_scale_all;
    return k;
}

/* A gradient past this many bytes is taken to come from memory as it is
 * written: with logits as large beside it, it outgrows about half of L3
 * (32 MiB on the machine measured). It also sizes the tiles of rows that
 * the chunked path takes with a gradient (_core_ce.pxi,
 * _chunked_tile_rows; tiles of 2, 8 and 16 MiB measured there). Lane
 * mode's blocks of
 * XT_CE_LANE_EXPS_BIG vectors, against XT_CE_LANE_EXPS, float32, 2
 * threads: the forward+gradient at 16 and 24 classes 2^21 elements (8 MiB
 * gradients) 0.96-0.99x, 2^22 1.12-1.23x, 2^23 1.16-1.30x, 2^25 1.22x at
 * 16; in cache (2^17, 1 thread) 0.92-0.96x. */
#define XT_CE_GRAD_BIG_BYTES (8 << 20)

/* A group of rows (one per vector lane, at most 16) of the fused kernels
 * as the per-row fallback (XT_K(ce_emit)) reads it, in double: max,
 * gradient scale, and the finish's log-sum-exp less the max, loss, scale
 * of the exps and target term of the gradient. */
#define XT_CE_MAX_LANES 16
typedef struct {
    double m[XT_CE_MAX_LANES], gs[XT_CE_MAX_LANES];
    double ls[XT_CE_MAX_LANES], loss[XT_CE_MAX_LANES], scale[XT_CE_MAX_LANES];
    double by[XT_CE_MAX_LANES];
} xt_ce_lanes;

/* Weights of 1 for the vector sums without class weights (algo/ce_sums.h):
 * as many as the widest vector has double lanes. */
static const double xt_ce_ones[8] = {1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0};

/* What a lane-mode group of the row kernels writes back, which sets how far
 * lane mode goes (algo/row_groups.h, XT_K(by_lanes)). */
enum { XT_LANES_NONE, XT_LANES_OUT /* softmax, log_softmax */, XT_LANES_GRAD };

/* Groups of rows up to this size take their maxima together in row mode
 * (algo/ce_rows.h): half of a 32 KB L1, so the rows are still there for
 * the sums. */
#define XT_CE_GROUP_BYTES 16384
/* Row mode keeps a group's exps in a scratch group below this size, and
 * writes the gradient rows once from there (float32 forward+gradient, 1
 * thread, 2^20 elements: 12-18% faster at 33-50 classes, 3-10% slower at
 * 100-256, whose 6-16 KB of exps share L1 with the group's rows; 2
 * threads, 2^23: +12% at 33, 0 at 50, -6% at 64 classes). */
#define XT_CE_STASH_BYTES 4096
/* Row mode groups whose sums also store the exps prefetch the next group
 * from this size (algo/row_groups.h, XT_K(row_stats), has the
 * measurements). */
#define XT_ROW_PREFETCH_OUT_BYTES 8192
/* Row mode's tail columns (algo/row_groups.h): a whole group's last
 * C mod W columns go as columns when there are at most this many (CE
 * forward, float32, 2 threads, N C = 2^23: 33 classes 2.8 -> 3.3 G/s,
 * 36: 3.1 -> 3.4, 50: 3.7 -> 4.1; with up to 15 of them, forward+gradient
 * at 40-63 classes ran 5-10% slower than along the rows). */
#define XT_ROW_TAIL_COLUMNS 8
/* Row mode takes the log of its rows' sums in double from this many
 * classes on (the log-sum-exp, softmax and cross-entropy group kernels,
 * algo/row_groups.h and ce_rows.h): the float32 log's ulp of lse - max put
 * the float32 loss's and logsumexp's mean error at 0.34-0.35 ulp against
 * float64 (300-1000 classes), the double log at 0.26, the per-row
 * kernels' log1p at 0.25. It is nearly free at these lengths; taken from
 * 33 classes on, it turned the row mode prefetch's gain of 2-4% at 33-64
 * classes into a loss of 2-3%, and forward+gradient lost 4-6% (float32,
 * 2 threads, 2^23). */
#define XT_ROW_DOUBLE_LOG_COLS 256

/* rows of at most this many classes take the fused kernels */
#define XT_CE_FUSED_MAX_COLS 4096

/* The fused kernel of one (ISA, dtype): the loss of rows x[0:nrows) of
 * C = args->o.nclasses classes with class indices target (-1: ignored,
 * loss 0 and gradient 0) into loss, the gradient times its scale
 * (grad_scale[r], or args->grad_scale_all when grad_scale is NULL) into
 * grad (or none: NULL). Rows it leaves to the caller (non-finite max, NaN,
 * a gradient scale beyond the dtype's range) get special[r] = 1 and
 * nothing written; it returns how many. */
/* Log-sum-exp, softmax or log_softmax of rows by groups (algo/row_groups.h):
 * x, nrows, C, mode (short_rows.h's XT_SHORT_LSE, _SOFTMAX, _LOG_SOFTMAX),
 * out, special (rows left to the caller) -> how many left. */
typedef ptrdiff_t (*xt_rows_f32_fn)(const float *, ptrdiff_t, ptrdiff_t, int, float *,
                                    unsigned char *);
typedef ptrdiff_t (*xt_rows_f64_fn)(const double *, ptrdiff_t, ptrdiff_t, int, double *,
                                    unsigned char *);

/* The weighted sums of a slice and the gradient's class terms
 * (algo/ce_sums.h): x, n, w, q, need_wx, shift, out[4]; grad, n, bc, w,
 * bq, q. */
typedef void (*xt_ce_sums_f32_fn)(const float *, ptrdiff_t, const double *, const float *, int,
                                  double, double *);
typedef void (*xt_ce_sums_f64_fn)(const double *, ptrdiff_t, const double *, const double *,
                                  int, double, double *);
typedef void (*xt_ce_grad_fix_f32_fn)(float *, ptrdiff_t, double, const double *, double,
                                      const float *);
typedef void (*xt_ce_grad_fix_f64_fn)(double *, ptrdiff_t, double, const double *, double,
                                      const double *);

typedef ptrdiff_t (*xt_ce_index_f32_fn)(const float *x, ptrdiff_t nrows,
                                        const long long *target,
                                        const double *grad_scale,
                                        const xt_ce_index_args *args, double *loss,
                                        float *grad, unsigned char *special);
typedef ptrdiff_t (*xt_ce_index_f64_fn)(const double *x, ptrdiff_t nrows,
                                        const long long *target,
                                        const double *grad_scale,
                                        const xt_ce_index_args *args, double *loss,
                                        double *grad, unsigned char *special);

#endif
