"""The OSC surface against the running daemon: real UDP, real JACK."""

from __future__ import annotations

import socket
import struct
import time

from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.udp_client import SimpleUDPClient

from bridge.controls import REGISTRY
from bridge.osc import builtin_addresses, control_address
from tests.osc_client import collect, message


def _listener() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)
    return s


def test_address_space_is_generated_from_the_registry():
    addresses = builtin_addresses()
    for name in REGISTRY:
        assert control_address(name) in addresses
    for required in ("/jamgen/prompt/0", "/jamgen/prompt/7/weight", "/jamgen/prompt/3/clear", "/jamgen/volume",
                     "/jamgen/top_k", "/jamgen/state", "/jamgen/subscribe", "/jamgen/play", "/jamgen/reset"):
        assert required in addresses


def test_state_subscribe_and_feedback(daemon_factory):
    d = daemon_factory()
    d.wait_for_blocks(2)
    sock = _listener()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(address, *args):
        sock.sendto(message(address, *args), ("127.0.0.1", d.osc_port))  # reply goes to sock's address

    send("/jamgen/state")
    state = collect(sock, 1.0)
    assert abs(state["/jamgen/temperature"][0][0] - 1.1) < 1e-6
    assert state["/jamgen/transport"] == [["playing"]]
    assert "/jamgen/prompt/7/weight" in state and "/jamgen/sounding/frame" in state
    send("/jamgen/subscribe")
    collect(sock, 0.5)
    client.sendto(message("/jamgen/top_k", 12.0), ("127.0.0.1", d.osc_port))  # float for an int control
    client.sendto(message("/jamgen/volume", -6), ("127.0.0.1", d.osc_port))  # int for a float control
    got = collect(sock, 1.5)
    assert got["/jamgen/top_k"][-1] == [12]
    assert got["/jamgen/volume"][-1] == [-6.0]
    # What is sounding follows once the new block is audible.
    assert [12] in got.get("/jamgen/sounding/top_k", []), got.keys()


def test_future_bundle_is_applied_at_the_right_block(daemon_factory):
    d = daemon_factory()
    d.wait_for_blocks(2)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    when = time.time() + 1.5
    bundle = OscBundleBuilder(when)
    bundle.add_content(OscMessage(message("/jamgen/temperature", 0.25)))
    t0 = time.time()
    client.sendto(bundle.build().dgram, ("127.0.0.1", d.osc_port))
    client.sendto(message("/jamgen/guidance", 2.0), ("127.0.0.1", d.osc_port))  # not blocked behind it
    time.sleep(2.5)
    blocks = d.blocks()
    first = next(b for b in blocks if b["controls"]["temperature"] == 0.25)
    # The block sounding at `when` is generated about one pre-buffer (0.3 s) earlier.
    assert when - 0.6 <= first["wall"] <= when + 0.25, (first["wall"] - t0, when - t0)
    guid = next(b for b in blocks if b["controls"]["guidance"] == 2.0)
    assert guid["wall"] - t0 < 0.5


def test_garbage_bursts_and_fuzz_never_stop_the_daemon(daemon_factory):
    d = daemon_factory()
    d.wait_for_blocks(2)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = ("127.0.0.1", d.osc_port)
    rng = __import__("random").Random(1)
    bad = [b"", b"\x00" * 7, b"/jamgen/temperature", b"#bundle\x00", b"#bundle\x00" + b"\xff" * 12,
           message("/jamgen/temperature", float("nan")), message("/jamgen/temperature", float("inf")),
           message("/jamgen/temperature", "hot"), message("/jamgen/prompt/0", 3.0), message("/jamgen/prompt/9/weight", 1.0),
           message("/nope"), message("/jamgen/prompt/0/text", "x" * 60000), message("/jamgen/subscribe", 99999),
           message("/jamgen/top_k", 1, 2, 3)]
    for _ in range(300):
        bad.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200))))
    # Deeply nested bundles.
    inner = message("/jamgen/top_k", 7)
    for _ in range(2000):
        inner = b"#bundle\x00" + struct.pack(">Q", 1) + struct.pack(">i", len(inner)) + inner
        if len(inner) > 60000:
            break
    bad.append(inner)
    for packet in bad:
        client.sendto(packet, target)
        time.sleep(0.0005)
    for i in range(1000):  # a burst of valid messages
        client.sendto(message("/jamgen/temperature", 0.5 + (i % 10) / 10), target)
    client.sendto(message("/jamgen/temperature", 0.75), target)
    time.sleep(1.0)
    assert d.proc.poll() is None, d.log()
    n = len(d.blocks())
    d.wait_for_blocks(n + 3)
    assert d.blocks()[-1]["controls"]["temperature"] == 0.75
    log = d.log()
    assert "Traceback" not in log
    assert len(log.splitlines()) < 200, "warnings were not rate-limited"


def test_allow_list_refuses_other_senders(daemon_factory):
    d = daemon_factory("--osc-allow", "127.0.0.2")
    d.wait_for_blocks(2)
    SimpleUDPClient("127.0.0.1", d.osc_port).send_message("/jamgen/top_k", 5)
    time.sleep(0.8)
    assert all(b["controls"]["top_k"] == 40 for b in d.blocks())
    d.wait_for_log("not in the allow-list")
