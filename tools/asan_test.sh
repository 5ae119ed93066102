#!/usr/bin/env bash
# Build xentc with AddressSanitizer + UndefinedBehaviorSanitizer and run the
# test suite against that build.
#
#   tools/asan_test.sh                  # whole suite, then the fuzz and
#                                       # bad-input tests on the baseline kernels
#   tools/asan_test.sh tests/test_fuzz.py -q    # pytest arguments of your own
#
# Works on a temporary copy of the working tree (tracked and untracked,
# non-ignored files: uncommitted changes included) with a temporary virtual
# environment, so the in-place build of the checkout is never touched. The
# venv borrows the third-party packages (numpy, scipy, pytest, hypothesis,
# Cython, setuptools) of the interpreter given by $PYTHON (default: the dev
# venv /work/dev, else python3) through a .pth file: no network needed.
#
# CPython is not built with ASan, so libasan is preloaded (it must come
# first); leak detection is off (CPython keeps memory until exit by design)
# and huge allocations return NULL (NumPy's MemoryError path) instead of
# aborting. Any ASan or UBSan report fails the run: UBSan halts on its first
# error (the build also has -fno-sanitize-recover=undefined) and the log is
# searched for reports in child processes too.
#
# pytest runs with --capture=sys: its default fd capture would swallow a
# report printed just before the sanitizer ends the process.
#
# Environment: PYTHON (interpreter whose packages are used), CC (compiler,
# default gcc), XENTC_ASAN_KEEP=1 (keep the temporary directory),
# XENTC_ASAN_NO_ALIGNMENT=1 (build the copy without UBSan's alignment check,
# to look for other reports while a misaligned-access report is open).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
    if [[ -x /work/dev/bin/python ]]; then PYTHON=/work/dev/bin/python; else PYTHON=python3; fi
fi
export CC="${CC:-gcc}"

LIBASAN="$($CC -print-file-name=libasan.so)"
if [[ ! -e "$LIBASAN" ]]; then
    echo "asan_test: libasan.so not found by $CC -print-file-name=libasan.so" >&2
    exit 2
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/xentc-asan.XXXXXX")"
cleanup() {
    if [[ "${XENTC_ASAN_KEEP:-0}" == 1 ]]; then
        echo "asan_test: kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT

echo "asan_test: copying the working tree to $TMP/src"
mkdir -p "$TMP/src"
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
    | tar --null -T - -cf -) | tar -xf - -C "$TMP/src"

echo "asan_test: virtual environment with the packages of $PYTHON"
"$PYTHON" -m venv --without-pip "$TMP/venv"
VPY="$TMP/venv/bin/python"
SITE_DEV="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
SITE_TMP="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
# A plain path entry: the dev venv's own .pth files (e.g. its editable
# install of xentc) are not processed, so only our build is importable.
# torch and JAX are left out (links to every other entry): their C++
# exceptions stop the process in ASan's __cxa_throw interceptor ("CHECK
# failed: asan_interceptors.cpp:320"; the sanitizer and their libstdc++
# disagree, no report on xentc's memory), the bench's child processes
# included. Their tests then skip, saying so; their array work is the
# kernels that every other test reaches.
BORROWED="$TMP/borrowed"
mkdir -p "$BORROWED"
for entry in "$SITE_DEV"/*; do
    base="$(basename "$entry")"
    case "$base" in
        torch | torch-* | torchgen | functorch | jax | jax-* | jaxlib | jaxlib-* | jax_plugins)
            continue ;;
    esac
    ln -s "$entry" "$BORROWED/$base"
done
echo "$BORROWED" > "$SITE_TMP/borrowed-packages.pth"

if [[ "${XENTC_ASAN_NO_ALIGNMENT:-0}" == 1 ]]; then
    "$VPY" - "$TMP/src/setup.py" <<'PYEOF'
import sys
path = sys.argv[1]
text = open(path).read()
old = '"-fno-sanitize-recover=undefined"]'
assert old in text, "setup.py's sanitizer flags changed: update asan_test.sh"
open(path, "w").write(text.replace(old, old[:-1] + ', "-fno-sanitize=alignment"]'))
PYEOF
    echo "asan_test: UBSan alignment check disabled (XENTC_ASAN_NO_ALIGNMENT=1)"
fi

echo "asan_test: building with XENTC_SANITIZE=1 ($CC)"
(cd "$TMP/src" && XENTC_SANITIZE=1 "$VPY" setup.py -q build_ext --inplace) \
    > "$TMP/build.log" 2>&1 || { cat "$TMP/build.log"; exit 2; }
if [[ "$(ldd "$TMP/src/src/xentc/"_core*.so)" != *libasan* ]]; then
    echo "asan_test: the extension is not linked with libasan" >&2
    exit 2
fi

export PYTHONPATH="$TMP/src/src"
export LD_PRELOAD="$LIBASAN"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:halt_on_error=1:abort_on_error=0:exitcode=99"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=98"
# Not the dev checkout's build: make sure.
(cd "$TMP" && "$VPY" -c "import xentc, sys; assert xentc.__file__.startswith('$TMP'), xentc.__file__; print('asan_test: testing', xentc.__file__, xentc.show_config(print_out=False)['simd_in_use'])")

LOG="$TMP/pytest.log"
status=0
run() {
    echo "asan_test: $*"
    (cd "$TMP/src" && "$@") 2>&1 | tee -a "$LOG" | tail -n 25
    return "${PIPESTATUS[0]}"
}
if [[ $# -gt 0 ]]; then
    run "$VPY" -m pytest -p no:cacheprovider --capture=sys "$@" || status=$?
else
    # (torch and JAX are not importable here: see the borrowed packages)
    run "$VPY" -m pytest -p no:cacheprovider --capture=sys -q tests || status=$?
    # The portable kernels too, on the tests that reach the most C paths.
    run env XENTC_CPU=baseline "$VPY" -m pytest -p no:cacheprovider --capture=sys -q \
        tests/test_fuzz.py tests/test_bad_input.py tests/test_determinism.py \
        tests/test_cross_entropy.py || status=$?
fi

# Reports from child processes (subprocess tests) do not always reach the
# exit status: look for them in the log as well.
if grep -qE "ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer|UndefinedBehaviorSanitizer" "$LOG"; then
    echo "asan_test: SANITIZER REPORT FOUND:" >&2
    grep -nE -A30 "ERROR: AddressSanitizer|runtime error:|UndefinedBehaviorSanitizer" "$LOG" | head -n 120 >&2
    cp "$LOG" "${TMPDIR:-/tmp}/xentc-asan-last.log"
    echo "asan_test: full log in ${TMPDIR:-/tmp}/xentc-asan-last.log" >&2
    exit 1
fi
if [[ $status -ne 0 ]]; then
    cp "$LOG" "${TMPDIR:-/tmp}/xentc-asan-last.log"
    echo "asan_test: tests failed (exit status $status); log in ${TMPDIR:-/tmp}/xentc-asan-last.log" >&2
    exit "$status"
fi
echo "asan_test: no sanitizer report, tests passed"
