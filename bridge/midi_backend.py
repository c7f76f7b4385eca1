"""What every MIDI input backend shares: the hook interface and port-name matching.

:class:`bridge.midi.MidiInput` owns the parts common to every backend (the event queue, the
worker thread that parses and hands messages on, the maintenance loop, the counters); a backend
only opens a port, connects hardware ports to it, and closes (mido's ``BasePort`` with backend
hooks). Backends: :mod:`bridge.midi_jack` (a JACK MIDI port) and :mod:`bridge.midi_alsa` (an
ALSA sequencer virtual port through mido's rtmidi backend).

Threading: :meth:`MidiBackend.open`, :meth:`~MidiBackend.connect` and
:meth:`~MidiBackend.close` run on the maintenance thread ``jamgen-midi-ports`` (or on the
thread that calls :meth:`bridge.midi.MidiInput.start` / ``close``). What a backend registers
with its library runs elsewhere (the JACK process callback, rtmidi's thread): it may only put
raw bytes on :attr:`MidiOwner.queue`, count drops and ask for a rescan.
"""

from __future__ import annotations

import fnmatch
import queue
from typing import Iterable, Protocol

from bridge.ratelimit import RateLimitedLogger

PORT_NAME = "midi_in"
QUEUE_LIMIT = 4096  # events waiting for the worker; beyond that we drop (a flood, not music)


def matches(patterns: Iterable[str], names: Iterable[str]) -> bool:
    """Does any of a port's ``names`` (full name, aliases) match any fnmatch pattern?"""
    names = [n for n in names if n]
    return any(fnmatch.fnmatchcase(n, p) or fnmatch.fnmatchcase(n.lower(), p.lower())
               for p in patterns for n in names)


class MidiOwner(Protocol):
    """What a backend may use of the :class:`bridge.midi.MidiInput` that owns it."""

    client_name: str  # our client's name (``jamgen-midi``, or ``jamgen`` on the shared client)
    server: str | None  # JACK server name (None = default)
    queue: queue.SimpleQueue  # raw events for the worker; ``b""`` only wakes it
    dropped: int  # events dropped before the queue (too long, or the queue full)
    warn: RateLimitedLogger

    @property
    def patterns(self) -> list[str]: ...  # fnmatch patterns of hardware ports to connect

    def request_rescan(self) -> None: ...  # wake the maintenance thread (any thread, RT-safe)


class MidiBackend:
    """One way of receiving MIDI. Subclasses fill in the hooks; see the module docstring.

    Args:
      owner: the input this backend feeds.
    """

    def __init__(self, owner: MidiOwner):
        self.owner = owner
        self.server_gone = False  # set (from any thread) when the backend's server went away

    @property
    def port_name(self) -> str | None:
        """Full name of our input port when the backend names it (JACK), else None."""
        return None

    def open(self) -> bool:
        """Open our input port and connect matching ports; False if this backend is unavailable."""
        raise NotImplementedError

    def connect(self) -> None:
        """Connect (or open) the hardware ports that match the owner's patterns now."""
        raise NotImplementedError

    def close(self) -> None:
        """Close everything this backend opened; never raises (the server may be gone)."""
        raise NotImplementedError
