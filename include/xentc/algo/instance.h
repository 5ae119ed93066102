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
#include "exp.h"
#include "log.h"
#include "partial.h"
#include "short_rows.h"
#include "row_groups.h"
#include "ce_rows.h"
#undef XT_DT
#undef XT_T
#undef XT_IS_F32
#undef XT_TBLOCK
#undef XT_TSPECIAL
#undef XT_TMAX

#define XT_DT f32
#define XT_T float
#define XT_IS_F32 1
#define XT_TBLOCK XT_BLOCK_F32
#define XT_TSPECIAL xt_special_block_f32
#define XT_TMAX FLT_MAX
#include "exp.h"
#include "log.h"
#include "partial.h"
#include "short_rows.h"
#include "row_groups.h"
#include "ce_rows.h"
#include "convert.h"
#undef XT_DT
#undef XT_T
#undef XT_IS_F32
#undef XT_TBLOCK
#undef XT_TSPECIAL
#undef XT_TMAX
