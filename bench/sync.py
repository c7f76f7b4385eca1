"""Sync benchmark (issue 17): how exactly the notes on ``jamgen:midi_out`` fall on the studio's grid.

For each sync source, a private ``jackd -d dummy``, the daemon (``--sync jack`` / ``--sync midi``, default model),
the studio's clock as a separate JACK client (``tests/sync_peer.py``: the timebase master at 100 BPM, then 140
BPM; or MIDI clock at 90 BPM with +-2 ms jitter) and a MIDI recorder (``tests/jack_midi_recorder.py``). Prints per
source: the onset error against the master's grid (the groove's 12 ticks per beat; p50/p99/max ms, the first 30 ms
of a run left out), notes on bar downbeats, the time from the transport's start to the first note, and for the
tempo change the settling time in beats (from the change to the last note more than 1 ms off the new grid).
``--load`` runs a busy loop on the other core the whole time.

    .venv/bin/python bench/sync.py [--sources jack midi] [--seconds 20] [--load] [--period 1024] [--model groove]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, private_jackd, stop_counts  # noqa: E402

GRID = 12
SETTLE_S = 0.03


def _grid_ms(beat: float, bpm: float) -> float:
    g = beat * GRID
    return abs(g - round(g)) / GRID * 60000.0 / bpm


def _run(source: str, seconds: float, period: int, model: str, tmp: Path) -> tuple[dict, list, str]:
    jackd, env = private_jackd(f"jgsync{source}", period)
    env["JAMGEN_SOUNDFONT"] = "/usr/share/sounds/sf2/TimGM6mb.sf2"
    log_path = tmp / f"{source}.log"
    daemon = subprocess.Popen([sys.executable, "-m", "bridge.cli", "run", "--model", model, "--no-osc", "--sync",
                               source, "--prompt", "funk drums and bass:1"], cwd=ROOT, env=env,
                              stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    if source == "jack":
        change = seconds / 2
        script = f"1:start {change:.1f}:bpm=140 {seconds - 0.5:.1f}:stop {seconds:.1f}:end"
        peer_args = ["--mode", "timebase", "--bpm", "100", "--script", script]
    else:
        peer_args = ["--mode", "clock", "--bpm", "90", "--jitter-ms", "2",
                     "--script", f"1:start {seconds - 0.5:.1f}:stop {seconds:.1f}:end"]
    name = env["JACK_DEFAULT_SERVER"]
    rec = subprocess.Popen([sys.executable, "-m", "tests.jack_midi_recorder", "--server", name, "--seconds",
                            str(seconds + 0.5), "--wait", "180", "jamgen:midi_out"], cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peer = subprocess.Popen([sys.executable, "-m", "tests.sync_peer", "--server", name, "--wait", "180", *peer_args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        result = json.loads(peer.communicate(timeout=seconds + 240)[0])
        events = json.loads(rec.communicate(timeout=60)[0])["events"]
    finally:
        daemon.terminate()
        daemon.wait(20)
        jackd.terminate()
        jackd.wait(10)
    return result, events, log_path.read_text()


def _report(source: str, result: dict, events: list, log: str) -> None:
    rate = result["rate"]
    ons = [t for t, e in events if e[0] & 0xF0 == 0x90 and e[2] > 0]
    if source == "jack":
        marks = result["marks"]
        start, offset = [(m[1], m[2] - m[1]) for m in marks if m[0] == "rolling"][0]
        stop = [m[1] for m in marks if m[0] == "stopped"][-1]
        pieces = result["pieces"]

        def beat_at(frame):
            piece = [p for p in pieces if p[0] <= frame][-1]
            return piece[1] + (frame - piece[0]) / rate * piece[2] / 60.0, piece[2]

        notes = [(t, *beat_at(t + offset)) for t in ons if start <= t < stop]
        change = pieces[1][1] if len(pieces) > 1 else float("inf")
        asked = [m[1] for m in marks if m[0] == "requested"]
        waited = f"the transport waited {(start - asked[0]) / rate * 1000:.0f} ms for jamgen (slow-sync); " if asked else ""
    else:
        start = [m[1] for m in result["marks"] if m[0] == "start"][0]
        stop = [m[1] for m in result["marks"] if m[0] == "stop"][-1]
        interval = result["interval"]
        bpm = rate * 60.0 / (interval * 24)
        notes = [(t, (t - start) / (interval * 24), bpm) for t in ons if start <= t < stop]
        change = float("inf")
        waited = ""
    if not notes:
        print(f"{source}: no notes\n{log}")
        return
    first = notes[0][0]
    settled = [(b, bpm) for t, b, bpm in notes if t - first > SETTLE_S * rate]
    errors = np.array([_grid_ms(b, bpm) for b, bpm in settled])
    off = [b for b, bpm in settled if b >= change and _grid_ms(b, bpm) > 1.0]
    settle = f", tempo change settled in {max(off) - change:.2f} beats" if off else (
        ", tempo change settled at once" if change != float("inf") else "")
    downbeats = sum(1 for b, _ in settled if abs(b / 4 - round(b / 4)) * 4 <= 0.05)
    underruns, xruns = stop_counts(log) if "stopping:" in log else (-1, -1)
    print(f"{source}: {len(errors)} notes, onset error p50 {np.percentile(errors, 50):.2f} ms, "
          f"p99 {np.percentile(errors, 99):.2f} ms, max {errors.max():.2f} ms; {downbeats} on bar downbeats; "
          f"{waited}first note {(first - start) / rate * 1000:.0f} ms after the start{settle}; "
          f"underruns {underruns}, xruns {xruns}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sources", nargs="+", default=["jack", "midi"], choices=["jack", "midi"])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--period", type=int, default=1024)
    p.add_argument("--model", default="groove")
    p.add_argument("--load", action="store_true", help="keep a busy-loop process running the whole time")
    a = p.parse_args()
    load = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if a.load else None
    print(f"period {a.period}, model {a.model}, {'a busy loop on the other core' if a.load else 'no other load'}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for source in a.sources:
                _report(source, *_run(source, a.seconds, a.period, a.model, Path(tmp)))
    finally:
        if load is not None:
            load.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
