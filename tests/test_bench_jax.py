"""JAX as a benchmark peer: named when missing, timed in a process of its
own on as many CPUs as asked, computing what xentc computes, and never
imported by the process that times xentc. No timing assertions.
"""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from xentc import benchmark
from xentc.benchmark import cli, registry, timing
from xentc.benchmark.peers import PeerProcess

HAVE_JAX = importlib.util.find_spec("jax") is not None
NEEDS_JAX = pytest.mark.skipif(not HAVE_JAX, reason="jax is not installed (pip install jax): "
                                                    "the JAX peer is not tested here")


def test_missing_jax_is_named_in_the_main_table(monkeypatch, capsys):
    monkeypatch.setitem(registry.PEER_PACKAGES, "jax", "xentc_test_no_jax")
    assert "jax" in registry.missing_peers()
    assert "jax" not in registry.missing_peers(keys=("xentc", "numpy"))
    monkeypatch.setattr(cli, "run", lambda *a, **k: [])
    assert benchmark.main(["bench", "--quick", "--function", "cross_entropy",
                           "--no-progress"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if "not installed" in l)
    assert "jax" in line and 'pip install ".[bench]"' in line


@NEEDS_JAX
def test_jax_keeps_the_callers_64_bit_setting():
    import jax

    before = jax.config.jax_enable_x64
    x, target = registry.make_inputs((16, 7), "float64", seed=3)
    (impl,) = registry.implementations("cross_entropy_and_grad", keys=("jax",))
    loss, grad = impl.prepare(x, target)()
    assert loss.dtype == np.float64 and grad.dtype == np.float64
    assert jax.config.jax_enable_x64 == before


@NEEDS_JAX
@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity here")
def test_jax_peer_runs_in_its_own_process_on_the_cpus_asked():
    peer = PeerProcess("jax", 1)
    try:
        for dtype in ("float32", "float64"):
            x, target = registry.make_inputs((64, 37), dtype)
            for func in ("cross_entropy", "cross_entropy_and_grad"):
                (ref,) = registry.implementations(func, keys=("xentc",))
                expected = [r[:PeerProcess.SAMPLE]
                            for r in timing.result_sample(ref.prepare(x, target)())]
                seconds, sample, cpu = peer.time(func, (64, 37), dtype, 0.001)
                assert seconds > 0 and cpu > 0
                # float64 at float64's tolerance: 64-bit mode is on in the child
                assert timing.agrees_with(sample, expected, dtype), (func, dtype)
        assert len(os.sched_getaffinity(peer.proc.pid)) == 1
    finally:
        peer.close()


@NEEDS_JAX
def test_jax_is_timed_in_a_child_and_never_imported_by_the_timing_process():
    code = """
import json, sys
from xentc.benchmark import runner
rows = runner.run([(64, 37)], ["float32"], ["logsumexp", "cross_entropy_and_grad"],
                  budget=0.001, progress=False, keys=("xentc", "numpy", "jax"))
print(json.dumps({"rows": rows, "imported": sorted(m for m in ("jax", "torch")
                                                   if m in sys.modules)}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["imported"] == []
    for row in doc["rows"]:
        assert set(row["times_s"]) == {"xentc", "numpy", "jax"}
        assert row["times_s"]["jax"] > 0 and row["agrees"]["jax"], row
