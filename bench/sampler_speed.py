"""What one token costs in the event models' samplers (``groove``, ``symbolic``), and where the time goes.

Why: a control change makes the groove stream re-sample what has not been heard yet, so the block that follows
costs as many tokens as the music ahead of the play position needs (a dense downbeat: 30-60); that block's
compute is what ``--latency low`` has to hide. The per-token cost therefore bounds the latency, and it moved
with the machine and the jaxlib (0.5 ms on one 2-core VM, 2-3.5 ms on another with jaxlib 0.10's YNNPACK dot
fusions and a KV cache that XLA transposed every step), so it gets a bench of its own.

Timings on a shared VM drift by 30 % from one process to the next, so every variant is compiled in the *same*
process and the rounds alternate between them; the table prints each variant's median over rounds of the
per-chunk median. Variants: the sampler as the system compiles it (``shipped``), and the same function with
XLA's default CPU options (``xla-defaults``: YNNPACK fusions on).

    .venv/bin/python bench/sampler_speed.py                      # groove, 8 rounds
    .venv/bin/python bench/sampler_speed.py --model symbolic
    .venv/bin/python bench/sampler_speed.py --profile            # + the costliest XLA ops of one variant
    .venv/bin/python bench/sampler_speed.py --blocks 1200        # + 40 ms blocks, a knob turned every 8th
    .venv/bin/python bench/sampler_speed.py --blocks 4000 --lookahead-ticks 1,0   # how far past a block to sample

``--blocks`` also times what the daemon sees: ``generate`` in 40 ms blocks with the temperature changed every 8th
block; the blocks after a change carry the re-sampling (compare with the ``low`` setting's 80 ms pre-buffer).
It uses only ``generate``, so it runs against older commits too (``PYTHONPATH=<worktree>``).
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

PROMPT = "upbeat funk groove with bass and drums"


def sampler_args(system, controls):
    """The positional arguments of the system's compiled sampler for a fresh stream under ``controls``."""
    state = system.init_state(0)
    vec = system.bank.blend(controls.prompts)
    style = jnp.asarray(np.zeros((system.config.style_dim,), np.float32) if vec is None else vec)
    params = system._leaves if hasattr(system, "_leaves") else system._params
    common = (params, state.model, style, jnp.bool_(vec is not None), jnp.float32(controls.guidance),
              jnp.float32(controls.temperature), jnp.int32(controls.top_k))
    if hasattr(system, "biases"):  # groove: (part bias, pitch bias), forced tokens, how many
        return common + (system.biases(vec, (), None), jnp.zeros(system.chunk, jnp.int32), jnp.int32(0))
    heads = system._heads(vec)  # symbolic: part bias, pitch bias
    return common + (heads.part_bias, heads.pitch_bias)


def time_chunks(fn, args, chunks: int) -> list[float]:
    """Milliseconds per chunk over ``chunks`` consecutive chunks of one stream."""
    out, state = [], jax.tree.map(jnp.copy, args[1])  # a fresh copy: the symbolic sampler donates its state
    for _ in range(chunks):
        call = list(args)
        call[1] = state
        t = time.perf_counter()
        toks, state = fn(*call)
        jax.block_until_ready(toks)
        out.append((time.perf_counter() - t) * 1e3)
    return out


def top_ops(fn, args, chunks: int, n: int = 15) -> list[tuple[str, float, int]]:
    """The ``n`` XLA ops with the most time over ``chunks`` chunks (name, ms per chunk, calls per chunk)."""
    with tempfile.TemporaryDirectory() as d:
        jax.profiler.start_trace(d)
        time_chunks(fn, args, chunks)
        jax.profiler.stop_trace()
        trace = sorted(glob.glob(f"{d}/**/*.trace.json.gz", recursive=True))[-1]
        events = json.load(gzip.open(trace))["traceEvents"]
    total, calls = collections.Counter(), collections.Counter()
    for e in events:
        name = e.get("name", "")
        if e.get("ph") == "X" and not name.startswith(("$", "Thunk", "Pjit", "Common")):
            total[name] += e["dur"]
            calls[name] += 1
    return [(k, v / 1e3 / chunks, calls[k] // chunks) for k, v in total.most_common(n)]


def change_blocks(system, controls, blocks: int, every: int = 8, frames: int = 1, seed: int = 0,
                  tokens: list | None = None):
    """The real-time path as the daemon drives it: ``blocks`` blocks of ``frames`` frames (1 = 40 ms, the
    ``low`` setting), the temperature changed every ``every`` blocks (a knob; each change re-samples what is not
    yet heard). Returns (ms of the blocks with a change, ms of the others); ``tokens`` collects what each block
    with a change sampled."""
    import dataclasses

    rng = np.random.default_rng(seed)
    system.warmup()  # as the daemon does: nothing compiles in a timed block
    state = system.init_state(seed)
    for _ in range(50):  # past the start-up's first bars
        _, state = system.generate(state, controls, frames)
    changed, calm = [], []
    for i in tqdm(range(blocks), desc="blocks", leave=False):
        if i % every == 0:
            controls = dataclasses.replace(controls, temperature=float(rng.uniform(0.6, 1.3)))
        t = time.perf_counter()
        _, state = system.generate(state, controls, frames)
        (changed if i % every == 0 else calm).append((time.perf_counter() - t) * 1e3)
        if i % every == 0 and tokens is not None:
            tokens.append(int((getattr(system, "last_block", None) or {}).get("tokens", 0)))
        system.drain_midi()
    return changed, calm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="groove", help="groove | symbolic | a checkpoint directory")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--chunks", type=int, default=30, help="chunks per round and variant")
    ap.add_argument("--profile", action="store_true", help="print the costliest XLA ops of the shipped sampler")
    ap.add_argument("--blocks", type=int, default=0,
                    help="also time this many 40 ms blocks of the real-time path, a knob turned every 8th")
    ap.add_argument("--lookahead-ticks", default="",
                    help="with --blocks: compare these settings of how far past a block's end its notes must be "
                         "sampled (e.g. 1,0), alternating rounds in this process")
    a = ap.parse_args()

    from generator import load
    from generator.core.contract import GenerationControls

    system = load(a.model)
    controls = GenerationControls(prompts=((PROMPT, 1.0),), guidance=3.0)
    args = sampler_args(system, controls)
    variants = {"shipped": system._sample, "xla-defaults": jax.jit(system._sample_fn)}
    for fn in variants.values():
        time_chunks(fn, args, 1)  # compile
    per = {k: [] for k in variants}
    for _ in tqdm(range(a.rounds), desc="rounds", leave=False):
        for k, fn in variants.items():
            per[k].append(float(np.median(time_chunks(fn, args, a.chunks))))
    cfg = system.config
    print(f"{a.model}: d {cfg.d_model}, {cfg.layers} layers, window {cfg.window}, chunk {system.chunk} tokens, "
          f"batch 2 (CFG); {a.rounds} rounds x {a.chunks} chunks, alternating")
    print(f"{'variant':14s} {'ms/chunk':>9s} {'ms/token':>9s}   rounds (ms/chunk)")
    for k, v in per.items():
        med = float(np.median(v))
        print(f"{k:14s} {med:9.1f} {med / system.chunk:9.2f}   {' '.join(f'{x:.1f}' for x in v)}")
    print(f"shipped / xla-defaults: {np.median(per['shipped']) / np.median(per['xla-defaults']):.2f}")
    if a.blocks and a.lookahead_ticks:
        settings = [float(x) for x in a.lookahead_ticks.split(",")]
        res = {v: ([], [], []) for v in settings}
        for r in tqdm(range(a.rounds), desc="lookahead rounds", leave=False):
            for v in settings:
                system.lookahead_ticks = v
                ch, ca = change_blocks(system, controls, a.blocks // a.rounds, seed=r, tokens=res[v][2])
                res[v][0].extend(ch)
                res[v][1].extend(ca)
        for v, (ch, ca, tok) in res.items():
            print(f"lookahead {v:g} tick(s): 40 ms blocks after a change ({len(ch)}): p50 {np.percentile(ch, 50):6.1f}  "
                  f"p90 {np.percentile(ch, 90):6.1f}  p99 {np.percentile(ch, 99):6.1f}  p99.5 "
                  f"{np.percentile(ch, 99.5):6.1f}  max {max(ch):6.1f} ms; tokens p50 {np.percentile(tok, 50):.0f} "
                  f"p99 {np.percentile(tok, 99):.0f}; other blocks p99 {np.percentile(ca, 99):6.1f} ms")
    elif a.blocks:
        changed, calm = change_blocks(system, controls, a.blocks)
        for name, ms in (("after a change", changed), ("other blocks", calm)):
            print(f"40 ms blocks, {name:15s} ({len(ms):4d}): p50 {np.percentile(ms, 50):6.1f}  "
                  f"p90 {np.percentile(ms, 90):6.1f}  p99 {np.percentile(ms, 99):6.1f}  max {max(ms):6.1f} ms")
    if a.profile:
        print("\ncostliest XLA ops of the shipped sampler (ms per chunk, calls per chunk):")
        for name, ms, n in top_ops(system._sample, args, a.chunks):
            print(f"  {ms:7.2f} ms {n:5d}x  {name}")


if __name__ == "__main__":
    main()
