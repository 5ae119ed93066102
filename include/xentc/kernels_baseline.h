/*
 * Portable C kernels: the fallback on CPUs without AVX2/FMA and on other
 * architectures (no intrinsics here), and the reference the SIMD kernels are
 * tested against. exp comes from libm in double precision, so these are the
 * most accurate variants too.
 */
#ifndef XENTC_KERNELS_BASELINE_H
#define XENTC_KERNELS_BASELINE_H

#include "blocks.h"
#include "half.h"

#define XT_DEFINE_BASELINE(SUF, T)                                            \
    static xt_lse_partial xt_block_##SUF##_baseline(const T *x, ptrdiff_t n)  \
    {                                                                         \
        T m = (T)(-INFINITY);                                                 \
        /* `x > m` is false for NaN: NaN never becomes the max, it reaches   \
         * the sum below and poisons it, as it must. */                       \
        for (ptrdiff_t i = 0; i < n; i++)                                     \
            m = x[i] > m ? x[i] : m;                                          \
        if (!isfinite(m))                                                     \
            return xt_special_block_##SUF(x, n);                              \
        double nmax = 0.0, rest = 0.0;                                        \
        for (ptrdiff_t i = 0; i < n; i++) {                                   \
            if (x[i] == m)                                                    \
                nmax += 1.0;                                                  \
            else                                                              \
                rest += exp((double)x[i] - (double)m);                        \
        }                                                                     \
        xt_lse_partial p = {(double)m, nmax, rest, 0};                        \
        return p;                                                             \
    }                                                                         \
    static void xt_expscale_##SUF##_baseline(const T *x, ptrdiff_t n,         \
                                             double shift, double scale,      \
                                             T *out)                          \
    {                                                                         \
        for (ptrdiff_t i = 0; i < n; i++)                                     \
            out[i] = (T)(exp((double)x[i] - shift) * scale);                  \
    }                                                                         \
    static void xt_shift_##SUF##_baseline(const T *x, ptrdiff_t n,            \
                                          double shift, double offset,        \
                                          T *out)                             \
    {                                                                         \
        for (ptrdiff_t i = 0; i < n; i++)                                     \
            out[i] = (T)(((double)x[i] - shift) - offset);                    \
    }                                                                         \
    static void xt_scale_##SUF##_baseline(T *out, ptrdiff_t n, double scale)  \
    {                                                                         \
        const T s = (T)scale;                                                 \
        for (ptrdiff_t i = 0; i < n; i++)                                     \
            out[i] *= s;                                                      \
    }

XT_DEFINE_BASELINE(f32, float)
XT_DEFINE_BASELINE(f64, double)

XT_DEFINE_PARTIAL(, xt_partial_f32_baseline, float, xt_block_f32_baseline, XT_BLOCK_F32)
XT_DEFINE_PARTIAL(, xt_partial_f64_baseline, double, xt_block_f64_baseline, XT_BLOCK_F64)

/* The baseline never stores its exps (see XT_DEFINE_CHUNK_PARTIAL): its
 * blocks have their own maxima, and a caller that rescales stored float
 * exps would round twice where expscale rounds once. Returning 0 sends the
 * caller to expscale, so the reference keeps its single rounding. */
#define XT_DEFINE_BASELINE_STORE(SUF, T)                                      \
    static int xt_partial_##SUF##_baseline_store(const T *x, ptrdiff_t n,     \
                                                 T *out, xt_lse_partial *p)   \
    {                                                                         \
        (void)out;                                                            \
        *p = xt_partial_##SUF##_baseline(x, n);                               \
        return 0;                                                             \
    }
XT_DEFINE_BASELINE_STORE(f32, float)
XT_DEFINE_BASELINE_STORE(f64, double)

/* Partials of float16 / bfloat16 slices: blocks widened by half.h's scalar
 * conversions and reduced by the float32 baseline, merged in order (the
 * vector levels read them with widening loads: algo/partial.h). */
#define XT_DEFINE_H16_PARTIAL_BASELINE(FMT)                                   \
    static xt_lse_partial xt_partial_##FMT##_baseline(const uint16_t *x,      \
                                                      ptrdiff_t n)            \
    {                                                                         \
        float buf[XT_BLOCK_F32];                                              \
        xt_lse_partial p = xt_partial_empty();                                \
        for (ptrdiff_t off = 0; off < n; off += XT_BLOCK_F32) {               \
            ptrdiff_t len = n - off < XT_BLOCK_F32 ? n - off : XT_BLOCK_F32;  \
            for (ptrdiff_t i = 0; i < len; i++)                               \
                buf[i] = xt_##FMT##_to_f32(x[off + i]);                       \
            p = xt_partial_merge(p, xt_partial_f32_baseline(buf, len));       \
        }                                                                     \
        return p;                                                             \
    }
XT_DEFINE_H16_PARTIAL_BASELINE(f16)
XT_DEFINE_H16_PARTIAL_BASELINE(bf16)

#endif
