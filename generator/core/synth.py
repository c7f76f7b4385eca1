"""FluidSynth for the note families: notes, programs and mix placement at exact sample offsets, mirrored
as raw MIDI for ``<client>:midi_out``.

Why in the core: the ``symbolic`` and ``groove`` families both turn their notes into sound the same way, an
in-process FluidSynth rendering a block between events (``fluid_synth_write_float`` at each event's sample
offset, so timing is exact to the sample), and both must send exactly what they play as MIDI. What differs
is *when* notes happen (their schedulers); this module only plays what it is told, where it is told.

Threading: one synth per generator, used only from the generation thread.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np

from generator.core import gm
from generator.core.contract import CHANNELS, SAMPLE_RATE

SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2")
# Where each family sits in the stereo field (MIDI CC10, 64 = centre), like a band on a stage: bass,
# drums and pads in the middle, the others spread left and right, so that several parts give a
# truly stereo mix (with GM's default centre pan every render was near mono: side 24 dB below mid).
PART_PAN = (54, 74, 50, 76, 64, 52, 72, 78, 48, 70, 58, 64, 82, 46, 80, 64)
# Reverb and chorus sends (CC91, CC93), like a mixing desk: the bass stays dry and centred, the rest
# sits in a room. Pan alone left bass-and-drums prompts nearly mono (jazz: side 21 dB below mid);
# with these sends it is 13 dB below, like a trio recording (measured with bench/render_check.py).
PART_SENDS = tuple((30, 0) if p == 4 else (60, 30) if p == gm.DRUM_PART else (64, 30) for p in range(gm.N_PARTS))


def default_soundfont() -> str:
    env = os.environ.get("JAMGEN_SOUNDFONT")
    if env:
        return env
    for path in SOUNDFONTS:
        if os.path.isfile(path):
            return path
    raise FileNotFoundError("no GM soundfont: apt-get install fluid-soundfont-gm (or set JAMGEN_SOUNDFONT)")


class NoteSynth:
    """A FluidSynth instance plus the MIDI it played in the current block (``outbox``).

    Every method that makes sound takes the event's sample ``offset`` within the current block and records
    the same message in :attr:`outbox` as ``(offset, bytes)``.

    Args:
      soundfont: a GM .sf2 (default: :func:`default_soundfont`).
      gain: FluidSynth's master gain.
    """

    def __init__(self, soundfont: str | None = None, gain: float = 0.5):
        import fluidsynth

        self.soundfont = soundfont or default_soundfont()
        self.synth = fluidsynth.Synth(gain=gain, samplerate=float(SAMPLE_RATE))
        self.sfid = self.synth.sfload(self.soundfont)
        if self.sfid < 0:
            raise ValueError(f"cannot load soundfont {self.soundfont}")
        self.kits = [p for p in range(128) if self.synth.sfpreset_name(self.sfid, 128, p)]
        self._write = fluidsynth.cfunc("fluid_synth_write_float", ctypes.c_int,
                                       ("synth", ctypes.c_void_p, 1), ("len", ctypes.c_int, 1),
                                       ("lout", ctypes.c_void_p, 1), ("loff", ctypes.c_int, 1),
                                       ("lincr", ctypes.c_int, 1), ("rout", ctypes.c_void_p, 1),
                                       ("roff", ctypes.c_int, 1), ("rincr", ctypes.c_int, 1))
        self.outbox: list[tuple[int, bytes]] = []

    def silence(self) -> None:
        """All notes and sounds off on every channel, at once (release tails too); no MIDI is recorded."""
        for ch in range(16):
            self.synth.cc(ch, 123, 0)  # all notes off
            self.synth.cc(ch, 120, 0)  # all sounds off

    def render(self, audio: np.ndarray, offset: int, count: int) -> None:
        """Synthesise ``count`` samples into ``audio`` [N, 2] float32 (C-contiguous) from ``offset``."""
        if count <= 0:
            return
        base = audio.ctypes.data + offset * CHANNELS * 4
        self._write(self.synth.synth, count, base, 0, 2, base, 1, 2)

    def note(self, offset: int, on: bool, ch: int, pitch: int, velocity: int = 0) -> None:
        if on:
            self.synth.noteon(ch, pitch, velocity)
            self.outbox.append((offset, bytes([0x90 | ch, pitch, velocity])))
        else:
            self.synth.noteoff(ch, pitch)
            self.outbox.append((offset, bytes([0x80 | ch, pitch, 0])))

    def cc(self, offset: int, ch: int, control: int, value: int) -> None:
        self.synth.cc(ch, control, value)
        self.outbox.append((offset, bytes([0xB0 | ch, control, value])))

    def program(self, offset: int, ch: int, program: int) -> None:
        """A GM program (melodic channels) or drum kit (the drum channel: bank 128)."""
        self.synth.program_select(ch, self.sfid, 128 if ch == gm.DRUM_CHANNEL else 0, program)
        self.outbox.append((offset, bytes([0xC0 | ch, program])))

    def place_events(self, part: int) -> list[tuple[int, int]]:
        """The (CC, value) pairs that place ``part`` in the mix: pan, reverb send, chorus send."""
        return [(10, PART_PAN[part]), (91, PART_SENDS[part][0]), (93, PART_SENDS[part][1])]

    def drain(self) -> list[tuple[int, bytes]]:
        out, self.outbox = self.outbox, []
        return out
