"""Mean cross-entropy with class-index targets: xentc vs a scipy logsumexp expression, NumPy, torch F.cross_entropy."""


def test_cross_entropy(run_benchmark, impl):
    run_benchmark("cross_entropy", impl)
