"""Spectrograms of rendered training clips for contrasting captions -> docs/data_spectrograms.png.

Why: a quick visual check that the data pipeline makes audibly different, full-band, stereo music
for different captions. Run: ``.venv/bin/python bench/plot_data_spectrograms.py``.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from generator.data import sources as S  # noqa: E402
from generator.data.render import Renderer, stereo_correlation  # noqa: E402

PICKS = [  # (source, collections, predicate on meta)
    ("mma", None, lambda m: m["family"] == "jazz" and m["drums"]),
    ("mma", None, lambda m: m["family"] == "electronic"),
    ("mma", None, lambda m: m["family"] == "latin"),
    ("mma", None, lambda m: m["family"] == "rock"),
    ("music21", ("music21/bach",), lambda m: True),
    ("music21", ("music21/oneills1850",), lambda m: True),
]


def main(seconds: float = 8.0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = Renderer(("fluidr3",))
    fig, axes = plt.subplots(len(PICKS), 1, figsize=(8, 1.55 * len(PICKS)), dpi=72)
    win = 2048
    hop = 1024
    for ax, (src, colls, pred) in zip(axes, PICKS):
        work = next(w for w in S.iter_works("train", (src,), seed=7, collections=colls, limit=400) if pred(w.meta))
        audio, _ = r.render(work.midi, seed=1, start=min(4.0, max(0.0, work.duration - seconds)), seconds=seconds)
        mono = audio.mean(1)
        frames = np.lib.stride_tricks.sliding_window_view(mono, win)[::hop] * np.hanning(win)
        spec = 20 * np.log10(np.abs(np.fft.rfft(frames, axis=1)).T + 1e-6)
        ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", vmin=spec.max() - 90, vmax=spec.max(),
                  extent=(0, seconds, 0, 24))
        cap = textwrap.shorten(work.caption, 110) + f"  [L/R corr {stereo_correlation(audio):.2f}]"
        ax.set_title(cap, fontsize=7, loc="left")
        ax.set_ylabel("kHz", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[-1].set_xlabel("s", fontsize=7)
    fig.tight_layout()
    out = ROOT / "docs" / "data_spectrograms.png"
    fig.savefig(out)
    from PIL import Image  # a 256-colour palette keeps the PNG small enough to commit

    Image.open(out).convert("RGB").quantize(128).save(out, optimize=True)
    print(out, out.stat().st_size // 1024, "KB")


if __name__ == "__main__":
    main()
