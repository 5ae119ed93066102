#!/usr/bin/env bash
# CI for the distributable: build the repaired wheel (tools/build_wheel.sh),
# install it with the test dependencies into a fresh venv, and run the test
# suite against the installed wheel, from a directory the source tree cannot
# shadow it from (the sdist's tests/ and examples/ copied there, no src/).
#
#   tools/ci_wheel.sh [PYTEST_ARGS...]     (default: the whole suite)
#
# The wheel's tests run with XENTC_REQUIRE_OPENMP=1: a wheel that silently
# lost OpenMP fails instead of skipping the thread tests. Exits non-zero on
# any failure. PYTHON picks the interpreter (default python3);
# XENTC_TEST_DEPS="pytest hypothesis ..." replaces the wheel's [test] extra.
set -euo pipefail

START=$SECONDS
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/xentc-ci-wheel.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
step() { echo; echo "== ci_wheel: $* ($((SECONDS - START)) s)"; }

step "build"
bash "$ROOT/tools/build_wheel.sh" "$TMP/wheelhouse" | tee "$TMP/build.log"
WHEEL="$(tail -n 1 "$TMP/build.log")"
SDIST="$(ls "$TMP"/wheelhouse/*.tar.gz)"
[[ -f "$WHEEL" ]] || { echo "ci_wheel: no wheel built" >&2; exit 1; }

# Test dependencies: the wheel's own [test] extra (its metadata, not the
# source tree), unless XENTC_TEST_DEPS names them (a pinned set, say),
# e.g. to try an older SciPy by hand.
if [[ -n "${XENTC_TEST_DEPS:-}" ]]; then
    read -r -a TEST_DEPS <<<"$XENTC_TEST_DEPS"
    INSTALL=("$WHEEL" "${TEST_DEPS[@]}")
else
    INSTALL=("${WHEEL}[test]")
fi
step "fresh venv: ${INSTALL[*]##*/}"
"$PYTHON" -m venv "$TMP/venv"
VPY="$TMP/venv/bin/python"
"$VPY" -m pip install --disable-pip-version-check "${INSTALL[@]}" \
    >"$TMP/pip.log" 2>&1 || { cat "$TMP/pip.log"; exit 1; }
"$VPY" -m pip list --disable-pip-version-check 2>/dev/null \
    | grep -iE '^(numpy|scipy|pytest|hypothesis|threadpoolctl|dask) ' | tr -s ' ' | paste -sd, -

# The tests as shipped in the sdist, without the package sources.
RUN="$TMP/run"
mkdir -p "$RUN" "$TMP/sdist"
tar -xzf "$SDIST" -C "$TMP/sdist"
cp -r "$TMP"/sdist/*/tests "$RUN/"
if [[ -d "$(echo "$TMP"/sdist/*/examples)" ]]; then
    cp -r "$TMP"/sdist/*/examples "$RUN/"
fi

cd "$RUN"
unset PYTHONPATH
export XENTC_REQUIRE_OPENMP=1
step "installed package"
"$VPY" - "$TMP/venv" <<'EOF'
import os, sys
import xentc
venv = os.path.realpath(sys.argv[1])
where = os.path.realpath(xentc.__file__)
print("xentc", xentc.__version__, "from", where)
if not where.startswith(venv + os.sep):
    sys.exit(f"ci_wheel: xentc imported from {where}, not from the test venv")
xentc.show_config()
EOF

step "pytest against the installed wheel"
"$VPY" -m pytest -p no:cacheprovider -q --durations=10 "$@" tests
step "done: wheel built, installed and tested"
