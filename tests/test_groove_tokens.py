"""The groove family's beat-grid vocabulary: round trips keep onsets, durations, pitches and swing;
the grammar accepts exactly what the encoder writes and never lets a stream go off the grid."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from generator.groove import tokens as G


def _notes():
    """Two bars whose velocities sit at bin centres (velocity is kept to 8 bins)."""
    notes = []
    for beat in range(8):  # two bars of 4/4
        base = beat * G.TPB
        notes.append(G.Note(base, G.DRUM_TICKS, 42, 88, G.DRUM_PART))  # hi-hat on the beat
        notes.append(G.Note(base + 8, G.DRUM_TICKS, 42, 72, G.DRUM_PART))  # swung 8th (2:1)
        if beat % 2:
            notes.append(G.Note(base, G.DRUM_TICKS, 38, 104, G.DRUM_PART))  # backbeat
        notes.append(G.Note(base, G.TPB, 36 + beat % 3, 88, 4))  # walking bass, one per beat
    for t in range(3):  # 8th-note triplets on beat 3 of bar 1, and a held chord
        notes.append(G.Note(2 * G.TPB + 4 * t, 4, 72 + t, 72, 0))
    notes += [G.Note(48, 48, p, 56, 5) for p in (60, 64, 67)]
    return sorted(notes, key=lambda n: (n.start, n.part, n.pitch))


def test_tokens_round_trip_keeps_grid_durations_pitches_and_swing():
    notes = _notes()
    bars = G.bars_until([], notes[-1].start + 1)
    tokens = G.encode(notes, bars)
    back, back_bars = G.decode(tokens)
    assert back == notes
    assert back_bars == bars
    hats = sorted({n.start % G.TPB for n in back if n.pitch == 42})
    assert hats == [0, 8]  # the swing feel survives as positions, not as time shifts


def test_midi_round_trip_and_time_signatures(tmp_path):
    notes = _notes()
    bars = G.bars_until([(0, 0), (48, G.time_signature_index(3, 4))], notes[-1].end)
    mf = G.notes_to_midi(notes, bpm=97.0, bars=bars)
    mf.save(str(tmp_path / "x.mid"))
    back, back_bars = G.midi_notes(tmp_path / "x.mid")
    assert back == notes
    assert [b.ts for b in back_bars[:3]] == [0, G.time_signature_index(3, 4)] * 1 + [G.time_signature_index(3, 4)]
    assert [b.start for b in back_bars[:3]] == [0, 48, 84]


def test_unrepresentable_metre_is_refused():
    import mido

    mf = mido.MidiFile(ticks_per_beat=96)
    mf.tracks.append(mido.MidiTrack([mido.MetaMessage("time_signature", numerator=11, denominator=16)]))
    with pytest.raises(ValueError, match="11/16"):
        G.midi_notes(mf)


def test_encoder_output_is_always_grammatical():
    rng = np.random.default_rng(0)
    notes = [G.Note(int(rng.integers(0, 400)), G.DURATIONS[int(rng.integers(0, len(G.DURATIONS)))],
                    int(rng.integers(20, 100)), int(rng.integers(1, 128)), int(rng.integers(0, G.N_PARTS)))
             for _ in range(300)]
    notes = [n if n.part != G.DRUM_PART else G.Note(n.start, G.DRUM_TICKS, n.pitch, n.velocity, n.part) for n in notes]
    tokens = G.encode(notes, G.bars_until([], 401))
    state = G.GrammarState()
    for t in tokens[1:]:
        assert G.allowed(state)[t], (t, state)
        state = G.advance(state, t)
    assert G.Decoder().invalid == 0


def test_grammar_keeps_random_streams_on_the_grid():
    """Sampling uniformly among the allowed tokens never yields an invalid token, a position past the bar,
    a note struck twice at one instant, or a drum note with a duration."""
    rng = np.random.default_rng(1)
    dec = G.Decoder()
    seen = set()
    for _ in range(5000):
        mask = G.allowed(dec.state)
        token = int(rng.choice(np.flatnonzero(mask)))
        note = dec.feed(token)
        assert dec.state.pos < max(dec.state.bar_len, 1)
        if note is not None:
            key = (note.start, note.part, note.pitch)
            assert key not in seen
            seen.add(key)
            assert note.part != G.DRUM_PART or note.duration == G.DRUM_TICKS
    assert dec.invalid == 0 and dec.bars > 3


def test_decoder_ignores_what_the_grammar_forbids():
    dec = G.Decoder()
    assert dec.feed(G.PITCH0 + 60) is None and dec.invalid == 1  # a pitch before any bar
    for t in (G.BAR, G.TS0, G.POS0 + 6, G.PART0 + 0, G.PITCH0 + 60, G.VEL0 + 5):
        assert dec.feed(t) is None
    note = dec.feed(G.DUR0 + G.DURATIONS.index(12))
    assert note == G.Note(6, 12, 60, G.bin_velocity(5), 0)
    assert dec.feed(G.POS0 + 3) is None and dec.invalid == 2  # positions only move forward


@pytest.mark.skipif(shutil.which("mma") is None, reason="needs mma (scripts/setup.sh installs it)")
def test_real_mma_swing_groove_lands_on_the_grid():
    """An mma swing groove: every onset lies within a tenth of a grid tick of the grid (the grid fits
    the music rather than bending it), and the swung 8ths sit on the triplet position."""
    import mido

    from generator.data import source_mma

    mf = source_mma.mma_song("stdlib/swing", "Swing", 120, ["C6", "A7", "Dm7", "G7"] * 2)
    scale = G.TPB / mf.ticks_per_beat
    now, errors = 0, []
    for msg in mido.merge_tracks(mf.tracks):
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            errors.append(abs(now * scale - round(now * scale)))
    assert np.median(errors) < 0.1
    notes, bars = G.midi_notes(mf)
    back, _ = G.decode(G.encode(notes, bars))
    assert len(back) >= 0.95 * len(notes)
    offbeats = [n.start % G.TPB for n in back if n.start % G.TPB]
    assert max(set(offbeats), key=offbeats.count) == 8  # long-short 2:1 swing
