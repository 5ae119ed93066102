/*
 * The NEON kernels against the baseline kernels, outside Python: built for
 * aarch64 and run under qemu by tools/check_aarch64.sh (any aarch64 machine
 * runs it natively too). Both kernel tables are compiled into one binary,
 * so every check calls the NEON kernel and the baseline kernel on the same
 * data and compares:
 *   - partials (max, count of maxima, sum of the rest, flags), the stored
 *     exps of partial_store and their in-place rescale (bit for bit), and
 *     the softmax / log_softmax maps, float32
 *     and float64, for every row length up to three vectors and long rows
 *     (past a block, past XT_CHUNK);
 *   - rows holding NaN, +inf and -inf in every position of those lengths;
 *   - the short-row kernels in every mode, every column count up to
 *     XT_SHORT_MAX_COLS and every count of rows left over after the last
 *     group, with and without special values;
 *   - the cross-entropy statistics, loss and gradient of index targets
 *     (with label smoothing and class weights);
 *   - the fused index-target cross-entropy kernel (algo/ce_rows.h), lane
 *     and row modes, against the baseline's per-row formulas: every class
 *     count up to 20 and some longer, every row count up to two groups,
 *     ignored rows, a NaN row (marked special, left alone), class weights,
 *     label smoothing, z-loss and per-row gradient scales;
 *   - the vector exp's largest error in ulp over 2^20 points of its domain,
 *     against the bounds tests/test_kernels_isa.py sets for x86;
 *   - the float16 / bfloat16 partials (float32 reductions on widening
 *     loads) against the baseline's, every length up to three vectors
 *     and past a block, with NaN and +inf;
 *   - the float16 / bfloat16 conversions (simd/neon.h's 16-bit section):
 *     widening of every 16-bit pattern and narrowing of the floats around
 *     every rounding boundary, bit for bit against half.h's scalar ones
 *     (NaN: NaN), for every length up to three vectors.
 * Exit status 0 when every check holds.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xentc/xentc.h"
#include "check_rng.h"

#ifndef XT_HAVE_NEON
#error "build for aarch64: this checks the NEON kernels"
#endif

static long nchecks = 0, nfailed = 0;

static void check(int ok, const char *what, long where, double got, double want)
{
    nchecks++;
    if (!ok) {
        nfailed++;
        if (nfailed <= 30)
            fprintf(stderr, "FAIL %s [%ld]: got %.17g, want %.17g\n", what, where, got, want);
    }
}

/* NaN for NaN, the same infinity, or within tol relative to max(|want|,
 * floor) (floor 1 for values whose size says nothing about their error,
 * a tiny one for relative checks). */
static int close_to(double got, double want, double tol, double floor)
{
    if (isnan(want))
        return isnan(got);
    if (isinf(want))
        return got == want;
    return fabs(got - want) <= tol * fmax(fabs(want), floor);
}


static const xt_kernels *NEON = &xt_kernels_neon, *BASE = &xt_kernels_baseline;

/* Tolerances of NEON against the baseline (libm exp in double): float32
 * sums run in float lanes, float64 ones are near exact. */
#define TOL_f32 2e-6
#define TOL_f64 1e-13

static void check_partial(const char *what, long where, xt_lse_partial got, xt_lse_partial want,
                          double tol)
{
    int special = xt_partial_is_special(want);
    check(special == xt_partial_is_special(got), what, where, got.max, want.max);
    check(close_to(xt_partial_lse(got), xt_partial_lse(want), tol, 1.0), what, where,
          xt_partial_lse(got), xt_partial_lse(want));
    if (!special) {
        check(got.max == want.max && got.nmax == want.nmax, what, where, got.nmax, want.nmax);
        check(close_to(got.rest, want.rest, tol, 1e-300), what, where, got.rest, want.rest);
    }
}

/* equal, or both NaN */
static int same(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

/* One row through every long-row kernel of both tables. */
#define DEFINE_CHECK_ROW(SUF, T)                                              \
    static void check_row_##SUF(const T *x, ptrdiff_t n, const char *what)     \
    {                                                                         \
        T *a = malloc(sizeof(T) * (size_t)(n + 1));                           \
        T *b = malloc(sizeof(T) * (size_t)(n + 1));                           \
        xt_lse_partial pn = NEON->partial_##SUF(x, n);                        \
        xt_lse_partial pb = BASE->partial_##SUF(x, n);                        \
        check_partial(what, (long)n, pn, pb, TOL_##SUF);                      \
        xt_lse_partial ps;                                                    \
        int stored = NEON->partial_store_##SUF(x, n, a, &ps);                 \
        check(stored == !xt_partial_is_special(pb), "store returns", (long)n, \
              stored, !xt_partial_is_special(pb));                            \
        check_partial("store partial", (long)n, ps, pb, TOL_##SUF);           \
        if (stored) {                                                         \
            BASE->expscale_##SUF(x, n, pb.max, 1.0, b);                       \
            for (ptrdiff_t j = 0; j < n; j++)                                 \
                check(close_to(a[j], b[j], 4 * TOL_##SUF, 1e-300),            \
                      "stored exps", (long)j, a[j], b[j]);                    \
            /* the in-place rescale: the same products, bit for bit */      \
            memcpy(b, a, sizeof(T) * (size_t)n);                              \
            NEON->scale_##SUF(a, n, 1.0 / 3.0);                               \
            BASE->scale_##SUF(b, n, 1.0 / 3.0);                               \
            check(memcmp(a, b, sizeof(T) * (size_t)n) == 0, "scale", (long)n, \
                  a[0], b[0]);                                                \
        }                                                                     \
        if (!xt_partial_is_special(pb)) {                                     \
            double s = xt_partial_sum(pb);                                    \
            NEON->expscale_##SUF(x, n, pb.max, 1.0 / s, a);                   \
            BASE->expscale_##SUF(x, n, pb.max, 1.0 / s, b);                   \
            for (ptrdiff_t j = 0; j < n; j++)                                 \
                check(close_to(a[j], b[j], 4 * TOL_##SUF, 1e-300), "softmax", \
                      (long)j, a[j], b[j]);                                   \
            NEON->shift_##SUF(x, n, pb.max, log(s), a);                       \
            BASE->shift_##SUF(x, n, pb.max, log(s), b);                       \
            for (ptrdiff_t j = 0; j < n; j++)                                 \
                check(close_to(a[j], b[j], TOL_##SUF, 1.0), "log_softmax",    \
                      (long)j, a[j], b[j]);                                   \
        }                                                                     \
        free(a);                                                              \
        free(b);                                                              \
    }
DEFINE_CHECK_ROW(f32, float)
DEFINE_CHECK_ROW(f64, double)

/* Every length up to three vectors plus one, and long rows; then the same
 * short lengths with NaN, +inf or -inf in every position. */
#define DEFINE_CHECK_ROWS(SUF, T, W)                                          \
    static void check_rows_##SUF(void)                                        \
    {                                                                         \
        static const ptrdiff_t longs[] = {511, 512, 513, 1023, 1024, 1025, 4097,\
                                          65536, 70001, 140003};              \
        const ptrdiff_t nmax = 140003;                                        \
        T *x = malloc(sizeof(T) * (size_t)nmax);                              \
        for (ptrdiff_t n = 0; n <= 3 * (W) + 1; n++) {                        \
            for (ptrdiff_t i = 0; i < n; i++)                                 \
                x[i] = (T)uniform(30.0);                                      \
            check_row_##SUF(x, n, "partial " #SUF);                           \
            if (n > 2) { /* equal maxima */                                   \
                x[n - 1] = x[0] = 40;                                         \
                check_row_##SUF(x, n, "ties " #SUF);                          \
            }                                                                 \
            const T specials[3] = {(T)NAN, (T)INFINITY, (T)-INFINITY};        \
            for (int s = 0; s < 3; s++)                                       \
                for (ptrdiff_t k = 0; k < n; k++) {                           \
                    T keep = x[k];                                            \
                    x[k] = specials[s];                                       \
                    check_row_##SUF(x, n, "special " #SUF);                   \
                    x[k] = keep;                                              \
                }                                                             \
            for (ptrdiff_t i = 0; i < n; i++) /* all -inf */                  \
                x[i] = (T)-INFINITY;                                          \
            check_row_##SUF(x, n, "all -inf " #SUF);                          \
        }                                                                     \
        for (size_t l = 0; l < sizeof longs / sizeof longs[0]; l++) {         \
            ptrdiff_t n = longs[l];                                           \
            for (ptrdiff_t i = 0; i < n; i++)                                 \
                x[i] = (T)uniform(30.0);                                      \
            check_row_##SUF(x, n, "long " #SUF);                              \
            x[n / 3] = (T)-INFINITY;                                          \
            x[n - 1] = (T)NAN;                                                \
            check_row_##SUF(x, n, "long NaN " #SUF);                          \
            x[n - 1] = (T)INFINITY;                                           \
            check_row_##SUF(x, n, "long +inf " #SUF);                         \
        }                                                                     \
        free(x);                                                              \
    }
DEFINE_CHECK_ROWS(f32, float, xv_neon_f32_lanes)
DEFINE_CHECK_ROWS(f64, double, xv_neon_f64_lanes)

/* The short-row kernels, every mode: groups of W rows and every count of
 * left-over rows, with a special value in some rows. */
#define DEFINE_CHECK_SHORT(SUF, T, W)                                         \
    static void check_short_##SUF(void)                                       \
    {                                                                         \
        enum { MAXROWS = 4 * (W) };                                           \
        static T x[MAXROWS * XT_SHORT_MAX_COLS], a[MAXROWS * XT_SHORT_MAX_COLS], \
            b[MAXROWS * XT_SHORT_MAX_COLS];                                   \
        static xt_lse_partial pa[MAXROWS], pb[MAXROWS];                       \
        static double la[MAXROWS], lb[MAXROWS];                               \
        for (ptrdiff_t C = 1; C <= XT_SHORT_MAX_COLS; C++)                    \
            for (ptrdiff_t rows = 2 * (W); rows < 3 * (W); rows++)            \
                for (int special = 0; special < 4; special++) {               \
                    for (ptrdiff_t i = 0; i < rows * C; i++)                  \
                        x[i] = (T)uniform(20.0);                              \
                    if (C > 1)                                                \
                        x[C + 1] = x[C]; /* a tie in row 1 maybe */           \
                    if (special == 1)                                         \
                        x[(W) * C + C / 2] = (T)NAN;                          \
                    if (special == 2)                                         \
                        x[(rows - 1) * C] = (T)INFINITY;                      \
                    if (special == 3)                                         \
                        for (ptrdiff_t j = 0; j < C; j++)                     \
                            x[(W + 1) * C + j] = (T)-INFINITY;                \
                    for (int mode = 0; mode < 4; mode++) {                    \
                        ptrdiff_t nout = mode == XT_SHORT_LSE ? rows : rows * C;\
                        NEON->short_rows_##SUF(x, rows, C, mode, a, pa, la);  \
                        BASE->short_rows_##SUF(x, rows, C, mode, b, pb, lb);  \
                        if (mode == XT_SHORT_PARTIALS) {                      \
                            for (ptrdiff_t r = 0; r < rows; r++) {            \
                                check_partial("short partials " #SUF, (long)r,\
                                              pa[r], pb[r], TOL_##SUF);       \
                                check(close_to(la[r], lb[r], TOL_##SUF, 1.0), \
                                      "short logsum " #SUF, (long)r, la[r], lb[r]);\
                            }                                                 \
                            continue;                                         \
                        }                                                     \
                        for (ptrdiff_t i = 0; i < nout; i++)                  \
                            check(close_to(a[i], b[i], 4 * TOL_##SUF,         \
                                           mode == XT_SHORT_SOFTMAX ? 1e-300 : 1.0),\
                                  mode == XT_SHORT_LSE ? "short lse " #SUF    \
                                  : mode == XT_SHORT_SOFTMAX ? "short softmax " #SUF\
                                                             : "short log_softmax " #SUF,\
                                  (long)i, a[i], b[i]);                       \
                    }                                                         \
                }                                                             \
    }
DEFINE_CHECK_SHORT(f32, float, xv_neon_f32_lanes)
DEFINE_CHECK_SHORT(f64, double, xv_neon_f64_lanes)

/* Cross-entropy of index targets with smoothing and class weights: the
 * row statistics, the loss and the gradient under each table. */
#define DEFINE_CHECK_CE(SUF, T)                                               \
    static void ce_row_##SUF(const char *level, const T *x, ptrdiff_t n,      \
                             const double *w, ptrdiff_t y, double *loss,      \
                             xt_ce_stats *st, T *grad)                        \
    {                                                                         \
        xt_select(level);                                                     \
        double wt = 0.0;                                                      \
        for (ptrdiff_t j = 0; j < n; j++)                                     \
            wt += w[j];                                                       \
        xt_ce_options o = {n, w, wt, 0.1, 1e-4, 0.0};                         \
        *st = xt_ce_stats_##SUF(x, n, w, NULL, 1);                            \
        double ls = xt_ce_log_sum(st->lse);                                   \
        *loss = xt_ce_index_loss(&o, st, ls, st->lse.max, (double)x[y], w[y]);\
        double a = (1.0 - o.smoothing) * w[y] + o.smoothing / n * wt;         \
        xt_ce_grad_slice_##SUF(x, n, ls, st->lse.max, a, 0.0, o.smoothing / n, w,\
                               NULL, y, (1.0 - o.smoothing) * w[y], 0.0, grad, 0);\
    }                                                                         \
    static void check_ce_##SUF(void)                                          \
    {                                                                         \
        static const ptrdiff_t lengths[] = {1, 2, 3, 5, 8, 9, 17, 100, 1000, 5000};\
        static T x[5000], ga[5000], gb[5000];                                 \
        static double w[5000];                                                \
        for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++)       \
            for (int special = 0; special < 2; special++) {                   \
                ptrdiff_t n = lengths[l];                                     \
                for (ptrdiff_t j = 0; j < n; j++) {                           \
                    x[j] = (T)uniform(10.0);                                  \
                    w[j] = 0.5 + 0.5 * (uniform(1.0) + 1.0);                  \
                }                                                             \
                if (special)                                                  \
                    x[n / 2] = (T)NAN;                                        \
                ptrdiff_t y = n / 3;                                          \
                double la, lb;                                                \
                xt_ce_stats sa, sb;                                           \
                ce_row_##SUF("neon", x, n, w, y, &la, &sa, ga);               \
                ce_row_##SUF("baseline", x, n, w, y, &lb, &sb, gb);           \
                check_partial("ce stats lse " #SUF, (long)n, sa.lse, sb.lse,   \
                              TOL_##SUF);                                     \
                /* the sums in vector lanes (algo/ce_sums.h) against the \
                 * baseline's one chain: rounding apart, relative to the  \
                 * sum of magnitudes */                                     \
                check(same(sa.w, sb.w) || close_to(sa.w, sb.w, TOL_f64, 1.0), \
                      "ce stats sum w " #SUF, (long)n, sa.w, sb.w);           \
                check(close_to(sa.wx, sb.wx, 1e-13, 10.0 * (double)n),        \
                      "ce stats sum wx " #SUF, (long)n, sa.wx, sb.wx);        \
                check(close_to(la, lb, 4 * TOL_##SUF, 1.0), "ce loss " #SUF,  \
                      (long)n, la, lb);                                       \
                for (ptrdiff_t j = 0; j < n; j++)                             \
                    check(close_to(ga[j], gb[j], 4 * TOL_##SUF, 1.0),         \
                          "ce grad " #SUF, (long)j, ga[j], gb[j]);            \
            }                                                                 \
        xt_select("neon");                                                    \
    }
DEFINE_CHECK_CE(f32, float)
DEFINE_CHECK_CE(f64, double)

/* The fused kernel of NEON on rows x (nrows x C) against each row done by
 * the baseline's per-row formulas (cross_entropy.h), option set opt: 0
 * plain, 1 class weights and z-loss, 2 label smoothing, 3 per-row
 * gradient scales. */
#define DEFINE_CHECK_FUSED(SUF, T)                                            \
    static void check_fused_case_##SUF(ptrdiff_t nrows, ptrdiff_t C, int opt) \
    {                                                                         \
        enum { MAXR = 40, MAXC = 300 };                                       \
        static T x[MAXR * MAXC], g[MAXR * MAXC], gref[MAXC];                  \
        static double w[MAXC], gs[MAXR], loss[MAXR];                          \
        static long long target[MAXR];                                        \
        static unsigned char special[MAXR];                                   \
        double wt = 0.0;                                                      \
        for (ptrdiff_t j = 0; j < C; j++) {                                   \
            w[j] = opt == 1 ? 0.5 + 0.5 * (uniform(1.0) + 1.0) : 1.0;         \
            wt += w[j];                                                       \
        }                                                                     \
        for (ptrdiff_t i = 0; i < nrows; i++) {                               \
            for (ptrdiff_t j = 0; j < C; j++)                                 \
                x[i * C + j] = (T)uniform(8.0);                               \
            target[i] = i % 5 == 3 ? -1 : (long long)((i * 7) % C);           \
            gs[i] = opt == 3 ? 0.25 * (i % 4) : 0.5;                          \
        }                                                                     \
        if (nrows > 4)                                                        \
            x[4 * C + C / 2] = (T)NAN; /* row 4: special */                   \
        xt_ce_index_args a;                                                   \
        a.o.nclasses = C;                                                     \
        a.o.class_weight = opt == 1 ? w : NULL;                               \
        a.o.weight_total = opt == 1 ? wt : (double)C;                         \
        a.o.smoothing = opt == 2 ? 0.2 : 0.0;                                 \
        a.o.z_loss = opt == 1 ? 1e-3 : 0.0;                                   \
        a.o.softcap = 0.0;                                                    \
        a.grad_scale_all = 0.5;                                               \
        a.check_targets = 0;                                                  \
        a.ignore_index = -100;                                                \
        a.loss_total = NULL;                                                  \
        a.grad_big = (int)((nrows + C) % 2); /* both block sizes */           \
        xt_select("neon");                                                    \
        NEON->ce_index_##SUF(x, nrows, target, opt == 3 ? gs : NULL, &a, loss,\
                             g, special);                                     \
        xt_select("baseline");                                                \
        for (ptrdiff_t i = 0; i < nrows; i++) {                               \
            const T *row = x + i * C;                                         \
            long long y = target[i];                                          \
            int nan_row = nrows > 4 && i == 4;                                \
            check(special[i] == (nan_row && y >= 0), "fused special " #SUF,   \
                  (long)i, special[i], nan_row);                              \
            if (special[i])                                                   \
                continue;                                                     \
            if (y < 0) {                                                      \
                check(loss[i] == 0.0, "fused ignored loss " #SUF, (long)i,    \
                      loss[i], 0.0);                                          \
                for (ptrdiff_t j = 0; j < C; j++)                             \
                    check(g[i * C + j] == 0, "fused ignored grad " #SUF,      \
                          (long)j, g[i * C + j], 0.0);                        \
                continue;                                                     \
            }                                                                 \
            const double e = a.o.smoothing, c = e / (double)C;                \
            const double wy = a.o.class_weight ? w[y] : 1.0;                  \
            xt_ce_stats st = xt_ce_stats_##SUF(row, C, a.o.class_weight, NULL,\
                                               e > 0.0);                      \
            double ls = xt_ce_log_sum(st.lse), m = st.lse.max;                \
            double want = xt_ce_index_loss(&a.o, &st, ls, m, (double)row[y], wy);\
            check(close_to(loss[i], want, 4 * TOL_##SUF, 1.0),                \
                  "fused loss " #SUF, (long)(C * 1000 + i), loss[i], want);   \
            double s = opt == 3 ? gs[i] : 0.5;                                \
            double coef = s * ((1.0 - e) * wy + c * a.o.weight_total          \
                               + 2.0 * a.o.z_loss * (m + ls));                \
            xt_ce_grad_slice_##SUF(row, C, ls, m, coef, 0.0, s * c,           \
                                   a.o.class_weight, NULL, (ptrdiff_t)y,      \
                                   s * (1.0 - e) * wy, 0.0, gref, 0);         \
            for (ptrdiff_t j = 0; j < C; j++)                                 \
                check(close_to(g[i * C + j], gref[j], 4 * TOL_##SUF, 1.0),    \
                      "fused grad " #SUF, (long)(C * 1000 + j), g[i * C + j], \
                      gref[j]);                                               \
        }                                                                     \
        /* check_targets: -1 for a target that is not a class index or is  \
         * ignore_index, else the unchecked call's losses bit for bit */     \
        static long long t2[MAXR];                                            \
        static double loss2[MAXR], loss3[MAXR];                               \
        for (ptrdiff_t i = 0; i < nrows; i++)                                 \
            t2[i] = target[i] < 0 ? 0 : target[i];                            \
        xt_select("neon");                                                    \
        a.check_targets = 0;                                                  \
        NEON->ce_index_##SUF(x, nrows, t2, opt == 3 ? gs : NULL, &a, loss,    \
                             NULL, special);                                  \
        a.check_targets = 1;                                                  \
        ptrdiff_t got = NEON->ce_index_##SUF(x, nrows, t2, opt == 3 ? gs : NULL, \
                                             &a, loss2, NULL, special);       \
        check(got >= 0, "checked targets " #SUF, (long)C, (double)got, 0.0);  \
        for (ptrdiff_t i = 0; i < nrows; i++)                                 \
            check(memcmp(&loss[i], &loss2[i], sizeof(double)) == 0,           \
                  "checked loss " #SUF, (long)i, loss2[i], loss[i]);          \
        /* loss_total: the losses' sum in _sum_doubles' order (eight sums   \
         * over the rows mod 8, added pairwise), NaN when a group went row  \
         * by row (row 4's NaN; then again with row 4 finite) */            \
        for (int finite = 0; finite < 2; finite++) {                          \
            double total = 0.0, s8[8] = {0.0};                                \
            const T keep4 = nrows > 4 ? x[4 * C + C / 2] : (T)0;              \
            if (finite && nrows > 4)                                          \
                x[4 * C + C / 2] = (T)0.25;                                   \
            a.loss_total = &total;                                            \
            got = NEON->ce_index_##SUF(x, nrows, t2, opt == 3 ? gs : NULL, &a, \
                                       loss3, NULL, special);                 \
            a.loss_total = NULL;                                              \
            if (nrows > 4)                                                    \
                x[4 * C + C / 2] = keep4;                                     \
            if (got > 0) {                                                    \
                check(isnan(total), "loss_total NaN " #SUF, (long)C, total, NAN); \
                continue;                                                     \
            }                                                                 \
            for (ptrdiff_t i = 0; i < nrows; i++)                             \
                s8[i % 8] += loss3[i];                                        \
            const double want = ((s8[0] + s8[1]) + (s8[2] + s8[3])) +         \
                                ((s8[4] + s8[5]) + (s8[6] + s8[7]));          \
            check(memcmp(&total, &want, sizeof(double)) == 0 || (isnan(total) && isnan(want)), \
                  "loss_total " #SUF, (long)(C * 1000 + nrows), total, want); \
        }                                                                     \
        const long long bad[3] = {(long long)C, -1, -100};                    \
        for (int b = 0; b < 3; b++) {                                         \
            long long keep = t2[nrows - 1];                                   \
            t2[nrows - 1] = bad[b];                                           \
            got = NEON->ce_index_##SUF(x, nrows, t2, NULL, &a, loss2, NULL, special); \
            check(got == -1, "bad target " #SUF, (long)bad[b], (double)got, -1.0); \
            t2[nrows - 1] = keep;                                             \
        }                                                                     \
        a.ignore_index = t2[0];                                               \
        got = NEON->ce_index_##SUF(x, nrows, t2, NULL, &a, loss2, NULL, special); \
        check(got == -1, "class ignore_index " #SUF, (long)C, (double)got, -1.0); \
        a.check_targets = 0;                                                  \
        a.ignore_index = -100;                                                \
    }                                                                         \
    static void check_fused_##SUF(void)                                       \
    {                                                                         \
        static const ptrdiff_t longer[] = {33, 35, 38, 64, 100, 300};         \
        for (int opt = 0; opt < 4; opt++)                                     \
            for (ptrdiff_t nrows = 1; nrows <= 9; nrows++) {                  \
                for (ptrdiff_t C = 1; C <= 20; C++)                           \
                    check_fused_case_##SUF(nrows, C, opt);                    \
                for (size_t k = 0; k < sizeof longer / sizeof longer[0]; k++) \
                    check_fused_case_##SUF(nrows, longer[k], opt);            \
            }                                                                 \
        for (ptrdiff_t C = 1; C <= 20; C++)                                   \
            check_fused_case_##SUF(40, C, 0);                                 \
    }
DEFINE_CHECK_FUSED(f32, float)
DEFINE_CHECK_FUSED(f64, double)

/* |y - ref| in ulp of ref's binade (mant: T's significand bits). */
static double ulp_err(double y, long double ref, int mant)
{
    int e;
    frexpl(ref, &e);
    return (double)(fabsl((long double)y - ref) / ldexpl(1.0L, e - mant));
}

/* The vector exp over 2^20 points of [ln(tiny), 0]: the worst error, and
 * 0 (not a subnormal) below, NaN for NaN. */
static void check_exp(void)
{
    const long N = 1L << 20;
    double worst32 = 0.0, worst64 = 0.0, at32 = 0.0, at64 = 0.0;
    for (long i = 0; i < N; i += 4) {
        float xs[4], ys[4];
        for (int l = 0; l < 4; l++)
            xs[l] = (float)(-87.3 * (double)(i + l) / (double)(N - 1));
        vst1q_f32(ys, xt_exp_f32_neon(vld1q_f32(xs)));
        for (int l = 0; l < 4; l++) {
            double e = ulp_err(ys[l], (long double)exp((double)xs[l]), 24);
            if (e > worst32)
                worst32 = e, at32 = xs[l];
        }
    }
    for (long i = 0; i < N; i += 2) {
        double xs[2], ys[2];
        for (int l = 0; l < 2; l++)
            xs[l] = -708.0 * (double)(i + l) / (double)(N - 1);
        vst1q_f64(ys, xt_exp_f64_neon(vld1q_f64(xs)));
        for (int l = 0; l < 2; l++) {
            double e = ulp_err(ys[l], expl((long double)xs[l]), 53);
            if (e > worst64)
                worst64 = e, at64 = xs[l];
        }
    }
    printf("aarch64_check: exp max error %.3f ulp (float32, at %.9g), %.3f ulp (float64, at %.17g)\n",
           worst32, at32, worst64, at64);
    check(worst32 <= 3.0, "exp f32 ulp", 0, worst32, 3.0);
    check(worst64 <= 1.0, "exp f64 ulp", 0, worst64, 1.0);
    float fe[4] = {-88.0f, -1000.0f, NAN, 0.0f}, fy[4];
    vst1q_f32(fy, xt_exp_f32_neon(vld1q_f32(fe)));
    check(fy[0] == 0.0f && fy[1] == 0.0f && isnan(fy[2]) && fy[3] == 1.0f, "exp f32 edges", 0,
          fy[0], 0.0);
    double de[2] = {-709.0, NAN}, dy[2];
    vst1q_f64(dy, xt_exp_f64_neon(vld1q_f64(de)));
    check(dy[0] == 0.0 && isnan(dy[1]), "exp f64 edges", 0, dy[0], 0.0);
}

static void check_levels(void)
{
    check(strcmp(xt_compiled_levels(), "neon baseline") == 0, "compiled levels", 0, 0, 0);
    check(xt_cpu_supports("neon") == 1, "neon supported", 0, 0, 1);
    check(xt_cpu_supports("avx2") == 0, "avx2 not supported", 0, 1, 0);
    check(xt_select("neon") == 0 && strcmp(xt_active_name(), "neon") == 0, "neon selected", 0,
          0, 0);
}

/* NEON's 16-bit conversions against the baseline's scalar ones, bit for
 * bit (any NaN for NaN), every pattern and every tail length. */
static void check_h16_format(const char *name, xt_widen_fn nw, xt_widen_fn bw,
                             xt_narrow_fn nn, xt_narrow_fn bn)
{
    enum { N = 1 << 16 };
    static uint16_t bits[N], got16[4 * N], want16[4 * N];
    static float a[N], b[N], f[4 * N];
    for (long i = 0; i < N; i++)
        bits[i] = (uint16_t)i;
    for (long len = 0; len <= N; len = len < 12 ? len + 1 : (len == 12 ? N : N + 1)) {
        nw(bits + (N - len), len, a);
        bw(bits + (N - len), len, b);
        for (long i = 0; i < len; i++)
            check(isnan(b[i]) ? isnan(a[i]) : xt_f32_bits(a[i]) == xt_f32_bits(b[i]), name,
                  i, a[i], b[i]);
    }
    /* the floats around every rounding boundary: each 16-bit value, the
     * midpoint to the next, and their float neighbours */
    bw(bits, N, b);
    long n = 0;
    for (long i = 0; i < N; i++) {
        uint32_t v = xt_f32_bits(b[i]);
        uint32_t m = xt_f32_bits(i + 1 < N ? (float)(((double)b[i] + b[i + 1]) / 2) : b[i]);
        f[n++] = b[i];
        f[n++] = xt_bits_f32(v + 1);
        f[n++] = xt_bits_f32(m);
        f[n++] = xt_bits_f32(m - 1);
    }
    for (long len = 0; len <= n; len = len < 12 ? len + 1 : (len == 12 ? n : n + 1)) {
        nn(f + (n - len), len, got16);
        bn(f + (n - len), len, want16);
        for (long i = 0; i < len; i++) {
            int ok = got16[i] == want16[i];
            if (!ok && isnan(f[n - len + i]))
                ok = ((got16[i] & 0x7fffu) > (strcmp(name, "widen/narrow bf16") ? 0x7c00u
                                                                                   : 0x7f80u));
            check(ok, name, i, got16[i], want16[i]);
        }
    }
}

/* The 16-bit partials (float32 reductions on widening loads) against the
 * baseline's (scalar widening, float32 baseline reduction), on rows of
 * every length up to three vectors and past a block, with NaN and +inf in
 * some. */
static void check_h16_partials(const char *what, xt_partial_h16_fn neon, xt_partial_h16_fn base,
                               uint16_t (*from_f32)(float))
{
    static uint16_t x[3000];
    static const ptrdiff_t lengths[] = {1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 1023, 1024, 1025, 3000};
    for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++)
        for (int special = 0; special < 3; special++) {
            ptrdiff_t n = lengths[l];
            for (ptrdiff_t j = 0; j < n; j++)
                x[j] = from_f32((float)uniform(8.0));
            if (special == 1)
                x[n / 2] = from_f32(NAN);
            if (special == 2)
                x[n - 1] = from_f32(INFINITY);
            check_partial(what, (long)n, neon(x, n), base(x, n), TOL_f32);
        }
}

static void check_h16(void)
{
    check_h16_partials("partial f16", NEON->partial_f16, BASE->partial_f16, xt_f32_to_f16);
    check_h16_partials("partial bf16", NEON->partial_bf16, BASE->partial_bf16, xt_f32_to_bf16);
    check_h16_format("widen/narrow f16", NEON->widen_f16, BASE->widen_f16, NEON->narrow_f16,
                     BASE->narrow_f16);
    check_h16_format("widen/narrow bf16", NEON->widen_bf16, BASE->widen_bf16,
                     NEON->narrow_bf16, BASE->narrow_bf16);
}

int main(void)
{
    check_levels();
    check_rows_f32();
    check_rows_f64();
    check_short_f32();
    check_short_f64();
    check_ce_f32();
    check_ce_f64();
    check_fused_f32();
    check_fused_f64();
    check_exp();
    check_h16();
    printf("aarch64_check: level %s: %ld checks, %ld failures\n", xt_active_name(), nchecks,
           nfailed);
    return nfailed != 0;
}
