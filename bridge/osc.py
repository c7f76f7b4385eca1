"""The OSC server: jamgen's built-in ``/jamgen/...`` address space over UDP (python-osc).

The address space and what each address does live in :mod:`bridge.osc_routes` (pure, no
socket); this module owns the transport around it: the UDP socket and its receive thread, the
allow-list, the feedback subscribers, and bundles with a future timetag. In short:

===================================  ==========================================================
``/jamgen/prompt/<slot> s [f]``      set slot text (and weight, default 1.0)
``/jamgen/prompt/<slot>/text s``     set slot text
``/jamgen/prompt/<slot>/weight f``   set slot weight (0 = inactive)
``/jamgen/prompt/<slot>/clear``      empty the slot
``/jamgen/<control> v``              every scalar control of the registry; an alias may give a
                                     shorter tail (``/jamgen/volume`` for ``volume_db``)
``/jamgen/play|pause|stop|reset``    transport (every trigger of the registry)
``/jamgen/state``                    reply to the sender with every value
``/jamgen/subscribe [port]``         send every change (and what is sounding) to the sender
``/jamgen/unsubscribe [port]``
``/jamgen/learn s``                  MIDI-learn a target (when a mapping file is in use)
===================================  ==========================================================

Feedback uses the same addresses, plus ``/jamgen/transport s``, ``/jamgen/sounding/...``
(the controls of the block audible now) and ``/jamgen/sync s`` (the sync source's status, bridge.sync). Any other address goes to the mapping engine's hook.

Threading: one receive thread (``jamgen-osc``) reads datagrams and dispatches them in order
(no thread per packet, so a burst cannot spawn thousands of threads). Bundles whose timetag is
in the future are queued and applied by the engine's generation thread just before it
generates the block that will be sounding at that time (:meth:`OscServer.apply_due`), never by
sleeping in the receive thread. A feedback thread (``jamgen-osc-feedback``) reports what is
sounding at 20 Hz; control changes are reported on the thread that made them.

Security: OSC has no authentication. The server binds to 127.0.0.1 unless told otherwise, and
an allow-list (addresses or networks) filters senders. Bad packets are dropped with a
rate-limited one-line warning.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import logging
import socket
import threading
import time
from typing import Any, Callable, Iterable

from pythonosc import osc_packet
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.controls import ControlError, ControlStore
from bridge.osc_routes import (
    PREFIX,
    Message,
    OscRouter,
    builtin_addresses,
    control_address,
    feedback_address,
    sounding_messages,
    state_messages,
)
from bridge.ratelimit import RateLimitedLogger

log = logging.getLogger(__name__)
warn = RateLimitedLogger(log)

MAX_SUBSCRIBERS = 16
MAX_SCHEDULED = 10_000  # future bundle messages waiting; beyond that they are dropped
RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024  # survive bursts (the default ~200 KB drops 3/4 of one)

# The address helpers are re-exported: surfaces and tests know them as bridge.osc's.
__all__ = ["MAX_SUBSCRIBERS", "OscServer", "PREFIX", "builtin_addresses", "control_address", "encode_message"]


def encode_message(address: str, *args: Any) -> bytes:
    """One OSC datagram; bools and ints go as ``i``, floats as ``f``, anything else as ``s``."""
    builder = OscMessageBuilder(address)
    for arg in args:
        if isinstance(arg, bool):
            builder.add_arg(int(arg), "i")
        elif isinstance(arg, int):
            builder.add_arg(arg, "i")
        elif isinstance(arg, float):
            builder.add_arg(arg, "f")
        else:
            builder.add_arg(str(arg), "s")
    return builder.build().dgram


class OscServer:
    """Receives OSC on ``host:port`` and applies it to ``store``; see the module docstring for
    its threads.

    Args:
      store: the live controls.
      host, port: where to listen (port 0 picks a free one; see :attr:`port`).
      allow: sender addresses or networks allowed (``["127.0.0.1", "192.168.1.0/24"]``);
        None allows everyone who can reach the socket.
      sounding: returns the block info audible now (``Engine.sounding``), for feedback.
      extra_handler: ``extra_handler(address, args) -> bool`` for addresses that are not built
        in (the mapping engine's ``handle_osc``); True means it was used.
      learn_handler: ``learn_handler(target)`` for ``/jamgen/learn``; None refuses learn.

    Raises:
      OSError: the socket cannot be bound.
    """

    def __init__(
        self,
        store: ControlStore,
        host: str = "127.0.0.1",
        port: int = 9000,
        allow: Iterable[str] | None = None,
        sounding: Callable[[], dict[str, Any] | None] = lambda: None,
        extra_handler: Callable[[str, tuple], bool] | None = None,
        learn_handler: Callable[[str], None] | None = None,
    ):
        self.store = store
        self.sounding = sounding
        self.allow = [ipaddress.ip_network(a, strict=False) for a in allow] if allow else None
        self.received = 0
        self.rejected = 0
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        self._sock.bind((host, port))
        self._sock.settimeout(0.2)
        self.host, self.port = self._sock.getsockname()[:2]
        self._send_sock = socket.socket(self._sock.family, socket.SOCK_DGRAM)
        self._subscribers: set[tuple[str, int]] = set()
        self._sub_lock = threading.Lock()
        self._scheduled: list[tuple[float, int, str, tuple, tuple]] = []
        self._sched_lock = threading.Lock()
        self._counter = itertools.count()
        self._stop = threading.Event()
        self._last_sounding: dict[str, Any] = {}
        self.router = OscRouter(store, self._reply, self._subscribe, sounding=sounding,
                                extra_handler=extra_handler, learn_handler=learn_handler, warn=warn)
        self._threads = [
            threading.Thread(target=self._receive_loop, name="jamgen-osc", daemon=True),
            threading.Thread(target=self._feedback_loop, name="jamgen-osc-feedback", daemon=True),
        ]
        self._unsubscribe = store.subscribe(self._on_change)

    # The hooks live on the router; these keep ``server.extra_handler = ...`` working.
    @property
    def extra_handler(self) -> Callable[[str, tuple], bool] | None:
        return self.router.extra_handler

    @extra_handler.setter
    def extra_handler(self, fn: Callable[[str, tuple], bool] | None) -> None:
        self.router.extra_handler = fn

    @property
    def learn_handler(self) -> Callable[[str], None] | None:
        return self.router.learn_handler

    @learn_handler.setter
    def learn_handler(self, fn: Callable[[str], None] | None) -> None:
        self.router.learn_handler = fn

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        for t in self._threads:
            t.start()
        log.info("OSC: listening on %s:%d%s", self.host, self.port,
                 f" (allowed: {', '.join(map(str, self.allow))})" if self.allow else "")

    def close(self) -> None:
        self._stop.set()
        self._unsubscribe()
        for t in self._threads:
            if t.is_alive():
                t.join(1.0)
        self._sock.close()
        self._send_sock.close()

    # --- receiving ----------------------------------------------------------------------------
    def _allowed(self, sender: tuple) -> bool:
        if self.allow is None:
            return True
        try:
            ip = ipaddress.ip_address(sender[0])
        except ValueError:
            return False
        return any(ip in net for net in self.allow)

    def _receive_loop(self) -> None:
        """Receive thread: read and dispatch datagrams until :meth:`close`."""
        while not self._stop.is_set():
            try:
                data, sender = self._sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            try:
                self.handle_packet(data, sender)
            except Exception as err:  # noqa: BLE001 - nothing a client sends may stop the loop
                warn.warning("osc-internal", "OSC: dropped packet from %s: %s: %s",
                             sender[0], type(err).__name__, str(err)[:200])

    def handle_packet(self, data: bytes, sender: tuple) -> None:
        """Parse one datagram and apply or schedule its messages."""
        self.received += 1
        if not self._allowed(sender):
            self.rejected += 1
            warn.warning(f"deny:{sender[0]}", "OSC: ignored packet from %s (not in the allow-list)", sender[0])
            return
        try:
            packet = osc_packet.OscPacket(data)
        except (osc_packet.ParseError, RecursionError, ValueError, IndexError, TypeError) as err:
            self.rejected += 1
            warn.warning("parse", "OSC: unparseable packet of %d bytes from %s: %s",
                         len(data), sender[0], str(err)[:120])
            return
        now = time.time()
        for timed in packet.messages:
            msg = timed.message
            try:
                address, args = msg.address, tuple(msg.params)
            except Exception as err:  # noqa: BLE001 - malformed arguments
                self.rejected += 1
                warn.warning("args", "OSC: bad arguments from %s: %s", sender[0], str(err)[:120])
                continue
            if timed.time > now + 0.001:
                with self._sched_lock:
                    if len(self._scheduled) < MAX_SCHEDULED:
                        heapq.heappush(self._scheduled, (timed.time, next(self._counter), address, args, sender))
                    else:
                        warn.warning("sched", "OSC: too many scheduled messages; dropped %s", address)
                continue
            self.dispatch(address, args, sender)

    def dispatch(self, address: str, args: tuple, sender: tuple) -> None:
        """Apply one message now; bad ones are logged (rate-limited), counted and dropped."""
        if not self.router.dispatch(address, args, sender):
            self.rejected += 1

    def apply_due(self, until: float) -> int:
        """Apply scheduled bundle messages whose timetag is <= ``until`` (wall time).

        Called on the engine's generation thread before it snapshots controls for a block that
        will start sounding at ``until``. Returns how many were applied.
        """
        due = []
        with self._sched_lock:
            while self._scheduled and self._scheduled[0][0] <= until:
                due.append(heapq.heappop(self._scheduled))
        for _, _, address, args, sender in due:
            self.dispatch(address, args, sender)
        return len(due)

    # --- feedback -----------------------------------------------------------------------------
    def _send(self, target: tuple[str, int], address: str, *args: Any) -> None:
        try:
            self._send_sock.sendto(encode_message(address, *args), target)
        except OSError as err:
            warn.warning(f"send:{target}", "OSC: cannot send to %s:%d: %s", target[0], target[1], err)

    def _reply(self, target: tuple[str, int], messages: list[Message]) -> None:
        """The router's reply hook: send ``messages`` to ``target``."""
        for address, value in messages:
            self._send(target, address, value)

    def state_messages(self, values: dict[str, Any] | None = None) -> list[Message]:
        """The ``/jamgen/state`` reply for ``values`` (default: the store's values now)."""
        return state_messages(values if values is not None else self.store.values())

    def _subscribe(self, target: tuple[str, int], on: bool) -> None:
        """The router's subscribe hook (``/jamgen/subscribe`` and ``/jamgen/unsubscribe``)."""
        with self._sub_lock:
            if not on:
                self._subscribers.discard(target)
                return
            if target not in self._subscribers and len(self._subscribers) >= MAX_SUBSCRIBERS:
                raise ControlError(f"too many subscribers (max {MAX_SUBSCRIBERS})")
            self._subscribers.add(target)
        log.info("OSC: %s:%d subscribed to feedback", *target)

    def add_subscriber(self, host: str, port: int) -> None:
        """Send feedback to ``host:port`` (the mapping file's ``osc.feedback``)."""
        with self._sub_lock:
            self._subscribers.add((host, port))

    def publish(self, address: str, value: Any) -> None:
        """Send ``address value`` to every subscriber (feedback that is not a control: ``/jamgen/sync``)."""
        with self._sub_lock:
            targets = list(self._subscribers)
        for target in targets:
            self._send(target, address, value)

    def _on_change(self, name: str, value: Any) -> None:
        """Store listener, on the writer's thread: report a change to every subscriber."""
        with self._sub_lock:
            targets = list(self._subscribers)
        if not targets:
            return
        address = feedback_address(name)
        if address is None:
            return
        for target in targets:
            self._send(target, address, value)

    def _feedback_loop(self) -> None:
        """Feedback thread: at 20 Hz, tell subscribers when the block now audible has different controls."""
        while not self._stop.wait(0.05):
            with self._sub_lock:
                targets = list(self._subscribers)
            if not targets:
                continue
            info = self.sounding()
            if not info:
                continue
            for address, value in sounding_messages(info):
                if self._last_sounding.get(address) != value:
                    self._last_sounding[address] = value
                    for target in targets:
                        self._send(target, address, value)
