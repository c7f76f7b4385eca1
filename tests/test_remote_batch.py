"""Batching on the server: several sessions of ``tiny`` stepped through one compiled step, each stream unchanged.

A real ``jamgen serve`` process serves ``tiny`` batched (``generator.audio.batch``, up to 4 streams a step);
three sessions ask for chunks at once, so the worker finds them waiting together and steps them as one batch
(the chunk header's ``batch``). What each session hears must be exactly what a single-stream ``tiny`` makes from
the same seed and controls in this process: batching may change the cost, never the music.
"""

from __future__ import annotations

import json
import threading

import numpy as np

import generator
from generator.core.contract import CHANNELS, FRAME_SAMPLES, GenerationControls
from tests.remote_server import BATCHED_TINY, ServeProcess, next_message, session
SESSIONS = {0: 0.7, 1: 1.0, 2: 1.3}  # seed: temperature
CHUNKS, FRAMES = 6, 1


def _stream(url: str, seed: int, temperature: float, out: dict) -> None:
    with session(url, {"seed": seed, "controls": {"temperature": temperature}}) as ws:
        assert next_message(ws, timeout=60)["type"] == "ready"
        out[seed] = {"ready": True}
        out["go"].wait(30)
        for _ in range(CHUNKS):
            ws.send(json.dumps({"type": "request", "frames": FRAMES}))
        audio, batches = [], []
        for _ in range(CHUNKS):
            raw = ws.recv(timeout=60)
            assert isinstance(raw, bytes), raw
            size = int.from_bytes(raw[:4], "little")
            header = json.loads(raw[4:4 + size])
            batches.append(header["batch"])
            audio.append(np.frombuffer(raw[4 + size:], "<f4").reshape(-1, CHANNELS))
        out[seed] = {"audio": np.concatenate(audio), "batches": batches}


def test_sessions_batched_through_one_step_hear_what_one_stream_makes(tmp_path):
    server = ServeProcess(tmp_path / "serve.log", model=BATCHED_TINY).start(timeout=240)
    out: dict = {"go": threading.Event()}
    try:
        threads = [threading.Thread(target=_stream, args=(server.url, seed, t, out)) for seed, t in SESSIONS.items()]
        for t in threads:
            t.start()
        while not all(seed in out for seed in SESSIONS) and any(t.is_alive() for t in threads):
            threads[0].join(0.05)
        out["go"].set()  # all set up: their requests now arrive together
        for t in threads:
            t.join(120)
        assert all("audio" in out[seed] for seed in SESSIONS), f"a session failed:\n{server.log()[-2000:]}"
    finally:
        server.stop()
    assert max(b for seed in SESSIONS for b in out[seed]["batches"]) >= 2, \
        f"no chunk was batched: {[out[s]['batches'] for s in SESSIONS]}"
    single = generator.load("tiny")
    for seed, temperature in SESSIONS.items():
        state, expected = single.init_state(seed), []
        for _ in range(CHUNKS):
            audio, state = single.generate(state, GenerationControls(temperature=temperature), FRAMES)
            expected.append(np.asarray(audio))
        expected = np.concatenate(expected)
        got = out[seed]["audio"]
        assert got.shape == expected.shape == (CHUNKS * FRAMES * FRAME_SAMPLES, CHANNELS)
        assert np.abs(got - expected).max() < 1e-4, f"seed {seed}: batched audio differs from one stream's " \
            f"by {np.abs(got - expected).max():.2e}"
