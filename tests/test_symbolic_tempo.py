"""The prompt's tempo head and the time map that plays the model's stream faster or slower: exact
time scaling of real sampling, continuity across tempo changes, the checkpoint file, the judge, and
what the shipped head reads from plain-English prompts."""

from __future__ import annotations

import json

import numpy as np
import pytest

import generator
from generator.core.contract import GenerationControls
from generator.symbolic.system import CHECKPOINTS, STEP_SAMPLES, SymbolicSystem
from generator.symbolic.tempo import FILE, TempoHead, TimeMap
from generator.train.heads.tempo import estimate_bpm, number_free
from generator.train.symbolic_eval import generate_midi

SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"


def fixed(speed: float, dim: int = 384) -> TempoHead:
    """A head that asks for ``speed`` times the model's tempo whatever the prompt says."""
    return TempoHead(np.zeros(dim, np.float32), float(np.log2(100.0 * speed)), 100.0, max_scale=4.0)


def test_time_map_is_continuous_and_invertible():
    tm = TimeMap(STEP_SAMPLES)
    assert tm.sample(100) == 100 * STEP_SAMPLES
    before = tm.sample_f(250)
    tm.set_speed(2.0, 250)
    assert tm.sample_f(250) == before  # no jump where the speed changes
    assert tm.sample_f(350) == pytest.approx(before + 100 * STEP_SAMPLES / 2)
    tm.set_speed(0.5, 300)
    times = [tm.sample_f(s) for s in range(0, 500)]
    assert all(b > a for a, b in zip(times, times[1:]))  # time never runs backwards
    assert tm.first_step_at(0) == 300  # the past maps to the last speed change
    for target in (132_000, 132_007, 223_456, 300_001):
        step = tm.first_step_at(target)
        assert tm.sample_f(step) >= target and (step == 300 or tm.sample_f(step - 1) < target)


def test_scale_is_bounded_and_neutral_without_a_prompt():
    head = TempoHead(np.zeros(384, np.float32), float(np.log2(400.0)), 100.0)  # asks for 4x
    vec = np.ones(384, np.float32)
    assert head.bpm(vec) == pytest.approx(400.0)
    assert head.scale(vec) == head.max_scale == 1.6
    assert TempoHead(np.zeros(384), float(np.log2(10.0)), 100.0).scale(vec) == 0.6
    assert head.scale(None) == 1.0


def test_double_speed_plays_the_same_notes_in_half_the_time():
    """Same trained model, same seed: the note-ons at speed 2 are those at speed 1, at half the time."""
    from generator.symbolic import checkpoint as ckpt

    config, model, _ = ckpt.load(CHECKPOINTS / "symbolic")
    controls = GenerationControls(prompts=(("upbeat jazz with drums and walking bass", 1.0),), guidance=1.25)

    def note_ons(speed, seconds):
        gen = SymbolicSystem(config, model, SOUNDFONT, tempo=fixed(speed))
        events, *_ = generate_midi(gen, controls, seconds, seed=5)
        return [(t, d[0] & 0x0F, d[1]) for t, d in events if d[0] & 0xF0 == 0x90 and d[2] > 0]

    slow, fast = note_ons(1.0, 6.0), note_ons(2.0, 3.0)
    n = min(len(slow), len(fast)) - 5  # the last events may fall on either side of the end
    assert n > 20
    for (ts, cs, ps), (tf, cf, pf) in zip(slow[:n], fast[:n]):
        assert (cs, ps) == (cf, pf)
        assert abs(tf - ts / 2) <= 1


def test_tempo_change_mid_stream_keeps_time_moving_forward():
    gen = SymbolicSystem(generator.symbolic.model.PRESETS["symbolic-tiny"], soundfont=SOUNDFONT, tempo=fixed(1.0))
    state = gen.init_state(0)
    gen.drain_midi()
    fast_head, slow_head = fixed(1.5), fixed(0.6)
    stamps = []
    for i in range(12):
        gen.tempo = fast_head if (i // 3) % 2 else slow_head
        _, state = gen.generate(state, GenerationControls(prompts=((f"prompt {i // 3}", 1.0),)), 5)
        assert gen.last_block["speed"] == gen.tempo.scale(np.zeros(384))
        base = i * 5 * 1920
        stamps += [base + off for off, d in gen.drain_midi() if d[0] & 0xF0 == 0x90]
    assert stamps and all(b >= a for a, b in zip(stamps, stamps[1:]))
    assert min(state.leads) >= 0  # no event was ever scheduled before the block it was made in


def test_judge_finds_the_tempo_of_a_drum_pattern():
    for bpm in (80.0, 100.0, 132.0, 160.0):
        beat = 60.0 / bpm
        kicks = [k * beat for k in range(24)]
        hats = [k * beat / 2 for k in range(48)]  # eighths: on the beat with the kick, and between
        onsets = sorted(kicks + hats)
        assert estimate_bpm(onsets) == pytest.approx(bpm, rel=0.04)
    assert np.isnan(estimate_bpm([0.0, 0.5]))


def test_number_free_keeps_the_words():
    assert number_free("moderate shuffle with jazz drums, 76 BPM, in E flat major") == \
        "moderate shuffle with jazz drums, in E flat major"
    assert number_free("steady, around 76 beats per minute, the key of E flat major") == "steady, the key of E flat major"


def test_shipped_head_reads_tempo_words():
    directory = CHECKPOINTS / "symbolic"
    meta = json.loads((directory / "config.json").read_text())
    held = meta["tempo"]["heldout_number_free"]
    assert FILE in meta["files"] and held["mae_octaves"] < held["median_guess_mae_octaves"]
    gen = generator.load("symbolic")
    assert gen.tempo is not None

    def speed(text):
        return gen.speed_for(((text, 1.0),))

    assert speed("fast swing jazz with brushed drums and walking bass") > 1.2
    assert speed("gentle solo piano lullaby") < 0.9
    assert speed("fast rock with drums and electric guitar") > speed("slow rock with drums and electric guitar")
    assert speed("energetic dance music") > speed("a sad ballad")
    assert gen.speed_for(()) == 1.0
