"""Pre-rendered clip cache for codec training: ``python -m generator.data.codec_clips --minutes 30``.

Why a cache: the codec trains on random short crops, so it needs many different seconds of audio per
minute of training; rendering them on the fly would take CPU away from the train step. The cache is
a few int16 ``.npy`` arrays (``train.npy`` [clips, samples, 2], ``heldout.npy``) plus captions in
``meta.jsonl`` under ``runs/codec_data/`` (git-ignored: never commit audio).
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np

SR = 48_000


def render(out: pathlib.Path, split: str, minutes: float, clip_seconds: float, seed: int) -> None:
    from tqdm import tqdm

    from generator.data.clips import iter_clips

    n = max(1, round(minutes * 60 / clip_seconds))
    arr = np.zeros((n, int(clip_seconds * SR), 2), np.int16)
    metas = []
    for i, (audio, caption, meta) in enumerate(tqdm(iter_clips(split, clip_seconds, seed=seed, limit=n),
                                                    total=n, desc=f"render {split}", unit="clip")):
        arr[i] = np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)
        metas.append({"i": i, "id": meta["id"], "caption": caption, "license": meta["license"],
                      "paraphrases": list(meta.get("paraphrases") or ()), "collection": meta.get("collection"),
                      "attribution": meta.get("attribution")})
    np.save(out / f"{split}.npy", arr[: len(metas)])
    with open(out / f"{split}.meta.jsonl", "w") as f:
        for m in metas:
            f.write(json.dumps(m) + "\n")


def load(directory, split: str) -> np.ndarray:
    """Cached clips of ``split`` as float32 [clips, samples, 2] (memory-mapped int16 underneath)."""
    a = np.load(pathlib.Path(directory) / f"{split}.npy", mmap_mode="r")
    return a


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m generator.data.codec_clips", description=__doc__)
    p.add_argument("--out", default="runs/codec_data")
    p.add_argument("--minutes", type=float, default=30.0, help="train audio to render")
    p.add_argument("--heldout-minutes", type=float, default=3.0)
    p.add_argument("--clip-seconds", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    render(out, "heldout", a.heldout_minutes, a.clip_seconds, a.seed)
    render(out, "train", a.minutes, a.clip_seconds, a.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
