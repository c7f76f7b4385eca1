"""Learn: source detection from event bursts and text-level insertion that keeps the file."""

from __future__ import annotations

import pytest

from bridge.learn import LearnError, insert_mapping, learn_into_file, mapping_line, source_from_events
from bridge.mappings import load_file
from bridge.midi_decode import MidiDecoder

import mido

CC24 = {"midi": {"cc": 24, "channel": 1}}
RULE = mapping_line(CC24, "seed")


def events(*msgs):
    d = MidiDecoder()
    out = []
    for m in msgs:
        out += d.feed(m)
    return out


def cc(n, v, ch=1):
    return mido.Message("control_change", channel=ch - 1, control=n, value=v)


def test_source_detection():
    assert source_from_events(events(cc(21, 5), cc(21, 6))) == {"midi": {"cc": 21, "channel": 1}}
    assert source_from_events(events(cc(3, 5, 2), cc(35, 1, 2))) == {"midi": {"cc14": 3, "channel": 2}}
    assert source_from_events(events(cc(99, 2), cc(98, 44), cc(6, 1), cc(38, 2))) == {"midi": {"nrpn": 300, "channel": 1}}
    assert source_from_events(events(mido.Message("note_on", channel=9, note=36, velocity=90))) == \
        {"midi": {"note": 36, "channel": 10}}
    assert source_from_events(events(mido.Message("pitchwheel", pitch=100))) == {"midi": {"pitchbend": True, "channel": 1}}
    assert source_from_events(events(mido.Message("program_change", program=3))) == {"midi": {"program": 3, "channel": 1}}
    assert source_from_events([]) is None
    assert mapping_line({"midi": {"note": 36, "channel": 10}}, "prompts[0].weight") == \
        '{source: {midi: {note: 36, channel: 10}}, target: "prompts[0].weight", mode: toggle}'


@pytest.mark.parametrize("before, after", [
    ("version: 1\nmappings:\n  - {source: {osc: /a}, target: seed}  # keep\n# tail\n",
     "version: 1\nmappings:\n  - {source: {osc: /a}, target: seed}  # keep\n  - " + RULE + "\n# tail\n"),
    ("version: 1\nmappings:\n- {source: {osc: /a}, target: seed}\nprompts: []\n",
     "version: 1\nmappings:\n- {source: {osc: /a}, target: seed}\n- " + RULE + "\nprompts: []\n"),
    ("version: 1\nmappings:   # none yet\n\n# c\nprompts: []\n",
     "version: 1\nmappings:   # none yet\n  - " + RULE + "\n\n# c\nprompts: []\n"),
    ("version: 1\nmappings: []\n", "version: 1\nmappings:\n  - " + RULE + "\n"),
    ("version: 1\nmappings: [{source: {osc: /a}, target: seed}]\n",
     "version: 1\nmappings: [{source: {osc: /a}, target: seed}, " + RULE + "]\n"),
    ("version: 1  # top", "version: 1  # top\nmappings:\n  - " + RULE + "\n"),
    ("", "version: 1\nmappings:\n  - " + RULE + "\n"),
    # same source already mapped: replaced in place, even as a block mapping
    ("version: 1\nmappings:\n  - source:\n      midi: {cc: 24}\n    target: guidance   # old\n  # more\n  - {source: {osc: /b}, target: play}\n",
     "version: 1\nmappings:\n  - " + RULE + "\n  # more\n  - {source: {osc: /b}, target: play}\n"),
])
def test_insert_keeps_everything_else(before, after):
    assert insert_mapping(before, RULE, CC24) == after


def test_learn_into_file_validates_and_creates(tmp_path):
    path = tmp_path / "new.yaml"
    assert learn_into_file(str(path), "seed", CC24) == 4
    assert len(load_file(str(path)).mappings) == 1
    path.write_text("version: 1\nmappings:\n  - {source: {midi: {cc14: 24}}, target: guidance}\n")
    with pytest.raises(LearnError) as info:
        learn_into_file(str(path), "seed", {"midi": {"cc": 56, "channel": 1}})  # LSB of cc14 24
    assert "part of cc14 24" in str(info.value)
    assert path.read_text() == "version: 1\nmappings:\n  - {source: {midi: {cc14: 24}}, target: guidance}\n"
    with pytest.raises(LearnError):
        learn_into_file(str(path), "sed", CC24)
