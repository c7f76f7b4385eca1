"""Mapping files: validation errors with lines, transforms, the engine on a real ControlStore."""

from __future__ import annotations

import glob
import io
import math
import os
import time

import mido
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.controls import ControlStore
from bridge.mappings import MappingEngine, MappingError, check_files, load_file
from bridge.transforms import Pickup, Scale
from tests.mapping_files import errors_of, write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = """\
version: 1
osc: {listen: "127.0.0.1:9000", feedback: "127.0.0.1:9001"}
midi: {inputs: ["nanoKONTROL2*"]}
prompts:
  - {text: "bossa nova guitar", weight: 1.0}
  - {text: "deep house drums", weight: 0.0}
mappings:
  - {source: {osc: "/1/fader1"}, target: temperature, range: [0.2, 2.0], curve: linear}
  - {source: {midi: {cc: 21, channel: 1}}, target: "prompts[1].weight"}
  - {source: {midi: {cc14: 1, channel: 1}}, target: guidance, range: [0.0, 8.0]}
  - {source: {midi: {nrpn: 300, channel: 1}}, target: top_k, range: [1, 1024], curve: exp}
  - {source: {midi: {note: 36, channel: 10}}, target: "prompts[0].weight", mode: toggle}
  - {source: {osc: "/transport/play"}, target: play}
"""




def cc(control, value, channel=1):
    return mido.Message("control_change", channel=channel - 1, control=control, value=value)


# --- schema -------------------------------------------------------------------------------------
def test_issue_example_is_valid(tmp_path):
    mf = load_file(write(tmp_path, EXAMPLE))
    assert mf.osc_listen == ("127.0.0.1", 9000) and mf.osc_feedback == ("127.0.0.1", 9001)
    assert mf.midi_inputs == ("nanoKONTROL2*",)
    assert mf.prompts == (("bossa nova guitar", 1.0), ("deep house drums", 0.0))
    assert [m.target for m in mf.mappings] == [
        "temperature", "prompts[1].weight", "guidance", "top_k", "prompts[0].weight", "play"]
    assert [m.mode for m in mf.mappings][4] == "toggle"


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "mappings", "*.yaml"))))
def test_shipped_mappings_pass_check(path):
    out, err = io.StringIO(), io.StringIO()
    assert check_files([path], out, err) == 0, err.getvalue()
    with open(path, encoding="utf-8") as f:
        assert f.readline().startswith("# jamgen mapping:"), "every shipped file documents its controller"


def test_shipped_mappings_cover_the_required_controllers():
    names = {os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "mappings", "*.yaml"))}
    for needed in ("generic-8x8.yaml", "nanokontrol2.yaml", "mpk-mini.yaml", "launch-control-xl.yaml",
                   "beatstep.yaml", "touchosc-simple.yaml"):
        assert needed in names


@pytest.mark.parametrize("snippet, expected", [
    ("  - {source: {osc: /a}, target: temprature}", "F:9: unknown target 'temprature' (did you mean 'temperature'?)"),
    ("  - {source: {osc: /a}, target: guidance, range: [0, 80]}", "F:9: range [0.0, 80.0] is outside guidance's limits 0..10"),
    ("  - {source: {osc: /a}, target: guidance, range: [1, 1]}", "F:9: range must have two different ends, got [1, 1]"),
    ("  - {source: {osc: /a}, target: guidance, rnage: [0, 1]}", "F:9: unknown key 'rnage' in mapping (did you mean 'range'?)"),
    ("  - {source: {midi: {cc: 200}}, target: guidance}", "F:9: cc must be an integer in 0..127, got 200"),
    ("  - {source: {midi: {cc: 2, channel: 0}}, target: guidance}", "F:9: channel must be an integer in 1..16, got 0"),
    ("  - {source: {midi: {cc: 2, chanel: 3}}, target: guidance}", "F:9: unknown key 'chanel' in source.midi (did you mean 'channel'?)"),
    ("  - {source: {midi: {cc: 2}}, target: guidance, curve: expo}", "F:9: curve must be one of linear, exp, log, got 'expo' (did you mean 'exp'?)"),
    ("  - {source: {midi: {cc: 2}}, target: guidance, invert: 3}", "F:9: invert must be true or false, got 3"),
    ("  - {source: {midi: {cc: 2}}, target: play, mode: toggle}", "F:9: mode toggle needs a number or on/off target, not play (trigger)"),
    ("  - {source: {midi: {cc: 2}}, target: guidance, in: [0, 127]}", "F:9: 'in' applies to OSC sources only; MIDI inputs are normalised by their resolution"),
    ("  - {source: {midi: {note: 2}}, target: \"prompts[0].text\"}", "F:9: prompts[0].text is text; a MIDI source needs a constant, e.g. value: \"jazz trio\""),
    ("  - {source: {osc: /jamgen/guidance}, target: guidance}", "F:9: /jamgen/guidance is a built-in jamgen address; it needs no mapping"),
    ("  - {source: {midi: {cc: 1, cc14: 2}}, target: guidance}", "F:9: source.midi needs exactly one of cc, cc14, nrpn, note, notes, pitchbend, program, got cc, cc14"),
    ("  - {source: {midi: {cc: 1, relative: twos}}, target: guidance}", "F:9: relative must be one of twos_complement, binary_offset, sign_magnitude, got 'twos' (did you mean 'twos_complement'?)"),
    ("  - guidance", "F:9: each mapping must be {source: ..., target: ...}, not a string"),
])
def test_mapping_errors_are_one_line_with_file_and_line(tmp_path, snippet, expected):
    head = EXAMPLE.split("mappings:\n")[0] + "mappings:\n  - {source: {osc: /ok}, target: seed}\n"
    assert errors_of(tmp_path, head + snippet + "\n") == [expected]


def test_all_errors_are_collected_and_duplicates_named(tmp_path):
    errs = errors_of(tmp_path, """\
version: 2
bogus: 1
osc: {listen: "127.0.0.1:99999"}
mappings:
  - {source: {midi: {cc: 21}}, target: guidance}
  - {source: {midi: {cc: 21, channel: 1}}, target: temperature}
  - {source: {midi: {cc14: 1}}, target: temperature}
  - {source: {midi: {cc: 33}}, target: top_k}
""")
    assert errs == [
        "F:2: unknown key 'bogus' in the file (allowed: version, osc, midi, prompts, mappings, sync)",
        "F:1: version must be 1, got 2",
        "F:3: osc.listen must be \"host:port\" with a port in 1..65535, got '127.0.0.1:99999'",
        "F:6: duplicate source cc 21 ch1 (already mapped on line 5)",
        "F:8: cc 33 on channel 1 is part of cc14 1 (line 7); map one or the other",
    ]


def test_nrpn_data_ccs_conflict_with_cc_mappings(tmp_path):
    errs = errors_of(tmp_path, "version: 1\nmappings:\n"
                               "  - {source: {midi: {nrpn: 5}}, target: guidance}\n"
                               "  - {source: {midi: {cc: 6}}, target: seed}\n")
    assert errs == ["F:4: cc 6 on channel 1 carries NRPN data used by nrpn mappings on that channel; map one or the other"]


@pytest.mark.parametrize("data, expected", [
    (b"", "F:1: file is empty; it needs at least 'version: 1'"),
    (b"version: 1\nmappings: [\n", "F:3: YAML syntax error: expected the node content, but found '<stream end>'"),
    (b"version: 1\n\xff\xfe oops\n", "F:2: file is not UTF-8 text (byte 0xff at offset 11)"),
    (b"version: 1\nversion: 1\n", "F:2: duplicate key 'version' (first on line 1)"),
    (b"- 1\n- 2\n", "F:1: the file must be a mapping of keys, not a list"),
    (b"version: 1\n---\nversion: 1\n", None),
])
def test_unreadable_files_get_one_line(tmp_path, data, expected):
    p = tmp_path / "m.yaml"
    p.write_bytes(data)
    with pytest.raises(MappingError) as info:
        load_file(str(p))
    errs = [e.replace(str(p), "F") for e in info.value.errors]
    assert len(errs) == 1 and "\n" not in errs[0]
    if expected:
        assert errs == [expected]


def test_yaml_bomb_and_huge_files_are_refused(tmp_path):
    bomb = "version: 1\na: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i, prev in zip("bcdefghij", "abcdefghi"):
        bomb += f"{i}: &{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
    t0 = time.monotonic()
    errs = errors_of(tmp_path, bomb)
    assert time.monotonic() - t0 < 2.0
    assert "more than 50000 nodes" in errs[0] and len(errs) == 1
    big = tmp_path / "big.yaml"
    big.write_bytes(b"version: 1\n" + b"# padding\n" * 120_000)
    with pytest.raises(MappingError) as info:
        load_file(str(big))
    assert str(info.value) == f"{big}:0: file is larger than 1000 kB; refusing to parse it"
    deep = "version: 1\nx: " + "[" * 5000 + "]" * 5000 + "\n"
    assert "nested" in errors_of(tmp_path, deep)[0]


def test_mapping_error_summary_is_one_line(tmp_path):
    path = write(tmp_path, "version: 1\nmappings:\n  - {source: {osc: /a}, target: nope}\n  - 3\n")
    with pytest.raises(MappingError) as info:
        load_file(path)
    assert info.value.summary() == f"{path}:3: unknown target 'nope' (and 1 more error)"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.sampled_from(list("{}[]:,-&*!|>'\"#\n \tab0123456789.version:mappingsourcetargetccmidiosc/")),
               max_size=400))
def test_fuzzed_yaml_never_crashes(tmp_path, text):
    path = write(tmp_path, text)
    try:
        load_file(path)
    except MappingError as err:
        for line in err.errors:
            assert line.startswith(path + ":") and "\n" not in line


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.recursive(st.none() | st.booleans() | st.integers(-5, 20000) | st.floats(allow_nan=True)
                    | st.sampled_from(["cc", "midi", "osc", "/a", "temperature", "prompts[0].weight", "exp"]),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(["source", "target", "midi", "osc", "cc", "cc14", "nrpn",
                                                       "note", "channel", "range", "mode", "curve", "value",
                                                       "in", "arg", "relative", "step", "pickup"]),
                                      inner, max_size=4),
                    max_leaves=12))
def test_fuzzed_mapping_entries_never_crash(tmp_path, entry):
    import yaml
    text = "version: 1\nmappings:\n" + yaml.safe_dump([entry], default_flow_style=True)
    path = write(tmp_path, text)
    try:
        load_file(path)
    except MappingError as err:
        assert all(line.startswith(path + ":") for line in err.errors)


# --- transforms ---------------------------------------------------------------------------------
def test_scale_curves_and_inverse():
    lin = Scale(0.2, 2.0)
    assert lin.forward(0) == 0.2 and lin.forward(1) == 2.0 and math.isclose(lin.forward(0.5), 1.1)
    geo = Scale(1, 1024, "exp")
    assert [round(geo.forward(x / 10)) for x in range(11)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    for sc in (lin, geo, Scale(0, 10, "log"), Scale(-60, 12, "exp", invert=True)):
        for x in (0.0, 0.1, 0.37, 0.5, 0.9, 1.0):
            assert math.isclose(sc.inverse(sc.forward(x)), x, abs_tol=1e-9)
    assert Scale(0, 1, invert=True).forward(0.25) == 0.75
    assert lin.inverse(99) == 1.0 and lin.inverse(-5) == 0.0


def test_pickup_waits_until_the_knob_reaches_the_value():
    p = Pickup()
    assert not p.allow(0.1, 0.6)
    assert not p.allow(0.3, 0.6)
    assert p.allow(0.7, 0.6)  # crossed between two readings
    assert p.allow(0.2, 0.6)  # engaged: follows freely
    p.release()
    assert not p.allow(0.25, 0.9)
    assert p.allow(0.89, 0.9)  # within tolerance


# --- the engine on a real store -----------------------------------------------------------------
@pytest.fixture
def engine(tmp_path):
    store = ControlStore()
    eng = MappingEngine(store, write(tmp_path, EXAMPLE))
    for name, value in eng.initial_values().items():
        store.set(name, value)
    return eng


def test_osc_mapping_scales_and_consumes(engine):
    assert engine.handle_osc("/1/fader1", [0.5])
    assert math.isclose(engine.store.get("temperature"), 1.1)
    assert engine.handle_osc("/1/fader1", [7.0]) and engine.store.get("temperature") == 2.0  # clamped to 1
    assert not engine.handle_osc("/nope", [1.0])
    for bad in ([], ["x"], [float("nan")], [float("inf")], [None]):
        assert engine.handle_osc("/1/fader1", bad)
    assert engine.store.get("temperature") == 2.0
    engine.store.trigger("stop")
    assert engine.handle_osc("/transport/play", []) and engine.store.transport == "playing"


def test_cc_with_pickup(engine):
    store = engine.store
    assert store.get("prompts[1].weight") == 0.0
    engine.handle_midi(cc(21, 127))  # knob far from 0: ignored
    assert store.get("prompts[1].weight") == 0.0
    engine.handle_midi(cc(21, 1))  # crosses through 0 between readings? no: 127 -> 1 stays above
    assert store.get("prompts[1].weight") == pytest.approx(1 / 127)  # within tolerance of 0: picked up
    engine.handle_midi(cc(21, 64))
    assert store.get("prompts[1].weight") == pytest.approx(64 / 127)
    store.set("prompts[1].weight", 0.9, source="osc")  # moved elsewhere: knob must catch up
    engine.handle_midi(cc(21, 70))
    assert store.get("prompts[1].weight") == 0.9
    engine.handle_midi(cc(21, 120))  # crosses 0.9 * 127 = 114.3
    assert store.get("prompts[1].weight") == pytest.approx(120 / 127)


def test_cc14_and_nrpn_reach_their_targets(engine):
    store = engine.store
    store.set("guidance", 0.0)
    engine.handle_midi(cc(1, 0))  # pick up at 0
    engine.handle_midi(cc(1, 64))
    engine.handle_midi(cc(33, 5))
    assert store.get("guidance") == pytest.approx(8.0 * ((64 << 7) | 5) / 16383)
    store.set("top_k", 1)
    for ctl, val in ((99, 2), (98, 44), (6, 127), (38, 127)):  # param 300 = 2*128 + 44
        engine.handle_midi(cc(ctl, val))
    assert store.get("top_k") == 1  # the knob is far from the value: not picked up
    for v in (0, 1000, 5000, 9000, 16383):  # from 0 (picks up) to the top
        for ctl, val in ((99, 2), (98, 44), (38, v & 127), (6, v >> 7)):  # LSB-first hardware
            engine.handle_midi(cc(ctl, val))
        assert store.get("top_k") == round(1024 ** (v / 16383))


def test_note_toggle_momentary_select_and_velocity_zero(tmp_path):
    store = ControlStore()
    eng = MappingEngine(store, write(tmp_path, """\
version: 1
mappings:
  - {source: {midi: {note: 36, channel: 10}}, target: "prompts[0].weight", mode: toggle}
  - {source: {midi: {note: 37, channel: 10}}, target: "prompts[1].weight"}
  - {source: {midi: {note: 40}}, target: "prompts[2].weight", mode: select}
  - {source: {midi: {note: 41}}, target: "prompts[3].weight", mode: select}
  - {source: {midi: {note: 42}}, target: mute, mode: toggle}
  - {source: {midi: {program: 5}}, target: "prompts[4].text", value: "jazz trio"}
  - {source: {midi: {pitchbend: true}}, target: temperature}
  - {source: {midi: {cc: 10, relative: twos_complement}}, target: guidance, step: 0.1}
  - {source: {midi: {cc: 64}}, target: play}
"""))
    on = lambda n, v=100, ch=10: eng.handle_midi(mido.Message("note_on", channel=ch - 1, note=n, velocity=v))
    on(36)
    assert store.get("prompts[0].weight") == 1.0
    on(36, 0)  # velocity-0 note-on is a release, not a press
    assert store.get("prompts[0].weight") == 1.0
    on(36)
    assert store.get("prompts[0].weight") == 0.0
    on(37, 64)
    assert store.get("prompts[1].weight") == pytest.approx(64 / 127)
    eng.handle_midi(mido.Message("note_off", channel=9, note=37))
    assert store.get("prompts[1].weight") == 0.0
    on(40, 90, ch=1)
    assert (store.get("prompts[2].weight"), store.get("prompts[3].weight")) == (1.0, 0.0)
    on(41, 90, ch=1)
    assert (store.get("prompts[2].weight"), store.get("prompts[3].weight")) == (0.0, 1.0)
    on(42, 1, ch=1)
    assert store.get("mute") is True
    eng.handle_midi(mido.Message("program_change", program=5))
    assert store.get("prompts[4].text") == "jazz trio"
    eng.handle_midi(mido.Message("pitchwheel", pitch=8191))
    assert store.get("temperature") == 3.0
    store.set("guidance", 5.0)
    eng.handle_midi(cc(10, 1))
    eng.handle_midi(cc(10, 2))
    assert store.get("guidance") == pytest.approx(8.0)
    eng.handle_midi(cc(10, 127))
    assert store.get("guidance") == pytest.approx(7.0)
    store.trigger("stop")
    eng.handle_midi(cc(64, 127))
    assert store.transport == "playing"


def test_hot_reload_keeps_old_rules_on_a_broken_edit(tmp_path, caplog):
    path = write(tmp_path, EXAMPLE)
    store = ControlStore()
    eng = MappingEngine(store, path)
    eng.start()
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write("  - {source: {osc: /x}, target: guidnce}\n")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and "guidnce" not in caplog.text:
            time.sleep(0.05)
        assert "mapping reload refused" in caplog.text and "did you mean 'guidance'" in caplog.text
        assert eng.handle_osc("/1/fader1", [1.0]) and store.get("temperature") == 2.0  # old rules
        with open(path, "w", encoding="utf-8") as f:
            f.write(EXAMPLE.replace("/1/fader1", "/1/fader9").replace("weight: 0.0", "weight: 0.5"))
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not eng.handle_osc("/1/fader9", [0.0]):
            time.sleep(0.05)
        assert store.get("temperature") == 0.2
        assert not eng.handle_osc("/1/fader1", [1.0])
        assert store.get("prompts[1].weight") == 0.5  # prompts changed in the file: applied
    finally:
        eng.close()


def test_garbage_midi_objects_never_raise(engine):
    engine.handle_midi(object())
    engine.handle_midi(mido.Message("sysex", data=[1, 2, 3] * 100))
    engine.handle_midi(mido.Message("clock"))
    for ctl, val in ((6, 10), (38, 3), (98, 1), (38, 7), (101, 127), (100, 127), (6, 3), (96, 0), (97, 0)):
        engine.handle_midi(cc(ctl, val))  # NRPN fragments in any order
