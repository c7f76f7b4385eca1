"""The musicality measures can fail: each is shown a case that must score high and one that must score low.

Why: ``bench/musicality.py`` decides whether a new model is more musical than the old one on these
numbers; a measure that scores random onsets like a metronome (or a swing like straight 8ths) would
decide nothing. Pure numpy on synthetic notes: milliseconds, no model, no data.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import musicality_metrics as mm  # noqa: E402

SECONDS = 20.0
HAT, KICK, SNARE = 42, 36, 38


def drum_groove(bpm: float = 120.0, swing: bool = False) -> list[tuple]:
    """Hi-hat on every 16th (or swung 8th), kick on beats 1 and 3, snare on 2 and 4, for 20 s."""
    beat = 60.0 / bpm
    notes = []
    for b in range(int(SECONDS / beat)):
        t = b * beat
        offsets = (0.0, beat * 2 / 3) if swing else tuple(k * beat / 4 for k in range(4))
        notes += [(t + o, 0.1, HAT, 80, 15, 1) for o in offsets]
        notes.append((t, 0.1, KICK if b % 2 == 0 else SNARE, 110, 15, 1))
    return [n for n in notes if n[0] < SECONDS]


def at_random_times(notes, seed: int) -> np.ndarray:
    return mm.random_times(notes, SECONDS, np.random.default_rng(seed))


def test_metronomic_groove_has_a_clear_pulse_on_the_16th_grid_at_its_tempo():
    m = mm.measure(drum_groove(120.0), SECONDS)
    assert m["pulse_clarity"] > 0.8 and m["drum_pulse_clarity"] > 0.8
    assert m["grid_kappa"] > 0.9 and m["grid_triplet"] == 0.0
    assert abs(m["tempo_bpm"] / 120.0 - 1) < 0.03
    assert m["drum_pattern_consistency"] > 0.95 and m["bar_recurrence"] == 1.0


@pytest.mark.parametrize("bpm", [72.0, 97.0, 150.0, 185.0])
def test_tempo_and_grid_hold_at_other_tempi(bpm):
    """Tempi whose beat is not a whole number of 10 ms frames, and a fast one the prior halves."""
    m = mm.measure(drum_groove(bpm), SECONDS)
    assert m["grid_kappa"] > 0.9
    assert min(abs(m["tempo_bpm"] / bpm - r) for r in (0.5, 1.0, 2.0)) < 0.03


@pytest.mark.parametrize("seed", range(5))
def test_the_same_notes_at_random_times_have_no_pulse_and_no_grid(seed):
    m = mm.measure(at_random_times(drum_groove(120.0), seed), SECONDS)
    assert m["pulse_clarity"] < 0.3 and m["drum_pulse_clarity"] < 0.3
    assert m["grid_kappa"] < 0.3
    assert m["bar_recurrence"] < 0.2


def test_swung_eighths_fit_the_triplet_grid_better_than_the_straight_one():
    m = mm.measure(drum_groove(120.0, swing=True), SECONDS)
    assert m["grid_kappa_triplet"] > 0.9 > m["grid_kappa_16th"] + 0.3
    assert m["grid_triplet"] == 1.0 and m["grid_kappa"] == m["grid_kappa_triplet"]
    straight = mm.measure(drum_groove(120.0), SECONDS)
    assert straight["grid_kappa_16th"] > straight["grid_kappa_triplet"] + 0.3


def bars_of(patterns: list[list[tuple[float, int]]], bpm: float = 120.0) -> list[tuple]:
    """Drums keep the beat; each bar of 4 beats gets its own melodic (beat offset, pitch) notes."""
    beat = 60.0 / bpm
    notes = [(b * beat, 0.1, KICK, 100, 15, 1) for b in range(4 * len(patterns))]
    for i, bar in enumerate(patterns):
        notes += [((4 * i + pos) * beat, 0.2, pitch, 90, 0, 0) for pos, pitch in bar]
    return notes


def test_identical_bars_recur_and_different_bars_do_not():
    riff = [(0.0, 60), (0.5, 64), (1.0, 67), (1.75, 72), (2.5, 67), (3.0, 64)]
    same = bars_of([riff] * 4)
    assert mm.measure(same, 8.0)["bar_recurrence"] == 1.0
    different = [[(pos, pitch + 2 * i) for pos, pitch in riff[i:] + riff[:i]] for i in range(4)]
    different = bars_of([[(p, n + 12 * i) for p, n in bar] for i, bar in enumerate(different)])
    assert mm.measure(different, 8.0)["bar_recurrence"] == 0.0


def test_a_held_note_counts_as_long_note_time():
    notes = [(0.0, 6.0, 48, 80, 0, 0)] + [(0.5 * k, 0.4, 60 + k % 5, 80, 0, 0) for k in range(12)]
    m = mm.measure(notes, 8.0)
    assert m["longest_note_s"] == pytest.approx(6.0)
    assert m["long_note_share"] == pytest.approx(6.0 / (6.0 + 12 * 0.4))
    assert m["polyphony"] == 2.0
    short = mm.measure(notes[1:], 8.0)
    assert short["long_note_share"] == 0.0 and short["polyphony"] == 1.0


def test_scale_and_key_of_c_major_and_of_chromatic_notes():
    scale = [(0.25 * k, 0.25, p, 80, 0, 0) for k, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72] * 3)]
    m = mm.measure(scale, 8.0)
    assert m["scale_consistency"] == 1.0 and m["key"] == (0, "major")
    chromatic = [(0.25 * k, 0.25, 60 + k % 12, 80, 0, 0) for k in range(24)]
    m = mm.measure(chromatic, 8.0)
    assert m["scale_consistency"] == pytest.approx(7 / 12) and m["key"] is None


def test_families_silence_and_family_match():
    notes = [(0.0, 1.0, 60, 80, 0, 0), (0.0, 1.0, 40, 80, 4, 0), (2.0, 0.5, KICK, 100, 15, 1)]
    m = mm.measure(notes, 4.0)
    assert m["families"] == ["bass", "drums", "piano"]
    assert m["silence_share"] == pytest.approx(1 - (1.0 + 0.1) / 4.0, abs=0.01)  # a drum hit sounds 100 ms
    assert mm.family_match(m["families"], {"piano", "guitar"}) == (pytest.approx(1 / 3), 0.5)


def test_too_few_notes_say_nothing_rather_than_something():
    m = mm.measure([(0.0, 0.5, 60, 80, 0, 0), (1.0, 0.5, 62, 80, 0, 0)], 4.0)
    assert np.isnan(m["pulse_clarity"]) and np.isnan(m["grid_kappa"]) and np.isnan(m["bar_recurrence"])
    assert mm.measure([], 4.0)["silence_share"] == 1.0


def test_key_finder_agrees_with_the_pitch_judge():
    """The bench and the pitch head's judge use one Krumhansl-Schmuckler key finder (generator.core.gm)."""
    from generator.core import gm
    from generator.train.heads.pitch import key_of

    rng = np.random.default_rng(0)
    for _ in range(20):
        pc = rng.integers(0, 20, 12).astype(float)
        assert gm.key_of(pc) == key_of(pc)
    a_minor = np.zeros(12)
    a_minor[[9, 11, 0, 2, 4, 5, 8]] = [8, 2, 4, 3, 5, 3, 2]
    assert gm.key_of(a_minor) == (9, "minor") and gm.key_of(np.ones(12)) is None