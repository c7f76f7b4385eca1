"""A held chord steers the groove's melodic parts (generator.groove.harmony): the harmony control biases each
part's PITCH tokens, the bass toward the chord's root, never the drums; a new chord is followed at once."""

from __future__ import annotations

import numpy as np
import pytest

import generator
from generator.core import gm
from generator.core.checkpoint import SHIPPED
from generator.core.contract import FRAME_SAMPLES, GenerationControls
from generator.groove import checkpoint as gckpt
from generator.groove.harmony import BASS_PART, chord_scale, part_pitch_bias

MODEL = "groove" if gckpt.is_checkpoint(SHIPPED / "groove") else "groove-tiny"
C_MAJOR = {0, 2, 4, 5, 7, 9, 11}


def test_chord_scales():
    assert chord_scale((60, 64, 67)) == (0, C_MAJOR)
    assert chord_scale((62, 65, 69)) == (2, C_MAJOR)  # D dorian: the white keys
    assert chord_scale((55, 59, 62, 65)) == (7, C_MAJOR)  # G7: mixolydian
    root, scale = chord_scale((57, 60, 64, 65))  # A minor with F held: aeolian
    assert root == 9 and scale == C_MAJOR
    bias = part_pitch_bias((48, 64, 67))
    assert not bias[gm.DRUM_PART].any()
    assert bias[BASS_PART, 36] > bias[BASS_PART, 43] > bias[BASS_PART, 40] > bias[BASS_PART, 37]
    assert bias[0, 64] > bias[0, 62] > bias[0, 61]


@pytest.fixture(scope="module")
def gen():
    g = generator.load(MODEL)
    g.warmup()
    return g


def _melodic_pitch_classes(gen, harmony_at, blocks, seed=1):
    state = gen.init_state(seed)
    gen.drain_midi()
    out = []
    for b in range(blocks):
        controls = GenerationControls(prompts=(("jazz trio with piano, bass and drums", 1.0),), bpm=120.0,
                                      harmony=harmony_at(b))
        _, state = gen.generate(state, controls, 1)
        for _, d in gen.drain_midi():
            if d[0] & 0xF0 == 0x90 and d[2] > 0 and d[0] & 0x0F != gm.DRUM_CHANNEL:
                out.append((b, d[0] & 0x0F, d[1] % 12))
    gen.init_state(0)
    gen.drain_midi()
    return out


def test_held_chords_are_followed_from_the_next_block(gen):
    """C-E-G for 8 s, then D-F-A: the melodic notes keep to the chord's scale and the bass to its root."""
    change = 200
    notes = _melodic_pitch_classes(gen, lambda b: "C3 E G" if b < change else "D3 F A", 400)
    first = [pc for b, _, pc in notes if b < change]
    second = [pc for b, _, pc in notes if b >= change + 1]
    assert len(first) > 20 and len(second) > 20
    assert np.mean([pc in C_MAJOR for pc in first]) >= 0.9
    assert np.mean([pc in C_MAJOR for pc in second]) >= 0.9
    assert np.mean([pc in {0, 4, 7} for pc in first]) > np.mean([pc in {0, 4, 7} for pc in second])
    assert np.mean([pc in {2, 5, 9} for pc in second]) > np.mean([pc in {2, 5, 9} for pc in first])
    bass = gm.part_channel(BASS_PART)
    bass_first = [pc for b, ch, pc in notes if ch == bass and b < change]
    if MODEL == "groove" and bass_first:
        assert np.mean([pc == 0 for pc in bass_first]) > 0.4  # the root of C-E-G


def test_without_a_chord_the_prompt_leads(gen):
    """The baseline the chord is measured against: an F sharp major chord's tones are rare without it."""
    held = _melodic_pitch_classes(gen, lambda b: "F#3 A# C#", 150)
    free = _melodic_pitch_classes(gen, lambda b: "", 150)
    in_chord = lambda ns: np.mean([pc in {6, 10, 1} for _, _, pc in ns])  # noqa: E731
    assert len(held) > 10 and len(free) > 10
    assert in_chord(held) > 0.6 and in_chord(held) > in_chord(free) + 0.3
