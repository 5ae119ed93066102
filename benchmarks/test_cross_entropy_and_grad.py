"""Cross-entropy loss and its gradient: xentc's fused kernel vs scipy/NumPy expressions and torch forward + backward from a leaf tensor."""


def test_cross_entropy_and_grad(run_benchmark, impl):
    run_benchmark("cross_entropy_and_grad", impl)
