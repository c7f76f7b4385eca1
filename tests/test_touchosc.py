"""The generated TouchOSC layout: decompresses, valid lexml v3, only daemon addresses."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
import zlib

from bridge.controls import NUM_PROMPTS
from bridge.osc import builtin_addresses, control_address

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOSC = os.path.join(ROOT, "mappings", "jamgen.tosc")
NODE_TYPES = {"GROUP", "FADER", "BUTTON", "LABEL", "TEXT", "XY", "RADIAL", "ENCODER", "RADIO", "PAGER", "GRID"}
PROPERTY_TYPES = {"b", "c", "f", "i", "r", "s"}
CONVERSIONS = {"BOOLEAN", "INTEGER", "FLOAT", "STRING"}
FEEDBACK_ONLY = {"/jamgen/transport"}


def root():
    with open(TOSC, "rb") as f:
        data = f.read()
    text = zlib.decompress(data).decode("utf-8")  # raw zlib, not gzip
    assert text.startswith("<?xml")
    return ET.fromstring(text)


def test_layout_structure():
    lexml = root()
    assert lexml.tag == "lexml" and lexml.get("version") == "3"
    nodes = list(lexml.iter("node"))
    assert nodes[0].get("type") == "GROUP"
    ids = [n.get("ID") for n in nodes]
    assert len(ids) == len(set(ids)) and all(ids)
    for node in nodes:
        assert node.get("type") in NODE_TYPES
        props = {p.findtext("key"): p for p in node.find("properties")}
        assert {"name", "frame"} <= set(props)
        for p in node.find("properties"):
            assert p.get("type") in PROPERTY_TYPES
        frame = props["frame"].find("value")
        assert [c.tag for c in frame] == ["x", "y", "w", "h"] and all(int(c.text) >= 0 for c in frame)
        assert int(frame.findtext("w")) > 0 and int(frame.findtext("h")) > 0
        value_keys = {v.findtext("key") for v in node.find("values")}
        for v in node.find("values"):
            assert [c.tag for c in v] == ["key", "locked", "lockedDefaultCurrent", "default", "defaultPull"]
        for osc in node.find("messages").findall("osc"):
            for tag in ("enabled", "send", "receive", "feedback", "connections", "triggers", "path", "arguments"):
                assert osc.find(tag) is not None, tag
            for trig in osc.find("triggers"):
                assert trig.findtext("var") in value_keys
                assert trig.findtext("condition") in ("ANY", "RISE", "FALL")
            for part in list(osc.find("path")) + list(osc.find("arguments")):
                assert part.findtext("type") in ("CONSTANT", "VALUE", "PROPERTY")
                assert part.findtext("conversion") in CONVERSIONS
                float(part.findtext("scaleMin")), float(part.findtext("scaleMax"))
                if part.findtext("type") == "VALUE":
                    assert part.findtext("value") in value_keys


def test_addresses_exist_in_the_daemon():
    lexml = root()
    sent, received = set(), set()
    for osc in lexml.iter("osc"):
        address = "".join(p.findtext("value") for p in osc.find("path"))
        if osc.findtext("send") == "1":
            sent.add(address)
        if osc.findtext("receive") == "1":
            received.add(address)
    known = set(builtin_addresses())
    assert sent <= known, sent - known
    assert received <= known | FEEDBACK_ONLY, received - known
    for i in range(NUM_PROMPTS):
        assert control_address(f"prompts[{i}].weight") in sent
        assert control_address(f"prompts[{i}].text") in received
    for name in ("guidance", "temperature", "top_k", "volume_db", "mute", "play", "pause", "stop", "reset"):
        assert control_address(name) in sent
    assert "/jamgen/subscribe" in sent


def test_fader_scaling_matches_the_registry():
    from bridge.controls import REGISTRY

    for osc in root().iter("osc"):
        address = osc.find("path")[0].findtext("value")
        for part in osc.find("arguments"):
            if part.findtext("type") != "VALUE" or part.findtext("conversion") == "STRING":
                continue
            name = next((n for n in REGISTRY if control_address(n) == address), None)
            assert name is not None
            c = REGISTRY[name]
            assert (float(part.findtext("scaleMin")), float(part.findtext("scaleMax"))) == (c.minimum, c.maximum)
