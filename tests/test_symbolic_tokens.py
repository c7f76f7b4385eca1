"""Performance-event tokens: MIDI -> tokens -> MIDI round trips on real mma and music21 MIDI."""

from __future__ import annotations

import shutil
import subprocess

import mido
import numpy as np
import pytest

from generator.symbolic import tokens as tok


def _key(notes):
    return sorted((round(n.start, 2), round(n.end, 2) if n.part != tok.DRUM_PART else -1.0, n.pitch, n.part,
                   tok.velocity_bin(n.velocity)) for n in notes)


@pytest.fixture(scope="module")
def mma_midi(tmp_path_factory):
    if shutil.which("mma") is None:
        pytest.fail("mma is not installed (apt-get install mma)")
    d = tmp_path_factory.mktemp("mma")
    src = d / "song.mma"
    src.write_text("Tempo 126\nGroove Swing\n1 C7\n2 F7\n3 C7\n4 G7\n5 Am7\n6 D7\n7 Dm7\n8 G7\n")
    subprocess.run(["mma", str(src)], cwd=d, check=True, capture_output=True)
    return d / "song.mid"


@pytest.fixture(scope="module")
def music21_midi(tmp_path_factory):
    from music21 import corpus

    path = tmp_path_factory.mktemp("m21") / "chorale.mid"
    corpus.parse("bach/bwv66.6").write("midi", fp=str(path))
    return path


@pytest.mark.parametrize("which", ["mma_midi", "music21_midi"])
def test_round_trip(which, request, tmp_path):
    path = request.getfixturevalue(which)
    notes = tok.read_notes(path)
    assert len(notes) > 50
    ids = tok.midi_to_tokens(path)
    assert ids[0] == tok.BOS and ids.min() >= 0 and ids.max() < tok.VOCAB
    out = tmp_path / "back.mid"
    tok.tokens_to_midi(ids, out)
    back = tok.read_notes(out)
    assert _key(back) == _key(tok.normalise(notes))
    # and the second trip is exact
    assert np.array_equal(tok.midi_to_tokens(out), ids)


def test_mma_has_drums_and_several_parts(mma_midi):
    parts = {n.part for n in tok.read_notes(mma_midi)}
    assert tok.DRUM_PART in parts and len(parts) >= 3


def test_long_gaps_and_zero_length_notes():
    notes = [tok.Note(0.0, 0.0, 60, 100, 0), tok.Note(2.505, 3.0, 64, 20, 5), tok.Note(2.505, 2.6, 38, 90, tok.DRUM_PART)]
    ids = tok.encode_notes(notes)
    kinds = [tok.kind(t) for t in ids]
    assert kinds.count("shift") >= 3  # 2.5 s needs more than one shift of at most 1 s
    back = tok.tokens_to_notes(ids)
    assert [(n.pitch, n.part) for n in back] == [(60, 0), (64, 5), (38, tok.DRUM_PART)]
    assert back[0].end == pytest.approx(0.01)  # held for one step, never zero
    assert back[2].end - back[2].start == pytest.approx(tok.DRUM_HIT_SECONDS)


def test_program_families_and_channels():
    assert tok.program_part(0) == 0 and tok.program_part(33) == 4 and tok.program_part(127) == 12
    assert tok.program_part(112) == 14
    channels = [tok.part_channel(p) for p in range(tok.N_PARTS)]
    assert sorted(channels) == list(range(16)) and channels[tok.DRUM_PART] == tok.DRUM_CHANNEL
    assert all(tok.channel_part(tok.part_channel(p)) == p for p in range(tok.N_PARTS))


def test_write_midi_from_sample_stamped_events(tmp_path):
    events = [(0, bytes([0xC0, 24])), (0, bytes([0x90, 60, 100])), (24_000, bytes([0x80, 60, 0])),
              (48_000, bytes([0x99, 36, 90])), (52_800, bytes([0x89, 36, 0]))]
    tok.write_midi(events, tmp_path / "out.mid")
    mf = mido.MidiFile(str(tmp_path / "out.mid"))
    t, seen = 0.0, []
    for msg in mf:
        t += msg.time
        if not msg.is_meta:
            seen.append((round(t, 3), msg.type))
    assert seen == [(0.0, "program_change"), (0.0, "note_on"), (0.5, "note_off"), (1.0, "note_on"), (1.1, "note_off")]
