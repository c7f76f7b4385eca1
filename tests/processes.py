"""Child processes of tests and benches: stop one politely, then firmly."""

from __future__ import annotations

import subprocess


def stop(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM ``proc`` if it still runs, wait ``timeout`` seconds, then SIGKILL it; always reaps it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
