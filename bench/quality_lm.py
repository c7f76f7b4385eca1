"""Quality of a generator's music, measured with jamgen's trained style model (issue 5's LM evaluation).

Why a style-model judge: "does the music follow the prompt" needs a listener that knows both words and
audio; the trained MusicCoCa-like style model (text and audio in one space) is that listener, and it is
the same judge for every generator, so the native ``tiny`` LM and the ``symbolic`` generator can be
compared on one scale. Its own accuracy bounds what these numbers can show: see
``bench/quality_style.py`` (held-out text-to-audio retrieval) before reading them.

Sections (``--sections``, default all that apply):

* ``ce``: held-out token cross-entropy per RVQ level, with the clip's style and with the style masked
  (native checkpoints only; needs the LM run's ``tokens_heldout.npz``, ``--tokens``).
* ``adherence``: each of 20 contrasting prompts is generated (``--seconds``) at several guidance weights;
  the generated clip's audio embedding retrieves its own prompt among the 20 (top-1 / top-3, chance
  5% / 15%), and for each contrasting *pair* the clip must be closer to its own prompt than to the
  pair's other prompt (chance 50%).
* ``named``: the issue's own check, "fast swing jazz with brushed drums and walking bass" against
  "gentle solo piano lullaby", 10 s renders, both directions, 3 seeds, at the model's default guidance.
* ``diversity``: pairwise style-embedding distance between seeds of one prompt, per temperature.
* ``long``: one ``--long-minutes`` generation: silence, clipping, loudness drift per minute.

    .venv/bin/python bench/quality_lm.py --model generator/checkpoints/tiny
    .venv/bin/python bench/quality_lm.py --model symbolic --sections adherence,long
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from generator.core.contract import FRAME_SAMPLES, SAMPLE_RATE, GenerationControls  # noqa: E402

# Ten contrasting pairs (genre, instrumentation, tempo, drums or not), in plain musicians' words.
PAIRS = [
    ("fast swing jazz with brushed drums and walking bass", "gentle solo piano lullaby"),
    ("hard rock with distorted electric guitar and loud drums", "slow string quartet"),
    ("latin bossa nova with nylon guitar", "church organ hymn"),
    ("funky disco groove with slap bass", "quiet flute melody without drums"),
    ("country shuffle with banjo and fiddle", "ambient synth pad drone"),
    ("marching band with brass and snare", "harp arpeggios"),
    ("fast techno beat", "slow sad cello"),
    ("reggae with offbeat guitar chords", "baroque harpsichord"),
    ("big band swing with trumpets and saxophones", "music box melody"),
    ("heavy metal", "calm acoustic guitar folk song"),
]
PROMPTS = [p for pair in PAIRS for p in pair]


def _unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-8)


class Judge:
    """The trained style model of a native checkpoint, used only to embed text and audio."""

    def __init__(self, checkpoint_dir: str):
        from generator.audio.system import load

        self.system = load(checkpoint_dir)

    def text(self, texts):
        return _unit(np.stack([self.system.embed_style(t) for t in texts]))

    def audio(self, audio_48k):
        return _unit(self.system.embed_style(audio_48k))


def render(gen, prompt, seconds, guidance=None, temperature=None, seed=0, block_frames=25):
    kw = {}
    if guidance is not None:
        kw["guidance"] = guidance
    if temperature is not None:
        kw["temperature"] = temperature
    defaults = getattr(gen, "control_defaults", {}) or {}
    base = {k: v for k, v in defaults.items() if k in ("guidance", "temperature", "top_k")}
    controls = GenerationControls(prompts=((prompt, 1.0),) if prompt else (), seed=seed, **{**base, **kw})
    state = gen.init_state(seed)
    frames = int(round(seconds * SAMPLE_RATE / FRAME_SAMPLES))
    out = []
    while frames > 0:
        n = min(block_frames, frames)
        audio, state = gen.generate(state, controls, n)
        out.append(np.asarray(audio))
        frames -= n
    return np.concatenate(out)


def section_ce(model_dir, tokens_path):
    import jax.numpy as jnp

    from generator.audio.system import load
    from generator.train.lm import evaluate, heldout_windows

    system = load(model_dir)
    tokens = dict(np.load(tokens_path))
    held = heldout_windows(tokens, 64, count=64)
    r = evaluate(system.lm, (jnp.asarray(held[0]), jnp.asarray(held[1])))
    return {"heldout_windows": 64, "frames": 64, **r,
            "uniform": float(np.log(system.config.lm.codebook_size))}


def section_adherence(gen, judge, seconds, guidances, seeds=1):
    """Per guidance: top-1/top-3 retrieval of each clip's own prompt among the 20, and pair accuracy,
    averaged over ``seeds`` renders of every prompt (one seed is +-10 points of noise)."""
    texts = judge.text(PROMPTS)
    n = len(PROMPTS)
    rows = []
    for g in guidances:
        top1, top3, pair_ok, spread, clips = [], [], [], [], []
        for seed in range(seeds):
            embs = np.stack([judge.audio(render(gen, p, seconds, guidance=g, seed=i + 1000 * seed))
                             for i, p in enumerate(PROMPTS)])
            sims = embs @ texts.T  # [clip, prompt]
            rank = (sims > sims[np.arange(n), np.arange(n)][:, None]).sum(1)
            top1 += list(rank == 0)
            top3 += list(rank < 3)
            clips += [{"prompt": PROMPTS[i], "seed": i + 1000 * seed, "rank": int(rank[i]),
                       "heard_as": PROMPTS[int(np.argmax(sims[i]))]} for i in range(n)]
            for k in range(len(PAIRS)):
                a, b = 2 * k, 2 * k + 1
                pair_ok += [sims[a, a] > sims[a, b], sims[b, b] > sims[b, a]]
                spread.append(1 - embs[a] @ embs[b])
        rows.append({"guidance": g, "top1": float(np.mean(top1)), "top3": float(np.mean(top3)),
                     "pair_accuracy": float(np.mean(pair_ok)), "pair_audio_distance": float(np.mean(spread)),
                     "clips": len(top1), "per_clip": clips})
        print(f"  guidance {g}: top-1 {rows[-1]['top1']:.2f} top-3 {rows[-1]['top3']:.2f} "
              f"pairs {rows[-1]['pair_accuracy']:.2f} (pair audio 1-cos {rows[-1]['pair_audio_distance']:.3f}, "
              f"{len(top1)} clips)", flush=True)
    return {"prompts": n, "seeds": seeds, "seconds": seconds, "chance_top1": 1 / n,
            "chance_top3": 3 / n, "chance_pairs": 0.5, "rows": rows}


def section_named(gen, judge, seeds=3, seconds=10.0, guidance=None):
    """The issue's acceptance check on its own pair, over a few seeds: each render's audio embedding
    must be closer to its own prompt than to the other one (both directions)."""
    a, b = PAIRS[0]
    ta, tb = judge.text([a, b])
    rows = []
    for seed in range(seeds):
        ea = judge.audio(render(gen, a, seconds, guidance=guidance, seed=seed))
        eb = judge.audio(render(gen, b, seconds, guidance=guidance, seed=seed))
        rows.append({"seed": seed, "jazz_closer_to_jazz": bool(ea @ ta > ea @ tb),
                     "lullaby_closer_to_lullaby": bool(eb @ tb > eb @ ta),
                     "render_distance": float(1 - ea @ eb)})
        print(f"  seed {seed}: {json.dumps(rows[-1])}", flush=True)
    ok = [r["jazz_closer_to_jazz"] for r in rows] + [r["lullaby_closer_to_lullaby"] for r in rows]
    return {"pair": [a, b], "seconds": seconds, "rows": rows, "directions_right": float(np.mean(ok))}


def section_diversity(gen, judge, seconds, temperatures, seeds=4):
    prompt = PAIRS[0][0]
    rows = []
    for t in temperatures:
        embs = np.stack([judge.audio(render(gen, prompt, seconds, temperature=t, seed=100 + s))
                         for s in range(seeds)])
        d = [1 - embs[i] @ embs[j] for i in range(seeds) for j in range(i + 1, seeds)]
        rows.append({"temperature": t, "pairwise_style_distance": float(np.mean(d))})
        print(f"  temperature {t}: seed-to-seed style distance {np.mean(d):.4f}", flush=True)
    return {"prompt": prompt, "seeds": seeds, "seconds": seconds, "rows": rows}


def section_long(gen, minutes):
    audio = render(gen, PAIRS[0][0], minutes * 60, seed=7)
    sec = audio.reshape(-1, SAMPLE_RATE, audio.shape[-1])
    rms_db = 20 * np.log10(np.sqrt((sec ** 2).mean((1, 2))) + 1e-9)
    per_min = [float(np.mean(rms_db[i:i + 60])) for i in range(0, len(rms_db), 60)]
    side = audio[:, 0] - audio[:, 1]
    return {"minutes": minutes, "silent_seconds": int((rms_db < -60).sum()),
            "clipped_fraction": float((np.abs(audio) >= 0.999).mean()),
            "peak": float(np.abs(audio).max()), "rms_db_per_minute": [round(v, 2) for v in per_min],
            "drift_db": round(per_min[-1] - per_min[0], 2),
            "side_to_mid_db": float(10 * np.log10((side ** 2).mean() / ((audio.sum(1) / 2) ** 2).mean() + 1e-12))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="generator/checkpoints/tiny", help="generator spec (as jamgen run --model)")
    p.add_argument("--judge", default="generator/checkpoints/tiny",
                   help="native checkpoint whose trained style model embeds text and audio")
    p.add_argument("--sections", default="ce,adherence,named,diversity,long")
    p.add_argument("--tokens", default="runs/lm/tokens_heldout.npz")
    # The judge embeds whole 10 s clips (generator.audio.style.clips_of), zero-padding a shorter one: at 8 s the
    # same renders scored top-1 26 % against 41 % at 10 s (groove, 4 seeds), so clips are the judge's length.
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--guidance", default="0,1,2,3", help="guidance weights for adherence")
    p.add_argument("--seeds", type=int, default=1, help="renders per prompt for adherence")
    p.add_argument("--temperature", default="0.7,1.0,1.3")
    p.add_argument("--long-minutes", type=float, default=5.0)
    p.add_argument("--json", help="write the results here")
    a = p.parse_args(argv)
    import generator

    sections = a.sections.split(",")
    out = {"model": a.model, "judge": a.judge}
    t0 = time.time()
    if "ce" in sections and pathlib.Path(a.model).is_dir() and pathlib.Path(a.tokens).is_file():
        out["ce"] = section_ce(a.model, a.tokens)
        print("held-out CE:", json.dumps(out["ce"]), flush=True)
    gen = generator.load(a.model)
    if hasattr(gen, "warmup"):
        gen.warmup()
    judge = Judge(a.judge) if {"adherence", "diversity", "named"} & set(sections) else None
    if "adherence" in sections:
        print("adherence (20 prompts):", flush=True)
        out["adherence"] = section_adherence(gen, judge, a.seconds, [float(g) for g in a.guidance.split(",")],
                                             a.seeds)
    if "named" in sections:
        print("the issue's pair:", flush=True)
        out["named"] = section_named(gen, judge)
    if "diversity" in sections:
        print("diversity:", flush=True)
        out["diversity"] = section_diversity(gen, judge, a.seconds, [float(t) for t in a.temperature.split(",")])
    if "long" in sections:
        out["long"] = section_long(gen, a.long_minutes)
        print("long generation:", json.dumps(out["long"]), flush=True)
    out["seconds_taken"] = round(time.time() - t0, 1)
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
