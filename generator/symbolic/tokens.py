"""Performance-event tokens for the symbolic generator, with one part token per GM instrument family.

Why a performance vocabulary (Music Transformer / Oore et al. 2018) rather than bar/position tokens:
the generator runs against an audio clock in seconds, not a score, so a token stream whose time
unit *is* wall time can be scheduled sample-accurately without knowing tempo or metre, expressive
timing and free-tempo material (chorales, fiddle tunes) encode as naturally as quantised grooves,
and the decoder is a tiny state machine that the real-time scheduler runs token by token.

Vocabulary (``VOCAB`` = 390 ids):

=========  ======  =================================================================
PAD, BOS   0, 1    padding / start of a piece (the model's first input)
PART p     16      the part that the following NOTE_ON/NOTE_OFF tokens belong to
VEL v      16      the velocity bin of the following NOTE_ONs (bin centres 4..124)
NOTE_ON    128     a note of the current part starts (pitch 0..127)
NOTE_OFF   128     a note of the current part ends
SHIFT n    100     time advances by n * 10 ms (n = 1..100; longer gaps use several)
=========  ======  =================================================================

Parts: 15 melodic parts are the General MIDI instrument families (piano, chromatic percussion,
organ, guitar, bass, strings, ensemble, brass, reed, pipe, synth lead, synth pad, synth effects +
sound effects, ethnic, percussive) and part 15 is the drum kit (MIDI channel 10). Parts map 1:1
onto the 16 MIDI channels, so several instruments play at once. The model only picks the
*family*; which program inside the family (and which drum kit) plays is chosen from the text
style by :mod:`generator.core.instruments`. That keeps the vocabulary small for a model trained on
a few thousand pieces, where individual programs would be seen too rarely to learn.

Drums have no NOTE_OFF tokens (GM drums are one-shots); the decoder gives every drum hit a fixed
short duration so the MIDI stream still pairs every note-on with a note-off.

Encoding details (:func:`normalise`): times are quantised to 10 ms; note-offs sort before
note-ons at the same step; a note that would last zero steps is held for one step; a part has one
voice per pitch (unison doublings inside a family merge). Round trip MIDI -> tokens -> MIDI keeps
pitch, part (family), velocity bin and on/off times to 10 ms.
"""

from __future__ import annotations

import dataclasses
import io
import os
from typing import Iterable, Iterator

import mido
import numpy as np

from generator.core.gm import (  # noqa: F401  (the parts are the core's, re-exported)
    DRUM_CHANNEL, DRUM_PART, N_PARTS, PART_NAMES, channel_part, part_channel, program_part)
from generator.core.midi_file import messages_to_midi, write_midi  # noqa: F401  (write_midi re-exported)

STEP_SECONDS = 0.01
MAX_SHIFT = 100
N_VEL = 16
DRUM_HIT_SECONDS = 0.1  # the duration given to a drum hit (they have no NOTE_OFF token)

PAD, BOS = 0, 1
PART0 = 2
VEL0 = PART0 + N_PARTS  # 18
ON0 = VEL0 + N_VEL  # 34
OFF0 = ON0 + 128  # 162
SHIFT0 = OFF0 + 128  # 290 (SHIFT0 + n - 1 is a shift of n steps)
VOCAB = SHIFT0 + MAX_SHIFT  # 390

FAMILIES = PART_NAMES  # the part names, drums last


def velocity_bin(velocity: int) -> int:
    return min(N_VEL - 1, max(0, int(velocity) - 1) // 8)


def bin_velocity(b: int) -> int:
    return 8 * int(b) + 4


def kind(token: int) -> str:
    if token < PART0:
        return "pad" if token == PAD else "bos"
    if token < VEL0:
        return "part"
    if token < ON0:
        return "vel"
    if token < OFF0:
        return "on"
    if token < SHIFT0:
        return "off"
    return "shift"


@dataclasses.dataclass(frozen=True)
class Note:
    """One note in seconds; ``part`` is the token part (family or drums)."""

    start: float
    end: float
    pitch: int
    velocity: int
    part: int


# ---- MIDI -> notes -> tokens ------------------------------------------------------------
def read_notes(midi) -> list[Note]:
    """Notes of a MIDI file (path, bytes, file object or ``mido.MidiFile``), in seconds.

    Program changes per channel decide the part; notes still held at the end are closed there.
    """
    if isinstance(midi, mido.MidiFile):
        mf = midi
    elif isinstance(midi, (bytes, bytearray)):
        mf = mido.MidiFile(file=io.BytesIO(midi))
    elif isinstance(midi, (str, os.PathLike)):
        mf = mido.MidiFile(str(midi))
    else:
        mf = mido.MidiFile(file=midi)
    programs = [0] * 16
    active: dict[tuple[int, int], list[tuple[float, int, int]]] = {}
    notes: list[Note] = []
    now = 0.0
    for msg in mf:  # merged tracks, ``time`` in seconds with tempo changes applied
        now += msg.time
        if msg.type == "program_change":
            programs[msg.channel] = msg.program
        elif msg.type == "note_on" and msg.velocity > 0:
            part = DRUM_PART if msg.channel == DRUM_CHANNEL else program_part(programs[msg.channel])
            active.setdefault((msg.channel, msg.note), []).append((now, msg.velocity, part))
        elif msg.type in ("note_off", "note_on"):
            stack = active.get((msg.channel, msg.note))
            if stack:
                start, vel, part = stack.pop(0)
                notes.append(Note(start, now, msg.note, vel, part))
    for (ch, pitch), stack in active.items():
        for start, vel, part in stack:
            notes.append(Note(start, max(now, start), pitch, vel, part))
    notes.sort(key=lambda n: (n.start, n.part, n.pitch))
    return notes


def normalise(notes: Iterable[Note]) -> list[Note]:
    """The notes exactly as the tokens represent them: times on the 10 ms grid, at least one step
    long, and one voice per (part, pitch): unison doublings starting together merge into the
    longer note, and a re-strike of a sounding note ends it (as a MIDI synth would)."""
    by_key: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    for n in notes:
        s = int(round(n.start / STEP_SECONDS))
        e = s + 1 if n.part == DRUM_PART else max(s + 1, int(round(n.end / STEP_SECONDS)))
        by_key.setdefault((n.part, n.pitch), []).append((s, e, n.velocity))
    out = []
    for (part, pitch), items in by_key.items():
        items.sort()
        merged: list[list[int]] = []
        for s, e, v in items:
            if merged and s == merged[-1][0]:
                merged[-1][1] = max(merged[-1][1], e)
                continue
            if merged and s < merged[-1][1] and part != DRUM_PART:
                merged[-1][1] = s
            merged.append([s, e, v])
        for s, e, v in merged:
            end = s * STEP_SECONDS + DRUM_HIT_SECONDS if part == DRUM_PART else e * STEP_SECONDS
            out.append(Note(s * STEP_SECONDS, end, pitch, v, part))
    out.sort(key=lambda n: (n.start, n.part, n.pitch))
    return out


def encode_notes(notes: Iterable[Note], bos: bool = True) -> np.ndarray:
    """Notes -> int32 token ids (see module docstring and :func:`normalise`)."""
    events = []  # (step, order, part, pitch, velocity); order 0 = off, 1 = on
    for n in normalise(notes):
        s = int(round(n.start / STEP_SECONDS))
        events.append((s, 1, n.part, n.pitch, n.velocity))
        if n.part != DRUM_PART:
            events.append((int(round(n.end / STEP_SECONDS)), 0, n.part, n.pitch, 0))
    events.sort()
    out = [BOS] if bos else []
    now, part, vel = 0, -1, -1
    for step, order, p, pitch, velocity in events:
        gap = step - now
        while gap > 0:
            n = min(gap, MAX_SHIFT)
            out.append(SHIFT0 + n - 1)
            gap -= n
        now = step
        if p != part:
            out.append(PART0 + p)
            part = p
        if order == 1:
            vb = velocity_bin(velocity)
            if vb != vel:
                out.append(VEL0 + vb)
                vel = vb
            out.append(ON0 + pitch)
        else:
            out.append(OFF0 + pitch)
    return np.asarray(out, np.int32)


def midi_to_tokens(midi, bos: bool = True) -> np.ndarray:
    return encode_notes(read_notes(midi), bos=bos)


# ---- tokens -> events -> notes / MIDI ---------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Event:
    """A decoded note event at ``step`` (10 ms units since the decoder started)."""

    step: int
    on: bool
    part: int
    pitch: int
    velocity: int = 0


class Decoder:
    """Token-by-token state machine: current time, part and velocity.

    The real-time scheduler feeds sampled tokens one at a time; the offline decoder feeds a whole
    sequence. It emits raw events (including NOTE_OFFs of notes that are not sounding); pairing
    and stuck-note protection belong to the consumer (:func:`events_to_notes`, the scheduler).
    """

    def __init__(self):
        self.step = 0
        self.part = 0
        self.velocity = bin_velocity(12)

    def feed(self, token: int) -> Event | None:
        token = int(token)
        if PART0 <= token < VEL0:
            self.part = token - PART0
        elif VEL0 <= token < ON0:
            self.velocity = bin_velocity(token - VEL0)
        elif ON0 <= token < OFF0:
            return Event(self.step, True, self.part, token - ON0, self.velocity)
        elif OFF0 <= token < SHIFT0:
            return Event(self.step, False, self.part, token - OFF0)
        elif SHIFT0 <= token < VOCAB:
            self.step += token - SHIFT0 + 1
        return None

    def feed_all(self, tokens: Iterable[int]) -> Iterator[Event]:
        for t in tokens:
            ev = self.feed(t)
            if ev is not None:
                yield ev


def events_to_notes(events: Iterable[Event], max_seconds: float = 8.0) -> list[Note]:
    """Pair note-ons with note-offs (a re-struck sounding note ends the previous one; drum hits
    last ``DRUM_HIT_SECONDS``; unterminated notes end after ``max_seconds``)."""
    notes: list[Note] = []
    active: dict[tuple[int, int], tuple[int, int]] = {}
    last = 0
    for ev in events:
        last = max(last, ev.step)
        key = (ev.part, ev.pitch)
        if ev.on and ev.part == DRUM_PART:
            t = ev.step * STEP_SECONDS
            notes.append(Note(t, t + DRUM_HIT_SECONDS, ev.pitch, ev.velocity, ev.part))
            continue
        if key in active:
            s, v = active.pop(key)
            notes.append(Note(s * STEP_SECONDS, max(ev.step, s + 1) * STEP_SECONDS, ev.pitch, v, ev.part))
        if ev.on:
            active[key] = (ev.step, ev.velocity)
    for (part, pitch), (s, v) in active.items():
        end = min(max(last, s + 1) * STEP_SECONDS, s * STEP_SECONDS + max_seconds)
        notes.append(Note(s * STEP_SECONDS, end, pitch, v, part))
    notes.sort(key=lambda n: (n.start, n.part, n.pitch))
    return notes


def tokens_to_notes(tokens: Iterable[int]) -> list[Note]:
    return events_to_notes(Decoder().feed_all(tokens))


def notes_to_midi(notes: Iterable[Note], programs: dict[int, int] | None = None,
                  ticks_per_beat: int = 480) -> mido.MidiFile:
    """Notes -> a type-0 MIDI file at 120 bpm; ``programs`` maps part -> GM program (default: the
    first program of the family)."""
    programs = programs or {}
    msgs = []  # (seconds, order, message)
    used = sorted({n.part for n in notes})
    for part in used:
        if part != DRUM_PART:
            prog = programs.get(part, part * 8)
            msgs.append((0.0, -1, mido.Message("program_change", channel=part_channel(part), program=prog)))
    for n in notes:
        ch = part_channel(n.part)
        msgs.append((n.start, 1, mido.Message("note_on", channel=ch, note=n.pitch, velocity=max(1, n.velocity))))
        msgs.append((n.end, 0, mido.Message("note_off", channel=ch, note=n.pitch, velocity=0)))
    return messages_to_midi(msgs, ticks_per_beat)


def tokens_to_midi(tokens: Iterable[int], path=None, programs: dict[int, int] | None = None) -> mido.MidiFile:
    mf = notes_to_midi(tokens_to_notes(tokens), programs)
    if path is not None:
        mf.save(str(path))
    return mf
