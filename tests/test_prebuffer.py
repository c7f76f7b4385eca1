"""The adaptive pre-buffer's rule, on a fake clock: grow at once on a near miss, shrink slowly, stay in bounds."""

from __future__ import annotations

import pytest

from bridge.prebuffer import AdaptivePrebuffer, cap_seconds, parse_policy


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_grows_at_once_up_to_the_cap_and_shrinks_slowly_to_the_floor():
    clock = Clock()
    p = AdaptivePrebuffer(0.15, 0.5, clock)
    assert p.frames == p.floor == 7200 and p.cap == 24000
    p.near_miss("test")
    assert p.frames == 10800  # x1.5
    for _ in range(5):
        p.near_miss("test")
    assert p.frames == p.cap == 24000 and p.near_misses == 6
    clock.now += 29.9
    p.calm()
    assert p.frames == 24000  # not calm for long enough yet
    clock.now += 0.2
    p.calm()
    assert p.frames == 21600  # 10 % off after 30 s
    p.calm()
    assert p.frames == 21600  # the next step needs another 30 s
    for _ in range(40):
        clock.now += 30.0
        p.calm()
    assert p.frames == p.floor  # never below the floor
    p.near_miss("test")
    clock.now += 29.0
    p.calm()
    assert p.frames == 10800  # a near miss restarts the calm period


def test_a_block_arriving_below_the_danger_level_is_a_near_miss():
    p = AdaptivePrebuffer(0.15, 1.0, Clock())
    block, period = 2 * 1920, 1024
    # two periods (2048) plus an eighth of the pre-buffer (900), at least 5 ms (240)
    assert p.danger_frames(block, period) == 2948
    assert p.danger_frames(5 * 1920, period) == 2948  # the block size does not matter
    assert AdaptivePrebuffer(0.3, 1.0).danger_frames(1920, 256) == 512 + 1800
    assert AdaptivePrebuffer(0.02, 1.0).danger_frames(1920, 256) == 512 + 240
    assert not p.check_arrival(2948, block, period) and p.frames == 7200
    assert p.check_arrival(2947, block, period) and p.frames == 10800
    # not connected (no period): a block arriving with nothing left is still a near miss
    assert p.check_arrival(0, block, None)


def test_one_slow_moment_grows_it_once_the_refill_does_not_compound():
    """The blocks written while the buffer catches up with a growth arrive short because of the moment
    that grew it: they neither grow nor shrink it until one tops the buffer up (a soak on 2026-12-07
    went 80 -> 1000 ms from one slow block without this). An underrun still grows it at once."""
    clock = Clock()
    p = AdaptivePrebuffer(0.08, 1.0, clock)
    block, period = 1920, 256
    assert p.check_arrival(500, block, period) and p.frames == 5760 and p.refilling  # 80 -> 120 ms
    for buffered in (1150, 770, 1400, 1800, 2600):  # catching up, some arrivals very short
        clock.now += 40.0  # not even a long wait shrinks it meanwhile
        assert p.check_arrival(buffered, block, period) == (buffered < p.danger_frames(block, period))
        assert p.frames == 5760 and p.refilling
    assert not p.check_arrival(3900, block, period) and not p.refilling  # 3900 + 1920 >= 5760: topped up
    assert p.check_arrival(500, block, period) and p.frames == 8640  # a new slow moment grows it again
    p.near_miss("underrun")  # an underrun while refilling still grows it
    assert p.frames == 12960 and p.near_misses == 3
    assert not p.check_arrival(12960, block, period) and not p.refilling
    clock.now += 30.0
    assert not p.check_arrival(12960, block, period) and p.frames == 11664  # calm again: shrinks


def test_the_cap_is_at_least_a_second_and_twice_the_safe_setting():
    assert cap_seconds(0.3, 0.15) == 1.0
    assert cap_seconds(0.8, 0.3) == 1.6
    assert cap_seconds(0.3, 2.0) == 2.0  # an explicit --prebuffer above the cap is its own cap


def test_the_policy_is_a_daemon_flag_with_one_line_errors():
    assert parse_policy("") == {}
    assert parse_policy("grow=1.25, calm=10") == {"grow": 1.25, "calm_seconds": 10.0}
    p = AdaptivePrebuffer(0.08, 1.0, Clock(), **parse_policy("grow=1,margin=0"))
    assert p.danger_frames(1920, 256) == 512 + 240  # margin 0: two periods and the 5 ms minimum
    p.near_miss("test")
    assert p.frames == p.floor  # grow=1: fixed
    for bad, words in (("grow", "KEY=VALUE"), ("speed=2", "KEY=VALUE"), ("calm=soon", "must be a number"),
                       ("shrink=1.5", "out of range"), ("grow=0.5", "out of range")):
        with pytest.raises(ValueError, match=words) as err:
            parse_policy(bad)
        assert "\n" not in str(err.value)


def test_the_replay_bench_sees_underruns_where_blocks_outlast_the_pre_buffer():
    """bench/prebuffer_replay.py simulates the JACK callback and the generation thread over a soak's block times:
    blocks well inside their 40 ms never underrun; one block longer than the pre-buffer does, once; a policy that
    grew after the first of two slow blocks rides out the second."""
    import sys
    from pathlib import Path

    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from prebuffer_replay import replay

    n = 4000  # 160 s of 40 ms blocks
    changed = np.zeros(n, bool)
    changed[::8] = True
    fast = np.full(n, 5.0)
    r = replay(fast, changed, 0.08, 1.0, 1920, 256, {"grow": 1.0})
    assert r["underruns"] == 0 and r["growths"] == 0
    # knob: waits for the next block (0-40 ms), 5 ms of compute, then what is buffered (~80 ms less a period)
    assert 80 < r["p50"] < 115 and r["p99"] < 130, r
    slow = fast.copy()
    slow[2000] = 120.0  # longer than the 80 ms pre-buffer
    assert replay(slow, changed, 0.08, 1.0, 1920, 256, {"grow": 1.0})["underruns"] == 1
    twice = fast.copy()
    twice[2000], twice[2100] = 70.0, 110.0  # a near miss, then 4 s later a block the floor cannot hide
    assert replay(twice, changed, 0.08, 1.0, 1920, 256, {"grow": 1.0})["underruns"] == 1
    grown = replay(twice, changed, 0.08, 1.0, 1920, 256, {})
    assert grown["underruns"] == 0 and grown["growths"] >= 1, grown
