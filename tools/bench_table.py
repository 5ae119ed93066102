"""Markdown table of a `python -m xentc bench --json FILE` result, for the README.

Usage: python tools/bench_table.py FILE.json
"""
import json
import sys


def main(path):
    with open(path) as f:
        data = json.load(f)
    env = data["environment"]
    print(f"Measured with `python -m xentc bench` on {env['cpu']}, {env['cpu_count']} cores, "
          f"{env['threads']} threads, SIMD {env['simd']}; numpy {env['versions']['numpy']}, "
          f"scipy {env['versions']['scipy']}, torch {env['versions'].get('torch', 'n/a')}. "
          "Times of xentc with all threads; ratios are times of the other "
          "implementation divided by xentc's, measured side by side in one run.\n")
    print("| function | shape | dtype | xentc (ms) | vs 1 thread | vs scipy | vs NumPy | vs torch |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in data["results"]:
        s = r["speedup"]
        cell = lambda k: f"{s[k]:.1f}x" if k in s else "n/a"
        print(f"| {r['function']} | {'x'.join(map(str, r['shape']))} | {r['dtype']} | "
              f"{r['times_s']['xentc'] * 1e3:.2f} | {cell('xentc_1thread')} | {cell('scipy')} | "
              f"{cell('numpy')} | {cell('torch')} |")
    bw = data.get("bandwidth")
    if bw:
        print(f"\nRead bandwidth, {'x'.join(map(str, bw['shape']))} float32: "
              f"`xentc.logsumexp` ({env['threads']} threads) {bw['xentc_logsumexp_gbs']:.1f} GB/s, "
              f"`numpy.sum` (1 thread) {bw['numpy_sum_gbs']:.1f} GB/s "
              f"({100 * bw['ratio']:.0f}%).")


if __name__ == "__main__":
    main(sys.argv[1])
