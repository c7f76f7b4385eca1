"""The training issue's literal acceptance check, through the real CLI.

Runs ``jamgen render --prompt A --duration 10`` and the same for B (default model and seed unless
``--model``/``--set`` say otherwise), then prints for each render: loudness (dBFS), peak, side level
against mid (dB; "truly stereo" is well above -40), its style embedding's cosine to both prompts
(the trained style model of ``--judge`` is the judge), and the two renders' mean log-spectrum
distance (dB). Exit status 1 when a render is silent or clips or is closer to the other prompt.

    .venv/bin/python bench/render_check.py
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

JAZZ = "fast swing jazz with brushed drums and walking bass"
LULLABY = "gentle solo piano lullaby"


def level_db(x) -> float:
    return float(20 * np.log10(max(np.sqrt(np.mean(np.square(x))), 1e-9)))


def mean_log_spectrum(audio: np.ndarray, n: int = 4096) -> np.ndarray:
    mono = audio.mean(1)
    frames = np.lib.stride_tricks.sliding_window_view(mono, n)[::n // 2] * np.hanning(n)
    return 10 * np.log10(np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, 0) + 1e-12)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompts", nargs=2, default=[JAZZ, LULLABY], metavar=("A", "B"))
    p.add_argument("--model", help="as jamgen render --model (default: jamgen's default)")
    p.add_argument("--set", action="append", default=[], help="as jamgen render --set")
    p.add_argument("--judge", default="generator/checkpoints/tiny")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--keep", help="directory to keep the WAV files in")
    args = p.parse_args(argv)
    import soundfile

    from generator.audio.system import load

    out_dir = Path(args.keep or tempfile.mkdtemp(prefix="jamgen-check-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    audio = []
    for i, prompt in enumerate(args.prompts):
        wav = out_dir / f"render{i}.wav"
        cmd = [str(ROOT / ".venv/bin/jamgen"), "render", "--prompt", prompt, "--duration", str(args.duration),
               "-o", str(wav)]
        cmd += ["--model", args.model] if args.model else []
        for s in args.set:
            cmd += ["--set", s]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        x, rate = soundfile.read(wav, dtype="float32", always_2d=True)
        assert rate == 48_000 and x.shape[1] == 2, (rate, x.shape)
        audio.append(x)
    judge = load(args.judge)
    texts = np.stack([judge.embed_style(t) for t in args.prompts])
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    ok = True
    for i, (prompt, x) in enumerate(zip(args.prompts, audio)):
        emb = judge.embed_style(x)
        emb = emb / np.linalg.norm(emb)
        cos = texts @ emb
        mid, side = (x[:, 0] + x[:, 1]) / 2, (x[:, 0] - x[:, 1]) / 2
        loud, peak = level_db(x), float(np.abs(x).max())
        right = cos[i] > cos[1 - i]
        ok &= loud > -50 and peak < 1.0 and right
        print(f"{prompt!r}: {loud:.1f} dBFS, peak {peak:.2f}, side {level_db(side) - level_db(mid):+.1f} dB "
              f"against mid, cos to own prompt {cos[i]:.3f} / to the other {cos[1 - i]:.3f}"
              f"{'' if right else '  <- closer to the other prompt'}")
    dist = float(np.mean(np.abs(mean_log_spectrum(audio[0]) - mean_log_spectrum(audio[1]))))
    print(f"mean log-spectrum distance between the renders: {dist:.1f} dB")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
