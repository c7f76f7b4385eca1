"""MIDI input: a JACK MIDI port (or an ALSA virtual port) that feeds the mapping engine.

Decision (see ../shared/research/lab.md §2): on JACK the daemon registers a native JACK-Client
MIDI input ``<client>:midi_in`` (``jamgen:midi_in``) on its audio client (:mod:`bridge.jack_io`
copies its events into this module's queue). JACK-Client is already a dependency, so no second
MIDI library is needed; ALSA's sequencer is absent on headless machines and rtmidi does not fall
back from it. One client per process matters: libjack segfaults when two clients of one process
lose their server together. Standalone users (``jamgen learn``, tests) get a small client of
their own, ``<client>-midi:midi_in``. Where no JACK server runs but an ALSA
sequencer exists, mido's rtmidi backend opens an ALSA virtual port named the same.

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
* the maintenance thread ``jamgen-midi-ports`` handles connections and server restarts.

Garbage never raises: events longer than 3 bytes (SysEx floods), stray data bytes and
truncated messages are counted and reported by a rate-limited warning.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import queue
import threading
import time
from typing import Callable, Iterable

import mido

from bridge.ratelimit import RateLimitedLogger

log = logging.getLogger(__name__)

PORT_NAME = "midi_in"
QUEUE_LIMIT = 4096  # events waiting for the worker; beyond that we drop (a flood, not music)
RESCAN_SECONDS = 1.0

Handler = Callable[[mido.Message], None]


def parse_event(data: bytes) -> mido.Message | None:
    """One JACK MIDI event -> a mido message, or None for anything that is not a complete
    channel or system message (never raises)."""
    if not data or len(data) > 3:
        return None
    try:
        return mido.Message.from_bytes(data)
    except (ValueError, TypeError, IndexError, KeyError):
        return None


def matches(patterns: Iterable[str], names: Iterable[str]) -> bool:
    """Does any of a port's ``names`` (full name, aliases) match any fnmatch pattern?"""
    names = [n for n in names if n]
    return any(fnmatch.fnmatchcase(n, p) or fnmatch.fnmatchcase(n.lower(), p.lower())
               for p in patterns for n in names)


class MidiInput:
    """The daemon's MIDI input; see the module docstring for threads.

    Args:
      handler: called with every valid :class:`mido.Message`, on the worker thread.
      client_name: base name; the JACK client is ``<client_name>-midi``.
      patterns: fnmatch patterns of MIDI output ports to connect (``midi.inputs``).
      server: JACK server name (None = default).
      backend: ``"auto"`` (JACK if a server answers, else ALSA if present, else wait for JACK),
        ``"jack"`` or ``"alsa"``.
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
        self._queue: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._bad = RateLimitedLogger(log)
        self._stop = threading.Event()
        self._rescan = threading.Event()
        self._client = None  # jack.Client while JACK is in use
        self._port = None
        self._alsa_ports: dict[str, object] = {}
        self._alsa_virtual = None
        self._server_gone = False
        self._last_scan = 0.0
        self.received = 0  # valid messages handed to the handler
        self.dropped = 0  # events dropped: queue full, or too long for a channel message
        self.invalid = 0  # events that did not parse
        self._threads: list[threading.Thread] = []

    # --- public -----------------------------------------------------------------------------
    @property
    def port_name(self) -> str | None:
        """Full name of our input port (``jamgen-midi:midi_in``), or None while not open."""
        port = self.jack_output.midi_port if self.jack_output is not None else self._port
        return port.name if port is not None else None

    def set_patterns(self, patterns: Iterable[str]) -> None:
        """Replace the hardware port patterns (after a mapping reload); connects at once."""
        self._patterns = list(patterns)
        self._rescan.set()

    def start(self) -> None:
        if self.jack_output is not None:  # shared client: the daemon calls maintain_shared()
            self.jack_output.midi_queue = self._queue
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
        self._queue.put(b"")  # wake the worker
        for t in self._threads:
            t.join(timeout=2.0)
        self._close_backend()

    # --- backends ---------------------------------------------------------------------------
    def _open(self) -> None:
        if self.backend in ("auto", "jack") and self._open_jack():
            return
        if self.backend == "alsa" or (self.backend == "auto" and os.path.exists("/dev/snd/seq")):
            self._open_alsa()

    def _open_jack(self) -> bool:
        import jack

        try:
            client = jack.Client(self.client_name, no_start_server=True, servername=self.server)
        except jack.JackError:
            return False
        port = client.midi_inports.register(PORT_NAME)
        q, limit = self._queue, QUEUE_LIMIT

        def process(frames: int) -> None:
            """RT thread: copy events to the queue. No allocation beyond bytes(), no locks."""
            for _offset, data in port.incoming_midi_events():
                if len(data) > 3 or q.qsize() >= limit:
                    self.dropped += 1
                else:
                    q.put_nowait(bytes(data))

        def shutdown(status, reason) -> None:
            """Async-signal-like context: only set flags."""
            self._server_gone = True
            self._rescan.set()

        client.set_process_callback(process)
        client.set_shutdown_callback(shutdown)
        client.set_port_registration_callback(lambda port, registered: self._rescan.set(),
                                              only_available=False)
        client.activate()
        self._client, self._port, self._server_gone = client, port, False
        log.info("MIDI: JACK input %s ready%s", port.name,
                 f" (connecting {', '.join(self._patterns)})" if self._patterns else "")
        self._connect_jack()
        return True

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
        self._client, self._port = out.client, out.midi_port
        try:
            self._connect_jack()
        finally:
            self._client = self._port = None

    def _open_alsa(self) -> None:
        try:
            backend = mido.Backend("mido.backends.rtmidi/LINUX_ALSA")
            self._alsa_virtual = backend.open_input(PORT_NAME, virtual=True, client_name=self.client_name,
                                                    callback=self._alsa_callback)
        except Exception as err:  # rtmidi raises SystemError without a sequencer
            log.warning("MIDI: no JACK server and no ALSA sequencer (%s); MIDI input waits for JACK",
                        " ".join(str(err).split()))
            return
        log.info("MIDI: ALSA virtual input %s:%s ready", self.client_name, PORT_NAME)
        self._connect_alsa()

    def _alsa_callback(self, msg: mido.Message) -> None:
        if msg.type != "sysex":
            self._queue.put_nowait(bytes(msg.bytes()))

    def _close_backend(self) -> None:
        client, self._client, self._port = self._client, None, None
        if client is not None:
            try:
                client.deactivate()
                client.close()
            except Exception:  # the server may already be gone
                pass
        for port in list(self._alsa_ports.values()) + ([self._alsa_virtual] if self._alsa_virtual else []):
            try:
                port.close()
            except Exception:
                pass
        self._alsa_ports.clear()
        self._alsa_virtual = None

    # --- connections ------------------------------------------------------------------------
    def _connect_jack(self) -> None:
        client, port = self._client, self._port
        if client is None or port is None or not self._patterns:
            return
        try:
            connected = {p.name for p in client.get_all_connections(port)}
            for src in client.get_ports(is_midi=True, is_output=True):
                if src.name in connected or src.name.startswith(self.client_name + ":"):
                    continue
                if matches(self._patterns, [src.name, *getattr(src, "aliases", [])]):
                    client.connect(src, port)
                    log.info("MIDI: connected %s -> %s", src.name, port.name)
        except Exception as err:  # a port vanishing mid-scan, or the server going away
            self._bad.warning("midi-connect", "MIDI: connecting inputs failed: %s", err)

    def _connect_alsa(self) -> None:
        if not self._patterns:
            return
        try:
            backend = mido.Backend("mido.backends.rtmidi/LINUX_ALSA")
            names = backend.get_input_names()
        except Exception:
            return
        for name in names:
            if name in self._alsa_ports or self.client_name in name or not matches(self._patterns, [name]):
                continue
            try:
                self._alsa_ports[name] = backend.open_input(name, callback=self._alsa_callback)
                log.info("MIDI: opened ALSA input %s", name)
            except Exception as err:
                self._bad.warning(f"alsa:{name}", "MIDI: cannot open %s: %s", name, err)
        for name in [n for n in self._alsa_ports if n not in names]:  # unplugged
            try:
                self._alsa_ports.pop(name).close()
            except Exception:
                pass

    def _maintain(self) -> None:
        while not self._stop.is_set():
            self._rescan.wait(RESCAN_SECONDS)
            self._rescan.clear()
            if self._stop.is_set():
                return
            if self._server_gone:
                log.warning("MIDI: JACK server went away; reconnecting when it is back")
                self._close_backend()
                self._server_gone = False
            if self._client is None and self._alsa_virtual is None:
                self._open()
            elif self._client is not None:
                self._connect_jack()
            else:
                self._connect_alsa()

    # --- worker -----------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if not data:
                continue
            msg = parse_event(data)
            if msg is None:
                self.invalid += 1
                self._bad.warning("midi-invalid", "MIDI: ignored an invalid event %s", data.hex(" "))
                continue
            self.received += 1
            try:
                self.handler(msg)
            except Exception as err:  # the handler should not raise; never let it kill input
                self._bad.warning("midi-handler", "MIDI: handler failed on %s: %s", msg, err)
        if self.dropped:
            log.info("MIDI: %d events dropped (SysEx or flood)", self.dropped)


def wait_for_port(client, name: str, timeout: float = 10.0) -> bool:
    """Poll until a JACK port ``name`` exists (for tests and ``jamgen learn``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get_ports(name):
            return True
        time.sleep(0.05)
    return False
