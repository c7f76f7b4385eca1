"""The OSC surface: jamgen's built-in ``/jamgen/...`` address space over UDP (python-osc).

The address space is generated from the control registry (:mod:`bridge.controls`):

===================================  ==========================================================
``/jamgen/prompt/<slot> s [f]``      set slot text (and weight, default 1.0)
``/jamgen/prompt/<slot>/text s``     set slot text
``/jamgen/prompt/<slot>/weight f``   set slot weight (0 = inactive)
``/jamgen/prompt/<slot>/clear``      empty the slot
``/jamgen/<control> v``              every scalar control: guidance, temperature, top_k, seed,
                                     mute, and ``/jamgen/volume`` (dB) for ``volume_db``
``/jamgen/play|pause|stop|reset``    transport
``/jamgen/state``                    reply to the sender with every value
``/jamgen/subscribe [port]``         send every change (and what is sounding) to the sender
``/jamgen/unsubscribe [port]``
``/jamgen/learn s``                  MIDI-learn a target (when a mapping file is in use)
===================================  ==========================================================

Feedback uses the same addresses, plus ``/jamgen/transport s`` and ``/jamgen/sounding/...``
(the controls of the block audible now). Any other address goes to the mapping engine's hook.

Threading: one receive thread reads datagrams and dispatches them in order (no thread per
packet, so a burst cannot spawn thousands of threads). Bundles whose timetag is in the future
are queued and applied by the engine just before it generates the block that will be sounding
at that time (:meth:`OscServer.apply_due`), never by sleeping in the receive thread.

Security: OSC has no authentication. The server binds to 127.0.0.1 unless told otherwise, and
an allow-list (addresses or networks) filters senders. Bad packets are dropped with a
rate-limited one-line warning.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import logging
import math
import re
import socket
import threading
from typing import Any, Callable, Iterable

from pythonosc import osc_packet
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.controls import (
    NUM_PROMPTS,
    REGISTRY,
    TRIGGER,
    ControlError,
    ControlStore,
    prompt_slot,
)
from bridge.ratelimit import RateLimitedLogger

log = logging.getLogger(__name__)
warn = RateLimitedLogger(log)

PREFIX = "/jamgen"
MAX_SUBSCRIBERS = 16
RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024  # survive bursts (the default ~200 KB drops 3/4 of one)
ALIASES = {"volume_db": "volume"}  # control name -> address tail where the short name reads better


def control_address(name: str) -> str:
    """The OSC address of control ``name`` (``prompts[2].weight`` -> ``/jamgen/prompt/2/weight``)."""
    slot = prompt_slot(name)
    if slot:
        return f"{PREFIX}/prompt/{slot[0]}/{slot[1]}"
    return f"{PREFIX}/{ALIASES.get(name, name)}"


def builtin_addresses() -> list[str]:
    """Every address the daemon accepts (for generated surfaces and their tests)."""
    addresses = [control_address(n) for n in REGISTRY]
    for i in range(NUM_PROMPTS):
        addresses += [f"{PREFIX}/prompt/{i}", f"{PREFIX}/prompt/{i}/clear"]
    addresses += [f"{PREFIX}/{a}" for a in ("volume_db", "state", "subscribe", "unsubscribe", "learn")]
    return sorted(set(addresses))


def _message(address: str, *args: Any) -> bytes:
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
    """Receives OSC on ``host:port`` and applies it to ``store``.

    Args:
      store: the live controls.
      host, port: where to listen (port 0 picks a free one; see :attr:`port`).
      allow: sender addresses or networks allowed (``["127.0.0.1", "192.168.1.0/24"]``);
        None allows everyone who can reach the socket.
      sounding: returns the block info audible now (``Engine.sounding``), for feedback.
    """

    def __init__(
        self,
        store: ControlStore,
        host: str = "127.0.0.1",
        port: int = 9000,
        allow: Iterable[str] | None = None,
        sounding: Callable[[], dict[str, Any] | None] = lambda: None,
    ):
        self.store = store
        self.sounding = sounding
        self.allow = [ipaddress.ip_network(a, strict=False) for a in allow] if allow else None
        self.extra_handler: Callable[[str, tuple], bool] | None = None  # mapping-file addresses
        self.learn_handler: Callable[[str], None] | None = None
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
        self._threads = [
            threading.Thread(target=self._receive_loop, name="jamgen-osc", daemon=True),
            threading.Thread(target=self._feedback_loop, name="jamgen-osc-feedback", daemon=True),
        ]
        self._unsubscribe = store.subscribe(self._on_change)
        self._routes = self._build_routes()

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

    # --- routing ------------------------------------------------------------------------------
    def _build_routes(self) -> dict[str, Callable[[tuple, tuple], None]]:
        routes: dict[str, Callable[[tuple, tuple], None]] = {}
        for name, control in REGISTRY.items():
            if control.type == TRIGGER:
                routes[control_address(name)] = lambda args, sender, n=name: self.store.trigger(n, source=f"osc:{sender[0]}")
            else:
                routes[control_address(name)] = lambda args, sender, n=name: self._set(n, args, sender)
        routes[f"{PREFIX}/volume_db"] = routes[control_address("volume_db")]
        for i in range(NUM_PROMPTS):
            routes[f"{PREFIX}/prompt/{i}"] = lambda args, sender, i=i: self._set_prompt(i, args, sender)
            routes[f"{PREFIX}/prompt/{i}/clear"] = lambda args, sender, i=i: self._clear_prompt(i, sender)
        routes[f"{PREFIX}/state"] = lambda args, sender: self._send_state(sender)
        routes[f"{PREFIX}/subscribe"] = lambda args, sender: self._subscribe(args, sender, True)
        routes[f"{PREFIX}/unsubscribe"] = lambda args, sender: self._subscribe(args, sender, False)
        routes[f"{PREFIX}/learn"] = self._learn
        return routes

    def _set(self, name: str, args: tuple, sender: tuple) -> None:
        if len(args) != 1:
            raise ControlError(f"{control_address(name)} takes 1 argument, got {len(args)}")
        self.store.set(name, args[0], source=f"osc:{sender[0]}")

    def _set_prompt(self, slot: int, args: tuple, sender: tuple) -> None:
        if not 1 <= len(args) <= 2 or not isinstance(args[0], str):
            raise ControlError(f"{PREFIX}/prompt/{slot} takes s:text [f:weight]")
        weight = args[1] if len(args) == 2 else 1.0
        self.store.set(f"prompts[{slot}].text", args[0], source=f"osc:{sender[0]}")
        self.store.set(f"prompts[{slot}].weight", weight, source=f"osc:{sender[0]}")

    def _clear_prompt(self, slot: int, sender: tuple) -> None:
        self.store.set(f"prompts[{slot}].weight", 0.0, source=f"osc:{sender[0]}")
        self.store.set(f"prompts[{slot}].text", "", source=f"osc:{sender[0]}")

    def _learn(self, args: tuple, sender: tuple) -> None:
        if len(args) != 1 or not isinstance(args[0], str):
            raise ControlError(f"{PREFIX}/learn takes s:target")
        if self.learn_handler is None:
            raise ControlError("MIDI learn needs a mapping file (jamgen run --mapping FILE)")
        self.learn_handler(args[0])

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
        import time

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
                    if len(self._scheduled) < 10_000:
                        heapq.heappush(self._scheduled, (timed.time, next(self._counter), address, args, sender))
                    else:
                        warn.warning("sched", "OSC: too many scheduled messages; dropped %s", address)
                continue
            self.dispatch(address, args, sender)

    def dispatch(self, address: str, args: tuple, sender: tuple) -> None:
        """Apply one message now; bad ones are logged (rate-limited) and dropped."""
        for arg in args:
            if isinstance(arg, float) and not math.isfinite(arg):
                self.rejected += 1
                warn.warning(f"nan:{address[:64]}", "OSC: %s: non-finite argument %r ignored", address[:64], arg)
                return
        route = self._routes.get(address)
        try:
            if route is not None:
                route(args, sender)
                return
            if self.extra_handler is not None and self.extra_handler(address, args):
                return
        except ControlError as err:
            self.rejected += 1
            warn.warning(f"err:{address[:64]}", "OSC: %s: %s", address[:64], err)
            return
        self.rejected += 1
        warn.warning(f"unknown:{address[:64]}", "OSC: unknown address %r from %s%s", address[:64],
                     sender[0], _did_you_mean(address))

    def apply_due(self, until: float) -> int:
        """Apply scheduled bundle messages whose timetag is <= ``until`` (wall time).

        Called by the engine before it snapshots controls for a block that will start
        sounding at ``until``. Returns how many were applied.
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
            self._send_sock.sendto(_message(address, *args), target)
        except OSError as err:
            warn.warning(f"send:{target}", "OSC: cannot send to %s:%d: %s", target[0], target[1], err)

    def state_messages(self, values: dict[str, Any] | None = None) -> list[tuple[str, Any]]:
        values = values if values is not None else self.store.values()
        out = [(f"{PREFIX}/transport", values["transport"])]
        for name in REGISTRY:
            if name in values:
                out.append((control_address(name), values[name]))
        return out

    def _send_state(self, sender: tuple) -> None:
        for address, value in self.state_messages():
            self._send(sender[:2], address, value)
        sounding = self.sounding()
        if sounding:
            for address, value in _sounding_messages(sounding):
                self._send(sender[:2], address, value)

    def _subscribe(self, args: tuple, sender: tuple, on: bool) -> None:
        port = sender[1]
        if args:
            if not isinstance(args[0], (int, float)) or not 0 < int(args[0]) < 65536:
                raise ControlError(f"{PREFIX}/subscribe takes an optional port 1..65535")
            port = int(args[0])
        target = (sender[0], port)
        with self._sub_lock:
            if not on:
                self._subscribers.discard(target)
                return
            if target not in self._subscribers and len(self._subscribers) >= MAX_SUBSCRIBERS:
                raise ControlError(f"too many subscribers (max {MAX_SUBSCRIBERS})")
            self._subscribers.add(target)
        log.info("OSC: %s:%d subscribed to feedback", *target)
        self._send_state((sender[0], port))

    def add_subscriber(self, host: str, port: int) -> None:
        """Send feedback to ``host:port`` (the mapping file's ``osc.feedback``)."""
        with self._sub_lock:
            self._subscribers.add((host, port))

    def _on_change(self, name: str, value: Any) -> None:
        with self._sub_lock:
            targets = list(self._subscribers)
        if not targets:
            return
        if name == "transport":
            address = f"{PREFIX}/transport"
        elif name in REGISTRY and REGISTRY[name].type != TRIGGER:
            address = control_address(name)
        else:
            return
        for target in targets:
            self._send(target, address, value)

    def _feedback_loop(self) -> None:
        """At 20 Hz, tell subscribers when the block now audible has different controls."""
        while not self._stop.wait(0.05):
            with self._sub_lock:
                targets = list(self._subscribers)
            if not targets:
                continue
            info = self.sounding()
            if not info:
                continue
            for address, value in _sounding_messages(info):
                if self._last_sounding.get(address) != value:
                    self._last_sounding[address] = value
                    for target in targets:
                        self._send(target, address, value)


def _sounding_messages(info: dict[str, Any]) -> list[tuple[str, Any]]:
    c = info["controls"]
    out = [(f"{PREFIX}/sounding/frame", int(info["frame"]))]
    for key in ("guidance", "temperature", "top_k", "volume_db", "mute"):
        out.append((f"{PREFIX}/sounding/{ALIASES.get(key, key)}", c[key]))
    out.append((f"{PREFIX}/sounding/prompts", " | ".join(f"{t}:{w:.2f}" for t, w in c["prompts"])))
    return out


_WORD = re.compile(r"[^/]+")


def _did_you_mean(address: str) -> str:
    import difflib

    close = difflib.get_close_matches(address, builtin_addresses(), n=1, cutoff=0.7)
    return f" (did you mean {close[0]}?)" if close else ""
