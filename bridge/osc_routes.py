"""The ``/jamgen/...`` OSC address space and its routing, with no socket.

This module is to :mod:`bridge.osc` what python-osc's ``Dispatcher`` is to its servers: it
knows which addresses exist and what each one does, and turns one decoded message
``(address, args, sender)`` into calls on the :class:`~bridge.controls.ControlStore`. The UDP
socket, the allow-list, the subscriber set and timed bundles live in :mod:`bridge.osc`, which
hands messages in and sends the replies this module asks for. Tests drive it with no socket.

The address space is derived from :data:`bridge.controls.REGISTRY`: every control has one
address (:func:`control_address`), prompt slots get a compound setter and a clear, and a few
commands (:data:`COMMANDS`) reply, subscribe or arm learn. The only hand-kept table is
:data:`ALIASES` (short address tails), keyed by control name and checked against the registry
by the tests.

Threading: :meth:`OscRouter.dispatch` runs on the thread that calls it, which is the OSC
server's receive thread for messages due now and the engine's generation thread for timed
bundles (:meth:`bridge.osc.OscServer.apply_due`). The router holds no lock of its own: the
store is thread-safe, and the hooks it calls (mapping engine, learn, reply, subscribe) must be.
"""

from __future__ import annotations

import difflib
import logging
import math
from typing import Any, Callable

from bridge.controls import (
    LIVE,
    NUM_PROMPTS,
    REGISTRY,
    STRING,
    TRIGGER,
    ControlError,
    ControlStore,
    prompt_slot,
)
from bridge.ratelimit import RateLimitedLogger

log = logging.getLogger(__name__)

PREFIX = "/jamgen"
# control name -> address tail, where a short name reads better; the long one is accepted too
ALIASES = {"volume_db": "volume"}
COMMANDS = ("state", "subscribe", "unsubscribe", "learn")  # addresses that are not controls
TRANSPORT_ADDRESS = f"{PREFIX}/transport"  # feedback only: playing | paused | stopped
SOUNDING_PREFIX = f"{PREFIX}/sounding"  # feedback only: the controls of the block audible now

Sender = tuple  # (host, port, ...) as socket.recvfrom returns it
Route = Callable[[tuple, Sender], None]
Message = tuple[str, Any]  # (address, value) of one reply


# --- the address space --------------------------------------------------------------------------
def control_address(name: str) -> str:
    """The OSC address of control ``name`` (``prompts[2].weight`` -> ``/jamgen/prompt/2/weight``)."""
    slot = prompt_slot(name)
    if slot:
        return f"{PREFIX}/prompt/{slot[0]}/{slot[1]}"
    return f"{PREFIX}/{ALIASES.get(name, name)}"


def prompt_address(slot: int, action: str | None = None) -> str:
    """``/jamgen/prompt/<slot>`` (text and weight at once), or with ``action``, e.g. ``.../clear``."""
    return f"{PREFIX}/prompt/{slot}" + (f"/{action}" if action else "")


def builtin_addresses() -> list[str]:
    """Every address the daemon accepts (for generated surfaces and their tests)."""
    addresses = [control_address(n) for n in REGISTRY]
    for i in range(NUM_PROMPTS):
        addresses += [prompt_address(i), prompt_address(i, "clear")]
    addresses += [f"{PREFIX}/{name}" for name in ALIASES]  # the long names of aliased controls
    addresses += [f"{PREFIX}/{command}" for command in COMMANDS]
    return sorted(set(addresses))


def sounding_controls() -> list[str]:
    """The scalar controls reported under ``/jamgen/sounding/``: those that apply to the next
    block (``applies == live``), since they are what a listener hears change; prompts are
    reported as one string, and reset-time controls such as ``seed`` are not sounding."""
    return [n for n, c in REGISTRY.items()
            if prompt_slot(n) is None and c.type not in (TRIGGER, STRING) and c.applies == LIVE]


def feedback_address(name: str) -> str | None:
    """Where a change of ``name`` (a control, or ``transport``) is reported; None for triggers."""
    if name == "transport":
        return TRANSPORT_ADDRESS
    if name in REGISTRY and REGISTRY[name].type != TRIGGER:
        return control_address(name)
    return None


def state_messages(values: dict[str, Any]) -> list[Message]:
    """The reply to ``/jamgen/state`` for ``values`` (:meth:`ControlStore.values`)."""
    out = [(TRANSPORT_ADDRESS, values["transport"])]
    for name in REGISTRY:
        if name in values:
            out.append((control_address(name), values[name]))
    return out


def sounding_messages(info: dict[str, Any]) -> list[Message]:
    """``/jamgen/sounding/...`` messages for a block's info (:meth:`bridge.engine.Engine.sounding`)."""
    c = info["controls"]
    out: list[Message] = [(f"{SOUNDING_PREFIX}/frame", int(info["frame"]))]
    for key in sounding_controls():
        out.append((f"{SOUNDING_PREFIX}/{ALIASES.get(key, key)}", c[key]))
    out.append((f"{SOUNDING_PREFIX}/prompts", " | ".join(f"{t}:{w:.2f}" for t, w in c["prompts"])))
    return out


def did_you_mean(address: str) -> str:
    """A `` (did you mean X?)`` suffix for a near-miss of a built-in address, or ''."""
    close = difflib.get_close_matches(address, builtin_addresses(), n=1, cutoff=0.7)
    return f" (did you mean {close[0]}?)" if close else ""


# --- routing ------------------------------------------------------------------------------------
class OscRouter:
    """Maps each built-in address to a handler and applies messages to ``store``.

    Runs on the caller's thread; see the module docstring.

    Args:
      store: the live controls.
      reply: ``reply(target, messages)`` sends ``[(address, value), ...]`` to ``(host, port)``.
      subscribe: ``subscribe(target, on)`` adds (``on``) or removes a feedback subscriber;
        raises :class:`ControlError` when it cannot add one.
      sounding: returns the block info audible now (``Engine.sounding``), for state replies.
      extra_handler: ``extra_handler(address, args) -> bool`` gets every address that is not
        built in (the mapping file's); True means it was used.
      learn_handler: ``learn_handler(target)`` arms MIDI/OSC learn; None when no mapping file
        is in use, and ``/jamgen/learn`` is then refused.
      warn: the rate-limited logger for refused messages (the server shares its own).
    """

    def __init__(
        self,
        store: ControlStore,
        reply: Callable[[tuple[str, int], list[Message]], None],
        subscribe: Callable[[tuple[str, int], bool], None],
        *,
        sounding: Callable[[], dict[str, Any] | None] = lambda: None,
        extra_handler: Callable[[str, tuple], bool] | None = None,
        learn_handler: Callable[[str], None] | None = None,
        warn: RateLimitedLogger | None = None,
    ):
        self.store = store
        self.reply = reply
        self.subscribe = subscribe
        self.sounding = sounding
        self.extra_handler = extra_handler
        self.learn_handler = learn_handler
        self.warn = warn if warn is not None else RateLimitedLogger(log)
        self._routes = self._build_routes()

    def addresses(self) -> list[str]:
        """Every address this router handles itself (equals :func:`builtin_addresses`)."""
        return sorted(self._routes)

    def _build_routes(self) -> dict[str, Route]:
        routes: dict[str, Route] = {}
        for name, control in REGISTRY.items():
            if control.type == TRIGGER:
                routes[control_address(name)] = lambda args, sender, n=name: self.store.trigger(
                    n, source=f"osc:{sender[0]}")
            else:
                routes[control_address(name)] = lambda args, sender, n=name: self._set(n, args, sender)
        for name in ALIASES:
            routes[f"{PREFIX}/{name}"] = routes[control_address(name)]
        for i in range(NUM_PROMPTS):
            routes[prompt_address(i)] = lambda args, sender, i=i: self._set_prompt(i, args, sender)
            routes[prompt_address(i, "clear")] = lambda args, sender, i=i: self._clear_prompt(i, sender)
        routes[f"{PREFIX}/state"] = lambda args, sender: self._send_state(sender[:2])
        routes[f"{PREFIX}/subscribe"] = lambda args, sender: self._subscribe(args, sender, True)
        routes[f"{PREFIX}/unsubscribe"] = lambda args, sender: self._subscribe(args, sender, False)
        routes[f"{PREFIX}/learn"] = self._learn
        return routes

    def dispatch(self, address: str, args: tuple, sender: Sender) -> bool:
        """Apply one message now. Returns False when it was refused (logged, rate-limited).

        Raises:
          Exception: only what a hook raises beyond :class:`ControlError` (a bug there).
        """
        for arg in args:
            if isinstance(arg, float) and not math.isfinite(arg):
                self.warn.warning(f"nan:{address[:64]}", "OSC: %s: non-finite argument %r ignored",
                                  address[:64], arg)
                return False
        route = self._routes.get(address)
        try:
            if route is not None:
                route(args, sender)
                return True
            if self.extra_handler is not None and self.extra_handler(address, args):
                return True
        except ControlError as err:
            self.warn.warning(f"err:{address[:64]}", "OSC: %s: %s", address[:64], err)
            return False
        self.warn.warning(f"unknown:{address[:64]}", "OSC: unknown address %r from %s%s", address[:64],
                          sender[0], did_you_mean(address))
        return False

    # --- handlers (argument checks and coercion) ---------------------------------------------
    def _set(self, name: str, args: tuple, sender: Sender) -> None:
        if len(args) != 1:
            raise ControlError(f"{control_address(name)} takes 1 argument, got {len(args)}")
        self.store.set(name, args[0], source=f"osc:{sender[0]}")

    def _set_prompt(self, slot: int, args: tuple, sender: Sender) -> None:
        if not 1 <= len(args) <= 2 or not isinstance(args[0], str):
            raise ControlError(f"{prompt_address(slot)} takes s:text [f:weight]")
        weight = args[1] if len(args) == 2 else 1.0
        self.store.set(f"prompts[{slot}].text", args[0], source=f"osc:{sender[0]}")
        self.store.set(f"prompts[{slot}].weight", weight, source=f"osc:{sender[0]}")

    def _clear_prompt(self, slot: int, sender: Sender) -> None:
        self.store.set(f"prompts[{slot}].weight", 0.0, source=f"osc:{sender[0]}")
        self.store.set(f"prompts[{slot}].text", "", source=f"osc:{sender[0]}")

    def _learn(self, args: tuple, sender: Sender) -> None:
        if len(args) != 1 or not isinstance(args[0], str):
            raise ControlError(f"{PREFIX}/learn takes s:target")
        if self.learn_handler is None:
            raise ControlError("MIDI learn needs a mapping file (jamgen run --mapping FILE)")
        self.learn_handler(args[0])

    def _send_state(self, target: tuple[str, int]) -> None:
        messages = state_messages(self.store.values())
        sounding = self.sounding()
        if sounding:
            messages += sounding_messages(sounding)
        self.reply(target, messages)

    def _subscribe(self, args: tuple, sender: Sender, on: bool) -> None:
        port = sender[1]
        if args:
            if not isinstance(args[0], (int, float)) or not 0 < int(args[0]) < 65536:
                raise ControlError(f"{PREFIX}/subscribe takes an optional port 1..65535")
            port = int(args[0])
        target = (sender[0], port)
        self.subscribe(target, on)
        if on:
            self._send_state(target)
