#!/usr/bin/env bash
# Build and run tools/baseline_check.c against the C kernels with
# -DXENTC_BASELINE_ONLY (no x86 intrinsics: what a non-x86 or non-GCC/Clang
# platform compiles), to show the portable core stands alone:
#   * plain C11 + libm, warnings as errors;
#   * with OpenMP (-fopenmp), which threads.h/omp.h must support;
#   * on x86-64, with AVX, AVX2, FMA and SSE4 switched off, and the binary
#     checked to contain no AVX (ymm/zmm) instruction at all, next to a
#     normal build that does contain them (so the check can tell).
# Usage: tools/check_baseline_build.sh   (CC picks the compiler; default cc)
# Exit status: 0 when every build compiles and every check passes.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CC="${CC:-cc}"
SRC="$ROOT/tools/baseline_check.c"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/xentc-baseline.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

if ! command -v "${CC%% *}" >/dev/null 2>&1; then
    echo "check_baseline_build: no C compiler ($CC)" >&2
    exit 2
fi

COMMON=(-std=c11 -O2 -Wall -Wextra -Werror -DXENTC_BASELINE_ONLY -I"$ROOT/include")
failures=0

# build NAME FLAGS...: compile the check program; 0 on success.
build() {
    local name="$1"
    shift
    echo "== $name: $CC ${COMMON[*]} $*"
    # shellcheck disable=SC2086  # CC may carry flags ("gcc -m64")
    $CC "${COMMON[@]}" "$@" "$SRC" -o "$TMP/$name" -lm
}

run() {
    local name="$1"
    if "$TMP/$name"; then
        return 0
    fi
    echo "check_baseline_build: $name FAILED" >&2
    failures=$((failures + 1))
}

# 1. Plain C, no OpenMP.
if build plain; then run plain; else failures=$((failures + 1)); fi

# 2. OpenMP: two threads even on a one-core machine, so the parallel loop
#    really splits the rows.
if $CC -fopenmp -x c -o "$TMP/omp_probe" - <<<'#include <omp.h>
int main(void) { return omp_get_max_threads() < 1; }' >/dev/null 2>&1; then
    if build openmp -fopenmp; then
        OMP_NUM_THREADS=2 run openmp
    else
        failures=$((failures + 1))
    fi
elif [[ -n "${XENTC_REQUIRE_OPENMP:-}" ]]; then
    echo "check_baseline_build: $CC cannot build OpenMP programs" >&2
    failures=$((failures + 1))
else
    echo "== openmp: skipped ($CC cannot build OpenMP programs)"
fi

# 3. x86-64 only: the portable kernels need no AVX and no SSE4.
# (Predefined macros captured first: grep -q closing the pipe early would
# fail the pipeline under pipefail.)
macros="$($CC -dM -E -x c /dev/null)"
if grep -q '__x86_64__' <<<"$macros"; then
    NO_SIMD=(-O3 -mno-avx -mno-avx2 -mno-fma -mno-sse4.1 -mno-sse4.2)
    if build no_simd "${NO_SIMD[@]}"; then
        run no_simd
        if command -v objdump >/dev/null 2>&1; then
            # A normal build of the same headers (AVX2 kernels behind target
            # attributes) must show ymm registers, or the grep proves nothing.
            printf '#include "xentc/xentc.h"\nint main(void) { return xt_select("avx2"); }\n' \
                >"$TMP/full.c"
            $CC -std=c11 -O2 -I"$ROOT/include" "$TMP/full.c" -o "$TMP/full" -lm
            full_avx=$(objdump -d "$TMP/full" | grep -cE '%[yz]mm' || true)
            base_avx=$(objdump -d "$TMP/no_simd" | grep -cE '%[yz]mm' || true)
            echo "== AVX register uses: normal build $full_avx, baseline-only build $base_avx"
            if [[ "$full_avx" -eq 0 || "$base_avx" -ne 0 ]]; then
                echo "check_baseline_build: baseline-only build contains AVX code" \
                     "(or the normal build has none to compare with)" >&2
                failures=$((failures + 1))
            fi
        else
            echo "== objdump not found: instruction check skipped"
        fi
    else
        failures=$((failures + 1))
    fi
fi

if [[ $failures -ne 0 ]]; then
    echo "check_baseline_build: $failures build(s) failed" >&2
    exit 1
fi
echo "check_baseline_build: OK"
