"""Thread control: the OpenMP runtime xentc links is visible to threadpoolctl
and obeys it and OMP_NUM_THREADS; `workers=` overrides both; results do not
depend on any of them.

(Calls from many Python threads at once are tested elsewhere.)
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import xentc
from xentc import _core, _validation

OPENMP_PREFIXES = ("libgomp", "libomp", "libiomp", "vcomp")


@pytest.fixture(scope="module", autouse=True)
def needs_openmp():
    if _core.openmp_version():
        return
    # A wheel built without OpenMP would pass everything below as skips;
    # the wheel tests set XENTC_REQUIRE_OPENMP=1 to make that a failure.
    if os.environ.get("XENTC_REQUIRE_OPENMP"):
        pytest.fail("xentc was built without OpenMP (XENTC_REQUIRE_OPENMP is set)")
    pytest.skip("xentc was built without OpenMP")


def run_python(code, tmp_path, **env):
    environ = {k: v for k, v in os.environ.items()
               if k not in ("OMP_NUM_THREADS", "OMP_THREAD_LIMIT", "XENTC_CPU")}
    environ.update(env)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=environ, cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_threadpoolctl_finds_the_openmp_runtime_xentc_loads(tmp_path):
    # In a fresh interpreter: no OpenMP runtime before xentc is imported
    # (numpy's BLAS uses its own threads), one after, and it is what
    # xentc's thread count comes from.
    code = """
import json
import numpy
from threadpoolctl import threadpool_info
before = [i["filepath"] for i in threadpool_info() if i["user_api"] == "openmp"]
import xentc
after = [i for i in threadpool_info() if i["user_api"] == "openmp"]
print(json.dumps({"before": before, "after": after,
                  "max_threads": xentc._core.max_threads()}))
"""
    out = run_python(code, tmp_path)
    new = [i for i in out["after"] if i["filepath"] not in out["before"]]
    assert len(new) == 1, out
    lib = new[0]
    assert lib["prefix"] in OPENMP_PREFIXES
    assert lib["internal_api"] == "openmp"
    assert lib["num_threads"] == out["max_threads"]


def test_openmp_listed_in_this_process():
    libs = [i for i in threadpool_info() if i["user_api"] == "openmp"]
    assert libs
    assert _core.max_threads() in [i["num_threads"] for i in libs]


@pytest.mark.parametrize("limit", [1, 2])
def test_threadpool_limits_sets_the_default(limit):
    default = _core.max_threads()
    with threadpool_limits(limits=limit):
        assert _core.max_threads() == limit
        assert xentc.show_config(print_out=False)["default_threads"] == limit
    assert _core.max_threads() == default
    with threadpool_limits(limits=limit, user_api="openmp"):
        assert _core.max_threads() == limit
    assert _core.max_threads() == default


@pytest.mark.parametrize("n", ["1", "3"])
def test_omp_num_threads(tmp_path, n):
    code = "import json, xentc; print(json.dumps(xentc._core.max_threads()))"
    assert run_python(code, tmp_path, OMP_NUM_THREADS=n) == int(n)


def test_workers_overrides_the_default():
    big, many = 1 << 20, 1000
    with threadpool_limits(limits=1):
        assert _validation.thread_count(None, big, many) == 1
        assert _validation.thread_count(3, big, many) == 3
        assert _validation.thread_count(-1, big, many) == os.cpu_count()
    with threadpool_limits(limits=3):
        assert _validation.thread_count(None, big, many) == 3
        assert _validation.thread_count(1, big, many) == 1
        # Never more threads than independent pieces of work, and one
        # thread below the size where a team pays for itself.
        assert _validation.thread_count(None, big, 2) == 2
        assert _validation.thread_count(None, 100, many) == 1


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_workers_starts_threads_despite_omp_num_threads(tmp_path):
    # Black box: count the process's threads. With OMP_NUM_THREADS=1 a
    # default call starts no OpenMP thread; workers=3 starts two (the
    # calling thread is the third), which the runtime keeps for reuse.
    code = """
import json, os
import numpy as np
import xentc
x = np.random.default_rng(0).standard_normal((64, 4096))
count = lambda: len(os.listdir("/proc/self/task"))
n0 = count()
xentc.logsumexp(x, axis=-1)
n1 = count()
xentc.logsumexp(x, axis=-1, workers=3)
n2 = count()
print(json.dumps([n0, n1, n2]))
"""
    n0, n1, n2 = run_python(code, tmp_path, OMP_NUM_THREADS="1",
                            OPENBLAS_NUM_THREADS="1")
    assert n1 == n0
    assert n2 == n0 + 2


def results(x, y, **kw):
    loss, grad = xentc.cross_entropy_and_grad(x, y, **kw)
    return [xentc.logsumexp(x, axis=-1, **kw), xentc.softmax(x, axis=-1, **kw),
            xentc.log_softmax(x, axis=-1, **kw), loss, grad]


@pytest.mark.parametrize("shape", [(4096, 24), (256, 700), (3, 140001)],
                         ids=["short-rows", "rows", "chunked-rows"])
def test_results_do_not_depend_on_threads(shape):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(np.float32) * 5
    y = rng.integers(0, shape[1], shape[0])
    want = results(x, y)
    runs = [results(x, y, workers=w) for w in (1, 2, 3, -1)]
    for limit in (1, 2):
        with threadpool_limits(limits=limit):
            runs.append(results(x, y))
            runs.append(results(x, y, workers=3))
    for got in runs:
        for a, b in zip(got, want):
            assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
