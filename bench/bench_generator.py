"""Benchmark of the native generator: real-time factor, per-frame step times, RSS, compile time.

Why a script and not a test: timings on a shared 2-core machine are noisy (other engineers run
tests at the same time), so this takes the best of several rounds and prints the numbers instead
of asserting them. Everything is measured through the daemon's own API (``generate`` with
``GenerationControls``), including the codec decode and the device-to-host copy.

    JAX_COMPILATION_CACHE_DIR=/tmp/xla .venv/bin/python bench/bench_generator.py --preset tiny
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
from tqdm import tqdm


def percentiles(ms):
    return " ".join(f"p{q} {np.percentile(ms, q):6.2f}" for q in (50, 95, 99))


def timed_blocks(gen, state, controls, frames, count, desc):
    times = []
    for _ in tqdm(range(count), desc=desc, leave=False):
        t = time.perf_counter()
        audio, state = gen.generate(state, controls, frames)
        times.append((time.perf_counter() - t) * 1e3)
    return np.asarray(times), state


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--block", type=int, default=5, help="frames per generate call (5 = 200 ms)")
    ap.add_argument("--blocks", type=int, default=100, help="blocks per round")
    ap.add_argument("--rounds", type=int, default=3, help="best-of rounds (by p95)")
    ap.add_argument("--streams", type=int, default=0,
                    help="also time N independent streams batched with vmap (GPU throughput)")
    args = ap.parse_args()

    t0 = time.perf_counter()
    import jax

    import generator
    from generator.core.contract import FRAME_RATE, GenerationControls

    gen = generator.load(args.preset)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    gen.warmup(args.block)
    t_warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    gen.generate(gen.init_state(0), GenerationControls(), 1)  # the per-frame variant
    t_compile1 = time.perf_counter() - t0

    controls = GenerationControls(prompts=(("warm up", 0.5), ("jazz trio", 0.5)))
    gen.embed_style("jazz trio")
    block_ms = args.block * 1e3 / FRAME_RATE
    rounds = []
    for r in range(args.rounds):
        state = gen.init_state(r)
        blocks, state = timed_blocks(gen, state, controls, args.block, args.blocks, f"round {r} blocks")
        frames, state = timed_blocks(gen, state, controls, 1, args.blocks, f"round {r} frames")
        rounds.append((np.percentile(blocks, 95), blocks, frames))
    _, blocks, frames = min(rounds, key=lambda x: x[0])

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"preset {args.preset} on {jax.devices()[0].device_kind} ({jax.devices()[0].platform}); "
          f"best of {args.rounds} rounds x {args.blocks} blocks (by block p95)")
    print(f"load {t_load:.2f} s | warmup (compile {args.block}-frame step + MiniLM) {t_warm:.2f} s | "
          f"compile 1-frame step {t_compile1:.2f} s | cache {jax.config.jax_compilation_cache_dir}")
    print(f"block of {args.block} frames ({block_ms:.0f} ms audio), ms: {percentiles(blocks)}")
    print(f"real-time factor per block: p50 {np.percentile(blocks, 50) / block_ms:.3f} "
          f"p95 {np.percentile(blocks, 95) / block_ms:.3f} p99 {np.percentile(blocks, 99) / block_ms:.3f}")
    per_frame = blocks / args.block
    print(f"per-frame step within blocks, ms: {percentiles(per_frame)}")
    print(f"single-frame calls (frames=1), ms: {percentiles(frames)} "
          f"-> {1e3 / np.median(frames):.1f} frames/s (40 ms budget)")
    if args.streams:
        bench_streams(gen, args.streams, args.block, args.blocks, block_ms)
    print(f"peak RSS {rss:.0f} MiB")


def bench_streams(gen, n, block, count, block_ms):
    """N streams in one batched step: vmap of the system's pure generate function."""
    import functools

    import jax
    import jax.numpy as jnp

    fn = jax.jit(jax.vmap(functools.partial(gen._generate_fn, frames=block),
                          in_axes=(None, 0, 0, None, None, None)), donate_argnums=(1,))
    states = jax.tree.map(lambda *x: jnp.stack(x), *[gen.init_state(i) for i in range(n)])
    style = jnp.tile(jnp.asarray(gen.style_tokens((("jazz trio", 1.0),)))[None], (n, 1))
    args = (np.float32(3.0), np.float32(1.1), np.int32(40))
    t0 = time.perf_counter()
    audio, states = fn(gen._params, states, style, *args)
    audio.block_until_ready()
    compile_s = time.perf_counter() - t0
    times = []
    for _ in tqdm(range(count), desc=f"{n} streams", leave=False):
        t = time.perf_counter()
        audio, states = fn(gen._params, states, style, *args)
        np.asarray(audio)
        times.append((time.perf_counter() - t) * 1e3)
    times = np.asarray(times)
    print(f"{n} streams batched (compile {compile_s:.1f} s), block ms: {percentiles(times)}; "
          f"RTF p99 {np.percentile(times, 99) / block_ms:.3f}; "
          f"{n * block * 1e3 / np.median(times):.0f} frames/s in total")


if __name__ == "__main__":
    main()
