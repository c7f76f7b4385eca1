"""``--sync midi``: MIDI clock (24 per quarter note), start, continue, stop and song position pointer.

The messages arrive on ``<client>:midi_in`` (hardware inputs connected by the mapping file's
``midi.inputs`` included). The JACK process callback stamps each with its JACK frame time (the period's
``last_frame_time`` plus the event's offset) and puts it on this source's queue instead of the mappings'
(:attr:`bridge.jack_io.JackOutput.sync_queue`; other messages still go to the mappings, so a drum
machine's clock and a controller's knobs share one input). The generation thread drains the queue in
:meth:`MidiClockSync.poll`.

Tempo and phase: :class:`ClockEstimator` fits ``time = a + b * n`` (n = the clock's count) by least
squares over the last two beats of clock timestamps, so +-2 ms of jitter moves the tempo by hundredths of
a BPM and the phase by a fraction of a millisecond. A single clock far off the fit is ignored; two in a row
(a tempo jump, or a clock that paused) restart the fit. A block's position is the fitted clock count at the
frame time its first sample plays (:meth:`bridge.jack_io.JackOutput.frame_time_of`), over 24.

Song position: after start (0xFA) the next clock is beat 0; continue (0xFB) resumes at the last song
position pointer (0xF2, in sixteenths) or where stop (0xFC) left it. Start and continue trigger ``play``,
stop triggers ``stop`` (see :mod:`bridge.sync`); MIDI clock has no metre, so bars are 4/4.

Not done yet: sending clock on ``<client>:midi_out`` (jamgen as the clock master).

Threading: the generation thread only (the queue is filled by the JACK callback).
"""

from __future__ import annotations

import collections
import logging
import queue
import time

from bridge.sync import SyncSource, describe, frame_diff
from generator.core.contract import SAMPLE_RATE, MusicalPosition

log = logging.getLogger(__name__)

PPQN = 24
CLOCK, START, CONTINUE, STOP, SONG_POSITION = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
WINDOW = 2 * PPQN  # clocks in the tempo fit: the last two beats
MIN_POINTS = 6  # clocks before the fit is trusted (a quarter of a beat)
OUTLIER = 0.5  # a clock further than this many intervals from the fit is suspect
LOST_SECONDS = 1.0  # no clock for this long while rolling: say so (and keep going at the last tempo)


class ClockEstimator:
    """Least-squares fit of clock timestamps: ``time(n) = a + b * n`` over the last ``window`` clocks.

    Times are in frames (any unit works; ``rate`` converts ``b`` to a tempo). Pure, no threads.
    """

    def __init__(self, window: int = WINDOW, rate: int = SAMPLE_RATE, ppqn: int = PPQN):
        self.points: collections.deque[tuple[int, float]] = collections.deque(maxlen=window)
        self.rate, self.ppqn = rate, ppqn
        self._suspect: tuple[int, float] | None = None
        self._fit: tuple[int, float, float] | None = None  # (n0, time at n0, interval)
        self.restarts = 0

    @property
    def ready(self) -> bool:
        return self._fit is not None and len(self.points) >= MIN_POINTS

    @property
    def interval(self) -> float:
        """Frames per clock."""
        return self._fit[2] if self._fit is not None else 0.0

    @property
    def bpm(self) -> float:
        return 60.0 * self.rate / (self.ppqn * self.interval) if self.interval > 0 else 0.0

    def time_of(self, n: float) -> float:
        n0, t0, b = self._fit
        return t0 + (n - n0) * b

    def clock_at(self, t: float) -> float:
        """The (fractional) clock count at time ``t``."""
        n0, t0, b = self._fit
        return n0 + (t - t0) / b

    def add(self, n: int, t: float) -> None:
        """Clock number ``n`` arrived at time ``t``."""
        if self._fit is not None and len(self.points) >= 2:
            off = abs(t - self.time_of(n)) > OUTLIER * self.interval
            if off and self._suspect is None:
                self._suspect = (n, t)  # one late or early clock: wait for the next to decide
                return
            if off:  # two in a row: the tempo jumped, or the clock paused
                self.points.clear()
                self.points.append(self._suspect)
                self.restarts += 1
            self._suspect = None
        self.points.append((n, t))
        self._refit()

    def _refit(self) -> None:
        if len(self.points) < 2:
            self._fit = None
            return
        n_last, t_last = self.points[-1]
        xs = [n - n_last for n, _ in self.points]
        ys = [t - t_last for _, t in self.points]
        k = len(xs)
        mx, my = sum(xs) / k, sum(ys) / k
        sxx = sum((x - mx) ** 2 for x in xs)
        b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
        if b <= 0:
            self._fit = None
            return
        self._fit = (n_last, t_last + my - b * mx, b)  # the line's value at n_last


class MidiClockSync(SyncSource):
    """MIDI clock as jamgen's clock (see the module docstring).

    Args:
      store: the live controls.
      jack_output: the daemon's :class:`bridge.jack_io.JackOutput` (its sync queue, its stream-to-frame
        map); None in unit tests, which call :meth:`feed` and :meth:`position_at` directly.
      publish: OSC feedback for the ``/jamgen/sync`` status.
    """

    name = "midi"
    follows_transport = True

    def __init__(self, store, jack_output=None, publish=None, rate: int = SAMPLE_RATE):
        super().__init__(store, publish)
        self.jack = jack_output
        self.rate = rate
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        if jack_output is not None:
            jack_output.sync_queue = self.queue
        self._keep_time(jack_output)
        self.estimator = ClockEstimator(rate=rate)
        self.clocks = 0  # clocks received, ever
        self.song_clock = 0  # song position (in clocks) of clock number song_n0
        self.song_n0 = 1
        self.pointer = 0  # song position (clocks) a continue resumes at
        self._raw: int | None = None  # the last event's frame time as JACK gave it (32-bit)
        self._t = 0.0  # ... unwrapped
        self._started_at = 0.0  # unwrapped time of the last start/continue
        self._last_clock_wall = 0.0

    # --- input -----------------------------------------------------------------------------
    def poll(self) -> None:
        while True:
            try:
                frame, data = self.queue.get_nowait()
            except queue.Empty:
                break
            self.feed(frame, data)
        self._housekeeping()
        if self.rolling and time.monotonic() - self._last_clock_wall > LOST_SECONDS:
            self._set_status("midi: clock lost, keeping its last tempo")

    def _unwrap(self, frame: int) -> float:
        if self._raw is not None:
            self._t += frame_diff(frame, self._raw)
        else:
            self._t = float(frame)
        self._raw = frame
        return self._t

    def feed(self, frame: int, data: bytes) -> None:
        """One clock message at JACK frame time ``frame``."""
        t = self._unwrap(frame)
        status = data[0]
        if status == CLOCK:
            self.clocks += 1
            self.estimator.add(self.clocks, t)
            self._last_clock_wall = time.monotonic()
        elif status in (START, CONTINUE):
            self.song_clock = 0 if status == START else self.pointer
            self.song_n0 = self.clocks + 1  # the next clock is that song position
            self._started_at = t
            self._last_clock_wall = time.monotonic()
            if self._transport(True) and self.jack is not None:
                self.jack.plan_start(self.lead())
        elif status == STOP:
            if self.rolling:
                self.pointer = self.song_clock + max(0, self.clocks - self.song_n0 + 1)
            self._transport(False)
            self._set_status("midi stopped")
        elif status == SONG_POSITION and len(data) == 3:
            self.pointer = ((data[2] & 0x7F) << 7 | (data[1] & 0x7F)) * 6  # sixteenths -> clocks

    # --- output ----------------------------------------------------------------------------
    def position(self, sample: int, sounds_at: float) -> MusicalPosition | None:
        if not self.rolling or self.jack is None:
            return None
        when = self.jack.frame_time_of(sample)
        if when is None:
            self.jack.plan_start(self.lead())
            when = self.jack.frame_time_of(sample)
            if when is None:
                return None
        return self.position_at(self._t + frame_diff(when, self._raw))

    def position_at(self, t: float) -> MusicalPosition | None:
        """The song position at unwrapped frame time ``t`` (a time on the clock messages' scale)."""
        if not self.rolling:
            return None
        est = self.estimator
        if est.ready:
            n, bpm = est.clock_at(t), est.bpm
        else:  # no steady clock yet: the first clock at the start, at the bpm control (or 120)
            bpm = float(self.store.get("bpm")) or 120.0
            n = self.song_n0 + (t - self._started_at) * bpm * PPQN / (60.0 * self.rate)
        position = MusicalPosition((self.song_clock + n - self.song_n0) / PPQN, 4.0, bpm)
        if est.ready:
            self._follow_bpm(bpm)
        if not est.ready:
            self._set_status("midi rolling, waiting for clock")
        elif self._clock_recent():
            self._set_status(describe("midi", position, True))
        return position

    def _clock_recent(self) -> bool:
        return time.monotonic() - self._last_clock_wall <= LOST_SECONDS
