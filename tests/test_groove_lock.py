"""The groove stream plays in time with an external clock (generator.groove.lock): given the host's beat, metre and
tempo at each block (as the daemon's sync source gives them), every note lands on the host's grid, the stream's bar
lines fall on the host's, a tempo change is followed, and a relocation re-phases without a hanging note."""

from __future__ import annotations

import pytest

import generator
from generator.core.checkpoint import SHIPPED
from generator.core.contract import FRAME_SAMPLES, SAMPLE_RATE, GenerationControls, MusicalPosition
from generator.groove import checkpoint as gckpt
from generator.groove import tokens as G
from generator.groove.lock import metre_index, phase_error

MODEL = "groove" if gckpt.is_checkpoint(SHIPPED / "groove") else "groove-tiny"


def test_metre_and_phase_arithmetic():
    assert G.TIME_SIGNATURES[metre_index(4.0)] == (4, 4)
    assert G.TIME_SIGNATURES[metre_index(3.0)] == (3, 4)
    assert metre_index(7.0) is None
    assert phase_error(2.0, 46.0, 48.0) == 4.0  # the stream is 4 ticks ahead across the bar line
    assert phase_error(46.0, 2.0, 48.0) == -4.0


class Host:
    """A host clock: ``beat0`` at sample 0, ``bpm0`` until sample ``change``, then ``bpm1``."""

    def __init__(self, beat0, bpm0, bpm1=None, change=None):
        self.beat0, self.bpm0, self.bpm1, self.change = beat0, bpm0, bpm1 or bpm0, change or 10**12

    def beat(self, sample):
        first = min(sample, self.change)
        return self.beat0 + first / SAMPLE_RATE * self.bpm0 / 60 + max(0, sample - self.change) / SAMPLE_RATE * \
            self.bpm1 / 60

    def bpm(self, sample):
        return self.bpm0 if sample < self.change else self.bpm1

    def position(self, sample, beats_per_bar=4.0):
        return MusicalPosition(self.beat(sample), beats_per_bar, self.bpm(sample))


@pytest.fixture(scope="module")
def gen():
    g = generator.load(MODEL)
    g.warmup()
    return g


def _play(gen, host, blocks, frames=1, seed=0, beats_per_bar=4.0):
    """Returns (MIDI [(sample, bytes)], the final state, the largest bar-phase error at a block end after the
    first block, in ticks: where the stream is in its bar against where the host is in its)."""
    state = gen.init_state(seed)
    gen.drain_midi()
    midi, worst = [], 0.0
    for b in range(blocks):
        start = b * frames * FRAME_SAMPLES
        controls = GenerationControls(prompts=(("funk band with drums, bass and electric piano", 1.0),),
                                      clock=host.position(start, beats_per_bar))
        _, state = gen.generate(state, controls, frames)
        midi += [(start + off, bytes(d)) for off, d in gen.drain_midi()]
        end = start + frames * FRAME_SAMPLES
        found = state.bars.phase(state.clock.tick_at(end))
        if b > 0 and found is not None:
            host_phase = (host.beat(end) * G.TPB) % (beats_per_bar * G.TPB)
            worst = max(worst, abs(phase_error(found[0], host_phase, beats_per_bar * G.TPB)))
    gen.init_state(0)
    midi += [(blocks * frames * FRAME_SAMPLES, bytes(d)) for _, d in gen.drain_midi()]
    return midi, state, worst


def test_notes_fall_on_the_host_grid_and_bars_on_its_bar_lines_across_a_tempo_change(gen):
    change = 250 * FRAME_SAMPLES  # 10 s at 100 BPM, then 140 BPM
    host = Host(beat0=5.3, bpm0=100.0, bpm1=140.0, change=change)  # joins mid-bar (bar 2, beat 2.3)
    midi, state, worst = _play(gen, host, 500)
    ons = [s for s, d in midi if d[0] & 0xF0 == 0x90 and d[2] > 0]
    assert len(ons) > 40 and any(s > change for s in ons)
    for s in ons:
        tick = host.beat(s) * G.TPB
        samples_per_tick = SAMPLE_RATE * 60 / (host.bpm(s) * G.TPB)
        assert abs(tick - round(tick)) * samples_per_tick <= 1.0 + 1e-6, (s, tick)  # on the host's grid, to a sample
    assert all(ticks == 48 for _, _, ticks in state.bars.marks)  # the host's 4/4
    assert worst < 0.05  # at every block end the stream is where the host is in the bar
    assert state.rephases == 1  # joining mid-bar; the tempo change needed none


def test_a_relocation_re_phases_and_leaves_no_note_hanging(gen):
    class Jump(Host):
        def beat(self, sample):  # the DAW jumps back by 2.5 beats after 6 s
            return super().beat(sample) - (2.5 if sample >= 150 * FRAME_SAMPLES else 0.0)

    host = Jump(beat0=0.0, bpm0=120.0)
    midi, state, worst = _play(gen, host, 300, seed=3)
    assert state.rephases == 1
    sounding = set()
    for s, d in midi:
        key = (d[0] & 0x0F, d[1])
        if d[0] & 0xF0 == 0x90 and d[2] > 0:
            sounding.add(key)
            tick = host.beat(s) * G.TPB
            assert abs(tick - round(tick)) * SAMPLE_RATE * 60 / (120 * G.TPB) <= 1.0 + 1e-6
        elif d[0] & 0xF0 in (0x80, 0x90):
            sounding.discard(key)
    assert not sounding
    assert worst < 0.05 or state.rephases == 1  # the block of the jump itself is measured after the re-phase


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_start_late_in_the_host_bar_joins_it_within_half_a_beat(gen, seed):
    """The transport starts 2.7 beats into a 4/4 bar: the fresh stream begins its first bar at the host's bar line
    with notes only from the join on, the first within half a beat (not a rest to the next bar line, 1.3 beats
    away), and keeps the bars."""
    host = Host(beat0=10.7, bpm0=120.0)
    midi, state, worst = _play(gen, host, 150, seed=seed)
    ons = [s for s, d in midi if d[0] & 0xF0 == 0x90 and d[2] > 0]
    beat = SAMPLE_RATE * 60 / 120.0
    assert ons and ons[0] <= beat / 2, f"first note {ons[0] / beat:.2f} beats after the start"
    for s in ons:
        tick = host.beat(s) * G.TPB
        assert abs(tick - round(tick)) * SAMPLE_RATE * 60 / (120 * G.TPB) <= 1.0 + 1e-6, (s, tick)
    assert worst < 0.05 and state.rephases == 1
    assert state.bars.marks[0][1] == 0 and all(ticks == 48 for _, _, ticks in state.bars.marks)
