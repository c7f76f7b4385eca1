"""The JACK MIDI input backend: a native JACK-Client MIDI port, ``<client>:midi_in``.

JACK-Client is already a dependency (the audio output), so no second MIDI library is needed.
Two ways in:

* :class:`JackMidiBackend`: a client of its own (``<client>-midi``), for ``jamgen learn`` and
  tests, with its own process callback;
* the daemon's shared audio client (:mod:`bridge.jack_io` registers ``jamgen:midi_in`` and copies
  its events into the input's queue), connected by :func:`connect_matching` from
  :meth:`bridge.midi.MidiInput.maintain_shared`. One client per process matters: libjack
  segfaults when two clients of one process lose their server together.

Hardware ports are matched against each port's full name and its aliases, so a2jmidid's long
names work with ``"*nanoKONTROL2*"``.

Threading: the process callback runs on JACK's RT thread and only copies small events into the
queue (``queue.SimpleQueue``: C-implemented, lock-free for the producer) and counts drops: no
parsing, no logging. The shutdown and port-registration callbacks run on JACK's notification
thread and only set flags. Everything else runs on the maintenance thread (see
:mod:`bridge.midi_backend`).
"""

from __future__ import annotations

import logging
import time

from bridge.midi_backend import PORT_NAME, QUEUE_LIMIT, MidiBackend, matches
from bridge.ratelimit import RateLimitedLogger

log = logging.getLogger(__name__)


def connect_matching(client, port, patterns: list[str], own_client: str, warn: RateLimitedLogger) -> None:
    """Connect every JACK MIDI output whose name or alias matches ``patterns`` to ``port``.

    Ports of ``own_client`` and ports already connected are skipped. Never raises: a port
    vanishing mid-scan, or the server going away, is a rate-limited warning.
    """
    if client is None or port is None or not patterns:
        return
    try:
        connected = {p.name for p in client.get_all_connections(port)}
        for src in client.get_ports(is_midi=True, is_output=True):
            if src.name in connected or src.name.startswith(own_client + ":"):
                continue
            if matches(patterns, [src.name, *getattr(src, "aliases", [])]):
                client.connect(src, port)
                log.info("MIDI: connected %s -> %s", src.name, port.name)
    except Exception as err:  # a port vanishing mid-scan, or the server going away
        warn.warning("midi-connect", "MIDI: connecting inputs failed: %s", err)


class JackMidiBackend(MidiBackend):
    """A JACK client of its own with one MIDI input port (``<client_name>:midi_in``)."""

    def __init__(self, owner):
        super().__init__(owner)
        self.client = None  # jack.Client while open
        self.port = None

    @property
    def port_name(self) -> str | None:
        return self.port.name if self.port is not None else None

    def open(self) -> bool:
        import jack

        owner = self.owner
        try:
            client = jack.Client(owner.client_name, no_start_server=True, servername=owner.server)
        except jack.JackError:
            return False
        port = client.midi_inports.register(PORT_NAME)
        q, limit = owner.queue, QUEUE_LIMIT

        def process(frames: int) -> None:
            """RT thread: copy events to the queue. No allocation beyond bytes(), no locks."""
            for _offset, data in port.incoming_midi_events():
                if len(data) > 3 or q.qsize() >= limit:
                    owner.dropped += 1
                else:
                    q.put_nowait(bytes(data))

        def shutdown(status, reason) -> None:
            """Async-signal-like context: only set flags."""
            self.server_gone = True
            owner.request_rescan()

        client.set_process_callback(process)
        client.set_shutdown_callback(shutdown)
        client.set_port_registration_callback(lambda port, registered: owner.request_rescan(),
                                              only_available=False)
        client.activate()
        self.client, self.port, self.server_gone = client, port, False
        log.info("MIDI: JACK input %s ready%s", port.name,
                 f" (connecting {', '.join(owner.patterns)})" if owner.patterns else "")
        self.connect()
        return True

    def connect(self) -> None:
        connect_matching(self.client, self.port, self.owner.patterns, self.owner.client_name, self.owner.warn)

    def close(self) -> None:
        client, self.client, self.port = self.client, None, None
        if client is not None:
            try:
                client.deactivate()
                client.close()
            except Exception:  # the server may already be gone
                pass


def wait_for_port(client, name: str, timeout: float = 10.0) -> bool:
    """Poll until a JACK port ``name`` exists (for tests and ``jamgen learn``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get_ports(name):
            return True
        time.sleep(0.05)
    return False
