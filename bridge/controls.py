"""The control registry: every live parameter of jamgen, declared once.

Surfaces (CLI, OSC, MIDI, mapping files, Max patches, TouchOSC layouts) are *generated* from
:data:`REGISTRY`, never written by hand per surface, so a control added here appears everywhere.

Threading model: any number of writer threads (OSC server, MIDI callback, file watcher) call
:meth:`ControlStore.set` / :meth:`ControlStore.trigger`; the generation thread calls
:meth:`ControlStore.snapshot` once per block and gets one consistent, immutable view. A single
lock guards the store; it is never taken from the JACK process callback.

Prompt weights are slewed (moved at a bounded rate) in :meth:`ControlStore.snapshot`, so a knob
that jumps from 0 to 1 fades the style in over :data:`WEIGHT_SLEW_SECONDS` instead of clicking.

The registry is plain data and imports nothing from ``generator``: surfaces, the CLI's help and the
mapping-file checker use it without loading any model code. The generator's view of a snapshot is
made in one place, :func:`bridge.session.generation_controls`.

Text whose meaning only the generator side knows (``harmony``: a chord) names a *check* in plain data
(``Control.check``); the function behind the name is installed with :func:`install_check` by
:mod:`bridge.checks`, which :mod:`bridge.session` and :mod:`bridge.mapping_schema` import, so every way in
(``--set``, OSC, mapping files) refuses such text with the parser's own one-line message.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import threading
from typing import Any, Callable, Iterable

log = logging.getLogger(__name__)

NUM_PROMPTS = 8
MAX_PROMPT_CHARS = 512
WEIGHT_SLEW_SECONDS = 0.25  # time for a prompt weight to travel the full 0..1 range

FLOAT, INT, BOOL, STRING, TRIGGER = "float", "int", "bool", "string", "trigger"
LIVE, RESET = "live", "reset"
PROMPT, GENERATION, OUTPUT, TRANSPORT = "prompt", "generation", "output", "transport"
TRANSPORT_STATES = ("playing", "paused", "stopped")


class ControlError(ValueError):
    """A value or name a client sent that cannot be applied (one-line message)."""


Check = Callable[[str], Any]
_CHECKS: dict[str, Check] = {}


def install_check(name: str, fn: Check) -> None:
    """Install the function behind ``Control.check == name``: it gets the coerced text and raises
    ``ValueError`` (one line, naming what is wrong) to refuse it. Installing a name again replaces it."""
    _CHECKS[name] = fn


def installed_check(name: str) -> Check | None:
    """The function installed for a check name, or None (tests use it to prove every check is installed)."""
    return _CHECKS.get(name)


@dataclasses.dataclass(frozen=True)
class Control:
    """One declared parameter.

    Attributes:
      name: the canonical name, e.g. ``temperature`` or ``prompts[3].weight``.
      type: one of float, int, bool, string, trigger.
      minimum, maximum: the accepted range (numbers; max length for strings).
      default: the value at start-up.
      unit: a short unit for displays ("dB", "" ...).
      applies: ``live`` (next block) or ``reset`` (takes effect at the next context reset).
      doc: one line for help texts and generated surfaces.
      group: who consumes it: ``prompt`` (a style slot), ``generation`` (a field of the generator's
        ``GenerationControls`` of the same name and default), ``output`` (the JACK output stage) or
        ``transport`` (the triggers).
      check: for text controls, the name of a validation installed with :func:`install_check` (plain
        data here; the function lives where the meaning does, e.g. ``generator.core.contract``).
    """

    name: str
    type: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""
    applies: str = LIVE
    doc: str = ""
    group: str = "generation"
    check: str = ""

    def coerce(self, value: Any) -> tuple[Any, str | None]:
        """Turn a client's value into this control's type, clamping to the range.

        Returns ``(value, note)``; ``note`` says what was clamped, or is None.

        Raises:
          ControlError: the value has the wrong type or is not a finite number.
        """
        if self.type == TRIGGER:
            return None, None
        if self.type == STRING:
            if not isinstance(value, str):
                raise ControlError(f"{self.name} must be a string, not {type(value).__name__}")
            if "\x00" in value:
                raise ControlError(f"{self.name} must not contain NUL characters")
            text = " ".join(value.split())  # collapse newlines/tabs: prompts are one line
            limit = int(self.maximum or MAX_PROMPT_CHARS)
            note = None
            if len(text) > limit:
                text, note = text[:limit], f"{self.name} truncated to {limit} characters"
            check = _CHECKS.get(self.check) if self.check else None
            if check is not None:
                try:
                    check(text)
                except ValueError as err:
                    raise ControlError(str(err).splitlines()[0] if str(err) else f"{self.name}: bad value") from None
            return text, note
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ControlError(f"{self.name} must be a number, not {value[:40]!r}") from None
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, (int, float)):
            try:  # numpy scalars and friends
                value = float(value)
            except (TypeError, ValueError):
                raise ControlError(
                    f"{self.name} must be a number, not {type(value).__name__}"
                ) from None
        if not math.isfinite(value):
            raise ControlError(f"{self.name} must be a finite number, not {value}")
        note = None
        lo, hi = self.minimum, self.maximum
        if lo is not None and value < lo:
            note, value = f"{self.name}={value:g} clamped to minimum {lo:g}", lo
        elif hi is not None and value > hi:
            note, value = f"{self.name}={value:g} clamped to maximum {hi:g}", hi
        if self.type == BOOL:
            return bool(value >= 0.5), note
        if self.type == INT:
            return int(round(value)), note
        return float(value), note


def _build_registry() -> dict[str, Control]:
    controls: list[Control] = []
    for i in range(NUM_PROMPTS):
        controls.append(Control(f"prompts[{i}].text", STRING, "", 0, MAX_PROMPT_CHARS, group=PROMPT,
                                doc=f"style prompt of slot {i} (empty = slot unused)"))
        controls.append(Control(f"prompts[{i}].weight", FLOAT, 0.0, 0.0, 1.0, group=PROMPT,
                                doc=f"blend weight of slot {i}; 0 = inactive, normalised over active slots"))
    controls += [
        # Magenta RT v1 documents guidance_weight 5.0 for its batch-2 CFG; jamgen's formula is
        # uncond + w*(cond - uncond), where w = 1 is the plain conditional model.
        Control("guidance", FLOAT, 3.0, 0.0, 10.0,
                doc="classifier-free guidance weight: 0 ignores the prompts, 1 = plain conditional, >1 stronger"),
        Control("temperature", FLOAT, 1.1, 0.0, 3.0, doc="sampling temperature; 0 = greedy"),
        Control("top_k", INT, 40, 1, 1024, doc="sample among the k most likely tokens"),
        Control("seed", INT, 0, 0, 2**31 - 1, applies=RESET,
                doc="random seed of a fresh context (used at the next reset/stop)"),
        Control("bpm", FLOAT, 0.0, 0.0, 300.0, unit="BPM",
                doc="tempo of models on a beat grid (groove); 0 = the tempo the prompt asks for"),
        Control("repeat", FLOAT, 0.5, 0.0, 1.0,
                doc="chance that a bar repeats an earlier one (groove): 0 = always new, 1 = a loop"),
        Control("harmony", STRING, "", 0, 200, check="harmony",
                doc="a chord the melodic parts follow (groove), e.g. 'C E G' or '48 64 67'; empty = the prompt's"),
        # Magenta RT 2's own conditioning (mrt2:, magenta:), as MagentaRT2System names and bins them: CFG scales are
        # clamped to [-1, 7] and binned into the CFG tokens (0.2 steps for notes, 1.0 for drums), default 1.0.
        Control("cfg_notes", FLOAT, 1.0, -1.0, 7.0,
                doc="MRT2 (mrt2:, magenta:): guidance of the held MIDI notes (piano roll); 1 = plain, >1 closer"),
        Control("cfg_drums", FLOAT, 1.0, -1.0, 7.0,
                doc="MRT2: guidance of the drum conditioning (drumless), in whole steps; 1 = plain"),
        Control("drumless", BOOL, False, 0, 1, doc="MRT2: ask for music without drums"),
        Control("unmask_width", INT, 0, 0, 127,
                doc="MRT2: pitches within N semitones of a held note are kept silent; 127 = solo: only the held notes"),
        Control("volume_db", FLOAT, 0.0, -60.0, 12.0, unit="dB", group=OUTPUT, doc="output gain"),
        Control("mute", BOOL, False, 0, 1, group=OUTPUT, doc="mute the output (generation continues)"),
        Control("play", TRIGGER, group=TRANSPORT, doc="start or resume playing"),
        Control("pause", TRIGGER, group=TRANSPORT, doc="pause output and generation, keeping the context"),
        Control("stop", TRIGGER, group=TRANSPORT, doc="stop and clear the context; play starts fresh"),
        Control("reset", TRIGGER, applies=RESET, group=TRANSPORT, doc="clear the context and keep playing"),
    ]
    return {c.name: c for c in controls}


REGISTRY: dict[str, Control] = _build_registry()
TRIGGERS = tuple(n for n, c in REGISTRY.items() if c.type == TRIGGER)
GENERATION_CONTROLS = tuple(n for n, c in REGISTRY.items() if c.group == GENERATION)
OUTPUT_CONTROLS = tuple(n for n, c in REGISTRY.items() if c.group == OUTPUT)

_PROMPT_RE = re.compile(r"^prompts\[(\d+)\]\.(text|weight)$")


def prompt_slot(name: str) -> tuple[int, str] | None:
    """``"prompts[3].weight"`` -> ``(3, "weight")``; None for other names."""
    m = _PROMPT_RE.match(name)
    return (int(m.group(1)), m.group(2)) if m else None


def suggest(name: str) -> str:
    """A ' (did you mean X?)' suffix for an unknown control name, or ''."""
    import difflib

    close = difflib.get_close_matches(name, list(REGISTRY), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclasses.dataclass(frozen=True)
class ControlSnapshot:
    """What the generation thread reads once per block: effective values, slewed weights.

    :func:`bridge.session.generation_controls` turns it into the generator's view.
    """

    values: dict[str, Any]  # every non-trigger control, weights as currently slewed
    transport: str  # playing | paused | stopped
    reset_count: int  # increments on every reset/stop; the engine resets when it changes

    def gain(self) -> float:
        """Linear output gain from volume_db and mute."""
        return output_gain(self.values)


def output_gain(values: dict[str, Any]) -> float:
    """Linear output gain from the output controls (volume_db, mute) in ``values``."""
    if values["mute"]:
        return 0.0
    return 10.0 ** (values["volume_db"] / 20.0)


Listener = Callable[[str, Any], None]


class ControlStore:
    """The live, thread-safe values of every control in :data:`REGISTRY`."""

    def __init__(self, initial: dict[str, Any] | None = None, autoplay: bool = True):
        self._lock = threading.Lock()
        self._targets: dict[str, Any] = {n: c.default for n, c in REGISTRY.items() if c.type != TRIGGER}
        self._slewed: dict[str, float] = {
            n: 0.0 for n in self._targets if n.endswith(".weight")
        }
        self._transport = "playing" if autoplay else "stopped"
        self._reset_count = 0
        self._listeners: list[Listener] = []
        for name, value in (initial or {}).items():
            self.set(name, value, source="initial")
        self.settle()

    def settle(self) -> None:
        """Jump slewed weights to their targets (start-up values apply without a fade-in)."""
        with self._lock:
            for n in self._slewed:
                self._slewed[n] = self._targets[n]

    # --- writers (any thread) -------------------------------------------------------------
    def set(self, name: str, value: Any, source: str = "?") -> Any:
        """Set control ``name``; triggers ignore ``value``. Returns the applied value.

        Out-of-range numbers are clamped and reported in the log. Unknown names and wrong
        types raise :class:`ControlError` (the caller decides how loudly to report).
        """
        control = REGISTRY.get(name)
        if control is None:
            raise ControlError(f"unknown control {name!r}{suggest(name)}")
        if control.type == TRIGGER:
            self.trigger(name, source=source)
            return None
        applied, note = control.coerce(value)
        if note:
            log.warning("%s (from %s)", note, source)
        with self._lock:
            changed = self._targets[name] != applied
            self._targets[name] = applied
        if changed:
            self._notify(name, applied)
        return applied

    def trigger(self, name: str, source: str = "?") -> None:
        """Fire a transport trigger: play, pause, stop or reset."""
        if name not in TRIGGERS:
            raise ControlError(f"{name!r} is not a trigger (triggers: {', '.join(TRIGGERS)})")
        with self._lock:
            before = self._transport
            if name == "play":
                self._transport = "playing"
            elif name == "pause":
                if self._transport == "playing":
                    self._transport = "paused"
            elif name == "stop":
                self._transport = "stopped"
                self._reset_count += 1
            elif name == "reset":
                self._reset_count += 1
            after = self._transport
        log.info("transport %s (from %s): %s -> %s", name, source, before, after)
        self._notify("transport", after)
        if name in ("stop", "reset"):
            self._notify(name, None)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(name, value)`` after every change; returns an unsubscribe function.

        Listeners run in the writer's thread and must be quick and must not raise.
        """
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _notify(self, name: str, value: Any) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(name, value)
            except Exception:  # a broken surface must not break the others
                log.exception("control listener %r failed", listener)

    # --- readers ------------------------------------------------------------------------------
    def get(self, name: str) -> Any:
        if name == "transport":
            return self.transport
        with self._lock:
            if name not in self._targets:
                raise ControlError(f"unknown control {name!r}{suggest(name)}")
            return self._targets[name]

    @property
    def transport(self) -> str:
        with self._lock:
            return self._transport

    def values(self) -> dict[str, Any]:
        """The target values of every control plus ``transport`` (for state replies)."""
        with self._lock:
            out = dict(self._targets)
            out["transport"] = self._transport
        return out

    def snapshot(self, dt: float = 0.0) -> ControlSnapshot:
        """One consistent view for a block, advancing weight slews by ``dt`` seconds."""
        step = dt / WEIGHT_SLEW_SECONDS if WEIGHT_SLEW_SECONDS > 0 else math.inf
        with self._lock:
            for name, current in self._slewed.items():
                target = self._targets[name]
                delta = target - current
                self._slewed[name] = target if abs(delta) <= step else current + math.copysign(step, delta)
            values = dict(self._targets)
            values.update(self._slewed)
            return ControlSnapshot(values, self._transport, self._reset_count)

    def names(self) -> Iterable[str]:
        return REGISTRY.keys()
