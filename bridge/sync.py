"""One musical clock for the daemon: where the next block's first sample falls in the studio's song.

A *sync source* answers one question before each block: at the stream sample where this block starts
(and the wall time at which it will sound), what is the :class:`~generator.core.contract.MusicalPosition`
of an external clock (beats since bar 1 beat 1, metre, tempo), or None (not rolling, or unknown)?
The engine passes the answer to the generator as ``GenerationControls.clock``; a model that follows a
clock (``Generator.follows_clock``, the groove family) plays on that grid, re-phasing at the next beat.

Sources (``jamgen run --sync internal|jack|midi|link``, or the mapping file's top-level ``sync:``; the
command line wins):

* ``internal`` (default): jamgen keeps its own time (the ``bpm`` control, or the prompt's tempo); no clock.
* ``jack``: the JACK transport (:mod:`bridge.sync_jack`): the timebase master's bar, beat, tick and tempo,
  extrapolated to the block's first sample through the audio already buffered.
* ``midi``: MIDI clock, start, continue, stop and song position on ``<client>:midi_in``
  (:mod:`bridge.sync_midi`), with a least-squares tempo estimate that is steady under jitter.
* ``link``: an Ableton Link session's tempo and bar phase (:mod:`bridge.sync_link`); Link needs the GPL
  ``aalink`` package, kept out of the default install (``pip install 'jamgen[link]'``); without it
  ``jamgen run --sync link`` exits with one line saying so.

The transport follows the clock (a documented choice): with ``jack`` or ``midi``, jamgen plays only while
the clock rolls. A start triggers ``play`` (the JACK callback starts exactly at a planned period boundary,
so the first block's position is known before it is generated); a stop triggers ``stop`` (every sounding
note ends at once, the context is cleared, and the next start joins the song where the clock is). Only
changes are acted on, so ``/jamgen/play`` while the clock is stopped still plays, in jamgen's own time.
A source also keeps the ``bpm`` control at the clock's tempo (so surfaces show it) and publishes a one-line
status to OSC subscribers at ``/jamgen/sync`` ("jack rolling 120.0 BPM 4/4 bar 5", "jack stopped",
"jack: no BBT, using bpm").

Threading: everything here runs on the generation thread (``jamgen-generate``): the engine calls
:meth:`SyncSource.poll` on every turn of its loop (every 2-10 ms, playing or not: transport changes,
queued MIDI clock) and :meth:`SyncSource.position` before each block. The JACK process callback only
stamps MIDI clock messages with their frame time (:attr:`bridge.jack_io.JackOutput.sync_queue`) and plays
from a planned frame time (:meth:`bridge.jack_io.JackOutput.plan_start`); it never calls in here.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable

from bridge.controls import REGISTRY, ControlStore
from generator.core.contract import SAMPLE_RATE, MusicalPosition

log = logging.getLogger(__name__)

SYNC_SOURCES = ("internal", "jack", "midi", "link")
LINK_EXTRA = "pip install 'jamgen[link]'"
STATUS_ADDRESS = "/jamgen/sync"
BPM_STEP = 0.1  # the bpm control shows the clock's tempo to this resolution
BPM_HYSTERESIS = 0.3  # and moves only when the clock's tempo moved this far (a MIDI estimate wobbles)
REPUBLISH_SECONDS = 2.0  # the status is sent again this often, so a surface that just subscribed gets it
FRAME_MASK = 0xFFFFFFFF

Publish = Callable[[str, Any], None]


class SyncError(Exception):
    """A sync source that cannot be used; the message is one line."""


def frame_diff(a: int, b: int) -> int:
    """``a - b`` for 32-bit JACK frame times that wrap."""
    return ((a - b + 0x80000000) & FRAME_MASK) - 0x80000000


def bbt_beats(bar: int, beat: int, tick: float, ticks_per_beat: float, beats_per_bar: float,
              beat_type: float) -> tuple[float, float]:
    """JACK's bar/beat/tick (1-based bar and beat, beats of ``beat_type`` notes) -> (quarter-note beats
    since bar 1 beat 1, quarter-note beats per bar): 6/8 bar 2 beat 4 is (3.0 + 1.5, 3.0)."""
    quarter = 4.0 / beat_type if beat_type > 0 else 1.0
    tpb = ticks_per_beat if ticks_per_beat > 0 else 1.0
    beats = (bar - 1) * beats_per_bar + (beat - 1) + tick / tpb
    return beats * quarter, beats_per_bar * quarter


def extrapolate(beat: float, bpm: float, frames: float, rate: int = SAMPLE_RATE) -> float:
    """The quarter-note beat ``frames`` after a point at ``beat``, at ``bpm`` quarter notes per minute."""
    return beat + frames / rate * bpm / 60.0


def describe(name: str, position: MusicalPosition | None, rolling: bool, metre: str | None = None) -> str:
    """The ``/jamgen/sync`` line: "jack rolling 120.0 BPM 4/4 bar 5", "midi stopped"."""
    if not rolling:
        return f"{name} stopped"
    if position is None:
        return f"{name} rolling"
    bar = max(1, int(math.floor(position.beat / position.beats_per_bar + 1e-9)) + 1)
    metre = metre or f"{position.beats_per_bar:g}/4"
    return f"{name} rolling {position.bpm:.1f} BPM {metre} bar {bar}"


class SyncSource:
    """The ``internal`` source (jamgen keeps its own time) and what every source shares.

    Args:
      store: the live controls (``bpm`` is kept at the clock's tempo; ``play``/``stop`` follow the clock).
      publish: sends ``(address, value)`` to OSC subscribers (the daemon's OSC server), or does nothing.

    Attributes:
      lead: returns how many frames ahead of now a start is planned (:meth:`bridge.jack_io.JackOutput.plan_start`):
        enough for the engine to fill the pre-buffer first. The daemon sets it (pre-buffer, two blocks,
        three periods and a margin).
    """

    name = "internal"
    follows_transport = False  # True: jamgen plays only while this clock rolls

    def __init__(self, store: ControlStore, publish: Publish | None = None):
        self.store = store
        self.publish = publish or (lambda address, value: None)
        self.status = ""
        self.rolling = False
        self._said: set[str] = set()
        self._published_at = 0.0
        self._next_poll = 0.0
        self.jack = None  # the daemon's JackOutput, for sources that read JACK's time
        self.lead: Callable[[], int] = lambda: int(0.25 * SAMPLE_RATE)

    # --- what the engine calls (generation thread) ---------------------------------------------
    def poll(self) -> None:
        """Look at the clock (transport changes, queued clock messages); called every 2-10 ms."""

    def position(self, sample: int, sounds_at: float) -> MusicalPosition | None:
        """The clock's position at stream sample ``sample`` (the next block's first), which will sound
        at wall time ``sounds_at``; None when jamgen keeps its own time."""
        return None

    def close(self) -> None:
        """Release what the source holds (a timebase, a Link session)."""

    # --- shared helpers -------------------------------------------------------------------------
    def start_stopped(self) -> None:
        """Before the engine starts: a source that owns the transport waits for its clock to roll."""
        if self.follows_transport and self.store.transport != "stopped":
            self.store.trigger("stop", source=f"sync {self.name}")
            self._set_status(f"{self.name} stopped")

    def _transport(self, rolling: bool) -> bool:
        """Act on a change of the clock's state (play on start, stop on stop); True when it changed."""
        if rolling == self.rolling:
            return False
        self.rolling = rolling
        if self.follows_transport:
            self.store.trigger("play" if rolling else "stop", source=f"sync {self.name}")
        return True

    def _follow_bpm(self, bpm: float) -> None:
        """Keep the ``bpm`` control at the clock's tempo (so OSC feedback and surfaces show it)."""
        control = REGISTRY["bpm"]
        bpm = min(control.maximum, max(20.0, bpm))
        if abs(bpm - float(self.store.get("bpm"))) >= BPM_HYSTERESIS:
            self.store.set("bpm", round(bpm / BPM_STEP) * BPM_STEP, source=f"sync {self.name}")

    def _set_status(self, status: str) -> None:
        """Publish the status line when it changes (log it when its first word pair changes)."""
        if status == self.status:
            return
        if status.split(" ")[:2] != self.status.split(" ")[:2]:
            log.info("sync: %s", status)
        self.status = status
        self._send_status()

    def _housekeeping(self) -> None:
        """What every poll does: report a JACK catch-up, send the status again now and then."""
        self._report_catch_up(self.jack)
        self._republish()

    def _due(self, every: float) -> bool:
        """True at most once per ``every`` seconds (a source that polls its clock less often than the engine
        calls ``poll``), after the :meth:`_housekeeping` every due poll does."""
        now = time.monotonic()
        if now < self._next_poll:
            return False
        self._next_poll = now + every
        self._housekeeping()
        return True

    def _republish(self) -> None:
        """Send the status again now and then (from ``poll``): a surface that subscribed late still gets it."""
        if self.status and time.monotonic() - self._published_at >= REPUBLISH_SECONDS:
            self._send_status()

    def _send_status(self) -> None:
        self._published_at = time.monotonic()
        try:
            self.publish(STATUS_ADDRESS, self.status)
        except Exception as err:  # noqa: BLE001 - feedback must never stop the clock
            log.debug("sync: publishing the status failed: %s", err)

    def _keep_time(self, jack_output) -> None:
        """Ask the JACK callback to stay on the clock's time after a missed period (see JackOutput._catch_up)."""
        self._caught_up = 0
        if jack_output is not None:
            jack_output.keep_time = True

    def _report_catch_up(self, jack_output) -> None:
        """Log when the JACK callback dropped audio to stay on the clock (after an xrun)."""
        caught = jack_output.caught_up if jack_output is not None else 0
        if caught != self._caught_up:
            log.info("sync: JACK skipped a period of ours; dropped %d frames to stay on the clock", caught - self._caught_up)
            self._caught_up = caught

    def _say_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._said:
            self._said.add(key)
            log.warning(message, *args)


def check_available(kind: str) -> None:
    """Refuse a sync source that cannot run here (one line); ``link`` needs its optional extra."""
    if kind not in SYNC_SOURCES:
        raise SyncError(f"unknown sync source {kind!r} (one of: {', '.join(SYNC_SOURCES)})")
    if kind == "link":
        try:
            import aalink  # noqa: F401  (GPL: an optional extra, never a default dependency)
        except ImportError:
            raise SyncError(f"--sync link needs Ableton Link, which is not installed: {LINK_EXTRA}") from None
