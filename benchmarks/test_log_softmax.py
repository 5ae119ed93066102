"""Row log-softmax: xentc.log_softmax vs scipy.special.log_softmax, NumPy, torch.log_softmax."""


def test_log_softmax(run_benchmark, impl):
    run_benchmark("log_softmax", impl)
