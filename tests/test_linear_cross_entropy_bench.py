"""The linear benchmark (xentc.benchmark.linear.main): it runs, prints its
tables and writes JSON whose implementations agree. No timing assertions."""
import json

import pytest

from xentc.benchmark import linear as _bench_linear


def test_quick_lm_and_memory(tmp_path, capsys):
    out = tmp_path / "linear.json"
    rc = _bench_linear.main(["--quick", "--section", "lm", "--section", "memory",
                             "--repeats", "1", "--rounds", "1", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "### Linear + cross-entropy" in text and "### Memory" in text
    doc = json.loads(out.read_text())
    lm = doc["lm"]
    for key in ("xentc", "numpy_xentc", "three_products"):
        assert key in lm, (key, text)
        assert lm[key]["best"] > 0
    # the fused call and the materialised logits give the same loss and
    # gradient norms (float32)
    for a, b in zip(lm["xentc"]["summary"], lm["numpy_xentc"]["summary"]):
        assert abs(a - b) <= 1e-4 * abs(b)
    # the fused call allocates far less than the logits (tracemalloc)
    n, d, c = _bench_linear.LM_QUICK
    assert lm["xentc"]["traced"] < 0.5 * n * c * 4 <= lm["numpy_xentc"]["traced"]
    mem = doc["memory"]
    assert mem["traced"] <= mem["bound"] + (1 << 20)


def test_quick_fit(capsys):
    pytest.importorskip("sklearn")
    assert _bench_linear.main(["--quick", "--section", "fit"]) == 0
    text = capsys.readouterr().out
    assert "scikit-learn LogisticRegression().fit" in text
    # both xentc fits reach scikit-learn's held-out predictions
    rows = [line for line in text.splitlines() if line.startswith("| xentc")]
    assert len(rows) == 2 and all("| True |" in r for r in rows), text
