"""A knob is heard at the next block: the groove generator takes back the notes it sampled ahead but has not
played, and samples them again under the new controls (issue 16).

What must hold, with the shipped ``groove`` model when there is one (else the seeded ``groove-tiny``):
- what was already rendered is never changed, and the change is heard from the next block on;
- re-sampled notes never land where the audio was already played (every onset stays on the grid);
- a storm of changes leaves no note hanging and the rewind's memory bounded;
- block size does not change the music (the same notes at the same samples with 1- and 5-frame blocks).
"""

from __future__ import annotations

import pytest

import generator
from generator.core.checkpoint import SHIPPED
from generator.core.contract import FRAME_SAMPLES, SAMPLE_RATE, GenerationControls
from generator.groove import checkpoint as gckpt
from generator.groove import tokens as G

MODEL = "groove" if gckpt.is_checkpoint(SHIPPED / "groove") else "groove-tiny"
PROMPT = "funk band with drums, bass and electric piano"


@pytest.fixture(scope="module")
def gen():
    g = generator.load(MODEL)
    g.warmup()
    return g


def _controls(temperature=1.0, guidance=1.5, top_k=64, prompt=PROMPT):
    return GenerationControls(prompts=((prompt, 1.0),), guidance=guidance, temperature=temperature, top_k=top_k,
                              bpm=120.0)


def _render(gen, blocks, frames, controls_at, seed=0):
    """``blocks`` blocks of ``frames`` frames; ``controls_at(block)``. Returns (MIDI [(sample, bytes)], state)."""
    state = gen.init_state(seed)
    gen.drain_midi()
    midi = []
    for b in range(blocks):
        _, state = gen.generate(state, controls_at(b), frames)
        midi += [(b * frames * FRAME_SAMPLES + off, bytes(d)) for off, d in gen.drain_midi()]
    gen.init_state(0)
    midi += [(blocks * frames * FRAME_SAMPLES, bytes(d)) for _, d in gen.drain_midi()]
    return midi, state


def _notes(midi):
    return [(s, d) for s, d in midi if d[0] & 0xF0 in (0x80, 0x90)]


def test_a_change_keeps_what_was_rendered_and_is_heard_from_the_next_block(gen):
    change = 110  # 1-frame blocks: 4.4 s, mid-bar at 120 BPM
    plain, _ = _render(gen, 250, 1, lambda b: _controls())
    changed, state = _render(gen, 250, 1, lambda b: _controls(temperature=1.0 if b < change else 1.6))
    at = change * FRAME_SAMPLES
    assert state.rewinds == 1 and state.dropped > 0  # notes had been sampled ahead, and were taken back
    assert [e for e in _notes(plain) if e[0] < at] == [e for e in _notes(changed) if e[0] < at]
    first = next(s for (s, d), (s2, d2) in zip(_notes(plain), _notes(changed)) if (s, d) != (s2, d2))
    assert at <= first < at + SAMPLE_RATE  # heard within the next beat or two, never before


def test_a_storm_of_changes_keeps_every_onset_on_the_grid_and_leaves_nothing_hanging(gen):
    def storm(b):  # a new value every block, all four controls that re-sample
        return _controls(temperature=0.6 + 0.05 * (b % 17), guidance=1.0 + 0.1 * (b % 7), top_k=8 + b % 50,
                         prompt=PROMPT if (b // 40) % 2 == 0 else "gentle solo piano lullaby")

    midi, state = _render(gen, 250, 1, storm, seed=2)
    assert state.rewinds > 200
    assert len(state.timeline.snaps) < 40  # pruned behind the play position
    spt = SAMPLE_RATE * 60 / (120 * G.TPB)
    ons = [s for s, d in midi if d[0] & 0xF0 == 0x90 and d[2] > 0]
    assert len(ons) > 20
    for s in ons:
        tick = s / spt
        assert abs(tick - round(tick)) * spt <= 0.5 + 1e-6, (s, tick)  # nothing re-sampled into the past
    sounding = set()
    for _, d in midi:
        key = (d[0] & 0x0F, d[1])
        if d[0] & 0xF0 == 0x90 and d[2] > 0:
            sounding.add(key)
        elif d[0] & 0xF0 in (0x80, 0x90):
            sounding.discard(key)
    assert not sounding


def test_block_size_does_not_change_the_music(gen):
    small, _ = _render(gen, 200, 1, lambda b: _controls(), seed=4)
    large, _ = _render(gen, 40, 5, lambda b: _controls(), seed=4)
    end = 200 * FRAME_SAMPLES
    assert [e for e in _notes(small) if e[0] < end - 1] == [e for e in _notes(large) if e[0] < end - 1]
