"""``jamgen serve --ray``: a real local Ray Serve deployment, real replica processes, real remote generators.

What must hold (issue 19): two replicas serve four sessions, each pinned to one replica for its life; killing one
replica's process (SIGKILL, as a crash or a lost node would) moves its sessions to a fresh context on the other
replica, with audio back within 5 s, while the other replica's sessions keep theirs and play on. The clients are
:class:`generator.backends.remote.RemoteGenerator` objects driven block by block at real time, one thread each,
as four daemons' generation threads would drive them; the tone test generator's pitch tells each stream's
controls apart, so a session that landed on the wrong stream or lost its controls would be heard.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("ray.serve", reason="Ray Serve is not installed: pip install -e '.[ray]' "
                    "(./scripts/setup.sh --with-ray) to run the scale-out tests", exc_type=ImportError)
pytest.importorskip("fastapi", reason="FastAPI (Ray Serve's WebSocket ingress) is not installed: "
                    "pip install -e '.[ray]'", exc_type=ImportError)

import generator  # noqa: E402
from generator.core.contract import FRAME_RATE, SAMPLE_RATE, GenerationControls  # noqa: E402
from tests.remote_server import ROOT, TONE_MODEL, ServeProcess, next_message, session  # noqa: E402

TOKEN = "ray-s3cret-for-tests"
TEMPERATURES = (0.0, 0.5, 1.0, 1.5)  # one pitch per session: 220, 311, 440, 622 Hz
BLOCK_FRAMES = 2


def _frequency(x: np.ndarray) -> float:
    up = np.flatnonzero((x[:-1] <= 0) & (x[1:] > 0))
    assert len(up) > 10, "no tone"
    return (len(up) - 1) * SAMPLE_RATE / (up[-1] - up[0])


class _Player(threading.Thread):
    """One remote generator driven at real time, as a daemon's generation thread drives its model."""

    def __init__(self, url: str, temperature: float):
        super().__init__(name=f"player-{temperature}", daemon=True)
        self.gen = generator.load(f"remote:{url}")
        self.controls = GenerationControls(temperature=temperature)
        self.blocks: list[tuple[float, np.ndarray, str | None]] = []  # (wall time, left channel, session)
        self.halt = threading.Event()

    def run(self) -> None:
        self.gen.init_state(0)
        period = BLOCK_FRAMES / FRAME_RATE
        t_next = time.monotonic()
        while not self.halt.is_set():
            audio, _ = self.gen.generate(None, self.controls, BLOCK_FRAMES)
            self.blocks.append((time.monotonic(), audio[:, 0].copy(), self.gen._session))  # noqa: SLF001
            t_next += period
            self.halt.wait(max(0.0, t_next - time.monotonic()))

    def sounding(self, since: float) -> list[tuple[float, bool, str | None]]:
        return [(t, bool(np.abs(x).max() > 0.05), s) for t, x, s in list(self.blocks) if t >= since]


def _mostly_loud(blocks) -> bool:
    """Playing: at least 90 % of the blocks loud. A block or two may come late on a loaded 2-core machine (the
    client then fades out and back in, as it should); a stream that stopped is far below this."""
    return bool(blocks) and sum(loud for _, loud, _ in blocks) >= 0.9 * len(blocks)


def _replicas(server: ServeProcess, count: int, timeout: float = 30.0) -> dict[str, int]:
    """{replica id: pid} from the server's lines for each replica that registered with its control actor."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = dict(re.findall(r"replica (\w+) up \(pid (\d+)", server.log()))
        if len(found) >= count:
            return {tag: int(pid) for tag, pid in found.items()}
        time.sleep(0.1)
    raise AssertionError(f"{count} replicas did not report within {timeout} s:\n{server.log()[-3000:]}")


@pytest.fixture(scope="module")
def ray_server(tmp_path_factory):
    """One deployment for the module (a Ray cluster takes ~20 s to start on 2 cores); the last test drains it."""
    server = ServeProcess(tmp_path_factory.mktemp("ray") / "serve.log", "--ray", "--replicas", "2",
                          "--replica-cpus", "0.5", env={"JAMGEN_REMOTE_TOKEN": TOKEN})  # each replica reads it
    server.start(timeout=120)
    yield server
    server.stop(timeout=30)


def test_killing_a_replica_moves_its_sessions_to_the_other_with_audio_back_within_5_s(ray_server, caplog,
                                                                                      monkeypatch):
    monkeypatch.setenv("JAMGEN_REMOTE_TOKEN", TOKEN)  # the clients' secret, as a daemon's environment gives it
    caplog.set_level(logging.INFO, logger="generator.backends.remote")
    replicas = _replicas(ray_server, 2)
    players = [_Player(ray_server.url, t) for t in TEMPERATURES]
    for p in players:
        p.start()
    try:
        time.sleep(3.0)
        start = time.monotonic() - 2.0
        before = {p: p.sounding(start) for p in players}
        where = {p: p.gen._session.split(".")[0] for p in players}  # noqa: SLF001
        assert set(where.values()) == set(replicas), f"4 sessions did not spread over both replicas: {where}"
        for p, blocks in before.items():
            assert _mostly_loud(blocks), f"{where[p]}: silent before the kill"
            assert len({s for _, _, s in blocks}) == 1, "a session changed replica while its replica lived"
        victim = where[players[0]]
        survivor = next(tag for tag in replicas if tag != victim)
        moved = [p for p in players if where[p] == victim]
        stayed = [p for p in players if where[p] == survivor]
        t_kill = time.monotonic()
        os.kill(replicas[victim], signal.SIGKILL)
        deadline = t_kill + 8.0
        while time.monotonic() < deadline and not all(
                any(loud and s and not s.startswith(victim) for _, loud, s in p.sounding(t_kill)) for p in moved):
            time.sleep(0.05)
        time.sleep(1.0)  # a second of the moved streams on their new replica
    finally:
        for p in players:
            p.halt.set()
        for p in players:
            p.join(5)
            p.gen.close()
    recovery = {}
    for p in moved:
        after = p.sounding(t_kill)
        assert any(not loud for _, loud, _ in after), "the killed replica's session never went silent"
        back = next((t for t, loud, s in after if loud and s and not s.startswith(victim)), None)
        assert back is not None, f"a moved session never played again:\n{caplog.text}"
        recovery[p.controls.temperature] = back - t_kill
        assert back - t_kill < 5.0, f"audio back {back - t_kill:.2f} s after the kill (limit 5 s)"
        assert {s.split(".")[0] for t, loud, s in after if t >= back} == {survivor}, "not moved to the other replica"
        tail = np.concatenate([x for t, x, _ in p.blocks if t >= back + 0.3])
        assert abs(_frequency(tail) - 220.0 * 2.0 ** p.controls.temperature) < 3.0, "lost its own controls"
    for p in stayed:  # pinned: never reconnected, played on, still its own pitch
        after = p.sounding(t_kill)
        assert _mostly_loud(after), "a session on the surviving replica stopped playing"
        assert {s for _, _, s in after} == {p.gen._session}, "a session on the surviving replica moved"  # noqa: SLF001
        tail = np.concatenate([x for t, x, _ in p.blocks if t >= t_kill])
        assert abs(_frequency(tail) - 220.0 * 2.0 ** p.controls.temperature) < 3.0
    assert caplog.text.count("fresh context") >= len(moved), caplog.text
    print(f"\nrecovery after SIGKILL of replica {victim}: "
          + ", ".join(f"{v:.2f} s" for v in sorted(recovery.values())))


def test_refusals_and_drain_through_the_ray_proxy(ray_server):
    """The same token check and one-line refusals as ``jamgen serve`` (one implementation, the token read by each
    replica from the environment), then SIGTERM closes live sessions with 1001 "going away" before it exits."""
    import websockets

    with session(ray_server.url, {"token": "wrong"}) as ws:
        reply = next_message(ws)
        assert reply["code"] == "bad_token" and "wrong or missing token" in reply["message"], reply
    with session(ray_server.url, {"token": TOKEN, "model": "../../etc/passwd"}) as ws:
        reply = next_message(ws)
        assert reply["code"] == "unknown_model" and "this server serves: python:tests.tone_generator" \
            in reply["message"], reply
    with session(ray_server.url, {"token": TOKEN}) as ws:
        assert next_message(ws)["type"] == "ready"
        ws.send("{not json")
        assert next_message(ws)["code"] == "malformed"
        ws.send("x" * 100_000)
        assert next_message(ws)["code"] == "too_big"
    with session(ray_server.url, {"token": TOKEN}) as ws:
        ready = next_message(ws)
        assert re.fullmatch(r"\w+\.\d+", ready["session"]), ready
        ray_server.proc.send_signal(signal.SIGTERM)
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=15)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001, closed.value
        assert "shutting down" in closed.value.rcvd.reason
    assert ray_server.proc.wait(60) == 0, ray_server.log()[-3000:]
    log = ray_server.log()
    assert "refused (bad_token)" in log and "refused (unknown_model)" in log and "drained 1 session(s)" in log
    assert TOKEN not in log


def test_scale_out_settings_are_one_line_errors():
    from bridge.serve_ray import app_builder

    for args, text in ((["--replicas", "3"], "--replicas goes with --ray"),
                       (["--ray", "--replicas", "0"], "--replicas must be at least 1, got 0"),
                       (["--ray", "--replicas", "2", "--max-replicas", "1"], "--max-replicas (1) must be at least"),
                       (["--ray", "--host", "0.0.0.0"], "not a loopback address: give a shared secret")):
        env = {k: v for k, v in os.environ.items() if k != "JAMGEN_REMOTE_TOKEN"}
        r = subprocess.run([sys.executable, "-m", "bridge.cli", "serve", "--model", TONE_MODEL, *args], cwd=ROOT,
                           capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode != 0, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and text in r.stderr, (args, r.stderr)
    with pytest.raises(ValueError, match="takes model=NAME .required.*got bogus, model"):
        app_builder({"model": TONE_MODEL, "bogus": "1"})
