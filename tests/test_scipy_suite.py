"""
scipy's own logsumexp/softmax/log_softmax tests, run against xentc.

The test module ships inside the scipy wheel. It is copied with its import
line pointed at xentc, given the `xp` fixture (NumPy) that scipy's conftest
normally provides, and run in a subprocess. The device tests need array-API
backends other than NumPy and are left out.
"""
import pathlib
import re
import subprocess
import sys

import pytest

scipy_special = pytest.importorskip("scipy.special")

from scipy_version import needs_followed_scipy  # noqa: E402

SCIPY_TEST = pathlib.Path(scipy_special.__file__).parent / "tests" / "test_logsumexp.py"

CONFTEST = '''
import numpy as np
import pytest


@pytest.fixture
def xp():
    return np
'''


@needs_followed_scipy
@pytest.mark.skipif(not SCIPY_TEST.exists(), reason="scipy installed without its tests")
def test_scipy_logsumexp_suite_passes_on_xentc(tmp_path):
    source = SCIPY_TEST.read_text()
    patched, n = re.subn(r"^from scipy\.special import .*$",
                         "from xentc import log_softmax, logsumexp, softmax",
                         source, flags=re.M)
    assert n == 1, "scipy's test module changed its import line"
    # scipy's per-backend capability decorator looks the function up in
    # scipy's own registry; with NumPy only it has nothing to add.
    patched = re.sub(r"^@make_xp_test_case\([^)]*\)$", "", patched, flags=re.M)
    (tmp_path / "test_scipy_logsumexp.py").write_text(patched)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-k", "not test_device", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert passed > 300, summary
