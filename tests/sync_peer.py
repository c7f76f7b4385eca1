"""A separate JACK client playing the studio's clock for the sync tests (run by tests/test_sync_e2e.py).

    python -m tests.sync_peer --server NAME --mode timebase --script "1:start 7:bpm=140 11:stop 12.5:start 15:end"
    python -m tests.sync_peer --server NAME --mode clock --bpm 90 --jitter-ms 2 --script "1:start 9:stop 10:end"

``timebase``: the JACK timebase master (bridge.sync_jack.TimebaseMaster, the same BBT jamgen publishes
with --timebase-master), starting, stopping and changing tempo on the script's wall-clock times.
``transport``: the same starts and stops without taking the timebase (jamgen may be the master).
``link``: an Ableton Link peer at ``--bpm`` (needs aalink); each script step records an anchor
``[frame time, beat, tempo, peers]``.
``clock``: MIDI clock at ``--bpm`` (24 ppqn, each clock moved by a uniform +-``--jitter-ms``) on
``syncpeer:clock_out``, connected to ``jamgen:midi_in``, with start (0xFA) and stop (0xFC) on the grid.
Times in the script count from the moment ``--wait-for`` (a port) appeared.

Prints one JSON object: the marks (``[name, frame_time, transport_frame]``: when the transport was seen to
start or stop, when a start was requested (``requested``: it rolls once every slow-sync client is ready), or
when start/stop was sent), the tempo pieces (``[transport frame, beat, bpm]``), for
``clock`` the frame time of beat 0 (the first clock after the start) and the ideal frames per clock,
and the period.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

import jack

from bridge.sync_jack import TimebaseMaster
from tests.jack_ports import connect_when_ready, wait_for_ports


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--mode", choices=("timebase", "transport", "clock", "link"), required=True)
    p.add_argument("--script", required=True)
    p.add_argument("--bpm", type=float, default=100.0)
    p.add_argument("--jitter-ms", type=float, default=0.0)
    p.add_argument("--wait-for", default="jamgen:midi_out")
    p.add_argument("--wait", type=float, default=120.0)
    a = p.parse_args()
    jack.set_error_function(lambda m: None)
    client = jack.Client("syncpeer", servername=a.server, no_start_server=True)
    rate, period = client.samplerate, client.blocksize
    marks: list = []
    pieces: list = []
    out = {"marks": marks, "pieces": pieces, "period": period, "rate": rate}
    rng = random.Random(7)

    if a.mode in ("timebase", "transport"):  # transport: start and stop only (jamgen may be the master)
        master = TimebaseMaster(a.bpm, rate=rate)
        seen = {"state": None}

        @client.set_process_callback
        def process(frames):
            state, pos = client.transport_query_struct()
            rolling = state == jack.ROLLING
            if rolling != seen["state"]:
                seen["state"] = rolling
                marks.append(["rolling" if rolling else "stopped", client.last_frame_time, pos.frame])

        if a.mode == "timebase":
            client.set_timebase_callback(master)
    elif a.mode == "link":  # another Link peer; anchors map its beat to JACK frame times
        from bridge.sync_link import open_link

        link, link_loop = open_link(a.bpm)
        out["anchors"] = anchors = []

        @client.set_process_callback
        def process(frames):
            pass
    else:
        port = client.midi_outports.register("clock_out")
        interval = rate * 60.0 / (a.bpm * 24)
        jitter = a.jitter_ms * rate / 1000.0
        clock = {"next": None, "pending": []}  # ideal frame time of the next clock; [(frame, bytes)] to send
        out["interval"] = interval

        @client.set_process_callback
        def process(frames):
            port.clear_buffer()
            base = client.last_frame_time
            if clock["next"] is None:
                clock["next"] = float(base + frames)
            end = base + frames
            while not clock["pending"] or clock["next"] - jitter < end + frames:  # a period ahead, jittered
                ideal = clock["next"]
                clock["pending"].append((ideal + rng.uniform(-jitter, jitter), b"\xf8", ideal))
                clock["next"] += interval
            keep = []
            last = 0
            for when, data, ideal in clock["pending"]:
                offset = int(round(when)) - base
                if offset < frames:
                    offset = max(offset, last, 0)
                    last = offset
                    port.write_midi_event(offset, data)
                    if data == b"\xf8" and clock.get("beat0") is None and clock.get("started"):
                        clock["beat0"] = ideal
                else:
                    keep.append((when, data, ideal))
            clock["pending"] = keep
            request = clock.pop("request", None) if clock["pending"] else None
            if request is not None:  # start/stop: just before the next clock not yet sent
                first = min(clock["pending"], key=lambda e: e[0])
                clock["pending"].insert(0, (first[0] - 1, request, first[2]))
                clock["started"] = request == b"\xfa"
                if clock["started"]:
                    clock["beat0"] = None
                marks.append(["start" if request == b"\xfa" else "stop", int(round(first[2])), None])

    client.activate()
    deadline = time.monotonic() + a.wait
    if not wait_for_ports(client, [a.wait_for], deadline):
        print(json.dumps({"error": f"{a.wait_for} never appeared"}))
        return 1
    if a.mode == "clock":
        failed = (None if wait_for_ports(client, ["jamgen:midi_in"], deadline) else "jamgen:midi_in never appeared") \
            or connect_when_ready(client, [("syncpeer:clock_out", "jamgen:midi_in")], deadline)
        if failed:
            print(json.dumps({"error": failed}))
            return 1
    else:
        client.transport_stop()
        client.transport_frame = 0
    t0 = time.monotonic()
    for step in a.script.split():
        when, _, action = step.partition(":")
        time.sleep(max(0.0, t0 + float(when) - time.monotonic()))
        if action == "end":
            break
        if a.mode == "link":
            anchors.append([client.frame_time, link.beat, link.tempo, link.num_peers])
        elif a.mode != "clock":
            if action == "start":
                marks.append(["requested", client.frame_time, None])  # the roll waits for slow-sync clients
                client.transport_start()
            elif action == "stop":
                client.transport_stop()
            elif action.startswith("bpm="):
                master.bpm = float(action[4:])
                time.sleep(0.2)
                pieces.append(list(master._piece))
        else:
            clock["request"] = b"\xfa" if action == "start" else b"\xfc"
            time.sleep(0.1)
    if a.mode == "link":
        link.enabled = False
    elif a.mode != "clock":
        pieces.insert(0, [0, 0.0, a.bpm])
    else:
        out["beat0"] = clock.get("beat0")
    client.deactivate()
    client.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
