"""The mapping file schema: YAML (with line numbers) -> a validated, immutable :class:`MappingFile`.

Validation collects *every* error instead of stopping at the first (Mopidy's habit), and each
error is one line, ``file:line: what is wrong``, with a did-you-mean for near-miss keys and
control names. A file with any error is rejected whole; nothing half-valid is ever applied.
Valid targets are the names of :data:`bridge.controls.REGISTRY`, nothing listed here.

Threading: pure functions with no state of their own; they run on whichever thread loads a
file (the main thread at start-up, the mapping watcher on reload, learn before it writes).

Schema (version 1)::

    version: 1
    osc:  {listen: "127.0.0.1:9000", feedback: "127.0.0.1:9001"}
    midi: {inputs: ["nanoKONTROL2*"]}          # fnmatch patterns of MIDI ports to connect
    sync: jack                                 # internal | jack | midi | link (bridge.sync; --sync wins)
    prompts: [{text: "bossa nova guitar", weight: 1.0}, ...]
    mappings:
      - source: {osc: "/1/fader1", arg: 0}      # or {midi: {cc|cc14|nrpn|note: N, channel: 1-16}}
                                                #    {midi: {pitchbend: true}} {midi: {program: N}}
                                                #    {midi: {notes: [LOW, HIGH], channel: C}} (chords)
        target: temperature                     # any name of bridge.controls.REGISTRY
        range: [0.2, 2.0]                       # target values for input 0 and 1 (default: full)
        in: [0, 127]                            # OSC only: the sender's own scale (default 0..1)
        curve: linear | exp | log
        invert: false
        mode: absolute | momentary | toggle | select
        pickup: true                            # soft takeover (default on for absolute MIDI knobs)
        value: "jazz trio"                      # constant set on press (buttons, program changes)
        step: 0.01                              # per tick, with {midi: {cc: N, relative: MODE}}
        latch: false                            # notes sources: the chord stays after release

A ``notes`` source is a channel and a range of keys (both ends included) whose held notes are played as a
chord into ``harmony`` (:class:`bridge.midi_decode.HeldChord` says how, with and without ``latch``); its range
may not overlap a ``note`` source or another ``notes`` range on the same channel.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from typing import Any

import bridge.checks  # noqa: F401  (installs the text controls' checks: a value: "H#" fails here, with its line)
from bridge import controls
from bridge.controls import REGISTRY, NUM_PROMPTS
from bridge.midi_decode import (CC, CC14, NOTE, NOTES, NRPN, NRPN_CCS, NUMBER_LIMIT, PITCHBEND,
                                PROGRAM, RELATIVE_MODES)
from bridge.transforms import CURVES, Scale
from bridge.yaml_lines import LDict, LList

TOP_KEYS = ("version", "osc", "midi", "prompts", "mappings", "sync")
SYNC_SOURCES = ("internal", "jack", "midi", "link")  # bridge.sync (which --sync overrides)
OSC_KEYS = ("listen", "feedback")
MIDI_KEYS = ("inputs",)
PROMPT_KEYS = ("text", "weight")
MAPPING_KEYS = ("source", "target", "range", "in", "curve", "invert", "mode", "pickup", "value", "step", "latch")
SOURCE_KEYS = ("osc", "arg", "midi")
MIDI_SOURCE_KINDS = (CC, CC14, NRPN, NOTE, NOTES, PITCHBEND, PROGRAM)
CHORD_TARGETS = ("harmony",)  # what a notes source can play into
MIDI_SOURCE_KEYS = MIDI_SOURCE_KINDS + ("channel", "relative")
MODES = ("absolute", "momentary", "toggle", "select")
DEFAULT_STEP = 0.01


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a value comes from. ``key`` identifies it for lookup and duplicate detection."""

    kind: str  # "osc" or one of MIDI_SOURCE_KINDS
    channel: int = 0  # 1-16 for MIDI
    number: int = 0  # cc/note/nrpn/program number
    address: str = ""  # OSC address
    arg: int = 0  # OSC argument index
    relative: str | None = None  # relative encoder mode for cc
    high: int = 0  # the top of a notes range (``number`` is its bottom)

    @property
    def key(self) -> tuple:
        if self.kind == "osc":
            return ("osc", self.address, self.arg)
        if self.kind == NOTES:
            return (self.kind, self.channel, self.number, self.high)
        return (self.kind, self.channel, self.number)

    def describe(self) -> str:
        if self.kind == "osc":
            return f"osc {self.address}" + (f" arg {self.arg}" if self.arg else "")
        if self.kind == PITCHBEND:
            return f"pitchbend ch{self.channel}"
        if self.kind == NOTES:
            return f"notes {self.number}-{self.high} ch{self.channel}"
        return f"{self.kind} {self.number} ch{self.channel}"


@dataclasses.dataclass(frozen=True)
class Mapping:
    """One validated ``source -> transform -> target`` rule."""

    source: Source
    target: str
    scale: Scale | None  # None for string and trigger targets
    in_range: tuple[float, float] | None
    mode: str
    pickup: bool
    value: Any  # constant to set on press, or None
    step: float
    line: int
    latch: bool = False  # notes sources: keep the chord after the keys are released

    @property
    def control(self) -> controls.Control:
        return REGISTRY[self.target]


@dataclasses.dataclass(frozen=True)
class MappingFile:
    """A whole validated file."""

    path: str
    osc_listen: tuple[str, int] | None
    osc_feedback: tuple[str, int] | None
    midi_inputs: tuple[str, ...]
    prompts: tuple[tuple[str, float], ...]
    mappings: tuple[Mapping, ...]
    sync: str | None = None  # the clock to play on (bridge.sync); read at start-up


def did_you_mean(word: Any, choices: tuple[str, ...] | list[str]) -> str:
    """' (did you mean X?)' for a near miss or an abbreviation of one choice, else ''."""
    word = str(word)
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close and len(word) >= 2:
        close = [c for c in choices if c.startswith(word)][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _type_name(v: Any) -> str:
    if v is None:
        return "nothing"
    if isinstance(v, LDict):
        return "a mapping"
    if isinstance(v, LList):
        return "a list"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(v), type(v).__name__)


class _Errors:
    def __init__(self, path: str):
        self.path = path
        self.lines: list[str] = []

    def add(self, line: int, message: str) -> None:
        self.lines.append(f"{self.path}:{line}: {message}")


def _check_keys(node: LDict, allowed: tuple[str, ...], where: str, err: _Errors) -> None:
    for key in node:
        if key not in allowed:
            hint = did_you_mean(key, allowed) or f" (allowed: {', '.join(allowed)})"
            err.add(node.line_of(key), f"unknown key {key!r} in {where}{hint}")


def _host_port(value: Any, line: int, what: str, err: _Errors) -> tuple[str, int] | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"127.0.0.1:{value}"
    if not isinstance(value, str) or ":" not in value:
        err.add(line, f"{what} must be \"host:port\", not {_type_name(value)} {value!r}")
        return None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        err.add(line, f"{what} must be \"host:port\" with a port in 1..65535, got {value!r}")
        return None
    return host.strip("[]"), int(port)


def _pair(value: Any, line: int, what: str, err: _Errors) -> tuple[float, float] | None:
    if not isinstance(value, list) or len(value) != 2 or not all(_is_number(v) for v in value):
        err.add(line, f"{what} must be a list of two numbers like [0.0, 1.0], got {value!r}")
        return None
    if value[0] == value[1]:
        err.add(line, f"{what} must have two different ends, got {list(value)!r}")
        return None
    return float(value[0]), float(value[1])


def parse(data: Any, path: str) -> tuple[MappingFile | None, list[str]]:
    """Validate a located YAML document; returns ``(file, [])`` or ``(None, errors)``."""
    err = _Errors(path)
    if data is None:
        err.add(1, "file is empty; it needs at least 'version: 1'")
        return None, err.lines
    if not isinstance(data, LDict):
        err.add(getattr(data, "line", 1) or 1, f"the file must be a mapping of keys, not {_type_name(data)}")
        return None, err.lines
    _check_keys(data, TOP_KEYS, "the file", err)
    if "version" not in data:
        err.add(data.line, "missing 'version: 1' at the top of the file")
    elif data["version"] != 1 or isinstance(data["version"], bool):
        err.add(data.line_of("version"), f"version must be 1, got {data['version']!r}")

    listen = feedback = None
    osc = data.get("osc")
    if osc is not None:
        if not isinstance(osc, LDict):
            err.add(data.line_of("osc"),
                    f"osc must be a mapping like {{listen: \"127.0.0.1:9000\"}}, not {_type_name(osc)}")
        else:
            _check_keys(osc, OSC_KEYS, "osc", err)
            listen = _host_port(osc.get("listen"), osc.line_of("listen"), "osc.listen", err)
            feedback = _host_port(osc.get("feedback"), osc.line_of("feedback"), "osc.feedback", err)

    inputs: tuple[str, ...] = ()
    midi = data.get("midi")
    if midi is not None:
        if not isinstance(midi, LDict):
            err.add(data.line_of("midi"),
                    f"midi must be a mapping like {{inputs: [\"nanoKONTROL2*\"]}}, not {_type_name(midi)}")
        else:
            _check_keys(midi, MIDI_KEYS, "midi", err)
            raw = midi.get("inputs", [])
            if isinstance(raw, str):
                raw = [raw]
            if not isinstance(raw, list) or not all(isinstance(p, str) and p for p in raw):
                err.add(midi.line_of("inputs"), f"midi.inputs must be a list of port name patterns, got {raw!r}")
            else:
                inputs = tuple(raw)

    sync = data.get("sync")
    if sync is not None and sync not in SYNC_SOURCES:
        err.add(data.line_of("sync"), f"sync must be one of {', '.join(SYNC_SOURCES)}, got {sync!r}"
                f"{did_you_mean(sync, SYNC_SOURCES)}")
    prompts = _parse_prompts(data, err)
    mappings = _parse_mappings(data, err)
    if err.lines:
        return None, err.lines
    return MappingFile(path, listen, feedback, inputs, prompts, mappings, sync=sync), []


def _parse_prompts(data: LDict, err: _Errors) -> tuple[tuple[str, float], ...]:
    raw = data.get("prompts")
    if raw is None:
        return ()
    if not isinstance(raw, LList):
        err.add(data.line_of("prompts"), f"prompts must be a list of {{text, weight}}, not {_type_name(raw)}")
        return ()
    if len(raw) > NUM_PROMPTS:
        err.add(raw.line_of(NUM_PROMPTS), f"at most {NUM_PROMPTS} prompts are supported, got {len(raw)}")
    out = []
    for i, item in enumerate(raw[:NUM_PROMPTS]):
        line = raw.line_of(i)
        if isinstance(item, str):
            item_text, weight = item, 1.0
        elif isinstance(item, LDict):
            _check_keys(item, PROMPT_KEYS, f"prompts[{i}]", err)
            item_text, weight = item.get("text"), item.get("weight", 1.0)
            if not isinstance(item_text, str):
                err.add(item.line_of("text"), f"prompts[{i}].text must be a string, not {_type_name(item_text)}")
                continue
            if not _is_number(weight) or not 0.0 <= weight <= 1.0:
                err.add(item.line_of("weight"), f"prompts[{i}].weight must be a number in 0..1, got {weight!r}")
                continue
        else:
            err.add(line, f"prompts[{i}] must be {{text: ..., weight: ...}}, not {_type_name(item)}")
            continue
        try:
            text_value, _ = REGISTRY[f"prompts[{i}].text"].coerce(item_text)
        except controls.ControlError as e:
            err.add(line, str(e))
            continue
        out.append((text_value, float(weight)))
    return tuple(out)


def _parse_mappings(data: LDict, err: _Errors) -> tuple[Mapping, ...]:
    raw = data.get("mappings")
    if raw is None:
        return ()
    if not isinstance(raw, LList):
        err.add(data.line_of("mappings"), f"mappings must be a list, not {_type_name(raw)}")
        return ()
    out: list[Mapping] = []
    seen: dict[tuple, int] = {}
    for i, item in enumerate(raw):
        line = raw.line_of(i)
        if not isinstance(item, LDict):
            err.add(line, f"each mapping must be {{source: ..., target: ...}}, not {_type_name(item)}")
            continue
        mapping = _parse_mapping(item, line, err)
        if mapping is None:
            continue
        key = mapping.source.key
        if key in seen:
            err.add(line, f"duplicate source {mapping.source.describe()} (already mapped on line {seen[key]})")
            continue
        seen[key] = line
        out.append(mapping)
    _check_overlaps(out, err)
    return tuple(out)


def _check_overlaps(mappings: list[Mapping], err: _Errors) -> None:
    """Refuse one MIDI byte read two ways: CC n+32 is the LSB of cc14 n, CC 6/38/98/99... feed NRPN, a note
    inside a notes range on its channel."""
    by_key = {m.source.key: m for m in mappings}
    ranges = [m for m in mappings if m.source.kind == NOTES]
    for i, m in enumerate(ranges):
        s = m.source
        for other in ranges[:i]:
            o = other.source
            if o.channel == s.channel and s.number <= o.high and o.number <= s.high:
                err.add(m.line, f"notes {s.number}-{s.high} on channel {s.channel} overlap notes "
                                f"{o.number}-{o.high} (line {other.line}); one key can play one chord")
        for other in mappings:
            o = other.source
            if o.kind == NOTE and o.channel == s.channel and s.number <= o.number <= s.high:
                err.add(other.line, f"note {o.number} on channel {s.channel} is inside notes "
                                    f"{s.number}-{s.high} (line {m.line}); map one or the other")
    nrpn_channels = {m.source.channel for m in mappings if m.source.kind == NRPN}
    for m in mappings:
        s = m.source
        if s.kind == CC14:
            for cc in (s.number, s.number + 32):
                other = by_key.get((CC, s.channel, cc))
                if other is not None:
                    err.add(other.line, f"cc {cc} on channel {s.channel} is part of cc14 {s.number} "
                                        f"(line {m.line}); map one or the other")
        if s.kind == CC and s.channel in nrpn_channels and s.number in NRPN_CCS:
            err.add(m.line, f"cc {s.number} on channel {s.channel} carries NRPN data used by nrpn mappings "
                            f"on that channel; map one or the other")


def _parse_source(node: Any, line: int, err: _Errors) -> Source | None:
    if not isinstance(node, LDict):
        err.add(line, f"source must be {{osc: \"/address\"}} or {{midi: {{cc: N, channel: C}}}}, "
                      f"not {_type_name(node)}")
        return None
    _check_keys(node, SOURCE_KEYS, "source", err)
    if ("osc" in node) == ("midi" in node):
        err.add(node.line, "source needs exactly one of 'osc' or 'midi'")
        return None
    if "osc" in node:
        address, arg = node["osc"], node.get("arg", 0)
        ok = True
        if not isinstance(address, str) or not address.startswith("/") or any(c in address for c in " #*?[]{},"):
            err.add(node.line_of("osc"), f"source.osc must be an OSC address like \"/1/fader1\", got {address!r}")
            ok = False
        elif address.startswith("/jamgen/"):
            err.add(node.line_of("osc"), f"{address} is a built-in jamgen address; it needs no mapping")
            ok = False
        if not isinstance(arg, int) or isinstance(arg, bool) or not 0 <= arg < 16:
            err.add(node.line_of("arg"), f"source.arg must be an argument index in 0..15, got {arg!r}")
            ok = False
        return Source("osc", address=address, arg=arg) if ok else None
    if "arg" in node:
        err.add(node.line_of("arg"), "source.arg applies to OSC sources only")
    midi = node["midi"]
    mline = node.line_of("midi")
    if not isinstance(midi, LDict):
        err.add(mline, f"source.midi must be a mapping like {{cc: 21, channel: 1}}, not {_type_name(midi)}")
        return None
    _check_keys(midi, MIDI_SOURCE_KEYS, "source.midi", err)
    kinds = [k for k in MIDI_SOURCE_KINDS if k in midi]
    if len(kinds) != 1:
        err.add(midi.line, f"source.midi needs exactly one of {', '.join(MIDI_SOURCE_KINDS)}"
                           + (f", got {', '.join(kinds)}" if kinds else ""))
        return None
    kind = kinds[0]
    ok = True
    number = midi[kind]
    high = 0
    if kind == PITCHBEND:
        if number is not True:
            err.add(midi.line_of(kind), f"pitchbend takes 'true', got {number!r}")
            ok = False
        number = 0
    elif kind == NOTES:
        if (not isinstance(number, list) or len(number) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 127 for n in number)):
            err.add(midi.line_of(kind), f"notes must be a range [LOW, HIGH] of note numbers in 0..127 "
                                        f"like [36, 72], got {number!r}")
            ok = False
        elif number[0] > number[1]:
            err.add(midi.line_of(kind), f"notes range {list(number)!r} is upside down; write [LOW, HIGH] "
                                        f"like [{number[1]}, {number[0]}]")
            ok = False
        else:
            number, high = number
    elif not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= NUMBER_LIMIT[kind]:
        err.add(midi.line_of(kind), f"{kind} must be an integer in 0..{NUMBER_LIMIT[kind]}, got {number!r}")
        ok = False
    channel = midi.get("channel", 1)
    if not isinstance(channel, int) or isinstance(channel, bool) or not 1 <= channel <= 16:
        err.add(midi.line_of("channel"), f"channel must be an integer in 1..16, got {channel!r}")
        ok = False
    relative = midi.get("relative")
    if relative is not None:
        if kind != CC:
            err.add(midi.line_of("relative"), f"relative applies to cc sources only, not {kind}")
            ok = False
        elif relative not in RELATIVE_MODES:
            err.add(midi.line_of("relative"), f"relative must be one of {', '.join(RELATIVE_MODES)}, "
                                              f"got {relative!r}{did_you_mean(relative, RELATIVE_MODES)}")
            ok = False
    return Source(kind, channel=channel, number=number, relative=relative, high=high) if ok else None


def source_of(node: Any) -> Source | None:
    """A ``source:`` node as a :class:`Source`, or None when it is not a valid source.

    For callers that only need to identify a source (learn replacing a rule); errors are dropped.
    """
    return _parse_source(node, 0, _Errors("")) if isinstance(node, LDict) else None


def _parse_mapping(item: LDict, line: int, err: _Errors) -> Mapping | None:
    n_before = len(err.lines)
    _check_keys(item, MAPPING_KEYS, "mapping", err)
    if "source" not in item:
        err.add(line, "mapping has no 'source'")
    if "target" not in item:
        err.add(line, "mapping has no 'target'")
    if "source" not in item or "target" not in item:
        return None
    source = _parse_source(item["source"], item.line_of("source"), err)
    target = item["target"]
    tline = item.line_of("target")
    control = None
    if not isinstance(target, str):
        err.add(tline, f"target must be a control name like 'temperature', not {_type_name(target)}")
    elif target not in REGISTRY:
        err.add(tline, f"unknown target {target!r}{controls.suggest(target)}")
    else:
        control = REGISTRY[target]

    curve = item.get("curve", "linear")
    if curve not in CURVES:
        err.add(item.line_of("curve"),
                f"curve must be one of {', '.join(CURVES)}, got {curve!r}{did_you_mean(curve, CURVES)}")
        curve = "linear"
    invert = item.get("invert", False)
    if not isinstance(invert, bool):
        err.add(item.line_of("invert"), f"invert must be true or false, got {invert!r}")
        invert = False
    mode = item.get("mode")
    if mode is not None and mode not in MODES:
        err.add(item.line_of("mode"),
                f"mode must be one of {', '.join(MODES)}, got {mode!r}{did_you_mean(mode, MODES)}")
        mode = None
    pickup = item.get("pickup")
    if pickup is not None and not isinstance(pickup, bool):
        err.add(item.line_of("pickup"), f"pickup must be true or false, got {pickup!r}")
        pickup = None
    step = item.get("step", DEFAULT_STEP)
    if not _is_number(step) or not 0 < step <= 1:
        err.add(item.line_of("step"), f"step must be a number in (0, 1] (fraction of the range per tick), got {step!r}")
        step = DEFAULT_STEP
    in_range = None
    if "in" in item:
        in_range = _pair(item["in"], item.line_of("in"), "in", err)
        if source is not None and source.kind != "osc":
            err.add(item.line_of("in"),
                    "'in' applies to OSC sources only; MIDI inputs are normalised by their resolution")
    out_range = None
    if "range" in item:
        out_range = _pair(item["range"], item.line_of("range"), "range", err)
    value = item.get("value")
    latch = item.get("latch", False)
    if not isinstance(latch, bool):
        err.add(item.line_of("latch"), f"latch must be true or false, got {latch!r}")
    elif "latch" in item and source is not None and source.kind != NOTES:
        err.add(item.line_of("latch"), "latch applies to notes sources only ({midi: {notes: [LOW, HIGH]}})")
    if control is None or source is None or len(err.lines) > n_before:
        return None

    kind = source.kind
    if kind == NOTES:
        return _chord_mapping(item, source, target, line, latch, err)
    if value is not None:
        try:
            value, note = control.coerce(value)
        except controls.ControlError as e:
            err.add(item.line_of("value"), f"value: {e}")
            return None
        if note:
            err.add(item.line_of("value"), f"value out of range: {note}")
            return None
    scale = None
    if control.type in (controls.FLOAT, controls.INT, controls.BOOL):
        lo = control.minimum if control.minimum is not None else 0.0
        hi = control.maximum if control.maximum is not None else 1.0
        if out_range is not None:
            for end in out_range:
                if not lo <= end <= hi:
                    err.add(item.line_of("range"),
                            f"range {list(out_range)!r} is outside {target}'s limits {lo:g}..{hi:g}")
                    return None
            lo, hi = out_range
        if lo > hi:
            lo, hi, invert = hi, lo, not invert
        scale = Scale(lo, hi, curve, invert)
    else:
        for key in ("range", "curve", "invert", "pickup", "step"):
            if key in item:
                err.add(item.line_of(key), f"{key!r} does not apply to {target} ({control.type} control)")
                return None
        if control.type == controls.STRING and value is None and kind != "osc":
            err.add(tline, f"{target} is text; a MIDI source needs a constant, e.g. value: \"jazz trio\"")
            return None
    if mode in ("toggle", "momentary", "select") and scale is None:
        err.add(item.line_of("mode"), f"mode {mode} needs a number or on/off target, not {target} ({control.type})")
        return None
    if mode == "select" and controls.prompt_slot(target) is None:
        err.add(item.line_of("mode"),
                f"mode select chooses one prompt weight among several; {target} is not a prompt weight")
        return None
    if source.relative is not None and (mode not in (None, "absolute") or scale is None):
        err.add(item.line_of("source"), f"a relative encoder needs an absolute number target and no mode {mode}")
        return None
    if mode is None:
        mode = "momentary" if kind == NOTE and scale is not None else "absolute"
    if pickup is None:
        pickup = kind in (CC, CC14, NRPN) and mode == "absolute" and source.relative is None and value is None
    elif pickup and (mode != "absolute" or source.relative is not None):
        err.add(item.line_of("pickup"), "pickup applies to absolute knobs and faders only")
        return None
    return Mapping(source, target, scale, in_range, mode, pickup, value, float(step), line)


def _chord_mapping(item: LDict, source: Source, target: str, line: int, latch: bool,
                   err: _Errors) -> Mapping | None:
    """A notes source: held keys played as chords into a chord target; no transform applies."""
    if target not in CHORD_TARGETS:
        err.add(item.line_of("target"), f"a notes source plays chords into {' or '.join(CHORD_TARGETS)}, "
                                        f"not {target}; map single keys with {{note: N}}")
        return None
    for key in ("range", "in", "curve", "invert", "mode", "pickup", "value", "step"):
        if key in item:
            err.add(item.line_of(key), f"{key!r} does not apply to a notes source (held keys are the chord)")
            return None
    return Mapping(source, target, None, None, "absolute", False, None, DEFAULT_STEP, line, latch)
