"""Form: bars that come back (generator.groove.form). The rule decides which earlier bar a new bar repeats; the
stream then plays that bar's tokens again, and a rewind forgets what it takes back."""

from __future__ import annotations

import dataclasses

import generator
from generator.core.contract import GenerationControls
from generator.groove import tokens as G
from generator.groove.form import Form

NOTE = [G.POS0, G.PART0 + 4, G.PITCH0 + 40, G.VEL0 + 4, G.DUR0 + 2]  # one bass note at position 0


def _feed(form, tokens, start=0):
    for i, t in enumerate(tokens, start=start):
        form.record(i, t)
    return start + len(tokens)


def test_the_rule_repeats_within_four_bar_phrases():
    form = Form()
    i = 0
    sources = []
    for bar in range(9):
        i = _feed(form, [G.BAR], i)
        sources.append(form.choose(1.0))
        i = _feed(form, [G.TS0] + [NOTE[0] + bar, *NOTE[1:]], i)  # each bar its own position: bars differ
    # bar 0: nothing before; bar 1 repeats bar 0; bar 2 repeats bar 0; bar 3 is new; bar 4 repeats bar 0 ...
    assert sources[0] is None and sources[3] is None and sources[7] is None
    assert sources[1] == [G.TS0, G.POS0 + 0, *NOTE[1:]]
    assert sources[2] == [G.TS0, G.POS0 + 0, *NOTE[1:]]
    assert sources[4] == [G.TS0, G.POS0 + 0, *NOTE[1:]]
    assert sources[5] == [G.TS0, G.POS0 + 4, *NOTE[1:]]
    assert sources[6] == [G.TS0, G.POS0 + 4, *NOTE[1:]]
    assert Form().choose(0.0) is None


def test_an_empty_bar_is_never_repeated_and_truncate_forgets_what_was_taken_back():
    form = Form()
    i = _feed(form, [G.BAR, G.TS0])
    i = _feed(form, [G.BAR], i)
    assert form.choose(1.0) is None  # the source bar has no notes
    form = Form()
    i = _feed(form, [G.BAR, G.TS0, *NOTE, G.BAR, G.TS0])
    form.truncate(6)  # take back from the bar's last token (its DUR, index 6) on
    assert form.count == 1 and form.bars[-1][1] == [G.TS0, *NOTE[:4]]
    form = Form()
    i = _feed(form, [G.BAR, G.TS0, *NOTE])
    form.record(i, G.BAR, context="another chord")
    assert form.choose(1.0) is None  # a bar from before a chord change never comes back after it
    form.truncate(0)
    assert form.count == 0 and not form.bars


def test_with_repeat_one_the_stream_plays_its_bars_again():
    gen = generator.load("groove-tiny")
    state = gen.init_state(0)
    controls = GenerationControls(prompts=(("funk band", 1.0),), bpm=120.0, repeat=1.0)
    for _ in range(80):  # 16 s: 8 bars at 120 BPM
        _, state = gen.generate(state, controls, 5)
    gen.drain_midi()
    assert state.form.repeats >= 5 and state.decoder.invalid == 0
    bars = [tokens for _, tokens, _ in state.form.bars][:-1]  # complete bars only
    numbers = range(state.form.count - len(state.form.bars), state.form.count - 1)
    checked = 0
    for tokens, number in zip(bars, numbers):
        back = {0: 4, 1: 1, 2: 2}.get(number % 4)
        if back is not None and number - back >= numbers.start:
            source = bars[number - back - numbers.start]
            assert tokens[:len(source)] == source  # the repeat, then whatever the model added
            checked += 1
    assert checked >= 2
    state = gen.init_state(0)
    for _ in range(60):
        _, state = gen.generate(state, dataclasses.replace(controls, repeat=0.0), 5)
    gen.drain_midi()
    assert state.form.repeats == 0 and state.form.count > 5


def test_a_key_head_moves_melodic_pitches_and_never_the_drums():
    """The key head's bias reaches PITCH tokens of melodic parts only (drum "pitches" are instruments)."""
    import numpy as np

    from generator.core.heads import PitchHead

    gen = generator.load("groove-tiny")
    gen.pitch = PitchHead(np.zeros((384, 12), np.float32), np.array([8.0] + [0.0] * 11, np.float32), strength=4.0)
    gen._bias_key = b"stale"  # the biases are remade for the new head
    state = gen.init_state(0)
    controls = GenerationControls(prompts=(("a song in C major", 1.0),), bpm=120.0, temperature=1.0)
    midi = []
    for _ in range(50):
        _, state = gen.generate(state, controls, 5)
        midi += gen.drain_midi()
    ons = [(d[0] & 0x0F, d[1]) for _, d in midi if d[0] & 0xF0 == 0x90 and d[2] > 0]
    melodic = [p for ch, p in ons if ch != 9]
    drums = [p for ch, p in ons if ch == 9]
    assert len(melodic) > 20 and len(drums) > 20
    assert np.mean([p % 12 == 0 for p in melodic]) > 0.9
    assert np.mean([p % 12 == 0 for p in drums]) < 0.5
