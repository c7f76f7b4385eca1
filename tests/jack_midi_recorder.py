"""A separate JACK client that records MIDI from a port, with JACK frame times (run by tests).

    python -m tests.jack_midi_recorder --server NAME --seconds 3 jamgen:midi_out

Prints one JSON object: {"events": [[frame_time, [bytes...]], ...]}.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import time

import jack

from tests.jack_ports import connect_when_ready, wait_for_ports


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--wait", type=float, default=30.0)
    p.add_argument("source")
    a = p.parse_args()
    jack.set_error_function(lambda m: None)
    client = jack.Client("midirec", servername=a.server, no_start_server=True)
    port = client.midi_inports.register("in")
    events: queue.SimpleQueue = queue.SimpleQueue()

    @client.set_process_callback
    def process(frames):
        base = client.last_frame_time
        for offset, data in port.incoming_midi_events():
            events.put((base + offset, list(bytes(data))))

    client.activate()
    deadline = time.monotonic() + a.wait
    if not wait_for_ports(client, [a.source], deadline):
        print(json.dumps({"error": f"{a.source} never appeared"}))
        return 1
    failed = connect_when_ready(client, [(a.source, port)], deadline)
    if failed:
        print(json.dumps({"error": failed}))
        return 1
    print("connected", file=sys.stderr, flush=True)
    time.sleep(a.seconds)
    client.deactivate()
    client.close()
    out = []
    while not events.empty():
        out.append(events.get())
    print(json.dumps({"events": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
