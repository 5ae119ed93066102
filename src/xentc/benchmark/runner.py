"""The benchmark's cases in order: every (function, shape, dtype) row, the
busy-row retries, and the isolated peers' rows (the table's and the sweep's)."""
import sys
import time

from .load import OtherLoad
from .peers import PeerProcess, installed_isolated
from .registry import REFERENCE, default_threads, implementations, make_inputs, shape_str
from .timing import agrees_with, time_case

# Seconds of timed calls per implementation and case (after the warm-up call).
DEFAULT_BUDGET = 0.1


FULL_BUDGET = 0.25


QUICK_BUDGET = 0.02


# Rows timed while other processes kept this much CPU busy (in CPUs, averaged)
# are marked: on a small machine a busy neighbour slows multi-threaded runs most.
BUSY_CPUS = 0.25


# Busy rows are timed again once each, within at most this fraction of the
# first pass's time and this many seconds: a machine that stays busy costs
# the run at most that, not endless retries.
RETRY_FRACTION, RETRY_MAX_SECONDS = 0.25, 20


RETRY_NOTE = ("[retry, busy]: a row was timed while other processes kept more than "
              f"{BUSY_CPUS} CPUs busy (hypervisor steal not counted); such rows are "
              f"timed once more at the end (at most {RETRY_MAX_SECONDS} s in all) and "
              "the quieter measurement is kept. Rows still marked * in the table "
              "were busy both times.")


class Progress:
    """One status line on stderr (rewritten in place on a terminal)."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.width = 0

    def show(self, text):
        if not self.enabled:
            return
        if self.tty:
            pad = max(self.width - len(text), 0)
            print("\r" + text + " " * pad, end="", file=sys.stderr, flush=True)
            self.width = len(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def done(self):
        if self.tty and self.width:
            print("\r" + " " * self.width + "\r", end="", file=sys.stderr, flush=True)
        self.width = 0


def time_peer(peer, func, shape, dtype, budget, reference):
    """(seconds, agrees with reference, other CPUs busy) of one peer."""
    load = OtherLoad()
    seconds, sample, cpu = peer.time(func, shape, dtype, budget)
    ref = [r[: PeerProcess.SAMPLE] for r in reference]
    return seconds, agrees_with(sample, ref, dtype), load.cpus(also_own=cpu)


def time_row(func, shape, dtype, x, target, impls, budget):
    """One row: the in-process implementations timed side by side
    (timing.time_case), with how busy the rest of the machine was."""
    load = OtherLoad()
    reference = []
    times, agrees = time_case(x, target, impls, budget, reference_out=reference)
    other = load.cpus()
    ref = times[REFERENCE]
    _REFERENCES[(func, tuple(shape), dtype)] = reference[0]
    return {
        "function": func,
        "shape": list(shape),
        "dtype": dtype,
        "times_s": times,
        "speedup": {key: t / ref for key, t in times.items() if key != REFERENCE},
        "agrees": agrees,
        "other_cpus": other,
    }


def _time_peer_row(peer, row, budget, bar):
    """Add one peer process's time of an in-process row to that row."""
    key = (row["function"], tuple(row["shape"]), row["dtype"])
    bar.show(f"[{peer.key}] {row['function']} {shape_str(row['shape'])} {row['dtype']}")
    seconds, ok, busy = time_peer(peer, row["function"], row["shape"], row["dtype"],
                                  budget, _REFERENCES[key])
    row["times_s"][peer.key] = seconds
    row["agrees"][peer.key] = ok
    row["speedup"][peer.key] = seconds / row["times_s"][REFERENCE]
    if busy is not None:
        row["other_cpus"] = busy if row["other_cpus"] is None else max(row["other_cpus"], busy)


def _busy(row):
    return row["other_cpus"] is not None and row["other_cpus"] > BUSY_CPUS


# The first implementation's result sample of every row timed in process,
# for the peers' agreement check (a few KiB a row).
_REFERENCES = {}


def run(shapes, dtypes, funcs, budget, threads=None, progress=True, retry=False,
        isolate=True, keys=None):
    """Time every (function, shape, dtype) case: a list of result dicts.

    Each array is generated once and used by all functions and
    implementations, then freed (2048x32000 float64 is 524 MB).

    retry: time again, once, the rows timed while other processes kept the
    CPUs busy, for a limited time (RETRY_*), keeping the measurement taken
    under the lighter load (whole rows, so each row's ratios come from one
    measurement). The first retry prints RETRY_NOTE on stderr.
    isolate: time the ISOLATED peers (else not at all), each in a child
    process of its own, after all the in-process rows.
    keys: only these implementation keys (default: all); REFERENCE must be
    among them.
    """
    bar = Progress(progress)
    peer = None
    # the isolated peers are left out here without being imported: this
    # process never starts their thread pools
    impls = {f: implementations(f, threads, keys=keys, isolated=False) for f in funcs}
    _REFERENCES.clear()
    try:
        ncases = len(shapes) * len(dtypes) * len(funcs)
        rows, k = [], 0
        started = time.perf_counter()
        for shape in shapes:
            for dtype in dtypes:
                x, target = make_inputs(shape, dtype)
                for func in funcs:
                    k += 1
                    bar.show(f"[{k}/{ncases}] {func} {shape_str(shape)} {dtype}")
                    rows.append(time_row(func, shape, dtype, x, target, impls[func],
                                          budget))
                del x, target

        if retry:
            now = time.perf_counter()
            retry_until = now + min(RETRY_FRACTION * (now - started), RETRY_MAX_SECONDS)
            busy = [i for i, row in enumerate(rows) if _busy(row)]
            explained = False
            for shape in shapes:
                for dtype in dtypes:
                    todo = [i for i in busy if rows[i]["shape"] == list(shape)
                            and rows[i]["dtype"] == dtype]
                    if not todo or time.perf_counter() > retry_until:
                        continue
                    x, target = make_inputs(shape, dtype)
                    for i in todo:
                        if time.perf_counter() > retry_until:
                            break
                        if not explained and progress:
                            bar.done()
                            print(RETRY_NOTE, file=sys.stderr, flush=True)
                            explained = True
                        func = rows[i]["function"]
                        bar.show(f"[retry, busy] {func} {shape_str(shape)} {dtype}")
                        again = time_row(func, shape, dtype, x, target, impls[func],
                                          budget)
                        if again["other_cpus"] is not None and \
                                again["other_cpus"] < rows[i]["other_cpus"]:
                            rows[i] = again
                    del x, target

        # The isolated peers last, each in a child process of its own
        # started now and ended before the next starts: the parent has
        # freed its arrays, so a child's memory does not add to the
        # parent's peak (SciPy's temporaries), and no peer's threads ever
        # spin beside xentc's or another peer's. Each row's ratio still
        # compares the same arrays (made again from the same seed) on the
        # same machine.
        for key in installed_isolated(keys) if isolate else ():
            peer = PeerProcess(key, threads or default_threads())
            for row in rows:
                _time_peer_row(peer, row, budget, bar)
            peer.close()
            peer = None
    finally:
        if peer is not None:
            peer.close()
    bar.done()
    return rows

