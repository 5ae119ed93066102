/*
 * The portable kernels alone, outside Python: built by
 * tools/check_baseline_build.sh with -DXENTC_BASELINE_ONLY (no x86
 * intrinsics, as on a platform without them), with and without OpenMP and
 * with AVX/SSE4 switched off, to show the C core needs nothing beyond
 * C11 + libm.
 *
 * Checks log-sum-exp partials against a long double libm reference, that
 * partials of a split row merge to the whole row's, the special values,
 * softmax/log_softmax slices, the short-row kernel, and (with OpenMP) that a
 * parallel loop over rows gives the serial bits. Exit status 0 when every
 * check holds.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xentc/xentc.h"
#include "check_rng.h"

#ifndef XENTC_BASELINE_ONLY
#error "build with -DXENTC_BASELINE_ONLY: this checks the portable kernels alone"
#endif
#ifdef XT_HAVE_AVX2
#error "XENTC_BASELINE_ONLY left the AVX2 kernels enabled"
#endif

static long nchecks = 0, nfailed = 0;

static void check(int ok, const char *what, double got, double want)
{
    nchecks++;
    if (!ok) {
        nfailed++;
        if (nfailed <= 20)
            fprintf(stderr, "FAIL %s: got %.17g, want %.17g\n", what, got, want);
    }
}

/* Same NaN-ness, same infinity, or relative difference within tol. */
static int close_to(double got, double want, double tol)
{
    if (isnan(want))
        return isnan(got);
    if (isinf(want))
        return got == want;
    return fabs(got - want) <= tol * fmax(1.0, fabs(want));
}


/* log(sum(exp(x))) in long double, straight from the definition. */
static double lse_ref_f64(const double *x, ptrdiff_t n)
{
    long double m = -INFINITY, s = 0.0L;
    for (ptrdiff_t i = 0; i < n; i++)
        if (x[i] > m)
            m = x[i];
    if (!isfinite((double)m))
        return (double)m; /* the tests below only pass finite rows here */
    for (ptrdiff_t i = 0; i < n; i++)
        s += expl((long double)x[i] - m);
    return (double)(m + logl(s));
}

static double lse_ref_f32(const float *x, ptrdiff_t n)
{
    double *d = malloc((size_t)(n ? n : 1) * sizeof(double));
    for (ptrdiff_t i = 0; i < n; i++)
        d[i] = x[i];
    double r = lse_ref_f64(d, n);
    free(d);
    return r;
}

static void check_levels(void)
{
    check(strcmp(xt_compiled_levels(), "baseline") == 0, "compiled levels", 0, 0);
    check(strcmp(xt_active_name(), "baseline") == 0, "active level", 0, 0);
    check(xt_cpu_supports("baseline") == 1, "baseline supported", 0, 1);
    check(xt_cpu_supports("avx2") == 0, "avx2 not supported", 1, 0);
    check(xt_select("avx2") == -1, "avx2 refused", 0, -1);
    check(xt_select("baseline") == 0, "baseline selected", -1, 0);
}

static void check_rows(ptrdiff_t n)
{
    double *x64 = malloc((size_t)(n + 1) * sizeof(double));
    float *x32 = malloc((size_t)(n + 1) * sizeof(float));
    double *out64 = malloc((size_t)(n + 1) * sizeof(double));
    float *out32 = malloc((size_t)(n + 1) * sizeof(float));
    for (ptrdiff_t i = 0; i < n; i++) {
        x64[i] = uniform(30.0);
        x32[i] = (float)x64[i];
    }
    if (n > 3) /* several equal maxima */
        x64[n / 2] = x64[n / 3] = 40.0, x32[n / 2] = x32[n / 3] = 40.0f;

    double want64 = n ? lse_ref_f64(x64, n) : -INFINITY;
    double want32 = n ? lse_ref_f32(x32, n) : -INFINITY;
    xt_lse_partial p64 = xt_partial_f64(x64, n), p32 = xt_partial_f32(x32, n);
    /* libm exp in double: far more accurate than either dtype needs. */
    check(close_to(xt_partial_lse(p64), want64, 1e-14), "lse f64", xt_partial_lse(p64), want64);
    check(close_to(xt_partial_lse(p32), want32, 1e-14), "lse f32", xt_partial_lse(p32), want32);

    /* A row cut anywhere merges back to the whole row. */
    for (ptrdiff_t k = 0; k <= n; k += (n / 7 + 1)) {
        xt_lse_partial m = xt_partial_merge(xt_partial_f64(x64, k),
                                            xt_partial_f64(x64 + k, n - k));
        check(close_to(xt_partial_lse(m), want64, 1e-14), "merged lse f64",
              xt_partial_lse(m), want64);
        check(m.max == p64.max && m.nmax == p64.nmax, "merged max/nmax", m.nmax, p64.nmax);
    }

    if (n > 0) {
        /* softmax sums to 1; log_softmax = x - lse. */
        xt_softmax_slice_f64(x64, n, p64, 0, out64);
        long double s = 0.0L;
        for (ptrdiff_t i = 0; i < n; i++)
            s += out64[i];
        check(close_to((double)s, 1.0, 1e-14), "softmax sum f64", (double)s, 1.0);
        xt_softmax_slice_f32(x32, n, p32, 0, out32);
        s = 0.0L;
        for (ptrdiff_t i = 0; i < n; i++)
            s += out32[i];
        check(close_to((double)s, 1.0, 1e-5), "softmax sum f32", (double)s, 1.0);
        xt_softmax_slice_f64(x64, n, p64, 1, out64);
        for (ptrdiff_t i = 0; i < n; i++)
            check(close_to(out64[i], x64[i] - want64, 1e-14), "log_softmax f64",
                  out64[i], x64[i] - want64);
    }
    free(x64);
    free(x32);
    free(out64);
    free(out32);
}

static void check_special(void)
{
    double x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    for (int k = 0; k < 9; k++) {
        double v = x[k];
        x[k] = NAN;
        check(isnan(xt_partial_lse(xt_partial_f64(x, 9))), "nan lane", 0, NAN);
        x[k] = INFINITY;
        check(xt_partial_lse(xt_partial_f64(x, 9)) == INFINITY, "+inf lane", 0, INFINITY);
        x[k] = -INFINITY;
        /* -inf contributes nothing: the row without it. */
        double rest[8];
        for (int i = 0, j = 0; i < 9; i++)
            if (i != k)
                rest[j++] = x[i];
        double want = lse_ref_f64(rest, 8);
        check(close_to(xt_partial_lse(xt_partial_f64(x, 9)), want, 1e-14), "-inf lane",
              xt_partial_lse(xt_partial_f64(x, 9)), want);
        x[k] = v;
    }
    double ninf[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    check(xt_partial_lse(xt_partial_f64(ninf, 4)) == -INFINITY, "all -inf", 0, -INFINITY);
    check(xt_partial_lse(xt_partial_f64(ninf, 0)) == -INFINITY, "empty", 0, -INFINITY);
}

static void check_short_rows(void)
{
    enum { ROWS = 300 };
    static float x[ROWS * XT_SHORT_MAX_COLS], out[ROWS];
    for (ptrdiff_t C = 1; C <= XT_SHORT_MAX_COLS; C++) {
        for (ptrdiff_t i = 0; i < ROWS * C; i++)
            x[i] = (float)uniform(20.0);
        xt_short_rows_f32(x, ROWS, C, XT_SHORT_LSE, out, NULL, NULL);
        for (ptrdiff_t r = 0; r < ROWS; r++) {
            double want = lse_ref_f32(x + r * C, C);
            check(close_to(out[r], want, 4e-7), "short rows lse f32", out[r], want);
        }
    }
}

/* Rows reduced by an OpenMP loop (when built with -fopenmp) give the same
 * bits as the serial loop. */
static void check_parallel_rows(void)
{
    enum { ROWS = 64, COLS = 5000 };
    double *x = malloc(sizeof(double) * ROWS * COLS);
    double serial[ROWS], parallel[ROWS];
    for (ptrdiff_t i = 0; i < (ptrdiff_t)ROWS * COLS; i++)
        x[i] = uniform(10.0);
    for (int r = 0; r < ROWS; r++)
        serial[r] = xt_partial_lse(xt_partial_f64(x + (ptrdiff_t)r * COLS, COLS));
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int r = 0; r < ROWS; r++)
        parallel[r] = xt_partial_lse(xt_partial_f64(x + (ptrdiff_t)r * COLS, COLS));
    for (int r = 0; r < ROWS; r++)
        check(memcmp(&serial[r], &parallel[r], sizeof(double)) == 0, "parallel rows",
              parallel[r], serial[r]);
    free(x);
}

int main(void)
{
    static const ptrdiff_t lengths[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33,
                                        511, 512, 513, 1023, 1024, 1025, 4097, 70001};
    check_levels();
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++)
        check_rows(lengths[i]);
    check_special();
    check_short_rows();
    check_parallel_rows();
    printf("baseline_check: level %s, OpenMP %s (%d threads): %ld checks, %ld failures\n",
           xt_active_name(), xt_have_openmp() ? "on" : "off", xt_omp_max_threads(),
           nchecks, nfailed);
    return nfailed != 0;
}
