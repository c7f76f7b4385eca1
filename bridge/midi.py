"""MIDI input: a JACK MIDI port (or an ALSA virtual port) that feeds the mapping engine.

Decision (see ../shared/research/lab.md §2): on JACK the daemon registers a native JACK-Client
MIDI input ``<client>:midi_in`` (``jamgen:midi_in``) on its audio client (:mod:`bridge.jack_io`
copies its events into this module's queue). JACK-Client is already a dependency, so no second
MIDI library is needed; ALSA's sequencer is absent on headless machines and rtmidi does not fall
back from it. One client per process matters: libjack segfaults when two clients of one process
lose their server together. Standalone users (``jamgen learn``, tests) get a small client of
their own, ``<client>-midi:midi_in``. Where no JACK server runs but an ALSA
sequencer exists, mido's rtmidi backend opens an ALSA virtual port named the same.

This module holds what every backend shares (:class:`MidiInput`: the queue, the worker, the
maintenance loop, the counters); the backends themselves are :mod:`bridge.midi_jack` and
:mod:`bridge.midi_alsa`, behind the hooks of :class:`bridge.midi_backend.MidiBackend`.

Hardware ports are connected by fnmatch pattern (``midi.inputs`` of the mapping file, matched
against each port's full name and its aliases, so a2jmidid's long names work with
``"*nanoKONTROL2*"``). A maintenance thread re-checks every second and when JACK announces a
new port, so an unplugged and replugged device is reconnected, and it re-opens the client when
the JACK server itself comes back.

Threading model:

* the JACK process callback (RT thread) only copies small events into a ``queue.SimpleQueue``
  (C-implemented, lock-free for the producer) and counts drops; no parsing, no logging;
* the worker thread ``jamgen-midi`` turns bytes into :class:`mido.Message` objects and calls the
  handler, so the mapping engine never runs on the RT thread;
* the maintenance thread ``jamgen-midi-ports`` handles connections and server restarts (with the
  daemon's shared client, the daemon's main thread does this in :meth:`MidiInput.maintain_shared`).

Garbage never raises: events longer than 3 bytes (SysEx floods), stray data bytes and
truncated messages are counted and reported by a rate-limited warning.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Callable, Iterable

import mido

from bridge.midi_alsa import AlsaMidiBackend
from bridge.midi_backend import PORT_NAME, QUEUE_LIMIT, MidiBackend, matches
from bridge.midi_jack import JackMidiBackend, connect_matching, wait_for_port
from bridge.ratelimit import RateLimitedLogger

log = logging.getLogger(__name__)

RESCAN_SECONDS = 1.0
BACKENDS = ("auto", "jack", "alsa")

Handler = Callable[[mido.Message], None]

__all__ = ["MidiInput", "PORT_NAME", "QUEUE_LIMIT", "matches", "parse_event", "wait_for_port"]


def parse_event(data: bytes) -> mido.Message | None:
    """One JACK MIDI event -> a mido message, or None for anything that is not a complete
    channel or system message (never raises)."""
    if not data or len(data) > 3:
        return None
    try:
        return mido.Message.from_bytes(data)
    except (ValueError, TypeError, IndexError, KeyError):
        return None


class MidiInput:
    """The daemon's MIDI input; see the module docstring for threads.

    Args:
      handler: called with every valid :class:`mido.Message`, on the worker thread.
      client_name: base name; the JACK client is ``<client_name>-midi``.
      patterns: fnmatch patterns of MIDI output ports to connect (``midi.inputs``).
      server: JACK server name (None = default).
      backend: ``"auto"`` (JACK if a server answers, else ALSA if present, else wait for JACK),
        ``"jack"`` or ``"alsa"``.
      jack_output: the daemon's :class:`bridge.jack_io.JackOutput`, whose client carries our port
        (``<client_name>:midi_in``); None opens a client of our own.
    """

    def __init__(self, handler: Handler, client_name: str = "jamgen", patterns: Iterable[str] = (),
                 server: str | None = None, backend: str = "auto", jack_output=None):
        self.handler = handler
        # In the daemon the port lives on the audio client (``jamgen:midi_in``): libjack crashes
        # when two clients of one process lose their server at once, so the daemon has one.
        self.jack_output = jack_output
        self.client_name = client_name if jack_output is not None else f"{client_name}-midi"
        self.server = server
        self.backend = backend
        self._patterns: list[str] = list(patterns)
        self.queue: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self.warn = RateLimitedLogger(log)
        self._stop = threading.Event()
        self._rescan = threading.Event()
        self._backend: MidiBackend | None = None  # while a port of our own is open
        self._last_scan = 0.0
        self.received = 0  # valid messages handed to the handler
        self.dropped = 0  # events dropped: queue full, or too long for a channel message
        self.invalid = 0  # events that did not parse
        self._threads: list[threading.Thread] = []

    # --- public -----------------------------------------------------------------------------
    @property
    def port_name(self) -> str | None:
        """Full name of our input port (``jamgen-midi:midi_in``), or None while not open."""
        if self.jack_output is not None:
            port = self.jack_output.midi_port
            return port.name if port is not None else None
        return self._backend.port_name if self._backend is not None else None

    @property
    def patterns(self) -> list[str]:
        """The fnmatch patterns of the hardware ports to connect."""
        return self._patterns

    def set_patterns(self, patterns: Iterable[str]) -> None:
        """Replace the hardware port patterns (after a mapping reload); connects at once."""
        self._patterns = list(patterns)
        self._rescan.set()

    def request_rescan(self) -> None:
        """Ask the maintenance thread to re-check ports and the server now (any thread)."""
        self._rescan.set()

    def start(self) -> None:
        if self.jack_output is not None:  # shared client: the daemon calls maintain_shared()
            self.jack_output.midi_queue = self.queue
            self._threads = [threading.Thread(target=self._work, name="jamgen-midi", daemon=True)]
            self._threads[0].start()
            return
        self._open()
        self._threads = [
            threading.Thread(target=self._work, name="jamgen-midi", daemon=True),
            threading.Thread(target=self._maintain, name="jamgen-midi-ports", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def close(self) -> None:
        self._stop.set()
        self._rescan.set()
        self.queue.put(b"")  # wake the worker
        for t in self._threads:
            t.join(timeout=2.0)
        self._close_backend()

    def maintain_shared(self) -> None:
        """Daemon main thread, between JACK reconnects: connect ports matching the patterns.

        Runs in the same thread that closes and re-opens the shared client, so it never
        touches a client that is being torn down.
        """
        out = self.jack_output
        if out.client is None or out.midi_port is None:
            return
        if not (out.ports_changed.is_set() or self._rescan.is_set()
                or time.monotonic() - self._last_scan >= RESCAN_SECONDS):
            return
        out.ports_changed.clear()
        self._rescan.clear()
        self._last_scan = time.monotonic()
        connect_matching(out.client, out.midi_port, self._patterns, self.client_name, self.warn)

    # --- backends ---------------------------------------------------------------------------
    def _open(self) -> None:
        """Open the first backend that works: JACK, then ALSA (see ``backend``)."""
        candidates: list[type[MidiBackend]] = []
        if self.backend in ("auto", "jack"):
            candidates.append(JackMidiBackend)
        if self.backend == "alsa" or (self.backend == "auto" and os.path.exists("/dev/snd/seq")):
            candidates.append(AlsaMidiBackend)
        for cls in candidates:
            backend = cls(self)
            if backend.open():
                self._backend = backend
                return

    def _close_backend(self) -> None:
        backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()

    def _maintain(self) -> None:
        """Maintenance thread: reconnect ports, and re-open when the server went and came back."""
        while not self._stop.is_set():
            self._rescan.wait(RESCAN_SECONDS)
            self._rescan.clear()
            if self._stop.is_set():
                return
            if self._backend is not None and self._backend.server_gone:
                log.warning("MIDI: JACK server went away; reconnecting when it is back")
                self._close_backend()
            if self._backend is None:
                self._open()
            else:
                self._backend.connect()

    # --- worker -----------------------------------------------------------------------------
    def _work(self) -> None:
        """Worker thread: parse queued events and call the handler, in order."""
        while not self._stop.is_set():
            try:
                data = self.queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if not data:
                continue
            msg = parse_event(data)
            if msg is None:
                self.invalid += 1
                self.warn.warning("midi-invalid", "MIDI: ignored an invalid event %s", data.hex(" "))
                continue
            self.received += 1
            try:
                self.handler(msg)
            except Exception as err:  # the handler should not raise; never let it kill input
                self.warn.warning("midi-handler", "MIDI: handler failed on %s: %s", msg, err)
        if self.dropped:
            log.info("MIDI: %d events dropped (SysEx or flood)", self.dropped)
