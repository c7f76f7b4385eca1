"""Command line: ``python -m generator.data build|prepare|show|groove`` (``jamgen dataset`` wraps it).

* ``build --hours H --out DIR [--clip-seconds S]`` renders ~H hours, writes manifest.jsonl + summary.json.
* ``prepare [--collections ...]`` parses music21 works into the MIDI cache ahead of time (progress bar).
* ``show [-n N] [--split heldout]`` prints captions and paraphrases of a few works.
* ``groove --split train|heldout --seeds 0 1 --workers 2 --out runs/groove/train.npz [--limit N] [--seconds S]``
  tokenises works on the groove family's beat grid into one ``.npz`` (progress bar; never committed).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from . import sources as S
from .source_music21 import music21_base


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m generator.data", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="render a dataset manifest (and optional clips)")
    b.add_argument("--hours", type=float, required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--split", choices=["both", *S.SPLITS], default="both")
    b.add_argument("--sources", default=",".join(S.SOURCES), help="comma list of music21,mma,debian")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--max-seconds", type=float, default=60.0, help="longest excerpt rendered per work")
    b.add_argument("--clip-seconds", type=float, default=0.0, help="also write FLAC clips of this length")
    b.add_argument("--soundfonts", default=None, help="comma list: fluidr3,timgm6mb,musescore or paths")
    pr = sub.add_parser("prepare", help="parse music21 works into the MIDI cache")
    pr.add_argument("--collections", default=None, help="comma list, e.g. music21/bach,music21/palestrina")
    pr.add_argument("--limit", type=int, default=None)
    sh = sub.add_parser("show", help="print captions of a few works")
    sh.add_argument("-n", type=int, default=5)
    sh.add_argument("--split", choices=S.SPLITS, default="train")
    sh.add_argument("--sources", default="mma,debian")
    sh.add_argument("--seed", type=int, default=0)
    gr = sub.add_parser("groove", help="tokenise works for the groove family (beat grid) into one .npz")
    gr.add_argument("--split", choices=S.SPLITS, default="train")
    gr.add_argument("--seeds", type=int, nargs="+", default=[0], help="one arrangement of every work per seed")
    gr.add_argument("--sources", default="mma,debian,music21", help="comma list of music21,mma,debian")
    gr.add_argument("--workers", type=int, default=1, help="processes arranging and tokenising works")
    gr.add_argument("--limit", type=int, default=None, help="at most N works per source and seed")
    gr.add_argument("--seconds", type=float, default=None, help="wall-time budget of the whole build")
    gr.add_argument("--out", required=True, help="the .npz to write (its folder is created)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    if a.cmd == "build":
        from .clips import build

        splits = S.SPLITS if a.split == "both" else (a.split,)
        summary = build(a.out, a.hours, splits=splits, sources=tuple(a.sources.split(",")), seed=a.seed,
                        max_seconds=a.max_seconds, clip_seconds=a.clip_seconds,
                        soundfonts=a.soundfonts.split(",") if a.soundfonts else None)
        print(json.dumps({k: summary[k] for k in ("splits", "wall_seconds", "x_realtime")}))
    elif a.cmd == "prepare":
        from tqdm import tqdm

        colls = a.collections.split(",") if a.collections else None
        refs = S.work_refs(None, ("music21",), colls)[: a.limit]
        bad = 0
        for ref in tqdm(refs, unit="work", desc="parse music21"):
            try:
                music21_base(ref)
            except Exception:
                bad += 1
        print(f"{len(refs) - bad} works cached in {S.cache_dir()}, {bad} failed")
    elif a.cmd == "groove":
        from pathlib import Path

        from .groove_tokens import build as build_groove

        logging.getLogger("generator.data").setLevel(logging.INFO)  # the skip log and the summary line
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        build_groove(a.out, a.split, a.sources.split(","), seeds=a.seeds, limit=a.limit, seconds=a.seconds,
                     workers=a.workers)
    elif a.cmd == "show":
        for w in S.iter_works(a.split, tuple(a.sources.split(",")), seed=a.seed, limit=a.n):
            print(f"{w.id}  [{w.split}, {w.duration:.0f} s, {w.license}]\n  {w.caption}")
            for para in w.paraphrases:
                print(f"    ~ {para}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
