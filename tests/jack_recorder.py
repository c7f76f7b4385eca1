"""A separate JACK client that records ports to a WAV file (run as its own process by tests).

    python -m tests.jack_recorder --server NAME --seconds 10 --out rec.wav jamgen:out_L jamgen:out_R

Waits (up to --wait seconds) for the source ports to appear, connects, records, writes the WAV
and prints a JSON summary (frames, xruns, samplerate) on stdout. Exits 1 if the ports never appear.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import numpy as np
import soundfile

import jack

from tests.jack_ports import connect_when_ready, wait_for_ports


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--wait", type=float, default=60.0)
    p.add_argument("--out", required=True)
    p.add_argument("--name", default="rec")
    p.add_argument("ports", nargs="+")
    a = p.parse_args()
    jack.set_error_function(lambda m: None)
    client = jack.Client(a.name, servername=a.server, no_start_server=True)
    inports = [client.inports.register(f"in_{i}") for i in range(len(a.ports))]
    rb = jack.RingBuffer(2 ** 26)
    xruns = [0]
    done = threading.Event()
    target = int(a.seconds * client.samplerate)
    got = [0]
    recording = [False]

    @client.set_process_callback
    def process(frames):
        if not recording[0] or done.is_set():
            return
        data = np.stack([port.get_array() for port in inports], axis=1).astype(np.float32)
        rb.write(data.tobytes())
        got[0] += frames
        if got[0] >= target:
            done.set()

    @client.set_xrun_callback
    def xrun(delay):
        xruns[0] += 1

    client.activate()
    deadline = time.monotonic() + a.wait
    if not wait_for_ports(client, list(a.ports), deadline):
        print(json.dumps({"error": f"ports {a.ports} never appeared"}))
        return 1
    failed = connect_when_ready(client, list(zip(a.ports, inports)), deadline)
    if failed:
        print(json.dumps({"error": failed}))
        return 1
    recording[0] = True
    done.wait(a.seconds + 30)
    client.deactivate()
    raw = rb.read(rb.read_space)
    audio = np.frombuffer(raw, dtype=np.float32).reshape(-1, len(inports))
    soundfile.write(a.out, audio, client.samplerate, subtype="FLOAT")
    print(json.dumps({"frames": len(audio), "xruns": xruns[0], "samplerate": client.samplerate}))
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
