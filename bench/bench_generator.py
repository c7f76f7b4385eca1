"""Benchmark of the native generator: real-time factor, per-frame step times, RSS, compile time.

Why a script and not a test: timings on a shared 2-core machine are noisy (other engineers run
tests at the same time), so this takes the best of several rounds and prints the numbers instead
of asserting them. Everything is measured through the daemon's own API (``generate`` with
``GenerationControls``), including the codec decode and the device-to-host copy.

    JAX_COMPILATION_CACHE_DIR=/tmp/xla .venv/bin/python bench/bench_generator.py --preset tiny

``--mrt2 small|base|test`` instead times Magenta RT 2 in jamgen's native engine (``mrt2:``) against the
official package's step under the adapter (``magenta:``), in one run, on the same checkpoint: the
official file when it is there, else (``--random``) package-initialised weights in the official layout
(speed does not depend on weight values). Per-frame p50/p99 (``generate(..., 1)``), block RTF, ratio.
On a GPU: ``bench/gpu_mrt2.sh``.
"""

from __future__ import annotations

import argparse
import pathlib
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
    ap.add_argument("--mrt2", choices=("small", "base", "test"),
                    help="time mrt2:<shape> (native) against magenta:mrt2_<shape> (the package's step)")
    ap.add_argument("--random", action="store_true", help="with --mrt2: random weights when the file is missing")
    ap.add_argument("--no-adapter", action="store_true", help="with --mrt2: time the native engine only")
    args = ap.parse_args()
    if args.mrt2:
        return bench_mrt2(args)

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


def _mrt2_pair(shape: str, random_ok: bool, with_adapter: bool):
    """(native generator, adapter generator or None, where the weights came from), same checkpoint."""
    import tempfile

    from magenta_rt import musiccoca

    from generator.backends import magenta_rt2
    from generator.mrt2 import parity, system

    path = system.checkpoint_path(shape)
    origin = str(path)
    if not path.is_file():
        if not random_ok:
            raise SystemExit(f"{path} is missing; fetch it (jamgen models says how) or pass --random")
        path = pathlib.Path(tempfile.gettempdir()) / "jamgen-mrt2-random" / f"mrt2_{shape}.safetensors"
        if not path.is_file():  # written once, reused by later runs (10 GB for base)
            parity.official_checkpoint(shape, path)
        origin = f"random weights, official layout ({path})"
    dtype = system._dtypes()
    engine = system.load_lm(shape, path, dtype=dtype, param_dtype=dtype, with_codec=True)
    native = system.MRT2NativeGenerator(shape, engine, musiccoca.MockMusicCoCa(), name=f"mrt2:{shape}")
    adapter = None
    if with_adapter:
        model = magenta_rt2.SHAPES[system.ADAPTER_SHAPE[shape]]()
        adapter = magenta_rt2.MagentaRT2Generator(model, magenta_rt2.load_checkpoint(path),
                                                  musiccoca.MockMusicCoCa(), name=f"magenta:{shape}")
    return native, adapter, f"{origin}; native compute {np.dtype(dtype).name}"


def bench_mrt2(args):
    from generator.core.runtime import single_thread_cpu

    single_thread_cpu()  # as generator.load does, before JAX starts
    import jax

    from generator.core.contract import FRAME_RATE, GenerationControls

    native, adapter, origin = _mrt2_pair(args.mrt2, args.random, not args.no_adapter)
    controls = GenerationControls(prompts=(("jazz trio", 1.0),), temperature=1.3, top_k=40)
    block_ms = args.block * 1e3 / FRAME_RATE
    print(f"MRT2 {args.mrt2} on {jax.devices()[0].device_kind} ({jax.devices()[0].platform}); {origin}")
    results = {}
    for label, gen in (("mrt2 (native)", native), ("magenta (adapter)", adapter)):
        if gen is None:
            continue
        state = gen.init_state(0)
        for n in (1, args.block):  # compile and first-call costs stay out of the numbers
            _, state = gen.generate(state, controls, n)
        frames, state = timed_blocks(gen, state, controls, 1, args.blocks, f"{label} frames")
        blocks, state = timed_blocks(gen, state, controls, args.block, max(1, args.blocks // args.block), label)
        results[label] = frames
        print(f"{label:18s} per frame (frames=1) ms: p50 {np.percentile(frames, 50):7.2f} "
              f"p99 {np.percentile(frames, 99):7.2f} | RTF p50 {np.percentile(frames, 50) / 40:.3f} | "
              f"block of {args.block} ms: p50 {np.percentile(blocks, 50):7.2f} p99 {np.percentile(blocks, 99):7.2f} "
              f"RTF p99 {np.percentile(blocks, 99) / block_ms:.3f}")
    if len(results) == 2:
        a, n = results["magenta (adapter)"], results["mrt2 (native)"]
        print(f"adapter / native per frame: p50 x{np.percentile(a, 50) / np.percentile(n, 50):.2f} "
              f"p99 x{np.percentile(a, 99) / np.percentile(n, 99):.2f}")


if __name__ == "__main__":
    main()
