"""A separate JACK client that records ports with the time every sample passed through the graph.

    python -m tests.jack_timed_recorder --server NAME --out rec.npz [--seconds MAX] [--midi jamgen:midi_out] jamgen:out_L

Run as its own process (by the latency tests and ``bench/latency.py``), so nothing in it trusts the
daemon's own accounting. It waits (up to ``--wait`` s) for the ports, connects, prints ``connected``
on stderr, and records until ``--seconds`` have been recorded or it gets SIGTERM/SIGINT; then it
writes an ``.npz`` and prints a JSON summary (frames, xruns, samplerate, clock) on stdout. With
``--midi PORT`` it also records that MIDI port, each event stamped the same way.

Timing. In the process callback each period is stamped with ``last_frame_time`` (the JACK frame
time of its first sample) and ``jack_frames_to_time`` of it: the microsecond time, on JACK's clock,
at which that cycle began (python-jack does not wrap the call, so it goes through ctypes). Sample k
of the period passed through the graph at that time + k / samplerate. With the dummy driver this is
when the sample was "played"; a real card adds its own output latency (``jack_lsp -l``) on top.

JACK's clock is not Python's ``time.monotonic()``: on this machine (jack2 1.9.21, Linux 6.18)
``jack_get_time()`` equals ``CLOCK_MONOTONIC_RAW`` to within ~25 us and was 256.8 ms behind
``CLOCK_MONOTONIC`` (they drift apart by the NTP slew, tens of ppm). So the recorder does not
assume either: while it records, its main thread takes a calibration pair every 0.2 s
(``jack_get_time()`` bracketed by two ``time.monotonic()`` reads, the tightest of five tries), and
:func:`load` maps JACK microseconds to ``time.monotonic()`` seconds with a straight-line fit through
them (residuals are a few microseconds; the summary reports the offset, the drift and the residual).

:func:`load` reads a recording back; :func:`tone_onsets`/:func:`half_periods` are the tone
generator's pitch tracker (zero crossings, precise to a fraction of a millisecond).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

import jack

from tests.jack_ports import connect_when_ready, wait_for_ports

CALIBRATE_EVERY = 0.2  # seconds between clock calibration pairs


def _libjack():
    lib = ctypes.CDLL("libjack.so.0")
    lib.jack_get_time.restype = ctypes.c_uint64
    lib.jack_get_time.argtypes = []
    lib.jack_frames_to_time.restype = ctypes.c_uint64
    lib.jack_frames_to_time.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    return lib


def _calibration_pair(lib) -> tuple[float, float, float]:
    """(time.monotonic() in s, jack_get_time() in us, bracket width in us), the tightest of five."""
    best = None
    for _ in range(5):
        a = time.monotonic()
        j = lib.jack_get_time()
        b = time.monotonic()
        if best is None or b - a < best[2]:
            best = ((a + b) / 2, float(j), (b - a))
    return best[0], best[1], best[2] * 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", required=True)
    p.add_argument("--seconds", type=float, default=3600.0, help="stop after this much audio (default: SIGTERM)")
    p.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the ports")
    p.add_argument("--out", required=True, help=".npz to write")
    p.add_argument("--name", default="trec")
    p.add_argument("--midi", help="also record this MIDI output port")
    p.add_argument("ports", nargs="*", help="audio output ports to record")
    a = p.parse_args()
    jack.set_error_function(lambda m: None)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    client = jack.Client(a.name, servername=a.server, no_start_server=True)
    rate = client.samplerate
    lib = _libjack()
    ptr = ctypes.c_void_p(int(jack._ffi.cast("uintptr_t", client._ptr)))
    inports = [client.inports.register(f"in_{i}") for i in range(len(a.ports))]
    midi_in = client.midi_inports.register("midi_in") if a.midi else None
    midi_events: list[tuple[int, int, bytes]] = []  # (frame time, JACK usecs, bytes); list.append is atomic
    audio_rb = jack.RingBuffer(2 ** 24)
    stamp_rb = jack.RingBuffer(2 ** 20)  # per period: frame time, JACK usecs, frames (3 x uint64)
    xruns = [0]
    recording = [False]
    target = int(a.seconds * rate)
    got = [0]

    @client.set_process_callback
    def process(frames):
        if not recording[0] or got[0] >= target:
            return
        first = client.last_frame_time
        usecs = lib.jack_frames_to_time(ptr, first)
        if inports:
            data = np.stack([port.get_array() for port in inports], axis=1).astype(np.float32)
            audio_rb.write(data.tobytes())
        if midi_in is not None:
            for offset, data in midi_in.incoming_midi_events():
                midi_events.append((first + offset, int(usecs + offset * 1e6 / rate), bytes(data)))
        stamp_rb.write(np.array([first, usecs, frames], dtype=np.uint64).tobytes())
        got[0] += frames

    @client.set_xrun_callback
    def xrun(delay):
        xruns[0] += 1

    client.activate()
    deadline = time.monotonic() + a.wait
    wanted = [*a.ports, *([a.midi] if a.midi else [])]
    if not wait_for_ports(client, wanted, deadline, stop=done.is_set):
        print(json.dumps({"error": f"ports {wanted} never appeared"}))
        return 1
    pairs = [*zip(a.ports, inports), *([(a.midi, midi_in)] if midi_in is not None else [])]
    failed = connect_when_ready(client, pairs, deadline, stop=done.is_set)
    if failed:
        print(json.dumps({"error": failed}))
        return 1
    calib = [_calibration_pair(lib)]
    recording[0] = True
    print("connected", file=sys.stderr, flush=True)
    chunks: list[bytes] = []
    stamps: list[bytes] = []

    def drain() -> None:
        chunks.append(audio_rb.read(audio_rb.read_space))
        stamps.append(stamp_rb.read(stamp_rb.read_space - stamp_rb.read_space % 24))

    while not done.is_set() and got[0] < target:
        done.wait(CALIBRATE_EVERY)
        calib.append(_calibration_pair(lib))
        drain()
    recording[0] = False
    time.sleep(0.1)  # let a callback that was already running finish
    client.deactivate()
    drain()
    calib.append(_calibration_pair(lib))
    client.close()
    audio = np.frombuffer(b"".join(chunks), dtype=np.float32).reshape(-1, max(1, len(inports)))[:, : len(inports)]
    st = np.frombuffer(b"".join(stamps), dtype=np.uint64).reshape(-1, 3)
    if inports:
        n_periods = min(len(st), int(np.searchsorted(np.cumsum(st[:, 2]), len(audio), side="right")))
        st = st[:n_periods]
        audio = audio[: int(st[:, 2].sum())]
    n_periods = len(st)
    cal = np.array(calib, dtype=np.float64)
    midi = np.zeros((len(midi_events), 2), dtype=np.int64)  # JACK usecs, length in bytes
    midi_bytes = np.zeros((len(midi_events), 3), dtype=np.uint8)
    for i, (_frame, us, data) in enumerate(midi_events):
        midi[i, :2] = us, min(3, len(data))
        midi_bytes[i, : min(3, len(data))] = list(data[:3])
    np.savez(a.out, audio=audio, frame_time=st[:, 0].astype(np.int64), usecs=st[:, 1].astype(np.int64),
             nframes=st[:, 2].astype(np.int64), calib=cal, samplerate=rate, midi_usecs=midi[:, 0],
             midi_len=midi[:, 1], midi_bytes=midi_bytes)
    rec = load(a.out)
    print(json.dumps({"frames": len(audio), "xruns": xruns[0], "samplerate": rec.samplerate,
                      "clock_offset_ms": round(rec.offset_ms, 3), "clock_drift_ppm": round(rec.drift_ppm, 2),
                      "clock_residual_us": round(rec.residual_us, 1), "periods": n_periods,
                      "gaps": rec.gaps, "midi_events": len(midi_events)}))
    return 0


@dataclass
class TimedRecording:
    """A recording and, for every sample, when it passed through JACK's graph (``time.monotonic()``).

    Attributes:
      audio: [n, ports] float32.
      samplerate: JACK's rate.
      period_start: [P] index into ``audio`` of each period's first sample.
      period_mono: [P] ``time.monotonic()`` seconds at which each period's first sample passed.
      period_frame: [P] JACK frame time of each period's first sample.
      offset_ms: JACK clock minus ``time.monotonic()`` at the start of the recording.
      drift_ppm: how fast the two clocks drift apart.
      residual_us: largest residual of the calibration fit.
      gaps: periods whose frame time does not follow the previous one (missed cycles).
      midi: the ``--midi`` port's events as ``(time.monotonic() seconds, bytes)``, in order.
    """

    audio: np.ndarray
    samplerate: int
    period_start: np.ndarray
    period_mono: np.ndarray
    period_frame: np.ndarray
    offset_ms: float
    drift_ppm: float
    residual_us: float
    gaps: int
    midi: list[tuple[float, bytes]]

    def time_of(self, index) -> np.ndarray:
        """``time.monotonic()`` seconds at which sample(s) ``index`` passed through the graph."""
        index = np.asarray(index)
        p = np.clip(np.searchsorted(self.period_start, index, side="right") - 1, 0, len(self.period_start) - 1)
        return self.period_mono[p] + (index - self.period_start[p]) / self.samplerate

    def on_frame_axis(self, channel: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """One channel laid out on JACK's frame clock, NaN where the recorder missed a cycle.

        On a loaded machine the recorder's own callback can miss a cycle in which the daemon still
        played; concatenating the periods would then shift everything after it. On the frame axis,
        what follows stays in step with the daemon's stream.

        Returns:
          (samples [m] float64 with NaN gaps, index [m] of each sample in :attr:`audio`, -1 in gaps).
        """
        if not len(self.period_frame):
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        n = np.diff(np.append(self.period_start, len(self.audio)))
        pos = (self.period_frame - self.period_frame[0]) % 2 ** 32  # frame times wrap at 2^32
        out = np.full(int(pos[-1] + n[-1]), np.nan)
        index = np.full(len(out), -1, dtype=np.int64)
        for p0, s0, k in zip(pos, self.period_start, n):
            out[p0: p0 + k] = self.audio[s0: s0 + k, channel]
            index[p0: p0 + k] = np.arange(s0, s0 + k)
        return out, index

    def index_of(self, t) -> np.ndarray:
        """The first sample index at or after ``time.monotonic()`` time(s) ``t`` (clipped to the recording)."""
        t = np.asarray(t, dtype=np.float64)
        p = np.clip(np.searchsorted(self.period_mono, t, side="right") - 1, 0, len(self.period_mono) - 1)
        i = self.period_start[p] + np.ceil((t - self.period_mono[p]) * self.samplerate).astype(np.int64)
        return np.clip(i, 0, len(self.audio))


def load(path) -> TimedRecording:
    """Read a recording written by this module and map its JACK times to ``time.monotonic()``."""
    z = np.load(path)
    rate = int(z["samplerate"])
    cal = z["calib"]
    mono, jus = cal[:, 0], cal[:, 1]
    j0 = jus[0]
    if len(cal) >= 2 and jus[-1] > j0:
        slope, intercept = np.polyfit(jus - j0, mono, 1)  # mono seconds per JACK microsecond
    else:
        slope, intercept = 1e-6, mono[0]
    residual = float(np.abs(mono - (intercept + slope * (jus - j0))).max() * 1e6) if len(cal) else 0.0
    nframes = z["nframes"]
    starts = np.concatenate([[0], np.cumsum(nframes)[:-1]]).astype(np.int64)
    period_mono = intercept + slope * (z["usecs"].astype(np.float64) - j0)
    ft = z["frame_time"]
    gaps = int(np.count_nonzero((np.diff(ft) % 2 ** 32) != nframes[:-1])) if len(ft) > 1 else 0
    midi_mono = intercept + slope * (z["midi_usecs"].astype(np.float64) - j0)
    midi = [(float(t), bytes(b[:n])) for t, n, b in zip(midi_mono, z["midi_len"], z["midi_bytes"])]
    return TimedRecording(z["audio"], rate, starts, period_mono, ft, offset_ms=(j0 / 1e6 - intercept) * 1e3,
                          drift_ppm=(slope * 1e6 - 1.0) * 1e6, residual_us=residual, gaps=gaps, midi=midi)


# --- the tone generator's pitch ------------------------------------------------------------------
def half_periods(x: np.ndarray, floor: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Zero crossings of ``x`` (sub-sample, linear interpolation) and the frequency of each half period.

    Returns ``(t, f)``: crossing positions in samples, and ``f[k]`` the frequency (in cycles per
    sample) of the half period from ``t[k]`` to ``t[k + 1]``. Crossings next to near-silence
    (|x| < ``floor`` on both sides) are ignored, so silence and fades to zero make no pitch.
    """
    x = np.asarray(x, dtype=np.float64)
    s = np.signbit(x)
    i = np.flatnonzero((s[:-1] != s[1:]) & (np.maximum(np.abs(x[:-1]), np.abs(x[1:])) > floor))
    t = i + x[i] / (x[i] - x[i + 1])
    f = 0.5 / np.diff(t) if len(t) > 1 else np.zeros(0)
    return t, f


def tone_onsets(x: np.ndarray, samplerate: int, freqs_hz, tol: float = 0.006, hold: int = 4, start: float = 0.0):
    """Where each of ``freqs_hz`` is first played by the pure tone ``x`` (at or after sample ``start``).

    A frequency is "played" from a half period whose measured frequency is within ``tol``
    (relative) of it and stays so for ``hold`` half periods. The onset is refined to the sample
    where the phase-continuous tone switched: within the half period that straddles the switch,
    ``2 f_old (b - t0) + 2 f_new (t1 - b) = 1`` gives the switch point ``b``.

    Returns:
      a list (one per frequency) of the onset in samples (float) or None.
    """
    t, f = half_periods(x)
    f_hz = f * samplerate
    out = []
    for target in freqs_hz:
        match = np.abs(f_hz / target - 1.0) <= tol
        if hold > 1 and len(match) >= hold:
            run = np.lib.stride_tricks.sliding_window_view(match, hold).all(axis=1)
            run = np.concatenate([run, np.zeros(hold - 1, dtype=bool)])
        else:
            run = match
        k = np.flatnonzero(run & (t[:-1] >= start))
        if not len(k):
            out.append(None)
            continue
        k = int(k[0])
        onset = float(t[k])
        if k >= 1:  # the straddling half period t[k-1]..t[k]: solve for the switch point
            f_old = f[k - 2] if k >= 2 else f[k - 1]
            f_new = f[k]
            t0, t1 = t[k - 1], t[k]
            if abs(f_old - f_new) > 1e-9 and 0.5 / (t1 - t0) > 0:
                b = (1.0 - 2 * f_new * t1 + 2 * f_old * t0) / (2 * (f_old - f_new))
                onset = float(np.clip(b, t0, t1))
        out.append(onset)
    return out


if __name__ == "__main__":
    sys.exit(main())
