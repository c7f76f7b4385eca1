"""Playing in time with an external clock (the DAW's transport, MIDI clock, Link): bar lines on the host's.

Why here: the groove stream has its own grid (ticks from its first bar), while the daemon's sync source says where
the host's beat and bar are at each block's first sample (:class:`generator.core.contract.MusicalPosition`). Tempo
is followed by the tick clock itself (the host's tempo at every block); this module keeps the *phase*: the bar the
stream is in must start where the host's bar does.

- The metre is locked: the TS tokens the sampler may choose are those whose bar is the host's bar length
  (:func:`metre_index`), so once locked, every new bar has the host's length.
- Every block compares the stream's bar phase at its first sample (from the bars it decoded, :class:`BarMarks`)
  with the host's. A drift below one tick is nudged away (the clock moves by a fraction of a tick); a larger error
  (the first block of a sync, a relocation, a metre change) is a re-phase: the stream waits (rest) or skips ahead,
  whichever is shorter, so that its bar line falls on the host's from this block on.
"""

from __future__ import annotations

import collections

from generator.groove import tokens as G

NUDGE_TICKS = 1.0  # errors up to this are corrected smoothly; larger ones re-phase


def metre_index(beats_per_bar: float) -> int | None:
    """The TIME_SIGNATURES index whose bar lasts ``beats_per_bar`` quarter notes (the first such: 3 -> 3/4, not
    6/8), or None when the vocabulary has none."""
    ticks = round(float(beats_per_bar) * G.TPB)
    for i, length in enumerate(G.TS_TICKS):
        if int(length) == ticks:
            return i
    return None


def phase_error(stream_phase: float, host_phase: float, period: float) -> float:
    """``stream - host`` wrapped into (-period/2, period/2]: > 0 when the stream is ahead of the host."""
    d = (stream_phase - host_phase) % period
    return d - period if d > period / 2 else d


class BarMarks:
    """Where the stream's recent bars start (ticks) and how long they are, by the token that began each (a rewind
    forgets the bars it takes back)."""

    def __init__(self):
        self.marks: collections.deque[tuple[int, int, int]] = collections.deque(maxlen=32)  # (index, start, ticks)

    def record(self, index: int, start: int, ticks: int) -> None:
        self.marks.append((int(index), int(start), int(ticks)))

    def truncate(self, cut: int) -> None:
        while self.marks and self.marks[-1][0] >= cut:
            self.marks.pop()

    def phase(self, tick: float) -> tuple[float, int] | None:
        """(ticks since the bar containing ``tick`` began, that bar's length), or None before any bar."""
        for _, start, ticks in reversed(self.marks):
            if start <= tick:
                return (tick - start) % ticks, ticks
        return None
