"""Benchmark: the official Magenta RT 2 model under jamgen's adapter vs jamgen's native model of
the same shape, in one run, through the same ``generate`` API the daemon calls.

Why both in one process: timings on a shared machine drift from run to run, so the ratio of the
two, measured back to back, is the number to trust. The adapter runs the ``magenta-rt`` package's
own per-frame step (a Python loop of compiled steps, as ``MagentaRT2Jax.generate`` does); the
native model scans its frames inside one compiled call. Weights are random unless ``--official``
(speed does not depend on weight values), so it runs without downloads; on a CPU use few frames.

    .venv-magenta/bin/python bench/bench_magenta.py --shape mrt2_small            # GPU
    .venv-magenta/bin/python bench/bench_magenta.py --shape test --frames 20      # CPU smoke run

Prints per-frame step time percentiles (``generate(..., 1)``: the control latency floor),
block throughput in frames/s and real-time factor (25 frames/s = real time), and adapter/native
ratios. ``--json`` also prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import numpy as np

FRAME_RATE = 25


def measure(gen, frames: int, block: int, blocks: int, controls) -> dict:
    """Per-frame step times (ms) over ``frames`` single-frame calls, then ``blocks`` calls of
    ``block`` frames for throughput. Both after a warm-up call of each size."""
    state = gen.init_state(0)
    for n in (1, block):  # compile / first-call costs stay out of the numbers
        _, state = gen.generate(state, controls, n)
    steps = []
    for _ in range(frames):
        t = time.perf_counter()
        _, state = gen.generate(state, controls, 1)
        steps.append((time.perf_counter() - t) * 1e3)
    t = time.perf_counter()
    for _ in range(blocks):
        _, state = gen.generate(state, controls, block)
    fps = blocks * block / (time.perf_counter() - t)
    steps = np.asarray(steps)
    return {"p50_ms": float(np.percentile(steps, 50)), "p95_ms": float(np.percentile(steps, 95)),
            "p99_ms": float(np.percentile(steps, 99)), "max_ms": float(steps.max()),
            "frames_per_s": fps, "rtf": fps / FRAME_RATE}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="mrt2_small", help="mrt2_small | mrt2_base | test (tiny, adapter only shape)")
    ap.add_argument("--official", action="store_true", help="the official weights from $MAGENTA_HOME")
    ap.add_argument("--frames", type=int, default=100, help="single-frame calls timed for the percentiles")
    ap.add_argument("--block", type=int, default=5, help="frames per call for throughput (5 = 200 ms)")
    ap.add_argument("--blocks", type=int, default=20)
    ap.add_argument("--native", default=None, help="native preset to compare with (default: --shape; "
                                                   "'none' skips it; 'test' shape compares with 'test')")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import jax

    import generator
    from generator.backends import magenta_rt2
    from generator.core.contract import GenerationControls

    controls = GenerationControls(prompts=(("bossa nova guitar", 0.7), ("deep house drums", 0.3)))
    print(f"jax {jax.__version__} on {jax.default_backend()} ({jax.devices()[0].device_kind})")
    results = {}

    t0 = time.perf_counter()
    if args.official:
        adapter = magenta_rt2.load(args.shape, allow_cpu=True)
    else:
        adapter = magenta_rt2.random_generator(args.shape)
    print(f"adapter ({adapter.name}): built and compiled in {time.perf_counter() - t0:.1f} s")
    results["adapter"] = measure(adapter, args.frames, args.block, args.blocks, controls)
    del adapter

    native_name = args.native or args.shape
    if native_name != "none":
        t0 = time.perf_counter()
        native = generator.load(native_name)
        if hasattr(native, "warmup"):
            native.warmup(args.block)
        print(f"native ({native_name}): built and compiled in {time.perf_counter() - t0:.1f} s")
        results["native"] = measure(native, args.frames, args.block, args.blocks, controls)

    print(f"\n{'':8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'frames/s':>9} {'RTF':>6}")
    for name, r in results.items():
        print(f"{name:8} {r['p50_ms']:8.2f} {r['p95_ms']:8.2f} {r['p99_ms']:8.2f} {r['max_ms']:8.2f} "
              f"{r['frames_per_s']:9.2f} {r['rtf']:6.2f}")
    if "native" in results:
        a, n = results["adapter"], results["native"]
        results["ratio_adapter_over_native"] = {
            "p50": a["p50_ms"] / n["p50_ms"], "p99": a["p99_ms"] / n["p99_ms"],
            "frames_per_s": a["frames_per_s"] / n["frames_per_s"]}
        r = results["ratio_adapter_over_native"]
        print(f"adapter/native: p50 x{r['p50']:.2f}, p99 x{r['p99']:.2f}, throughput x{r['frames_per_s']:.2f}")
    print(f"budget: {1000 / FRAME_RATE:.0f} ms per frame for real time")
    if args.json:
        print(json.dumps({"shape": args.shape, "official": args.official, "backend": jax.default_backend(),
                          **results}))


if __name__ == "__main__":
    main()
