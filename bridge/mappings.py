"""Mapping files at run time: load, apply incoming OSC/MIDI to the control store, hot reload.

:class:`MappingEngine` is the one object the daemon holds. It turns *source events* (a custom
OSC address, a decoded MIDI control) into :meth:`ControlStore.set` / ``trigger`` calls through
the rules of a validated :class:`~bridge.mapping_schema.MappingFile`.

Threading model: :meth:`handle_osc` runs on the OSC server's thread, :meth:`handle_midi` on the
MIDI input's worker thread, reloads on the watcher thread. One lock serialises them, since the
per-mapping state (pick-up, toggles, 14-bit assembly) is read-modify-write. None of this ever
runs on the JACK process thread. Swapping in a reloaded file is a single reference assignment
under that lock, so an event sees either the old rules or the new ones, never a mix.

Bad input never raises out of ``handle_*``: it is dropped with a rate-limited warning.

MIDI/OSC learn (:mod:`bridge.learn`) builds on this module through :meth:`add_event_tap` and
:meth:`add_osc_tap`; this module never imports it, so the dependency runs one way only.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
from typing import Any, Callable, Iterable, TextIO

from bridge import controls
from bridge.controls import ControlError, ControlStore, NUM_PROMPTS
from bridge.mapping_schema import Mapping, MappingFile, parse
from bridge.midi_decode import (NOTE, NOTES, PROGRAM, HeldChord, MidiDecoder, SourceEvent, chord_text,
                                relative_delta)
from bridge.ratelimit import RateLimitedLogger
from bridge.transforms import Pickup, clamp01
from bridge.yaml_lines import YamlSourceError, load_located, read_text

log = logging.getLogger(__name__)

RELOAD_POLL_SECONDS = 0.5


class MappingError(ValueError):
    """A mapping file that cannot be used.

    ``errors`` holds every problem, one ``file:line: message`` string each; ``str()`` joins
    them with newlines (a single error is a single line). :meth:`summary` is one line always.
    """

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = list(errors)

    def summary(self) -> str:
        more = len(self.errors) - 1
        return self.errors[0] + (f" (and {more} more error{'s' if more > 1 else ''})" if more else "")


def load_file(path: str | os.PathLike) -> MappingFile:
    """Read and validate a mapping file.

    Raises:
      MappingError: with every problem found, each as ``file:line: message``.
    """
    name = os.fspath(path)
    try:
        text = read_text(name)
        data = load_located(text)
    except YamlSourceError as err:
        raise MappingError([f"{name}:{err.line}: {err.message}"]) from None
    mapping_file, errors = parse(data, name)
    if errors:
        raise MappingError(errors)
    assert mapping_file is not None
    return mapping_file


def check_files(paths: Iterable[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """``jamgen mappings check FILE...``: print every error, return the exit status (0 = all ok)."""
    status = 0
    for path in paths:
        try:
            mf = load_file(path)
        except MappingError as e:
            for line in e.errors:
                print(line, file=err)
            status = 1
        else:
            print(f"{path}: ok ({len(mf.mappings)} mappings, {len(mf.prompts)} prompts)", file=out)
    return status


class _State:
    """Per-mapping run-time state, rebuilt on every (re)load."""

    __slots__ = ("mapping", "pickup", "last_written", "pressed", "chord")

    def __init__(self, mapping: Mapping):
        self.mapping = mapping
        self.pickup = Pickup()
        self.last_written: Any = None
        self.pressed = False
        self.chord = HeldChord(mapping.latch) if mapping.source.kind == NOTES else None


class _Active:
    """The rules of one loaded file, indexed for lookup."""

    def __init__(self, mf: MappingFile):
        self.file = mf
        self.states = [_State(m) for m in mf.mappings]
        self.midi: dict[tuple, _State] = {}
        self.osc: dict[str, list[_State]] = {}
        self.chords: dict[int, list[_State]] = {}  # notes sources by channel
        for st in self.states:
            src = st.mapping.source
            if src.kind == "osc":
                self.osc.setdefault(src.address, []).append(st)
            elif src.kind == NOTES:
                self.chords.setdefault(src.channel, []).append(st)
            else:
                self.midi[src.key] = st
        self.select_group = [st for st in self.states if st.mapping.mode == "select"]


class MappingEngine:
    """Applies a mapping file to a :class:`ControlStore`; see the module docstring for threads.

    Args:
      store: the live control store.
      path: optional mapping file to load at once (raises :class:`MappingError`).
    """

    def __init__(self, store: ControlStore, path: str | os.PathLike | None = None):
        self.store = store
        self._lock = threading.RLock()
        self._active: _Active | None = None
        self._decoder = MidiDecoder()
        self._bad = RateLimitedLogger(log)
        self._path: str | None = None
        self._stamp: tuple | None = None
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        self._reload_listeners: list[Callable[[MappingFile], None]] = []
        self._event_taps: list[Callable[[SourceEvent], bool]] = []
        self._osc_taps: list[Callable[[str, list], bool]] = []
        self.events_applied = 0
        if path is not None:
            self.load(path)

    # --- loading ------------------------------------------------------------------------------
    @property
    def path(self) -> str | None:
        return self._path

    @property
    def mapping_file(self) -> MappingFile | None:
        active = self._active
        return active.file if active else None

    def load(self, path: str | os.PathLike) -> MappingFile:
        """Load (or replace) the mapping file; on error the current rules stay in force.

        Raises:
          MappingError: the file is broken; str() is ``file:line: message`` line(s).
        """
        name = os.fspath(path)
        stamp = _stamp(name)
        mf = load_file(name)
        with self._lock:
            self._active = _Active(mf)
            self._path = name
            self._stamp = stamp
        return mf

    def initial_prompts(self) -> list[tuple[str, float]]:
        """The file's ``prompts:`` as ``[(text, weight), ...]`` (slot = list index)."""
        mf = self.mapping_file
        return list(mf.prompts) if mf else []

    def initial_values(self) -> dict[str, Any]:
        """The file's prompts as control values, for ``ControlStore(initial=...)``."""
        out: dict[str, Any] = {}
        for i, (text, weight) in enumerate(self.initial_prompts()):
            out[f"prompts[{i}].text"] = text
            out[f"prompts[{i}].weight"] = weight
        return out

    def apply_prompts(self) -> None:
        """Write the file's prompts into the store (used after a reload that changed them)."""
        for name, value in self.initial_values().items():
            self.store.set(name, value, source="mapping file")

    def osc_settings(self) -> dict[str, tuple[str, int] | None]:
        """``{"listen": (host, port) | None, "feedback": (host, port) | None}`` from the file."""
        mf = self.mapping_file
        return {"listen": mf.osc_listen if mf else None, "feedback": mf.osc_feedback if mf else None}

    def midi_settings(self) -> dict[str, list[str]]:
        """``{"inputs": [fnmatch patterns of MIDI ports to connect]}`` from the file."""
        mf = self.mapping_file
        return {"inputs": list(mf.midi_inputs) if mf else []}

    def on_reload(self, fn: Callable[[MappingFile], None]) -> None:
        """Call ``fn(mapping_file)`` (on the watcher thread) after each successful hot reload."""
        self._reload_listeners.append(fn)

    # --- hot reload -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start watching the loaded file; edits are applied within ~0.5 s."""
        if self._watcher is not None or self._path is None:
            return
        self._stop.clear()
        self._watcher = threading.Thread(target=self._watch, name="jamgen-mapping-watch", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=2.0)
            self._watcher = None

    def _watch(self) -> None:
        while not self._stop.wait(RELOAD_POLL_SECONDS):
            try:
                self.check_reload()
            except Exception:  # the watcher must survive anything
                log.exception("mapping reload failed")

    def check_reload(self) -> bool:
        """Reload if the file changed on disk; True if new rules were applied."""
        path = self._path
        if path is None:
            return False
        stamp = _stamp(path)
        if stamp is None or stamp == self._stamp:
            return False  # missing for a moment (editors save by rename): try again later
        self._stamp = stamp  # report a broken version once, not every poll
        old = self.mapping_file
        try:
            mf = self.load(path)
        except MappingError as err:
            log.error("mapping reload refused, previous mapping stays in force: %s", err.summary())
            return False
        log.info("reloaded %s: %d mappings", path, len(mf.mappings))
        if old is None or old.prompts != mf.prompts:
            self.apply_prompts()
        if old is not None and (old.osc_listen, old.osc_feedback) != (mf.osc_listen, mf.osc_feedback):
            log.warning("%s: osc settings changed; restart jamgen to apply them", path)
        for fn in list(self._reload_listeners):
            try:
                fn(mf)
            except Exception:
                log.exception("reload listener %r failed", fn)
        return True

    # --- input ----------------------------------------------------------------------------------
    def add_event_tap(self, fn: Callable[[SourceEvent], bool]) -> Callable[[], None]:
        """See every decoded MIDI event first (MIDI learn). ``fn`` returning True consumes it."""
        self._event_taps.append(fn)
        return lambda: self._event_taps.remove(fn) if fn in self._event_taps else None

    def add_osc_tap(self, fn: Callable[[str, list], bool]) -> Callable[[], None]:
        """See every non-built-in OSC message first (OSC learn). True consumes it."""
        self._osc_taps.append(fn)
        return lambda: self._osc_taps.remove(fn) if fn in self._osc_taps else None

    def handle_midi(self, msg) -> None:
        """Apply one mido message. Never raises."""
        try:
            with self._lock:
                events = self._decoder.feed(msg)
                for ev in events:
                    self.handle_event(ev)
        except Exception as err:  # defensive: a bug here must not kill the MIDI thread
            self._bad.warning("midi-internal", "MIDI message %r dropped: %s", msg, err)

    def handle_event(self, ev: SourceEvent) -> bool:
        """Apply one decoded MIDI event; True if a mapping used it."""
        for tap in list(self._event_taps):
            if tap(ev):
                return True
        with self._lock:
            active = self._active
            st = active.midi.get(ev.key) if active else None
            if st is None:
                return self._apply_chord(active, ev) if active and ev.kind == NOTE else False
            m = st.mapping
            if m.source.relative is not None:
                self._apply_relative(st, relative_delta(m.source.relative, ev.value))
            else:
                self._apply(st, ev.normalised, edge=ev.kind != PROGRAM, note=ev.kind == NOTE)
            return True

    def handle_osc(self, address: str, args: list | tuple) -> bool:
        """Apply a custom OSC message; True if the file maps ``address``. Never raises."""
        try:
            for tap in list(self._osc_taps):
                if tap(address, list(args)):
                    return True
            with self._lock:
                active = self._active
                states = active.osc.get(address) if active else None
                if not states:
                    return False
                for st in states:
                    self._apply_osc(st, address, args)
                return True
        except Exception as err:
            self._bad.warning("osc-internal", "OSC %s dropped: %s", address, err)
            return True

    # --- application (under self._lock) ---------------------------------------------------
    def _apply_osc(self, st: _State, address: str, args: list | tuple) -> None:
        m = st.mapping
        control = m.control
        if m.source.arg >= len(args):
            if not args and (control.type == controls.TRIGGER or m.value is not None):
                self._apply(st, 1.0, edge=False)
            else:
                self._bad.warning(f"osc-args:{address}", "OSC %s: expected an argument at index %d, got %d",
                                  address, m.source.arg, len(args))
            return
        arg = args[m.source.arg]
        if control.type == controls.STRING and m.value is None:
            if isinstance(arg, str):
                self._set(m, arg)
            else:
                self._bad.warning(f"osc-type:{address}", "OSC %s: %s needs a string, got %r", address, m.target, arg)
            return
        if isinstance(arg, bool):
            arg = 1.0 if arg else 0.0
        if not isinstance(arg, (int, float)) or not math.isfinite(arg):
            self._bad.warning(f"osc-type:{address}", "OSC %s: expected a finite number, got %.40r", address, arg)
            return
        x = float(arg)
        if m.in_range is not None:
            lo, hi = m.in_range
            x = (x - lo) / (hi - lo)
        self._apply(st, clamp01(x), edge=False)

    def _apply(self, st: _State, x: float, edge: bool, note: bool = False) -> None:
        """Apply normalised input ``x``. Buttons "press" at x >= 0.5, notes at any velocity;
        with ``edge`` a press fires once until released (MIDI), without it every press fires
        (OSC senders do not always send releases)."""
        m = st.mapping
        control = m.control
        if m.value is not None or control.type == controls.TRIGGER or m.mode in ("toggle", "select"):
            pressed = x > 0.0 if note else x >= 0.5
            fire = pressed and not (edge and st.pressed)
            st.pressed = pressed
            if not fire:
                return
            if control.type == controls.TRIGGER:
                self._trigger(m)
            elif m.value is not None:
                self._set(m, m.value)
            elif m.mode == "toggle":
                current = self._get(m.target)
                on = m.scale.inverse(float(current)) >= 0.5
                self._set(m, m.scale.forward(0.0 if on else 1.0))
            else:  # select: this prompt up, the rest of the group down
                for other in self._active.select_group:
                    if other.mapping.target != m.target:
                        self._set(other.mapping, other.mapping.scale.forward(0.0))
                self._set(m, m.scale.forward(1.0))
            return
        if m.pickup:
            current = self._get(m.target)
            if st.last_written is not None and current != st.last_written:
                st.pickup.release()  # moved by someone else since our last write
            if not st.pickup.allow(x, m.scale.inverse(float(current))):
                return
            st.last_written = self._set(m, m.scale.forward(x))
            return
        self._set(m, m.scale.forward(x))

    def _apply_chord(self, active: _Active, ev: SourceEvent) -> bool:
        """A note inside a notes range: the held chord, written to the target only when it changed."""
        for st in active.chords.get(ev.channel, ()):
            src = st.mapping.source
            if src.number <= ev.number <= src.high:
                chord = st.chord.feed(ev.number, ev.value)
                if chord is not None:
                    self._set(st.mapping, chord_text(chord))
                return True
        return False

    def _apply_relative(self, st: _State, delta: int) -> None:
        m = st.mapping
        if delta == 0:
            return
        current = m.scale.inverse(float(self._get(m.target)))
        self._set(m, m.scale.forward(clamp01(current + delta * m.step)))

    def _get(self, name: str) -> Any:
        return self.store.get(name)

    def _set(self, m: Mapping, value: Any) -> Any:
        try:
            applied = self.store.set(m.target, value, source=m.source.describe())
        except ControlError as err:
            self._bad.warning(f"set:{m.target}", "%s -> %s: %s", m.source.describe(), m.target, err)
            return None
        self.events_applied += 1
        return applied

    def _trigger(self, m: Mapping) -> None:
        try:
            self.store.trigger(m.target, source=m.source.describe())
        except ControlError as err:
            self._bad.warning(f"set:{m.target}", "%s -> %s: %s", m.source.describe(), m.target, err)
            return
        self.events_applied += 1


def _stamp(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


__all__ = ["MappingEngine", "MappingError", "MappingFile", "check_files", "load_file", "NUM_PROMPTS"]
