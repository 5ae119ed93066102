"""
Build of the compiled part of xentc (src/xentc/_core.pyx + include/xentc).

OpenMP: used when the compiler can build and link a test program with it;
otherwise the extension is built without it and runs single-threaded (the
prange loops become plain loops). XENTC_NO_OPENMP=1 forces that.

SIMD: nothing here raises the instruction set of the module (no -march, no
-mavx2): AVX2/FMA and AVX-512F kernels carry per-function target attributes and are
picked at run time (include/xentc/dispatch.h), so a wheel runs on any x86-64.

The extension uses typed memoryviews, not the NumPy C API, so it is built
without NumPy headers and works with any NumPy the Python layer supports.

XENTC_SANITIZE=1 builds with AddressSanitizer + UndefinedBehaviorSanitizer
(see tools/asan_test.sh).
"""
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _compiler_cmd():
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return cc.split()


def _can_build(flags, source):
    """Compile and link `source` with `flags`; True on success."""
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(source)
        # The user's flags too: a libomp outside the default paths (Homebrew
        # on macOS) is found through CPPFLAGS/CFLAGS/LDFLAGS, as the real
        # build will find it.
        env = [f for var in ("CPPFLAGS", "CFLAGS", "LDFLAGS")
               for f in shlex.split(os.environ.get(var, ""))]
        cmd = _compiler_cmd() + env + [src, "-o", os.path.join(tmp, "probe")] + flags
        return subprocess.run(cmd, capture_output=True).returncode == 0
    except OSError:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


OMP_PROBE = "#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n"


def openmp_flags():
    if os.environ.get("XENTC_NO_OPENMP"):
        return [], []
    if sys.platform == "win32":
        return ["/openmp"], []
    candidates = [(["-fopenmp"], ["-fopenmp"])]
    if sys.platform == "darwin":
        # Apple clang needs libomp (Homebrew/conda) spelled out.
        candidates.append((["-Xpreprocessor", "-fopenmp"], ["-lomp"]))
    for cflags, ldflags in candidates:
        if _can_build(cflags + ldflags, OMP_PROBE):
            return cflags, ldflags
    print("xentc: OpenMP not available, building single-threaded", file=sys.stderr)
    return [], []


def build_flags():
    if sys.platform == "win32":
        return ["/O2"], []
    # -g0 after Python's own -g: debug info would triple the wheel's size.
    cflags = ["-O3", "-g0", "-std=c11"]
    ldflags = []
    if os.environ.get("XENTC_SANITIZE"):
        san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
               "-fno-sanitize-recover=undefined"]
        cflags = ["-O1", "-g", "-std=c11"] + san
        ldflags = san
    return cflags, ldflags


omp_c, omp_l = openmp_flags()
base_c, base_l = build_flags()

extensions = [
    Extension(
        "xentc._core",
        sources=["src/xentc/_core.pyx"],
        include_dirs=[os.path.join(HERE, "include")],
        extra_compile_args=base_c + omp_c,
        extra_link_args=base_l + omp_l,
        depends=[os.path.relpath(os.path.join(d, f), HERE)
                 for d, _, files in os.walk(os.path.join(HERE, "include", "xentc"))
                 for f in files if f.endswith(".h")],
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": "3"},
    ),
)
