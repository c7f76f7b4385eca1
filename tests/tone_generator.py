"""A deterministic, phase-continuous tone generator for tests (never shipped as a model).

Its output encodes the controls it was generated with, so tests can hear them:
- pitch: 220 Hz * 2 ** (temperature), so a temperature change is a pitch change;
- left channel amplitude 0.5, right 0.25 (truly stereo);
- the phase is carried in the state, so block seams are continuous.
Fault injection for reliability tests, from the environment:
- ``JAMGEN_TEST_FAIL_AT=N``: ``generate`` raises on its N-th call (once);
- ``JAMGEN_TEST_STALL_AT=N:SECONDS``: ``generate`` sleeps on its N-th call.
Metronome (``tests.tone_generator:metronome_factory``): follows an external clock (``--sync``); a note on every beat
of the host's, pitch :data:`DOWNBEAT` on each bar's first beat and :data:`BEAT` on the others, so a separate MIDI
recorder can check both the grid and the bar lines exactly (the groove's own bars are checked in process, by
tests/test_groove_lock.py).
MIDI (``tests.tone_generator:midi_factory``): each block also yields one note, on at the block's
start and off 15/16 of a block later (:func:`note_off_offset`; 187.5 ms in a 200 ms block, so a transport
change almost always lands mid-note), pitch 60 + block number mod 12, for the JACK MIDI output tests.
"""

from __future__ import annotations

import dataclasses
import os
import zlib
import time

import numpy as np

from generator.core.contract import FRAME_SAMPLES, SAMPLE_RATE, GenerationControls, Generator


@dataclasses.dataclass
class ToneState:
    phase: float = 0.0  # radians, carried across blocks
    frame: int = 0


class ToneGenerator(Generator):

    def __init__(self):
        self.calls = 0
        self.fail_at = int(os.environ.get("JAMGEN_TEST_FAIL_AT", "0"))
        stall = os.environ.get("JAMGEN_TEST_STALL_AT", "")
        self.stall_at, self.stall_seconds = (int(stall.split(":")[0]), float(stall.split(":")[1])) if stall else (0, 0.0)

    @staticmethod
    def frequency(controls: GenerationControls) -> float:
        return 220.0 * 2.0 ** controls.temperature

    def init_state(self, seed: int = 0) -> ToneState:
        return ToneState()

    def generate(self, state: ToneState, controls: GenerationControls, frames: int):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("injected test failure")
        if self.calls == self.stall_at:
            time.sleep(self.stall_seconds)
        n = frames * FRAME_SAMPLES
        step = 2.0 * np.pi * self.frequency(controls) / SAMPLE_RATE
        phases = state.phase + step * np.arange(1, n + 1)
        mono = np.sin(phases)
        audio = np.stack([0.5 * mono, 0.25 * mono], axis=1).astype(np.float32)
        return audio, ToneState(float(phases[-1] % (2.0 * np.pi)), state.frame + frames)

    def embed_style(self, text: str) -> np.ndarray:
        rng = np.random.default_rng(zlib.crc32(text.encode()))
        v = rng.standard_normal(16).astype(np.float32)
        return v / np.linalg.norm(v)


def factory() -> ToneGenerator:
    return ToneGenerator()


def note_off_offset(frames: int) -> int:
    """Where in a block of ``frames`` frames the midi_factory's note ends (9000 in a 5-frame block)."""
    return frames * FRAME_SAMPLES * 15 // 16


class _MidiToneGenerator(ToneGenerator):
    """A tone generator that also makes notes: ``generate`` fills ``_events``, ``drain_midi`` hands them over."""

    makes_notes = True

    def __init__(self):
        super().__init__()
        self._events: list[tuple[int, bytes]] = []

    def drain_midi(self) -> list[tuple[int, bytes]]:
        events, self._events = self._events, []
        return events


class NoteToneGenerator(_MidiToneGenerator):
    control_defaults = {"guidance": 1.5}  # as a model that documents its own default would

    def generate(self, state: ToneState, controls: GenerationControls, frames: int):
        audio, new_state = super().generate(state, controls, frames)
        note = 60 + (state.frame // frames) % 12
        self._events = [(0, bytes((0x90, note, 100))), (note_off_offset(frames), bytes((0x80, note, 0)))]
        return audio, new_state


def midi_factory() -> NoteToneGenerator:
    return NoteToneGenerator()


DOWNBEAT, BEAT = 84, 72


class MetronomeGenerator(_MidiToneGenerator):
    """A click on every beat of the clock the daemon passes (``controls.clock``); silent notes without one."""

    follows_clock = True

    def __init__(self):
        super().__init__()
        self._last_beat: int | None = None  # the last beat clicked in this stream

    def init_state(self, seed: int = 0) -> ToneState:
        self._last_beat = None
        return super().init_state(seed)

    def generate(self, state: ToneState, controls: GenerationControls, frames: int):
        audio, new_state = super().generate(state, controls, frames)
        n = frames * FRAME_SAMPLES
        clock = controls.clock
        self._events = []
        if clock is not None and clock.bpm > 0:
            per_beat = SAMPLE_RATE * 60.0 / clock.bpm
            # each beat once: a beat that this block's clock puts up to two samples before its start (the last
            # block's clock, rounded to the sample, put it just after its end) plays at sample 0; one further back
            # was skipped (a tempo change) and is not played late; none is clicked twice
            beat = int(np.ceil(clock.beat - 2.0 / per_beat))
            if self._last_beat is not None and abs(self._last_beat + 1 - clock.beat) < 0.5:
                beat = max(beat, self._last_beat + 1)  # not after a relocation: never a beat twice
            while (offset := int(round((beat - clock.beat) * per_beat))) < n:
                pitch = DOWNBEAT if beat % round(clock.beats_per_bar) == 0 else BEAT
                offset = max(0, offset)
                off = min(n - 1, offset + int(per_beat / 8))
                self._events += [(offset, bytes((0x99, pitch, 100))), (off, bytes((0x89, pitch, 0)))]
                self._last_beat = beat
                beat += 1
        return audio, new_state


def metronome_factory() -> MetronomeGenerator:
    return MetronomeGenerator()
