"""Measures of a symbolic checkpoint: ``python -m generator.train.symbolic_eval --model DIR``.

Why beside the trainer: the held-out NLL is the trainer's own loss over the tokenised held-out works
(:mod:`generator.train.symbolic`, :mod:`generator.data.symbolic_tokens`), which the run-time generator
never imports. The helpers that drive the real-time path (:func:`generate_midi`, :func:`play_prompt`,
:func:`notes_of_midi`) also serve the tests and the quality benches.

Prints, and writes as JSON (``--json``):

- **held-out NLL** (nats/token, teacher-forced over windows of the held-out works, with their
  captions, and unconditional);
- **style fidelity of generated music**: for each of ``--works`` held-out works, music is
  generated through the real-time path (``generate`` + ``drain_midi``) prompted with that work's
  caption, and compared with the work's own notes by the L1 distance (total variation x 2, range
  0..2) of the **pitch-class histogram** (12 bins, key-sensitive, since captions name the key) and
  of the **inter-onset-interval histogram** (onsets of all parts merged, 16 log-spaced bins
  10 ms..4 s). Baselines printed beside them: the same work against music generated with a
  *mismatched* caption (another held-out work's) and *unconditionally*; lower than the baselines
  means the prompt steers the notes toward the prompted style;
- **real-time**: generation + synthesis time per 200 ms block as a real-time factor, tokens per
  second, and the event lead time (scheduled time of each note event minus the start of the
  block being rendered when it was generated; negative would mean a late event).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

from generator.core.contract import FRAME_SAMPLES, SAMPLE_RATE, GenerationControls
from generator.symbolic import tokens as tok

IOI_BINS = np.geomspace(0.01, 4.0, 17)


def pitch_class_hist(pitches) -> np.ndarray:
    h = np.bincount(np.asarray(pitches, int) % 12, minlength=12).astype(np.float64)
    return h / max(h.sum(), 1.0)


def ioi_hist(onsets) -> np.ndarray:
    t = np.unique(np.round(np.asarray(onsets, np.float64), 2))
    gaps = np.clip(np.diff(t), IOI_BINS[0], IOI_BINS[-1] * 0.999)
    h = np.histogram(gaps, IOI_BINS)[0].astype(np.float64)
    return h / max(h.sum(), 1.0)


def l1(a, b) -> float:
    return float(np.abs(a - b).sum())


def notes_of_midi(events) -> tuple[list[int], list[float]]:
    """Melodic pitches and all onsets (seconds) of drained ``(abs_sample, bytes)`` MIDI."""
    pitches, onsets = [], []
    for sample, data in events:
        if data[0] & 0xF0 == 0x90 and data[2] > 0:
            onsets.append(sample / SAMPLE_RATE)
            if data[0] & 0x0F != tok.DRUM_CHANNEL:
                pitches.append(data[1])
    return pitches, onsets


def generate_midi(gen, controls: GenerationControls, seconds: float, seed: int, frames: int = 5, example=None):
    """Run the real-time path for ``seconds``; returns (events, block times [s], leads [samples], tokens).
    ``example``: a path stem to also write ``.wav`` and ``.mid`` of the result."""
    state = gen.init_state(seed)
    gen.drain_midi()
    events, times, audio = [], [], []
    blocks = int(np.ceil(seconds * 25 / frames))
    for i in range(blocks):
        t0 = time.perf_counter()
        a, state = gen.generate(state, controls, frames)
        times.append(time.perf_counter() - t0)
        base = i * frames * FRAME_SAMPLES
        events += [(base + off, d) for off, d in gen.drain_midi()]
        if example is not None:
            audio.append(a)
    leads, tokens = np.asarray(state.leads), state.tokens
    gen.init_state(0)  # end the notes still sounding (their note-offs close the MIDI file)
    events += [(blocks * frames * FRAME_SAMPLES, d) for _, d in gen.drain_midi()]
    if example is not None:
        import soundfile

        soundfile.write(f"{example}.wav", np.concatenate(audio), SAMPLE_RATE)
        tok.write_midi(events, f"{example}.mid")
    return events, np.asarray(times), leads, tokens


def play_prompt(gen, prompt: str, seconds: float, seed: int) -> list:
    """The MIDI events of ``seconds`` of one prompt at the model's own default guidance (real-time path)."""
    controls = GenerationControls(prompts=((prompt, 1.0),), guidance=gen.control_defaults["guidance"])
    return generate_midi(gen, controls, seconds, seed)[0]


def heldout_nll(model, config, held, vecs, batch=16, max_batches=24) -> tuple[float, float]:
    import jax
    from flax import nnx

    from generator.train.symbolic import evaluate, heldout_batches, loss_fn

    graph, params = nnx.split(model)
    fn = jax.jit(lambda p, x, s, u: loss_fn(nnx.merge(graph, p), x, s, u))
    batches = heldout_batches(held, config.window + 1, batch, max_batches)
    return evaluate(fn, params, batches, vecs, True), evaluate(fn, params, batches, vecs, False)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m generator.train.symbolic_eval", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="symbolic", help="preset name or checkpoint directory")
    ap.add_argument("--heldout", default="runs/symbolic/heldout.npz")
    ap.add_argument("--works", type=int, default=8, help="held-out works to prompt with")
    ap.add_argument("--seconds", type=float, default=20.0, help="music generated per prompt")
    ap.add_argument("--soundfont", default=None)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-k", type=int, default=40)
    ap.add_argument("--json", default=None)
    ap.add_argument("--examples", default=None, help="directory for .wav/.mid of the prompted generations")
    args = ap.parse_args(argv)
    from tqdm import tqdm

    from generator.data.symbolic_tokens import TokenSet
    from generator.symbolic.system import load
    from generator.train.symbolic import text_vectors

    gen = load(args.model, soundfont=args.soundfont)
    gen.warmup()
    held = TokenSet(args.heldout)
    vecs = text_vectors(held, pathlib.Path(args.heldout).with_suffix(".text.npy"))
    out = {"model": args.model, "config": gen.config.to_dict(), "train": gen.meta.get("train", {})}
    nll, nll_u = heldout_nll(gen.model, gen.config, held, vecs)
    out["heldout_nll"], out["heldout_nll_uncond"] = nll, nll_u
    print(f"held-out NLL: {nll:.4f} nats/token with captions, {nll_u:.4f} unconditional "
          f"({len(held)} works, {len(held.tokens)} tokens)")

    rng = np.random.default_rng(0)
    # works with enough notes, spread over the collections
    order = [i for i in rng.permutation(len(held)) if len(held.work(i)) > 400][: args.works]
    rows, times, leads, tokens, seconds = [], [], [], 0, 0.0
    kw = dict(guidance=args.guidance, temperature=args.temperature, top_k=args.top_k)
    for j, i in enumerate(tqdm(order, desc="generate per held-out style")):
        ref_notes = tok.tokens_to_notes(held.work(i))
        ref_notes = [n for n in ref_notes if n.start < 60.0]
        ref_pc = pitch_class_hist([n.pitch for n in ref_notes if n.part != tok.DRUM_PART])
        ref_ioi = ioi_hist([n.start for n in ref_notes])
        caption = held.texts[held.caption_ids[i, 0]]
        other = held.texts[held.caption_ids[order[(j + 1) % len(order)], 0]]
        row = {"work": held.work_ids[i], "caption": caption}
        for name, prompts in (("prompted", ((caption, 1.0),)), ("mismatched", ((other, 1.0),)), ("uncond", ())):
            stem = None
            if args.examples and name == "prompted":
                pathlib.Path(args.examples).mkdir(parents=True, exist_ok=True)
                stem = str(pathlib.Path(args.examples) / f"{j:02d}-{held.work_ids[i].replace('/', '_')}")
            ev, t, ld, nt = generate_midi(gen, GenerationControls(prompts=prompts, **kw), args.seconds, seed=j,
                                          example=stem)
            pitches, onsets = notes_of_midi(ev)
            row[name] = {"pc_l1": l1(pitch_class_hist(pitches), ref_pc), "ioi_l1": l1(ioi_hist(onsets), ref_ioi),
                         "notes": len(onsets)}
            times.append(t)
            leads.append(ld)
            tokens += nt
            seconds += len(t) * 0.2
        rows.append(row)
    out["works"] = rows
    for name in ("prompted", "mismatched", "uncond"):
        pc = float(np.mean([r[name]["pc_l1"] for r in rows]))
        ioi = float(np.mean([r[name]["ioi_l1"] for r in rows]))
        out[f"{name}_pc_l1"], out[f"{name}_ioi_l1"] = pc, ioi
        print(f"{name:>10}: pitch-class L1 {pc:.3f}   IOI L1 {ioi:.3f}   (mean over {len(rows)} held-out works)")
    t = np.concatenate(times) / 0.2
    ld = np.concatenate(leads) / SAMPLE_RATE * 1e3
    out["rtf"] = {q: float(np.percentile(t, int(q[1:]))) for q in ("p50", "p95", "p99")}
    out["tokens_per_second"] = tokens / seconds
    out["lead_ms"] = {"min": float(ld.min()), "p1": float(np.percentile(ld, 1)), "p50": float(np.percentile(ld, 50)),
                      "p99": float(np.percentile(ld, 99))}
    print(f"real time (1 stream, generation + FluidSynth, 200 ms blocks): RTF p50 {out['rtf']['p50']:.3f} "
          f"p95 {out['rtf']['p95']:.3f} p99 {out['rtf']['p99']:.3f}; "
          f"{out['tokens_per_second']:.0f} tokens per second of music")
    print(f"event lead time (ms): min {ld.min():.1f} p1 {out['lead_ms']['p1']:.1f} p50 {out['lead_ms']['p50']:.1f} "
          f"p99 {out['lead_ms']['p99']:.1f}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
