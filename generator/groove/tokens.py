"""The groove family's beat-grid, multi-track vocabulary (REMI-like): bars, positions, parts, notes.

Why a beat grid: a small model that must count 10 ms time shifts to keep a beat loses it (the
``symbolic`` family's measured weakness; Huang & Yang 2020, "Pop Music Transformer"). Here metre is
structural: every note sits at a position of a bar, so a pulse costs the model nothing to keep, and
every note carries its duration, so a note cannot outlive it. Tempo is not in the tokens at all: the
real-time scheduler turns grid ticks into samples at the tempo in force (a live control).

The grid has :data:`TPB` = 12 ticks per quarter-note beat, which holds straight 16ths (3 ticks),
8th-note triplets (4), 16th triplets (2), swung 8ths (0 and 8) and swung 16ths (0, 4, 6, 10).

Token stream of one bar (tokens in capitals; ``*`` repeats)::

    BAR TS_<n/d> ( POS_<tick> ( PART_<p> ( PITCH_<n> VEL_<v> [DUR_<d>] )* )* )*

- positions strictly increase within a bar and stay below its length;
- parts strictly increase within a position, pitches within a part (no note struck twice at once);
- drum notes (part :data:`DRUM_PART`) carry no DUR: a hit lasts :data:`DRUM_TICKS`.

:class:`Grammar` says which tokens may follow (the sampler masks the rest), :class:`Decoder` turns a
token stream into notes as it arrives, and :func:`encode_midi` / :func:`notes_to_midi` convert from
and to MIDI files for training data and tests.
"""

from __future__ import annotations

import bisect
import dataclasses
import io
import os
from typing import Iterable

import mido
import numpy as np

from generator.core import gm

TPB = 12  # grid ticks per quarter-note beat
DRUM_TICKS = 2  # how long a drum hit sounds (a 16th-note triplet)
TIME_SIGNATURES = ((4, 4), (3, 4), (2, 4), (6, 8), (5, 4), (12, 8), (9, 8), (7, 8), (6, 4), (3, 8))
DURATIONS = (*range(1, 13), 14, 16, 18, 20, 24, 28, 32, 36, 42, 48, 60, 72, 96)  # in ticks (96 = 2 bars of 4/4)
N_VEL = 8
N_PARTS, DRUM_PART = gm.N_PARTS, gm.DRUM_PART


def bar_ticks(ts: tuple[int, int]) -> int:
    """Length of a bar of time signature ``(numerator, denominator)`` in grid ticks."""
    return ts[0] * TPB * 4 // ts[1]


MAX_BAR = max(bar_ticks(ts) for ts in TIME_SIGNATURES)  # 72

# ---- token ids --------------------------------------------------------------------------------
PAD, BOS, BAR = 0, 1, 2
TS0 = 3
POS0 = TS0 + len(TIME_SIGNATURES)
PART0 = POS0 + MAX_BAR
PITCH0 = PART0 + N_PARTS
VEL0 = PITCH0 + 128
DUR0 = VEL0 + N_VEL
VOCAB = DUR0 + len(DURATIONS)

# token kinds (what the grammar reasons about)
K_PAD, K_BOS, K_BAR, K_TS, K_POS, K_PART, K_PITCH, K_VEL, K_DUR = range(9)
_STARTS = ((PAD, K_PAD), (BOS, K_BOS), (BAR, K_BAR), (TS0, K_TS), (POS0, K_POS), (PART0, K_PART),
           (PITCH0, K_PITCH), (VEL0, K_VEL), (DUR0, K_DUR))
KIND = np.zeros(VOCAB, np.int32)  # [V] kind of each token
VALUE = np.zeros(VOCAB, np.int32)  # [V] its value (tick, part, pitch, bin, index)
for (start, kind), end in zip(_STARTS, [s for s, _ in _STARTS[1:]] + [VOCAB]):
    KIND[start:end] = kind
    VALUE[start:end] = np.arange(end - start)
KIND.setflags(write=False)
VALUE.setflags(write=False)
TS_TICKS = np.array([bar_ticks(ts) for ts in TIME_SIGNATURES], np.int32)


def velocity_bin(velocity: int) -> int:
    return min(N_VEL - 1, max(0, int(velocity) - 1) // 16)


def bin_velocity(b: int) -> int:
    return 16 * int(b) + 8


def duration_index(ticks: float) -> int:
    """The DURATIONS entry nearest ``ticks`` on a log scale (at least one tick)."""
    t = max(1.0, float(ticks))
    i = bisect.bisect_left(DURATIONS, t)
    if i == 0:
        return 0
    if i == len(DURATIONS):
        return len(DURATIONS) - 1
    lo, hi = DURATIONS[i - 1], DURATIONS[i]
    return i - 1 if t * t < lo * hi else i


def time_signature_index(numerator: int, denominator: int) -> int | None:
    """Index into TIME_SIGNATURES (2/2 reads as 4/4); None when the metre is not representable."""
    if (numerator, denominator) == (2, 2):
        return 0
    try:
        return TIME_SIGNATURES.index((numerator, denominator))
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True)
class Note:
    """One note on the grid: ``start`` and ``duration`` in ticks from the start of the stream."""

    start: int
    duration: int
    pitch: int
    velocity: int
    part: int

    @property
    def end(self) -> int:
        return self.start + self.duration


@dataclasses.dataclass(frozen=True)
class Bar:
    start: int  # tick
    ts: int  # index into TIME_SIGNATURES

    @property
    def ticks(self) -> int:
        return int(TS_TICKS[self.ts])


# ---- grammar ----------------------------------------------------------------------------------
@dataclasses.dataclass
class GrammarState:
    """Where a token stream is: the last token's kind and the current bar length, position, part
    and pitch (-1 = none yet). The sampler keeps the same five numbers as traced integers."""

    last: int = K_BOS
    bar_len: int = 0
    pos: int = -1
    part: int = -1
    pitch: int = -1


def allowed(s: GrammarState, kind=KIND, value=VALUE, ts_ticks=TS_TICKS, xp=np):
    """Boolean mask [V] of the tokens that may follow state ``s`` (numpy or jax.numpy via ``xp``)."""
    drum = s.part == DRUM_PART
    note_done = (s.last == K_DUR) | ((s.last == K_VEL) & drum)
    ts_len = ts_ticks[xp.clip(value, 0, len(TIME_SIGNATURES) - 1)]
    return (
        ((kind == K_BAR) & ((s.last == K_BOS) | (s.last == K_TS) | note_done))
        | ((kind == K_TS) & (s.last == K_BAR) & (ts_len > 0))
        | ((kind == K_POS) & ((s.last == K_TS) | note_done) & (value > s.pos) & (value < s.bar_len))
        | ((kind == K_PART) & ((s.last == K_POS) | (note_done & (value > s.part))))
        | ((kind == K_PITCH) & ((s.last == K_PART) | (note_done & (value > s.pitch))))
        | ((kind == K_VEL) & (s.last == K_PITCH))
        | ((kind == K_DUR) & (s.last == K_VEL) & ~drum)
    )


def advance(s: GrammarState, token: int) -> GrammarState:
    """The state after ``token`` (a pure function of the five numbers, mirrored in the sampler)."""
    k, v = int(KIND[token]), int(VALUE[token])
    if k == K_BAR:
        return GrammarState(K_BAR, s.bar_len, -1, -1, -1)
    if k == K_TS:
        return GrammarState(K_TS, int(TS_TICKS[v]), -1, -1, -1)
    if k == K_POS:
        return GrammarState(K_POS, s.bar_len, v, -1, -1)
    if k == K_PART:
        return GrammarState(K_PART, s.bar_len, s.pos, v, -1)
    if k == K_PITCH:
        return GrammarState(K_PITCH, s.bar_len, s.pos, s.part, v)
    return GrammarState(k, s.bar_len, s.pos, s.part, s.pitch)


# ---- tokens -> notes (streaming) ---------------------------------------------------------------
class Decoder:
    """Turns a token stream into notes as tokens arrive; ``feed`` returns the note a token completes.

    Tokens the grammar forbids are counted in ``invalid`` and ignored, so a decoder never raises on
    a model's output. ``bar_start`` is the tick where the current bar began; ``bars`` counts bars.
    """

    def __init__(self):
        self.state = GrammarState()
        self.bar_start = 0
        self.bars = 0
        self.invalid = 0
        self._velocity = 0

    @property
    def tick(self) -> int:
        """The grid tick the stream has reached (the current position, or the bar start)."""
        return self.bar_start + max(self.state.pos, 0)

    def feed(self, token: int) -> Note | None:
        token = int(token)
        if not 0 <= token < VOCAB or not allowed(self.state)[token]:
            self.invalid += 1
            return None
        k, v = int(KIND[token]), int(VALUE[token])
        if k == K_BAR and self.bars:
            self.bar_start += self.state.bar_len
        if k == K_BAR:
            self.bars += 1
        self.state = advance(self.state, token)
        if k == K_VEL:
            self._velocity = bin_velocity(v)
            if self.state.part == DRUM_PART:
                return self._note(DRUM_TICKS)
        elif k == K_DUR:
            return self._note(DURATIONS[v])
        return None

    def _note(self, duration: int) -> Note:
        s = self.state
        return Note(self.bar_start + s.pos, duration, s.pitch, self._velocity, s.part)


def decode(tokens: Iterable[int]) -> tuple[list[Note], list[Bar]]:
    """All notes of a token stream, and its bars."""
    dec, notes, bars = Decoder(), [], []
    for t in tokens:
        invalid = dec.invalid
        note = dec.feed(t)
        if note is not None:
            notes.append(note)
        elif dec.invalid == invalid and KIND[int(t)] == K_TS:
            bars.append(Bar(dec.bar_start, int(VALUE[int(t)])))
    return notes, bars


# ---- notes -> tokens ---------------------------------------------------------------------------
def encode(notes: Iterable[Note], bars: list[Bar]) -> list[int]:
    """Tokens of ``notes`` laid on ``bars`` (consecutive, starting at tick 0). Notes are merged where
    the grammar allows one per (position, part, pitch): the longest and loudest wins."""
    by_bar: dict[int, dict[tuple[int, int, int], Note]] = {}
    starts = [b.start for b in bars]
    for n in notes:
        i = bisect.bisect_right(starts, n.start) - 1
        if i < 0 or n.start >= bars[i].start + bars[i].ticks:
            continue
        key = (n.start - bars[i].start, n.part, n.pitch)
        old = by_bar.setdefault(i, {}).get(key)
        if old is None or (n.duration, n.velocity) > (old.duration, old.velocity):
            by_bar[i][key] = n
    out = [BOS]
    for i, bar in enumerate(bars):
        out += [BAR, TS0 + bar.ts]
        pos = part = -1
        for (p, q, pitch), n in sorted(by_bar.get(i, {}).items()):
            if p != pos:
                out.append(POS0 + p)
                pos, part = p, -1
            if q != part:
                out.append(PART0 + q)
                part = q
            out += [PITCH0 + pitch, VEL0 + velocity_bin(n.velocity)]
            if q != DRUM_PART:
                out.append(DUR0 + duration_index(n.duration))
    return out


# ---- MIDI <-> notes -----------------------------------------------------------------------------
def _open(midi) -> mido.MidiFile:
    if isinstance(midi, mido.MidiFile):
        return midi
    if isinstance(midi, (bytes, bytearray)):
        return mido.MidiFile(file=io.BytesIO(midi))
    if isinstance(midi, (str, os.PathLike)):
        return mido.MidiFile(str(midi))
    return mido.MidiFile(file=midi)


def midi_notes(midi) -> tuple[list[Note], list[Bar]]:
    """Notes of a MIDI file on the grid (starts rounded to the nearest tick, durations to
    :data:`DURATIONS`, drum hits :data:`DRUM_TICKS`), and its bars from its time-signature events
    (4/4 where none is given).

    MIDI ticks become beats through the file's ``ticks_per_beat``, so the file's tempo does not matter.

    Raises:
      ValueError: the file changes to a metre jamgen cannot represent (not in TIME_SIGNATURES).
    """
    mf = _open(midi)
    scale = TPB / mf.ticks_per_beat
    programs = [0] * 16
    held: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    raw: list[tuple[int, int, int, int, int]] = []  # (start, end, pitch, velocity, part) in MIDI ticks
    signatures: list[tuple[int, int]] = []  # (grid tick, TIME_SIGNATURES index)
    now = 0
    for msg in mido.merge_tracks(mf.tracks):
        now += msg.time
        if msg.type == "time_signature":
            idx = time_signature_index(msg.numerator, msg.denominator)
            if idx is None:
                raise ValueError(f"unsupported time signature {msg.numerator}/{msg.denominator}")
            signatures.append((int(round(now * scale)), idx))
        elif msg.type == "program_change":
            programs[msg.channel] = msg.program
        elif msg.type == "note_on" and msg.velocity > 0:
            part = DRUM_PART if msg.channel == gm.DRUM_CHANNEL else gm.program_part(programs[msg.channel])
            held.setdefault((msg.channel, msg.note), []).append((now, msg.velocity, part))
        elif msg.type in ("note_off", "note_on"):
            stack = held.get((msg.channel, msg.note))
            if stack:
                start, vel, part = stack.pop(0)
                raw.append((start, now, msg.note, vel, part))
    for (_, pitch), stack in held.items():
        raw += [(start, now, pitch, vel, part) for start, vel, part in stack]
    notes = []
    for start, end, pitch, vel, part in raw:
        dur = DRUM_TICKS if part == DRUM_PART else DURATIONS[duration_index((end - start) * scale)]
        notes.append(Note(int(round(start * scale)), dur, pitch, vel, part))
    notes.sort(key=lambda n: (n.start, n.part, n.pitch))
    last = max((n.start for n in notes), default=0)
    return notes, bars_until(signatures, last + 1)


def bars_until(signatures: list[tuple[int, int]], end: int) -> list[Bar]:
    """Consecutive bars from tick 0 until they cover ``end``; ``signatures`` are ``(tick, ts index)``
    changes (a change takes effect at the first bar line at or after its tick; 4/4 before the first)."""
    changes = sorted(signatures)
    bars, tick, ts, k = [], 0, 0, 0
    while tick < end:
        while k < len(changes) and changes[k][0] <= tick:
            ts = changes[k][1]
            k += 1
        bars.append(Bar(tick, ts))
        tick += int(TS_TICKS[ts])
    return bars


def notes_to_midi(notes: Iterable[Note], bpm: float = 120.0, programs: dict[int, int] | None = None,
                  bars: list[Bar] | None = None) -> mido.MidiFile:
    """A MIDI file of grid notes at a fixed tempo (``TPB`` MIDI ticks per beat, so ticks are grid
    ticks); ``programs``: part -> GM program (default: the family's first program)."""
    mf = mido.MidiFile(type=0, ticks_per_beat=TPB)
    track = mido.MidiTrack()
    mf.tracks.append(track)
    events = [(0, 0, mido.MetaMessage("set_tempo", tempo=int(round(60_000_000 / bpm))))]
    last_ts = None
    for bar in bars or ():
        if bar.ts != last_ts:
            num, den = TIME_SIGNATURES[bar.ts]
            events.append((bar.start, 0, mido.MetaMessage("time_signature", numerator=num, denominator=den)))
            last_ts = bar.ts
    for part in sorted({n.part for n in notes} - {DRUM_PART}):
        program = (programs or {}).get(part, part * 8)
        events.append((0, 1, mido.Message("program_change", channel=gm.part_channel(part), program=program)))
    for n in notes:
        ch = gm.part_channel(n.part)
        events.append((n.start, 3, mido.Message("note_on", channel=ch, note=n.pitch, velocity=n.velocity)))
        events.append((n.end, 2, mido.Message("note_off", channel=ch, note=n.pitch, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1]))
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    return mf


def encode_midi(midi) -> list[int]:
    """Tokens of a MIDI file (see :func:`midi_notes`)."""
    return encode(*midi_notes(midi))
