"""Chords from the player's hands (issue 17): the harmony check on every way in, the ``notes`` mapping source,
and the held-chord logic (latch on and off, release, overlapping chords) through the real mapping engine.

Pure Python, no JACK: the end-to-end check (held chords steering the groove model's notes) is
tests/test_harmony_e2e.py.
"""

from __future__ import annotations

import subprocess
import sys

import mido
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bridge.checks  # noqa: F401  (what the daemon, render and the mapping checker import)
from bridge import controls
from bridge.controls import REGISTRY, ControlError, ControlStore
from bridge.mappings import MappingEngine, load_file
from bridge.midi_decode import HeldChord, chord_text
from bridge.osc_routes import OscRouter
from tests.mapping_files import errors_of, write
from tests.conftest import ROOT

HEAD = "version: 1\nmappings:\n"
CHORDS = HEAD + "  - {source: {midi: {notes: [36, 72], channel: 1}}, target: harmony%s}\n"




def on(note, channel=1, velocity=100):
    return mido.Message("note_on", channel=channel - 1, note=note, velocity=velocity)


def off(note, channel=1):
    return mido.Message("note_off", channel=channel - 1, note=note)


class Recorded:
    """A mapping engine on a fresh store, with every harmony write recorded."""

    def __init__(self, tmp_path, extra=""):
        self.store = ControlStore()
        self.engine = MappingEngine(self.store, write(tmp_path, CHORDS % extra))
        self.writes: list[str] = []
        self.store.subscribe(lambda name, value: self.writes.append(value) if name == "harmony" else None)

    def play(self, *messages) -> str:
        for m in messages:
            self.engine.handle_midi(m)
        return self.store.get("harmony")


# --- the check on every way in -------------------------------------------------------------------
def test_every_named_check_is_installed_and_the_registry_stays_plain_data():
    named = {c.check for c in REGISTRY.values() if c.check}
    assert named == {"harmony"}
    assert all(controls.installed_check(name) is not None for name in named)


@pytest.mark.parametrize("text, expected", [
    ("C E G", "C E G"), ("48 64 67", "48 64 67"), ("  Bb3,  D-F ", "Bb3, D-F"), ("", ""),
])
def test_good_chords_are_accepted_as_text(text, expected):
    assert REGISTRY["harmony"].coerce(text) == (expected, None)


@pytest.mark.parametrize("text, words", [
    ("C E H", "'H'"), ("jazz", "'jazz'"), ("60 64 200", "'200'"), ("C²", "'C²'"), ("C#x", "'C#x'"),
])
def test_bad_chords_are_refused_in_one_line_naming_the_word(text, words):
    with pytest.raises(ControlError) as info:
        REGISTRY["harmony"].coerce(text)
    message = str(info.value)
    assert message.startswith("harmony: ") and words in message and "\n" not in message


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_is_accepted_or_refused_cleanly(text):
    store = ControlStore()
    try:
        store.set("harmony", text)
    except ControlError as err:
        assert str(err).startswith("harmony") and "\n" not in str(err)
        assert store.get("harmony") == ""


def test_osc_refuses_a_bad_chord_and_keeps_the_last_good_one():
    store = ControlStore()
    router = OscRouter(store, lambda *a: None, lambda *a: None)
    assert router.dispatch("/jamgen/harmony", ("D F A",), ("127.0.0.1", 1))
    assert not router.dispatch("/jamgen/harmony", ("D F H",), ("127.0.0.1", 1))
    assert store.get("harmony") == "D F A"
    assert router.dispatch("/jamgen/harmony", ("",), ("127.0.0.1", 1)) and store.get("harmony") == ""


def test_a_bad_set_on_the_command_line_is_one_line_before_any_model_loads():
    proc = subprocess.run([sys.executable, "-m", "bridge.cli", "render", "--model", "no-such-model",
                           "--set", "harmony=C E H", "-o", "/dev/null"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert "harmony: 'H' is not a MIDI note number" in last, proc.stderr
    assert "no-such-model" not in proc.stderr  # refused before the model spec was even looked at


def test_a_bad_chord_constant_in_a_mapping_file_names_its_line(tmp_path):
    text = HEAD + "  - {source: {midi: {note: 36, channel: 1}}, target: harmony,\n     value: \"C E H\"}\n"
    assert errors_of(tmp_path, text) == [
        "F:4: value: harmony: 'H' is not a MIDI note number or a pitch name such as C, F#3, Bb"]
    good = load_file(write(tmp_path, text.replace("C E H", "C E G")))
    assert good.mappings[0].value == "C E G"


# --- the notes source's schema -------------------------------------------------------------------
def test_the_documented_chord_mapping_is_valid(tmp_path):
    (m,) = load_file(write(tmp_path, CHORDS % ", latch: true")).mappings
    assert (m.source.kind, m.source.channel, m.source.number, m.source.high, m.latch) == ("notes", 1, 36, 72, True)
    assert m.source.describe() == "notes 36-72 ch1"
    (m,) = load_file(write(tmp_path, CHORDS % "")).mappings
    assert m.latch is False


@pytest.mark.parametrize("snippet, expected", [
    ("{source: {midi: {notes: 36, channel: 1}}, target: harmony}",
     "F:3: notes must be a range [LOW, HIGH] of note numbers in 0..127 like [36, 72], got 36"),
    ("{source: {midi: {notes: [36, 128]}}, target: harmony}",
     "F:3: notes must be a range [LOW, HIGH] of note numbers in 0..127 like [36, 72], got [36, 128]"),
    ("{source: {midi: {notes: [72, 36]}}, target: harmony}",
     "F:3: notes range [72, 36] is upside down; write [LOW, HIGH] like [36, 72]"),
    ("{source: {midi: {notes: [36, 72], channel: 17}}, target: harmony}",
     "F:3: channel must be an integer in 1..16, got 17"),
    ("{source: {midi: {notes: [36, 72]}}, target: temperature}",
     "F:3: a notes source plays chords into harmony, not temperature; map single keys with {note: N}"),
    ("{source: {midi: {notes: [36, 72]}}, target: harmony, latch: yes please}",
     "F:3: latch must be true or false, got 'yes please'"),
    ("{source: {midi: {cc: 1}}, target: temperature, latch: true}",
     "F:3: latch applies to notes sources only ({midi: {notes: [LOW, HIGH]}})"),
    ("{source: {midi: {notes: [36, 72]}}, target: harmony, value: \"C E G\"}",
     "F:3: 'value' does not apply to a notes source (held keys are the chord)"),
    ("{source: {midi: {notes: [36, 72]}}, target: harmony, mode: toggle}",
     "F:3: 'mode' does not apply to a notes source (held keys are the chord)"),
    ("{source: {midi: {notes: [36, 72]}}, target: harmony, latched: true}",
     "F:3: unknown key 'latched' in mapping (did you mean 'latch'?)"),
    ("{source: {midi: {notess: [36, 72]}}, target: harmony}",
     "F:3: unknown key 'notess' in source.midi (did you mean 'notes'?)"),
])
def test_notes_source_errors_are_one_line_with_file_and_line(tmp_path, snippet, expected):
    assert expected in errors_of(tmp_path, HEAD + "  - " + snippet + "\n")


def test_a_key_may_play_one_chord_or_one_note_not_both(tmp_path):
    text = HEAD + ("  - {source: {midi: {notes: [36, 72], channel: 1}}, target: harmony}\n"
                   "  - {source: {midi: {notes: [60, 96], channel: 1}}, target: harmony}\n"
                   "  - {source: {midi: {note: 40, channel: 1}}, target: play}\n"
                   "  - {source: {midi: {notes: [60, 96], channel: 2}}, target: harmony}\n"
                   "  - {source: {midi: {note: 40, channel: 3}}, target: play}\n")
    assert sorted(errors_of(tmp_path, text)) == [
        "F:4: notes 60-96 on channel 1 overlap notes 36-72 (line 3); one key can play one chord",
        "F:5: note 40 on channel 1 is inside notes 36-72 (line 3); map one or the other",
    ]


# --- the held chord ------------------------------------------------------------------------------
def test_held_chord_without_latch_is_what_is_held_now():
    h = HeldChord(latch=False)
    assert [h.feed(60, 90), h.feed(64, 90), h.feed(67, 90)] == [(60,), (60, 64), (60, 64, 67)]
    assert h.feed(64, 90) is None  # pressed again (no release seen): same set, no update
    assert h.feed(64, 0) == (60, 67)
    assert [h.feed(60, 0), h.feed(67, 0)] == [(67,), ()]
    assert h.feed(67, 0) is None  # a release of a key not held changes nothing


def test_held_chord_with_latch_stays_until_a_new_chord_begins():
    h = HeldChord(latch=True)
    for n in (60, 64, 67):
        h.feed(n, 90)
    assert [h.feed(n, 0) for n in (60, 64, 67)] == [None, None, None]
    assert h.chord == (60, 64, 67)
    assert h.feed(62, 90) == (62,)  # pressed when none is held: a new chord
    assert h.feed(65, 90) == (62, 65) and h.feed(69, 90) == (62, 65, 69)
    assert h.feed(62, 0) is None and h.chord == (62, 65, 69)


def test_overlapping_chords_end_as_the_new_chord_with_and_without_latch():
    for latch in (False, True):
        h = HeldChord(latch=latch)
        for n in (60, 64, 67):
            h.feed(n, 90)
        h.feed(62, 90)  # legato: D pressed while C-E-G still sound
        assert h.chord == (60, 62, 64, 67)
        for n in (60, 64, 67):
            h.feed(n, 0)
        h.feed(65, 90)
        h.feed(69, 90)
        assert h.chord == (62, 65, 69), latch
        assert chord_text(h.chord) == "62 65 69" and chord_text(()) == ""


# --- through the mapping engine ------------------------------------------------------------------
def test_engine_without_latch_follows_the_hands_and_release_returns_to_the_prompts(tmp_path):
    r = Recorded(tmp_path)
    assert r.play(on(48), on(64), on(67)) == "48 64 67"
    assert r.play(on(30), on(80), on(62, channel=2)) == "48 64 67"  # outside the range / other channel
    assert r.play(off(64), off(48), mido.Message("note_on", note=67, velocity=0)) == ""
    assert r.writes == ["48", "48 64", "48 64 67", "48 67", "67", ""]
    assert r.engine.events_applied == len(r.writes)


def test_engine_with_latch_keeps_the_chord_and_writes_only_changes(tmp_path):
    r = Recorded(tmp_path, ", latch: true")
    assert r.play(on(60), on(64), on(67), off(60), off(64), off(67)) == "60 64 67"
    assert r.play(on(62), on(65), on(69), off(62), off(65), off(69)) == "62 65 69"
    assert r.writes == ["60", "60 64", "60 64 67", "62", "62 65", "62 65 69"]  # releases write nothing
    del r.writes[:]
    assert r.play(on(62), on(65), on(69), on(69)) == "62 65 69"  # the chord played again is built again,
    assert r.writes == ["62", "62 65", "62 65 69"]  # key by key; a key pressed twice writes nothing


def test_engine_keeps_other_note_mappings_and_learn_taps_working(tmp_path):
    text = CHORDS % "" + "  - {source: {midi: {note: 36, channel: 10}}, target: mute, mode: toggle}\n"
    store = ControlStore()
    engine = MappingEngine(store, write(tmp_path, text))
    for m in (on(36, channel=10), off(36, channel=10), on(60), on(36)):
        engine.handle_midi(m)
    assert store.get("mute") is True and store.get("harmony") == "36 60"
