"""Chords from the player's hands, end to end (issue 17): real jackd, the daemon with the shipped groove model and
a mapping file, a separate process holding chords on ``jamgen:midi_in`` over JACK MIDI, and the notes recorded
from ``jamgen:midi_out`` by another process.

Holding C-E-G, then D-F-A, at least 80 % of the melodic notes' pitch classes (every channel but the drums', 10)
fall in the held chord's scale in the seconds after each change, and clearly more than with no chord held (the
prompt's own harmony: a bossa nova whose seed-0 groove is around A major, so C major is a real change). As both
chords' scales are the white keys, the change between them is checked on chord tones: D, F and A make a larger
share of the notes while D-F-A is held than while C-E-G was.

"The chord's scale" (:func:`chord_scale`): the seven-note scale on the chord's root (its lowest note) that holds
the chord: major (Ionian) over a major third, Dorian over a minor third (D-F-A: D E F G A B C, the scale of the
ii chord in C; its one note outside the natural minor, the sixth, is a colour tone either way), Ionian when the
chord has no third. It is written here independently of the model's own rule (generator/groove/harmony.py, which
agrees on triads).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from tests.test_midi_e2e import Sender, state, until

ENV = {"JAMGEN_SOUNDFONT": "/usr/share/sounds/sf2/TimGM6mb.sf2"}
PROMPT = "bossa nova with nylon guitar and brushed drums"
MAPPING = f"""\
version: 1
midi: {{inputs: ["jg-sender*"]}}
prompts:
  - {{text: "{PROMPT}", weight: 1.0}}
mappings:
  - {{source: {{midi: {{notes: [36, 84], channel: 1}}}}, target: harmony}}
"""
C_MAJOR = (48, 60, 64, 67)  # C3 in the bass, C-E-G above
D_MINOR = (50, 62, 65, 69)
SECONDS = 8.0  # recorded per phase: about 16 beats of a bossa nova
IONIAN, DORIAN = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 9, 10)
DRUMS = 9  # MIDI channel 10


def chord_scale(notes) -> set[int]:
    """The pitch classes of the chord's scale (see the module docstring)."""
    root = min(notes) % 12
    pcs = {(n - root) % 12 for n in notes}
    mode = DORIAN if 3 in pcs and 4 not in pcs else IONIAN
    return {(root + step) % 12 for step in mode}


def melodic_pitch_classes(events) -> list[int]:
    return [e[1] % 12 for _t, e in events if e[0] & 0xF0 == 0x90 and e[2] > 0 and e[0] & 0x0F != DRUMS]


def record_midi(server, seconds: float) -> list:
    """Notes on jamgen:midi_out for ``seconds`` from when a separate recording client is connected."""
    rec = subprocess.Popen([sys.executable, "-m", "tests.jack_midi_recorder", "--server", server.name,
                            "--seconds", str(seconds), "jamgen:midi_out"],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=server.env())
    out, err = rec.communicate(timeout=seconds + 60)
    assert rec.returncode == 0, err
    return json.loads(out)["events"]


def note_on(n: int) -> str:
    return f"90 {n:02x} 64"


def note_off(n: int) -> str:
    return f"80 {n:02x} 00"


def test_held_chords_steer_the_melodic_notes(daemon_factory, jackd, tmp_path):
    path = tmp_path / "chords.yaml"
    path.write_text(MAPPING)
    # At the default repeat (0.5): the groove form repeats only bars begun under the chord in force (620b63a), so
    # an old chord never comes back after a change.
    d = daemon_factory("--mapping", str(path), model="groove", env=ENV)
    d.wait_for_blocks(3, timeout=180)
    sender = Sender(jackd)
    sender.wait_connected()
    port = d.osc_port
    try:
        baseline = melodic_pitch_classes(record_midi(jackd, SECONDS))
        rates, played = {}, {}
        for name, chord, before in (("C-E-G", C_MAJOR, ()), ("D-F-A", D_MINOR, C_MAJOR)):
            sender.send(*[note_off(n) for n in before], *[note_on(n) for n in chord])  # legato change
            text = " ".join(map(str, chord))
            got = until(lambda: state(port).get("/jamgen/harmony"), lambda v: v == text)
            assert got == text, f"holding {name} set harmony to {got!r}"
            pcs = played[name] = melodic_pitch_classes(record_midi(jackd, SECONDS))
            scale = chord_scale(chord)
            rates[name] = (sum(p in scale for p in pcs) / max(1, len(pcs)), len(pcs),
                           sum(p in scale for p in baseline) / max(1, len(baseline)))
        sender.send(*[note_off(n) for n in D_MINOR])
        assert until(lambda: state(port).get("/jamgen/harmony"), lambda v: v == "") == "", \
            "releasing the chord did not return to the prompt's harmony"
    finally:
        sender.close()
    d_tones = {n % 12 for n in D_MINOR}
    d_share = {name: sum(p in d_tones for p in pcs) / max(1, len(pcs)) for name, pcs in played.items()}
    report = ", ".join(f"{name}: {rate:.0%} of {n} notes in its scale (no chord held: {base:.0%})"
                       for name, (rate, n, base) in rates.items())
    report += (f"; D/F/A share {d_share['C-E-G']:.0%} under C-E-G -> {d_share['D-F-A']:.0%} under D-F-A; "
               f"baseline {len(baseline)} notes")
    print(f"harmony follow: {report}")
    assert len(baseline) >= 20, "the prompt alone played too few melodic notes to compare"
    for name, (rate, n, base) in rates.items():
        assert n >= 20, f"{name}: only {n} melodic notes while held"
        assert rate >= 0.8, f"{name}: {report}"
        assert rate >= base + 0.15, f"{name}: not clearly more than the prompt alone: {report}"
    assert d_share["D-F-A"] >= d_share["C-E-G"] + 0.15, f"the change to D-F-A was not followed: {report}"
    assert d.proc.poll() is None
