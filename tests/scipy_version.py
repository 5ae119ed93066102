"""Which SciPy the tests face.

xentc follows SciPy 1.17's logsumexp/softmax conventions (result dtypes of
float16, complex and bool input, special values, weights). SciPy 1.17 needs
Python >= 3.11: on Python 3.10 the [test] extra installs the newest SciPy
there is (1.15), whose answers differ on those points, so the tests that take
SciPy's own results as the expected ones skip there with this reason.
Everything else (slow references, torch golden data, kernels) runs on every
Python.
"""
import pytest
import scipy

FOLLOWED = (1, 17)
INSTALLED = tuple(int(part) for part in scipy.__version__.split(".")[:2])

needs_followed_scipy = pytest.mark.skipif(
    INSTALLED < FOLLOWED,
    reason=(f"compares with SciPy's own results: xentc follows SciPy >= "
            f"{FOLLOWED[0]}.{FOLLOWED[1]} and SciPy {scipy.__version__} is installed "
            "(the newest there is for Python 3.10)"))
