"""Does the symbolic model play in the key its prompt names? With and without its pitch head.

Prompts are the held-out works' captions with their numbers removed ("moderate jazz with drums and
walking bass, in F major"); neither the model nor the head has seen them. Each is played for
``--seconds`` through the real-time path, and the key of the melodic notes (drums excluded) is named
by :func:`generator.train.heads.pitch.key_of` (Krumhansl-Kessler; on the real held-out works it names
the caption's key in 65 % of works, which is the ceiling here). Printed per setting: how often the
generated key is the caption's key (chance about 4 %), its tonic, and its mode; and the mean L1
distance between the generated pitch-class distribution and the held-out work's own.

    .venv/bin/python bench/quality_pitch.py --works 60 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_heldout_args  # noqa: E402


def played_pitch_classes(gen, prompt: str, seconds: float, seed: int) -> np.ndarray:
    from generator.symbolic import tokens as tok
    from generator.train.symbolic_eval import play_prompt

    out = np.zeros(12)
    for _, d in play_prompt(gen, prompt, seconds, seed):
        if d[0] & 0xF0 == 0x90 and d[2] > 0 and d[0] & 0x0F != tok.DRUM_CHANNEL:
            out[d[1] % 12] += 1
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_heldout_args(p)
    p.add_argument("--strength", type=float, action="append", help="also try these head strengths")
    args = p.parse_args(argv)
    from tqdm import tqdm

    from generator.data.symbolic_tokens import TokenSet
    from generator.symbolic.pitch import PitchHead
    from generator.symbolic.system import load
    from generator.train.heads.pitch import key_of, parse_key, pitch_classes
    from generator.train.heads.tempo import number_free

    gen = load(args.model)
    gen.warmup()
    head = gen.pitch
    held = TokenSet(args.heldout)
    order = [i for i in np.random.default_rng(0).permutation(len(held))
             if parse_key(held.texts[held.caption_ids[i, 0]]) and pitch_classes(held.work(i)).sum() >= 8][:args.works]
    settings = [("off", None)]
    if head is not None:
        settings += [(f"on (strength {s:g})", s) for s in [head.strength] + (args.strength or [])]
    result = {}
    for name, strength in settings:
        gen.pitch = None if strength is None else PitchHead(head.weight, head.bias, strength)
        right = tonic = mode = 0
        dist = []
        for k, i in enumerate(tqdm(order, desc=f"pitch head {name}", unit="prompt")):
            text = number_free(held.texts[held.caption_ids[i, 0]])
            want = parse_key(text)
            pcs = played_pitch_classes(gen, text, args.seconds, seed=k % 3)
            if pcs.sum() == 0:
                continue
            got = key_of(pcs)
            right += got == want
            tonic += got[0] == want[0]
            mode += got[1] == want[1]
            own = pitch_classes(held.work(i))
            dist.append(float(np.abs(pcs / pcs.sum() - own / own.sum()).sum()))
        n = len(dist)
        result[name] = {"prompts": n, "key_right": right / n, "tonic_right": tonic / n, "mode_right": mode / n,
                        "pitch_class_l1_to_work": float(np.mean(dist))}
    gen.pitch = head
    print(f"{len(order)} held-out captions that name a key, {args.seconds:.0f} s each, seeds 0-2")
    print(f"{'pitch head':22s} {'key right':>9s} {'tonic':>7s} {'mode':>7s} {'pc L1 to work':>14s}")
    for name, r in result.items():
        print(f"{name:22s} {r['key_right'] * 100:8.0f}% {r['tonic_right'] * 100:6.0f}% {r['mode_right'] * 100:6.0f}%"
              f" {r['pitch_class_l1_to_work']:14.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
