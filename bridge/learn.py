"""MIDI/OSC learn: wait for the next control moved and write its mapping into the YAML file.

The file is edited as *text*: the new rule is one flow-style line inserted at the end of the
``mappings:`` list (or replacing the rule that already had the same source), so the user's
comments, blank lines, key order and quoting survive. A ``yaml.dump`` round trip would lose all
of that. The edited text is validated like any mapping file before it replaces the old one
(atomically, by rename), so learn can never leave a broken file behind.

Which source a movement was is decided over a short window (:data:`WINDOW_SECONDS`) after the
first event, since 14-bit CCs and NRPNs arrive as several messages: an NRPN wins over the CCs
that carry it, a CC pair n / n+32 is a 14-bit CC, otherwise the first event's kind is used.

Threading: in the daemon, :func:`start_learn` starts :class:`EngineLearn` on its own thread
(``jamgen-learn``), which waits and writes the file; its taps (:meth:`Collector.offer`,
:meth:`Collector.offer_osc`) run on the MIDI worker and OSC receive threads, hence the
collector's lock. ``jamgen learn`` (:func:`cli_learn`) runs on the main thread.

This module builds on :mod:`bridge.mappings` (taps, reload); that module never imports this one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
from typing import Any, Callable

from bridge import controls
from bridge.controls import ControlError
from bridge.mapping_schema import parse, source_of
from bridge.mappings import MappingEngine, MappingError, load_file
from bridge.midi_decode import CC, NOTE, NRPN, PITCHBEND, PROGRAM, SourceEvent
from bridge.yaml_lines import LDict, LList, YamlSourceError, compose, load_located, read_text

log = logging.getLogger(__name__)

WINDOW_SECONDS = 0.4
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}
NEW_FILE = "# jamgen mapping file (created by jamgen learn)\nversion: 1\nmappings:\n"


class LearnError(ValueError):
    """Learning cannot complete; the message is one line."""


# --- deciding the source ------------------------------------------------------------------------
def source_from_events(events: list[SourceEvent]) -> dict[str, Any] | None:
    """The ``source:`` dict (YAML-ready) for a burst of decoded events, or None if empty."""
    if not events:
        return None
    nrpn = [e for e in events if e.kind == NRPN]
    if nrpn:
        e = nrpn[-1]
        return {"midi": {"nrpn": e.number, "channel": e.channel}}
    ccs = [e for e in events if e.kind == CC]
    for e in ccs:
        if 32 <= e.number < 64 and any(o.number == e.number - 32 and o.channel == e.channel for o in ccs):
            return {"midi": {"cc14": e.number - 32, "channel": e.channel}}
    for e in events:  # otherwise the first event decides
        if e.kind == CC:
            return {"midi": {"cc": e.number, "channel": e.channel}}
        if e.kind == NOTE and e.value > 0:
            return {"midi": {"note": e.number, "channel": e.channel}}
        if e.kind == PITCHBEND:
            return {"midi": {"pitchbend": True, "channel": e.channel}}
        if e.kind == PROGRAM:
            return {"midi": {"program": e.number, "channel": e.channel}}
    return None


def _flow(value: Any) -> str:
    """A compact YAML flow rendering of dicts/scalars (keys unquoted, strings JSON-quoted)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value) and value.lower() not in _YAML_WORDS
        return value if plain else json.dumps(value, ensure_ascii=False)
    return repr(value)


def mapping_line(source: dict[str, Any], target: str) -> str:
    """The flow mapping of a learnt rule, e.g. ``{source: {midi: {cc: 21, channel: 1}}, target: "x"}``."""
    rule: dict[str, Any] = {"source": source, "target": target}
    control = controls.REGISTRY[target]
    midi = source.get("midi", {})
    if "note" in midi and control.type in (controls.FLOAT, controls.INT, controls.BOOL):
        rule["mode"] = "toggle"  # a pad that latches is what people expect from learn
    return _flow(rule)


# --- editing the text ---------------------------------------------------------------------------
def _source_key(node: Any) -> tuple | None:
    src = source_of(node)
    return src.key if src is not None else None


def _content_end(text: str, start: int, end: int) -> int:
    """Index just after the last non-blank, non-comment line within ``text[start:end]``."""
    chunk = text[start:end]
    lines = chunk.split("\n")
    keep = len(lines)
    while keep > 1 and (not lines[keep - 1].strip() or lines[keep - 1].lstrip().startswith("#")):
        keep -= 1
    return start + len("\n".join(lines[:keep]).rstrip())


def insert_mapping(text: str, rule: str, source: dict[str, Any]) -> str:
    """Return ``text`` with flow mapping ``rule`` added to its ``mappings:`` list.

    A rule with the same source is replaced in place. Everything else is kept byte for byte.

    Raises:
      LearnError: the file is not a mapping file we can edit.
    """
    try:
        root = compose(text)
        data = load_located(text)
    except YamlSourceError as err:
        raise LearnError(f"line {err.line}: {err.message}") from None
    if root is None:
        return text + ("" if text.endswith("\n") or not text else "\n") + "version: 1\nmappings:\n  - " + rule + "\n"
    if not isinstance(data, LDict) or root.tag != "tag:yaml.org,2002:map":
        raise LearnError("the file is not a mapping of keys")
    new_key = _source_key(_to_ldict(source))
    value_node = None
    key_node = None
    for k, v in root.value:
        if getattr(k, "value", None) == "mappings":
            key_node, value_node = k, v
    if key_node is None:
        sep = "" if text.endswith("\n") else "\n"
        return f"{text}{sep}mappings:\n  - {rule}\n"

    existing = data["mappings"]
    if isinstance(existing, LList):
        for i, item in enumerate(existing):
            if isinstance(item, LDict) and _source_key(item.get("source")) == new_key:
                node = value_node.value[i]
                end = _content_end(text, node.start_mark.index, node.end_mark.index)
                return text[:node.start_mark.index] + rule + text[end:]

    if value_node.tag == "tag:yaml.org,2002:null" or (value_node.tag == "tag:yaml.org,2002:seq"
                                                      and value_node.flow_style and not value_node.value):
        # "mappings:", "mappings: ~" or "mappings: []": drop the value, add a block list
        start, end = value_node.start_mark.index, value_node.end_mark.index
        head = text[:start].rstrip(" ")
        line_end = text.find("\n", end)
        rest = "" if line_end < 0 else text[line_end + 1:]
        tail_comment = text[end:line_end if line_end >= 0 else len(text)].rstrip()
        indent = " " * (key_node.start_mark.column + 2)
        return f"{head}{tail_comment}\n{indent}- {rule}\n{rest}"
    if value_node.tag != "tag:yaml.org,2002:seq":
        raise LearnError(f"line {value_node.start_mark.line + 1}: 'mappings' is not a list")
    if value_node.flow_style:  # [a, b]: add before the closing bracket
        close = text.rindex("]", 0, value_node.end_mark.index)
        return text[:close].rstrip() + ", " + rule + text[close:]
    last = value_node.value[-1]
    end = _content_end(text, last.start_mark.index, last.end_mark.index)
    line_end = text.find("\n", end)  # after a trailing comment on the item's last line
    end = len(text) if line_end < 0 else line_end
    indent = " " * value_node.start_mark.column
    return text[:end] + "\n" + indent + "- " + rule + text[end:]


def learn_into_file(path: str, target: str, source: dict[str, Any]) -> int:
    """Write the rule ``source -> target`` into the mapping file at ``path``; returns its line.

    Raises:
      LearnError: unknown target, or the result would not be a valid mapping file.
    """
    if target not in controls.REGISTRY:
        raise LearnError(f"unknown control {target!r}{controls.suggest(target)}")
    if os.path.exists(path):
        try:
            text = read_text(path)
        except YamlSourceError as err:
            raise LearnError(f"{path}: {err.message}") from None
    else:
        text = NEW_FILE
    rule = mapping_line(source, target)
    new_text = insert_mapping(text, rule, source)
    try:
        mf, errors = parse(load_located(new_text), path)
    except YamlSourceError as err:
        raise LearnError(f"{path}:{err.line}: {err.message}") from None
    if errors:
        raise LearnError(f"cannot add {rule}: {errors[0]}")
    _atomic_write(path, new_text)
    line = next((m.line for m in mf.mappings if m.target == target and _same(m.source, source)), 0)
    return line


def _same(src, source: dict[str, Any]) -> bool:
    return src.key == _source_key(_to_ldict(source))


def _to_ldict(value: Any) -> Any:
    if isinstance(value, dict):
        out = LDict({k: _to_ldict(v) for k, v in value.items()})
        return out
    return value


def _atomic_write(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".jamgen-learn-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        if os.path.exists(path):
            os.chmod(tmp, os.stat(path).st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def describe(source: dict[str, Any]) -> str:
    if "osc" in source:
        return f"osc {source['osc']}"
    midi = source["midi"]
    kind = next(k for k in midi if k != "channel")
    return f"{kind} {midi[kind]} ch{midi['channel']}" if kind != "pitchbend" else f"pitchbend ch{midi['channel']}"


# --- a learn session ----------------------------------------------------------------------------
class Collector:
    """Collects decoded events from the first one until the window closes (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[SourceEvent] = []
        self.osc: tuple[str, list] | None = None
        self.first = threading.Event()
        self.first_time = 0.0

    def offer(self, ev: SourceEvent) -> bool:
        with self._lock:
            if ev.kind == NOTE and ev.value == 0 and not self.events:
                return True  # a release left over from before learn started
            if self.osc is None:
                self.events.append(ev)
            if not self.first.is_set():
                self.first_time = time.monotonic()
                self.first.set()
        return True

    def offer_osc(self, address: str, args: list) -> bool:
        with self._lock:
            if self.osc is None and not self.events:
                self.osc = (address, args)
                self.first_time = time.monotonic()
                self.first.set()
        return True

    def wait(self, timeout: float) -> dict[str, Any] | None:
        """Block until a source is known (None on timeout)."""
        if not self.first.wait(timeout):
            return None
        remaining = self.first_time + WINDOW_SECONDS - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        with self._lock:
            if self.osc is not None:
                return {"osc": self.osc[0]}
            return source_from_events(list(self.events))


class EngineLearn(threading.Thread):
    """Learn inside the running daemon (``/jamgen/learn s:target``): taps the engine's MIDI and
    custom-OSC input, writes the file, reloads it at once."""

    def __init__(self, engine, target: str, timeout: float, done: Callable[[str | None], None] | None):
        super().__init__(name="jamgen-learn", daemon=True)
        self.engine, self.target, self.timeout, self.done = engine, target, timeout, done
        self.collector = Collector()

    def run(self) -> None:
        untap_midi = self.engine.add_event_tap(self.collector.offer)
        untap_osc = self.engine.add_osc_tap(self.collector.offer_osc)
        log.info("learn: move a control for %s (waiting %.0f s)", self.target, self.timeout)
        try:
            source = self.collector.wait(self.timeout)
        finally:
            untap_midi()
            untap_osc()
        message = None
        if source is None:
            log.warning("learn: nothing moved within %.0f s for %s", self.timeout, self.target)
        else:
            try:
                line = learn_into_file(self.engine.path, self.target, source)
                self.engine.load(self.engine.path)
                message = f"learned {describe(source)} -> {self.target} ({self.engine.path}:{line})"
                log.info("%s", message)
            except Exception as err:  # LearnError, MappingError, OSError: report, keep running
                message = f"learn failed: {err}"
                log.error("%s", message)
        if self.done is not None:
            self.done(message)


def start_learn(engine: MappingEngine, target: str, timeout: float = 30.0,
                done: Callable[[str | None], None] | None = None) -> None:
    """Arm MIDI/OSC learn in the daemon: the next control moved is written into the file for ``target``.

    Runs in the background (thread ``jamgen-learn``); ``done(message)`` is called with a one-line
    result (or None on timeout). The daemon hands ``functools.partial(start_learn, engine)`` to the
    OSC server for ``/jamgen/learn``.

    Raises:
      ControlError: ``target`` is not a control (at once).
      RuntimeError: no mapping file is loaded, so there is nowhere to write.
    """
    if target not in controls.REGISTRY:
        raise ControlError(f"unknown control {target!r}{controls.suggest(target)}")
    if engine.path is None:
        raise RuntimeError("learn needs a mapping file: start jamgen with --mapping FILE")
    EngineLearn(engine, target, timeout, done).start()


def cli_learn(target: str, path: str, timeout: float = 30.0, server: str | None = None,
              patterns: list[str] | None = None, client_name: str = "jamgen-learn") -> int:
    """``jamgen learn TARGET --mapping FILE``: listen on JACK MIDI, write the file, exit."""
    from bridge.midi import MidiInput
    from bridge.midi_decode import MidiDecoder

    if target not in controls.REGISTRY:
        print(f"jamgen learn: unknown control {target!r}{controls.suggest(target)}", file=sys.stderr)
        return 2
    if patterns is None:
        patterns = ["*"]
        if os.path.exists(path):
            try:
                patterns = list(load_file(path).midi_inputs) or ["*"]
            except MappingError as err:
                print(err.summary(), file=sys.stderr)
                return 1
    collector = Collector()
    decoder = MidiDecoder()

    def handler(msg) -> None:
        for ev in decoder.feed(msg):
            collector.offer(ev)

    midi = MidiInput(handler, client_name=client_name, patterns=patterns, server=server, backend="jack")
    midi.start()
    try:
        if midi.port_name is None:
            print("jamgen learn: no JACK server is running (start jackd, or pass --jack-server NAME)", file=sys.stderr)
            return 1
        print(f"learn: move a control for {target} (MIDI into {midi.port_name}, "
              f"connected from {', '.join(patterns)}; waiting {timeout:.0f} s)", flush=True)
        source = collector.wait(timeout)
    finally:
        midi.close()
    if source is None:
        print(f"jamgen learn: nothing moved within {timeout:.0f} s", file=sys.stderr)
        return 1
    try:
        line = learn_into_file(path, target, source)
    except (LearnError, OSError) as err:
        print(f"jamgen learn: {err}", file=sys.stderr)
        return 1
    print(f"learned {describe(source)} -> {target} ({path}:{line})")
    return 0
