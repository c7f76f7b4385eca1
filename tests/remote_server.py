"""``jamgen serve`` as a child process for tests and benches, and a bare protocol client to poke it with.

Why a process: the remote tests are about what happens between machines (a server killed and started again, a
refusal that must not disturb another session), which only a real server in its own process shows.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.processes import stop as stop_process

ROOT = Path(__file__).resolve().parent.parent
TONE_MODEL = "python:tests.tone_generator:factory"
MIDI_MODEL = "python:tests.tone_generator:midi_factory"
BATCHED_TINY = "python:tests.remote_server:batched_tiny"


def batched_tiny():
    """``tiny`` batched up to 4 streams a step, warmed up for 1-frame blocks only (what the batching test asks
    for): 3 compiles instead of 6, so a cold XLA cache costs the test half as much."""
    from generator.audio import system
    from generator.audio.batch import BatchedSystem

    class OneBlockSize(BatchedSystem):
        def warmup(self, frames=None, prompt="warm up"):
            super().warmup(1, prompt)

    return OneBlockSize.from_system(system.load("tiny"), buckets=(2, 4))


class ServeProcess:
    """``python -m bridge.cli serve`` with its log in ``log_path``; :meth:`start` waits until it listens.

    Args:
      log_path: where its stdout and stderr go (appended across restarts).
      args: more ``serve`` flags (``--models``, ``--token-file`` ...).
      port: 0 = any free port the first time; a restart reuses the port it got.
    """

    def __init__(self, log_path: Path, *args: str, model: str = TONE_MODEL, port: int = 0, env: dict | None = None):
        self.log_path, self.args, self.model, self.port, self.env = log_path, args, model, port, env
        self.proc: subprocess.Popen | None = None
        self.ready_at = 0.0

    def start(self, timeout: float = 30.0) -> "ServeProcess":
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bridge.cli", "serve", "--model", self.model, "--port", str(self.port),
                 *self.args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, **(self.env or {})))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"serving .* on wss?://[^:]+:(\d+)", self.log()[offset:])
            if found:
                self.port, self.ready_at = int(found.group(1)), time.monotonic()
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"jamgen serve exited {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.02)
        raise AssertionError(f"jamgen serve did not listen within {timeout} s:\n{self.log()}")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: the server vanishes as a crashed or unplugged machine would, without a goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` s (a Ray Serve deployment needs longer to drain and exit)."""
        if self.proc is not None:
            stop_process(self.proc, timeout)


@contextlib.contextmanager
def session(url: str, setup: dict | None = None, **kw):
    """A bare protocol connection (websockets' sync client) that has sent ``setup`` (default: the plain one)."""
    from websockets.sync.client import connect

    with connect(url, compression=None, proxy=None, open_timeout=5, max_size=2**22, **kw) as ws:
        ws.send(json.dumps({"type": "setup", "seed": 0, **(setup or {})}))
        yield ws


def next_message(ws, timeout: float = 5.0) -> dict:
    """The next text message as JSON (binary chunks skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        raw = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(raw, str):
            return json.loads(raw)
