"""Run-time choice of the kernels' instruction-set level (XENTC_CPU) and
xentc.show_config().

The level is chosen once, at import, so each XENTC_CPU case runs in a fresh
interpreter (the same Python, importing the same xentc as this process).
"""
import json
import os
import platform
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import xentc
from xentc import _core, _dispatch

AVAILABLE = _dispatch.available_levels()
BEST = AVAILABLE[0]

# Imports xentc, then reports the configuration, the XENTC_CPU warnings
# raised at import, and a result computed on the chosen level.
PROBE = """
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import xentc
import numpy as np
x = np.linspace(-30.0, 30.0, 1001)
print(json.dumps({
    "cfg": xentc.show_config(print_out=False),
    "warnings": [[w.category.__name__, str(w.message)] for w in caught
                 if "XENTC_CPU" in str(w.message)],
    "lse": float(xentc.logsumexp(x)),
}))
"""


def run_python(code, env_updates, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "XENTC_CPU"}
    env.update(env_updates)
    # cwd: a directory without the source tree, so only the installed
    # xentc can be imported.
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)


def probe(tmp_path, **env):
    res = run_python(PROBE, env, tmp_path)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture
def restore_level():
    before = _core.active_kernels()
    yield
    assert _core.select_kernels(before)


def test_unset_chooses_the_best_level(tmp_path):
    out = probe(tmp_path)
    assert out["cfg"]["simd_in_use"] == BEST
    assert out["warnings"] == []


@pytest.mark.parametrize("value", ["auto", "", "  AUTO "])
def test_auto_chooses_the_best_level(tmp_path, value):
    out = probe(tmp_path, XENTC_CPU=value)
    assert out["cfg"]["simd_in_use"] == BEST
    assert out["warnings"] == []


@pytest.mark.parametrize("value", ["baseline", "Baseline", " baseline\n"])
def test_baseline_forces_the_portable_kernels(tmp_path, value):
    out = probe(tmp_path, XENTC_CPU=value)
    assert out["cfg"]["simd_in_use"] == "baseline"
    assert out["warnings"] == []
    # The baseline computes the same value (to rounding) as the best level.
    x = np.linspace(-30.0, 30.0, 1001)
    assert out["lse"] == pytest.approx(float(xentc.logsumexp(x)), rel=1e-14, abs=0)


@pytest.mark.parametrize("level", [lvl for lvl in _dispatch.KNOWN_LEVELS
                                   if lvl not in ("auto", "baseline")])
def test_each_known_level(tmp_path, level):
    out = probe(tmp_path, XENTC_CPU=level)
    if level in AVAILABLE:
        assert out["cfg"]["simd_in_use"] == level
        assert out["warnings"] == []
    else:
        # Known but not runnable here (not compiled in, or the CPU lacks
        # it): a RuntimeWarning naming it, and the best level instead.
        assert out["cfg"]["simd_in_use"] == BEST
        assert len(out["warnings"]) == 1
        category, message = out["warnings"][0]
        assert category == "RuntimeWarning"
        assert repr(level) in message and repr(BEST) in message


# A known level this CPU or build cannot run (avx512 on an AVX2-only CPU);
# None where every known level runs.
UNAVAILABLE = next((lvl for lvl in _dispatch.KNOWN_LEVELS
                    if lvl != "auto" and lvl not in AVAILABLE), None)
needs_unavailable = pytest.mark.skipif(UNAVAILABLE is None,
                                       reason="this CPU runs every known level")


@needs_unavailable
def test_level_the_machine_lacks_warns_and_falls_back(tmp_path):
    out = probe(tmp_path, XENTC_CPU=UNAVAILABLE)
    assert out["cfg"]["simd_in_use"] == BEST
    assert [w[0] for w in out["warnings"]] == ["RuntimeWarning"]


@pytest.mark.parametrize("value", ["sse9", "avx-2", "native", "1"])
def test_unknown_value_is_an_error_at_import(tmp_path, value):
    res = run_python("import xentc", {"XENTC_CPU": value}, tmp_path)
    assert res.returncode != 0
    assert "ValueError" in res.stderr
    assert f"XENTC_CPU={value!r}" in res.stderr
    # The message lists what would have been accepted.
    for known in _dispatch.KNOWN_LEVELS:
        assert known in res.stderr


# ---- the same choice in-process: xentc._dispatch.select --------------------

def test_select_switches_and_reports(restore_level):
    for level in AVAILABLE:
        assert _dispatch.select(level) == level
        assert _core.active_kernels() == level
    assert _dispatch.select(None) == BEST
    assert _dispatch.select("auto") == BEST


@needs_unavailable
def test_select_unavailable_level_warns(restore_level):
    _dispatch.select("baseline")
    with pytest.warns(RuntimeWarning, match=UNAVAILABLE):
        assert _dispatch.select(UNAVAILABLE) == BEST
    assert _core.active_kernels() == BEST


def test_select_unknown_level_changes_nothing(restore_level):
    _dispatch.select("baseline")
    with pytest.raises(ValueError, match="not a known level"):
        _dispatch.select("bogus")
    assert _core.active_kernels() == "baseline"


# ---- show_config ------------------------------------------------------------

def documented_keys():
    """The keys show_config's docstring lists (its Returns section)."""
    doc = xentc.show_config.__doc__
    returns = doc[doc.index("Returns"):doc.index("Examples")]
    return re.findall(r"``(\w+)``", returns)


def test_show_config_returns_the_documented_keys(capsys):
    cfg = xentc.show_config(print_out=False)
    assert capsys.readouterr().out == ""
    keys = documented_keys()
    assert len(keys) >= 8
    assert list(cfg) == keys
    assert cfg["version"] == xentc.__version__
    assert cfg["simd_in_use"] == _core.active_kernels()
    assert cfg["simd_in_use"] in cfg["simd_available"]
    assert cfg["simd_available"] == AVAILABLE
    assert set(cfg["simd_available"]) <= set(cfg["simd_compiled"])
    assert cfg["simd_compiled"][-1] == "baseline"
    assert cfg["default_threads"] == _core.max_threads() >= 1
    assert cfg["machine"] == platform.machine()
    if _core.openmp_version():
        assert cfg["openmp"].startswith("OpenMP ")
    else:
        assert cfg["openmp"].startswith("none")
    assert isinstance(cfg["compiler"], str) and cfg["compiler"]


def test_show_config_prints_every_key(capsys):
    cfg = xentc.show_config()
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == len(cfg)
    for line, (key, value) in zip(printed, cfg.items()):
        name, _, shown = line.partition(" : ")
        assert name.strip() == key
        assert shown == str(value)


def test_show_config_follows_the_active_level(restore_level):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for level in AVAILABLE:
            _dispatch.select(level)
            assert xentc.show_config(print_out=False)["simd_in_use"] == level
