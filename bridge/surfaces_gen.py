"""Generate the Max/MSP patch, the TouchOSC layout, the Pure Data patch, the Open Stage Control
session and the README's controls table from the registry.

Every surface talks to the daemon's built-in OSC address space (:mod:`bridge.osc_routes`), so
neither needs a mapping file. Every control, range and label comes from
:data:`bridge.controls.REGISTRY` and every address from :mod:`bridge.osc_routes`: add a control
there, run this script, and every surface gains it. Never edit the generated files by hand.
The README's controls table is :func:`controls_markdown` (tests/test_registry_surfaces.py keeps
README.md equal to it). Pure functions; run at build time, never by the daemon.

Usage::

    python -m bridge.surfaces_gen            # writes max_patches/jamgen.maxpat, mappings/jamgen.tosc,
                                             # pd_patches/jamgen.pd, open_stage_control/jamgen.json
    python -m bridge.surfaces_gen --check    # exit 1 if the committed files are out of date
    python -m bridge.surfaces_gen --markdown # print the README's controls table

Max (``.maxpat``, Max 8/9 JSON): ``[udpsend 127.0.0.1 9000]`` carries every message;
``[udpreceive 9001]`` + ``[route ...]`` feeds values back through ``[prepend set]`` into the same
number boxes (so they follow other controllers without echoing), plus a status display. A
``[loadbang]`` subscribes on open. Box classes and their inlet/outlet counts are in
:data:`MAX_OBJECTS`, the table the tests check the lines against.

TouchOSC (``.tosc``): a zlib-compressed ``lexml`` v3 document (peers.md §4.5) with faders that
send and receive scaled values (TouchOSC scales 0..1 to the control's range both ways), buttons
for the transport and labels fed by ``/jamgen/prompt/N/text``.

Pure Data (``.pd``, vanilla 0.53) and Open Stage Control (``.json`` session, 1.x) are built by
:mod:`bridge.surfaces_pd` and :mod:`bridge.surfaces_osc`; this module writes and checks them.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from typing import Any

from bridge.controls import BOOL, FLOAT, INT, NUM_PROMPTS, REGISTRY, STRING, TRIGGER, WEIGHT_SLEW_SECONDS, prompt_slot
from bridge.osc_routes import PREFIX, SOUNDING_PREFIX, TRANSPORT_ADDRESS, control_address, prompt_address
from bridge.surfaces_osc import OSC_SESSION, session_text
from bridge.surfaces_pd import pd_text

ROOT = Path(__file__).resolve().parent.parent
MAXPAT = ROOT / "max_patches" / "jamgen.maxpat"
TOSC = ROOT / "mappings" / "jamgen.tosc"
PD_PATCH = ROOT / "pd_patches" / "jamgen.pd"
SEND_PORT, FEEDBACK_PORT = 9000, 9001

# maxclass or object name -> (numinlets, numoutlets, outlettype)
MAX_OBJECTS: dict[str, tuple[int, int, list[str]]] = {
    "udpsend": (1, 0, []),
    "udpreceive": (1, 1, [""]),
    "prepend": (2, 1, [""]),
    "loadbang": (1, 1, ["bang"]),
    "tosymbol": (1, 1, [""]),
    "message": (2, 1, [""]),
    "comment": (1, 0, []),
    "flonum": (1, 2, ["", "bang"]),
    "number": (1, 2, ["", "bang"]),
    "toggle": (1, 1, ["int"]),
    "textedit": (1, 4, ["", "int", "", ""]),
    # route: one outlet per address plus the reject outlet; see _route()
}
MAIN_CONTROLS = [n for n, c in REGISTRY.items()
                 if not n.startswith("prompts[") and c.type in (FLOAT, INT, BOOL)]
TRANSPORT = [n for n, c in REGISTRY.items() if c.type == TRIGGER]
TEXT_CONTROLS = [n for n, c in REGISTRY.items() if not n.startswith("prompts[") and c.type == STRING]


# --- Max ----------------------------------------------------------------------------------------
class _Patcher:
    def __init__(self) -> None:
        self.boxes: list[dict] = []
        self.lines: list[dict] = []

    def box(self, maxclass: str, text: str | None, x: float, y: float, w: float = 120, h: float = 22,
            **extra: Any) -> str:
        box_id = f"obj-{len(self.boxes) + 1}"
        name = text.split()[0] if maxclass == "newobj" else maxclass
        if name == "route":
            inlets, outlets, types = 2, len(text.split()), [""] * len(text.split())
        else:
            inlets, outlets, types = MAX_OBJECTS[name]
        box: dict[str, Any] = {"id": box_id, "maxclass": maxclass, "numinlets": inlets, "numoutlets": outlets,
                               "patching_rect": [float(x), float(y), float(w), float(h)]}
        if types:
            box["outlettype"] = types
        if text is not None:
            box["text"] = text
        box.update(extra)
        self.boxes.append({"box": box})
        return box_id

    def line(self, src: str, outlet: int, dst: str, inlet: int = 0) -> None:
        self.lines.append({"patchline": {"source": [src, outlet], "destination": [dst, inlet]}})

    def json(self) -> dict:
        return {"patcher": {
            "fileversion": 1,
            "appversion": {"major": 8, "minor": 6, "revision": 0, "architecture": "x64", "modernui": 1},
            "classnamespace": "box",
            "rect": [60.0, 80.0, 1400.0, 760.0],
            "gridsize": [15.0, 15.0],
            "boxes": self.boxes,
            "lines": self.lines,
        }}


def _label(name: str) -> str:
    c = REGISTRY[name]
    rng = f" {c.minimum:g}..{c.maximum:g}{(' ' + c.unit) if c.unit else ''}" if c.type in (FLOAT, INT) else ""
    return f"{name}{rng}: {c.doc}"


def build_maxpat() -> dict:
    """The whole patch as a JSON-ready dict."""
    p = _Patcher()
    p.box("comment", "jamgen: steer the daemon over OSC (generated by python -m bridge.surfaces_gen; "
                     "do not edit)", 15, 10, 700)
    send = p.box("newobj", f"udpsend 127.0.0.1 {SEND_PORT}", 15, 700, 160)
    recv = p.box("newobj", f"udpreceive {FEEDBACK_PORT}", 700, 400, 140)
    feedback: list[tuple[str, str]] = []  # (address, box id to "set")

    # prompt slots: text + weight + clear, one column each
    for i in range(NUM_PROMPTS):
        x = 15 + i * 165
        p.box("comment", f"prompt {i}", x, 40, 150)
        text = p.box("textedit", None, x, 65, 150, 40, keymode=1, lines=2)
        tosym = p.box("newobj", "tosymbol", x, 110, 70)
        pre = p.box("newobj", f"prepend {control_address(f'prompts[{i}].text')}", x, 135, 150)
        p.line(text, 0, tosym)
        p.line(tosym, 0, pre)
        p.line(pre, 0, send)
        weight = p.box("flonum", None, x, 165, 60, 22, minimum=0.0, maximum=1.0)
        wmsg = p.box("message", f"{control_address(f'prompts[{i}].weight')} $1", x, 190, 150)
        p.line(weight, 0, wmsg)
        p.line(wmsg, 0, send)
        clear = p.box("message", prompt_address(i, "clear"), x, 215, 150)
        p.line(clear, 0, send)
        feedback.append((control_address(f"prompts[{i}].weight"), weight))
        text_show = p.box("message", "", x, 240, 150)  # shows the slot's text as the daemon has it
        feedback.append((control_address(f"prompts[{i}].text"), text_show))

    # main controls
    for j, name in enumerate(MAIN_CONTROLS):
        c = REGISTRY[name]
        y = 290 + j * 50
        p.box("comment", _label(name), 15, y, 640)
        if c.type == BOOL:
            ui = p.box("toggle", None, 15, y + 22, 22, 22)
        else:
            ui = p.box("flonum" if c.type == FLOAT else "number", None, 15, y + 22, 70, 22,
                       minimum=c.minimum, maximum=c.maximum)
        msg = p.box("message", f"{control_address(name)} $1", 100, y + 22, 180)
        p.line(ui, 0, msg)
        p.line(msg, 0, send)
        feedback.append((control_address(name), ui))

    # text controls (e.g. harmony): a text field sent on Enter, and what the daemon has
    for k, name in enumerate(TEXT_CONTROLS):
        y = 620 + k * 90
        p.box("comment", _label(name), 700, y, 600)
        text = p.box("textedit", None, 700, y + 22, 200, 22, keymode=1, lines=1)
        tosym = p.box("newobj", "tosymbol", 910, y + 22, 70)
        pre = p.box("newobj", f"prepend {control_address(name)}", 990, y + 22, 160)
        p.line(text, 0, tosym)
        p.line(tosym, 0, pre)
        p.line(pre, 0, send)
        show = p.box("message", "", 700, y + 50, 200)
        feedback.append((control_address(name), show))

    # transport
    for k, name in enumerate(TRANSPORT):
        m = p.box("message", control_address(name), 700 + k * 90, 290, 80)
        p.line(m, 0, send)

    # subscribe on load (and on click), ask for the full state
    load = p.box("newobj", "loadbang", 700, 330, 70)
    sub = p.box("message", f"{PREFIX}/subscribe {FEEDBACK_PORT}", 700, 355, 160)
    state = p.box("message", f"{PREFIX}/state", 870, 355, 100)
    p.line(load, 0, sub)
    p.line(sub, 0, send)
    p.line(state, 0, send)

    # status: transport and what is sounding now
    status = [(TRANSPORT_ADDRESS, "transport"), (f"{SOUNDING_PREFIX}/prompts", "sounding prompts"),
              (f"{SOUNDING_PREFIX}/frame", "sounding frame")]
    for k, (address, title) in enumerate(status):
        p.box("comment", title, 900, 440 + k * 50, 200)
        show = p.box("message", "", 900, 460 + k * 50, 420)
        feedback.append((address, show))

    route = p.box("newobj", "route " + " ".join(a for a, _ in feedback), 700, 430, 190)
    p.line(recv, 0, route)
    for k, (_address, target) in enumerate(feedback):
        setter = p.box("newobj", "prepend set", 1100 + (k % 3) * 90, 80 + (k // 3) * 25, 80, 22)
        p.line(route, k, setter)
        p.line(setter, 0, target)
    return p.json()


def maxpat_text() -> str:
    return json.dumps(build_maxpat(), indent=1) + "\n"


# --- TouchOSC -----------------------------------------------------------------------------------
def _uid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"jamgen:{name}"))  # stable across runs


def _prop(parent: ET.Element, kind: str, key: str, value: Any) -> None:
    prop = ET.SubElement(parent, "property", type=kind)
    ET.SubElement(prop, "key").text = key
    v = ET.SubElement(prop, "value")
    if kind == "r":
        for k, n in zip("xywh", value):
            ET.SubElement(v, k).text = str(int(n))
    elif kind == "c":
        for k, n in zip("rgba", value):
            ET.SubElement(v, k).text = f"{n:g}"
    else:
        v.text = str(value)


def _value(parent: ET.Element, key: str, default: Any) -> None:
    v = ET.SubElement(parent, "value")
    ET.SubElement(v, "key").text = key
    ET.SubElement(v, "locked").text = "0"
    ET.SubElement(v, "lockedDefaultCurrent").text = "0"
    ET.SubElement(v, "default").text = str(default)
    ET.SubElement(v, "defaultPull").text = "0"


def _partial(parent: ET.Element, kind: str, conversion: str, value: str, lo: float = 0, hi: float = 1) -> None:
    part = ET.SubElement(parent, "partial")
    ET.SubElement(part, "type").text = kind
    ET.SubElement(part, "conversion").text = conversion
    ET.SubElement(part, "value").text = value
    ET.SubElement(part, "scaleMin").text = _num(lo)
    ET.SubElement(part, "scaleMax").text = _num(hi)


def _num(value: float) -> str:
    """Exact text for a range end (``%g`` would round 2147483647 to 2.14748e+09)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _osc(parent: ET.Element, address: str, var: str | None, conversion: str = "FLOAT", lo: float = 0,
         hi: float = 1, send: bool = True, receive: bool = True, condition: str = "ANY",
         constant_args: list[tuple[str, str]] = ()) -> None:
    osc = ET.SubElement(parent, "osc")
    ET.SubElement(osc, "enabled").text = "1"
    ET.SubElement(osc, "send").text = "1" if send else "0"
    ET.SubElement(osc, "receive").text = "1" if receive else "0"
    ET.SubElement(osc, "feedback").text = "0"
    ET.SubElement(osc, "connections").text = "00001"
    triggers = ET.SubElement(osc, "triggers")
    trig = ET.SubElement(triggers, "trigger")
    ET.SubElement(trig, "var").text = var or "x"
    ET.SubElement(trig, "condition").text = condition
    path = ET.SubElement(osc, "path")
    _partial(path, "CONSTANT", "STRING", address)
    args = ET.SubElement(osc, "arguments")
    for conv, value in constant_args:
        _partial(args, "CONSTANT", conv, value)
    if var is not None:
        _partial(args, "VALUE", conversion, var, lo, hi)


def _node(parent: ET.Element, kind: str, name: str, frame: tuple, color=(0.2, 0.6, 1.0, 1.0),
          **props: tuple[str, Any]) -> ET.Element:
    node = ET.SubElement(parent, "node", ID=_uid(name), type=kind)
    properties = ET.SubElement(node, "properties")
    _prop(properties, "s", "name", name)
    _prop(properties, "r", "frame", frame)
    _prop(properties, "c", "color", color)
    for key, (kind_, value) in props.items():
        _prop(properties, kind_, key, value)
    ET.SubElement(node, "values")
    ET.SubElement(node, "messages")
    return node


def _children(node: ET.Element) -> ET.Element:
    found = node.find("children")
    return found if found is not None else ET.SubElement(node, "children")


def build_tosc() -> ET.Element:
    """The layout as an ElementTree root (``lexml``)."""
    root = ET.Element("lexml", version="3")
    page = _node(root, "GROUP", "jamgen", (0, 0, 1024, 768), (0.1, 0.1, 0.1, 1.0))
    kids = _children(page)
    for i in range(NUM_PROMPTS):
        x = 10 + i * 126
        label = _node(kids, "LABEL", f"prompt{i}_text", (x, 10, 120, 60), (1, 1, 1, 1),
                      textSize=("i", 12))
        _value(label.find("values"), "text", f"prompt {i}")
        _osc(label.find("messages"), control_address(f"prompts[{i}].text"), "text", "STRING",
             send=False, receive=True)
        fader = _node(kids, "FADER", f"prompt{i}_weight", (x + 30, 80, 60, 330))
        _value(fader.find("values"), "x", 0)
        _value(fader.find("values"), "touch", "false")
        _osc(fader.find("messages"), control_address(f"prompts[{i}].weight"), "x")
        clear = _node(kids, "BUTTON", f"prompt{i}_clear", (x + 30, 420, 60, 40), (0.8, 0.3, 0.3, 1))
        _value(clear.find("values"), "x", 0)
        _osc(clear.find("messages"), prompt_address(i, "clear"), None, condition="RISE", receive=False)
    for j, name in enumerate(MAIN_CONTROLS):
        c = REGISTRY[name]
        frame = (10 + j * 170, 480, 160, 60)
        label = _node(kids, "LABEL", f"{name}_label", (frame[0], 545, 160, 25), (1, 1, 1, 1))
        _value(label.find("values"), "text", name)
        if c.type == BOOL:
            node = _node(kids, "BUTTON", name, (frame[0], 480, 60, 60), (1, 0.6, 0.1, 1),
                         buttonType=("i", 1))  # toggle
            _value(node.find("values"), "x", 0)
            _osc(node.find("messages"), control_address(name), "x", "INTEGER")
        else:
            node = _node(kids, "FADER", name, frame, (0.3, 0.9, 0.5, 1), orientation=("i", 1))
            _value(node.find("values"), "x", 0)
            _osc(node.find("messages"), control_address(name), "x", "INTEGER" if c.type == INT else "FLOAT",
                 c.minimum, c.maximum)
    for k, name in enumerate(TRANSPORT + ["subscribe"]):
        node = _node(kids, "BUTTON", name, (10 + k * 126, 600, 110, 80), (0.9, 0.9, 0.2, 1))
        _value(node.find("values"), "x", 0)
        if name == "subscribe":
            _osc(node.find("messages"), f"{PREFIX}/subscribe", None, condition="RISE", receive=False,
                 constant_args=[("INTEGER", str(FEEDBACK_PORT))])
        else:
            _osc(node.find("messages"), control_address(name), None, condition="RISE", receive=False)
    for k, name in enumerate(TEXT_CONTROLS):  # shown, not typed: TouchOSC has no text entry
        label = _node(kids, "LABEL", name, (10 + k * 250, 690, 240, 60), (1, 1, 1, 1))
        _value(label.find("values"), "text", name)
        _osc(label.find("messages"), control_address(name), "text", "STRING", send=False, receive=True)
    status = _node(kids, "LABEL", "transport", (10 + 6 * 126, 600, 240, 80), (1, 1, 1, 1))
    _value(status.find("values"), "text", "transport")
    _osc(status.find("messages"), TRANSPORT_ADDRESS, "text", "STRING", send=False)
    return root


def tosc_bytes() -> bytes:
    xml = ET.tostring(build_tosc(), encoding="unicode")
    return zlib.compress(("<?xml version='1.0' encoding='UTF-8'?>\n" + xml).encode("utf-8"), 9)


# --- README ---------------------------------------------------------------------------------------
# What the README's table says beyond a control's own ``doc``: how the daemon applies it, not what
# it is. Keyed by control name (slot 0's for a prompt row); tests/test_registry_surfaces.py checks
# that every key is in the registry.
README_NOTES: dict[str, str] = {
    "prompts[0].weight": f"slewed over {WEIGHT_SLEW_SECONDS:g} s so that a jump does not click",
    "guidance": "a model may bring its own default (`symbolic`: 1.25)",
    "volume_db": "ramped in the JACK callback, within one period",
    "mute": "ramped",
    "stop": "also drops the buffer",
}
README_BEGIN, README_END = "<!-- controls:begin -->", "<!-- controls:end -->"


def _row_groups() -> list[list[str]]:
    """Registry names in table rows: each prompt field of all slots together, all triggers together."""
    groups: dict[Any, list[str]] = {}
    for name, control in REGISTRY.items():
        slot = prompt_slot(name)
        key = ("prompts", slot[1]) if slot else ("triggers",) if control.type == TRIGGER else name
        groups.setdefault(key, []).append(name)
    return list(groups.values())


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _range_text(name: str) -> str:
    c = REGISTRY[name]
    if c.type == STRING:
        return f"text, up to {int(c.maximum)} characters"
    if c.type == BOOL:
        return "on/off"
    unit = f" {c.unit}" if c.unit else ""
    return f"{'integer ' if c.type == INT else ''}{_num(c.minimum)}..{_num(c.maximum)}{unit}"


def _default_text(name: str) -> str:
    c = REGISTRY[name]
    if c.type == STRING:
        return "empty" if not c.default else f"`{c.default}`"
    if c.type == BOOL:
        return "on" if c.default else "off"
    return f"{c.default:g}"


def _notes(name: str, doc: str) -> str:
    return "; ".join(part for part in (doc, README_NOTES.get(name, "")) if part)


def controls_markdown() -> str:
    """The README's controls table (between ``<!-- controls:begin -->`` and ``<!-- controls:end -->``).

    One row per control, except that each prompt field is one row for all slots and the
    triggers share one row. Columns: control, range, default, notes (the control's ``doc``,
    plus :data:`README_NOTES`).
    """
    lines = ["| control | range | default | notes |", "|---|---|---|---|"]
    for names in _row_groups():
        first = names[0]
        slot = prompt_slot(first)
        if REGISTRY[first].type == TRIGGER:
            label = ", ".join(f"`{n}`" for n in names)
            rng, default = "triggers", ""
            notes = ". ".join(f"`{n}`: {_notes(n, REGISTRY[n].doc)}" for n in names)
        else:
            label = f"`prompts[0..{len(names) - 1}].{slot[1]}`" if slot else f"`{first}`"
            rng, default = _range_text(first), _default_text(first)
            doc = REGISTRY[first].doc.replace(f"slot {slot[0]}", "each slot") if slot else REGISTRY[first].doc
            notes = _notes(first, doc)
        cells = (label, _md(rng), default, _md(notes))
        lines.append("|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the committed files are out of date")
    ap.add_argument("--markdown", action="store_true", help="print the README's controls table and exit")
    args = ap.parse_args(argv)
    if args.markdown:
        sys.stdout.write(controls_markdown())
        return 0
    outputs = {MAXPAT: maxpat_text().encode("utf-8"), TOSC: tosc_bytes(), PD_PATCH: pd_text().encode("utf-8"),
               OSC_SESSION: session_text().encode("utf-8")}
    stale = []
    for path, data in outputs.items():
        if args.check:
            if not path.exists() or path.read_bytes() != data:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            print(f"wrote {path.relative_to(ROOT)}")
    for path in stale:
        print(f"{path.relative_to(ROOT)} is out of date: run python -m bridge.surfaces_gen", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
