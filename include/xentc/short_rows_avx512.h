/*
 * Many short rows on AVX-512F: the method of short_rows_avx2.h (one row per
 * lane, columns by gathers, see there) on 16 float rows or 8 double rows a
 * group. The exps are exp_avx512.h's, which give exp_avx2.h's bits, and the
 * sums of the others run in the same order, so max, count and rest equal
 * the AVX2 kernel's; the final log is log_avx512.h's (about 1 ulp, as the
 * AVX2 one). Masks replace the blends.
 */
#ifndef XENTC_SHORT_ROWS_AVX512_H
#define XENTC_SHORT_ROWS_AVX512_H

#include "short_rows.h"
#include "kernels_avx512.h"
#include "log_avx512.h"

#ifdef XT_HAVE_AVX512

/* lse of 8 rows from max, count and rest (all finite, count >= 1), as
 * xt_lse_finish_pd: max + log(S) + err / S with S = count + rest and err its
 * rounding error; NaN rests give NaN. */
XT_AVX512 static inline __m512d xt_lse_finish_pd_avx512(__m512d m, __m512d count,
                                                        __m512d rest)
{
    __m512d S = _mm512_add_pd(count, rest);
    __m512d bv = _mm512_sub_pd(S, count);
    __m512d err = _mm512_add_pd(_mm512_sub_pd(count, _mm512_sub_pd(S, bv)),
                                _mm512_sub_pd(rest, bv));
    __m512d l = _mm512_add_pd(xt_log_pd_avx512(S),
                              _mm512_mul_pd(err, xt_rcp_pd_avx512(S)));
    __mmask8 nan = _mm512_cmp_pd_mask(S, S, _CMP_UNORD_Q);
    return _mm512_mask_mov_pd(_mm512_add_pd(m, l), nan, _mm512_set1_pd(NAN));
}

/* The low and high 8 floats of v, widened to double. */
XT_AVX512 static inline __m512d xt_lo_pd_avx512(__m512 v)
{
    return _mm512_cvtps_pd(_mm512_castps512_ps256(v));
}

XT_AVX512 static inline __m512d xt_hi_pd_avx512(__m512 v)
{
    return _mm512_cvtps_pd(
        _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

XT_AVX512 static void xt_short_rows_f32_avx512(const float *x, ptrdiff_t nrows,
                                               ptrdiff_t C, int mode, float *out,
                                               xt_lse_partial *parts, double *logsum)
{
    if (C <= 0 || C > XT_SHORT_MAX_COLS)
        return;
    __m512 v[XT_SHORT_MAX_COLS];
    float e[XT_SHORT_MAX_COLS * 16];
    double mm[16], cc[16], rr[16], ls[16];
    const __m512i idx = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32((int)C));
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    const __m512 one = _mm512_set1_ps(1.0f);
    ptrdiff_t r0 = 0;
    for (; r0 + 16 <= nrows; r0 += 16) {
        const float *g = x + r0 * C;
        xt_lse_partial *gparts = mode == XT_SHORT_PARTIALS ? parts + r0 : NULL;
        xt_short_prefetch(g, 16 * C * (ptrdiff_t)sizeof(float));
        __m512 vm = ninf;
        for (ptrdiff_t j = 0; j < C; j++) {
            v[j] = _mm512_i32gather_ps(idx, g + j, 4);
            vm = _mm512_max_ps(v[j], vm);
        }
        /* any lane whose max is +inf, -inf (or all NaN): generic kernel */
        if (_mm512_cmp_ps_mask(_mm512_sub_ps(vm, vm), _mm512_setzero_ps(), _CMP_EQ_OQ) !=
            0xffff) {
            xt_short_rows_generic_f32(g, 16, C, mode, xt_short_out(mode, out, r0, C), gparts,
                                      logsum ? logsum + r0 : NULL, xt_expscale_f32_avx512);
            continue;
        }
        __m512 count = _mm512_setzero_ps();
        __m512d rest_lo = _mm512_setzero_pd(), rest_hi = _mm512_setzero_pd();
        for (ptrdiff_t j = 0; j < C; j++) {
            __m512 d = _mm512_sub_ps(v[j], vm);
            __mmask16 eq = _mm512_cmp_ps_mask(d, _mm512_setzero_ps(), _CMP_EQ_OQ);
            count = _mm512_mask_add_ps(count, eq, count, one);
            __m512 ej = _mm512_maskz_mov_ps((__mmask16)~eq, xt_exp_ps_avx512(d));
            if (mode == XT_SHORT_SOFTMAX) /* keep exp(x - max), 1 at the maxima */
                v[j] = _mm512_mask_mov_ps(ej, eq, one);
            rest_lo = _mm512_add_pd(rest_lo, xt_lo_pd_avx512(ej));
            rest_hi = _mm512_add_pd(rest_hi, xt_hi_pd_avx512(ej));
        }
        __m512d m_lo = xt_lo_pd_avx512(vm), m_hi = xt_hi_pd_avx512(vm);
        __m512d c_lo = xt_lo_pd_avx512(count), c_hi = xt_hi_pd_avx512(count);
        _mm512_storeu_pd(mm, m_lo);
        _mm512_storeu_pd(mm + 8, m_hi);
        _mm512_storeu_pd(cc, c_lo);
        _mm512_storeu_pd(cc + 8, c_hi);
        _mm512_storeu_pd(rr, rest_lo);
        _mm512_storeu_pd(rr + 8, rest_hi);
        if (xt_short_wants_lse(mode, logsum)) {
            /* PARTIALS: lse - max, the max left out (short_rows.h) */
            __m512d z = _mm512_setzero_pd();
            int rel = mode == XT_SHORT_PARTIALS;
            _mm512_storeu_pd(ls, xt_lse_finish_pd_avx512(rel ? z : m_lo, c_lo, rest_lo));
            _mm512_storeu_pd(ls + 8, xt_lse_finish_pd_avx512(rel ? z : m_hi, c_hi, rest_hi));
        } else if (mode == XT_SHORT_SOFTMAX) {
            /* exps times 1 / (count + rest) of their row, divided exactly
             * as the AVX2 kernel does */
            __m256 ilo = _mm512_cvtpd_ps(_mm512_div_pd(_mm512_set1_pd(1.0),
                                                       _mm512_add_pd(c_lo, rest_lo)));
            __m256 ihi = _mm512_cvtpd_ps(_mm512_div_pd(_mm512_set1_pd(1.0),
                                                       _mm512_add_pd(c_hi, rest_hi)));
            __m512 inv = _mm512_castpd_ps(_mm512_insertf64x4(
                _mm512_castpd256_pd512(_mm256_castps_pd(ilo)), _mm256_castps_pd(ihi), 1));
            for (ptrdiff_t j = 0; j < C; j++)
                _mm512_storeu_ps(e + 16 * j, _mm512_mul_ps(v[j], inv));
        }
        xt_short_emit_f32(mode, g, C, 16, mm, cc, rr, ls, e, xt_short_out(mode, out, r0, C),
                          gparts, logsum ? logsum + r0 : NULL);
    }
    /* fewer than 16 rows left: the AVX2 kernel's groups of 8, then generic */
    if (r0 < nrows)
        xt_short_rows_f32_avx2(x + r0 * C, nrows - r0, C, mode,
                               xt_short_out(mode, out, r0, C),
                               mode == XT_SHORT_PARTIALS ? parts + r0 : NULL,
                               logsum ? logsum + r0 : NULL);
}

XT_AVX512 static void xt_short_rows_f64_avx512(const double *x, ptrdiff_t nrows,
                                               ptrdiff_t C, int mode, double *out,
                                               xt_lse_partial *parts, double *logsum)
{
    if (C <= 0 || C > XT_SHORT_MAX_COLS)
        return;
    __m512d v[XT_SHORT_MAX_COLS];
    double e[XT_SHORT_MAX_COLS * 8];
    double mm[8], cc[8], rr[8], ls[8];
    const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                           _mm256_set1_epi32((int)C));
    const __m512d ninf = _mm512_set1_pd(-INFINITY);
    const __m512d one = _mm512_set1_pd(1.0);
    ptrdiff_t r0 = 0;
    for (; r0 + 8 <= nrows; r0 += 8) {
        const double *g = x + r0 * C;
        xt_lse_partial *gparts = mode == XT_SHORT_PARTIALS ? parts + r0 : NULL;
        xt_short_prefetch(g, 8 * C * (ptrdiff_t)sizeof(double));
        __m512d vm = ninf;
        for (ptrdiff_t j = 0; j < C; j++) {
            v[j] = _mm512_i32gather_pd(idx, g + j, 8);
            vm = _mm512_max_pd(v[j], vm);
        }
        if (_mm512_cmp_pd_mask(_mm512_sub_pd(vm, vm), _mm512_setzero_pd(), _CMP_EQ_OQ) !=
            0xff) {
            xt_short_rows_generic_f64(g, 8, C, mode, xt_short_out(mode, out, r0, C), gparts,
                                      logsum ? logsum + r0 : NULL, xt_expscale_f64_avx512);
            continue;
        }
        __m512d count = _mm512_setzero_pd(), rest = _mm512_setzero_pd();
        for (ptrdiff_t j = 0; j < C; j++) {
            __m512d d = _mm512_sub_pd(v[j], vm);
            __mmask8 eq = _mm512_cmp_pd_mask(d, _mm512_setzero_pd(), _CMP_EQ_OQ);
            count = _mm512_mask_add_pd(count, eq, count, one);
            __m512d ej = _mm512_maskz_mov_pd((__mmask8)~eq, xt_exp_pd_avx512(d));
            if (mode == XT_SHORT_SOFTMAX)
                v[j] = _mm512_mask_mov_pd(ej, eq, one);
            rest = _mm512_add_pd(rest, ej);
        }
        _mm512_storeu_pd(mm, vm);
        _mm512_storeu_pd(cc, count);
        _mm512_storeu_pd(rr, rest);
        if (xt_short_wants_lse(mode, logsum)) {
            __m512d m = mode == XT_SHORT_PARTIALS ? _mm512_setzero_pd() : vm;
            _mm512_storeu_pd(ls, xt_lse_finish_pd_avx512(m, count, rest));
        } else if (mode == XT_SHORT_SOFTMAX) {
            __m512d inv = _mm512_div_pd(_mm512_set1_pd(1.0), _mm512_add_pd(count, rest));
            for (ptrdiff_t j = 0; j < C; j++)
                _mm512_storeu_pd(e + 8 * j, _mm512_mul_pd(v[j], inv));
        }
        xt_short_emit_f64(mode, g, C, 8, mm, cc, rr, ls, e, xt_short_out(mode, out, r0, C),
                          gparts, logsum ? logsum + r0 : NULL);
    }
    if (r0 < nrows)
        xt_short_rows_f64_avx2(x + r0 * C, nrows - r0, C, mode,
                               xt_short_out(mode, out, r0, C),
                               mode == XT_SHORT_PARTIALS ? parts + r0 : NULL,
                               logsum ? logsum + r0 : NULL);
}

#endif /* XT_HAVE_AVX512 */
#endif
