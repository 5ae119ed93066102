"""Run the Examples sections of the installed package's docstrings."""
import doctest
import importlib
import pkgutil

import numpy as np
import pytest

import xentc

MODULES = sorted(
    m.name for m in pkgutil.iter_modules(xentc.__path__, prefix="xentc.")
    if not m.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name == "xentc.dask":
        pytest.importorskip("dask.array")  # an optional extra
    if name == "xentc.torch":
        pytest.importorskip("torch")  # an optional extra
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    for test in finder.find(module, name, globs={"np": np}):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0


def test_public_functions_have_examples():
    # Every public function documents itself with a runnable example.
    for name in xentc.__all__:
        obj = getattr(xentc, name)
        if callable(obj):
            assert ">>>" in (obj.__doc__ or ""), name
