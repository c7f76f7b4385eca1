"""Render the README's listening examples for one model: short Opus files + one spectrogram PNG.

Why a script: the examples in ``docs/examples/`` must be reproducible from the commit that made them,
and small (Opus at 64 kbps, a few seconds each). Per clip it prints loudness, peak, stereo width
(side/mid power) and, with ``--judge``, which of the rendered prompts the trained style model says the
clip sounds closest to.

    .venv/bin/python bench/render_examples.py --model generator/checkpoints/tiny --name tiny
"""

from __future__ import annotations

import argparse
import pathlib
import re
import subprocess
import sys
import tempfile
import textwrap

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from quality_lm import Judge, render  # noqa: E402

DEFAULT_PROMPTS = [
    "fast swing jazz with brushed drums and walking bass",
    "gentle solo piano lullaby",
    "hard rock with distorted electric guitar and loud drums",
    "slow string quartet",
]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]


def write_opus(audio: np.ndarray, path: pathlib.Path, kbps: int = 64):
    import soundfile as sf

    with tempfile.TemporaryDirectory() as d:
        wav = pathlib.Path(d) / "x.wav"
        sf.write(wav, audio, 48_000, subtype="PCM_16")
        subprocess.run(["opusenc", "--quiet", "--bitrate", str(kbps), str(wav), str(path)], check=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--name", required=True, help="file name prefix under docs/examples/")
    p.add_argument("--prompt", action="append", help="repeatable; default: four contrasting prompts")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "docs" / "examples"))
    p.add_argument("--judge", default=None, help="native checkpoint whose style model judges the clips")
    a = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import generator

    prompts = a.prompt or DEFAULT_PROMPTS
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    gen = generator.load(a.model)
    if hasattr(gen, "warmup"):
        gen.warmup()
    judge = Judge(a.judge) if a.judge else None
    texts = judge.text(prompts) if judge else None
    fig, axes = plt.subplots(len(prompts), 1, figsize=(8, 1.6 * len(prompts)), dpi=72)
    for i, (prompt, ax) in enumerate(zip(prompts, np.atleast_1d(axes))):
        audio = render(gen, prompt, a.seconds, seed=a.seed)
        write_opus(audio, out / f"{a.name}-{slug(prompt)}.opus")
        mono = audio.mean(1)
        side = audio[:, 0] - audio[:, 1]
        rms = 20 * np.log10(np.sqrt((audio ** 2).mean()) + 1e-9)
        width = 10 * np.log10((side ** 2).mean() / ((2 * mono) ** 2).mean() + 1e-12)
        line = f"{prompt!r}: rms {rms:.1f} dBFS, peak {np.abs(audio).max():.2f}, side/mid {width:.1f} dB"
        if judge:
            sims = texts @ judge.audio(audio)
            line += f", closest prompt: {prompts[int(np.argmax(sims))]!r}"
        print(line, flush=True)
        win, hop = 2048, 1024
        n = (len(mono) - win) // hop + 1
        frames = np.stack([mono[j * hop:j * hop + win] * np.hanning(win) for j in range(n)])
        spec = 20 * np.log10(np.abs(np.fft.rfft(frames, axis=1)) + 1e-6).T
        ax.imshow(spec[:600], origin="lower", aspect="auto", cmap="magma",
                  vmin=spec.max() - 80, vmax=spec.max(), extent=(0, len(mono) / 48000, 0, 600 * 48000 / win / 1000))
        ax.set_title(textwrap.shorten(f"{a.name}: {prompt}", 90), fontsize=9)
        ax.set_ylabel("kHz", fontsize=8)
    np.atleast_1d(axes)[-1].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(out / f"{a.name}-spectrograms.png")
    print(f"wrote {out}/{a.name}-*.opus and {a.name}-spectrograms.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
