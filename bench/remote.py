"""What generating on a ``jamgen serve`` costs over loopback, against generating in the daemon (issue 19).

    python -m bench.remote [--model python:tests.tone_generator:factory] [--chunks 400] [--blocks 150] [--ray]
    python -m bench.remote --throughput --model tiny --sessions 4 --seconds 20 [--ray]
    python -m bench.remote --soak --model tiny --sessions 4 --seconds 600 [--ray]

Three numbers, each from a real server process on 127.0.0.1:

- **chunk round trip**: a bare protocol client asks for one 2-frame chunk at a time and times request -> chunk
  received (p50/p99), with the server's own generation time (from the chunk header) beside it, so what the
  wire and the two event loops add is the difference;
- **generate()**: :class:`generator.backends.remote.RemoteGenerator` driven at real time, as the daemon's
  generation thread drives it: how long each call took (p50/p99, against its budget of half a block), late chunks,
  and the jitter buffer depth it settled on;
- **control change**: with the tone generator (pitch = 220 Hz * 2 ** temperature), how far into the audio
  returned from the block that sent a new temperature the new pitch starts (zero crossings). From a local model
  it starts at the block's first sample; remote, what is buffered and in flight is heard first: that is what
  remote generation adds to a control's latency.

``--ray`` runs the same against ``jamgen serve --ray --replicas 1`` (Ray Serve's proxy in the path).

``--throughput`` measures **streams per CPU core**: ``--sessions`` bare clients each keep two requests of
``--chunk-frames`` frames in flight (so the server never waits for a client) for ``--seconds``; audio seconds
made per second of the server's CPU time (its process and children, from /proc) is how many real-time streams
one core carries, and audio seconds per wall second over sessions says whether every session kept real time.

``--soak`` plays ``--sessions`` remote generators at real time, one thread each as daemons' generation threads
would (blocks of the model's ``--latency`` setting, ``low`` by default), for ``--seconds``, and counts per
session the blocks that came back silent after the first sound (an underrun as a listener would hear it) and
the late chunks.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from generator.core.contract import FRAME_RATE, SAMPLE_RATE, GenerationControls  # noqa: E402
from tests.remote_server import ServeProcess, session  # noqa: E402


def pct(values, q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


def round_trips(url: str, chunks: int) -> tuple[list[float], list[float]]:
    """(round trips, server generation times) in seconds, one 2-frame chunk at a time."""
    rtts, gens = [], []
    with session(url) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        for _ in range(chunks + 10):
            t0 = time.perf_counter()
            ws.send(json.dumps({"type": "request", "frames": 2}))
            raw = ws.recv(timeout=10)
            rtts.append(time.perf_counter() - t0)
            size = int.from_bytes(raw[:4], "little")
            gens.append(json.loads(raw[4:4 + size])["gen_ms"] / 1000.0)
    return rtts[10:], gens[10:]  # the first few warm the connection


def switch_delay(x: np.ndarray, start: int, new_hz: float) -> float | None:
    """Seconds from ``start`` to where the tone in ``x`` first runs at ``new_hz`` (two periods within 2 %)."""
    up = np.flatnonzero((x[start:-1] <= 0) & (x[start + 1:] > 0))
    period = SAMPLE_RATE / new_hz
    for i in range(len(up) - 2):
        if all(abs((up[j + 1] - up[j]) - period) < 0.02 * period for j in (i, i + 1)):
            return max(0.0, (up[i] - period) / SAMPLE_RATE)  # the new pitch began within the period before
    return None


def real_time(url: str, blocks: int, frames: int = 2) -> dict:
    """Drive a RemoteGenerator block by block at real time; change the temperature every 10 blocks."""
    import generator

    class Late(logging.Handler):
        count = 0

        def emit(self, record):
            Late.count += "came late" in record.getMessage()

    logging.getLogger("generator.backends.remote").addHandler(Late())
    gen = generator.load(f"remote:{url}")
    block = frames / FRAME_RATE
    times, silent, out, changes = [], 0, [], []
    temperature = 0.5
    gen.init_state(0)
    t_next = time.perf_counter()
    try:
        for i in range(blocks):
            if i % 10 == 5 and i > 10:  # the block a local model would make at the new pitch
                temperature = 1.0 if temperature == 0.5 else 0.5
                changes.append((sum(len(a) for a in out), 220.0 * 2 ** temperature))
            t0 = time.perf_counter()
            audio, _ = gen.generate(None, GenerationControls(temperature=temperature), frames)
            times.append(time.perf_counter() - t0)
            silent += not np.abs(audio).any()
            out.append(audio[:, 0])
            t_next += block
            time.sleep(max(0.0, t_next - time.perf_counter()))
        target = gen._target  # noqa: SLF001 - the depth it settled on, for the report
        client_rtts = list(gen._rtts)  # noqa: SLF001 - the round trips that depth came from
    finally:
        gen.close()
    x = np.concatenate(out)
    heard = [d for start, hz in changes if (d := switch_delay(x[:start + 10 * len(out[0])], start, hz)) is not None]
    return {"times": times, "heard": heard, "silent": silent, "late": Late.count, "target": target, "block": block,
            "changes": len(changes), "client_rtts": client_rtts}


def soak(url: str, sessions: int, seconds: float, latency: str = "low") -> list[dict]:
    """``sessions`` RemoteGenerators at real time for ``seconds``: silent blocks after the first sound, late chunks."""
    import threading

    import generator

    late = {}

    class Late(logging.Handler):
        def emit(self, record):
            if "came late" in record.getMessage():
                late[record.threadName] = late.get(record.threadName, 0) + 1

    logging.getLogger("generator.backends.remote").addHandler(Late())
    results = [{"blocks": 0, "silent": 0} for _ in range(sessions)]
    gens = [generator.load(f"remote:{url}") for _ in range(sessions)]

    def play(i: int) -> None:
        gen, out = gens[i], results[i]
        frames = gen.latency[latency].block_frames
        gen.init_state(i)
        controls = GenerationControls(prompts=(("warm pads", 1.0),), temperature=1.0)
        sounding, t_next, end = False, time.perf_counter(), time.perf_counter() + seconds
        while time.perf_counter() < end:
            audio, _ = gen.generate(None, controls, frames)
            loud = bool(np.abs(audio).max() > 1e-4)
            sounding |= loud
            out["blocks"] += sounding
            out["silent"] += sounding and not loud
            t_next += frames / FRAME_RATE
            time.sleep(max(0.0, t_next - time.perf_counter()))
        out["frames"] = frames

    threads = [threading.Thread(target=play, args=(i,), name=f"soak-{i}") for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    for g in gens:
        g.close()
    results[0]["late_total"] = sum(late.values())
    return results


CHUNK_FRAMES = 5  # default --chunk-frames: the "safe" block (which warm-up compiles), well under the rate limit


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants (from /proc; Linux only)."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                todo += [int(c) for c in children]
        except (OSError, IndexError, ValueError):
            continue
    return total


def throughput(server: ServeProcess, sessions: int, seconds: float, chunk_frames: int = CHUNK_FRAMES) -> dict:
    """Saturate the server with ``sessions`` streams (two requests in flight each) for ``seconds``."""
    import contextlib
    import threading

    frames_done = [0] * sessions
    gen_ms: list[float] = []
    stop = threading.Event()
    ready = threading.Barrier(sessions + 1)

    def client(i: int) -> None:
        with session(server.url, {"seed": i}) as ws:
            assert json.loads(ws.recv(timeout=120))["type"] == "ready"  # a note model loads an instance
            ready.wait()
            for _ in range(2):
                ws.send(json.dumps({"type": "request", "frames": chunk_frames}))
            while not stop.is_set():
                raw = ws.recv(timeout=30)
                if isinstance(raw, str):
                    raise RuntimeError(f"session {i}: {raw}")
                size = int.from_bytes(raw[:4], "little")
                head = json.loads(raw[4:4 + size])
                frames_done[i] += head["frames"]
                gen_ms.append(head["gen_ms"])
                ws.send(json.dumps({"type": "request", "frames": chunk_frames}))

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(sessions)]
    for t in threads:
        t.start()
    ready.wait()
    time.sleep(2.0)  # past the first chunks (a first call may still compile)
    start_frames, cpu0, t0 = sum(frames_done), _cpu_seconds(server.proc.pid), time.perf_counter()
    time.sleep(seconds)
    frames, cpu, wall = sum(frames_done) - start_frames, _cpu_seconds(server.proc.pid) - cpu0, \
        time.perf_counter() - t0
    stop.set()
    for t in threads:
        t.join(35)
    audio = frames / FRAME_RATE
    return {"audio": audio, "cpu": cpu, "wall": wall, "per_core": audio / max(cpu, 1e-9),
            "realtime_each": audio / wall / sessions, "gen_ms": gen_ms, "sessions": sessions}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="python:tests.tone_generator:factory")
    p.add_argument("--chunks", type=int, default=400)
    p.add_argument("--blocks", type=int, default=150)
    p.add_argument("--ray", action="store_true", help="through jamgen serve --ray --replicas 1 (Ray Serve)")
    p.add_argument("--throughput", action="store_true", help="streams per CPU core instead of latency")
    p.add_argument("--soak", action="store_true", help="--sessions real-time streams for --seconds: underruns")
    p.add_argument("--latency", choices=("low", "safe"), default="low", help="--soak's block size (the model's)")
    p.add_argument("--sessions", type=int, default=4)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--chunk-frames", type=int, default=CHUNK_FRAMES,
                   help="frames a request (a block size the model's warm-up compiles: tiny 1 or 5)")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="bench: %(levelname)s: %(message)s")
    extra = ("--ray", "--replicas", "1") if a.ray else ()
    with tempfile.TemporaryDirectory() as tmp:
        server = ServeProcess(Path(tmp) / "serve.log", *extra, "--max-sessions", str(max(16, a.sessions)),
                              model=a.model).start(timeout=300)
        try:
            if a.soak:
                sk = soak(server.url, a.sessions, a.seconds, a.latency)
            elif a.throughput:
                tp = throughput(server, a.sessions, a.seconds, a.chunk_frames)
            else:
                rtts, gens = round_trips(server.url, a.chunks)
                rt = real_time(server.url, a.blocks)
        finally:
            server.stop(timeout=30)
    ms = 1000.0
    if a.soak:
        print(f"{a.model}{' on Ray Serve' if a.ray else ''}: {a.sessions} sessions at real time for {a.seconds:g} s "
              f"({sk[0]['frames'] * 40} ms blocks): silent blocks after the first sound "
              f"{[r['silent'] for r in sk]} of {[r['blocks'] for r in sk]}; late chunks {sk[0]['late_total']}")
        return 0
    if a.throughput:
        print(f"{a.model}{' on Ray Serve' if a.ray else ''}: {tp['sessions']} sessions saturating the server for "
              f"{tp['wall']:.1f} s: {tp['audio']:.1f} s of audio for {tp['cpu']:.1f} CPU s = {tp['per_core']:.1f} "
              f"real-time streams per CPU core; each session got {tp['realtime_each']:.2f}x real time; chunk "
              f"generation p50 {pct(tp['gen_ms'], 50):.1f} ms, p99 {pct(tp['gen_ms'], 99):.1f} ms "
              f"({a.chunk_frames} frames, {a.chunk_frames * 40} ms)")
        return 0
    print(f"chunk round trip over loopback ({len(rtts)} chunks of 2 frames): p50 {pct(rtts, 50) * ms:.2f} ms, "
          f"p99 {pct(rtts, 99) * ms:.2f} ms; server generation p50 {pct(gens, 50) * ms:.2f} ms, "
          f"p99 {pct(gens, 99) * ms:.2f} ms; added by the wire p50 "
          f"{(pct(rtts, 50) - pct(gens, 50)) * ms:.2f} ms")
    budget = rt["block"] / 2
    print(f"generate() at real time ({len(rt['times'])} blocks of {rt['block'] * ms:.0f} ms): p50 "
          f"{pct(rt['times'], 50) * ms:.2f} ms, p99 {pct(rt['times'], 99) * ms:.2f} ms, max "
          f"{max(rt['times']) * ms:.2f} ms (budget {budget * ms:.0f} ms); late chunks {rt['late']}, silent blocks "
          f"{rt['silent']}; jitter buffer {rt['target'] * ms:.0f} ms (from round trips seen by the client, last "
          f"{len(rt['client_rtts'])}: p50 {pct(rt['client_rtts'], 50) * ms:.2f} ms, p99 "
          f"{pct(rt['client_rtts'], 99) * ms:.2f} ms)")
    print(f"control change heard later than from a local model ({len(rt['heard'])} of {rt['changes']} changes "
          f"found): p50 {pct(rt['heard'], 50) * ms:.0f} ms, p99 {pct(rt['heard'], 99) * ms:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
