"""A separate-process JACK MIDI sender for end-to-end tests (real JACK MIDI, no mocks).

Usage::

    python -m tests.midi_sender --server NAME --to jamgen:midi_in [--client NAME]
        [--per-cycle N] [--hold]  < events.txt

Reads events from stdin, one per line: hex bytes (``b0 15 7f``) or ``sleep SECONDS``. Registers
a MIDI output port ``<client>:out``, waits until ``--to`` exists and connects to it, sends every
event (at most ``--per-cycle`` per JACK period, in order), prints ``sent N`` and exits. With
``--hold`` it keeps the port registered until stdin line ``quit`` (for reconnect tests, events
then stream as they are read).
"""

from __future__ import annotations

import argparse
import queue
import sys
import time

import jack

from tests.jack_ports import connect_when_ready, wait_for_ports


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--to", default=None, help="input port to connect to (optional)")
    ap.add_argument("--client", default="jg-sender")
    ap.add_argument("--per-cycle", type=int, default=32)
    ap.add_argument("--hold", action="store_true")
    ap.add_argument("--wait", type=float, default=20.0)
    args = ap.parse_args()

    client = jack.Client(args.client, no_start_server=True, servername=args.server, use_exact_name=True)
    out = client.midi_outports.register("out")
    events: queue.SimpleQueue = queue.SimpleQueue()
    sent = [0]

    @client.set_process_callback
    def process(frames):
        out.clear_buffer()
        for i in range(args.per_cycle):
            try:
                data = events.get_nowait()
            except queue.Empty:
                return
            out.write_midi_event(min(i, frames - 1), data)
            sent[0] += 1

    client.activate()
    if args.to:
        deadline = time.monotonic() + args.wait
        if not wait_for_ports(client, [args.to], deadline):
            print(f"port {args.to} never appeared", file=sys.stderr)
            return 2
        failed = connect_when_ready(client, [(out, args.to)], deadline)
        if failed:
            print(failed, file=sys.stderr)
            return 2
        time.sleep(0.1)
    print("ready", flush=True)
    total = 0
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        if line == "quit":
            break
        if line.startswith("sleep"):
            time.sleep(float(line.split()[1]))
            continue
        events.put(bytes.fromhex(line))
        total += 1
    deadline = time.monotonic() + 10
    while sent[0] < total and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(3 * client.blocksize / client.samplerate + 0.05)  # let the last period go out
    print(f"sent {sent[0]}", flush=True)
    client.deactivate()
    client.close()
    return 0 if sent[0] == total else 1


if __name__ == "__main__":
    sys.exit(main())
