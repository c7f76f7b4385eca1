"""Shared fixtures: a real ``jackd`` (dummy driver) per test module, and the daemon as a process.

Every test process gets its own uniquely named JACK server (libjack binds a process to the first
server it talks to, so servers are never shared across test processes). The daemon under test is
always a separate process (``python -m bridge.cli run ...``) talking to that server.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import stop as stop_process

ROOT = Path(__file__).resolve().parent.parent
TONE_MODEL = "python:tests.tone_generator:factory"
_counter = itertools.count()

os.environ["JACK_NO_START_SERVER"] = "1"  # never let libjack autostart a server (6 s hang)
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".jaxcache"))


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JackServer:
    """A named ``jackd -d dummy`` that tests can stop and start again."""

    def __init__(self, name: str, rate: int = 48000, period: int = 1024):
        self.name, self.rate, self.period = name, rate, period
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict:
        return dict(os.environ, JACK_NO_START_SERVER="1", JACK_DEFAULT_SERVER=self.name)

    def start(self, timeout: float = 10.0) -> None:
        if shutil.which("jackd") is None:
            pytest.fail("jackd is not installed (apt-get install jackd2)")
        self.proc = subprocess.Popen(
            ["jackd", "-n", self.name, "-r", "-d", "dummy", "-r", str(self.rate), "-p", str(self.period)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env(),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jackd exited with {self.proc.returncode}")
            if subprocess.run(["jack_lsp", "-s", self.name], env=self.env(), capture_output=True).returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError("jackd did not come up")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None

    def ports(self) -> list[str]:
        out = subprocess.run(["jack_lsp", "-s", self.name], env=self.env(), capture_output=True, text=True)
        return out.stdout.split()

    def connections(self) -> str:
        return subprocess.run(["jack_lsp", "-c", "-s", self.name], env=self.env(),
                              capture_output=True, text=True).stdout


@pytest.fixture
def jackd():
    server = JackServer(f"jgt{os.getpid()}_{next(_counter)}")
    server.start()
    yield server
    server.stop()


class DaemonProcess:
    """``jamgen run`` as a child process, with its stderr captured to a file."""

    def __init__(self, server: JackServer, tmp: Path, *args: str, model: str = TONE_MODEL, env: dict | None = None):
        self.server = server
        self.osc_port = free_udp_port()
        self.block_log = tmp / "blocks.jsonl"
        self.log_path = tmp / "daemon.log"
        self.cmd = [sys.executable, "-m", "bridge.cli", "run", "--model", model, "--jack-server", server.name,
                    "--osc-port", str(self.osc_port), "--block-log", str(self.block_log), *args]
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=dict(server.env(), **(env or {})))

    def log(self) -> str:
        return self.log_path.read_text()

    def blocks(self) -> list[dict]:
        if not self.block_log.exists():
            return []
        lines = self.block_log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def wait_for_blocks(self, n: int, timeout: float = 60.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            blocks = self.blocks()
            if len(blocks) >= n:
                return blocks
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"daemon produced {len(self.blocks())} blocks, wanted {n}:\n{self.log()}")

    def wait_for_log(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never appeared in the daemon log:\n{self.log()}")

    def stop(self, sig=signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def daemon_factory(jackd, tmp_path):
    started: list[DaemonProcess] = []

    def start(*args: str, **kw) -> DaemonProcess:
        d = DaemonProcess(jackd, tmp_path, *args, **kw)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


def record(server: JackServer, out: Path, seconds: float, ports=("jamgen:out_L", "jamgen:out_R"),
           wait: float = 60.0) -> subprocess.Popen:
    """Start a separate recording JACK client process; ``communicate()`` it for the summary."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.jack_recorder", "--server", server.name, "--seconds", str(seconds),
         "--wait", str(wait), "--out", str(out), *ports],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=server.env(),
    )
