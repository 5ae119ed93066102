/*
 * Run-time choice of kernels. Every instruction-set variant (the portable
 * kernels_baseline.h + short_rows.h, and the vector kernels of
 * kernels_simd.h: AVX2, AVX-512 on x86-64, NEON on aarch64) fills the same
 * table; one is chosen at import (the best the CPU supports, or the one named
 * by XENTC_CPU) and every array loop calls through the table. The CPU check
 * uses __builtin_cpu_supports, which also checks that the OS saves the YMM
 * state; no ifunc/target_clones, which musl, macOS and Windows lack. NEON
 * is part of every aarch64 CPU: no check.
 */
#ifndef XENTC_DISPATCH_H
#define XENTC_DISPATCH_H

#include <string.h>

#include "kernels_baseline.h"
#include "short_rows.h"
#include "kernels_simd.h"

typedef struct {
    const char *name;
    xt_partial_f32_fn partial_f32;
    xt_partial_f64_fn partial_f64;
    /* the partial, and exp(x - max) left in out when it returns 1 */
    xt_partial_store_f32_fn partial_store_f32;
    xt_partial_store_f64_fn partial_store_f64;
    /* out = exp(x - shift) * scale  (softmax) */
    xt_map_f32_fn expscale_f32;
    xt_map_f64_fn expscale_f64;
    /* out = (x - shift) - offset  (log_softmax) */
    xt_map_f32_fn shift_f32;
    xt_map_f64_fn shift_f64;
    /* out *= scale in place (softmax, the gradient: stored exps rescaled) */
    xt_scale_f32_fn scale_f32;
    xt_scale_f64_fn scale_f64;
    /* blocks of rows of at most XT_SHORT_MAX_COLS elements (short_rows.h) */
    xt_short_f32_fn short_rows_f32;
    xt_short_f64_fn short_rows_f64;
    /* cross-entropy of index-target rows, fused (algo/ce_rows.h); NULL at
     * the baseline level, whose per-row path stays the reference */
    xt_ce_index_f32_fn ce_index_f32;
    xt_ce_index_f64_fn ce_index_f64;
    /* log-sum-exp / softmax / log_softmax of rows by groups
     * (algo/row_groups.h); NULL at the baseline level too */
    xt_rows_f32_fn rows_f32;
    xt_rows_f64_fn rows_f64;
    /* partials of float16 / bfloat16 slices, in float32 (algo/partial.h) */
    xt_partial_h16_fn partial_f16;
    xt_partial_h16_fn partial_bf16;
    /* the cross-entropy's weighted sums and gradient class terms
     * (algo/ce_sums.h); NULL at baseline: cross_entropy.h's scalar loops */
    xt_ce_sums_f32_fn ce_sums_f32;
    xt_ce_sums_f64_fn ce_sums_f64;
    xt_ce_grad_fix_f32_fn ce_grad_fix_f32;
    xt_ce_grad_fix_f64_fn ce_grad_fix_f64;
    /* 16-bit floats <-> float32 (half.h, algo/convert.h) */
    xt_widen_fn widen_f16;
    xt_narrow_fn narrow_f16;
    xt_widen_fn widen_bf16;
    xt_narrow_fn narrow_bf16;
} xt_kernels;

static const xt_kernels xt_kernels_baseline = {
    "baseline",
    xt_partial_f32_baseline, xt_partial_f64_baseline,
    xt_partial_f32_baseline_store, xt_partial_f64_baseline_store,
    xt_expscale_f32_baseline, xt_expscale_f64_baseline,
    xt_shift_f32_baseline, xt_shift_f64_baseline,
    xt_scale_f32_baseline, xt_scale_f64_baseline,
    xt_short_rows_f32_baseline, xt_short_rows_f64_baseline,
    NULL, NULL,
    NULL, NULL,
    xt_partial_f16_baseline, xt_partial_bf16_baseline,
    NULL, NULL, NULL, NULL,
    xt_widen_f16_baseline, xt_narrow_f16_baseline, xt_widen_bf16_baseline, xt_narrow_bf16_baseline,
};

/* The table of a vector level: every kernel xt_NAME_DT_ISA that
 * algo/instance.h instantiated for it. */
#define XT_SIMD_KERNELS(ISA)                                                  \
    static const xt_kernels xt_kernels_##ISA = {                              \
        #ISA,                                                                 \
        xt_partial_f32_##ISA, xt_partial_f64_##ISA,                           \
        xt_partial_f32_##ISA##_store, xt_partial_f64_##ISA##_store,           \
        xt_expscale_f32_##ISA, xt_expscale_f64_##ISA,                         \
        xt_shift_f32_##ISA, xt_shift_f64_##ISA,                               \
        xt_scale_f32_##ISA, xt_scale_f64_##ISA,                               \
        xt_short_rows_f32_##ISA, xt_short_rows_f64_##ISA,                     \
        xt_ce_index_f32_##ISA, xt_ce_index_f64_##ISA,                         \
        xt_rows_f32_##ISA, xt_rows_f64_##ISA,                                 \
        xt_partial_f16_##ISA, xt_partial_bf16_##ISA,                          \
        xt_ce_sums_f32_##ISA, xt_ce_sums_f64_##ISA,                           \
        xt_ce_grad_fix_f32_##ISA, xt_ce_grad_fix_f64_##ISA,                   \
        xt_widen_f16_f32_##ISA, xt_narrow_f16_f32_##ISA,                      \
        xt_widen_bf16_f32_##ISA, xt_narrow_bf16_f32_##ISA,                    \
    };

#ifdef XT_HAVE_AVX2
XT_SIMD_KERNELS(avx2)
#endif
#ifdef XT_HAVE_AVX512
XT_SIMD_KERNELS(avx512)
#endif
#ifdef XT_HAVE_NEON
XT_SIMD_KERNELS(neon)
#endif

static const xt_kernels *xt_active = &xt_kernels_baseline;

/* Does this CPU (and build) support the named level? avx512 uses avx512f
 * alone (no other AVX-512 subset) on top of avx2's features; avx2 needs FMA
 * and F16C (the float16 conversions, simd/avx2.h). */
static int xt_cpu_supports(const char *name)
{
    if (strcmp(name, "baseline") == 0)
        return 1;
#ifdef XT_HAVE_NEON
    if (strcmp(name, "neon") == 0)
        return 1;
#endif
#ifdef XT_HAVE_AVX2
    int avx512 = strcmp(name, "avx512") == 0;
    if (avx512 || strcmp(name, "avx2") == 0) {
        __builtin_cpu_init();
        int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                   __builtin_cpu_supports("f16c");
#ifdef XT_HAVE_AVX512
        return avx2 && (!avx512 || __builtin_cpu_supports("avx512f"));
#else
        return avx2 && !avx512;
#endif
    }
#endif
    return 0;
}

/* Levels compiled into this build, best first, separated by spaces. */
static const char *xt_compiled_levels(void)
{
#if defined(XT_HAVE_NEON)
    return "neon baseline";
#elif defined(XT_HAVE_AVX512)
    return "avx512 avx2 baseline";
#elif defined(XT_HAVE_AVX2)
    return "avx2 baseline";
#else
    return "baseline";
#endif
}

/* Activate a level; returns 0, or -1 if it is not compiled in or the CPU
 * lacks it (the active table is then unchanged). */
static int xt_select(const char *name)
{
    if (!xt_cpu_supports(name))
        return -1;
#ifdef XT_HAVE_AVX512
    if (strcmp(name, "avx512") == 0) {
        xt_active = &xt_kernels_avx512;
        return 0;
    }
#endif
#ifdef XT_HAVE_AVX2
    if (strcmp(name, "avx2") == 0) {
        xt_active = &xt_kernels_avx2;
        return 0;
    }
#endif
#ifdef XT_HAVE_NEON
    if (strcmp(name, "neon") == 0) {
        xt_active = &xt_kernels_neon;
        return 0;
    }
#endif
    xt_active = &xt_kernels_baseline;
    return 0;
}

static const char *xt_active_name(void) { return xt_active->name; }

#endif
