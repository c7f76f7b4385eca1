"""Training clips: a streaming iterator that renders on the fly, and the offline dataset builder.

Why on the fly: synthesis runs at 80-170x real time per core, while 55 h of 48 kHz stereo would take
11-38 GB on disk (data.md). Training therefore draws (audio, caption) pairs from :func:`iter_clips`,
and :func:`build` writes only a manifest (plus, if asked, a few short FLAC clips for listening or for
evaluation sets that must be identical across runs).
"""

from __future__ import annotations

import itertools
import json
import random
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from . import sources as S
from .render import SAMPLE_RATE, Renderer, default_soundfonts

# How often each source is drawn by iter_clips. music21 alone is 80% of the works and mostly
# monophonic folk; weighting by source keeps genres, drums and textures varied.
DEFAULT_WEIGHTS = {"music21": 0.4, "mma": 0.5, "debian": 0.1}
MIN_RAW_RMS_DBFS = -50.0  # windows quieter than this before normalisation are silence: skipped


def _endless_works(split: str, source: str, seed: int, collections) -> Iterator[S.Work]:
    """Every work of one source, epoch after epoch, each epoch with new order and arrangements."""
    for epoch in itertools.count():
        n = 0
        for w in S.iter_works(split, (source,), seed=seed * 100_003 + epoch, collections=collections):
            n += 1
            yield w
        if n == 0:
            return


def iter_clips(split: str = "train", seconds: float = 10.0, seed: int = 0,
               sources: Sequence[str] = S.SOURCES, weights: dict[str, float] | None = None,
               renderer: Renderer | None = None, collections: Sequence[str] | None = None,
               limit: int | None = None) -> Iterator[tuple[np.ndarray, str, dict]]:
    """Endless (or ``limit``) stream of ``(audio float32 [48000*seconds, 2], caption, meta)``.

    One random window per work visit, rendered with a mix drawn from the seed; near-silent windows
    are skipped. ``meta`` is the work's meta plus id, split, license, attribution, paraphrases,
    start, soundfont and rms. Deterministic for given arguments.
    """
    renderer = renderer or Renderer(default_soundfonts())
    weights = weights or DEFAULT_WEIGHTS
    rng = random.Random(f"clips|{split}|{seed}")
    streams = {s: _endless_works(split, s, seed, collections) for s in sources}
    n = 0
    while streams and (limit is None or n < limit):
        names = sorted(streams)
        src = rng.choices(names, [weights.get(s, 0.1) for s in names])[0]
        try:
            work = next(streams[src])
        except StopIteration:
            del streams[src]
            continue
        for _attempt in range(3):
            start = rng.uniform(0, max(0.0, work.duration - seconds))
            audio, info = renderer.render(work.midi, seed=rng.getrandbits(31), start=start, seconds=seconds)
            if info["raw_rms_dbfs"] > MIN_RAW_RMS_DBFS:
                break
        else:
            continue
        meta = dict(work.meta, id=work.id, split=work.split, license=work.license,
                    attribution=work.attribution, paraphrases=work.paraphrases, start=round(start, 3),
                    soundfont=info["soundfont"], rms_dbfs=round(info["rms_dbfs"], 2))
        n += 1
        yield audio, work.caption, meta


def _jsonable(meta: dict) -> dict:
    out = {}
    for k, v in meta.items():
        if isinstance(v, dict):
            v = {str(a): b for a, b in v.items()}
        elif isinstance(v, tuple):
            v = list(v)
        out[k] = v
    return out


def build(out: str | Path, hours: float, splits: Sequence[str] = ("train", "heldout"),
          sources: Sequence[str] = S.SOURCES, seed: int = 0, max_seconds: float = 60.0,
          clip_seconds: float = 0.0, soundfonts: Sequence[str] | None = None, progress: bool = True) -> dict:
    """Render about ``hours`` of audio (split over ``splits`` in proportion 90/10) and write
    ``manifest.jsonl`` (one line per rendered excerpt) and ``summary.json`` to ``out``.

    Each work is rendered for at most ``max_seconds`` (a random excerpt). With ``clip_seconds`` > 0 a
    FLAC clip of that length (the excerpt's start) is written under ``out/clips/<split>/``; otherwise
    no audio is stored. Returns the summary.
    """
    import soundfile as sf
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    renderer = Renderer(tuple(soundfonts) if soundfonts else default_soundfonts())
    share = {"train": 0.9, "heldout": 0.1} if len(splits) > 1 else {splits[0]: 1.0}
    summary: dict = {"hours_requested": hours, "seed": seed, "sources": list(sources), "splits": {},
                     "collections": {}, "licenses": {}}
    t0 = time.time()
    rendered_total = 0.0
    with open(out / "manifest.jsonl", "w") as mf:
        for split in splits:
            budget = hours * 3600 * share[split]
            done = 0.0
            works = 0
            rng = random.Random(f"build|{split}|{seed}")
            bar = tqdm(total=round(budget), unit="s", desc=f"{split} audio", disable=not progress,
                       dynamic_ncols=True)
            for work in S.iter_works(split, sources, seed=seed):
                if done >= budget:
                    break
                dur = min(work.duration, max_seconds)
                start = rng.uniform(0, max(0.0, work.duration - dur))
                audio, info = renderer.render(work.midi, seed=rng.getrandbits(31), start=start, seconds=dur)
                if info["raw_rms_dbfs"] <= MIN_RAW_RMS_DBFS:
                    continue
                works += 1
                rec = {"id": work.id, "collection": work.collection, "license": work.license,
                       "attribution": work.attribution, "caption": work.caption,
                       "paraphrases": list(work.paraphrases), "split": split, "duration": round(dur, 3),
                       "start": round(start, 3), "source_duration": round(work.duration, 3),
                       "variant": work.variant, "soundfont": info["soundfont"],
                       "rms_dbfs": round(info["rms_dbfs"], 2), "meta": _jsonable(work.meta)}
                rec["meta"].pop("chords", None)
                if clip_seconds > 0:
                    clip = audio[: int(clip_seconds * SAMPLE_RATE)]
                    name = f"clips/{split}/{works:06d}.flac"
                    (out / name).parent.mkdir(parents=True, exist_ok=True)
                    sf.write(out / name, clip, SAMPLE_RATE, subtype="PCM_16")
                    rec["file"] = name
                mf.write(json.dumps(rec) + "\n")
                done += dur
                bar.update(round(dur))
                c = summary["collections"].setdefault(work.collection, {"works": 0, "seconds": 0.0})
                c["works"] += 1
                c["seconds"] = round(c["seconds"] + dur, 1)
                summary["licenses"][work.license] = summary["licenses"].get(work.license, 0) + 1
            bar.close()
            summary["splits"][split] = {"works": works, "hours": round(done / 3600, 4)}
            rendered_total += done
    wall = time.time() - t0
    summary["wall_seconds"] = round(wall, 1)
    summary["x_realtime"] = round(rendered_total / wall, 1) if wall > 0 else None
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
