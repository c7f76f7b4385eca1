"""Daemon benchmark: generation real-time factor per block, start-up time, underruns per minute.

Runs the real daemon (``jamgen run``) on a private ``jackd -d dummy`` for ``--seconds`` and reads
its block log. Prints ratios and percentiles; asserts nothing (speed goals live here, not in tests).

    .venv/bin/python bench/bench_daemon.py --seconds 60 [--model tiny] [--latency low|safe] [--block-frames 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, private_jackd, stop_counts  # noqa: E402



def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--model", default="symbolic")
    p.add_argument("--latency", choices=("low", "safe"), default="low", help="the model's latency setting")
    p.add_argument("--block-frames", type=int, default=None, help="default: the latency setting's")
    p.add_argument("--prebuffer", type=float, default=None, help="default: the latency setting's")
    p.add_argument("--prompt", default="upbeat funk groove with bass and drums")
    a = p.parse_args()
    name = f"bench{os.getpid()}"
    jackd, env = private_jackd(name)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            block_log = Path(tmp) / "blocks.jsonl"
            t0 = time.monotonic()
            r = subprocess.run(
                [sys.executable, "-m", "bridge.cli", "run", "--model", a.model, "--jack-server", name,
                 "--no-osc", "--duration", str(a.seconds), "--block-log", str(block_log),
                 "--latency", a.latency,
                 *(["--block-frames", str(a.block_frames)] if a.block_frames is not None else []),
                 *(["--prebuffer", str(a.prebuffer)] if a.prebuffer is not None else []),
                 "--prompt", a.prompt, "--status-interval", "3600"],
                cwd=ROOT, env=env, capture_output=True, text=True)
            wall = time.monotonic() - t0
            log = r.stderr
            if r.returncode != 0:
                print(log)
                return 1
            blocks = [json.loads(line) for line in block_log.read_text().splitlines()]
    finally:
        jackd.terminate()
        jackd.wait()
    rtf = np.array([b["rtf"] for b in blocks])
    first_audio = float(log.split("first audio ")[1].split(" s")[0])
    underruns, xruns = stop_counts(log)
    played_minutes = a.seconds / 60.0
    frames = blocks[0]["frames"]
    prebuffer = np.array([b["prebuffer_ms"] for b in blocks])
    print(f"model {a.model}, latency {a.latency}: {len(blocks)} blocks of {frames} frames "
          f"({frames * 40} ms), {a.seconds:.0f} s played, {wall:.0f} s wall")
    print(f"pre-buffer: start {prebuffer[0]:.0f} ms, max {prebuffer.max():.0f} ms, end {prebuffer[-1]:.0f} ms")
    print(f"generation RTF (compute / audio) per block: p50 {np.percentile(rtf, 50):.3f}  "
          f"p95 {np.percentile(rtf, 95):.3f}  p99 {np.percentile(rtf, 99):.3f}  max {rtf.max():.3f}")
    print(f"start to first audio: {first_audio:.2f} s")
    print(f"underruns: {underruns} ({underruns / played_minutes:.2f} per minute); xruns: {xruns}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
