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
 * fixed grid of groups, never on threads.
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

/* Where rows from r0 on write: out is per row for LSE, per element for the
 * softmax modes, unused for PARTIALS. A macro: it serves float and double. */
#define xt_short_out(mode, out, r0, C)                                        \
    ((mode) == XT_SHORT_LSE ? (out) + (r0)                                    \
     : (mode) == XT_SHORT_PARTIALS ? NULL : (out) + (r0) * (C))

/* log_softmax of n rows of C from their log-sum-exp: x - lse in double. */
#define XT_DEFINE_WRITE_LOG_SOFTMAX(SUF, T)                                   \
    static inline void xt_short_write_log_softmax_##SUF(                      \
        const T *x, ptrdiff_t C, int n, const double *ls, T *out)             \
    {                                                                         \
        for (int l = 0; l < n; l++)                                           \
            for (ptrdiff_t j = 0; j < C; j++)                                 \
                out[l * C + j] = (T)((double)x[l * C + j] - ls[l]);           \
    }
XT_DEFINE_WRITE_LOG_SOFTMAX(f32, float)
XT_DEFINE_WRITE_LOG_SOFTMAX(f64, double)

XT_AVX2 static void xt_short_rows_f32_avx2(const float *x, ptrdiff_t nrows, ptrdiff_t C,
                                           int mode, float *out, xt_lse_partial *parts,
                                           double *lse)
{
    if (C <= 0 || C > XT_SHORT_MAX_COLS)
        return;
    __m256 v[XT_SHORT_MAX_COLS];
    const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                           _mm256_set1_epi32((int)C));
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    const __m256 one = _mm256_set1_ps(1.0f);
    ptrdiff_t r0 = 0;
    for (; r0 + 8 <= nrows; r0 += 8) {
        const float *g = x + r0 * C;
        __m256 vm = ninf;
        for (ptrdiff_t j = 0; j < C; j++) {
            v[j] = _mm256_i32gather_ps(g + j, idx, 4);
            vm = _mm256_max_ps(v[j], vm);
        }
        /* any lane whose max is +inf, -inf (or all NaN): generic kernel */
        __m256 fin = _mm256_cmp_ps(_mm256_sub_ps(vm, vm), _mm256_setzero_ps(), _CMP_EQ_OQ);
        if (_mm256_movemask_ps(fin) != 0xff) {
            xt_short_rows_generic_f32(g, 8, C, mode, xt_short_out(mode, out, r0, C),
                              mode == XT_SHORT_PARTIALS ? parts + r0 : NULL,
                              lse ? lse + r0 : NULL, xt_expscale_f32_avx2);
            continue;
        }
        __m256 count = _mm256_setzero_ps();
        __m256d rest_lo = _mm256_setzero_pd(), rest_hi = _mm256_setzero_pd();
        for (ptrdiff_t j = 0; j < C; j++) {
            __m256 d = _mm256_sub_ps(v[j], vm);
            __m256 eq = _mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_EQ_OQ);
            count = _mm256_add_ps(count, _mm256_and_ps(eq, one));
            __m256 e = _mm256_andnot_ps(eq, xt_exp_ps_avx2(d));
            if (mode == XT_SHORT_SOFTMAX) /* keep exp(x - max), 1 at the maxima */
                v[j] = _mm256_blendv_ps(e, one, eq);
            rest_lo = _mm256_add_pd(rest_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
            rest_hi = _mm256_add_pd(rest_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
        }
        __m256d m_lo = _mm256_cvtps_pd(_mm256_castps256_ps128(vm));
        __m256d m_hi = _mm256_cvtps_pd(_mm256_extractf128_ps(vm, 1));
        __m256d c_lo = _mm256_cvtps_pd(_mm256_castps256_ps128(count));
        __m256d c_hi = _mm256_cvtps_pd(_mm256_extractf128_ps(count, 1));
        if (mode == XT_SHORT_LSE) {
            __m128 lo = _mm256_cvtpd_ps(xt_lse_finish_pd(m_lo, c_lo, rest_lo));
            __m128 hi = _mm256_cvtpd_ps(xt_lse_finish_pd(m_hi, c_hi, rest_hi));
            _mm256_storeu_ps(out + r0, _mm256_set_m128(hi, lo));
        } else if (mode == XT_SHORT_LOG_SOFTMAX) {
            double ls[8];
            _mm256_storeu_pd(ls, xt_lse_finish_pd(m_lo, c_lo, rest_lo));
            _mm256_storeu_pd(ls + 4, xt_lse_finish_pd(m_hi, c_hi, rest_hi));
            xt_short_write_log_softmax_f32(g, C, 8, ls, out + r0 * C);
        } else if (mode == XT_SHORT_SOFTMAX) {
            /* 1 / (count + rest) per row, then row r gets lane r of each v[j] */
            float inv[8];
            __m128 ilo = _mm256_cvtpd_ps(_mm256_div_pd(_mm256_set1_pd(1.0),
                                                       _mm256_add_pd(c_lo, rest_lo)));
            __m128 ihi = _mm256_cvtpd_ps(_mm256_div_pd(_mm256_set1_pd(1.0),
                                                       _mm256_add_pd(c_hi, rest_hi)));
            _mm256_storeu_ps(inv, _mm256_set_m128(ihi, ilo));
            float e[XT_SHORT_MAX_COLS * 8];
            for (ptrdiff_t j = 0; j < C; j++)
                _mm256_storeu_ps(e + 8 * j, _mm256_mul_ps(v[j], _mm256_loadu_ps(inv)));
            float *o = out + r0 * C;
            for (int l = 0; l < 8; l++)
                for (ptrdiff_t j = 0; j < C; j++)
                    o[l * C + j] = e[8 * j + l];
        } else {
            if (lse) {
                _mm256_storeu_pd(lse + r0, xt_lse_finish_pd(m_lo, c_lo, rest_lo));
                _mm256_storeu_pd(lse + r0 + 4, xt_lse_finish_pd(m_hi, c_hi, rest_hi));
            }
            double mm[8], cc[8], rr[8];
            _mm256_storeu_pd(mm, m_lo);
            _mm256_storeu_pd(mm + 4, m_hi);
            _mm256_storeu_pd(cc, c_lo);
            _mm256_storeu_pd(cc + 4, c_hi);
            _mm256_storeu_pd(rr, rest_lo);
            _mm256_storeu_pd(rr + 4, rest_hi);
            for (int l = 0; l < 8; l++) {
                parts[r0 + l].max = mm[l];
                parts[r0 + l].nmax = cc[l];
                parts[r0 + l].rest = rr[l];
                parts[r0 + l].flags = 0;
            }
        }
    }
    if (r0 < nrows)
        xt_short_rows_generic_f32(x + r0 * C, nrows - r0, C, mode,
                          xt_short_out(mode, out, r0, C),
                          mode == XT_SHORT_PARTIALS ? parts + r0 : NULL,
                              lse ? lse + r0 : NULL, xt_expscale_f32_avx2);
}

XT_AVX2 static void xt_short_rows_f64_avx2(const double *x, ptrdiff_t nrows, ptrdiff_t C,
                                           int mode, double *out, xt_lse_partial *parts,
                                           double *lse)
{
    if (C <= 0 || C > XT_SHORT_MAX_COLS)
        return;
    __m256d v[XT_SHORT_MAX_COLS];
    const __m128i idx = _mm_mullo_epi32(_mm_setr_epi32(0, 1, 2, 3), _mm_set1_epi32((int)C));
    const __m256d ninf = _mm256_set1_pd(-INFINITY);
    const __m256d one = _mm256_set1_pd(1.0);
    ptrdiff_t r0 = 0;
    for (; r0 + 4 <= nrows; r0 += 4) {
        const double *g = x + r0 * C;
        __m256d vm = ninf;
        for (ptrdiff_t j = 0; j < C; j++) {
            v[j] = _mm256_i32gather_pd(g + j, idx, 8);
            vm = _mm256_max_pd(v[j], vm);
        }
        __m256d fin = _mm256_cmp_pd(_mm256_sub_pd(vm, vm), _mm256_setzero_pd(), _CMP_EQ_OQ);
        if (_mm256_movemask_pd(fin) != 0xf) {
            xt_short_rows_generic_f64(g, 4, C, mode, xt_short_out(mode, out, r0, C),
                              mode == XT_SHORT_PARTIALS ? parts + r0 : NULL,
                              lse ? lse + r0 : NULL, xt_expscale_f64_avx2);
            continue;
        }
        __m256d count = _mm256_setzero_pd(), rest = _mm256_setzero_pd();
        for (ptrdiff_t j = 0; j < C; j++) {
            __m256d d = _mm256_sub_pd(v[j], vm);
            __m256d eq = _mm256_cmp_pd(d, _mm256_setzero_pd(), _CMP_EQ_OQ);
            count = _mm256_add_pd(count, _mm256_and_pd(eq, one));
            __m256d e = _mm256_andnot_pd(eq, xt_exp_pd_avx2(d));
            if (mode == XT_SHORT_SOFTMAX)
                v[j] = _mm256_blendv_pd(e, one, eq);
            rest = _mm256_add_pd(rest, e);
        }
        if (mode == XT_SHORT_LSE) {
            _mm256_storeu_pd(out + r0, xt_lse_finish_pd(vm, count, rest));
        } else if (mode == XT_SHORT_LOG_SOFTMAX) {
            double ls[4];
            _mm256_storeu_pd(ls, xt_lse_finish_pd(vm, count, rest));
            xt_short_write_log_softmax_f64(g, C, 4, ls, out + r0 * C);
        } else if (mode == XT_SHORT_SOFTMAX) {
            __m256d inv = _mm256_div_pd(_mm256_set1_pd(1.0), _mm256_add_pd(count, rest));
            double e[XT_SHORT_MAX_COLS * 4];
            for (ptrdiff_t j = 0; j < C; j++)
                _mm256_storeu_pd(e + 4 * j, _mm256_mul_pd(v[j], inv));
            double *o = out + r0 * C;
            for (int l = 0; l < 4; l++)
                for (ptrdiff_t j = 0; j < C; j++)
                    o[l * C + j] = e[4 * j + l];
        } else {
            if (lse)
                _mm256_storeu_pd(lse + r0, xt_lse_finish_pd(vm, count, rest));
            double mm[4], cc[4], rr[4];
            _mm256_storeu_pd(mm, vm);
            _mm256_storeu_pd(cc, count);
            _mm256_storeu_pd(rr, rest);
            for (int l = 0; l < 4; l++) {
                parts[r0 + l].max = mm[l];
                parts[r0 + l].nmax = cc[l];
                parts[r0 + l].rest = rr[l];
                parts[r0 + l].flags = 0;
            }
        }
    }
    if (r0 < nrows)
        xt_short_rows_generic_f64(x + r0 * C, nrows - r0, C, mode,
                          xt_short_out(mode, out, r0, C),
                          mode == XT_SHORT_PARTIALS ? parts + r0 : NULL,
                              lse ? lse + r0 : NULL, xt_expscale_f64_avx2);
}

#endif /* XT_HAVE_AVX2 */
#endif
