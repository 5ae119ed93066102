"""`python -m xentc bench` / `config` and the benchmark implementation registry.

No timing assertions: these check that the command runs, what it prints and
writes, and that every implementation it times computes the same thing.
"""
import importlib.util
import json
import re
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from xentc import benchmark
from xentc.benchmark import cli, registry, report, runner, timing
from xentc.benchmark.load import OtherLoad


def _run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "xentc", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_quick_bench_json_and_table(tmp_path):
    out = tmp_path / "bench.json"
    proc = _run_cli("bench", "--quick", "--function", "logsumexp",
                    "--dtype", "float32", "--json", str(out))
    assert proc.returncode == 0, proc.stderr

    doc = json.loads(out.read_text())
    env = doc["environment"]
    assert env["threads"] >= 1 and env["simd"] and env["cpu"]
    assert doc["settings"]["reference"] == "xentc"

    results = doc["results"]
    assert [tuple(r["shape"]) for r in results] == list(registry.QUICK_SHAPES)
    assert doc["settings"]["missing_peers"] == registry.missing_peers()
    for r in results:
        assert r["function"] == "logsumexp" and r["dtype"] == "float32"
        times = r["times_s"]
        # scipy is a test dependency; torch is optional.
        assert {"xentc", "xentc_1thread", "numpy", "scipy"} <= set(times)
        assert all(math.isfinite(t) and t > 0 for t in times.values())
        assert set(r["speedup"]) == set(times) - {"xentc"}
        for key, ratio in r["speedup"].items():
            assert ratio == pytest.approx(times[key] / times["xentc"])
        # Every implementation computed the same log-sum-exp as xentc.
        assert all(r["agrees"].values()), r["agrees"]

    # The read-bandwidth comparison with numpy.sum (float32 logsumexp asked).
    bw = doc["bandwidth"]
    assert bw["shape"] == list(timing.QUICK_BANDWIDTH_SHAPE) and bw["dtype"] == "float32"
    assert bw["numpy_sum_gbs"] > 0 and bw["xentc_logsumexp_gbs"] > 0
    assert bw["ratio"] == pytest.approx(bw["xentc_logsumexp_gbs"] / bw["numpy_sum_gbs"])
    assert "read bandwidth, 256x8000 float32" in proc.stdout

    stdout = proc.stdout
    assert stdout.startswith("CPU: ")
    assert "speed-up of xentc" in stdout
    table_rows = [line for line in stdout.splitlines() if line.startswith("logsumexp ")]
    assert len(table_rows) == len(registry.QUICK_SHAPES)
    # A row timed while other processes were busy ends in "* <CPUs busy>".
    first = re.sub(r"\s+\*\s*[0-9.]+$", "", table_rows[0].rstrip())
    assert "256x1000" in first and first.endswith("x")
    # The progress indicator goes to stderr, never into the table.
    assert "[1/3]" in proc.stderr and "[1/3]" not in stdout


def test_config_subcommand():
    proc = _run_cli("config")
    assert proc.returncode == 0, proc.stderr
    assert "simd_in_use" in proc.stdout and "default_threads" in proc.stdout


def test_bad_option_is_rejected():
    proc = _run_cli("bench", "--function", "softmax_nonexistent")
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is not None,
                    reason="matplotlib is installed")
def test_plot_without_matplotlib_fails_before_timing(tmp_path):
    png = tmp_path / "p.png"
    proc = _run_cli("bench", "--quick", "--plot", str(png))
    assert proc.returncode == 2
    assert "matplotlib" in proc.stderr
    assert "[1/" not in proc.stderr  # nothing was timed
    assert not png.exists()


@pytest.mark.parametrize("func", registry.FUNCTIONS)
@pytest.mark.parametrize("dtype", registry.DTYPES)
def test_implementations_compute_the_same(func, dtype):
    # The scipy / NumPy / torch expressions are hand-written: check they
    # compute what xentc computes, so the benchmark compares like with like.
    x, target = registry.make_inputs((64, 37), dtype, seed=1)
    impls = benchmark.implementations(func, threads=2)
    keys = [impl.key for impl in impls]
    assert keys[:2] == ["xentc_1thread", "xentc"] and "numpy" in keys
    ref = timing.result_sample(impls[0].prepare(x, target)())
    assert len(ref) == (2 if func == "cross_entropy_and_grad" else 1)
    for impl in impls[1:]:
        got = timing.result_sample(impl.prepare(x, target)())
        assert timing.agrees_with(got, ref, dtype), impl.key


def test_agreement_check_can_fail():
    a = [np.array([1.0, 2.0, 3.0])]
    assert timing.agrees_with(a, a, "float64")
    assert not timing.agrees_with([a[0] * (1 + 1e-6)], a, "float64")
    assert timing.agrees_with([a[0] * (1 + 1e-6)], a, "float32")
    assert not timing.agrees_with([a[0][:2]], a, "float64")


def test_best_time_returns_the_warm_up_result():
    calls = []

    def fn():
        calls.append(1)
        return len(calls)

    seconds, result = timing.best_time(fn, budget=0.001)
    assert result == 1
    assert seconds > 0
    assert len(calls) >= 1 + 3  # warm-up + at least min_rounds timed calls


def test_format_table_marks_disagreement():
    row = {"function": "logsumexp", "shape": [4, 5], "dtype": "float32",
           "times_s": {"xentc": 0.001, "numpy": 0.004},
           "speedup": {"numpy": 4.0},
           "agrees": {"xentc": True, "numpy": False}}
    table = report.format_table([row], {"xentc": "xentc 2T", "numpy": "numpy"})
    line = next(l for l in table.splitlines() if l.startswith("logsumexp"))
    assert "4.00x" in line and "4!" in line
    assert "differs" in table


def test_time_case_times_every_implementation_and_checks_results():
    def const(value):
        return lambda x, target: (lambda: np.full(3, value))

    impls = [registry.Impl("first", "first", const(1.0)),
             registry.Impl("same", "same", const(1.0)),
             registry.Impl("wrong", "wrong", const(2.0))]
    times, agrees = timing.time_case(np.zeros((1, 3)), np.zeros(1, np.int64), impls,
                                     budget=0.001)
    assert set(times) == {"first", "same", "wrong"}
    assert all(0 < t < 1 for t in times.values())
    assert agrees == {"first": True, "same": True, "wrong": False}


def test_other_load_is_measured_and_busy_rows_are_marked():
    load = OtherLoad()
    time.sleep(0.6)
    other = load.cpus()
    assert other is None or 0 <= other <= (os.cpu_count() or 1) + 0.5

    row = {"function": "logsumexp", "shape": [4, 5], "dtype": "float32",
           "times_s": {"xentc": 0.001}, "speedup": {}, "agrees": {"xentc": True}}
    quiet = report.format_table([dict(row, other_cpus=0.0)], {})
    busy = report.format_table([dict(row, other_cpus=1.0)], {})
    assert "*" not in quiet
    assert "* 1.0" in busy and "other processes" in busy


def test_busy_rows_are_timed_again_and_the_quieter_measurement_kept(monkeypatch):
    loads = iter([1.0, 0.0, 0.0, 0.9])  # first pass: busy, quiet; retry: quiet

    class FakeLoad:
        def cpus(self, also_own=0.0):
            return next(loads)

    monkeypatch.setattr(runner, "OtherLoad", FakeLoad)
    monkeypatch.setattr(runner, "RETRY_FRACTION", 1e3)
    monkeypatch.setattr(runner, "RETRY_MAX_SECONDS", 1e3)
    rows = runner.run([(4, 5), (3, 7)], ["float64"], ["logsumexp"], budget=0.001,
                      progress=False, retry=True, isolate=False)
    assert [r["other_cpus"] for r in rows] == [0.0, 0.0]
    assert next(loads) == 0.9  # only the busy row was timed again

    loads = iter([1.0, 2.0, 0.5])  # a retry under heavier load is discarded
    rows = runner.run([(4, 5)], ["float64"], ["logsumexp"], budget=0.001,
                      progress=False, retry=True, isolate=False)
    assert rows[0]["other_cpus"] == 1.0
    assert next(loads) == 0.5  # and the row is not timed a third time


def test_retries_are_capped_and_explained_once(monkeypatch, capsys):
    class AlwaysBusy:  # hypervisor steal or a neighbour that never stops
        def cpus(self, also_own=0.0):
            return 1.5

    monkeypatch.setattr(runner, "OtherLoad", AlwaysBusy)
    monkeypatch.setattr(runner, "RETRY_MAX_SECONDS", 0.0)
    rows = runner.run([(4, 5), (3, 7)], ["float64"], ["logsumexp", "cross_entropy"],
                      budget=0.001, progress=True, retry=True, isolate=False)
    assert len(rows) == 4 and all(r["other_cpus"] == 1.5 for r in rows)
    err = capsys.readouterr().err
    assert "[retry, busy]" not in err  # no retry time left: none run
    monkeypatch.setattr(runner, "RETRY_MAX_SECONDS", 1e3)
    monkeypatch.setattr(runner, "RETRY_FRACTION", 1e3)
    runner.run([(4, 5), (3, 7)], ["float64"], ["logsumexp", "cross_entropy"],
               budget=0.001, progress=True, retry=True, isolate=False)
    err = capsys.readouterr().err
    assert err.count(runner.RETRY_NOTE) == 1  # explained the first time only
    assert err.count("[retry, busy]") == 1 + 4  # the note, then each row once


def test_steal_time_is_not_other_processes(monkeypatch, tmp_path):
    """/proc/stat's steal column (the hypervisor's) does not count as load."""
    stats = iter(["cpu  100 0 50 1000 0 0 0 0 0 0\n",
                  "cpu  100 0 50 1100 0 0 0 900 0 0\n"])  # only steal grew
    real_open = open

    def fake_open(path, *a, **k):
        if path == "/proc/stat":
            f = tmp_path / "stat"
            f.write_text(next(stats))
            return real_open(f, *a, **k)
        return real_open(path, *a, **k)

    monkeypatch.setattr("builtins.open", fake_open)
    load = OtherLoad()
    time.sleep(0.55)
    assert load.cpus() == 0.0


def test_missing_peers_are_named_with_the_install_command(monkeypatch, capsys):
    monkeypatch.setattr(cli, "missing_peers", lambda keys=None: ["scipy", "torch"])
    assert benchmark.main(["bench", "--quick", "--function", "logsumexp", "--dtype",
                        "float32", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "not installed, so not timed: scipy, torch" in out
    assert 'pip install ".[bench]"' in out


def test_table_header_puts_the_unit_over_the_times():
    row = {"function": "logsumexp", "shape": [4, 5], "dtype": "float32",
           "times_s": {"xentc": 0.001, "numpy": 0.004}, "speedup": {"numpy": 4.0},
           "agrees": {"xentc": True, "numpy": True}}
    group, head = report.format_table([row], {"xentc": "xentc 2T"}).splitlines()[:2]
    times_part = group.split("|")[1]
    assert "(ms)" in times_part and "speed-up" in group.split("|")[2]
    assert "(ms)" not in head


def test_isolated_peer_is_timed_in_a_child_process():
    pytest.importorskip("torch")
    import sys as _sys

    before = "torch" in _sys.modules
    rows = runner.run([(64, 37)], ["float32"], ["cross_entropy", "cross_entropy_and_grad"],
                      budget=0.001, progress=False)
    for r in rows:
        assert r["times_s"]["torch"] > 0 and r["agrees"]["torch"], r
    # the parent never imported torch: its thread pool lives in the child
    assert ("torch" in _sys.modules) == before


def test_linear_flag_runs_the_linear_benchmark(monkeypatch):
    import xentc.benchmark.linear as linear

    seen = []
    monkeypatch.setattr(linear, "main", lambda argv: seen.append(argv) or 0)
    assert benchmark.main(["bench", "--linear", "--quick", "--section", "memory"]) == 0
    assert seen == [["--quick", "--section", "memory"]]


def test_full_is_todays_whole_table_and_excludes_quick(capsys):
    assert registry.FULL_SHAPES == ((4096, 1000), (2048, 32000), (16, 128256), (1000000, 10))
    # the default run: one shape per regime, each named
    assert set(registry.REGIMES) == set(registry.DEFAULT_SHAPES)
    assert set(registry.REGIMES.values()) == {"short rows", "medium rows", "long rows",
                                              "DRAM-sized"}
    assert benchmark.main(["bench", "--quick", "--full"]) == 2
    assert "exclude each other" in capsys.readouterr().err
