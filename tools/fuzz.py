#!/usr/bin/env python3
"""
Long fuzzing run of xentc: the generators and checks of tests/test_fuzz.py,
drawn from a NumPy generator instead of Hypothesis, for as many calls as
wanted (default 10^5), in child processes so that a crash is caught and
pinned to its case instead of ending the run.

Case i (for a seed S) is function FUNCTIONS[i % len(FUNCTIONS)] with the spec drawn from
numpy.random.default_rng([S, i]): any case can be replayed on its own.

    python tools/fuzz.py                      # 10^5 calls, seed 0, 1 job
    python tools/fuzz.py --calls 20000 --jobs 2 --seed 7 --cpu both
    python tools/fuzz.py --replay 12345 --seed 7          # one case, in-process
    python tools/fuzz.py --spec "{'func': 'softmax', ...}"

Each child runs a slice of cases and reports, per case, a start line and an
outcome: "ok" (result equal to the reference), "raised" (a clean exception
on invalid input), "known:<bug>" (a case of a bug already reported, see
test_fuzz.known_issue), or a failure (wrong result, modified input, error on
valid input, non-clean exception). A child that dies leaves a started case
without an outcome: that case is recorded as a crash (with its exit signal
and the tail of its stderr, where faulthandler prints the Python stack) and
the run goes on from the next case.

Exit status: 0 when there was no failure and no crash, 1 otherwise.
"""
import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(os.path.dirname(HERE), "tests")


def _import_checks():
    sys.path.insert(0, TESTS)
    import numpy as np  # noqa: F401 -- specs may hold np.int64 values
    import test_fuzz
    return test_fuzz


def spec_for(tf, seed, i):
    import numpy as np
    func = tf.FUNCTIONS[i % len(tf.FUNCTIONS)]
    return tf.draw_spec(tf.NumpySource(np.random.default_rng([seed, i])), func)


def _one_line(text):
    return text.replace("\\", "\\\\").replace("\n", "\\n")


# ------------------------------------------------------------------ child
def run_worker(seed, start, stop, crash_at=None):
    """Run cases [start, stop); one line per event on stdout. crash_at: a
    case at which to kill this process with SIGSEGV (tests the harness)."""
    import faulthandler
    faulthandler.enable()  # a crash prints the Python stack on stderr
    tf = _import_checks()
    out = sys.stdout
    for i in range(start, stop):
        spec = spec_for(tf, seed, i)
        out.write(f"S {i}\n")
        out.flush()
        if i == crash_at:
            os.kill(os.getpid(), signal.SIGSEGV)
        try:
            outcome = tf.check(spec)
            out.write(f"R {i} {outcome}\n")
        except AssertionError as exc:
            out.write(f"F {i} {_one_line(str(exc))}\n")
        except Exception:  # noqa: BLE001 -- a non-clean exception is a finding
            out.write(f"E {i} {_one_line(traceback.format_exc())}\n")
        out.flush()


# ----------------------------------------------------------------- parent
class Tally:
    """Outcomes of all slices (updated from the slice threads, under lock)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.outcomes = collections.Counter()          # (func, outcome) -> n
        self.failures = {}                              # first line -> (n, i, message)
        self.crashes = []                               # (i, returncode, stderr tail)
        self.done = 0

    def failure(self, i, kind, message):
        key = kind + ": " + message.split("\n")[0][:160]
        n, first, msg = self.failures.get(key, (0, i, message))
        self.failures[key] = (n + 1, first, msg)


def run_slice(args, start, stop, tally, tf, cpu):
    """Run [start, stop) in children, restarting after each crash."""
    env = dict(os.environ)
    if cpu:
        env["XENTC_CPU"] = cpu
    while start < stop:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--seed", str(args.seed),
               "--start", str(start), "--stop", str(stop)]
        if args.selftest_crash_at is not None:
            cmd += ["--selftest-crash-at", str(args.selftest_crash_at)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)
        started = None
        for line in proc.stdout:
            tag, i, *rest = line.rstrip("\n").split(" ", 2)
            i = int(i)
            if tag == "S":
                started = i
                continue
            started = None
            with tally.lock:
                record(tally, tf, tag, i, rest)
        stderr = proc.stderr.read()
        rc = proc.wait()
        with tally.lock:
            if started is None:
                if rc != 0:  # died between cases (should not happen)
                    tally.crashes.append((start, rc, stderr[-3000:]))
                return
            # a case started and never finished: a crash
            tally.done += 1
            tally.outcomes[(tf.FUNCTIONS[started % len(tf.FUNCTIONS)], "CRASH")] += 1
            tally.crashes.append((started, rc, stderr[-3000:]))
        start = started + 1


def record(tally, tf, tag, i, rest):
    """Count the outcome line (tag R, F or E) of case i."""
    func = tf.FUNCTIONS[i % len(tf.FUNCTIONS)]
    tally.done += 1
    if tag == "R":
        tally.outcomes[(func, rest[0].split(":")[0])] += 1
        if rest[0].startswith("known:"):
            tally.outcomes[(func, rest[0])] += 1
        return
    tally.outcomes[(func, "FAIL" if tag == "F" else "ERROR")] += 1
    # undo _one_line's escaping
    message = rest[0].replace("\\\\", "\0").replace("\\n", "\n").replace("\0", "\\") \
        if rest else ""
    tally.failure(i, {"F": "wrong", "E": "exception"}[tag], message)


def report(args, tally, tf, elapsed):
    print(f"\nxentc fuzz: seed {args.seed}, {tally.done} calls in {elapsed:.0f} s "
          f"({tally.done / max(elapsed, 1e-9):.0f}/s), cpu={args.cpu}")
    funcs = tf.FUNCTIONS
    kinds = ["ok", "raised", "known", "FAIL", "ERROR", "CRASH"]
    print(f"{'function':<24}" + "".join(f"{k:>9}" for k in kinds))
    for f in funcs:
        print(f"{f:<24}" + "".join(f"{tally.outcomes[(f, k)]:>9}" for k in kinds))
    known = collections.Counter()
    for (f, k), n in tally.outcomes.items():
        if k.startswith("known:"):
            known[k[6:]] += n
    if known:
        print("known bugs hit: " + ", ".join(f"{k} ({n})" for k, n in known.most_common()))
    for key, (n, i, msg) in sorted(tally.failures.items(), key=lambda kv: -kv[1][0]):
        print(f"\n[{n}x] {key}\n  first case: --replay {i} --seed {args.seed}\n  "
              + msg.replace("\n", "\n  ")[:3000])
    for i, rc, err in tally.crashes:
        print(f"\nCRASH at case {i} (exit status {rc}): --replay {i} --seed {args.seed}\n"
              f"  spec: {spec_for(tf, args.seed, i)!r}\n  stderr tail:\n  "
              + err.replace("\n", "\n  "))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"seed": args.seed, "calls": tally.done, "seconds": elapsed,
                       "outcomes": {f"{f}/{k}": n for (f, k), n in tally.outcomes.items()},
                       "failures": {k: {"count": n, "first_case": i, "message": m}
                                    for k, (n, i, m) in tally.failures.items()},
                       "crashes": [{"case": i, "status": rc, "stderr": e}
                                   for i, rc, e in tally.crashes]}, fh, indent=1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=100_000, help="cases to run (default 10^5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1, help="child processes at a time")
    ap.add_argument("--chunk", type=int, default=5000,
                    help="cases per child process (a fresh process per chunk)")
    ap.add_argument("--cpu", choices=["default", "baseline", "avx2", "both"], default="both",
                    help="kernel level (XENTC_CPU); 'both' alternates chunks")
    ap.add_argument("--json", help="also write the summary as JSON here")
    ap.add_argument("--replay", type=int, help="run case N of --seed in this process")
    ap.add_argument("--spec", help="run this spec (a Python literal) in this process")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--start", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--stop", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--selftest-crash-at", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        run_worker(args.seed, args.start, args.stop, args.selftest_crash_at)
        return 0
    tf = _import_checks()
    if args.replay is not None or args.spec:
        import numpy as np
        spec = (eval(args.spec, {"np": np}) if args.spec  # noqa: S307 -- our own literal
                else spec_for(tf, args.seed, args.replay))
        print(repr(spec))
        print(tf.check(spec))
        return 0

    tally = Tally()
    t0 = time.time()
    chunks = [(s, min(s + args.chunk, args.calls)) for s in range(0, args.calls, args.chunk)]
    levels = {"default": [None], "baseline": ["baseline"], "avx2": ["avx2"],
              "both": ["avx2", "baseline"]}[args.cpu]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_slice, args, a, b, tally, tf, levels[k % len(levels)])
                   for k, (a, b) in enumerate(chunks)]
        for k, fut in enumerate(futures):
            fut.result()
            print(f"  chunk {k + 1}/{len(chunks)} done: {tally.done} calls, "
                  f"{sum(n for (_, o), n in tally.outcomes.items() if o in ('FAIL', 'ERROR'))}"
                  f" failures, {len(tally.crashes)} crashes, {time.time() - t0:.0f} s",
                  flush=True)
    report(args, tally, tf, time.time() - t0)
    return 1 if tally.failures or tally.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
