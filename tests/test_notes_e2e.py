"""The daemon with a note generator (symbolic, groove): continuous audio on out_L/out_R and well-formed MIDI on
jamgen:midi_out, recorded by separate JACK clients; stop leaves no note sounding."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile
from pythonosc.udp_client import SimpleUDPClient

from tests.conftest import ROOT, record

ENV = {"JAMGEN_SOUNDFONT": "/usr/share/sounds/sf2/TimGM6mb.sf2"}


def _record_midi(server, seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.jack_midi_recorder", "--server", server.name,
                             "--seconds", str(seconds), "jamgen:midi_out"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=server.env())


@pytest.mark.parametrize("model", ["symbolic-tiny", "groove-tiny"])
def test_note_daemon_plays_audio_and_paired_midi(model, daemon_factory, jackd, tmp_path):
    d = daemon_factory("--prompt", "bossa nova with nylon guitar and brushed drums:1", model=model, env=ENV)
    d.wait_for_blocks(3, timeout=120)
    wav = tmp_path / "out.wav"
    audio_rec = record(jackd, wav, 5.0)
    midi_rec = _record_midi(jackd, 5.0)
    osc = SimpleUDPClient("127.0.0.1", d.osc_port)
    time.sleep(1.5)
    osc.send_message("/jamgen/prompt/0", ["church organ and choir, slow", 1.0])  # new programs
    time.sleep(1.5)
    osc.send_message("/jamgen/stop", [])
    out, err = midi_rec.communicate(timeout=60)
    assert midi_rec.returncode == 0, err
    audio_rec.communicate(timeout=60)
    events = json.loads(out)["events"]
    sounding: dict[tuple[int, int], int] = {}
    ons = 0
    for _t, e in events:
        key = (e[0] & 0x0F, e[1])
        if e[0] & 0xF0 == 0x90 and e[2] > 0:
            assert not sounding.get(key), f"note-on of sounding note {key}"
            sounding[key] = 1
            ons += 1
        elif e[0] & 0xF0 == 0x80 or (e[0] & 0xF0 == 0x90 and e[2] == 0):
            sounding.pop(key, None)
    assert ons >= 3, events
    assert not sounding, f"stuck notes after stop: {sounding}"
    organ = [e for _t, e in events if e[0] & 0xF0 == 0xC0 and e[1] == 19]
    assert organ, "the prompt change sent no church-organ program change on midi_out"
    audio, rate = soundfile.read(str(wav), dtype="float32")
    assert rate == 48_000
    played = audio[: int(2.5 * rate)]  # before the stop
    assert np.sqrt((played ** 2).mean()) > 1e-3
