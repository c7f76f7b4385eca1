"""Soak benchmark: hours of generation under scripted OSC and MIDI changes.

Starts a private ``jackd -d dummy``, the daemon on the default model with a mapping file, then
sends an OSC temperature change and a MIDI CC (mapped to guidance) every few hundred ms, and a new
prompt (from a cycle of contrasting ones: new instruments, tempo and programs) every ``--prompt-every`` s.
Reports underruns, xruns, RSS growth (after the first minute, to skip compile/warm-up),
p99 block compute time, the adaptive pre-buffer's range, and two latencies from the block log: control-to-block
(OSC send -> the first block generated with the new value) and control-to-sounding (that, plus the audio that was
still buffered ahead of it when it arrived: when it starts to play, by the daemon's own accounting, which
``bench/latency.py`` checks against a separate recording). ``--load`` runs a busy loop on the other core the whole
time (the issue's "while another process loads the second core"); ``--period`` sets the JACK period.
Goals (issue 16): 0 underruns, RSS growth < 5 %, control-to-sounding p99 <= 150 ms for the default model.

    .venv/bin/python bench/soak.py --minutes 60 --load [--model tiny] [--period 256] [--latency safe]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


import numpy as np
from pythonosc.udp_client import SimpleUDPClient
from tqdm import tqdm

import jack
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, private_jackd, stop_counts  # noqa: E402

PROMPTS = ("fast swing jazz with brushed drums and walking bass", "gentle solo piano lullaby",
           "hard rock with distorted electric guitar and loud drums", "slow string quartet",
           "upbeat funk groove with bass and drums", "quiet flute melody without drums", "a sad ballad",
           "energetic latin percussion with brass")
MAPPING = """version: 1
midi: {inputs: ["soak:*"]}
mappings:
  - {source: {midi: {cc: 21, channel: 1}}, target: guidance, range: [0.0, 8.0]}
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--model", default="groove")
    p.add_argument("--latency", default="low", help="the daemon's --latency setting")
    p.add_argument("--prebuffer", default="", help="the daemon's --prebuffer (seconds; default: the setting's)")
    p.add_argument("--prebuffer-adapt", default="", help="the daemon's --prebuffer-adapt policy")
    p.add_argument("--period", type=int, default=1024, help="JACK period (frames)")
    p.add_argument("--load", action="store_true", help="keep a busy-loop process running the whole time")
    p.add_argument("--interval", type=float, default=0.3, help="seconds between scripted changes")
    p.add_argument("--prompt-every", type=float, default=20.0, help="seconds between prompt changes (0: never)")
    a = p.parse_args()
    name = f"soak{os.getpid()}"
    jackd, env = private_jackd(name, a.period)
    load = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if a.load else None
    tmp = Path(tempfile.mkdtemp())
    (tmp / "soak.yaml").write_text(MAPPING)
    block_log = tmp / "blocks.jsonl"
    osc_port = 19000 + os.getpid() % 1000
    daemon = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "run", "--model", a.model, "--jack-server", name,
         "--osc-port", str(osc_port), "--mapping", str(tmp / "soak.yaml"), "--block-log", str(block_log),
         "--prompt", "upbeat funk groove with bass and drums", "--status-interval", "600", "--latency", a.latency,
         *(["--prebuffer", a.prebuffer] if a.prebuffer else []),
         *(["--prebuffer-adapt", a.prebuffer_adapt] if a.prebuffer_adapt else [])],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "daemon.log", "w"))
    midi_q: queue.SimpleQueue = queue.SimpleQueue()
    client = jack.Client("soak", servername=name, no_start_server=True)
    midi_out = client.midi_outports.register("out")

    @client.set_process_callback
    def process(frames):
        midi_out.clear_buffer()
        while not midi_q.empty():
            midi_out.write_midi_event(0, midi_q.get_nowait())

    client.activate()
    osc = SimpleUDPClient("127.0.0.1", osc_port)
    sent: list[tuple[float, float]] = []  # (time, temperature value)
    rss: list[tuple[float, int]] = []
    try:
        while not block_log.exists() or not block_log.read_text().strip():
            if daemon.poll() is not None:
                print((tmp / "daemon.log").read_text())
                return 1
            time.sleep(0.2)
        t_start = time.monotonic()
        total = a.minutes * 60
        i = 0
        prompts_sent, next_prompt = 0, a.prompt_every
        stop: list[int] = []  # SIGTERM / SIGINT end the soak early, with its report
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: stop.append(signum))
        with tqdm(total=int(total), unit="s", desc="soak") as bar:
            while (elapsed := time.monotonic() - t_start) < total and not stop:
                value = round(0.5 + (i % 997) / 997, 4)  # unique for a long stretch
                sent.append((time.time(), value))
                osc.send_message("/jamgen/temperature", value)
                midi_q.put(bytes([0xB0, 21, i % 128]))
                i += 1
                if a.prompt_every > 0 and elapsed >= next_prompt:
                    osc.send_message("/jamgen/prompt/0", [PROMPTS[prompts_sent % len(PROMPTS)], 1.0])
                    prompts_sent += 1
                    next_prompt += a.prompt_every
                if i % max(1, int(10 / a.interval)) == 0:
                    rss.append((elapsed, rss_kib(daemon.pid)))
                time.sleep(a.interval)
                bar.n = int(elapsed)
                bar.refresh()
    finally:
        daemon.terminate()
        daemon.wait(30)
        client.deactivate()
        client.close()
        jackd.terminate()
        jackd.wait()
        if load is not None:
            load.kill()
    log = (tmp / "daemon.log").read_text()
    blocks = [json.loads(line) for line in block_log.read_text().splitlines()]
    underruns, xruns = stop_counts(log)
    rtf = np.array([b["rtf"] for b in blocks])
    walls = np.array([b["wall"] for b in blocks])
    temps = np.array([b["controls"]["temperature"] for b in blocks])
    ahead = np.array([b.get("ahead_ms", 0.0) for b in blocks]) / 1000
    gen = np.array([b["gen_ms"] for b in blocks]) / 1000
    cpu = np.array([b.get("cpu_ms", np.nan) for b in blocks]) / 1000
    latencies, sounding = [], []
    for t_sent, value in sent:
        # Values repeat every 997 changes: only a block within a few seconds can be this change's.
        idx = np.flatnonzero((walls >= t_sent) & (walls < t_sent + 5.0) & np.isclose(temps, value))
        if idx.size:
            latencies.append(walls[idx[0]] - t_sent)
            sounding.append(walls[idx[0]] + gen[idx[0]] + ahead[idx[0]] - t_sent)
    latencies, sounding = np.array(latencies) * 1000, np.array(sounding) * 1000
    prebuffer = np.array([b.get("prebuffer_ms", np.nan) for b in blocks])
    after_warmup = [r for t, r in rss if t >= 60] or [r for _, r in rss]
    growth = (after_warmup[-1] - after_warmup[0]) / after_warmup[0] * 100 if len(after_warmup) > 1 else 0.0
    guidance_seen = len({b["controls"]["guidance"] for b in blocks})
    prompts_seen = len({json.dumps(b["controls"].get("prompts")) for b in blocks})
    ran = elapsed / 60
    print(f"soak: {ran:.1f} min{' (stopped early)' if stop else ''}, model {a.model} (--latency {a.latency}, JACK period {a.period}, "
          f"{'a busy loop on the other core' if a.load else 'no other load'}"
          f"{f', --prebuffer {a.prebuffer}' if a.prebuffer else ''}"
          f"{f', --prebuffer-adapt {a.prebuffer_adapt}' if a.prebuffer_adapt else ''}), {len(blocks)} blocks, {len(sent)} OSC + {len(sent)} MIDI changes, "
          f"{prompts_sent} prompt changes")
    print(f"underruns {underruns}, xruns {xruns}; distinct guidance values from MIDI: {guidance_seen}; "
          f"distinct prompt sets played: {prompts_seen}")
    print(f"block compute / audio: p50 {np.percentile(rtf, 50):.3f}  p99 {np.percentile(rtf, 99):.3f}")
    print(f"RSS {after_warmup[0] / 1024:.0f} -> {after_warmup[-1] / 1024:.0f} MiB ({growth:+.2f} % after warm-up)")
    if latencies.size:
        print(f"control-to-block latency (ms): p50 {np.percentile(latencies, 50):.0f}  "
              f"p99 {np.percentile(latencies, 99):.0f}  max {latencies.max():.0f}  "
              f"({latencies.size}/{len(sent)} changes seen; the others were superseded within one block)")
        print(f"control-to-sounding latency (ms): p50 {np.percentile(sounding, 50):.0f}  "
              f"p99 {np.percentile(sounding, 99):.0f}  max {sounding.max():.0f}")
    if np.isfinite(prebuffer).any():
        floor = np.nanmin(prebuffer)
        print(f"pre-buffer (ms): min {floor:.0f}  median {np.nanmedian(prebuffer):.0f}  "
              f"max {np.nanmax(prebuffer):.0f}; above the floor in {np.mean(prebuffer > floor + 0.5) * 100:.0f} % "
              f"of blocks, above 1.5x it in {np.mean(prebuffer > 1.5 * floor + 0.5) * 100:.0f} %")
    gc_ms = np.array([b.get("gc_ms") or 0.0 for b in blocks])
    slow = gen * 1000 > 40.0  # a block that took as long as a low-latency block is long
    print(f"garbage collections (bridge.gc_guard): longest {gc_ms.max():.1f} ms, {int((gc_ms > 5).sum())} blocks with "
          f"one over 5 ms; blocks over 40 ms: {int(slow.sum())}, of which {int((slow & (gc_ms > 5)).sum())} had one")
    near = np.flatnonzero(np.diff(prebuffer) > 0) + 1 if np.isfinite(prebuffer).any() else np.array([], int)
    if near.size:  # each growth of the pre-buffer is logged with the block whose late arrival caused it
        print(f"pre-buffer grew {near.size} times, at blocks of (gen ms / process CPU ms during it / ms left at "
              "arrival / gc ms; the block before's gen ms): " + ", ".join(
                  f"{gen[i] * 1000:.0f}/{cpu[i] * 1000:.0f}/{ahead[i] * 1000:.0f}/{gc_ms[i]:.0f} ({gen[i - 1] * 1000:.0f})"
                  for i in near[:20]))
    if np.isfinite(cpu).any() and slow.any():
        share = cpu[slow] / gen[slow]
        print(f"blocks over 40 ms: process CPU / wall p10 {np.percentile(share, 10):.2f}  p50 "
              f"{np.percentile(share, 50):.2f}  p90 {np.percentile(share, 90):.2f} (near 1: computing; well under 1: "
              "waiting for a core)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
