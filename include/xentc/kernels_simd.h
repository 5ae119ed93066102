/*
 * The vector kernels: every algorithm of algo/ instantiated over every
 * vector layer of simd/ this build has (algo/instance.h), per-function
 * target attributes on x86 so the module itself stays baseline x86-64.
 * dispatch.h puts them in its table.
 */
#ifndef XENTC_KERNELS_SIMD_H
#define XENTC_KERNELS_SIMD_H

#include <float.h>

#include "blocks.h"
#include "ce_options.h"
#include "short_rows.h"
#include "half.h"
#include "algo/exp_coefs.h"
#include "algo/log_coefs.h"
#include "simd/avx512.h"
#include "simd/neon.h"

#ifdef XT_HAVE_AVX2
#define XT_ISA avx2
#include "algo/instance.h"
#undef XT_ISA
#endif

#ifdef XT_HAVE_AVX512
#define XT_ISA avx512
#include "algo/instance.h"
#undef XT_ISA
#endif

#ifdef XT_HAVE_NEON
#define XT_ISA neon
#include "algo/instance.h"
#undef XT_ISA
#endif

#endif
