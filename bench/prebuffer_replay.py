"""Replay a soak's block log through other pre-buffer policies: underruns and knob latency, in seconds not hours.

Why: the adaptive pre-buffer (``bridge.prebuffer``) trades a knob's latency for safety, and telling two policies
apart takes an hour's loaded soak each. But what a block computes, and so how long it takes, does not depend on the
policy: the policy only decides *when* a block is asked for. So one soak's sequence of block times (its
``--block-log``: ``gen_ms`` per block, in order) can be replayed through any policy in a simulation of the two
threads that meet at the ring buffer:

- the JACK callback (``bridge.jack_io``): a period at a time; playing starts once the pre-buffer (at least three
  periods) is buffered; a period after which less than one period would be left fades out and counts an underrun,
  and playing waits for the pre-buffer again;
- the generation thread (``bridge.engine``): it asks for a block when less than the pre-buffer is buffered (polled
  every 2 ms: on average 1 ms late), the block arrives ``gen_ms`` later, and the real :class:`AdaptivePrebuffer`
  (on the simulated clock) judges its arrival, only once the buffer has been full since the last underrun;
- the soak's knobs (``bench/soak.py`` turns one every 0.3 s), kept on the blocks that read them: a block whose
  controls differ from the one before re-samples, so its time is one of the slow ones. The knob was turned at a
  random moment after the block before was asked for, and sounds when its block's first sample plays: arrival +
  what was buffered ahead of it (the soak's "control-to-sounding").

The replay of the policy the soak ran with is printed first, beside the soak's own numbers when given, as a check of
the simulation. What it cannot know: a policy that asks for blocks at other moments would see other JACK xruns and
other thread timings; so a policy chosen here still needs its own soak.

    .venv/bin/python bench/prebuffer_replay.py runs/soak/blocks.jsonl
    .venv/bin/python bench/prebuffer_replay.py blocks.jsonl --policy "fast:calm=10" --policy "tight:margin=0"
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge.prebuffer import CALM_SECONDS, GROW, SHRINK, AdaptivePrebuffer, parse_policy  # noqa: E402
from generator.core.contract import SAMPLE_RATE  # noqa: E402

POLICIES = {  # name: AdaptivePrebuffer keyword arguments (the first is the shipped policy)
    "shipped": {},
    "calm 15 s": {"calm_seconds": 15.0},
    "calm 10 s": {"calm_seconds": 10.0},
    "margin 5 ms": {"margin_fraction": 0.0},
    "margin 5 ms, calm 15 s": {"margin_fraction": 0.0, "calm_seconds": 15.0},
    "x1.25, calm 10 s": {"grow": 1.25, "calm_seconds": 10.0},
    "fixed": {"grow": 1.0},
}


def parse_named_policy(text: str) -> tuple[str, dict]:
    """``name:grow=1.5,calm=15`` -> (name, AdaptivePrebuffer keyword arguments), as the daemon's --prebuffer-adapt."""
    name, _, spec = text.partition(":")
    try:
        return name, parse_policy(spec)
    except ValueError as err:
        raise SystemExit(f"--policy: {err}") from None


def replay(gen_ms: np.ndarray, changed: np.ndarray, floor_s: float, cap_s: float, block: int, period: int,
           policy: dict, skip_s: float = 60.0) -> dict:
    """Simulate the stream over the block times ``gen_ms`` (see the module docstring); returns its numbers."""
    now = 0.0
    pb = AdaptivePrebuffer(floor_s, cap_s, clock=lambda: now, **policy)
    period_s, poll_s = period / SAMPLE_RATE, 0.001
    avail, primed, filled = 0, False, False
    growths = 0
    underruns: list[float] = []  # when each came
    events: list = [(0.0, 0, "jack")]  # (time, order, kind)
    busy = False
    i = 0
    requests: list[float] = []  # when each block read its controls
    sounds: list[float] = []  # when its first sample plays
    pb_time: dict[int, float] = {}  # pre-buffer (frames) -> seconds spent there
    last_t, last_pb = 0.0, pb.frames

    def target() -> int:  # what playing waits for, and what the generation thread keeps (bridge.engine._target)
        return max(pb.frames, 3 * period)

    def request(t: float) -> None:
        nonlocal busy, i
        if busy or i >= len(gen_ms):
            return
        busy = True
        requests.append(t)
        heapq.heappush(events, (t + gen_ms[i] / 1000.0, 1, "block"))
        i += 1

    request(0.0)
    while events:
        now, _, kind = heapq.heappop(events)
        pb_time[last_pb] = pb_time.get(last_pb, 0.0) + (now - last_t) * (last_t >= skip_s)
        last_t = now
        if kind == "jack":
            if primed:
                avail = max(avail - period, 0)  # less than a period: what is there plays, then silence
                if avail < period:  # the next period would run dry: fade out, wait for the pre-buffer again
                    underruns.append(now)
                    primed = filled = False
                    pb.near_miss("underrun")
            elif avail >= target():
                primed = True
            if i < len(gen_ms) or busy:
                heapq.heappush(events, (now + period_s, 0, "jack"))
            if not busy and avail < target():
                request(now + poll_s)
        else:  # a block arrives
            busy = False
            if filled:
                before = pb.frames
                pb.check_arrival(avail, block, period)
                growths += pb.frames > before
            sounds.append(now + avail / SAMPLE_RATE)
            avail += block
            if avail >= target():
                filled = True
            else:
                request(now)
        last_pb = pb.frames
    # knobs: the soak's own, kept on the blocks that read them (a block whose controls differ from the one
    # before re-samples, so it is one of the slow ones): each was turned at a random moment after the block
    # before it was asked for
    req = np.array(requests)
    snd = np.array(sounds[:len(req)])
    n = len(snd)
    knob_blocks = np.flatnonzero(changed[1:n]) + 1
    knob_blocks = knob_blocks[req[knob_blocks - 1] >= skip_s]
    rng = np.random.default_rng(0)
    turned = req[knob_blocks - 1] + rng.uniform(0, 1, knob_blocks.size) * (req[knob_blocks] - req[knob_blocks - 1])
    lat = (snd[knob_blocks] - turned) * 1000.0
    total = sum(pb_time.values()) or 1.0
    above = sum(s for f, s in pb_time.items() if f > pb.floor) / total
    return {"minutes": (now - skip_s) / 60, "underruns": len(underruns), "growths": growths,
            "above_floor": above, "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
            "max": float(lat.max()), "underrun_times": underruns}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("block_log", type=Path, help="a daemon's --block-log (JSON lines), e.g. from bench/soak.py")
    ap.add_argument("--period", type=int, default=256, help="the JACK period the soak ran with (frames)")
    ap.add_argument("--cap", type=float, default=1.0, help="the pre-buffer's cap (seconds)")
    ap.add_argument("--policy", action="append", default=[],
                    help="name:grow=X,shrink=X,calm=SECONDS,margin=FRACTION (repeatable; default: a built-in set)")
    ap.add_argument("--floor", type=float, nargs="*", default=[],
                    help="replay with these pre-buffer floors (seconds) instead of the soak's")
    ap.add_argument("--soak", default="", help="the soak's own control-to-sounding 'p50/p99', printed beside")
    a = ap.parse_args()
    blocks = [json.loads(line) for line in a.block_log.read_text().splitlines() if line.strip()]
    gen = np.array([b["gen_ms"] for b in blocks])
    keys = [json.dumps({k: v for k, v in b["controls"].items() if k != "transport"}, sort_keys=True) for b in blocks]
    changed = np.array([False] + [a != b for a, b in zip(keys, keys[1:])])
    floor_s = min(b["prebuffer_ms"] for b in blocks) / 1000.0
    block = blocks[0]["frames"] * 1920
    policies = dict(parse_named_policy(p) for p in a.policy) if a.policy else POLICIES
    print(f"{a.block_log}: {len(blocks)} blocks of {block / 48:.0f} ms, floor {floor_s * 1000:.0f} ms, JACK period "
          f"{a.period}; block time p50 {np.percentile(gen, 50):.1f} p99 {np.percentile(gen, 99):.1f} p99.9 "
          f"{np.percentile(gen, 99.9):.1f} max {gen.max():.1f} ms; shipped policy x{GROW}, -{(1 - SHRINK) * 100:.0f} % "
          f"per calm {CALM_SECONDS:.0f} s, margin max(5 ms, 1/8)")
    if a.soak:
        print(f"the soak itself: control-to-sounding p50/p99 {a.soak} ms")
    print(f"{'policy':26s} {'min':>5s} {'underruns':>9s} {'growths':>7s} {'>floor':>7s} {'p50':>5s} {'p99':>5s} "
          f"{'max':>5s}  (control-to-sounding, ms)")
    for (name, kwargs), floor in ((p, f) for f in (a.floor or [floor_s]) for p in policies.items()):
        r = replay(gen, changed, floor, a.cap, block, a.period, kwargs)
        name = name if floor == floor_s else f"{name}, floor {floor * 1000:.0f}"
        print(f"{name:26s} {r['minutes']:5.1f} {r['underruns']:9d} {r['growths']:7d} {r['above_floor'] * 100:6.0f}% "
              f"{r['p50']:5.0f} {r['p99']:5.0f} {r['max']:5.0f}"
              + (f"  underruns at {', '.join(f'{t:.0f}' for t in r['underrun_times'][:6])} s" if r["underruns"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
