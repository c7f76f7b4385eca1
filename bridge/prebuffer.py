"""The adaptive pre-buffer: how much generated audio the daemon keeps ahead of playback, right now.

Why adaptive: the pre-buffer is most of what a listener waits for after moving a knob, so it should be
as small as the machine allows; but how much the machine allows changes while it runs (another job
starts, a prompt makes the model slower). The daemon therefore starts at the model's setting (see
``generator.core.contract.Latency``), which is a floor, grows the pre-buffer at once (x1.5, up to a
cap) when an underrun came near, and gives it back slowly (10 % after 30 s without a near miss) so
one slow moment does not cost latency for the rest of the session. Measured on the groove model under load
(docs/benchmarks.md): these steps gave 0 underruns in an hour, at the cost of a pre-buffer above its floor 47 %
of the time; x1.25 with 10 s steps halved the latency tail but underran in 30 minutes, when a second slow block
followed the first within seconds.

A near miss is either of:

- a block arrived with less audio still buffered than the danger level: two JACK periods (the JACK
  callback fades out as soon as the *next* period would run dry) plus a margin of an eighth of the
  pre-buffer, at least 5 ms; a block that arrives with more than that left had time to spare;
- the JACK callback counted an underrun.

One slow moment grows it once. After a growth the buffer holds less than the new target until the
generator has caught up, so the blocks written while it refills arrive "short" because of the moment
that grew it, not a new one: they neither grow nor shrink it, until a block tops the buffer up to the
target (an underrun still grows it at once). Before this rule, one 84 ms block in a loaded soak
(2026-12-07) compounded through the next five catch-up blocks into 80 -> 1000 ms, and 10 % steps per
calm 30 s then took twelve minutes to bring it back.

As a block is requested as soon as less than the pre-buffer is left, and JACK takes a period at a time,
a block arrives with the pre-buffer less up to one period and less what JACK took during its compute. With
long periods (1024 frames, 21 ms) a slow block therefore comes near more often, and the pre-buffer settles
higher (measured with the groove model: ~110 ms at 1024 frames); with a live setting of 256 frames it stays
at the model's floor unless the machine is loaded.

Threads: the generation thread (``bridge.engine``) owns an :class:`AdaptivePrebuffer` and is the only
one that calls its methods; the JACK process callback (``bridge.jack_io``) reads :attr:`frames`, a
plain int attribute replaced whole (atomic under the GIL), so both always use the same current value
and the real-time thread never calls, allocates or locks. Pure Python, no JACK: tested on its own.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from generator.core.contract import SAMPLE_RATE

log = logging.getLogger(__name__)

GROW = 1.5  # a near miss multiplies the pre-buffer by this (at once)
SHRINK = 0.9  # each calm period takes 10 % off, down to the floor
MARGIN_MS = 5  # the least a block must arrive with, above two JACK periods
MARGIN_FRACTION = 1 / 8  # ... and at least this share of the pre-buffer
CALM_SECONDS = 30.0  # how long without a near miss before shrinking a step
MIN_CAP_SECONDS = 1.0  # the cap is at least this, and at least twice the "safe" setting's pre-buffer


POLICY_KEYS = {"grow": "grow", "shrink": "shrink", "calm": "calm_seconds", "margin": "margin_fraction"}


def parse_policy(text: str) -> dict:
    """``grow=1.25,calm=10`` (the daemon's ``--prebuffer-adapt``) -> :class:`AdaptivePrebuffer` keyword arguments.

    Keys: ``grow`` (x on a near miss, >= 1; 1 = never grow), ``shrink`` (x per calm period, in (0, 1]), ``calm``
    (seconds without a near miss per shrink step, > 0), ``margin`` (the danger level's share of the pre-buffer above
    two periods, 0-1). Raises ValueError with one line naming the bad part.
    """
    kwargs: dict = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, eq, value = item.partition("=")
        if key not in POLICY_KEYS or not eq:
            raise ValueError(f"pre-buffer policy {text!r}: {item!r} is not KEY=VALUE with KEY one of "
                             f"{', '.join(POLICY_KEYS)}")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"pre-buffer policy {text!r}: {key} must be a number, not {value!r}") from None
        ok = {"grow": 1.0 <= number <= 4.0, "shrink": 0.0 < number <= 1.0, "calm": 0.0 < number <= 3600.0,
              "margin": 0.0 <= number <= 1.0}[key]
        if not ok:
            raise ValueError(f"pre-buffer policy {text!r}: {key}={value} is out of range (grow 1-4, shrink (0, 1], "
                             "calm (0, 3600] s, margin 0-1)")
        kwargs[POLICY_KEYS[key]] = number
    return kwargs


def cap_seconds(safe_prebuffer_seconds: float, floor_seconds: float) -> float:
    """The largest pre-buffer the daemon grows to: max(1 s, 2x the safe setting's, the floor)."""
    return max(MIN_CAP_SECONDS, 2.0 * safe_prebuffer_seconds, floor_seconds)


class AdaptivePrebuffer:
    """The current pre-buffer in audio frames (samples per channel), between a floor and a cap.

    Args:
      floor_seconds: where it starts and what it never goes below (the latency setting's, or --prebuffer).
      cap_seconds: what it never grows past (size the ring buffer for this).
      clock: monotonic seconds (tests pass a fake one).

    Attributes:
      frames: the current pre-buffer; read by the JACK callback, replaced whole by :meth:`near_miss`
        and :meth:`calm`.
      floor, cap: the bounds, in frames.
      near_misses: how many near misses grew (or tried to grow) it so far.
      refilling: a near miss grew it and no block has topped the buffer up to it since.
    """

    def __init__(self, floor_seconds: float, cap_seconds: float,
                 clock: Callable[[], float] = time.monotonic, *, grow: float = GROW, shrink: float = SHRINK,
                 calm_seconds: float = CALM_SECONDS, margin_fraction: float = MARGIN_FRACTION):
        self.grow, self.shrink, self.calm_seconds = grow, shrink, calm_seconds  # the policy (bench/prebuffer_replay.py)
        self.margin_fraction = margin_fraction
        self.floor = max(1, int(round(floor_seconds * SAMPLE_RATE)))
        self.cap = max(self.floor, int(round(cap_seconds * SAMPLE_RATE)))
        self.frames = self.floor
        self.near_misses = 0
        self.refilling = False
        self._clock = clock
        self._calm_since = clock()

    @property
    def seconds(self) -> float:
        return self.frames / SAMPLE_RATE

    def danger_frames(self, block_samples: int, period: int | None) -> int:
        """Buffered audio below which a block's arrival is a near miss (see the module docstring)."""
        period = period or 0
        return 2 * period + max(SAMPLE_RATE * MARGIN_MS // 1000, int(self.frames * self.margin_fraction))

    def check_arrival(self, buffered: int, block_samples: int, period: int | None) -> bool:
        """A block is about to be written with ``buffered`` frames still queued: grow when that is a
        near miss, else maybe shrink. Returns True on a near miss (while refilling: without growing)."""
        short = buffered < self.danger_frames(block_samples, period)
        if self.refilling:  # still catching up with the last growth: the same slow moment
            self.refilling = buffered + block_samples < self.frames
            self._calm_since = self._clock()
            return short
        if short:
            self.near_miss(f"a block arrived with {1000 * buffered / SAMPLE_RATE:.0f} ms left")
            return True
        self.calm()
        return False

    def near_miss(self, why: str) -> None:
        """Grow at once (x1.5, capped), restart the calm period, and wait for the refill."""
        self.near_misses += 1
        self._calm_since = self._clock()
        self.refilling = True
        grown = min(self.cap, int(self.frames * self.grow))
        if grown > self.frames:
            log.info("pre-buffer %d -> %d ms (%s)", self.frames * 1000 // SAMPLE_RATE,
                     grown * 1000 // SAMPLE_RATE, why)
            self.frames = grown

    def calm(self) -> None:
        """No near miss now: after :data:`CALM_SECONDS` of that, shrink a step toward the floor."""
        now = self._clock()
        if self.frames > self.floor and now - self._calm_since >= self.calm_seconds:
            self._calm_since = now
            shrunk = max(self.floor, int(self.frames * self.shrink))
            log.info("pre-buffer %d -> %d ms (calm for %.0f s)", self.frames * 1000 // SAMPLE_RATE,
                      shrunk * 1000 // SAMPLE_RATE, self.calm_seconds)
            self.frames = shrunk
