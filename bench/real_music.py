"""Real recorded music from Debian game-soundtrack packages, cut into 10 s 48 kHz stereo excerpts.

FOR CODEC EVALUATION ONLY. Never train on this audio and never commit it (or anything decoded from it):
it is copyleft (GPL-3+, CC-BY-SA-3.0) and carries attribution duties. See
``shared/research/data.md`` section 4 for the wider survey of such packages.

The files come from system packages, installed with

    apt-get install -y --no-install-recommends planetblupi-music-ogg singularity-music

Excerpts are deterministic: tracks are sorted per package, taken round-robin across the installed
packages (so N excerpts mix sources), and each excerpt starts ``offset`` seconds into its track.
Tracks too short for ``offset + seconds`` are skipped. Decoding is soundfile (libsndfile reads Ogg
Vorbis/Opus); 44.1 kHz is resampled to 48 kHz with ``scipy.signal.resample_poly`` (160/147, Kaiser
windowed sinc); mono is duplicated to stereo, extra channels are dropped. Decoded lossy masters
can overshoot full scale (planetblupi peaks reach ~1.5), so an excerpt whose peak exceeds 0.99 is
scaled down to 0.99 (gain recorded) -- every system then sees the same in-range input, and 16-bit
WAV/Opus paths do not clip.

    .venv/bin/python bench/real_music.py            # list what is installed and the excerpts
    .venv/bin/python bench/real_music.py -n 12 --write /tmp/excerpts   # also write WAVs (do not commit)
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import math
import pathlib
import sys

import numpy as np

SR = 48_000
PEAK = 0.99


@dataclasses.dataclass(frozen=True)
class Source:
    package: str
    licence: str
    pattern: str  # glob, recursive (**) allowed
    credit: str


SOURCES: tuple[Source, ...] = (
    Source("planetblupi-music-ogg", "GPL-3+", "/usr/share/planetblupi/music/*.ogg",
           "Planet Blupi soundtrack, (c) 2017-2018 Mathieu Schroeter"),
    Source("singularity-music", "CC-BY-SA-3.0", "/usr/share/games/singularity/music/**/*.ogg",
           "Endgame: Singularity soundtrack, (c) 2007-2008,2012 Max McCracken"),
)


@dataclasses.dataclass(frozen=True)
class Excerpt:
    source: Source
    path: str
    start_s: float
    audio: np.ndarray  # [N, 2] float32 at 48 kHz, peak <= 0.99
    gain: float = 1.0  # applied to bring the peak to <= 0.99

    @property
    def name(self) -> str:
        return f"{self.source.package}:{pathlib.Path(self.path).name}@{self.start_s:g}s"


def installed(sources=SOURCES) -> list[tuple[Source, list[str]]]:
    """Installed sources with their sorted files (packages with no files are left out)."""
    out = []
    for s in sources:
        files = sorted(glob.glob(s.pattern, recursive=True))
        if files:
            out.append((s, files))
    return out


class NoRealMusic(RuntimeError):
    pass


def missing_message(sources=SOURCES) -> str:
    names = " ".join(s.package for s in sources)
    return (f"no real-music files found (looked for Debian packages: {names}); install with: "
            f"apt-get install -y --no-install-recommends {names}")


def _to_48k_stereo(x: np.ndarray, sr: int) -> np.ndarray:
    if x.shape[1] == 1:
        x = np.repeat(x, 2, axis=1)
    x = x[:, :2]
    if sr != SR:
        from scipy.signal import resample_poly

        g = math.gcd(SR, sr)
        x = resample_poly(x, SR // g, sr // g, axis=0)
    return x.astype(np.float32)


def read_excerpt(path: str, start_s: float, seconds: float) -> np.ndarray | None:
    """[round(seconds*48k), 2] float32, or None if the track is too short."""
    import soundfile as sf

    info = sf.info(path)
    pad = 0.05  # read a little either side so the resampler's edge transient falls outside the cut
    if info.duration < start_s + seconds + pad:
        return None
    a = int(round((start_s - pad) * info.samplerate))
    b = int(round((start_s + seconds + pad) * info.samplerate))
    x, sr = sf.read(path, start=a, stop=b, dtype="float32", always_2d=True)
    y = _to_48k_stereo(x, sr)
    skip, n = int(round(pad * SR)), int(round(seconds * SR))
    y = y[skip:skip + n]
    return y if len(y) == n else None


def excerpts(n: int, seconds: float = 10.0, offset: float = 30.0, sources=SOURCES) -> list[Excerpt]:
    """n deterministic excerpts, round-robin over installed packages. Raises NoRealMusic if none."""
    avail = installed(sources)
    if not avail:
        raise NoRealMusic(missing_message(sources))
    queues = [list(files) for _, files in avail]
    out: list[Excerpt] = []
    while len(out) < n and any(queues):
        for (src, _), q in zip(avail, queues):
            while q and len(out) < n:
                path = q.pop(0)
                y = read_excerpt(path, offset, seconds)
                if y is not None:
                    peak = float(np.abs(y).max())
                    g = min(1.0, PEAK / peak) if peak > 0 else 1.0
                    out.append(Excerpt(src, path, offset, (y * g).astype(np.float32), g))
                    break
    return out


def describe(ex: list[Excerpt]) -> str:
    """One line: where the audio came from and its licence."""
    by = {}
    for e in ex:
        by.setdefault(e.source, 0)
        by[e.source] += 1
    parts = [f"{s.package} ({s.licence}; {s.credit}) x{k}" for s, k in by.items()]
    return "real music, evaluation only, not for training: " + "; ".join(parts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=12, help="number of excerpts")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--offset", type=float, default=30.0, help="start of each excerpt in its track (s)")
    ap.add_argument("--write", default=None, help="directory to write the excerpts as 16-bit WAVs (never commit)")
    a = ap.parse_args(argv)
    for s, files in installed():
        print(f"{s.package:24s} {s.licence:14s} {len(files):3d} files  {s.pattern}")
    try:
        ex = excerpts(a.n, a.seconds, a.offset)
    except NoRealMusic as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(describe(ex))
    for e in ex:
        rms = float(np.sqrt((e.audio ** 2).mean()))
        print(f"  {e.name:70s} rms {20 * np.log10(max(rms, 1e-9)):6.1f} dBFS  peak {np.abs(e.audio).max():.2f}  gain {20 * np.log10(e.gain):5.1f} dB")
    if a.write:
        import soundfile as sf

        d = pathlib.Path(a.write)
        d.mkdir(parents=True, exist_ok=True)
        for i, e in enumerate(ex):
            sf.write(d / f"{i:02d}.wav", e.audio, SR, subtype="PCM_16")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
