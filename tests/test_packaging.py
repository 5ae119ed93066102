"""What a built and installed xentc must hold: the portable C core builds on
its own (tools/check_baseline_build.sh), the wheel carries its typing files,
and the free-threaded build keeps the GIL off."""
import importlib.metadata
import importlib.resources
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig

import pytest

import xentc

ROOT = pathlib.Path(__file__).resolve().parents[1]
BASELINE_SCRIPT = ROOT / "tools" / "check_baseline_build.sh"


def _have_c_compiler():
    cc = os.environ.get("CC", "cc").split()
    return bool(cc) and shutil.which(cc[0]) is not None


@pytest.mark.skipif(not BASELINE_SCRIPT.exists(),
                    reason="needs the source tree's tools/ (not shipped in the wheel)")
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.skipif(not _have_c_compiler(), reason="needs a C compiler")
def test_portable_kernels_build_without_intrinsics():
    # Baseline-only C kernels: plain C11, with OpenMP, and on x86-64 without
    # AVX/SSE4 (and with no AVX instruction in the binary).
    res = subprocess.run(["bash", str(BASELINE_SCRIPT)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "check_baseline_build: OK" in res.stdout
    assert "0 failures" in res.stdout


def test_wheel_ships_typing_files():
    files = importlib.resources.files("xentc")
    assert files.joinpath("py.typed").is_file()
    assert files.joinpath("_core.pyi").is_file()


def test_version_comes_from_the_installed_metadata():
    assert xentc.__version__ == importlib.metadata.version("xentc")


@pytest.mark.skipif(not sysconfig.get_config_var("Py_GIL_DISABLED"),
                    reason="only on a free-threaded (3.13t/3.14t) interpreter")
def test_import_keeps_the_gil_disabled():
    # An extension not declared free-threading compatible makes CPython turn
    # the GIL back on at import, with a warning.
    code = "import sys, xentc; print(sys._is_gil_enabled())"
    res = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", code],
                         capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "PYTHON_GIL"})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_hypothesis_shrinking_is_bounded():
    """tests/conftest.py caps Hypothesis' shrinking (5 minutes by default)."""
    import conftest
    from hypothesis.internal.conjecture import engine

    assert engine.MAX_SHRINKING_SECONDS == conftest.SHRINK_SECONDS <= 30


def test_core_stubs_match_the_compiled_module():
    """_core.pyi names every function of the compiled module with its
    parameters in order, and nothing else (fails on drift either way)."""
    import ast
    import inspect
    import pathlib

    import xentc
    from xentc import _core

    stub = pathlib.Path(xentc.__file__).parent / "_core.pyi"
    declared = {node.name: [a.arg for a in node.args.args]
                for node in ast.parse(stub.read_text()).body
                if isinstance(node, ast.FunctionDef)}
    compiled = {name: list(inspect.signature(obj).parameters)
                for name, obj in vars(_core).items()
                if callable(obj) and not name.startswith("_") and not isinstance(obj, type)
                and getattr(obj, "__module__", None) == "xentc._core"}
    assert declared == compiled
    classes = {node.name for node in ast.parse(stub.read_text()).body
               if isinstance(node, ast.ClassDef)}
    assert classes == {name for name, obj in vars(_core).items()
                       if isinstance(obj, type) and obj.__module__ == "xentc._core"}
