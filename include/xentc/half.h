/*
 * 16-bit floats (IEEE binary16 "float16" and bfloat16) as the kernels see
 * them: bit patterns in uint16_t, widened to float32 for the computation
 * and rounded back to 16 bits afterwards.
 *
 * Why float32 and not a 16-bit computation: the float32 kernels already
 * give results within ~2 float32 ulp, which is 2^-13 (float16) or 2^-16
 * (bfloat16) of a 16-bit ulp, so float32 arithmetic rounded once to 16 bits
 * is the correctly rounded result or 1 ulp from it; and a third copy of
 * every algorithm would be the price of anything else. Widening is exact
 * (every 16-bit value is a float32); narrowing rounds to nearest, ties to
 * even, the IEEE default and what NumPy, ml_dtypes and torch do, and keeps
 * NaN a NaN (bfloat16 by truncation alone could turn a NaN whose payload
 * sits in the low bits into infinity).
 *
 * This file holds the portable scalar conversions (the baseline level's
 * kernels, and the reference the vector ones, simd/{avx2,avx512,neon}.h and
 * algo/convert.h, are tested against bit for bit), and the conversion of a
 * double result (a log-sum-exp, a loss) to 16 bits in one rounding.
 */
#ifndef XENTC_HALF_H
#define XENTC_HALF_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lse_partial.h"

/* The formats, as the Cython layer passes them. */
enum { XT_H16_F16 = 0, XT_H16_BF16 = 1 };

/* Signatures of the conversion kernels in the dispatch table. */
typedef void (*xt_widen_fn)(const uint16_t *src, ptrdiff_t n, float *dst);
typedef void (*xt_narrow_fn)(const float *src, ptrdiff_t n, uint16_t *dst);

static inline uint32_t xt_f32_bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

static inline float xt_bits_f32(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* float16 -> float32, exact. */
static inline float xt_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) /* inf, NaN (payload kept) */
        return xt_bits_f32(sign | 0x7f800000u | (m << 13));
    if (e != 0) /* normal: rebias 15 -> 127 */
        return xt_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
    /* zero or subnormal: m 2^-24, exact in float */
    float f = (float)m * 0x1p-24f;
    return sign ? -f : f;
}

/* float32 -> float16, round to nearest even; NaN stays a (quiet) NaN. */
static inline uint16_t xt_f32_to_f16(float f)
{
    uint32_t x = xt_f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) /* NaN: quiet bit set, the payload's top bits */
        return (uint16_t)(sign | 0x7e00u | ((ax & 0x7fffffu) >> 13));
    if (ax >= 0x477ff000u) /* >= 65520, half-way past the largest (65504): inf */
        return (uint16_t)(sign | 0x7c00u);
    if (ax >= 0x38800000u) { /* float16 normal range (>= 2^-14) */
        uint32_t r = ax - (112u << 23); /* rebias 127 -> 15 */
        r += 0xfffu + ((r >> 13) & 1u);  /* ties to even; a carry bumps the exponent */
        return (uint16_t)(sign | (r >> 13));
    }
    /* subnormal float16 (or zero): adding 0.5 puts the 2^-24 units in the
     * low mantissa bits, the float addition rounding them to nearest even */
    float a = xt_bits_f32(ax) + 0.5f;
    return (uint16_t)(sign | (xt_f32_bits(a) - 0x3f000000u));
}

/* bfloat16 -> float32, exact: the 16 high bits of the float. */
static inline float xt_bf16_to_f32(uint16_t h) { return xt_bits_f32((uint32_t)h << 16); }

/* float32 -> bfloat16, round to nearest even; NaN stays a (quiet) NaN. */
static inline uint16_t xt_f32_to_bf16(float f)
{
    uint32_t x = xt_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x0040u);
    x += 0x7fffu + ((x >> 16) & 1u); /* a carry past the largest finite gives inf */
    return (uint16_t)(x >> 16);
}

/* double -> float rounded to odd: truncated, and the last bit set when
 * anything was cut off. A float with at least two more bits than the
 * target, rounded to odd, rounds to nearest-even in the target exactly as
 * the double would (no double rounding), so a double result reaches 16
 * bits in one correct rounding. (ml_dtypes' double -> bfloat16 goes
 * through a float rounded to nearest and can be off by one ulp.) */
static inline float xt_f64_to_f32_odd(double d)
{
    float f = (float)d;
    if (d != d || (double)f == d)
        return f;
    uint32_t b = xt_f32_bits(f);
    if (fabs((double)f) > fabs(d)) /* rounded away from zero (inf included) */
        b -= 1u;
    return xt_bits_f32(b | 1u);
}

static inline uint16_t xt_f64_to_f16(double d) { return xt_f32_to_f16(xt_f64_to_f32_odd(d)); }
static inline uint16_t xt_f64_to_bf16(double d) { return xt_f32_to_bf16(xt_f64_to_f32_odd(d)); }

static inline uint16_t xt_h16_from_double(int kind, double d)
{
    return kind == XT_H16_BF16 ? xt_f64_to_bf16(d) : xt_f64_to_f16(d);
}

/* Partials of 16-bit slices whose max is not finite (lse_partial.h). */
XT_DEFINE_SPECIAL_BLOCK_OF(xt_special_block_f16, uint16_t, float, xt_f16_to_f32)
XT_DEFINE_SPECIAL_BLOCK_OF(xt_special_block_bf16, uint16_t, float, xt_bf16_to_f32)

/* The baseline level's conversion kernels: the scalar functions above. */
#define XT_DEFINE_H16_BASELINE(FMT)                                           \
    static void xt_widen_##FMT##_baseline(const uint16_t *src, ptrdiff_t n,   \
                                          float *dst)                         \
    {                                                                         \
        for (ptrdiff_t i = 0; i < n; i++)                                     \
            dst[i] = xt_##FMT##_to_f32(src[i]);                               \
    }                                                                         \
    static void xt_narrow_##FMT##_baseline(const float *src, ptrdiff_t n,     \
                                           uint16_t *dst)                     \
    {                                                                         \
        for (ptrdiff_t i = 0; i < n; i++)                                     \
            dst[i] = xt_f32_to_##FMT(src[i]);                                 \
    }

XT_DEFINE_H16_BASELINE(f16)
XT_DEFINE_H16_BASELINE(bf16)

#endif
