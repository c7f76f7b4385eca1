"""What the daemon benchmarks share: a private dummy JACK server and reading the daemon's log."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def private_jackd(name: str) -> tuple[subprocess.Popen, dict]:
    """Start ``jackd -n NAME -d dummy`` at 48 kHz / 1024; returns the process and the env that
    points the daemon (and JACK clients) at it without ever autostarting another server."""
    env = dict(os.environ, JACK_NO_START_SERVER="1", JACK_DEFAULT_SERVER=name, JAX_PLATFORMS="cpu")
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".jaxcache"))
    jackd = subprocess.Popen(["jackd", "-n", name, "-r", "-d", "dummy", "-r", "48000", "-p", "1024"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    time.sleep(0.5)
    return jackd, env


def stop_counts(log: str) -> tuple[int, int]:
    """(underruns, xruns) from the daemon's final ``stopping: ...`` status line."""
    line = [l for l in log.splitlines() if "stopping:" in l][-1]
    return int(line.split("underruns ")[1].split(",")[0]), int(line.split("xruns ")[1].split(",")[0])
