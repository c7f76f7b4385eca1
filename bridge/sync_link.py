"""``--sync link``: play on an Ableton Link session's beat grid (tempo and phase within a 4-beat bar).

Link (and the ``aalink`` bindings) are GPL, so this source needs the optional extra (``pip install
'jamgen[link]'``); :func:`bridge.sync.check_available` refuses ``--sync link`` with one line without it.

Link shares a tempo and the phase of the beat within a *quantum* (here 4 beats: a 4/4 bar), not absolute bar
numbers, and it keeps running: jamgen joins with its own bar count on the session's bar lines and does not start
or stop with it (Link's start/stop sync is not used). A block's position is the session's beat now, advanced at
the session's tempo by the time until the block's first sample plays (the JACK frame time of that sample,
:meth:`bridge.jack_io.JackOutput.frame_time_of`, against the server's current frame time). The ``bpm`` control
shows the session's tempo.

Threading: the Link object is made on an asyncio loop of its own (aalink wants one when it is built; reading
its beat and tempo does not) and is only read on the generation thread; Link's own network thread is Link's.
"""

from __future__ import annotations

import asyncio
import logging
import time

import jack

from bridge.sync import SyncSource, describe, frame_diff
from generator.core.contract import SAMPLE_RATE, MusicalPosition

log = logging.getLogger(__name__)

QUANTUM = 4.0  # beats per bar shared with the session
POLL_SECONDS = 0.05
DEFAULT_BPM = 120.0


def open_link(bpm: float, quantum: float = QUANTUM):
    """An enabled ``aalink.Link`` at ``bpm`` (a session's tempo wins once peers are found) and its event loop."""
    from aalink import Link  # GPL: only with the optional extra

    loop = asyncio.new_event_loop()

    async def make():
        link = Link(bpm)
        link.quantum = quantum
        # Enabling at once sometimes imposes our tempo on a running session (artfwo/aalink#7); a pause first
        # lets the session's tempo win, as a joining peer should.
        await asyncio.sleep(0.5)
        link.enabled = True
        return link

    return loop.run_until_complete(make()), loop


class LinkSync(SyncSource):
    """An Ableton Link session as jamgen's clock (see the module docstring).

    Args:
      store: the live controls.
      jack_output: the daemon's :class:`bridge.jack_io.JackOutput` (when a stream sample plays).
      publish: OSC feedback for the ``/jamgen/sync`` status.
      link: a Link-like object (``beat``, ``tempo``, ``num_peers``, ``enabled``) instead of opening a session (tests).
    """

    name = "link"

    def __init__(self, store, jack_output, publish=None, link=None):
        super().__init__(store, publish)
        self.jack = jack_output
        self._loop = None
        if link is None:
            link, self._loop = open_link(float(store.get("bpm")) or DEFAULT_BPM)
        self.link = link
        self.rolling = True  # Link never stops
        self._keep_time(jack_output)

    def poll(self) -> None:
        if not self._due(POLL_SECONDS):
            return
        self._follow_bpm(float(self.link.tempo))

    def _now_frame(self) -> int | None:
        out = self.jack
        with out.client_lock:
            client = out.client
            if client is None or not out.connected:
                return None
            try:
                return client.frame_time
            except jack.JackError:
                return None

    def position(self, sample: int, sounds_at: float) -> MusicalPosition | None:
        when = self.jack.frame_time_of(sample)
        if when is None:
            self.jack.plan_start(self.lead())
            when = self.jack.frame_time_of(sample)
        now = self._now_frame()
        if when is None or now is None:
            ahead = max(0.0, sounds_at - time.time())  # no JACK: the engine's wall-clock estimate
        else:
            ahead = frame_diff(when, now) / SAMPLE_RATE
        beat, bpm = float(self.link.beat), float(self.link.tempo)
        position = MusicalPosition(beat + ahead * bpm / 60.0, QUANTUM, bpm)
        peers = int(self.link.num_peers)
        self._set_status(f"{describe('link', position, True)}, {peers} peer{'s' if peers != 1 else ''}")
        return position

    def close(self) -> None:
        try:
            self.link.enabled = False
        finally:
            if self._loop is not None:
                self._loop.close()
