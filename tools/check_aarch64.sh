#!/usr/bin/env bash
# The aarch64 NEON kernels, checked on any Debian/Ubuntu machine of another
# architecture: cross-compile tools/aarch64_check.c (a C harness over the
# kernel headers; see there for what it compares) with aarch64-linux-gnu-gcc
# and run it under qemu-user. On an aarch64 machine it is compiled and run
# natively. The NEON kernels are compared with the baseline kernels of the
# same binary; timing under qemu means nothing, so NEON speed is not
# measured here.
#   * installs qemu-user, gcc-aarch64-linux-gnu and libc6-dev-arm64-cross
#     with apt-get when they are missing (apt-get update first; root or
#     sudo needed then);
#   * builds with -O2 and with -O3, warnings as errors, and runs both.
# Usage: tools/check_aarch64.sh
# Exit status: 0 when both builds compile and every check passes.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SRC="$ROOT/tools/aarch64_check.c"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/xentc-aarch64.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

if [[ "$(uname -m)" == "aarch64" ]]; then
    CC="${CC:-cc}"
    RUN=()
else
    CC=aarch64-linux-gnu-gcc
    RUN=(qemu-aarch64 -L /usr/aarch64-linux-gnu)
    if ! command -v "$CC" >/dev/null 2>&1 || ! command -v qemu-aarch64 >/dev/null 2>&1 ||
        [[ ! -e /usr/aarch64-linux-gnu/include/stdio.h ]]; then
        echo "== installing qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
        SUDO=()
        if [[ "$(id -u)" -ne 0 ]]; then
            SUDO=(sudo)
        fi
        "${SUDO[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq \
            qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null
    fi
fi

failures=0
for opt in -O2 -O3; do
    echo "== $CC $opt"
    if ! "$CC" -std=c11 "$opt" -Wall -Wextra -Werror -I"$ROOT/include" "$SRC" \
        -o "$TMP/check$opt" -lm; then
        echo "check_aarch64: the $opt build failed" >&2
        failures=$((failures + 1))
        continue
    fi
    if ! "${RUN[@]}" "$TMP/check$opt"; then
        echo "check_aarch64: the $opt build's checks FAILED" >&2
        failures=$((failures + 1))
    fi
done

if [[ $failures -ne 0 ]]; then
    exit 1
fi
echo "check_aarch64: OK (NEON results only: its speed is not measured under qemu)"
