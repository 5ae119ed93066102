#!/usr/bin/env python3
"""
Long leak check: the calls of tests/test_leaks.py (valid and error paths of
every public function), 10^5 calls per function by default, with the memory
measures taken at five checkpoints so a slow leak shows as a slope:

    python tools/leak_check.py                   # 10^5 calls per function
    python tools/leak_check.py --calls 20000 --functions softmax,kl_div
    python tools/leak_check.py --no-tracemalloc  # about twice as fast

For each function it prints, relative to the state after a warm-up, the
growth of malloc's heap in use (glibc mallinfo2, all arenas), of the
resident set size (/proc/self/statm) and of tracemalloc's traced memory
(Python objects and NumPy arrays), then the growth per call over the
second half of the run (checkpoints 3 to 5): a leak keeps growing there, a
one-time step (a cache filled, an arena created) does not. Exit status 1 if
a function grew by more than --limit bytes per call there on the heap or
traced measures.
"""
import argparse
import os
import sys
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import test_leaks as tl  # noqa: E402


def measure(trace):
    tl.settle()
    heap = tl.heap_bytes()
    return (tl.rss_bytes(), heap if heap is not None else 0,
            tl.traced_bytes() if trace else 0)


def check(func, ncalls, trace, checkpoints=5):
    calls = [call for _, call in tl.CALLS[func]]
    for _ in range(50):
        for call in calls:
            call()
    if trace:
        tracemalloc.start()
    try:
        base = measure(trace)
        rows = []
        done = 0
        t0 = time.perf_counter()
        for k in range(1, checkpoints + 1):
            target = ncalls * k // checkpoints
            while done < target:
                calls[done % len(calls)]()
                done += 1
            rss, heap, traced = measure(trace)
            rows.append((done, rss - base[0], heap - base[1], traced - base[2]))
        elapsed = time.perf_counter() - t0
    finally:
        if trace:
            tracemalloc.stop()
    return rows, elapsed


def kib(n):
    return f"{n / 1024:+9.1f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=100_000, help="calls per function")
    ap.add_argument("--functions", default=",".join(tl.CALLS),
                    help="comma-separated (default: all)")
    ap.add_argument("--no-tracemalloc", action="store_true")
    ap.add_argument("--limit", type=float, default=16.0,
                    help="bytes per call of heap/traced growth that count as a leak")
    args = ap.parse_args(argv)
    trace = not args.no_tracemalloc
    heap_ok = tl.heap_bytes() is not None
    print(f"xentc leak check: {args.calls} calls per function, tracemalloc "
          f"{'on' if trace else 'off'}, heap measure {'mallinfo2' if heap_ok else 'n/a'}")
    print(f"{'function':<24}{'calls':>8} {'heap KiB':>9} {'RSS KiB':>9} {'traced KiB':>10}")
    leaking = []
    for func in args.functions.split(","):
        rows, elapsed = check(func, args.calls, trace)
        for done, rss, heap, traced in rows:
            print(f"{func:<24}{done:>8} {kib(heap)} {kib(rss)} {kib(traced):>10}", flush=True)
        (n0, rss0, heap0, tr0), (n1, rss1, heap1, tr1) = rows[len(rows) // 2], rows[-1]
        span = max(n1 - n0, 1)
        slope = [(heap1 - heap0) / span, (rss1 - rss0) / span, (tr1 - tr0) / span]
        print(f"{'':<24}{'per call':>8} {slope[0]:+9.2f} {slope[1]:+9.2f} {slope[2]:+10.2f}"
              f"   bytes, second half ({elapsed:.0f} s)", flush=True)
        if slope[0] > args.limit or slope[2] > args.limit:
            leaking.append(func)
    if leaking:
        print("LEAK SUSPECTED in: " + ", ".join(leaking))
        return 1
    print(f"no growth above {args.limit} bytes per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
