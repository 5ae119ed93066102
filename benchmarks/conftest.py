"""pytest-benchmark suite: xentc against scipy, NumPy, torch and JAX, side by side.

Run with ``pytest benchmarks --benchmark-only`` (not collected by a plain
``pytest``, whose testpaths is tests/). Each (function, shape, dtype) is one
pytest-benchmark group holding every implementation, so the report shows them
side by side. The implementations are those of ``python -m xentc bench``
(xentc.benchmark.implementations), so both measure the same code.

Options: ``--xentc-threads N`` sets the thread count of the multi-threaded
xentc and torch entries (default: os.cpu_count()); JAX, in this process,
uses every CPU it may run on (``python -m xentc bench`` limits it in a
process of its own).
"""
import importlib.util
import os

import pytest

from xentc.benchmark import (
    DEFAULT_SHAPES,
    DTYPES,
    IMPLEMENTATION_KEYS,
    implementations,
    make_inputs,
)
from xentc.benchmark.registry import PEER_PACKAGES

HAVE = {key: importlib.util.find_spec(module) is not None
        for key, module in PEER_PACKAGES.items()}

CASES = [(shape, dtype) for shape in DEFAULT_SHAPES for dtype in DTYPES]


def _case_id(case):
    shape, dtype = case
    return "x".join(map(str, shape)) + "-" + dtype


def pytest_addoption(parser):
    parser.addoption("--xentc-threads", type=int, default=None,
                     help="threads of the multi-threaded xentc and torch entries "
                          "(default: os.cpu_count())")


def pytest_generate_tests(metafunc):
    # Every benchmark test takes `impl`: one test per implementation, with the
    # optional ones skipped (not failed) when their package is missing.
    if "impl" in metafunc.fixturenames:
        params = []
        for key in IMPLEMENTATION_KEYS:
            marks = [pytest.mark.skipif(not HAVE[key], reason=f"{key} is not installed")
                     ] if key in HAVE else []
            params.append(pytest.param(key, marks=marks, id=key))
        metafunc.parametrize("impl", params)


@pytest.fixture(scope="module", params=CASES, ids=_case_id)
def inputs(request):
    """(shape, dtype, logits, targets), made once per module and case.

    pytest groups the tests of a module-scoped parameter together and tears
    the previous one down before making the next, so one case's arrays
    (up to 524 MB for 2048x32000 float64) are alive at a time.
    """
    shape, dtype = request.param
    x, target = make_inputs(shape, dtype)
    yield shape, dtype, x, target
    del x, target


@pytest.fixture(scope="session")
def threads(pytestconfig):
    return pytestconfig.getoption("--xentc-threads") or os.cpu_count() or 1


@pytest.fixture
def run_benchmark(benchmark, inputs, threads):
    """run_benchmark(function, impl): time one implementation on this case."""

    def run(func, key):
        shape, dtype, x, target = inputs
        impls = {impl.key: impl for impl in implementations(func, threads)}
        fn = impls[key].prepare(x, target)
        benchmark.group = f"{func} {'x'.join(map(str, shape))} {dtype}"
        benchmark.extra_info.update(function=func, shape=list(shape), dtype=dtype,
                                    implementation=key, threads=threads)
        benchmark(fn)

    return run
