"""End-to-end control latency: OSC send -> the change is audible on ``jamgen:out_L`` (issue 16).

Nothing here trusts the daemon's own accounting. A private ``jackd -d dummy`` (48 kHz, period 1024),
the daemon as a subprocess, and a *separate* JACK client process (``tests/jack_timed_recorder.py``)
that records ``jamgen:out_L`` and stamps every period with ``jack_frames_to_time(last_frame_time)``.
JACK's clock is not ``time.monotonic()`` here: on the development VM (jack2 1.9.21) it is
``CLOCK_MONOTONIC_RAW`` (checked to ~25 us), which was 257 ms behind ``CLOCK_MONOTONIC`` and drifts
from it by the NTP slew. So the recorder takes a (``jack_get_time()``, ``time.monotonic()``) pair
every 0.2 s and maps JACK time onto ``time.monotonic()`` with a line fit (residual a few us; with
the tone generator the table's last line prints offset, drift and residual). The OSC sender builds each datagram first and
takes ``time.monotonic()`` just before ``sendto``. A sample's time is when it passed through the
JACK graph (dummy driver: when it was "played"; a real card adds its output latency on top).

Two ways to find when a change became audible:

- **pitch** (the tone generator, ``--model tests.tone_generator:factory``): its pitch is
  220 Hz * 2 ** temperature. Every change goes to a temperature no other change of the run uses (a
  0.04 grid, >= 2.8 % apart), so the new pitch's first half period in the recording (zero
  crossings, sub-sample; refined to the switch point inside the straddling half period) is the
  change's audible time, and a new pitch heard before its send time would be a bug ("early").
- **divergence** (any other model, whose audio does not encode the controls): one daemon run per
  change against a reference run (same seed and settings, no change). The two recordings are
  aligned on the stream (the output is bit-identical for a fixed seed and block size, so a quarter
  second of the run's first sound is found exactly in the reference) and the change's audible time is
  the first sample where they differ by more than ``--eps``. That is what a listener hears: for a
  note model it includes the wait for the next note the change alters. A run that differs from the
  reference before its change was sent, or cannot be aligned, or had an underrun, is counted
  ``unreliable`` and left out of the percentiles, and a change that never diverged within
  ``--window`` s is ``silent``. A null run (no change) must match the reference throughout ("repro");
  if it does not, the model's output is not reproducible on this machine and no number is printed.
  Cycles lost under load (by the recorder: a gap in its frame times; by the daemon: its stream
  resumes a period or more later) are stepped over by re-matching at whole-period shifts. Each change
  costs a daemon start (~10 s), hence 12 changes by default.

Each setting is a ``jamgen run`` configuration: ``low``/``safe`` (``--latency``; where the daemon has
no ``--latency`` yet, ``low`` = ``--block-frames 1 --prebuffer 0.15`` and ``safe`` = the old default),
``F:P`` (``--block-frames F --prebuffer P``) or ``default``. ``--load busy`` adds a busy-loop process
pinned to the last CPU; ``both`` runs each setting without and with it. Underruns are the daemon's
own count from its final status line; "fb-audio" is the median of (time the subscriber got
``/jamgen/sounding/temperature`` with the new value) - (audio time), i.e. how honest the feedback is.

    .venv/bin/python bench/latency.py --model tests.tone_generator:factory --settings low,safe --load both
    .venv/bin/python bench/latency.py --settings 1:0.15,2:0.2,5:0.3 --changes 40 --json lat.json
    .venv/bin/python bench/latency.py --model groove --settings low,safe --changes 12 --window 4
    .venv/bin/python bench/latency.py --model symbolic --settings low --prompt "gentle solo piano"
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import ROOT, private_jackd, stop_counts  # noqa: E402
from tests.jack_timed_recorder import load as load_recording, tone_onsets  # noqa: E402
from tests.processes import stop as stop_process  # noqa: E402

TONE_MODULE = "tests.tone_generator"
FALLBACK = {"low": ["--block-frames", "1", "--prebuffer", "0.15"], "safe": []}  # before --latency existed
SOUNDFONT_ENV = {"JAMGEN_SOUNDFONT": "/usr/share/sounds/sf2/TimGM6mb.sf2"}


def model_spec(model: str) -> str:
    """``tests.tone_generator:factory`` -> ``python:tests.tone_generator:factory``; others unchanged."""
    if ":" in model and "." in model.split(":")[0] and not model.startswith(("python:", "magenta:")):
        return "python:" + model
    return model


def has_latency_option() -> bool:
    out = subprocess.run([sys.executable, "-m", "bridge.cli", "run", "--help"], cwd=ROOT,
                         capture_output=True, text=True).stdout
    return "--latency" in out


def setting_args(setting: str, latency_option: bool) -> list[str]:
    if setting in ("low", "safe"):
        return ["--latency", setting] if latency_option else FALLBACK[setting]
    if setting == "default":
        return []
    frames, prebuffer = setting.split(":")
    return ["--block-frames", str(int(frames)), "--prebuffer", str(float(prebuffer))]


def osc_datagram(address: str, *args) -> bytes:
    b = OscMessageBuilder(address)
    for arg in args:
        b.add_arg(arg, "i" if isinstance(arg, int) else "f")
    return b.build().dgram


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Feedback:
    """Subscribes to the daemon's OSC feedback and stamps every message with ``time.monotonic()``."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.got: list[tuple[float, str, tuple]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except OSError:
                continue
            t = time.monotonic()
            try:
                m = OscMessage(data)
            except Exception:  # noqa: BLE001 - bundles and junk are not ours
                continue
            self.got.append((t, m.address, tuple(m.params)))

    def first(self, address: str, value: float, after: float) -> float | None:
        for t, addr, params in self.got:
            if t >= after and addr == address and params and abs(params[0] - value) < 1e-5:
                return t
        return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        self.sock.close()


class Run:
    """One daemon process with its own timed recorder, OSC sender and feedback listener."""

    def __init__(self, server: str, env: dict, tmp: Path, model: str, args: list[str], tag: str):
        self.tmp, self.server, self.env = tmp, server, env
        self.rec_path = tmp / f"{tag}.npz"
        self.block_log = tmp / f"{tag}.jsonl"
        self.log_path = tmp / f"{tag}.log"
        self.osc_port = free_port()
        self.recorder = subprocess.Popen(
            [sys.executable, "-m", "tests.jack_timed_recorder", "--server", server, "--out", str(self.rec_path),
             "--wait", "300", "jamgen:out_L"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        self._connected = threading.Event()
        self.recorder_err: list[str] = []
        threading.Thread(target=self._watch_recorder, daemon=True).start()
        self._log = open(self.log_path, "w")
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "run", "--model", model, "--jack-server", server,
             "--osc-port", str(self.osc_port), "--block-log", str(self.block_log), "--status-interval", "600", *args],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.feedback = Feedback()
        self.sent: list[tuple[float, float]] = []

    def _watch_recorder(self) -> None:
        for line in self.recorder.stderr:
            if line.startswith("connected"):
                self._connected.set()
                return
            self.recorder_err.append(line)

    def wait_playing(self, timeout: float = 300.0) -> None:
        """Until the recorder is connected to the daemon's ports (which the daemon opens last)."""
        deadline = time.monotonic() + timeout
        while not self._connected.wait(0.1):
            if self.recorder.poll() is not None:
                time.sleep(0.2)
                raise RuntimeError(f"the recorder exited: {self.recorder.stdout.read()[-2000:]} "
                                   f"{''.join(self.recorder_err)[-2000:]}")
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daemon never played:\n{self.log_path.read_text()[-3000:]}")
        self.sock.sendto(osc_datagram("/jamgen/subscribe", self.feedback.port), ("127.0.0.1", self.osc_port))

    def send(self, address: str, value: float) -> float:
        data = osc_datagram(address, float(value))
        t = time.monotonic()
        self.sock.sendto(data, ("127.0.0.1", self.osc_port))
        self.sent.append((t, float(np.float32(value))))
        return t

    def _wait_gone(self, timeout: float = 10.0) -> None:
        """Until the server has dropped the daemon's ports: a dead client's ports linger a moment, and
        the next run's recorder must not find (and fail to connect to) them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ports = subprocess.run(["jack_lsp", "-s", self.server], env=self.env, capture_output=True, text=True)
            if "jamgen:" not in ports.stdout:
                return
            time.sleep(0.05)

    def kill(self) -> None:
        """After an error: end both processes, say nothing."""
        for proc in (self.recorder, self.daemon):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self._log.close()
        self.feedback.close()

    def finish(self) -> dict:
        """Stop the recorder, then the daemon; return what both said (raises if either failed)."""
        self.recorder.terminate()
        out, _ = self.recorder.communicate(timeout=120)
        stop_process(self.daemon, 30)
        self._log.close()
        self.feedback.close()
        self.sock.close()
        self._wait_gone()
        log = self.log_path.read_text()
        try:
            summary = json.loads(out.strip().splitlines()[-1])
            underruns, xruns = stop_counts(log)
        except (IndexError, ValueError):
            raise RuntimeError(f"recorder said {out.strip()[-500:]!r}; daemon log:\n{log[-3000:]}") from None
        if "error" in summary:
            raise RuntimeError(f"recorder: {summary['error']}; daemon log:\n{log[-3000:]}")
        blocks = [json.loads(line) for line in self.block_log.read_text().splitlines() if line.strip()]
        prebuf = [b["prebuffer_ms"] for b in blocks if "prebuffer_ms" in b]
        if not prebuf:
            lines = [l for l in log.splitlines() if "pre-buffer " in l]
            prebuf = [float(lines[-1].split("pre-buffer ")[1].split(" s")[0]) * 1000] if lines else [float("nan")]
        return {"summary": summary, "underruns": underruns, "xruns": xruns,
                "block_ms": blocks[0]["frames"] * 40 if blocks else float("nan"),
                "prebuffer_ms": [min(prebuf), max(prebuf)]}


def start_load(kind: str):
    if kind != "busy":
        return None
    last = max(os.sched_getaffinity(0))
    return subprocess.Popen([sys.executable, "-c", "while True: pass"],
                            preexec_fn=lambda: os.sched_setaffinity(0, {last}))


def tag(setting: str, bar) -> str:
    return f"{setting}_{bar.desc}".replace("/", "_").replace(":", "_")


def stats(ms: list[float]) -> dict:
    if not ms:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    a = np.array(ms)
    return {"n": len(ms), "p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
            "max": float(a.max())}


# --- pitch (the tone generator) -------------------------------------------------------------------
def measure_pitch(server, env, tmp, a, setting, args, bar) -> dict:
    rng = random.Random(a.seed * 7919 + len(setting))
    grid = [round(0.04 * i, 2) for i in range(76)]  # 0..3 (the temperature range), 2.8 % apart in pitch
    values = rng.sample(grid, a.changes + 1)
    run = Run(server, env, tmp, a.model, [*args, "--set", f"seed={a.seed}", "--set", f"temperature={values[0]}",
                                          *sum((["--set", s] for s in a.set), [])], tag(setting, bar))
    try:
        run.wait_playing()
        time.sleep(1.0)
        for v in values[1:]:
            time.sleep(rng.uniform(a.interval[0], a.interval[1]))
            run.send("/jamgen/temperature", v)
            bar.update(1)
        time.sleep(2.0)
    except BaseException:
        run.kill()
        raise
    info = run.finish()
    rec = load_recording(run.rec_path)
    x = rec.audio[:, 0]
    freqs = [220.0 * 2.0 ** float(np.float32(v)) for _, v in run.sent]
    onsets = tone_onsets(x, rec.samplerate, freqs)
    lat, early, missing, fb = [], 0, 0, []
    for (t_send, v), onset in zip(run.sent, onsets):
        if onset is None:
            missing += 1
            continue
        t_audio = float(rec.time_of(onset))
        if t_audio < t_send:
            early += 1
        lat.append((t_audio - t_send) * 1000)
        t_fb = run.feedback.first("/jamgen/sounding/temperature", v, t_send)
        if t_fb is not None:
            fb.append((t_fb - t_audio) * 1000)
    return {**info, "latency_ms": lat, "early": early, "missing": missing, "unreliable": 0, "silent": 0,
            "feedback_minus_audio_ms": fb, "clock": [rec.offset_ms, rec.drift_ppm, rec.residual_us]}


# --- divergence (any model) -----------------------------------------------------------------------
def align(ref: np.ndarray, run: np.ndarray, rate: int, eps: float) -> int | None:
    """The offset d with run[i] == ref[i + d] over a quarter second of the run's first sound, or None.

    Both are on the frame axis (NaN where a recorder missed a cycle). The daemon's output is
    bit-identical for a fixed seed and block size, so the candidates are where the reference holds
    exactly the chunk's loudest sample; each is then checked over the whole chunk."""
    loud = np.flatnonzero(np.abs(np.nan_to_num(run)) > 1e-3)
    if not len(loud):
        return None
    s, length = int(loud[0]), rate // 4
    chunk = run[s: s + length]
    while np.isnan(chunk).any() and s + length < len(run):  # start past any gap
        s += int(np.flatnonzero(np.isnan(chunk))[-1]) + 1
        chunk = run[s: s + length]
    q = int(np.nanargmax(np.abs(chunk)))
    for pos in np.flatnonzero(ref == chunk[q]) - q:
        if pos >= 0 and _same(chunk, ref[pos: pos + len(chunk)], eps):
            return int(pos) - s
    return None


def _same(x: np.ndarray, r: np.ndarray, eps: float) -> bool:
    """Whether two stretches are the same audio: the samples both have agree, at least half of them are
    real, and the stretch has sound in it (silence matches anything)."""
    both = ~np.isnan(x) & ~np.isnan(r)
    return (len(x) == len(r) and both.mean() > 0.5 and np.count_nonzero(np.abs(x[both]) > 1e-3) >= 64
            and np.abs(x[both] - r[both]).max() <= eps)


def first_divergence(x: np.ndarray, ref: np.ndarray, d: int, eps: float, rate: int,
                     period: int = 1024) -> tuple[int | None, int]:
    """The first index i of ``x`` where it differs from ``ref[i + d]``, stepping over glitches.

    On a loaded machine a cycle can be lost on either side: the recorder misses one (a NaN gap on the
    frame axis, skipped as it is) or the daemon does (its stream then resumes a period or more later).
    So at a mismatch, the next few periods are tried against the reference at shifts of whole periods;
    if one matches (the same sound, exactly), the mismatch was such a glitch and the walk goes on
    with the new shift. Returns (index or None, glitches stepped over).
    """
    glitches, start = 0, max(0, -d)
    while True:
        hi = min(len(x), len(ref) - d)
        if start >= hi:
            return None, glitches
        with np.errstate(invalid="ignore"):  # NaN (a gap) is never > eps
            bad = np.flatnonzero(np.abs(x[start:hi] - ref[start + d: hi + d]) > eps)
        if not len(bad):
            return None, glitches
        i = start + int(bad[0])
        resync = None
        for m in range(4):  # skip up to three odd periods
            j = i - i % period + m * period
            for k in sorted(range(-16, 17), key=abs):
                d2 = d + k * period
                length = 4096
                while j + d2 >= 0 and length <= rate:
                    xs, rs = x[j: j + length], ref[j + d2: j + d2 + length]
                    if len(xs) != length or len(rs) != length:
                        break
                    if np.count_nonzero(np.abs(np.nan_to_num(xs)) > 1e-3) >= 64:
                        if _same(xs, rs, eps):
                            resync = (j + length, d2)
                        break
                    length *= 2  # mostly silence: look further for sound to compare
                if resync:
                    break
            if resync:
                break
        if resync is None:
            return i, glitches
        glitches += 1
        start, d = resync


def one_divergence_run(server, env, tmp, a, args, tag, value: float | None, delay: float, bar):
    run = Run(server, env, tmp, a.model, [*args, "--set", f"seed={a.seed}", *sum((["--set", s] for s in a.set), []),
                                          *sum((["--prompt", p] for p in a.prompt), [])], tag)
    try:
        run.wait_playing()
        time.sleep(delay)
        if value is not None:
            run.send(f"/jamgen/{a.control}", value)
        time.sleep(a.window)
    except BaseException:
        run.kill()
        raise
    info = run.finish()
    bar.update(1)
    return run, info


def measure_divergence(server, env, tmp, a, setting, args, bar) -> dict:
    rng = random.Random(a.seed * 7919 + len(setting))
    notes = []
    for attempt in range(3):  # an underrun changes the audio: the reference must have none
        ref_run, ref_info = one_divergence_run(server, env, tmp, a, args, f"{tag(setting, bar)}_ref{attempt}", None,
                                               a.delay[1] + 1.0, bar)
        if not ref_info["underruns"]:
            break
        notes.append(f"reference run {attempt}: {ref_info['underruns']} underruns, run again")
    ref, _ = load_recording(ref_run.rec_path).on_frame_axis()
    lat, fb, unreliable, silent, under, xr = [], [], 0, 0, [ref_info["underruns"]], [ref_info["xruns"]]
    null_diverged, null_status = None, "-"  # "-": no usable null run; "yes"/"no": it matched / differed
    for i in range(-a.null_runs, a.changes):  # negative i: a null run (no change) against the reference
        value = round(rng.uniform(*a.values), 3) if i >= 0 else None
        run, info = one_divergence_run(server, env, tmp, a, args, f"{tag(setting, bar)}_{i}", value,
                                       rng.uniform(*a.delay), bar)
        under.append(info["underruns"])
        xr.append(info["xruns"])
        rec = load_recording(run.rec_path)
        x, x_index = rec.on_frame_axis()
        if info["underruns"]:
            unreliable += i >= 0
            notes.append(f"{'null run' if i < 0 else f'change {i}'}: {info['underruns']} underruns (they change the audio)")
            continue
        d = align(ref, x, rec.samplerate, a.eps)
        if d is None:
            unreliable += i >= 0
            notes.append(f"{'null run' if i < 0 else f'change {i}'}: could not align the run with the reference")
            continue
        div, glitches = first_divergence(x, ref, d, a.eps, rec.samplerate, a.period)
        if glitches:
            notes.append(f"{'null run' if i < 0 else f'change {i}'}: stepped over {glitches} lost cycles")
        if i < 0:  # the null run must match the reference everywhere they overlap
            null_status = "no" if div is not None else "yes"
            if div is not None:
                null_diverged = (div - np.flatnonzero(np.abs(np.nan_to_num(x)) > 1e-4)[0]) / rec.samplerate
                notes.append(f"null run (no change) differs from the reference {null_diverged:.2f} s after its "
                             "first sound: this model's output is not reproducible here, divergence is unreliable")
            else:
                overlap = min(len(x), len(ref) - d) - max(0, -d)
                notes.append(f"null run (no change) identical to the reference over {overlap / rec.samplerate:.1f} s")
            continue
        t_send = run.sent[0][0]
        if div is None:
            silent += 1
            continue
        t_div = float(rec.time_of(x_index[div]))
        if t_div < t_send:
            unreliable += 1
            notes.append(f"change {i}: differs from the reference {1000 * (t_send - t_div):.0f} ms before the send")
            continue
        lat.append((t_div - t_send) * 1000)
        t_fb = run.feedback.first(f"/jamgen/sounding/{a.control}", run.sent[0][1], t_send)
        if t_fb is not None:
            fb.append((t_fb - t_div) * 1000)
    if null_diverged is not None:  # not reproducible without a change: no number from divergence
        unreliable, lat, fb = unreliable + len(lat), [], []
    return {**ref_info, "underruns": int(sum(under)), "xruns": int(sum(xr)), "latency_ms": lat, "early": 0,
            "missing": 0, "unreliable": unreliable, "silent": silent, "feedback_minus_audio_ms": fb,
            "notes": notes, "null_diverged_s": null_diverged, "repro": null_status, "clock": [float("nan")] * 3}


def fmt(v) -> str:
    return "-" if v is None else f"{v:.0f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=f"{TONE_MODULE}:factory", help="model spec (default: the tone generator)")
    p.add_argument("--settings", default="low,safe", help="comma list of low, safe, default, F:P (frames:prebuffer s)")
    p.add_argument("--load", choices=("none", "busy", "both"), default="none", help="busy-loop process on a core")
    p.add_argument("--changes", type=int, default=None, help="changes per configuration (30 tone, 12 divergence)")
    p.add_argument("--interval", type=float, nargs=2, default=(0.5, 1.0), help="tone: seconds between changes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="passed to jamgen run")
    p.add_argument("--prompt", action="append", default=[], help="divergence: passed to jamgen run")
    p.add_argument("--control", default="temperature", help="divergence: the control to change")
    p.add_argument("--values", type=float, nargs=2, default=(0.3, 2.0), help="divergence: new value range")
    p.add_argument("--delay", type=float, nargs=2, default=(0.8, 2.0),
                   help="divergence: seconds after the stream is recorded before the change")
    p.add_argument("--window", type=float, default=3.0, help="divergence: seconds recorded after the change")
    p.add_argument("--null-runs", type=int, default=1,
                   help="divergence: runs without a change that must match the reference (a determinism check)")
    p.add_argument("--eps", type=float, default=1e-4, help="divergence: sample difference that counts")
    p.add_argument("--period", type=int, default=1024, help="JACK period of the private server (frames)")
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args()
    tone = a.model.split(":")[0].removeprefix("python:") == TONE_MODULE
    a.model = model_spec(a.model)
    a.changes = a.changes or (30 if tone else 12)
    latency_option = has_latency_option()
    loads = ["none", "busy"] if a.load == "both" else [a.load]
    settings = [s for s in a.settings.split(",") if s]
    name = f"lat{os.getpid()}"
    jackd, env = private_jackd(name, a.period)
    deadline = time.monotonic() + 20
    while subprocess.run(["jack_lsp", "-s", name], env=env, capture_output=True).returncode != 0:
        if jackd.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"jackd -n {name} did not come up")
        time.sleep(0.1)
    env.update(SOUNDFONT_ENV)
    tmp = Path(tempfile.mkdtemp(prefix="jamgen-latency-"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    results = []
    try:
        for setting in settings:
            args = setting_args(setting, latency_option)
            for load in loads:
                total = a.changes if tone else a.changes + 1 + a.null_runs
                with tqdm(total=total, desc=f"{setting}/{load}", unit="chg" if tone else "run") as bar:
                    loader = start_load(load)
                    try:
                        measure = measure_pitch if tone else measure_divergence
                        r = measure(name, env, tmp, a, setting, args, bar)
                    finally:
                        if loader is not None:
                            loader.terminate()
                            loader.wait()
                results.append({"setting": setting, "args": args, "load": load, **r,
                                "stats": stats(r["latency_ms"])})
    finally:
        jackd.terminate()
        jackd.wait()
    method = "pitch of the tone generator" if tone else f"divergence from a reference run (eps {a.eps})"
    print(f"\nmodel {a.model}, commit {commit}, JACK period {a.period}, {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.2f}; "
          f"method: {method}; --latency option {'present' if latency_option else 'absent (fallbacks used)'}")
    head = (f"{'setting':<10} {'args':<34} {'load':<5} {'block':>5} {'prebuf':>9} {'n':>3} {'p50':>5} {'p99':>5} "
            f"{'max':>5} {'under':>5} {'xrun':>4} {'early':>5} {'fb-audio':>8}")
    if not tone:
        head += f" {'unrel':>5} {'silent':>6} {'repro':>5}"
    print(head)
    for r in results:
        s = r["stats"]
        fb = np.median(r["feedback_minus_audio_ms"]) if r["feedback_minus_audio_ms"] else None
        pb = r["prebuffer_ms"]
        pbs = f"{pb[0]:.0f}" if pb[0] == pb[1] else f"{pb[0]:.0f}-{pb[1]:.0f}"
        line = (f"{r['setting']:<10} {' '.join(r['args']) or '(defaults)':<34} {r['load']:<5} {r['block_ms']:>5.0f} "
                f"{pbs:>9} {s['n']:>3} {fmt(s['p50']):>5} {fmt(s['p99']):>5} {fmt(s['max']):>5} "
                f"{r['underruns']:>5} {r['xruns']:>4} {r['early']:>5} {fmt(fb):>8}")
        if not tone:
            line += f" {r['unreliable']:>5} {r['silent']:>6} {r['repro']:>5}"
        print(line)
    print("latencies in ms, OSC send -> first changed sample through the JACK graph; block/prebuf: what the "
          "daemon used (block log / its log); fb-audio: median /jamgen/sounding feedback time minus audio time")
    if not tone:
        print(f"unrel: runs left out (not aligned, or different before the change); silent: no difference within "
              f"{a.window:.0f} s; repro: a run without a change matched the reference (yes), did not (no: no numbers), or had an underrun (-)")
    if tone and results:
        c = results[-1]["clock"]
        print(f"clock: JACK - time.monotonic() = {c[0]:.1f} ms, drift {c[1]:.1f} ppm, fit residual {c[2]:.0f} us")
    for r in results:
        for note in r.get("notes", []):
            print(f"  {r['setting']}/{r['load']}: {note}")
        if r["unreliable"]:
            print(f"  {r['setting']}/{r['load']}: {r['unreliable']} of {a.changes} runs unreliable: divergence is "
                  "not a trustworthy measure for this model and setting")
    if a.json:
        Path(a.json).write_text(json.dumps({"model": a.model, "commit": commit, "method": method,
                                            "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
