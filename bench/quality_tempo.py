"""Does the symbolic model play at the tempo its prompt asks for? With and without its tempo head.

Prompts are the held-out works' captions with their numbers removed ("upbeat jazz with drums and
walking bass, in F major": the tempo is in the words only), so neither the model nor the head has
seen them. Each is played for ``--seconds`` through the real-time path (the daemon's ``generate``)
and the tempo of its note onsets is estimated (:func:`generator.train.heads.tempo.estimate_bpm`, which
on the real held-out works finds the stated tempo within 8 % in 63 % of works). Printed per setting:
- within 8 %: the estimated tempo is the caption's (chance-level is what "off" shows);
- log-corr: correlation of log estimated tempo with log caption tempo;
- word pairs: for 10 styles, "fast <style>" against "slow <style>" with 2 seeds each, how often the
  fast one plays more notes per second (what a listener hears first as "faster"; 50 % is chance);
- the issue's named prompts and fast/slow word pairs: estimated BPM.

    .venv/bin/python bench/quality_tempo.py --works 60 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_heldout_args  # noqa: E402

PAIRS = (("fast swing jazz with brushed drums and walking bass", "gentle solo piano lullaby"),
         ("fast rock with drums and electric guitar", "slow rock with drums and electric guitar"),
         ("upbeat bossa nova", "slow bossa nova"),
         ("energetic funk with slap bass and drums", "a slow sad ballad with drums"))


STYLES = ("swing jazz with drums", "rock with electric guitar and drums", "bossa nova", "irish fiddle tune",
          "piano waltz", "funk with slap bass", "country with acoustic guitar", "reggae", "march with brass",
          "string quartet")


def play(gen, prompt: str, seconds: float, seed: int, rate: bool = False):
    """(estimated BPM, playback speed) of ``seconds`` of ``prompt``; with ``rate``, note-ons per second."""
    from generator.train.heads.tempo import estimate_bpm
    from generator.train.symbolic_eval import notes_of_midi, play_prompt

    _, onsets = notes_of_midi(play_prompt(gen, prompt, seconds, seed))
    if rate:
        return len(onsets) / seconds
    return estimate_bpm(onsets), gen.speed_for(((prompt, 1.0),))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_heldout_args(p)
    args = p.parse_args(argv)
    from tqdm import tqdm

    from generator.data.symbolic_tokens import TokenSet
    from generator.symbolic.system import load
    from generator.train.heads.tempo import caption_bpm, number_free

    gen = load(args.model)
    gen.warmup()
    head = gen.tempo
    if head is None:
        print(f"{args.model} has no tempo head: only the 'off' rows are measured")
    held = TokenSet(args.heldout)
    bpm = caption_bpm(held)
    order = np.random.default_rng(0).permutation(len(held))[:args.works]
    prompts = [number_free(held.texts[held.caption_ids[i, 0]]) for i in order]
    result = {}
    for setting in ("off", "on") if head is not None else ("off",):
        gen.tempo = head if setting == "on" else None
        est, speeds = [], []
        for k, text in enumerate(tqdm(prompts, desc=f"tempo head {setting}", unit="prompt")):
            e, s = play(gen, text, args.seconds, seed=k % 3)
            est.append(e), speeds.append(s)
        est, truth = np.asarray(est), bpm[order]
        ok = ~np.isnan(est)
        ratio = np.log(est[ok] / truth[ok])
        named = {a: play(gen, a, args.seconds, 0)[0] for pair in PAIRS for a in pair}
        faster = [play(gen, f"fast {s}", args.seconds, seed, rate=True) > play(gen, f"slow {s}", args.seconds, seed, rate=True)
                  for s in STYLES for seed in (0, 1)]
        result[setting] = {"prompts": int(ok.sum()), "within_8pct": float((np.abs(ratio) < math.log(1.08)).mean()),
                           "log_corr": float(np.corrcoef(np.log(est[ok]), np.log(truth[ok]))[0, 1]),
                           "median_abs_error_pct": float(np.median(np.abs(np.exp(ratio) - 1)) * 100),
                           "speed_range": [float(min(speeds)), float(max(speeds))], "named": named,
                           "fast_word_plays_more_notes": float(np.mean(faster))}
    print(f"{len(prompts)} held-out captions without numbers, {args.seconds:.0f} s each, seeds 0-2")
    print(f"{'head':5s} {'within 8 %':>10s} {'log-corr':>9s} {'median |err|':>13s} {'fast > slow':>12s}  speeds")
    for setting, r in result.items():
        print(f"{setting:5s} {r['within_8pct'] * 100:9.0f}% {r['log_corr']:9.2f} {r['median_abs_error_pct']:12.0f}%"
              f" {r['fast_word_plays_more_notes'] * 100:11.0f}%  {r['speed_range'][0]:.2f}-{r['speed_range'][1]:.2f}")
    print("estimated BPM of named prompts (seed 0):")
    for a, b in PAIRS:
        cells = "  ".join(f"{s}: {r['named'][a]:.0f} / {r['named'][b]:.0f}" for s, r in result.items())
        print(f"  {a!r} / {b!r}: {cells}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
