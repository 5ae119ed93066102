/*
 * Instantiates every algorithm template for the layer XT_ISA (defined by
 * the includer, e.g. kernels_simd.h) and both element types: float64
 * first, whose log the float32 short-row kernel uses. Kernels are named
 * xt_NAME_DT_ISA (xt_partial_f32_avx2, xt_short_rows_f64_neon, ...); the
 * 16-bit conversions (convert.h) are float32's alone.
 */
#define XT_DT f64
#define XT_T double
#define XT_IS_F32 0
#define XT_TBLOCK XT_BLOCK_F64
#define XT_TSPECIAL xt_special_block_f64
#define XT_TMAX DBL_MAX
#include "dtype.h"
#include "dtype_end.h"

#define XT_DT f32
#define XT_T float
#define XT_IS_F32 1
#define XT_TBLOCK XT_BLOCK_F32
#define XT_TSPECIAL xt_special_block_f32
#define XT_TMAX FLT_MAX
#include "dtype.h"
#include "convert.h"
/* The reductions again on float16 and bfloat16 input (algo/partial.h):
 * float32 arithmetic on the layer's widening loads, with its 16-bit
 * target attribute (F16C on AVX2). */
#undef XT_ATTR
#define XT_ATTR XT_CAT(XT_ATTR_H16_, XT_ISA)
#define XT_H16 1
#define XT_IN uint16_t
#define XT_LD_TAIL(p, n, fill) XT_KI(load_tail)(p, n, fill)
#define XT_LD(p) XT_H16_LOAD(p)
#define XT_LD2(p, a, b) XT_H16_LOAD2(p, a, b)
#define XT_KI(name) XT_CAT3(xt_##name##_, XT_H16_NAME, XT_CAT(_, XT_ISA))
#undef XT_TSPECIAL
#define XT_H16_LOAD XV(load_f16)
#define XT_H16_LOAD2 XV(load_f16_pair)
#define XT_H16_NAME f16
#define XT_TSPECIAL xt_special_block_f16
#include "partial.h"
#undef XT_H16_LOAD
#undef XT_H16_LOAD2
#undef XT_H16_NAME
#undef XT_TSPECIAL
#define XT_H16_LOAD XV(load_bf16)
#define XT_H16_LOAD2 XV(load_bf16_pair)
#define XT_H16_NAME bf16
#define XT_TSPECIAL xt_special_block_bf16
#include "partial.h"
#undef XT_H16_LOAD
#undef XT_H16_LOAD2
#undef XT_H16_NAME
#undef XT_H16
#undef XT_IN
#undef XT_LD
#undef XT_LD2
#undef XT_LD_TAIL
#undef XT_KI
#undef XT_ATTR
#define XT_ATTR XT_CAT(XT_ATTR_, XT_ISA)
#include "dtype_end.h"
