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
second half of the run: the smaller of its two intervals (checkpoints 3 to
4, 4 to 5). A leak grows in every interval; a one-time step (a cache
filled, an arena created, a dict's key table rebuilt after churn) falls in
one at most. Exit status 1 if a function grew by more than --limit bytes
per call in both intervals on the heap or traced measures.
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
        half = rows[len(rows) // 2:]
        slopes = [[(b[k] - a[k]) / max(b[0] - a[0], 1) for k in (2, 1, 3)]
                  for a, b in zip(half, half[1:])]
        slope = [min(s[k] for s in slopes) for k in range(3)]
        print(f"{'':<24}{'per call':>8} {slope[0]:+9.2f} {slope[1]:+9.2f} {slope[2]:+10.2f}"
              f"   bytes, second half, smaller interval ({elapsed:.0f} s)", flush=True)
        if slope[0] > args.limit or slope[2] > args.limit:
            leaking.append(func)
    if leaking:
        print("LEAK SUSPECTED in: " + ", ".join(leaking))
        return 1
    print(f"no growth above {args.limit} bytes per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
