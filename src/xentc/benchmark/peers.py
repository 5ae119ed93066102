"""Peers with thread pools of their own, timed in a child process."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np

from .registry import ISOLATED, PEER_FACTORIES, PEER_PACKAGES, make_inputs
from .timing import best_time, result_sample


class PeerProcess:
    """One isolated peer (see ISOLATED), timed in a child process on the
    same arrays (make_inputs with the same seed) and with the same timing
    rules, one request at a time over a pipe: while it waits for the next
    request its threads go idle, and while it runs the parent waits.
    """

    SAMPLE = 4096  # values sent back for the agreement check

    def __init__(self, key, threads):
        self.key = key
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from xentc.benchmark.peers import peer_main; peer_main()",
             key, str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def time(self, func, shape, dtype, budget):
        """(seconds per call, result sample, CPU seconds the child used)."""
        request = {"func": func, "shape": list(shape), "dtype": dtype, "budget": budget}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.key} benchmark process ended unexpectedly")
        reply = json.loads(line)
        return (reply["seconds"], [np.array(v, dtype=np.float64) for v in reply["sample"]],
                reply["cpu"])

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


# Arrays up to this size stay in the child between requests.
KEEP_BYTES = 64 << 20


def limit_cpus(threads):
    """Let this process run on only `threads` of the CPUs it may use now.

    For JAX, whose thread count no option sets: XLA sizes its CPU thread
    pools once, when JAX starts, from the CPUs the process may run on
    (tsl::port::MaxParallelism, which follows sched_getaffinity), so this
    must run before JAX is imported. XLA_FLAGS does not do it: jaxlib 0.10
    has no flag for the pool size (intra_op_parallelism_threads is refused
    as an unknown flag), and --xla_cpu_multi_thread_eigen=false only makes
    Eigen's matrix products single-threaded; XLA's own parallel loops went
    on using both cores of this machine (process CPU time / wall time 2.0
    for a row-wise logsumexp), and 1.0 with the process on one CPU. The
    process is pinned to the first `threads` CPUs, where xentc's and
    torch's threads may move between all of them. Where affinity cannot be
    set (macOS, Windows) JAX keeps every core.

    Returns the number of CPUs the process may run on afterwards (None
    where that is unknown).
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if threads < len(cpus):
        os.sched_setaffinity(0, cpus[:threads])
    return len(os.sched_getaffinity(0))


def _start_jax(threads):
    limit_cpus(threads)
    import jax

    # 64-bit mode for the whole process, before any array exists: float64
    # cases stay float64 and targets stay int64 as xentc gets them; float32
    # arrays stay float32 (JAX keeps the inputs' dtype).
    jax.config.update("jax_enable_x64", True)


# What a peer's child process sets up before it makes its first implementation.
_PEER_START = {"jax": _start_jax}


def peer_main():
    """The child side of PeerProcess: argv = [key, threads]."""
    key, threads = sys.argv[1], int(sys.argv[2])
    _PEER_START.get(key, lambda threads: None)(threads)
    factory = PEER_FACTORIES[key]
    impls, cached = {}, (None, None)
    for line in sys.stdin:
        # the child's CPU time for the whole request (arrays, torch's import
        # on the first one, the timing), which the parent leaves out of the
        # other processes' load
        t0 = os.times()
        req = json.loads(line)
        case = (tuple(req["shape"]), req["dtype"])
        if cached[0] != case:
            cached = (None, None)  # free the previous arrays first
            cached = (case, make_inputs(*case))
        x, target = cached[1]
        if x.nbytes > KEEP_BYTES:
            # not kept while the parent times the others: the child's copy
            # of a large case would add to the parent's peak (made again
            # for the next function: ~0.15 s for 131 MB)
            cached = (None, None)
        if req["func"] not in impls:
            impls[req["func"]] = factory(req["func"], threads)
        fn = impls[req["func"]].prepare(x, target)
        seconds, result = best_time(fn, req["budget"])
        sample = [v.tolist() for v in result_sample(result, PeerProcess.SAMPLE)]
        del result, fn, x, target
        t1 = os.times()
        print(json.dumps({"seconds": seconds, "sample": sample,
                          "cpu": (t1.user + t1.system) - (t0.user + t0.system)}),
              flush=True)


def installed_isolated(keys=None):
    """The ISOLATED peers installed here (only those among `keys` if given),
    in table order: each is timed by a PeerProcess of its own."""
    return [key for key in ISOLATED if (keys is None or key in keys)
            and importlib.util.find_spec(PEER_PACKAGES[key]) is not None]
