"""The sync sources without a JACK server (issue 17): BBT arithmetic and its extrapolation to a block, the MIDI
clock's tempo estimate under jitter, song position, transport following, the timebase master's BBT, the
JACK output's planned start, and the mapping file's ``sync:`` key. Fast and pure; the real-process tests are
tests/test_sync_e2e.py."""

from __future__ import annotations

import random
import threading
import time
import types

import jack
import numpy as np
import pytest

from bridge import mapping_schema, sync
from bridge.controls import ControlStore
from bridge.jack_io import BYTES_PER_FRAME, JackOutput, ring_buffer
from bridge.prebuffer import AdaptivePrebuffer
from bridge.sync_jack import JackTransportSync, TimebaseMaster
from bridge.sync_midi import ClockEstimator, MidiClockSync
from bridge.yaml_lines import load_located

RATE = 48_000


# --- arithmetic -------------------------------------------------------------------------------
def test_bbt_beats_in_quarter_notes():
    assert sync.bbt_beats(1, 1, 0, 1920, 4, 4) == (0.0, 4.0)
    assert sync.bbt_beats(2, 3, 960, 1920, 4, 4) == (6.5, 4.0)
    assert sync.bbt_beats(2, 4, 0, 1920, 6, 8) == (4.5, 3.0)  # 6/8: eighths are half beats
    assert sync.bbt_beats(3, 1, 0, 1920, 3, 4) == (6.0, 3.0)


def test_extrapolate_and_frame_diff():
    assert sync.extrapolate(4.0, 120.0, RATE) == pytest.approx(6.0)
    assert sync.extrapolate(4.0, 120.0, -RATE / 2) == pytest.approx(3.0)
    assert sync.frame_diff(5, 0xFFFFFFFE) == 7  # across the 32-bit wrap
    assert sync.frame_diff(0xFFFFFFFE, 5) == -7


def test_status_lines():
    from generator.core.contract import MusicalPosition

    assert sync.describe("jack", MusicalPosition(16.5, 4.0, 120.0), True) == "jack rolling 120.0 BPM 4/4 bar 5"
    assert sync.describe("jack", None, False) == "jack stopped"
    assert sync.describe("midi", MusicalPosition(0.0, 3.0, 90.0), True, "6/8") == "midi rolling 90.0 BPM 6/8 bar 1"


# --- the MIDI clock's tempo estimate -------------------------------------------------------------
def _clocks(bpm, count, jitter_ms=2.0, start=0.0, seed=1):
    rng = random.Random(seed)
    interval = RATE * 60.0 / (bpm * 24)
    jitter = jitter_ms * RATE / 1000
    return [start + i * interval + rng.uniform(-jitter, jitter) for i in range(count)], interval


def test_tempo_estimate_is_steady_under_2ms_jitter():
    times, interval = _clocks(90.0, 24 * 8)
    est = ClockEstimator()
    tempos, phase_errors = [], []
    for n, t in enumerate(times, start=1):
        est.add(n, t)
        if n >= 48:
            tempos.append(est.bpm)
            ideal = (n - 1) * interval  # where clock n belongs without jitter
            phase_errors.append(abs(est.time_of(n) - ideal) / RATE * 1000)
    assert max(abs(b - 90.0) for b in tempos) < 0.15
    assert float(np.percentile(phase_errors, 99)) < 1.0  # ms: the fit, not the last jittered clock
    assert est.restarts == 0


def test_tempo_estimate_follows_a_jump_within_two_beats_and_ignores_one_stray_clock():
    slow, interval = _clocks(90.0, 96)
    fast, _ = _clocks(120.0, 96, start=slow[-1] + interval, seed=2)
    est = ClockEstimator()
    for n, t in enumerate(slow, start=1):
        est.add(n, t)
    est.add(97, slow[-1] + interval + 0.8 * interval)  # one stray (late) clock: ignored
    assert abs(est.bpm - 90.0) < 0.15
    for n, t in enumerate(fast, start=97):
        est.add(n, t)
        if n == 97 + 48:
            assert abs(est.bpm - 120.0) < 0.3
    assert est.restarts >= 1


# --- MIDI clock as a sync source ------------------------------------------------------------------
def _midi_source(store=None):
    store = store or ControlStore()
    source = MidiClockSync(store, None)
    return store, source


def test_midi_start_clock_stop_continue_and_song_position():
    store, source = _midi_source()
    source.start_stopped()
    assert store.transport == "stopped"
    interval = RATE * 60.0 / (120.0 * 24)
    frame = 1000
    for _ in range(48):  # a clock running while stopped (most DAWs and drum machines)
        frame += interval
        source.feed(int(frame), b"\xf8")
    assert source.position_at(frame) is None  # not rolling
    source.feed(int(frame + interval) - 1, b"\xfa")
    assert store.transport == "playing"
    beat0 = frame + interval  # the first clock after the start is beat 0
    for _ in range(24 * 4):
        frame += interval
        source.feed(int(frame), b"\xf8")
    pos = source.position_at(beat0 + 2.5 * 24 * interval)
    assert pos.beat == pytest.approx(2.5, abs=1e-3) and pos.bpm == pytest.approx(120.0, abs=0.01)
    assert pos.beats_per_bar == 4.0
    assert store.get("bpm") == pytest.approx(120.0)  # the bpm control shows the clock's tempo
    source.feed(int(frame) + 10, b"\xfc")
    assert store.transport == "stopped" and source.position_at(frame) is None
    assert source.pointer == 24 * 4  # four beats of clocks were played
    source.feed(int(frame) + 20, bytes((0xF2, 32, 0)))  # song position: sixteenth 32 = beat 8
    source.feed(int(frame + interval) - 1, b"\xfb")
    assert store.transport == "playing"
    frame += interval
    source.feed(int(frame), b"\xf8")
    assert source.position_at(frame).beat == pytest.approx(8.0, abs=1e-3)


def test_midi_start_without_a_running_clock_uses_the_bpm_control():
    store, source = _midi_source(ControlStore({"bpm": 100.0}))
    source.feed(48_000, b"\xfa")
    assert source.position_at(48_000 + RATE * 0.6).beat == pytest.approx(1.0)  # 100 BPM: 0.6 s a beat


# --- JACK transport ---------------------------------------------------------------------------------
class FakeOutput:
    """What the JACK sync source uses of JackOutput: when a stream sample plays, and planning a start."""

    def __init__(self, at=None):
        self.at = at  # frame time of stream sample 0, or None (not started)
        self.planned = []
        self.keep_time, self.caught_up = False, 0
        self.slow_sync, self.roll_plan, self.consumed = False, None, 0
        self.client_lock, self.client, self.connected = threading.Lock(), None, False

    def frame_time_of(self, sample):
        return None if self.at is None else (self.at + sample) & 0xFFFFFFFF

    def plan_roll(self, transport_frame):
        self.roll_plan = transport_frame

    def transport_frame_of(self, sample):
        return None if self.roll_plan is None else self.roll_plan + sample - self.consumed

    def plan_start(self, lead):
        self.planned.append(lead)
        self.at = 10_000 + lead
        return self.at


BBT_100 = {"frame": 48_000, "frame_rate": RATE, "bar": 1, "beat": 2, "tick": 960, "bar_start_tick": 0.0,
           "beats_per_bar": 4.0, "beat_type": 4.0, "ticks_per_beat": 1920.0, "beats_per_minute": 100.0}


def test_jack_position_extrapolates_bbt_through_the_buffer():
    store = ControlStore()
    out = FakeOutput(at=5_000)
    source = JackTransportSync(store, out)
    # the position was read in the period starting at frame time 2_000 (transport frame 48_000, beat 1.5)
    source._query = (jack.ROLLING, dict(BBT_100), 2_000)
    pos = source.position(RATE // 2, 0.0)  # plays at frame time 5_000 + 24_000: 27_000 frames later
    assert pos.beat == pytest.approx(1.5 + 27_000 / RATE * 100 / 60)
    assert (pos.beats_per_bar, pos.bpm) == (4.0, 100.0)
    assert store.get("bpm") == pytest.approx(100.0)
    assert source.status == "jack rolling 100.0 BPM 4/4 bar 1"
    six_eight = dict(BBT_100, beats_per_bar=6.0, beat_type=8.0, beats_per_minute=180.0, bar=2, beat=1, tick=0)
    source._query = (jack.ROLLING, six_eight, 5_000)
    pos = source.position(0, 0.0)
    assert (pos.beat, pos.beats_per_bar, pos.bpm) == (pytest.approx(3.0), 3.0, 90.0)


def test_jack_without_bbt_uses_the_bpm_control_and_plans_a_start():
    store = ControlStore({"bpm": 120.0})
    out = FakeOutput(at=None)
    source = JackTransportSync(store, out)
    source.lead = lambda: 7_000
    source._query = (jack.ROLLING, {"frame": 96_000, "frame_rate": RATE, "usecs": 0}, 3_000)
    pos = source.position(0, 0.0)  # not started: a start is planned 7_000 frames ahead
    assert out.planned == [7_000]
    assert pos.beat == pytest.approx((96_000 + (17_000 - 3_000)) / RATE * 2)
    assert source.status == "jack: no BBT, using bpm"
    store.set("bpm", 0.0)
    assert source.position(0, 0.0) is None  # the prompt's tempo: no clock, start/stop only
    source._query = (jack.STOPPED, dict(BBT_100), 3_000)
    assert source.position(0, 0.0) is None


def test_transport_changes_trigger_play_and_stop_only_on_edges():
    store = ControlStore()
    source = JackTransportSync(store, FakeOutput())
    source.start_stopped()
    assert store.transport == "stopped"
    store.trigger("play")  # a user's play while the clock is stopped still plays
    assert not source._transport(False) and store.transport == "playing"
    assert source._transport(True) and store.transport == "playing"
    assert source._transport(False) and store.transport == "stopped"


def test_bpm_control_follows_with_hysteresis():
    store = ControlStore({"bpm": 90.0})
    source = sync.SyncSource(store)
    source._follow_bpm(90.2)
    assert store.get("bpm") == 90.0
    source._follow_bpm(91.04)
    assert store.get("bpm") == pytest.approx(91.0)


# --- the timebase master -------------------------------------------------------------------------------
def _pos(frame):
    return types.SimpleNamespace(frame=frame, valid=0)


def test_timebase_master_publishes_continuous_bbt_across_a_tempo_change():
    master = TimebaseMaster(120.0)
    pos = _pos(RATE * 5 // 2)  # 2.5 s at 120 BPM: beat 5 = bar 2 beat 2
    master(None, 1024, pos, False)
    assert (pos.bar, pos.beat, pos.tick, pos.beats_per_minute) == (2, 2, 0, 120.0)
    assert pos.valid & TimebaseMaster.__call__.__globals__["jack"].POSITION_BBT
    master.bpm = 60.0
    master(None, 1024, _pos(RATE * 3), False)  # the change: beat 6 at 3 s
    later = _pos(RATE * 4)  # one more second at 60 BPM: beat 7
    master(None, 1024, later, False)
    assert (later.bar, later.beat, later.tick) == (2, 4, 0)
    master.bpm = 0.0  # the bridge does not know the prompt's tempo: 120
    assert master._tempo(master.bpm) == 120.0


# --- the JACK output's planned start ------------------------------------------------------------------
def _output(buffered_frames):
    rb = ring_buffer(1.0)
    rb.write(np.zeros((buffered_frames, 2), dtype=np.float32))
    out = JackOutput(rb, AdaptivePrebuffer(0.05, 0.5))
    out.period_frames, out.connected, out.last_frame = 1024, True, 100_000
    return out, rb


def test_plan_start_is_a_period_boundary_and_priming_waits_for_it():
    out, rb = _output(8192)
    start = out.plan_start(5000)
    assert start == 100_000 + 6 * 1024  # (5000 + one period) rounded up to whole periods
    assert out.frame_time_of(out.consumed + 10) == start + 10
    out._prime(8192, 1024, start - 1024)
    assert not out._primed
    out._prime(8192, 1024, start)
    assert out._primed and out.start_at is None and out.consumed == 0


def test_a_late_start_drops_what_it_is_late_by_to_stay_on_time():
    out, rb = _output(8192)
    start = out.plan_start(5000)
    out._prime(8192, 1024, start + 1024)
    assert out._primed and out.consumed == 1024
    assert rb.read_space // BYTES_PER_FRAME == 8192 - 1024


class RollingTransport:
    """The part of a JACK client the callback asks while a roll is planned: the transport state and frame."""

    def __init__(self, state, frame):
        self.state, self.frame = state, frame

    def transport_query_struct(self):
        return self.state, types.SimpleNamespace(frame=self.frame)


def test_a_slow_sync_start_waits_for_the_pre_buffer_then_plays_on_the_first_rolling_frame():
    out, rb = _output(0)
    pos = types.SimpleNamespace(frame=96_000)
    assert out._on_sync(jack.STARTING, pos) is False  # nothing planned yet: the transport waits
    out.plan_roll(96_000)
    assert out.transport_frame_of(out.consumed + 480) == 96_480
    assert out._on_sync(jack.STARTING, pos) is False  # planned, but the pre-buffer is not there
    rb.write(np.zeros((4096, 2), dtype=np.float32))  # 85 ms: over the 50 ms pre-buffer and three periods
    assert out._on_sync(jack.STARTING, types.SimpleNamespace(frame=48_000)) is False  # another start frame
    assert out._on_sync(jack.STARTING, pos) is True
    assert out._on_sync(jack.STOPPED, types.SimpleNamespace(frame=0)) is True  # a locate never waits
    out._rt_client = RollingTransport(jack.STARTING, 96_000)
    out._prime(4096, 1024, 200_000)
    assert not out._primed  # still starting: silence
    out._rt_client = RollingTransport(jack.ROLLING, 96_000)
    out._prime(4096, 1024, 201_024)
    assert out._primed and out.consumed == 0 and out.rolls_aligned == 1 and out.roll_plan is None


def test_a_roll_that_did_not_wait_drops_what_the_transport_is_past_the_plan():
    out, rb = _output(8192)
    out.plan_roll(96_000)
    out._rt_client = RollingTransport(jack.ROLLING, 97_024)  # JACK's sync timeout rolled it a period early
    out._prime(8192, 1024, 200_000)
    assert out._primed and out.consumed == 1024 and out.rolls_aligned == 0


def test_jack_source_plans_a_roll_while_the_transport_waits_and_positions_from_its_start():
    store = ControlStore()
    out = FakeOutput()
    source = JackTransportSync(store, out)
    assert out.slow_sync
    source.start_stopped()
    starting = (jack.STARTING, dict(BBT_100, frame=96_000), 5_000)  # bar 1 beat 2.5 at transport frame 96_000
    source._read = lambda: starting
    source.poll()
    assert store.transport == "playing" and out.roll_plan == 96_000 and out.planned == []
    pos = source.position(RATE // 2, 0.0)  # half a second after the start frame
    assert pos.beat == pytest.approx(1.5 + 0.5 * 100 / 60)
    source._read = lambda: (jack.STOPPED, dict(BBT_100), 6_000)
    source._next_poll = 0.0
    source.poll()
    assert store.transport == "stopped" and out.roll_plan is None


# --- the mapping file ----------------------------------------------------------------------------------
def test_mapping_file_sync_key(tmp_path):
    assert mapping_schema.SYNC_SOURCES == sync.SYNC_SOURCES
    good, errors = mapping_schema.parse(load_located("version: 1\nsync: midi\n"), "m.yaml")
    assert errors == [] and good.sync == "midi"
    bad, errors = mapping_schema.parse(load_located("version: 1\nsync: jak\n"), "m.yaml")
    assert bad is None and errors == ["m.yaml:2: sync must be one of internal, jack, midi, link, got 'jak' "
                                      "(did you mean 'jack'?)"]


def test_link_without_the_extra_names_it():
    try:
        import aalink  # noqa: F401
    except ImportError:
        with pytest.raises(sync.SyncError, match=r"pip install 'jamgen\[link\]'"):
            sync.check_available("link")
    else:
        pytest.skip("aalink is installed here")


def test_a_missed_period_is_caught_up_only_with_a_sync_source():
    out, rb = _output(8192)
    out._primed, out.cycle, out._played = True, (100_000, 0), 1024
    assert out._catch_up(100_000 + 2048, 8192, 1024) == 1024  # one period of ours went missing
    assert out.consumed == 1024 and out.caught_up == 1024
    out.cycle, out._played = (200_000, 1024), 1024
    assert out._catch_up(200_000 + 1024, 7168, 1024) == 0  # on time
    assert out._catch_up(200_000 + 1024 + 6000, 7168, 1024) == 0  # more than the buffer can give: left alone
    source = JackTransportSync(ControlStore(), out)
    assert out.keep_time and source is not None


# --- the engine hands the clock to the generator ---------------------------------------------------------
def test_engine_passes_the_sync_position_as_the_blocks_clock():
    from bridge.engine import Engine
    from generator.core.contract import MusicalPosition
    from tests.tone_generator import factory

    seen = []

    class Gen(type(factory())):
        def generate(self, state, controls, frames):
            seen.append(controls.clock)
            return super().generate(state, controls, frames)

    class Source:
        polls = 0

        def poll(self):
            Source.polls += 1

        def position(self, sample, sounds_at):
            return MusicalPosition(sample / 1000.0, 3.0, 99.0)

    gen = Gen()
    engine = Engine(gen, ControlStore(), ring_buffer(1.0), block_frames=1, sync=Source())
    engine._state = gen.init_state(0)
    engine._generate_block()
    engine._generate_block()
    assert seen == [MusicalPosition(0.0, 3.0, 99.0), MusicalPosition(1.92, 3.0, 99.0)]


def test_status_is_published_on_change_and_again_later(monkeypatch):
    sent = []
    source = sync.SyncSource(ControlStore(), lambda address, value: sent.append((address, value)))
    source._set_status("jack stopped")
    source._set_status("jack stopped")
    source._republish()
    assert sent == [("/jamgen/sync", "jack stopped")]
    source._published_at -= sync.REPUBLISH_SECONDS
    source._republish()
    assert sent == [("/jamgen/sync", "jack stopped")] * 2


# --- Ableton Link ------------------------------------------------------------------------------------------
def test_link_position_is_the_sessions_beat_advanced_to_the_blocks_sound_time():
    import threading

    from bridge.sync_link import LinkSync

    class FakeClient:
        frame_time = 50_000

    out = FakeOutput(at=50_000 + 4_800)  # stream sample 0 plays 0.1 s from now
    out.client, out.connected, out.client_lock = FakeClient(), True, threading.Lock()
    link = types.SimpleNamespace(beat=7.5, tempo=120.0, num_peers=2, enabled=True)
    store = ControlStore()
    source = LinkSync(store, out, link=link)
    source.poll()
    assert store.get("bpm") == 120.0 and store.transport == "playing"  # Link never stops jamgen
    pos = source.position(RATE // 10, 0.0)  # 0.1 s further: 0.2 s ahead at 2 beats a second
    assert (pos.beat, pos.beats_per_bar, pos.bpm) == (pytest.approx(7.9), 4.0, 120.0)
    assert source.status == "link rolling 120.0 BPM 4/4 bar 2, 2 peers"
    source.close()
    assert link.enabled is False


def test_link_session_when_the_extra_is_installed():
    pytest.importorskip("aalink")
    from bridge.sync_link import open_link

    link, loop = open_link(97.0)
    try:
        first = link.beat
        time.sleep(0.2)
        assert link.tempo == pytest.approx(97.0) and link.beat > first
    finally:
        link.enabled = False
        loop.close()
