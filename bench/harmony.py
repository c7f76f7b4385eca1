"""How well the groove follows chords held on a keyboard (issue 17's harmony-follow rate), with real processes.

A private ``jackd -d dummy``, the daemon on ``groove`` with a mapping that turns notes held on channel 1 into the
``harmony`` control, a separate JACK MIDI sender (``tests/midi_sender.py``) holding a progression whose scales are
far apart (C, A, E-flat, F-sharp minor: each change moves three or more pitch classes), and two recorders
(``tests/jack_midi_recorder.py``) on ``jamgen:midi_out`` and on the sender's port, so the notes played and the
chords held share JACK's frame clock. For each prompt it prints:

- the share of melodic note-ons (every channel but the drums') whose pitch class is in the held chord's scale,
  from one beat after each change on, against the same share of the prompt's own notes before any chord (the
  baseline: what following nothing scores);
- the follow time: after each change, how late the last note that belongs to the old scale but not the new one
  came (p50 / max over the changes; 0 when none did); the issue asks for a change within a beat.

"The chord's scale" is the seven-note scale on the chord's lowest note that holds the chord (Ionian over a major
third, Dorian over a minor third), the rule of ``tests/test_harmony_e2e.py``.

    .venv/bin/python bench/harmony.py [--prompts "bossa nova with nylon guitar" ...] [--seconds 6] [--load]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, private_jackd, stop_counts  # noqa: E402

sys.path.insert(0, str(ROOT))
from tests.test_harmony_e2e import chord_scale  # noqa: E402

PROGRESSION = (("C", (48, 60, 64, 67)), ("A", (45, 61, 64, 69)), ("Eb", (51, 63, 67, 70)),
               ("F#m", (54, 61, 66, 69)))
PROMPTS = ("bossa nova with nylon guitar and brushed drums", "funk band with drums, bass and electric piano",
           "slow jazz ballad with piano and upright bass")
DRUMS = 9  # MIDI channel 10
MAPPING = """\
version: 1
midi: {inputs: ["jg-sender*"]}
mappings:
  - {source: {midi: {notes: [36, 84], channel: 1}}, target: harmony}
"""


def _recorder(env: dict, source: str, seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.jack_midi_recorder", "--server", env["JACK_DEFAULT_SERVER"],
                             "--seconds", str(seconds), "--wait", "180", source], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _play(prompt: str, seconds: float, period: int, bpm: float, tmp: Path) -> tuple[list, list, str]:
    """Run one prompt through the progression; returns (notes played, chord events, the daemon's log)."""
    jackd, env = private_jackd(f"harmony{int(time.time() * 1000) % 100000}", period)
    mapping = tmp / "chords.yaml"
    mapping.write_text(MAPPING)
    log_path = tmp / "daemon.log"
    sender = subprocess.Popen([sys.executable, "-m", "tests.midi_sender", "--server", env["JACK_DEFAULT_SERVER"],
                               "--client", "jg-sender", "--per-cycle", "64"], cwd=ROOT, env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    daemon = subprocess.Popen([sys.executable, "-m", "bridge.cli", "run", "--model", "groove", "--no-osc",
                               "--mapping", str(mapping), "--prompt", f"{prompt}:1", "--set", f"bpm={bpm:g}"], cwd=ROOT, env=env,
                              stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    total = seconds * (len(PROGRESSION) + 1) + 1.0
    try:
        assert sender.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 180
        while "generator: fresh context" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.0)  # the first blocks, and the daemon connecting to the sender
        played, held = _recorder(env, "jamgen:midi_out", total), _recorder(env, "jg-sender:out", total)
        time.sleep(1.0 + seconds)  # the recorders connect; then the prompt alone (the baseline)
        before: tuple[int, ...] = ()
        for _name, chord in PROGRESSION:
            lines = [f"80 {n:02x} 00" for n in before] + [f"90 {n:02x} 64" for n in chord]  # a legato change
            sender.stdin.write("".join(line + "\n" for line in lines))
            sender.stdin.flush()
            before = chord
            time.sleep(seconds)
        notes = json.loads(played.communicate(timeout=total + 60)[0])["events"]
        chords = json.loads(held.communicate(timeout=60)[0])["events"]
        sender.stdin.write("quit\n")
        sender.stdin.flush()
    finally:
        daemon.terminate()
        daemon.wait(30)
        sender.kill()
        jackd.terminate()
        jackd.wait(10)
    return notes, chords, log_path.read_text()


def _changes(chords: list) -> list[tuple[int, tuple[int, ...]]]:
    """(frame, the chord held from there) for each change: the first note-on of a new chord."""
    out, held, last = [], set(), None
    for t, e in chords:
        if e[0] & 0xF0 == 0x90 and e[2] > 0:
            held.add(e[1])
        elif e[0] & 0xF0 in (0x80, 0x90):
            held.discard(e[1])
        chord = tuple(sorted(held))
        if len(chord) >= 3 and chord != last:
            if out and t - out[-1][0] < 480:  # the same legato change, one note at a time
                out[-1] = (out[-1][0], chord)
            else:
                out.append((t, chord))
            last = chord
    return out


def _report(prompt: str, notes: list, chords: list, bpm: float, seconds: float, rate: int = 48000) -> dict:
    melodic = [(t, e[1] % 12) for t, e in notes if e[0] & 0xF0 == 0x90 and e[2] > 0 and e[0] & 0x0F != DRUMS]
    changes = _changes(chords)
    beat = rate * 60.0 / bpm
    rows, follow = [], []
    first = changes[0][0] if changes else None
    baseline = [pc for t, pc in melodic if first is None or t < first]
    for k, (frame, chord) in enumerate(changes):
        end = changes[k + 1][0] if k + 1 < len(changes) else frame + int(seconds * rate)
        scale = chord_scale(chord)
        after = [pc for t, pc in melodic if frame + beat <= t < end]
        base = sum(pc in scale for pc in baseline) / max(1, len(baseline))
        rows.append((sum(pc in scale for pc in after) / max(1, len(after)), len(after), base))
        if k:
            old = chord_scale(changes[k - 1][1])
            stale = [t - frame for t, pc in melodic if frame <= t < end and pc in old - scale]
            follow.append(max(stale) / rate if stale else 0.0)
    rates = np.array([r[0] for r in rows]) if rows else np.zeros(1)
    bases = np.array([r[2] for r in rows]) if rows else np.zeros(1)
    follow_arr = np.array(follow) if follow else np.zeros(1)
    print(f"{prompt!r} ({bpm:.0f} BPM, beat {60 / bpm * 1000:.0f} ms): in the held chord's scale "
          f"{rates.mean():.0%} of {sum(r[1] for r in rows)} melodic notes (per chord "
          f"{', '.join(f'{r[0]:.0%}' for r in rows)}); the prompt's own notes before any chord: {bases.mean():.0%} "
          f"of {len(baseline)}; last old-scale note after a change: p50 {np.median(follow_arr) * 1000:.0f} ms, "
          f"max {follow_arr.max() * 1000:.0f} ms ({len(follow)} changes)", flush=True)
    return {"prompt": prompt, "bpm": bpm, "in_scale": float(rates.mean()), "baseline": float(bases.mean()),
            "per_chord": [r[0] for r in rows], "notes": int(sum(r[1] for r in rows)),
            "follow_p50_s": float(np.median(follow_arr)), "follow_max_s": float(follow_arr.max())}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", nargs="+", default=list(PROMPTS))
    p.add_argument("--seconds", type=float, default=6.0, help="how long each chord (and the baseline) is held")
    p.add_argument("--period", type=int, default=1024)
    p.add_argument("--bpm", type=float, default=100.0, help="the tempo (the bpm control), so a beat is known")
    p.add_argument("--load", action="store_true", help="keep a busy-loop process running the whole time")
    p.add_argument("--json", help="also write the numbers here")
    a = p.parse_args()
    load = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if a.load else None
    print(f"period {a.period}, {'a busy loop on the other core' if a.load else 'no other load'}; progression "
          f"{' '.join(name for name, _ in PROGRESSION)}, {a.seconds:.0f} s each")
    results = []
    try:
        for prompt in a.prompts:
            with tempfile.TemporaryDirectory() as tmp:
                notes, chords, log = _play(prompt, a.seconds, a.period, a.bpm, Path(tmp))
                results.append(_report(prompt, notes, chords, a.bpm, a.seconds))
                if "stopping:" in log:
                    underruns, xruns = stop_counts(log)
                    print(f"  underruns {underruns}, xruns {xruns}")
    finally:
        if load is not None:
            load.kill()
    if results:
        print(f"all prompts: in scale {np.mean([r['in_scale'] for r in results]):.0%} (prompt alone "
              f"{np.mean([r['baseline'] for r in results]):.0%}); last old-scale note after a change: max "
              f"{max(r['follow_max_s'] for r in results) * 1000:.0f} ms")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
