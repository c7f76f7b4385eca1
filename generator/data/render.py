"""MIDI -> 48 kHz stereo float32 audio with FluidSynth, in-process.

Why in-process: loading a soundfont costs 0.2 s (FluidR3) to 10 s (sf3), and the CLI reloads it per
file; keeping one synth per process and calling ``fluid_synth_write_float`` between MIDI events
renders at 60-145x real time per core (data.md), fast enough to make training audio on the fly.

Why a mix per render: with default (centred) pan, GM renders are near-mono (L/R correlation
0.93-1.0), which teaches a stereo codec nothing. Each render therefore draws, from its seed, a pan
position per channel (CC10), reverb and chorus sends (CC91/CC93) and reverb/chorus settings, and
the result is RMS-normalised with a peak ceiling so that levels are consistent and never clip.

Program changes are resolved here (not by FluidSynth's soundfont stack) so that several soundfonts
can stay loaded and a missing drum kit falls back to the standard kit -- reported in ``info``.
"""

from __future__ import annotations

import ctypes
import os
import random
from pathlib import Path
from typing import Sequence

import mido
import numpy as np

from generator.core import gm
from .sources import MissingToolError

SAMPLE_RATE = 48_000
SOUNDFONTS = {
    "fluidr3": "/usr/share/sounds/sf2/FluidR3_GM.sf2",  # MIT, Debian fluid-soundfont-gm
    "timgm6mb": "/usr/share/sounds/sf2/TimGM6mb.sf2",  # GPL-2, Debian timgm6mb-soundfont
    "musescore": "/usr/share/sounds/sf3/MuseScore_General.sf3",  # MIT, Debian musescore-general-soundfont-small
}
DEFAULT_SOUNDFONT = "fluidr3"


def soundfont_path(name_or_path: str) -> str:
    p = SOUNDFONTS.get(name_or_path, name_or_path)
    if not Path(p).is_file():
        pkg = {"fluidr3": "fluid-soundfont-gm", "timgm6mb": "timgm6mb-soundfont",
               "musescore": "musescore-general-soundfont-small"}.get(name_or_path, "a GM soundfont")
        raise MissingToolError(f"soundfont {p} not found: apt-get install --no-install-recommends {pkg}")
    return p


def _load_fluidsynth():
    try:
        import fluidsynth  # pyfluidsynth
    except (ImportError, OSError) as e:
        raise MissingToolError(
            "pyfluidsynth or libfluidsynth is missing: apt-get install libfluidsynth3 (Debian) and "
            f"pip install pyfluidsynth ({e})") from e
    fn = fluidsynth._fl.fluid_synth_write_float
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                   ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    return fluidsynth, fn


class Renderer:
    """One FluidSynth instance with one or more soundfonts loaded; reuse it for every render.

    Not thread-safe: use one Renderer per process (or per worker).
    """

    def __init__(self, soundfonts: Sequence[str] = (DEFAULT_SOUNDFONT,), sample_rate: int = SAMPLE_RATE,
                 gain: float = 0.4):
        fluidsynth, self._write_float = _load_fluidsynth()
        paths = [soundfont_path(s) for s in soundfonts]
        self.sample_rate = sample_rate
        self.synth = fluidsynth.Synth(gain=gain, samplerate=float(sample_rate), channels=16,
                                      **{"synth.cpu-cores": 1, "synth.polyphony": 256})
        self.sfids: dict[str, int] = {}
        for name, p in zip(soundfonts, paths):
            sfid = self.synth.sfload(p)
            if sfid < 0:
                raise MissingToolError(f"FluidSynth could not load soundfont {p}")
            self.sfids[name] = sfid
        self._buf = np.zeros((8192, 2), np.float32)
        # Silence rendered before each piece so the previous piece's reverb tail does not leak in.
        self._flush_frames = sample_rate // 4

    def close(self) -> None:
        if getattr(self, "synth", None) is not None:
            self.synth.delete()
            self.synth = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- low level

    def _write(self, out: np.ndarray) -> None:
        """Fill ``out`` (C-contiguous float32 [n, 2]) with the next n frames."""
        n = out.shape[0]
        ptr = out.ctypes.data
        done = 0
        step = 4096
        while done < n:
            k = min(step, n - done)
            p = ptr + done * 8
            self._write_float(self.synth.synth, k, p, 0, 2, p, 1, 2)
            done += k

    def _skip(self, n: int) -> None:
        """Advance the synth by n frames, discarding the audio (cheap pre-roll)."""
        while n > 0:
            k = min(n, self._buf.shape[0])
            self._write(self._buf[:k])
            n -= k

    def _select(self, sfid: int, chan: int, prog: int, info: dict) -> None:
        if chan == gm.DRUM_CHANNEL:
            kit = prog if self.synth.sfpreset_name(sfid, 128, prog) else 0
            if kit != prog:
                info.setdefault("kit_fallbacks", []).append(prog)
            self.synth.program_select(chan, sfid, 128, kit)
        else:
            self.synth.program_select(chan, sfid, 0, prog)

    # -- public

    def mix(self, seed: int) -> dict:
        """The random mix a seed stands for: pan/sends per channel and reverb/chorus settings."""
        rng = random.Random(seed)
        # Spread channels over the stereo field; the drums and the lowest parts stay nearer the centre.
        pans = [int(np.clip(rng.gauss(64, 34), 8, 120)) for _ in range(16)]
        pans[gm.DRUM_CHANNEL] = rng.randint(52, 76)
        return {
            "pan": pans,
            "reverb_send": [rng.randint(35, 105) for _ in range(16)],
            "chorus_send": [rng.randint(0, 50) for _ in range(16)],
            "reverb": {"roomsize": rng.uniform(0.3, 0.9), "damping": rng.uniform(0.1, 0.6),
                       "width": rng.uniform(0.6, 1.0), "level": rng.uniform(0.5, 0.9)},
            "chorus": {"nr": rng.randint(2, 5), "level": rng.uniform(0.5, 2.0), "speed": rng.uniform(0.2, 0.9),
                       "depth": rng.uniform(2.0, 10.0)},
            "target_dbfs": rng.uniform(-23.0, -17.0),
        }

    def render(self, mid: mido.MidiFile, seed: int = 0, start: float = 0.0, seconds: float | None = None,
               soundfont: str | None = None, tail: float = 1.5, normalize: bool = True,
               ) -> tuple[np.ndarray, dict]:
        """Render ``mid`` to float32 ``[n, 2]`` at 48 kHz.

        Args:
          seed: draws the mix (pan, sends, reverb, chorus, loudness target) and, with several
            soundfonts loaded and ``soundfont`` None, the soundfont.
          start, seconds: render only the window ``[start, start + seconds)`` (exactly
            ``seconds * sr`` frames, zero-padded past the end); events before it are played
            without producing audio, so held notes and controllers are right at ``start``.
            ``seconds=None`` renders to the end plus ``tail`` seconds of reverb release.
          normalize: RMS to the mix's target level (-23..-17 dBFS), peaks limited to -0.5 dBFS.

        Returns:
          (audio, info): info has the soundfont, the mix, rms/peak dBFS and any kit fallbacks.
        """
        sr = self.sample_rate
        rng = random.Random(seed)
        sf_name = soundfont or (rng.choice(sorted(self.sfids)) if len(self.sfids) > 1 else next(iter(self.sfids)))
        sfid = self.sfids[sf_name]
        mix = self.mix(seed)
        info: dict = {"soundfont": sf_name, "mix": mix}
        syn = self.synth
        syn.system_reset()  # notes, controllers, programs; the effect tails are flushed below
        for ch in range(16):
            syn.all_sounds_off(ch)
        self._skip(self._flush_frames)
        syn.set_reverb(**mix["reverb"])
        syn.set_chorus(nr=mix["chorus"]["nr"], level=mix["chorus"]["level"], speed=mix["chorus"]["speed"],
                       depth=mix["chorus"]["depth"], type=0)
        for ch in range(16):
            self._select(sfid, ch, 0, info)
            syn.cc(ch, 7, 100)
            syn.cc(ch, 10, mix["pan"][ch])
            syn.cc(ch, 91, mix["reverb_send"][ch])
            syn.cc(ch, 93, mix["chorus_send"][ch])

        start_f = int(round(start * sr))
        total = int(round(seconds * sr)) if seconds is not None else int(round((mid.length + tail) * sr)) - start_f
        total = max(total, 0)
        out = np.zeros((total, 2), np.float32)
        preroll_f = max(0, start_f - sr)  # render (and discard) 1 s before the window so attacks settle
        pos = 0  # synth position in frames
        t = 0.0

        def advance(to: int) -> None:
            nonlocal pos
            if to <= pos:
                return
            if to <= preroll_f:  # before the pre-roll: no audio at all, events only
                pos = to
                return
            if pos < preroll_f:
                pos = preroll_f
            if pos < start_f:
                k = min(to, start_f) - pos
                self._skip(k)
                pos += k
            if to > pos:
                a, b = pos - start_f, min(to - start_f, total)
                if b > a:
                    self._write(out[a:b])
                pos = to

        end_f = start_f + total
        for msg in mid:  # merged tracks, delta times in seconds (tempo map applied by mido)
            t += msg.time
            f = int(round(t * sr))
            if f >= end_f:
                break
            advance(f)
            if msg.is_meta:
                continue
            typ = msg.type
            if typ == "note_on":
                if msg.velocity > 0:
                    syn.noteon(msg.channel, msg.note, msg.velocity)
                else:
                    syn.noteoff(msg.channel, msg.note)
            elif typ == "note_off":
                syn.noteoff(msg.channel, msg.note)
            elif typ == "control_change":
                if msg.control not in (0, 32, 10, 91, 93):  # bank/pan/sends belong to the mix
                    syn.cc(msg.channel, msg.control, msg.value)
            elif typ == "program_change":
                self._select(sfid, msg.channel, msg.program, info)
            elif typ == "pitchwheel":
                syn.pitch_bend(msg.channel, msg.pitch)
        advance(end_f)

        info["width_scale"] = _mono_compatible(out)
        rms = float(np.sqrt(np.mean(out.astype(np.float64) ** 2))) if total else 0.0
        info["raw_rms_dbfs"] = 20 * np.log10(max(rms, 1e-12))
        if normalize and rms > 1e-6:
            gain = 10 ** (mix["target_dbfs"] / 20) / rms
            peak = float(np.abs(out).max()) * gain
            ceiling = 10 ** (-0.5 / 20)
            if peak > ceiling:
                gain *= ceiling / peak
            out *= gain
        info["rms_dbfs"] = 20 * np.log10(max(float(np.sqrt(np.mean(out.astype(np.float64) ** 2))), 1e-12))
        info["peak_dbfs"] = 20 * np.log10(max(float(np.abs(out).max()) if total else 0.0, 1e-12))
        return out, info


MIN_CORRELATION = 0.1


def _mono_compatible(out: np.ndarray) -> float:
    """Narrow the stereo image in place when L/R correlation is below ``MIN_CORRELATION``.

    Some GM samples are (partly) anti-phase between L and R; with hard pans a mix can reach
    correlation -0.5, which cancels in mono and is not what real mixes sound like. Scaling the side
    signal S = (L-R)/2 by k gives corr = (M^2 - k^2 S^2) / (M^2 + k^2 S^2) for uncorrelated M, S.
    Returns k (1.0 = untouched).
    """
    if out.shape[0] == 0 or stereo_correlation(out) >= MIN_CORRELATION:
        return 1.0
    m = (out[:, 0] + out[:, 1]) * 0.5
    sd = (out[:, 0] - out[:, 1]) * 0.5
    em, es = float(np.mean(m.astype(np.float64) ** 2)), float(np.mean(sd.astype(np.float64) ** 2))
    if es <= 0:
        return 1.0
    c = MIN_CORRELATION + 0.05
    k = float(np.sqrt(em * (1 - c) / (es * (1 + c))))
    out[:, 0] = m + k * sd
    out[:, 1] = m - k * sd
    return k


def stereo_correlation(audio: np.ndarray) -> float:
    """Pearson correlation of L and R (1.0 = mono)."""
    l, r = audio[:, 0].astype(np.float64), audio[:, 1].astype(np.float64)
    l, r = l - l.mean(), r - r.mean()
    d = np.sqrt((l * l).sum() * (r * r).sum())
    return float((l * r).sum() / d) if d > 0 else 1.0


def default_soundfonts() -> tuple[str, ...]:
    """Every installed soundfont among FluidR3 / MuseScore General, or ``$JAMGEN_SOUNDFONTS`` (comma list)."""
    env = os.environ.get("JAMGEN_SOUNDFONTS")
    if env:
        return tuple(s.strip() for s in env.split(",") if s.strip())
    found = tuple(n for n in ("fluidr3", "musescore") if Path(SOUNDFONTS[n]).is_file())
    return found or (DEFAULT_SOUNDFONT,)
