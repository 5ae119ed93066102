"""pytest-benchmark: xentc.dask against a dask.array expression (small).

Run explicitly (the file is not named test_*.py, so ``pytest benchmarks``
leaves it out): ``pytest benchmarks/bench_dask.py --benchmark-only``.

Row log-sum-exp of a float32 array persisted on a LocalCluster of two
single-threaded worker processes, chunked along rows and classes: one
benchmark group per chunking, xentc.dask.logsumexp next to the scipy-style
expression ``log(sum(exp(x - max))) + max``. The large-array comparison is
``python -m xentc bench --dask``.
"""
import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import xentc.dask as xd  # noqa: E402
from xentc.benchmark.dask import _scipy_style  # noqa: E402

SHAPE = (2048, 16384)  # 128 MiB float32
CHUNKINGS = {"rows": (256, 16384), "rows+classes": (512, 4096)}
IMPLEMENTATIONS = {
    "xentc.dask": lambda x: xd.logsumexp(x, axis=1),
    "dask-expression": _scipy_style,
}


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=40)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module", params=list(CHUNKINGS))
def persisted(request, client):
    chunks = CHUNKINGS[request.param]
    x = da.random.default_rng(0).standard_normal(SHAPE, chunks=chunks,
                                                 dtype=np.float32).persist()
    distributed.wait(x)
    yield request.param, x
    del x


# (not "impl": benchmarks/conftest.py parametrizes that name itself)
@pytest.mark.parametrize("implementation", list(IMPLEMENTATIONS))
def test_dask_logsumexp(benchmark, client, persisted, implementation):
    name, x = persisted
    build = IMPLEMENTATIONS[implementation]
    benchmark.group = f"dask logsumexp {SHAPE[0]}x{SHAPE[1]} float32, chunks: {name}"
    benchmark.extra_info.update(chunks=list(x.chunksize), implementation=implementation)
    result = benchmark.pedantic(lambda: client.compute(build(x), sync=True),
                                rounds=5, warmup_rounds=1)
    assert result.shape == (SHAPE[0],) and np.all(np.isfinite(result))
