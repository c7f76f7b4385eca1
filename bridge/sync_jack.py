"""``--sync jack``: follow the JACK transport; ``--timebase-master``: publish jamgen's own tempo as BBT.

How a block gets its position. The generation thread (never the RT callback) asks the daemon's JACK
client for the transport state and position (``jack_transport_query``, realtime-safe and cheap); the
position belongs to the period that started at ``last_frame_time`` (read before and after, so both refer
to one period). :meth:`bridge.jack_io.JackOutput.frame_time_of` says at which frame time the block's
first stream sample will play (through what is buffered ahead of playback); the transport frame there is
the queried frame plus the difference, and its beat is the master's bar/beat/tick extrapolated at the
master's tempo (:func:`bridge.sync.bbt_beats`, :func:`bridge.sync.extrapolate`). Tempo and metre follow
the master; a relocation simply reports the new position (the generator re-phases at the next beat).

Without BBT (no timebase master, only frames) the transport's frame 0 is bar 1 beat 1 in 4/4 at the
``bpm`` control (said once; with ``bpm`` 0, the prompt's tempo, there is no clock: the transport only
starts and stops jamgen).

Transport: jamgen plays only while the transport rolls (see :mod:`bridge.sync`), and it is a *slow-sync* client:
a start waits in ``STARTING`` until jamgen has generated the pre-buffer for the start position
(:meth:`~bridge.jack_io.JackOutput.plan_roll`), so its first sample plays on the transport's first rolling frame
and the downbeat the DAW starts on is heard (Ardour waits for its disk buffers the same way; JACK's sync timeout,
2 s, starts the transport anyway if jamgen cannot deliver). A transport that rolls without waiting for it (the
timeout, a reconnect mid-roll) starts jamgen at a period boundary far enough ahead for the pre-buffer to fill
(:meth:`~bridge.jack_io.JackOutput.plan_start`), on the right beat, a little late.

Threading: :class:`JackTransportSync` runs on the generation thread and queries the client under
``JackOutput.client_lock`` (the main thread may be closing it). :class:`TimebaseMaster` is JACK's
timebase callback: it runs on the RT thread right after the process callback and only does arithmetic
on the position structure and plain attributes.
"""

from __future__ import annotations

import logging

import jack

from bridge.sync import (SyncSource, bbt_beats, describe, extrapolate, frame_diff)
from generator.core.contract import SAMPLE_RATE, MusicalPosition

log = logging.getLogger(__name__)

POLL_SECONDS = 0.004  # how often the transport is looked at (a start or stop is acted on this soon)


class JackTransportSync(SyncSource):
    """The JACK transport as jamgen's clock (see the module docstring).

    Args:
      store: the live controls.
      jack_output: the daemon's :class:`bridge.jack_io.JackOutput` (its client, its stream-to-frame map).
      publish: OSC feedback for the ``/jamgen/sync`` status.

    """

    name = "jack"
    follows_transport = True

    def __init__(self, store, jack_output, publish=None):
        super().__init__(store, publish)
        self.jack = jack_output
        self._keep_time(jack_output)
        jack_output.slow_sync = True
        self._query: tuple[int, dict, int] | None = None  # (state, position, frame time of its period)

    def poll(self) -> None:
        if not self._due(POLL_SECONDS):
            return
        query = self._read()
        self._query = query
        if query is None:
            self._transport(False)
            self._set_status("jack: not connected")
            return
        state, pos, _frame = query
        starting = state in (jack.STARTING, jack.NETSTARTING)
        rolling = state == jack.ROLLING
        if self._transport(rolling or starting):
            if starting:  # the transport waits for us (slow-sync): plan its start on its first rolling frame
                self.jack.plan_roll(pos["frame"])
            elif rolling:
                self.jack.plan_start(self.lead())
        if not (rolling or starting):
            self.jack.roll_plan = None
            self._set_status("jack stopped")

    def _read(self) -> tuple[jack.TransportState, dict, int] | None:
        """(rolling, position dict, frame time of the period the position belongs to), or None."""
        out = self.jack
        with out.client_lock:
            client = out.client
            if client is None or not out.connected:
                return None
            for _ in range(4):
                try:
                    before = client.last_frame_time
                    state, pos = client.transport_query()
                    after = client.last_frame_time
                except (jack.JackError, AssertionError):  # a torn read of the position: ask again
                    continue
                if before == after:
                    return state, pos, before
        return None

    def position(self, sample: int, sounds_at: float) -> MusicalPosition | None:
        query = self._query
        transport_frame = self.jack.transport_frame_of(sample)  # a start still waiting for us: its own frames
        if query is not None and query[0] != jack.ROLLING and transport_frame is None:
            query = self._query = self._read()  # the start has rolled since the last poll
        if query is None or query[0] == jack.STOPPED:
            return None
        state, pos, frame = query
        if transport_frame is None:
            if state != jack.ROLLING:
                return None
            when = self.jack.frame_time_of(sample)
            if when is None:  # not started yet, or after an underrun: start again on a known period
                self.jack.plan_start(self.lead())
                when = self.jack.frame_time_of(sample)
                if when is None:
                    return None
            transport_frame = pos["frame"] + frame_diff(when, frame)
        rate = pos.get("frame_rate") or SAMPLE_RATE
        if "bar" in pos and pos.get("beats_per_minute", 0) > 0:
            beat_type = pos["beat_type"] or 4.0
            beat0, per_bar = bbt_beats(pos["bar"], pos["beat"], pos["tick"], pos["ticks_per_beat"],
                                       pos["beats_per_bar"], beat_type)
            bpm = pos["beats_per_minute"] * 4.0 / beat_type  # JACK's tempo counts beats of beat_type
            reference = pos["frame"] + pos.get("bbt_offset", 0)
            position = MusicalPosition(extrapolate(beat0, bpm, transport_frame - reference, rate), per_bar, bpm)
            self._follow_bpm(bpm)
            self._set_status(describe("jack", position, True, f"{pos['beats_per_bar']:g}/{beat_type:g}"))
            return position
        bpm = float(self.store.get("bpm"))
        self._say_once("no-bbt", "sync: the JACK transport has no BBT (no timebase master): %s",
                       "bar 1 beat 1 is its frame 0, at the bpm control" if bpm > 0 else
                       "with bpm 0 (the prompt's tempo) it only starts and stops jamgen")
        self._set_status("jack: no BBT, using bpm" if bpm > 0 else "jack: no BBT, own tempo")
        if bpm <= 0:
            return None
        return MusicalPosition(extrapolate(0.0, bpm, transport_frame, rate), 4.0, bpm)


class TimebaseMaster:
    """``--timebase-master``: JACK's timebase callback publishing BBT at jamgen's ``bpm`` in 4/4.

    Runs on JACK's RT thread (after the process callback): arithmetic on ``pos`` and on plain
    attributes only. ``bpm`` is set from any thread (a store listener); a tempo change starts a new
    piece at the current frame, so beats stay continuous.

    Args:
      bpm: the tempo; 0 or less means :data:`DEFAULT_BPM` (jamgen's bpm control 0 = the prompt's tempo,
        which the bridge does not know).
      beats_per_bar: the metre published, in quarter notes.
    """

    DEFAULT_BPM = 120.0
    TICKS_PER_BEAT = 1920.0

    def __init__(self, bpm: float = 0.0, beats_per_bar: float = 4.0, rate: int = SAMPLE_RATE):
        self.bpm = bpm
        self.beats_per_bar = beats_per_bar
        self.rate = rate
        self._piece = (0, 0.0, self._tempo(bpm))  # (transport frame, beat there, tempo from there on)

    def _tempo(self, bpm: float) -> float:
        return float(bpm) if bpm and bpm > 0 else self.DEFAULT_BPM

    def beat_at(self, frame: int) -> float:
        """Quarter-note beats since bar 1 beat 1 at transport ``frame``."""
        frame0, beat0, bpm = self._piece
        return extrapolate(beat0, bpm, frame - frame0, self.rate)

    def __call__(self, state, blocksize, pos, new_pos) -> None:
        bpm = self._tempo(self.bpm)
        if bpm != self._piece[2]:
            self._piece = (pos.frame, self.beat_at(pos.frame), bpm)
        beat = max(0.0, self.beat_at(pos.frame))
        bar, in_bar = divmod(beat, self.beats_per_bar)
        pos.valid = pos.valid | jack.POSITION_BBT
        pos.bar = int(bar) + 1
        pos.beat = int(in_bar) + 1
        pos.tick = min(int((in_bar % 1.0) * self.TICKS_PER_BEAT), int(self.TICKS_PER_BEAT) - 1)
        pos.bar_start_tick = bar * self.beats_per_bar * self.TICKS_PER_BEAT
        pos.beats_per_bar = self.beats_per_bar
        pos.beat_type = 4.0
        pos.ticks_per_beat = self.TICKS_PER_BEAT
        pos.beats_per_minute = bpm
