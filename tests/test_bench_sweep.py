"""`python -m xentc bench --sweep` (and the sweep of --plot).

No timing assertions: these check that the sweep runs, what it prints and
writes, and that a missing peer is named, not dropped.
"""
import importlib.util
import json
import math

import pytest

from xentc import benchmark
from xentc.benchmark import cli, registry, report, sweep

TINY_CLASSES = (2, 33, 64)


@pytest.fixture
def tiny_sweep(monkeypatch):
    """--sweep --quick on a few hundred elements."""
    monkeypatch.setattr(cli, "QUICK_SWEEP_TOTAL", 384)
    monkeypatch.setattr(cli, "QUICK_SWEEP_CLASSES", TINY_CLASSES)
    monkeypatch.setattr(cli, "QUICK_BUDGET", 0.001)


@pytest.fixture
def no_isolated_peers(monkeypatch):
    """torch and JAX look not installed (their modules are looked up under
    names no package has), so no child process is started."""
    for key in registry.ISOLATED:
        monkeypatch.setitem(registry.PEER_PACKAGES, key, f"xentc_test_no_{key}")


def test_sweep_prints_every_column_names_missing_peers_and_writes_json(
        tiny_sweep, no_isolated_peers, tmp_path, capsys):
    out = tmp_path / "sweep.json"
    assert benchmark.main(["bench", "--sweep", "--quick", "--dtype", "float32",
                           "--no-progress", "--json", str(out)]) == 0
    stdout = capsys.readouterr().out

    # the missing peers are named with the command that installs them
    assert "not installed, so not timed: torch, jax" in stdout
    assert 'pip install ".[bench]"' in stdout
    # one table per function, every column kept (the missing ones as "-")
    for title in ("cross_entropy (fwd), float32, N*C = 384, 2 threads",
                  "cross_entropy_and_grad (f+g), float32, N*C = 384, 2 threads"):
        assert title in stdout
    heads = [line for line in stdout.splitlines() if line.lstrip().startswith("C ")]
    assert len(heads) == 2
    for head in heads:
        assert head.split() == ["C", "N", "|", "xentc", "2T", "torch", "jax", "numpy", "|",
                                "of", "C=64", "vs", "jax", "vs", "torch"]
    rows = [line.split() for line in stdout.splitlines()
            if line.split()[:1] in (["2"], ["33"], ["64"])]
    assert [r[0] for r in rows] == ["2", "33", "64"] * 2
    for r in rows:
        assert r[1] == str(384 // int(r[0]))                 # N = N*C // C
        assert r[4:6] == ["-", "-"] and r[9:11] == ["-", "-"]  # torch, jax not timed
    assert [r[8] for r in rows][2::3] == ["1.00", "1.00"]    # xentc at the largest C
    assert stdout.count("lowest: of C=64") == 2 and "issue 12's targets" in stdout

    doc = json.loads(out.read_text())
    settings = doc["settings"]
    assert settings["mode"] == "sweep" and settings["threads"] == 2
    assert settings["missing_peers"] == ["torch", "jax"]
    panels = doc["sweep"]
    assert [(p["function"], p["name"], p["dtype"]) for p in panels] == [
        ("cross_entropy", "fwd", "float32"), ("cross_entropy_and_grad", "f+g", "float32")]
    for p in panels:
        assert p["classes"] == list(TINY_CLASSES) and p["total"] == 384
        assert p["rows"] == [384 // c for c in TINY_CLASSES]
        assert set(p["throughput"]) == set(sweep.SWEEP_KEYS)
        for key in ("xentc", "numpy"):
            assert all(math.isfinite(v) and v > 0 for v in p["throughput"][key])
            assert p["agrees"][key] == [True] * len(TINY_CLASSES)
        for key in ("torch", "jax"):
            assert p["throughput"][key] == [None] * len(TINY_CLASSES)
            assert p["xentc_over"][key] == [None] * len(TINY_CLASSES)
        mine = p["throughput"]["xentc"]
        assert p["fraction_of_largest_C"] == pytest.approx([t / mine[-1] for t in mine])
        assert set(p["largest_fall"]) == {"fraction", "from_C", "to_C"}


def test_sweep_shapes_keep_n_times_c():
    assert sweep.sweep_shapes(1 << 23, (3, 32000, 1 << 24)) == [
        ((1 << 23) // 3, 3), (262, 32000), (1, 1 << 24)]
    # the issue's row lengths, in increasing order, the largest last
    assert list(sweep.SWEEP_CLASSES) == sorted(sweep.SWEEP_CLASSES)
    assert {2, 33, 32000} <= set(sweep.SWEEP_CLASSES)
    assert set(sweep.QUICK_SWEEP_CLASSES) <= set(sweep.SWEEP_CLASSES)


def test_ratios_follow_the_issue_targets_definitions():
    panel = {"classes": [2, 8, 33, 64],
             "throughput": {"xentc": [1.0, 4.0, 2.0, 8.0], "jax": [2.0, 2.0, None, 1.0],
                            "torch": [None] * 4}}
    r = sweep.ratios(panel)
    assert r["fraction_of_largest_C"] == [0.125, 0.5, 0.25, 1.0]
    assert r["xentc_over"]["jax"] == [0.5, 2.0, None, 8.0]
    assert r["xentc_over"]["torch"] == [None] * 4
    assert r["largest_fall"] == {"fraction": 0.5, "from_C": 8, "to_C": 33}
    rising = dict(panel, throughput=dict(panel["throughput"], xentc=[1.0, 2.0, 3.0, 4.0]))
    assert sweep.ratios(rising)["largest_fall"]["from_C"] is None


def test_sweep_table_marks_disagreement_and_busy_points():
    panel = {"function": "cross_entropy", "name": "fwd", "dtype": "float64", "total": 64,
             "threads": 2, "classes": [2, 32], "rows": [32, 2],
             "throughput": {"xentc": [1.0, 2.0], "torch": [0.5, 0.5], "jax": [None, None],
                            "numpy": [0.25, 0.25]},
             "agrees": {"xentc": [True, True], "torch": [False, True], "jax": [None, None],
                        "numpy": [True, True]},
             "other_cpus": [None, 1.5]}
    panel.update(sweep.ratios(panel))
    text = report.format_sweep([panel], {"xentc": "xentc 2T"})
    first, second = (line for line in text.splitlines() if line.split()[:1] in (["2"], ["32"]))
    assert "0.5!" in first and "differs" in text
    assert second.rstrip().endswith("* 1.5") and "CPUs busy" in text
    assert "vs torch 2.00x at C=2" in text and "vs jax" not in text.split("lowest:")[1]


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                    reason="matplotlib is not installed")
def test_plot_draws_the_sweep(no_isolated_peers, tmp_path):
    panels = sweep.sweep(["cross_entropy"], ["float32", "float64"], 256, TINY_CLASSES,
                         0.001, threads=2, progress=False)
    png = tmp_path / "sweep.png"
    report.plot(panels, png, "title")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_sweep_runs_the_same_sweep(tiny_sweep, no_isolated_peers, monkeypatch,
                                                tmp_path, capsys):
    drawn = []
    monkeypatch.setattr(cli, "plot", lambda panels, path, title: drawn.append(panels))
    # the plot is replaced, so matplotlib need not be installed (the [test]
    # extra has none): only the command's check for it is passed
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec",
                        lambda name, *a: object() if name == "matplotlib"
                        else real_find_spec(name, *a))
    out = tmp_path / "bench.json"
    assert benchmark.main(["bench", "--quick", "--function", "cross_entropy", "--dtype",
                           "float64", "--no-progress", "--plot", str(tmp_path / "p.png"),
                           "--json", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "speed-up of xentc" in stdout                       # the table
    assert "cross_entropy (fwd), float64, N*C = 384" in stdout  # then the sweep's table
    doc = json.loads(out.read_text())
    assert doc["sweep"] == drawn[0] and doc["sweep"][0]["classes"] == list(TINY_CLASSES)


def test_sweep_excludes_full(capsys):
    assert benchmark.main(["bench", "--sweep", "--full"]) == 2
    assert "exclude each other" in capsys.readouterr().err


def test_passes_keep_each_implementations_best_time():
    def row(xentc, jax, cpus):
        return {"function": "cross_entropy", "shape": [4, 2], "dtype": "float32",
                "times_s": {"xentc": xentc, "jax": jax},
                "speedup": {"jax": jax / xentc}, "agrees": {"xentc": True, "jax": cpus > 0},
                "other_cpus": cpus}
    a, b = row(2.0, 3.0, 0.0), row(1.0, 4.0, 0.5)
    best = sweep._best_of(a, b)
    assert best["times_s"] == {"xentc": 1.0, "jax": 3.0}
    assert best["speedup"] == {"jax": 3.0}
    assert best["agrees"] == {"xentc": True, "jax": False}   # jax's kept time is a's
    assert best["other_cpus"] == 0.5
    assert a["times_s"] == {"xentc": 2.0, "jax": 3.0}         # the rows themselves unchanged


def test_sweep_runs_every_pass(monkeypatch):
    calls = []

    def fake_run(shapes, dtypes, funcs, budget, threads, progress, retry, keys):
        calls.append(len(calls))
        t = 1.0 + len(calls)           # each pass slower: the first one's times stay
        return [{"function": f, "shape": list(s), "dtype": d,
                 "times_s": {k: t for k in keys}, "speedup": {}, "agrees": {},
                 "other_cpus": None}
                for s in shapes for d in dtypes for f in funcs]
    monkeypatch.setattr(sweep, "run", fake_run)
    panels = sweep.sweep(["cross_entropy"], ["float32"], 64, (2, 4), 0.001, 1,
                         progress=False, passes=3)
    assert len(calls) == 3
    assert panels[0]["throughput"]["xentc"] == [64 / 2.0 / 1e9] * 2
