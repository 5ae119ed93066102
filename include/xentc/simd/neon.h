/*
 * The NEON vector layer (aarch64): 4 floats / 2 doubles a vector, the
 * operations of simd/avx2.h (listed there). Advanced SIMD is part of every
 * aarch64 CPU, so there is no run-time check and no target attribute.
 * What differs from x86:
 *   max        a > b ? a : b by compare and select, as x86's maxps: the
 *              NEON fmax would return NaN for a NaN lane, and NaN must
 *              never become a row's max;
 *   tails      no masked loads: a tail goes through a small buffer;
 *   gather     none: the lanes are loaded one by one;
 *   fma        vfmaq is fused, as x86's FMA, so the exp and log give the
 *              bits of the AVX2 kernels lane for lane.
 * Speed is unmeasured: this repository's CI runs the NEON kernels under
 * qemu (tools/check_aarch64.sh), which checks results only.
 */
#ifndef XENTC_SIMD_NEON_H
#define XENTC_SIMD_NEON_H

#include "common.h"

#if defined(__aarch64__) && !defined(XENTC_BASELINE_ONLY)
#define XT_HAVE_NEON 1
#include <arm_neon.h>
#include <string.h>

#include "../algo/exp_coefs.h"

#define XT_ATTR_neon
#define XT_LN static inline

/* The operations whose code is the same for both element types: DT, T,
 * vector V, mask M (unsigned lanes of T's width), suffixes S (f32/f64)
 * and U (u32/u64), lane count W. */
#define XT_DEFINE_NEON_LAYER(DT, T, V, M, S, U, W)                            \
    XT_DEFINE_LAYER_TYPES(xv_neon_##DT, V, M, M, ptrdiff_t, W)                \
    XT_LN V xv_neon_##DT##_set1(T a) { return vdupq_n_##S(a); }               \
    XT_LN V xv_neon_##DT##_zero(void) { return vdupq_n_##S(0); }              \
    XT_LN V xv_neon_##DT##_load(const T *p) { return vld1q_##S(p); }          \
    XT_LN void xv_neon_##DT##_store(T *p, V v) { vst1q_##S(p, v); }           \
    XT_LN V xv_neon_##DT##_load_tail(const T *p, ptrdiff_t n, V fill)         \
    {                                                                         \
        T buf[W];                                                             \
        vst1q_##S(buf, fill);                                                 \
        memcpy(buf, p, (size_t)n * sizeof(T));                                \
        return vld1q_##S(buf);                                                \
    }                                                                         \
    XT_LN void xv_neon_##DT##_store_tail(T *p, ptrdiff_t n, V v)              \
    {                                                                         \
        T buf[W];                                                             \
        vst1q_##S(buf, v);                                                    \
        memcpy(p, buf, (size_t)n * sizeof(T));                                \
    }                                                                         \
    XT_LN V xv_neon_##DT##_add(V a, V b) { return vaddq_##S(a, b); }         \
    XT_LN V xv_neon_##DT##_sub(V a, V b) { return vsubq_##S(a, b); }         \
    XT_LN V xv_neon_##DT##_mul(V a, V b) { return vmulq_##S(a, b); }         \
    XT_LN V xv_neon_##DT##_div(V a, V b) { return vdivq_##S(a, b); }         \
    XT_LN V xv_neon_##DT##_div_fast(V a, V b) { return vdivq_##S(a, b); }    \
    XT_LN V xv_neon_##DT##_max(V a, V b) { return vbslq_##S(vcgtq_##S(a, b), a, b); } \
    XT_LN V xv_neon_##DT##_fma(V a, V b, V c) { return vfmaq_##S(c, a, b); } \
    XT_LN V xv_neon_##DT##_fnma(V a, V b, V c) { return vfmsq_##S(c, a, b); } \
    /* a b - c = -(c - a b), one rounding either way */                     \
    XT_LN V xv_neon_##DT##_fms(V a, V b, V c) { return vnegq_##S(vfmsq_##S(c, a, b)); } \
    XT_LN M xv_neon_##DT##_cmp_eq(V a, V b) { return vceqq_##S(a, b); }      \
    XT_LN M xv_neon_##DT##_cmp_lt(V a, V b) { return vcltq_##S(a, b); }      \
    XT_LN M xv_neon_##DT##_cmp_ge(V a, V b) { return vcgeq_##S(a, b); }      \
    XT_LN M xv_neon_##DT##_not(M m) { return veorq_##U(m, vdupq_n_##U(~(xv_neon_##T##_bits)0)); } \
    XT_LN M xv_neon_##DT##_cmp_neq(V a, V b) { return xv_neon_##DT##_not(vceqq_##S(a, b)); } \
    XT_LN M xv_neon_##DT##_cmp_nlt(V a, V b) { return xv_neon_##DT##_not(vcltq_##S(a, b)); } \
    XT_LN M xv_neon_##DT##_cmp_unord(V a, V b)                                \
    {                                                                         \
        return xv_neon_##DT##_not(vandq_##U(vceqq_##S(a, a), vceqq_##S(b, b))); \
    }                                                                         \
    XT_LN V xv_neon_##DT##_select(M m, V a, V b) { return vbslq_##S(m, a, b); } \
    XT_LN V xv_neon_##DT##_zero_where(M m, V v)                               \
    {                                                                         \
        return vreinterpretq_##S##_##U(vbicq_##U(vreinterpretq_##U##_##S(v), m)); \
    }                                                                         \
    XT_LN V xv_neon_##DT##_add_where(V acc, M m, V v)                         \
    {                                                                         \
        return vaddq_##S(acc, vreinterpretq_##S##_##U(                        \
                                  vandq_##U(vreinterpretq_##U##_##S(v), m))); \
    }                                                                         \
    /* the accumulators hold no NaN (max never takes one) */                 \
    XT_LN T xv_neon_##DT##_hmax(V v) { return vmaxvq_##S(v); }               \
    XT_LN M xv_neon_##DT##_cnt_zero(void) { return vdupq_n_##U(0); }          \
    XT_LN M xv_neon_##DT##_cnt_add(M c, M m) { return vsubq_##U(c, m); }      \
    XT_LN long long xv_neon_##DT##_cnt_total(M c) { return (long long)vaddvq_##U(c); } \
    XT_LN V xv_neon_##DT##_gather(const T *p, ptrdiff_t C)                    \
    {                                                                         \
        T buf[W];                                                             \
        for (int l = 0; l < (W); l++)                                         \
            buf[l] = p[l * C];                                                \
        return vld1q_##S(buf);                                                \
    }                                                                         \
    XT_LN ptrdiff_t xv_neon_##DT##_gather_index(ptrdiff_t C) { return C; }

typedef uint32_t xv_neon_float_bits;
typedef uint64_t xv_neon_double_bits;
XT_DEFINE_NEON_LAYER(f32, float, float32x4_t, uint32x4_t, f32, u32, 4)
XT_DEFINE_NEON_LAYER(f64, double, float64x2_t, uint64x2_t, f64, u64, 2)
XT_DEFINE_GATHER_COLUMNS(XT_LN, xv_neon_f32, float)
XT_DEFINE_GATHER_COLUMNS(XT_LN, xv_neon_f64, double)
/* (not measured: qemu says nothing of speed; with outputs 24, as the
 * float32 AVX-512 layer) */
enum { xv_neon_f32_lane_classes = 32, xv_neon_f64_lane_classes = 32,
       xv_neon_f32_lane_classes_out = 24, xv_neon_f64_lane_classes_out = 24,
       xv_neon_f32_lane_classes_grad = 24, xv_neon_f64_lane_classes_grad = 24 };

/* ---- float32 only ----------------------------------------------------- */
XT_LN int xv_neon_f32_all(uint32x4_t m) { return vminvq_u32(m) == 0xffffffffu; }
XT_LN float64x2_t xv_neon_f32_widen(float32x4_t v, int k)
{
    return k ? vcvt_high_f64_f32(v) : vcvt_f64_f32(vget_low_f32(v));
}
XT_LN float32x4_t xv_neon_f32_narrow(const float64x2_t *d)
{
    return vcvt_high_f32_f64(vcvt_f32_f64(d[0]), d[1]);
}
/* a byte table lookup of the index's four bytes (4 i + 0..3) */
XT_LN float32x4_t xv_neon_f32_mant_lookup16(float32x4_t m, const float *t)
{
    const uint32x4_t i = vandq_u32(vshrq_n_u32(vreinterpretq_u32_f32(m), 19), vdupq_n_u32(15));
    const uint8x16_t b = vreinterpretq_u8_u32(
        vaddq_u32(vmulq_n_u32(i, 0x04040404u), vdupq_n_u32(0x03020100u)));
    const uint8_t *tb = (const uint8_t *)t;
    const uint8x16x4_t tab = {{vld1q_u8(tb), vld1q_u8(tb + 16), vld1q_u8(tb + 32),
                               vld1q_u8(tb + 48)}};
    return vreinterpretq_f32_u8(vqtbl4q_u8(tab, b));
}
/* float lanes widened to double before adding */
XT_LN double xv_neon_f32_hsum(float32x4_t v)
{
    return vaddvq_f64(vaddq_f64(xv_neon_f32_widen(v, 0), xv_neon_f32_widen(v, 1)));
}
/* 2^n: the biased exponent n + 127 sits in t's low mantissa bits. */
XT_LN float32x4_t xv_neon_f32_pow2_keep(float32x4_t p, float32x4_t n, float32x4_t t,
                                        uint32x4_t keep)
{
    (void)n;
    float32x4_t scale = vreinterpretq_f32_u32(vshlq_n_u32(vreinterpretq_u32_f32(t), 23));
    return vreinterpretq_f32_u32(vandq_u32(keep, vreinterpretq_u32_f32(vmulq_f32(p, scale))));
}

/* ---- float64 only ----------------------------------------------------- */
XT_LN int xv_neon_f64_all(uint64x2_t m)
{
    return (vgetq_lane_u64(m, 0) & vgetq_lane_u64(m, 1)) == ~(uint64_t)0;
}
XT_LN double xv_neon_f64_hsum(float64x2_t v) { return vaddvq_f64(v); }
XT_LN float64x2_t xv_neon_f64_widen(float64x2_t v, int k) { (void)k; return v; }
XT_LN float64x2_t xv_neon_f64_narrow(const float64x2_t *d) { return d[0]; }
/* 2^n: n sits in t's low bits (two's complement), so
 * (t_bits - shifter_bits + 1023) << 52 is 2^n for n in [-1022, 0]. */
XT_LN float64x2_t xv_neon_f64_pow2_keep(float64x2_t p, float64x2_t n, float64x2_t t,
                                        uint64x2_t keep)
{
    (void)n;
    int64x2_t bits = vsubq_s64(vreinterpretq_s64_f64(t),
                               vreinterpretq_s64_f64(vdupq_n_f64(XT_EXP_SHIFTER)));
    bits = vshlq_n_s64(vaddq_s64(bits, vdupq_n_s64(1023)), 52);
    return vreinterpretq_f64_u64(
        vandq_u64(keep, vreinterpretq_u64_f64(vmulq_f64(p, vreinterpretq_f64_s64(bits)))));
}
/* getexp / getmant of one element type from its bits: DT, vector V,
 * suffixes S (f32/f64), U (u32/u64), I (s32/s64), the exponent shift,
 * bias, mantissa mask and the bits of 1.0. */
#define XT_DEFINE_NEON_EXPMANT(DT, V, S, U, I, SHIFT, BIAS, MANT, ONE)         \
    XT_LN V xv_neon_##DT##_getexp(V x)                                        \
    {                                                                         \
        return vcvtq_##S##_##I(vsubq_##I(                                     \
            vreinterpretq_##I##_##U(vshrq_n_##U(vreinterpretq_##U##_##S(x), SHIFT)), \
            vdupq_n_##I(BIAS)));                                              \
    }                                                                         \
    XT_LN V xv_neon_##DT##_getmant(V x)                                       \
    {                                                                         \
        return vreinterpretq_##S##_##U(vorrq_##U(                             \
            vandq_##U(vreinterpretq_##U##_##S(x), vdupq_n_##U(MANT)), vdupq_n_##U(ONE))); \
    }
XT_DEFINE_NEON_EXPMANT(f32, float32x4_t, f32, u32, s32, 23, 127, 0x007fffffU, 0x3f800000U)
XT_DEFINE_NEON_EXPMANT(f64, float64x2_t, f64, u64, s64, 52, 1023, 0x000fffffffffffffULL,
                       0x3ff0000000000000ULL)

XT_LN float32x4_t xv_neon_f32_load_index(const long long *p)
{
    int32x2_t lo = vmovn_s64(vld1q_s64((const int64_t *)p));
    int32x2_t hi = vmovn_s64(vld1q_s64((const int64_t *)(p + 2)));
    return vcvtq_f32_s32(vcombine_s32(lo, hi));
}
XT_LN float64x2_t xv_neon_f64_load_index(const long long *p)
{
    return vcvtq_f64_s64(vld1q_s64((const int64_t *)p));
}
XT_DEFINE_LANEWISE_MANY(XT_LN, xv_neon_f32, float)
XT_DEFINE_LANEWISE_MANY(XT_LN, xv_neon_f64, double)
/* ---- 16-bit floats (float32 lanes; half.h says why) ------------------- */
/* The operations of simd/avx512.h's 16-bit section, 4 lanes: float16 by
 * vcvt (FCVTL/FCVTN, round to nearest even under the default FPCR, NaN
 * kept), bfloat16 by a 16-bit shift and integer rounding (the BF16
 * extension's BFCVTN is not in every aarch64 CPU). */
#define XT_ATTR_H16_neon
XT_LN float32x4_t xv_neon_f32_load_f16(const uint16_t *p)
{
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
}
XT_LN void xv_neon_f32_store_f16(uint16_t *p, float32x4_t v)
{
    vst1_u16(p, vreinterpret_u16_f16(vcvt_f16_f32(v)));
}
XT_LN float32x4_t xv_neon_f32_load_bf16(const uint16_t *p)
{
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16));
}
XT_LN void xv_neon_f32_load_bf16_pair(const uint16_t *p, float32x4_t *a, float32x4_t *b)
{
    /* the even elements and the odd ones (simd/avx2.h) */
    const uint32x4_t r = vreinterpretq_u32_u16(vld1q_u16(p));
    *a = vreinterpretq_f32_u32(vshlq_n_u32(r, 16));
    *b = vreinterpretq_f32_u32(vandq_u32(r, vdupq_n_u32(0xffff0000u)));
}
XT_LN void xv_neon_f32_load_f16_pair(const uint16_t *p, float32x4_t *a, float32x4_t *b)
{
    *a = xv_neon_f32_load_f16(p);
    *b = xv_neon_f32_load_f16(p + 4);
}
XT_LN void xv_neon_f32_store_bf16(uint16_t *p, float32x4_t v)
{
    const uint32x4_t x = vreinterpretq_u32_f32(v);
    const uint32x4_t lsb = vandq_u32(vshrq_n_u32(x, 16), vdupq_n_u32(1));
    uint32x4_t r = vaddq_u32(x, vaddq_u32(lsb, vdupq_n_u32(0x7fff)));
    /* NaN: truncated with the quiet bit set, never rounded into inf */
    uint32x4_t nan = vmvnq_u32(vceqq_f32(v, v));
    r = vbslq_u32(nan, vorrq_u32(x, vdupq_n_u32(0x400000)), r);
    vst1_u16(p, vshrn_n_u32(r, 16));
}

#undef XT_LN
#endif /* aarch64 */
#endif
