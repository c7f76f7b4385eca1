"""Playing in time with the studio, with real processes and a real JACK server (issue 17).

A separate JACK client (tests/sync_peer.py) is the studio's clock: the JACK timebase master (100 BPM, then
140 BPM; stop; start), a plain transport with jamgen itself as the timebase master (``--timebase-master``), or a
MIDI clock at 90 BPM with +-2 ms jitter. The daemon runs the groove model with
``--sync jack`` / ``--sync midi``; another client (tests/jack_midi_recorder.py) records ``jamgen:midi_out``
with JACK frame times. What must hold:

- the note-ons fall on the master's grid (the groove's 12 ticks per beat) within one JACK period (MIDI clock:
  two); after a tempo change, from one beat on;
- bar 1 aligned: the bar lines of the clock the daemon hands the generator are the master's, checked exactly with a
  metronome generator that clicks high on each bar's first beat (the groove keeps its bars on that clock: checked
  in process, tests/test_groove_lock.py, since no rule of its music marks a bar line reliably enough to test here);
- transport stop: no note-on later than 100 ms after it, and every note-on paired by then; start: jamgen is a
  slow-sync client, so the transport rolls once its pre-buffer is ready and its first sample plays on the first
  rolling frame: the first note within one beat of it, the first click on the first beat;
- ``--sync link`` without the extra installed: one line naming the extra.

The groove joins the master's bar at the first block of a sync (generator/groove/lock.py), so notes of that block
that were due before its first sample play at it: the first 30 ms of each run are not held to the grid.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, TONE_MODEL
from tests.tone_generator import DOWNBEAT

ENV = {"JAMGEN_SOUNDFONT": "/usr/share/sounds/sf2/TimGM6mb.sf2"}
MODEL = "groove"
METRONOME = "python:tests.tone_generator:metronome_factory"
PROMPT = ("--prompt", "funk drums and bass:1")
GRID = 12  # groove ticks per quarter note
SETTLE_MS = 30.0  # the first block of a run re-phases (see the module docstring)


def _run(server, *args, seconds: float) -> tuple[subprocess.Popen, subprocess.Popen]:
    rec = subprocess.Popen([sys.executable, "-m", "tests.jack_midi_recorder", "--server", server.name,
                            "--seconds", str(seconds), "--wait", "120", "jamgen:midi_out"],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=server.env())
    peer = subprocess.Popen([sys.executable, "-m", "tests.sync_peer", "--server", server.name, *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=server.env())
    return rec, peer


def _collect(rec, peer) -> tuple[dict, list]:
    out, err = peer.communicate(timeout=180)
    assert peer.returncode == 0, err
    rout, rerr = rec.communicate(timeout=180)
    assert rec.returncode == 0, rerr
    return json.loads(out), json.loads(rout)["events"]


def _grid_error_ms(beat: float, bpm: float) -> float:
    g = beat * GRID
    return abs(g - round(g)) / GRID * 60000.0 / bpm


def _note_ons(events):
    return [(t, e) for t, e in events if e[0] & 0xF0 == 0x90 and e[2] > 0]


def _sounding_at(events, until: int) -> dict:
    sounding: dict = {}
    for t, e in events:
        if t > until:
            break
        key = (e[0] & 0x0F, e[1])
        if e[0] & 0xF0 == 0x90 and e[2] > 0:
            sounding[key] = t
        elif e[0] & 0xF0 in (0x80, 0x90):
            sounding.pop(key, None)
    return sounding


def _check_grid(label, beats_bpms, tolerance_ms):
    errors = np.array([_grid_error_ms(b, bpm) for b, bpm in beats_bpms])
    assert len(errors) >= 10, f"{label}: only {len(errors)} notes"
    p50, worst = float(np.percentile(errors, 50)), float(errors.max())
    print(f"{label}: {len(errors)} notes, grid error p50 {p50:.2f} ms, max {worst:.2f} ms")
    assert worst <= tolerance_ms, f"{label}: a note {worst:.1f} ms off the grid (limit {tolerance_ms:.1f})"
    assert p50 <= 2.0, f"{label}: median {p50:.1f} ms off the grid: not locked"


def test_jack_transport_timebase_tempo_change_stop_start(daemon_factory, jackd):
    d = daemon_factory("--sync", "jack", *PROMPT, model=MODEL, env=ENV)
    rec, peer = _run(jackd, "--mode", "timebase", "--bpm", "100",
                     "--script", "1:start 10:bpm=140 15:stop 16.5:start 22.5:stop 23.5:end", seconds=24.0)
    result, events = _collect(rec, peer)
    log = d.log()
    rate, period = result["rate"], result["period"]
    pieces = result["pieces"]
    marks = result["marks"]
    rolls = [(m[1], m[2] - m[1]) for m in marks if m[0] == "rolling"]
    stops = [m[1] for m in marks if m[0] == "stopped"][1:]  # the first is the peer's initial stop
    assert len(rolls) == 2 and len(stops) == 2, (marks, log)

    def beat_at(frame):
        piece = [p for p in pieces if p[0] <= frame][-1]
        return piece[1] + (frame - piece[0]) / rate * piece[2] / 60.0, piece[2]

    period_ms = period * 1000.0 / rate
    ons = _note_ons(events)
    change_beat = pieces[1][1]
    late_start: list[str] = []
    for run, ((start, offset), stop) in enumerate(zip(rolls, stops)):
        notes = [(t, *beat_at(t + offset), e) for t, e in ons if start <= t < stop]
        assert notes, f"no notes in run {run}:\n{log}"
        first = notes[0][0]
        # start: the first note within one beat of the transport's start
        beat_frames = 60.0 / notes[0][2] * rate
        print(f"run {run}: transport started at beat {beat_at(start + offset)[0]:.2f}, first note "
              f"{(first - start) / rate * 1000:.0f} ms later at beat {notes[0][1]:.2f}")
        if first - start > beat_frames:  # checked last
            late_start.append(f"run {run}: first note {(first - start) / rate:.3f} s after the start at beat "
                              f"{beat_at(start + offset)[0]:.2f}, on beat {notes[0][1]:.2f}")
        settled = [(b, bpm, e) for t, b, bpm, e in notes if t - first > SETTLE_MS / 1000 * rate]
        before = [(b, bpm, e) for b, bpm, e in settled if b < change_beat]
        after = [(b, bpm, e) for b, bpm, e in settled if b >= change_beat + 1.0]
        if run == 0:
            _check_grid("jack 100 BPM", [(b, bpm) for b, bpm, _e in before], period_ms)
        _check_grid(f"jack 140 BPM (run {run})", [(b, bpm) for b, bpm, _e in after], period_ms)
        # stop: nothing new after 100 ms, nothing left sounding
        late = [(t - stop) / rate for t, _e in ons if stop + 0.1 * rate < t < (rolls[run + 1][0] if run == 0 else 1 << 40)]
        assert not late, f"run {run}: note-ons {late} s after the transport stopped"
        assert not _sounding_at(events, stop + int(0.1 * rate)), f"run {run}: notes left sounding after the stop"
    assert "sync: jack rolling 140.0 BPM 4/4" in log and "jack stopped" in log, log
    # jamgen's first sample plays on the transport's first rolling frame (slow-sync); a fresh stream joins the
    # master's bar where it is, with its first note within a beat of that (generator/groove/lock.py)
    assert not late_start, "; ".join(late_start)


def test_bar_lines_follow_the_master_exactly_across_a_tempo_change_and_a_restart_mid_bar(daemon_factory, jackd):
    """The daemon's clock path, bar by bar: a metronome generator (tests/tone_generator.py) clicks every beat of the
    clock it is given, a high click on each bar's first; every click must be on the master's beat, high exactly on
    the master's bar lines, none missing, from the transport's first rolling frame (jamgen is a slow-sync client:
    the start waits for its pre-buffer) through 100 -> 140 BPM, a stop and a restart in the middle of a bar."""
    d = daemon_factory("--sync", "jack", model=METRONOME)
    rec, peer = _run(jackd, "--mode", "timebase", "--bpm", "100",
                     "--script", "1:start 5:bpm=140 8:stop 9:start 12.8:stop 13.5:end", seconds=14.0)
    result, events = _collect(rec, peer)
    rate, period, pieces, marks = result["rate"], result["period"], result["pieces"], result["marks"]
    rolls = [(m[1], m[2] - m[1]) for m in marks if m[0] == "rolling"]
    stops = [m[1] for m in marks if m[0] == "stopped"][1:]
    requests = [m[1] for m in marks if m[0] == "requested"]
    assert len(rolls) == 2 and len(stops) == 2 and len(requests) == 2, marks

    def beat_at(frame):
        piece = [p for p in pieces if p[0] <= frame][-1]
        return piece[1] + (frame - piece[0]) / rate * piece[2] / 60.0, piece[2]

    clicks = [(t, e[1]) for t, e in _note_ons(events)]
    change = pieces[1][1]  # the tempo change is followed within one beat (blocks already buffered keep 100 BPM)
    for run, ((start, offset), stop, asked) in enumerate(zip(rolls, stops, requests)):
        first_beat = beat_at(start + offset)[0]
        mine = [(t, *beat_at(t + offset), pitch) for t, pitch in clicks if start <= t < stop]
        mine = [c for c in mine if not change <= c[1] < change + 1.0]
        print(f"run {run}: the transport rolled {(start - asked) / rate * 1000:.0f} ms after the start was asked, at "
              f"beat {first_beat:.2f}; {len(mine)} clicks, first at beat {mine[0][1]:.3f}" if mine else f"run {run}")
        assert mine, d.log()
        errors = [abs(b - round(b)) * 60000.0 / bpm for _t, b, bpm, _p in mine]
        assert max(errors) <= period * 1000.0 / rate, f"run {run}: a click {max(errors):.2f} ms off the beat"
        wrong = [(round(b), p) for _t, b, _bpm, p in mine if (p == DOWNBEAT) != (round(b) % 4 == 0)]
        assert not wrong, f"run {run}: clicks not on the master's bar lines: {wrong}"
        heard = sorted({round(b) for _t, b, _bpm, _p in mine})
        assert heard[0] == int(np.ceil(first_beat - 1e-6)), f"run {run}: the first beat after the start was not heard"
        missing = sorted(set(range(heard[0], heard[-1] + 1)) - set(heard) - {b for b in range(
            int(np.ceil(change)), int(np.ceil(change + 1.0)))})
        assert not missing, f"run {run}: beats {missing} not clicked"
        assert len(heard) >= 8
    assert stops[0] and rolls[1][0] > stops[0]


def test_jamgen_as_timebase_master_plays_on_its_own_bbt(daemon_factory, jackd):
    """--timebase-master: jamgen publishes its bpm as BBT; with --sync jack it follows it like any master's."""
    d = daemon_factory("--sync", "jack", "--timebase-master", "--set", "bpm=120", *PROMPT, model=MODEL, env=ENV)
    rec, peer = _run(jackd, "--mode", "transport", "--script", "1:start 11:stop 12:end", seconds=12.5)
    result, events = _collect(rec, peer)
    rate, period = result["rate"], result["period"]
    start, offset = [(m[1], m[2] - m[1]) for m in result["marks"] if m[0] == "rolling"][0]
    stop = [m[1] for m in result["marks"] if m[0] == "stopped"][-1]
    ons = [(t, e) for t, e in _note_ons(events) if start <= t < stop]
    assert ons, d.log()
    notes = [((t + offset) / rate * 2.0, e) for t, e in ons if t - ons[0][0] > SETTLE_MS / 1000 * rate]
    _check_grid("jamgen's own BBT at 120 BPM", [(b, 120.0) for b, _e in notes], period * 1000.0 / rate)
    assert "sync: jack rolling 120.0 BPM 4/4" in d.log(), d.log()


def test_midi_clock_with_jitter(daemon_factory, jackd):
    d = daemon_factory("--sync", "midi", *PROMPT, model=MODEL, env=ENV)
    rec, peer = _run(jackd, "--mode", "clock", "--bpm", "90", "--jitter-ms", "2",
                     "--script", "1:start 13:stop 14:end", seconds=14.5)
    result, events = _collect(rec, peer)
    rate, period, interval = result["rate"], result["period"], result["interval"]
    start = [m[1] for m in result["marks"] if m[0] == "start"][0]
    stop = [m[1] for m in result["marks"] if m[0] == "stop"][0]
    bpm = rate * 60.0 / (interval * 24)
    ons = [(t, e) for t, e in _note_ons(events) if start <= t < stop]
    assert ons, d.log()
    assert ons[0][0] - start <= 60.0 / bpm * rate, "the first note came later than one beat after the start"
    notes = [((t - start) / (interval * 24), e) for t, e in ons if t - ons[0][0] > SETTLE_MS / 1000 * rate]
    _check_grid("midi clock 90 BPM +-2 ms", [(b, bpm) for b, _e in notes], 2 * period * 1000.0 / rate)
    late = [t for t, _e in _note_ons(events) if t > stop + 0.1 * rate]
    assert not late, "note-ons after the MIDI stop"
    # the tempo estimate is steady under the jitter: 99 % of the blocks after the first beat within 0.2 BPM, and
    # none off by 3 %. The peer is a Python process on the same 2 cores: when the machine stalls it, a clock comes
    # later than its +-2 ms (CI once saw one block of 259 at 92.3 BPM), which is the sender's hiccup, not the fit's.
    tempos = [b["controls"]["clock"]["bpm"] for b in d.blocks() if b["controls"].get("clock")]
    steady = np.array(tempos[len(tempos) // 8:])
    error = np.abs(steady - 90.0)
    print(f"midi clock tempo estimate: {steady.min():.3f}..{steady.max():.3f} BPM over {len(steady)} blocks")
    assert len(steady) > 20 and np.percentile(error, 99) <= 0.2 and error.max() <= 2.7, (steady.min(), steady.max())
    assert "sync: midi rolling" in d.log() and "sync: midi stopped" in d.log(), d.log()


def test_link_session(daemon_factory, jackd):
    """--sync link with the extra installed: jamgen joins another Link peer's tempo and bar phase."""
    pytest.importorskip("aalink")
    d = daemon_factory("--sync", "link", *PROMPT, model=MODEL, env=ENV)
    rec, peer = _run(jackd, "--mode", "link", "--bpm", "128", "--script", "0.5:a 4:a 8:a 9:end", seconds=9.0)
    result, events = _collect(rec, peer)
    rate, period = result["rate"], result["period"]
    anchors = result["anchors"]  # [frame time, the peer's beat, tempo, peers]
    assert anchors[-1][3] >= 1, anchors

    def beat_at(frame):  # from the nearest anchor (the dummy driver's frames drift a little from Link's clock)
        f0, b0, tempo, _ = min(anchors, key=lambda a: abs(frame - a[0]))
        return b0 + ((frame - f0 + 2**31) % 2**32 - 2**31) / rate * tempo / 60.0, tempo

    ons = [(t, e) for t, e in _note_ons(events) if t > anchors[0][0] + 2 * rate]  # jamgen has joined by then
    beats = [(beat_at(t), e) for t, e in ons]
    _check_grid("link 128 BPM", [b for b, _e in beats], 2 * period * 1000.0 / rate)
    assert "sync: link rolling" in d.log(), d.log()


def test_sync_link_without_the_extra_is_one_line(tmp_path):
    try:
        import aalink  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("aalink is installed here")
    proc = subprocess.run([sys.executable, "-m", "bridge.cli", "run", "--sync", "link", "--model", TONE_MODEL,
                           "--no-osc"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 1
    assert len(lines) == 1 and "pip install 'jamgen[link]'" in lines[0], lines


@pytest.mark.parametrize("model", [TONE_MODEL])
def test_model_without_clock_says_so(model, daemon_factory):
    d = daemon_factory("--sync", "jack", model=model)
    d.wait_for_log("plays its own time: --sync jack only starts and stops it")
