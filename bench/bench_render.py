"""Render speed of generator.data (x real time, one core): MIDI -> 48 kHz stereo with FluidSynth.

Why: on-the-fly rendering for training is only viable if synthesis is far faster than real time
(data.md measured 60-145x per core). Run: ``.venv/bin/python bench/bench_render.py [--soundfont fluidr3]``.
MIDI is prepared (parsed/arranged) before timing; only synthesis + mixing + normalisation is timed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generator.data import sources as S  # noqa: E402
from generator.data.render import Renderer, stereo_correlation  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--soundfont", default="fluidr3")
    ap.add_argument("--works", type=int, default=12, help="works per source")
    ap.add_argument("--seconds", type=float, default=30.0, help="excerpt length per work")
    a = ap.parse_args()
    t0 = time.time()
    r = Renderer((a.soundfont,))
    load = time.time() - t0
    works = []
    for src, colls in (("mma", None), ("music21", ("music21/bach", "music21/oneills1850", "music21/palestrina")),
                       ("debian", None)):
        works += [(src, w) for w in S.iter_works("train", (src,), seed=1, limit=a.works, collections=colls)]
    print(f"soundfont {a.soundfont}: load {load:.2f} s; {len(works)} works prepared in {time.time() - t0:.1f} s")
    per: dict[str, list[float]] = {}
    corr = []
    for i, (src, w) in enumerate(works):
        sec = min(a.seconds, w.duration)
        t = time.perf_counter()
        audio, _ = r.render(w.midi, seed=i, start=0.0, seconds=sec)
        dt = time.perf_counter() - t
        per.setdefault(src, [0.0, 0.0])
        per[src][0] += sec
        per[src][1] += dt
        corr.append(stereo_correlation(audio))
    tot_a = sum(v[0] for v in per.values())
    tot_w = sum(v[1] for v in per.values())
    for src, (sa, sw) in per.items():
        print(f"  {src:8s} {sa:7.0f} s audio in {sw:6.2f} s  = {sa / sw:6.1f}x real time")
    print(f"  all      {tot_a:7.0f} s audio in {tot_w:6.2f} s  = {tot_a / tot_w:6.1f}x real time (1 core)")
    corr.sort()
    print(f"  L/R correlation: median {corr[len(corr) // 2]:.2f}, max {corr[-1]:.2f}")


if __name__ == "__main__":
    main()
