"""Benchmark of the symbolic generator in real time: headroom, event lead time, control latency.

Why a script: it runs the daemon's exact call sequence (``generate`` then ``drain_midi`` per
200 ms block) for minutes of audio while switching prompts and controls, and prints numbers:

- real-time factor per block (generation + FluidSynth synthesis + MIDI bookkeeping), p50/p99/max;
- event lead time: scheduled time of each note event minus the first sample of the block being
  rendered when the event was generated (must never be negative: no event is ever late);
- control latency in audio time: at each control change, how far the already-committed events
  reach past the start of the block that first sees the change (events before that horizon were
  generated under the old controls). Add the daemon's pre-buffer (``--prebuffer``, 0.3 s) for
  the latency a listener hears;
- MIDI hygiene: every note-on paired with one note-off, none left sounding after a reset.

    .venv/bin/python bench/bench_symbolic.py --model symbolic --seconds 600
"""

from __future__ import annotations

import argparse
import collections
import resource
import time

import numpy as np
from tqdm import tqdm

from generator.core.contract import FRAME_SAMPLES, SAMPLE_RATE, GenerationControls
from generator.symbolic import tokens as tok

PROMPTS = ["bossa nova with nylon guitar and brushed drums", "fast swing jazz with walking bass and piano",
           "church organ chorale, slow", "upbeat rock with distorted guitar and punchy drums",
           "retro video game music with synth lead", "irish fiddle tune", "funk with slap bass and electric piano",
           "string quartet, moderate"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="symbolic")
    ap.add_argument("--soundfont", default=None)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--block", type=int, default=5, help="frames per generate call (5 = 200 ms)")
    ap.add_argument("--change-every", type=float, default=5.0, help="seconds between control changes")
    ap.add_argument("--reset-every", type=float, default=60.0)
    args = ap.parse_args()
    from generator.symbolic.system import load

    t0 = time.perf_counter()
    gen = load(args.model, soundfont=args.soundfont)
    gen.warmup(frames=args.block)
    print(f"model {gen.describe()}: loaded + warmed up in {time.perf_counter() - t0:.1f} s")
    rng = np.random.default_rng(0)
    block_s = args.block / 25
    blocks = int(args.seconds / block_s)
    change_every = max(1, int(args.change_every / block_s))
    reset_every = max(1, int(args.reset_every / block_s))
    controls = GenerationControls(prompts=((PROMPTS[0], 1.0),))
    state = gen.init_state(0)
    gen.drain_midi()
    times, latency, midi = [], [], []
    compiles = gen.compile_count()
    for i in tqdm(range(blocks), desc="blocks"):
        start = i * args.block * FRAME_SAMPLES
        if i and i % reset_every == 0:
            state = gen.init_state(i)
        if i and i % change_every == 0:
            a, b = rng.choice(len(PROMPTS), 2, replace=False)
            w = float(rng.uniform(0.2, 1.0))
            controls = GenerationControls(prompts=((PROMPTS[a], w), (PROMPTS[b], 1 - w)),
                                          guidance=float(rng.uniform(1.0, 5.0)),
                                          temperature=float(rng.uniform(0.7, 1.2)), top_k=int(rng.integers(10, 100)))
            latency.append((state.timemap.sample(state.decoder.step) - state.position) / SAMPLE_RATE * 1e3)
        t = time.perf_counter()
        _, state = gen.generate(state, controls, args.block)
        events = gen.drain_midi()
        times.append(time.perf_counter() - t)
        midi += [(start + off, d) for off, d in events]
    final = gen.init_state(0)
    midi += [(blocks * args.block * FRAME_SAMPLES, d) for _, d in gen.drain_midi()]
    rtf = np.asarray(times) / block_s
    leads = np.asarray(state.leads) / SAMPLE_RATE * 1e3
    print(f"audio {blocks * block_s:.0f} s in {sum(times):.1f} s; RTF per block p50 {np.percentile(rtf, 50):.3f} "
          f"p99 {np.percentile(rtf, 99):.3f} max {rtf.max():.3f} (headroom x{1 / np.percentile(rtf, 99):.1f} at p99)")
    print(f"tokens {state.tokens + 0} in the last stream segment; guard clock moves {state.forced}; "
          f"recompiles after warm-up: {gen.compile_count() - compiles}")
    print(f"event lead time ms (last stream segment, {len(leads)} events): min {leads.min():.1f} "
          f"p1 {np.percentile(leads, 1):.1f} p50 {np.percentile(leads, 50):.1f} p99 {np.percentile(leads, 99):.1f}")
    if latency:
        lat = np.asarray(latency)
        print(f"control latency ms (audio time past the block start; + daemon pre-buffer): "
              f"p50 {np.percentile(lat, 50):.0f} p99 {np.percentile(lat, 99):.0f} max {lat.max():.0f}")
    sounding, bad, ons = collections.Counter(), 0, 0
    for _, d in sorted(midi, key=lambda e: e[0]):
        key = (d[0] & 0x0F, d[1])
        if d[0] & 0xF0 == 0x90:
            bad += sounding[key] != 0
            sounding[key] += 1
            ons += 1
        elif d[0] & 0xF0 == 0x80:
            bad += sounding[key] != 1
            sounding[key] -= 1
    print(f"MIDI: {ons} note-ons, unpaired {bad}, sounding after the final reset {sum(v != 0 for v in sounding.values())}; "
          f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    del final


if __name__ == "__main__":
    main()
