"""The JACK MIDI output: generator notes leave jamgen:midi_out sample-aligned, never stuck."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from pythonosc.udp_client import SimpleUDPClient

from tests.conftest import ROOT
from tests.tone_generator import note_off_offset

MIDI_MODEL = "python:tests.tone_generator:midi_factory"


def _record(server, seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.jack_midi_recorder", "--server", server.name,
                             "--seconds", str(seconds), "jamgen:midi_out"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=server.env())


def _events(proc: subprocess.Popen) -> list:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return json.loads(out)["events"]


def test_notes_are_sample_aligned_and_paired(daemon_factory, jackd):
    d = daemon_factory(model=MIDI_MODEL)
    frames = d.wait_for_blocks(3)[0]["frames"]
    events = _events(_record(jackd, 3.0))
    ons = [(t, e) for t, e in events if e[0] == 0x90 and e[2] > 0]
    offs = [(t, e) for t, e in events if e[0] == 0x80]
    assert len(ons) >= 10
    # One note per block, exactly one block (frames * 1920 samples) apart: scheduling follows the
    # audio stream sample by sample, whatever the JACK period (1024) is.
    gaps = {b[0] - a[0] for a, b in zip(ons, ons[1:])}
    assert gaps == {frames * 1920}, gaps
    for t_on, e_on in ons[:-1]:
        match = [t for t, e in offs if e[1] == e_on[1] and t > t_on]
        assert match and match[0] - t_on == note_off_offset(frames)


def test_stop_and_pause_leave_no_stuck_notes(daemon_factory, jackd):
    d = daemon_factory(model=MIDI_MODEL)
    d.wait_for_blocks(3)
    rec = _record(jackd, 4.0)
    osc = SimpleUDPClient("127.0.0.1", d.osc_port)
    time.sleep(1.03)  # somewhere inside a note, most likely
    osc.send_message("/jamgen/pause", [])
    time.sleep(0.8)
    osc.send_message("/jamgen/play", [])
    time.sleep(0.77)
    osc.send_message("/jamgen/stop", [])
    events = _events(rec)
    sounding: set[int] = set()
    for _t, e in events:
        if e[0] == 0x90 and e[2] > 0:
            sounding.add(e[1])
        elif e[0] == 0x80 or (e[0] == 0x90 and e[2] == 0):
            sounding.discard(e[1])
    assert not sounding, f"stuck notes after stop: {sounding}"
    assert any(e[0] == 0x90 for _t, e in events)


def test_model_control_defaults_apply_unless_the_user_sets_them(daemon_factory):
    d = daemon_factory(model=MIDI_MODEL)
    assert d.wait_for_blocks(2)[-1]["controls"]["guidance"] == 1.5
    d.stop()
    d.block_log.unlink()  # the second daemon logs to the same path
    d2 = daemon_factory("--set", "guidance=4", model=MIDI_MODEL)
    assert d2.wait_for_blocks(2)[-1]["controls"]["guidance"] == 4.0
