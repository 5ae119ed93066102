/*
 * Many short rows on AVX2: one row per vector lane (8 float rows or 4 double
 * rows at a time), the row's elements fetched column by column with gathers.
 * Every step is then a plain vertical vector operation: the max, x - max,
 * the count of maxima, exp, the float64 sum of the others and the final
 * log, the last by the vector log with a compensated sum S = count + rest,
 *     lse = max + log(S) + err(S) / S,
 * which keeps scipy's accuracy on [0, -40] (err carries the 4e-18 that S
 * rounds away). Groups holding a non-finite row max, and the rows left
 * over after the last full group, take the generic short-row kernel.
 * Each row's arithmetic depends on that row alone and on its position in a
 * fixed grid of groups, never on threads. xt_short_emit_* (short_rows.h)
 * writes a group's rows in the caller's mode.
 */
#ifndef XENTC_SHORT_ROWS_AVX2_H
#define XENTC_SHORT_ROWS_AVX2_H

#include "short_rows.h"
#include "kernels_avx2.h"
#include "log_avx2.h"

#ifdef XT_HAVE_AVX2

/* lse of 4 rows from max, count and rest (all finite, count >= 1); NaN
 * rests give NaN. */
XT_AVX2 static inline __m256d xt_lse_finish_pd(__m256d m, __m256d count, __m256d rest)
{
    __m256d S = _mm256_add_pd(count, rest);
    /* TwoSum error of count + rest */
    __m256d bv = _mm256_sub_pd(S, count);
    __m256d err = _mm256_add_pd(_mm256_sub_pd(count, _mm256_sub_pd(S, bv)),
                                _mm256_sub_pd(rest, bv));
    __m256d l = _mm256_add_pd(xt_log_pd_avx2(S), _mm256_div_pd(err, S));
    __m256d r = _mm256_add_pd(m, l);
    __m256d nan = _mm256_cmp_pd(S, S, _CMP_UNORD_Q);
    return _mm256_blendv_pd(r, _mm256_set1_pd(NAN), nan);
}

XT_AVX2 static void xt_short_rows_f32_avx2(const float *x, ptrdiff_t nrows, ptrdiff_t C,
                                           int mode, float *out, xt_lse_partial *parts,
                                           double *logsum)
{
    if (C <= 0 || C > XT_SHORT_MAX_COLS)
        return;
    __m256 v[XT_SHORT_MAX_COLS];
    float e[XT_SHORT_MAX_COLS * 8];
    double mm[8], cc[8], rr[8], ls[8];
    const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                           _mm256_set1_epi32((int)C));
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    const __m256 one = _mm256_set1_ps(1.0f);
    ptrdiff_t r0 = 0;
    for (; r0 + 8 <= nrows; r0 += 8) {
        const float *g = x + r0 * C;
        xt_lse_partial *gparts = mode == XT_SHORT_PARTIALS ? parts + r0 : NULL;
        xt_short_prefetch(g, 8 * C * (ptrdiff_t)sizeof(float));
        __m256 vm = ninf;
        for (ptrdiff_t j = 0; j < C; j++) {
            v[j] = _mm256_i32gather_ps(g + j, idx, 4);
            vm = _mm256_max_ps(v[j], vm);
        }
        /* any lane whose max is +inf, -inf (or all NaN): generic kernel */
        __m256 fin = _mm256_cmp_ps(_mm256_sub_ps(vm, vm), _mm256_setzero_ps(), _CMP_EQ_OQ);
        if (_mm256_movemask_ps(fin) != 0xff) {
            xt_short_rows_generic_f32(g, 8, C, mode, xt_short_out(mode, out, r0, C), gparts,
                                      logsum ? logsum + r0 : NULL, xt_expscale_f32_avx2);
            continue;
        }
        __m256 count = _mm256_setzero_ps();
        __m256d rest_lo = _mm256_setzero_pd(), rest_hi = _mm256_setzero_pd();
        for (ptrdiff_t j = 0; j < C; j++) {
            __m256 d = _mm256_sub_ps(v[j], vm);
            __m256 eq = _mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_EQ_OQ);
            count = _mm256_add_ps(count, _mm256_and_ps(eq, one));
            __m256 ej = _mm256_andnot_ps(eq, xt_exp_ps_avx2(d));
            if (mode == XT_SHORT_SOFTMAX) /* keep exp(x - max), 1 at the maxima */
                v[j] = _mm256_blendv_ps(ej, one, eq);
            rest_lo = _mm256_add_pd(rest_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(ej)));
            rest_hi = _mm256_add_pd(rest_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(ej, 1)));
        }
        __m256d m_lo = _mm256_cvtps_pd(_mm256_castps256_ps128(vm));
        __m256d m_hi = _mm256_cvtps_pd(_mm256_extractf128_ps(vm, 1));
        __m256d c_lo = _mm256_cvtps_pd(_mm256_castps256_ps128(count));
        __m256d c_hi = _mm256_cvtps_pd(_mm256_extractf128_ps(count, 1));
        _mm256_storeu_pd(mm, m_lo);
        _mm256_storeu_pd(mm + 4, m_hi);
        _mm256_storeu_pd(cc, c_lo);
        _mm256_storeu_pd(cc + 4, c_hi);
        _mm256_storeu_pd(rr, rest_lo);
        _mm256_storeu_pd(rr + 4, rest_hi);
        if (xt_short_wants_lse(mode, logsum)) {
            /* PARTIALS: lse - max, the max left out (short_rows.h) */
            __m256d z = _mm256_setzero_pd();
            int rel = mode == XT_SHORT_PARTIALS;
            _mm256_storeu_pd(ls, xt_lse_finish_pd(rel ? z : m_lo, c_lo, rest_lo));
            _mm256_storeu_pd(ls + 4, xt_lse_finish_pd(rel ? z : m_hi, c_hi, rest_hi));
        } else if (mode == XT_SHORT_SOFTMAX) {
            /* exps times 1 / (count + rest) of their row */
            __m128 ilo = _mm256_cvtpd_ps(_mm256_div_pd(_mm256_set1_pd(1.0),
                                                       _mm256_add_pd(c_lo, rest_lo)));
            __m128 ihi = _mm256_cvtpd_ps(_mm256_div_pd(_mm256_set1_pd(1.0),
                                                       _mm256_add_pd(c_hi, rest_hi)));
            __m256 inv = _mm256_set_m128(ihi, ilo);
            for (ptrdiff_t j = 0; j < C; j++)
                _mm256_storeu_ps(e + 8 * j, _mm256_mul_ps(v[j], inv));
        }
        xt_short_emit_f32(mode, g, C, 8, mm, cc, rr, ls, e, xt_short_out(mode, out, r0, C),
                          gparts, logsum ? logsum + r0 : NULL);
    }
    if (r0 < nrows)
        xt_short_rows_generic_f32(x + r0 * C, nrows - r0, C, mode,
                                  xt_short_out(mode, out, r0, C),
                                  mode == XT_SHORT_PARTIALS ? parts + r0 : NULL,
                                  logsum ? logsum + r0 : NULL, xt_expscale_f32_avx2);
}

XT_AVX2 static void xt_short_rows_f64_avx2(const double *x, ptrdiff_t nrows, ptrdiff_t C,
                                           int mode, double *out, xt_lse_partial *parts,
                                           double *logsum)
{
    if (C <= 0 || C > XT_SHORT_MAX_COLS)
        return;
    __m256d v[XT_SHORT_MAX_COLS];
    double e[XT_SHORT_MAX_COLS * 4];
    double mm[4], cc[4], rr[4], ls[4];
    const __m128i idx = _mm_mullo_epi32(_mm_setr_epi32(0, 1, 2, 3), _mm_set1_epi32((int)C));
    const __m256d ninf = _mm256_set1_pd(-INFINITY);
    const __m256d one = _mm256_set1_pd(1.0);
    ptrdiff_t r0 = 0;
    for (; r0 + 4 <= nrows; r0 += 4) {
        const double *g = x + r0 * C;
        xt_lse_partial *gparts = mode == XT_SHORT_PARTIALS ? parts + r0 : NULL;
        xt_short_prefetch(g, 4 * C * (ptrdiff_t)sizeof(double));
        __m256d vm = ninf;
        for (ptrdiff_t j = 0; j < C; j++) {
            v[j] = _mm256_i32gather_pd(g + j, idx, 8);
            vm = _mm256_max_pd(v[j], vm);
        }
        __m256d fin = _mm256_cmp_pd(_mm256_sub_pd(vm, vm), _mm256_setzero_pd(), _CMP_EQ_OQ);
        if (_mm256_movemask_pd(fin) != 0xf) {
            xt_short_rows_generic_f64(g, 4, C, mode, xt_short_out(mode, out, r0, C), gparts,
                                      logsum ? logsum + r0 : NULL, xt_expscale_f64_avx2);
            continue;
        }
        __m256d count = _mm256_setzero_pd(), rest = _mm256_setzero_pd();
        for (ptrdiff_t j = 0; j < C; j++) {
            __m256d d = _mm256_sub_pd(v[j], vm);
            __m256d eq = _mm256_cmp_pd(d, _mm256_setzero_pd(), _CMP_EQ_OQ);
            count = _mm256_add_pd(count, _mm256_and_pd(eq, one));
            __m256d ej = _mm256_andnot_pd(eq, xt_exp_pd_avx2(d));
            if (mode == XT_SHORT_SOFTMAX)
                v[j] = _mm256_blendv_pd(ej, one, eq);
            rest = _mm256_add_pd(rest, ej);
        }
        _mm256_storeu_pd(mm, vm);
        _mm256_storeu_pd(cc, count);
        _mm256_storeu_pd(rr, rest);
        if (xt_short_wants_lse(mode, logsum)) {
            __m256d m = mode == XT_SHORT_PARTIALS ? _mm256_setzero_pd() : vm;
            _mm256_storeu_pd(ls, xt_lse_finish_pd(m, count, rest));
        } else if (mode == XT_SHORT_SOFTMAX) {
            __m256d inv = _mm256_div_pd(_mm256_set1_pd(1.0), _mm256_add_pd(count, rest));
            for (ptrdiff_t j = 0; j < C; j++)
                _mm256_storeu_pd(e + 4 * j, _mm256_mul_pd(v[j], inv));
        }
        xt_short_emit_f64(mode, g, C, 4, mm, cc, rr, ls, e, xt_short_out(mode, out, r0, C),
                          gparts, logsum ? logsum + r0 : NULL);
    }
    if (r0 < nrows)
        xt_short_rows_generic_f64(x + r0 * C, nrows - r0, C, mode,
                                  xt_short_out(mode, out, r0, C),
                                  mode == XT_SHORT_PARTIALS ? parts + r0 : NULL,
                                  logsum ? logsum + r0 : NULL, xt_expscale_f64_avx2);
}

#endif /* XT_HAVE_AVX2 */
#endif
