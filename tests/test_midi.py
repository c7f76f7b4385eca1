"""MIDI: decoding (14-bit, NRPN in both byte orders, notes, relative encoders) and the JACK input."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import mido
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.controls import ControlStore
from bridge.mappings import MappingEngine
from bridge.midi import MidiInput, matches, parse_event
from bridge.midi_decode import MidiDecoder, SourceEvent, relative_delta
from tests.conftest import ROOT


def cc(control, value, channel=1):
    return mido.Message("control_change", channel=channel - 1, control=control, value=value)


def decoded(decoder, messages, kind):
    out = []
    for m in messages:
        out += [e for e in decoder.feed(m) if e.kind == kind]
    return out


# --- decoding -----------------------------------------------------------------------------------
def test_cc14_msb_resets_lsb_and_lsb_refines():
    d = MidiDecoder()
    evs = decoded(d, [cc(1, 64), cc(33, 5), cc(33, 6), cc(1, 65)], "cc14")
    assert [e.value for e in evs] == [64 << 7, (64 << 7) | 5, (64 << 7) | 6, 65 << 7]
    assert decoded(MidiDecoder(), [cc(40, 3)], "cc14") == []  # LSB with no MSB yet: nothing
    assert decoded(d, [cc(1, 127, channel=2)], "cc14")[0] == SourceEvent("cc14", 2, 1, 127 << 7)


@pytest.mark.parametrize("order", ["msb_first", "lsb_first"])
@pytest.mark.parametrize("value", [0, 1, 127, 128, 8191, 8192, 16383])
def test_nrpn_both_data_orders_reassemble(order, value):
    d = MidiDecoder()
    param = 300
    select = [cc(99, param >> 7), cc(98, param & 127)]
    data = [cc(6, value >> 7), cc(38, value & 127)]
    if order == "lsb_first":
        data.reverse()
    evs = decoded(d, select + data, "nrpn")
    assert evs[-1] == SourceEvent("nrpn", 1, 300, value)
    if order == "lsb_first":
        assert len(evs) == 1  # never a half-updated value
    # data without re-selecting the parameter keeps the learnt order
    evs = decoded(d, data, "nrpn")
    assert evs[-1].value == value


def test_nrpn_param_select_lsb_before_msb_and_inc_dec_and_rpn_null():
    d = MidiDecoder()
    evs = decoded(d, [cc(98, 44), cc(99, 2), cc(6, 10), cc(38, 1), cc(96, 0), cc(97, 0), cc(97, 0)], "nrpn")
    assert [(e.number, e.value) for e in evs] == [(300, 1280), (300, 1281), (300, 1282), (300, 1281), (300, 1280)]
    # after an RPN select (or the null RPN) data entry is not ours
    assert decoded(d, [cc(101, 0), cc(100, 0), cc(6, 2)], "nrpn") == []
    assert decoded(d, [cc(101, 127), cc(100, 127), cc(6, 2), cc(38, 3)], "nrpn") == []


def test_notes_pitchbend_program():
    d = MidiDecoder()
    assert d.feed(mido.Message("note_on", channel=9, note=36, velocity=100)) == [SourceEvent("note", 10, 36, 100)]
    assert d.feed(mido.Message("note_on", channel=9, note=36, velocity=0)) == [SourceEvent("note", 10, 36, 0)]
    assert d.feed(mido.Message("note_off", channel=9, note=36, velocity=64)) == [SourceEvent("note", 10, 36, 0)]
    assert d.feed(mido.Message("pitchwheel", pitch=-8192))[0].value == 0
    assert d.feed(mido.Message("pitchwheel", pitch=8191))[0].normalised == 1.0
    assert d.feed(mido.Message("program_change", program=7)) == [SourceEvent("program", 1, 7, 127)]
    assert d.feed(mido.Message("aftertouch", value=3)) == []


@pytest.mark.parametrize("mode, value, delta", [
    ("twos_complement", 1, 1), ("twos_complement", 3, 3), ("twos_complement", 127, -1), ("twos_complement", 64, -64),
    ("binary_offset", 65, 1), ("binary_offset", 63, -1), ("binary_offset", 64, 0),
    ("sign_magnitude", 1, 1), ("sign_magnitude", 65, -1), ("sign_magnitude", 70, -6),
])
def test_relative_modes(mode, value, delta):
    assert relative_delta(mode, value) == delta


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=6), max_size=60))
def test_garbage_bytes_never_raise(chunks):
    store = ControlStore()
    eng = MappingEngine(store)
    dec = MidiDecoder()
    for data in chunks:
        msg = parse_event(data)
        if msg is not None:
            dec.feed(msg)
            eng.handle_midi(msg)


def test_parse_event_rejects_fragments():
    assert parse_event(bytes.fromhex("b0 15 7f")) == cc(21, 127)
    for bad in (b"", b"\x15", b"\xb0\x15", b"\xf0\x01\x02\xf7", b"\xb0\x80\x00", b"\x90\x40\x40\x40"):
        assert parse_event(bad) is None


def test_port_patterns():
    assert matches(["*nanoKONTROL2*"], ["a2j:nanoKONTROL2 [24] (capture): nanoKONTROL2 _ CTR"])
    assert matches(["nanokontrol2*"], ["nanoKONTROL2:out"])  # case-insensitive fallback
    assert not matches(["*MPK*"], ["system:midi_capture_1"])
    assert matches(["x"], ["nope", "x"])  # aliases count


# --- real JACK MIDI from another process --------------------------------------------------------
def send(server, lines, to="jamgen-midi:midi_in", client="jg-sender", timeout=30):
    proc = subprocess.run([sys.executable, "-m", "tests.midi_sender", "--server", server.name, "--to", to,
                           "--client", client], input="\n".join(lines) + "\n", capture_output=True,
                          text=True, cwd=ROOT, env=server.env(), timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def wait_until(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def test_jack_midi_input_end_to_end(jackd, tmp_path):
    got: list[mido.Message] = []
    lock = threading.Lock()

    def handler(msg):
        with lock:
            got.append(msg)

    midi = MidiInput(handler, client_name="jamgen", server=jackd.name, backend="jack")
    midi.start()
    try:
        assert midi.port_name == "jamgen-midi:midi_in"
        events = [f"b0 15 {v:02x}" for v in range(128)] + ["90 24 64", "90 24 00", "e0 7f 7f", "c0 05"]
        garbage = ["15", "b0", "b0 15", "f0 01 02 03 04 05 f7", "b0 80 00", "ff ff ff ff"] * 50
        out = send(jackd, garbage + events)
        assert f"sent {len(garbage) + len(events)}" in out
        assert wait_until(lambda: len(got) >= len(events))
        with lock:
            assert [m.value for m in got[:128]] == list(range(128))  # in order, nothing lost
            assert got[128:] == [mido.Message("note_on", note=36, velocity=100), mido.Message("note_on", note=36, velocity=0),
                                 mido.Message("pitchwheel", pitch=8191), mido.Message("program_change", program=5)]
        assert (midi.invalid, midi.dropped) == (4 * 50, 2 * 50)  # fragments invalid; SysEx/long dropped
    finally:
        midi.close()


def test_pattern_connect_and_replug(jackd):
    got = []
    midi = MidiInput(got.append, client_name="jg", server=jackd.name, patterns=["nano*:out"], backend="jack")
    midi.start()
    try:
        # "nanoKONTROL2" registers its port and sends without connecting itself: we must connect it
        for round_ in range(2):  # the second round is the device replugged
            proc = subprocess.Popen([sys.executable, "-m", "tests.midi_sender", "--server", jackd.name,
                                     "--client", "nanoKONTROL2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    text=True, cwd=ROOT, env=jackd.env())
            assert proc.stdout.readline().strip() == "ready"
            assert wait_until(lambda: _connected(jackd, "nanoKONTROL2:out", "jg-midi:midi_in"), timeout=5)
            out, _ = proc.communicate(f"b0 07 {round_ + 10:02x}\n", timeout=20)
            assert "sent 1" in out
            assert wait_until(lambda: len(got) == round_ + 1)
            assert got[-1] == cc(7, round_ + 10)
    finally:
        midi.close()


def _connected(server, src, dst):
    """Parse ``jack_lsp -c``: port names at column 0, their connections indented below."""
    current, pairs = None, set()
    for line in server.connections().splitlines():
        if line.startswith((" ", "\t")):
            pairs.add((current, line.strip()))
        else:
            current = line.strip()
    return (src, dst) in pairs
