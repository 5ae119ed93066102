"""Row log-sum-exp: xentc.logsumexp vs scipy.special.logsumexp, NumPy, torch.logsumexp."""


def test_logsumexp(run_benchmark, impl):
    run_benchmark("logsumexp", impl)
