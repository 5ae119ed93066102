/*
 * Template (algo/instance.h, float32 only): the 16-bit conversion kernels
 * of one ISA over its vector layer's load_f16 / store_f16 / load_bf16 /
 * store_bf16 (simd/avx2.h lists the layers' operations; half.h says why
 * the kernels compute in float32):
 *   XT_K(widen_f16), XT_K(widen_bf16)    n 16-bit values -> n floats, exact;
 *   XT_K(narrow_f16), XT_K(narrow_bf16)  n floats -> n 16-bit values,
 *                                        rounded to nearest even, NaN kept.
 * Named xt_widen_f16_f32_avx2 and so on; dispatch.h puts them in its table
 * beside half.h's scalar baseline. A tail (fewer than a vector's lanes)
 * goes through a small buffer, so every element takes the vector
 * conversion, whose bits are those of half.h's scalar ones.
 * They carry XT_ATTR_H16_<ISA>: the layer's target plus F16C on AVX2.
 */
#include <string.h>

#define XT_H16_ATTR XT_CAT(XT_ATTR_H16_, XT_ISA)

#define XT_DEFINE_H16_CONVERT(WIDEN, NARROW, LOAD16, STORE16)                 \
    XT_H16_ATTR static void WIDEN(const uint16_t *src, ptrdiff_t n, float *dst) \
    {                                                                         \
        const ptrdiff_t W = XV(lanes);                                        \
        ptrdiff_t i = 0;                                                      \
        for (; i + W <= n; i += W)                                            \
            XV(store)(dst + i, LOAD16(src + i));                              \
        if (i < n) {                                                          \
            uint16_t t[XV(lanes)] = {0};                                      \
            memcpy(t, src + i, (size_t)(n - i) * sizeof *t);                  \
            XV(store_tail)(dst + i, n - i, LOAD16(t));                        \
        }                                                                     \
    }                                                                         \
    XT_H16_ATTR static void NARROW(const float *src, ptrdiff_t n, uint16_t *dst) \
    {                                                                         \
        const ptrdiff_t W = XV(lanes);                                        \
        ptrdiff_t i = 0;                                                      \
        for (; i + W <= n; i += W)                                            \
            STORE16(dst + i, XV(load)(src + i));                              \
        if (i < n) {                                                          \
            uint16_t t[XV(lanes)];                                            \
            STORE16(t, XV(load_tail)(src + i, n - i, XV(zero)()));            \
            memcpy(dst + i, t, (size_t)(n - i) * sizeof *t);                  \
        }                                                                     \
    }

/* (the kernel names are macros themselves: expanded before the paste) */
#define XT_DEFINE_H16_CONVERT_X(...) XT_DEFINE_H16_CONVERT(__VA_ARGS__)

XT_DEFINE_H16_CONVERT_X(XT_K(widen_f16), XT_K(narrow_f16), XV(load_f16), XV(store_f16))
XT_DEFINE_H16_CONVERT_X(XT_K(widen_bf16), XT_K(narrow_bf16), XV(load_bf16), XV(store_bf16))

#undef XT_DEFINE_H16_CONVERT
#undef XT_DEFINE_H16_CONVERT_X
#undef XT_H16_ATTR
