"""What the daemon benchmarks share: a private dummy JACK server and reading the daemon's log."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def private_jackd(name: str, period: int = 1024) -> tuple[subprocess.Popen, dict]:
    """Start ``jackd -n NAME -d dummy`` at 48 kHz and ``period`` frames (1024 unless asked); returns the process
    and the env that points the daemon (and JACK clients) at it without ever autostarting another server."""
    env = dict(os.environ, JACK_NO_START_SERVER="1", JACK_DEFAULT_SERVER=name, JAX_PLATFORMS="cpu")
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".jaxcache"))
    jackd = subprocess.Popen(["jackd", "-n", name, "-r", "-d", "dummy", "-r", "48000", "-p", str(period)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    time.sleep(0.5)
    return jackd, env


def stop_counts(log: str) -> tuple[int, int]:
    """(underruns, xruns) from the daemon's final ``stopping: ...`` status line."""
    line = [l for l in log.splitlines() if "stopping:" in l][-1]
    return int(line.split("underruns ")[1].split(",")[0]), int(line.split("xruns ")[1].split(",")[0])


def add_heldout_args(p, works: int = 60, seconds: float = 10.0) -> None:
    """The options the symbolic head benches share: the model, the held-out token set, how many of its
    works and how many seconds of each to play, and where to write the numbers as JSON."""
    p.add_argument("--model", default="symbolic")
    p.add_argument("--heldout", default="runs/symbolic/heldout.npz")
    p.add_argument("--works", type=int, default=works)
    p.add_argument("--seconds", type=float, default=seconds)
    p.add_argument("--json", help="also write the numbers here")
