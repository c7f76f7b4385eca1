"""MIDI and mapping files against the running daemon: real jackd, real JACK MIDI from another
process, state read back over real UDP (/jamgen/state) and from the block log."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
from pythonosc.osc_message import OscMessage

from tests.conftest import ROOT
from tests.osc_client import message

MAPPING = """\
# e2e mapping: comments and order must survive learn
version: 1
midi: {inputs: ["jg-sender*"]}
prompts:
  - {text: "bossa nova guitar", weight: 1.0}
  - {text: "deep house drums", weight: 0.0}
mappings:
  - {source: {midi: {cc: 21, channel: 1}}, target: "prompts[1].weight", pickup: false}
  - {source: {midi: {cc14: 1, channel: 1}}, target: guidance, range: [0.0, 8.0], pickup: false}
  - {source: {midi: {nrpn: 300, channel: 2}}, target: top_k, range: [1, 1024], curve: exp, pickup: false}
  - {source: {midi: {note: 36, channel: 10}}, target: "prompts[0].weight", mode: toggle}
  - {source: {midi: {note: 40, channel: 10}}, target: "prompts[1].weight"}
  - {source: {midi: {pitchbend: true, channel: 1}}, target: temperature, range: [0.5, 2.5]}
  - {source: {midi: {program: 5, channel: 1}}, target: "prompts[2].text", value: "string quartet"}
  - {source: {midi: {cc: 22, channel: 1}}, target: volume_db}
  - {source: {midi: {cc: 23, channel: 1}}, target: seed, pickup: false}
  - {source: {osc: "/1/fader1"}, target: temperature, range: [0.2, 2.0]}
  - {source: {osc: "/transport/stop"}, target: stop}
  # end of the list
"""


class Sender:
    """A separate process owning JACK MIDI port ``<client>:out``; the daemon connects to it."""

    def __init__(self, server, client="jg-sender"):
        self.server = server
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.midi_sender", "--server", server.name,
                                      "--client", client, "--per-cycle", "64"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT, env=server.env())
        assert self.proc.stdout.readline().strip() == "ready"
        self.port = f"{client}:out"

    def wait_connected(self, dst="jamgen:midi_in", timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.server.connections()
            if f"{self.port}\n   {dst}" in text:
                return
            time.sleep(0.05)
        raise AssertionError(f"{self.port} never connected to {dst}:\n{self.server.connections()}")

    def send(self, *events: str) -> None:
        self.proc.stdin.write("".join(e + "\n" for e in events))
        self.proc.stdin.flush()

    def close(self) -> str:
        out, _ = self.proc.communicate("quit\n", timeout=20)
        return out


def state(port: int) -> dict:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.3)
    s.sendto(message("/jamgen/state"), ("127.0.0.1", port))
    got = {}
    try:
        while True:
            data, _ = s.recvfrom(65536)
            m = OscMessage(data)
            got[m.address] = m.params[0] if len(m.params) == 1 else m.params
    except socket.timeout:
        pass
    s.close()
    return got


def until(fn, cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    value = fn()
    while not cond(value) and time.monotonic() < deadline:
        time.sleep(0.1)
        value = fn()
    return value


@pytest.fixture
def rig(daemon_factory, jackd, tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text(MAPPING)
    d = daemon_factory("--mapping", str(path))
    d.wait_for_blocks(2)
    sender = Sender(jackd)
    sender.wait_connected()
    yield d, sender, path
    sender.close()


def test_every_midi_kind_changes_the_right_control(rig):
    d, sender, _ = rig
    port = d.osc_port
    st = state(port)
    assert st["/jamgen/prompt/0/text"] == "bossa nova guitar" and st["/jamgen/prompt/0/weight"] == 1.0
    v14 = (100 << 7) | 77
    nrpn = 9000
    sender.send("b0 15 40",  # cc 21 = 64 -> prompts[1].weight
                "b0 01 64", "b0 21 4d",  # cc14 1: MSB 100, LSB 77
                "b1 63 02", "b1 62 2c", "b1 26 %02x" % (nrpn & 127), "b1 06 %02x" % (nrpn >> 7),  # NRPN LSB first
                "99 24 64", "89 24 00",  # note 36 ch10 toggle: press + release -> weight 0
                "e0 7f 7f",  # pitch bend max
                "c0 05",  # program 5
                "b0 17 7f")  # seed
    expect_guidance = 8.0 * v14 / 16383
    expect_top_k = round(1024 ** (nrpn / 16383))
    st = until(lambda: state(port), lambda s: s.get("/jamgen/seed") == 2**31 - 1)
    assert st["/jamgen/prompt/1/weight"] == pytest.approx(64 / 127, abs=1e-6)
    assert st["/jamgen/guidance"] == pytest.approx(expect_guidance, abs=1e-5)
    assert st["/jamgen/top_k"] == expect_top_k
    assert st["/jamgen/prompt/0/weight"] == 0.0
    assert st["/jamgen/temperature"] == pytest.approx(2.5)
    assert st["/jamgen/prompt/2/text"] == "string quartet"
    # momentary note: velocity while held, 0 on note-on velocity 0
    sender.send("99 28 7f")
    assert until(lambda: state(port)["/jamgen/prompt/1/weight"], lambda v: v == 1.0) == 1.0
    sender.send("99 28 00")
    assert until(lambda: state(port)["/jamgen/prompt/1/weight"], lambda v: v == 0.0) == 0.0
    # the generator really ran with them: the block log shows the new guidance / top_k
    blocks = until(d.blocks, lambda b: any(x["controls"]["top_k"] == expect_top_k for x in b), timeout=10)
    last = [b for b in blocks if b["controls"]["top_k"] == expect_top_k][-1]["controls"]
    assert last["guidance"] == pytest.approx(expect_guidance, abs=1e-5)
    assert last["temperature"] == pytest.approx(2.5)
    # custom OSC addresses from the file
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.sendto(message("/1/fader1", 0.5), ("127.0.0.1", port))
    assert until(lambda: state(port)["/jamgen/temperature"], lambda v: abs(v - 1.1) < 1e-6) == pytest.approx(1.1)
    c.sendto(message("/transport/stop", 1.0), ("127.0.0.1", port))
    assert until(lambda: state(port)["/jamgen/transport"], lambda v: v == "stopped") == "stopped"


def test_pickup_prevents_jumps(rig):
    d, sender, _ = rig
    port = d.osc_port
    assert state(port)["/jamgen/volume"] == 0.0  # knob position for 0 dB in -60..12: 105.8 of 127
    sender.send("b0 16 00", "b0 16 05", "b0 16 30")  # knob far below: ignored
    time.sleep(0.5)
    assert state(port)["/jamgen/volume"] == 0.0
    sender.send(*[f"b0 16 {v:02x}" for v in range(100, 111)])  # sweeps through 105.8: picked up
    expected = -60 + 72 * 110 / 127
    assert until(lambda: state(port)["/jamgen/volume"], lambda v: abs(v - expected) < 1e-4) == pytest.approx(expected)
    # moved over OSC: the knob (at 110) must come back to the value before it acts again
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(message("/jamgen/volume", -30.0), ("127.0.0.1", port))
    until(lambda: state(port)["/jamgen/volume"], lambda v: v == -30.0)
    sender.send("b0 16 6f")
    time.sleep(0.5)
    assert state(port)["/jamgen/volume"] == -30.0


def test_burst_of_1000_midi_events_and_garbage_keeps_playing(rig):
    d, sender, _ = rig
    n0 = len(d.blocks())
    events = []
    for i in range(1000):
        events.append(["b0 15 %02x" % (i % 128), "b0 01 %02x" % (i % 128), "99 24 %02x" % (i % 128),
                       "15", "b0", "f0 7e 7f 06 01 f7", "b1 26 05", "b1 62 01"][i % 8])
    t0 = time.monotonic()
    sender.send(*events)
    sender.send("b0 17 2a")  # a marker after the burst: seed 42 * ...
    expected_seed = round(42 / 127 * (2**31 - 1))
    st = until(lambda: state(d.osc_port), lambda s: s.get("/jamgen/seed") == expected_seed, timeout=15)
    assert st["/jamgen/seed"] == expected_seed, "events after the burst were not applied"
    assert st["/jamgen/transport"] == "playing"
    elapsed = time.monotonic() - t0
    d.wait_for_blocks(n0 + 5)
    assert d.proc.poll() is None
    print(f"1000 MIDI events + marker applied in {elapsed:.2f} s")


def test_hot_reload_and_broken_edit(rig):
    d, sender, path = rig
    port = d.osc_port
    path.write_text(MAPPING.replace("cc: 21,", "cc: 24,"))
    d.wait_for_log("reloaded")
    sender.send("b0 18 7f")
    assert until(lambda: state(port)["/jamgen/prompt/1/weight"], lambda v: v == 1.0) == 1.0
    path.write_text(MAPPING.replace("target: seed", "target: sed"))
    d.wait_for_log("mapping reload refused")
    assert "did you mean 'seed'" in d.log()
    sender.send("b0 18 00")  # the previous (cc 24) rules are still in force
    assert until(lambda: state(port)["/jamgen/prompt/1/weight"], lambda v: v == 0.0) == 0.0


def test_osc_learn_writes_a_working_mapping(rig):
    d, sender, path = rig
    port = d.osc_port
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(message("/jamgen/learn", "prompts[5].weight"), ("127.0.0.1", port))
    d.wait_for_log("learn: move a control")
    sender.send("b5 1e 40")  # cc 30 on channel 6
    d.wait_for_log("learned cc 30 ch6 -> prompts[5].weight")
    text = path.read_text()
    assert text.startswith("# e2e mapping: comments and order must survive learn\n")
    assert '  - {source: {midi: {cc: 30, channel: 6}}, target: "prompts[5].weight"}\n  # end of the list\n' in text
    assert text.replace('  - {source: {midi: {cc: 30, channel: 6}}, target: "prompts[5].weight"}\n', "") == MAPPING
    sender.send("b5 1e 00", "b5 1e 7f")  # picked up at 0, then follows
    assert until(lambda: state(port)["/jamgen/prompt/5/weight"], lambda v: v == 1.0) == 1.0


def test_cli_learn_14bit(jackd, tmp_path):
    path = tmp_path / "learned.yaml"
    path.write_text("# my controller\nversion: 1\nmappings:\n  - {source: {osc: /a}, target: seed}  # keep me\n")
    proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", "learn", "guidance", "--mapping", str(path),
                             "--jack-server", jackd.name, "--timeout", "20", "--input", "jg-sender*"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=jackd.env())
    sender = Sender(jackd)
    try:
        sender.wait_connected("jamgen-learn-midi:midi_in")
        time.sleep(0.3)
        sender.send("b2 03 10", "b2 23 05", "b2 03 11", "b2 23 06")  # cc14 3 on channel 3
        out, _ = proc.communicate(timeout=30)
    finally:
        sender.close()
    assert proc.returncode == 0, out
    assert f"learned cc14 3 ch3 -> guidance ({path}:5)" in out
    assert path.read_text() == ("# my controller\nversion: 1\nmappings:\n  - {source: {osc: /a}, target: seed}  # keep me\n"
                                "  - {source: {midi: {cc14: 3, channel: 3}}, target: guidance}\n")


def test_fuzzed_mapping_edits_never_stop_the_daemon(rig):
    import random

    d, sender, path = rig
    rng = random.Random(7)
    bomb = "version: 1\na: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for c, p in zip("bcdefgh", "abcdefg"))
    edits = [bomb, "\x00\xff\xfe garbage", "version: 1\nmappings: [", "- just a list", "version: 1\n" + "x" * 2_000_000]
    edits += ["".join(rng.choice("{}[]:,-&*!|>'\"#\n abc0123") for _ in range(200)) for _ in range(5)]
    n0 = len(d.blocks())
    for text in edits:
        path.write_bytes(text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text)
        time.sleep(0.7)  # one reload poll each
    path.write_text(MAPPING)
    d.wait_for_log("reloaded")
    assert d.log().count("mapping reload refused") >= 5
    sender.send("b0 15 7f")
    assert until(lambda: state(d.osc_port)["/jamgen/prompt/1/weight"], lambda v: v == 1.0) == 1.0
    d.wait_for_blocks(n0 + 5)
    assert d.proc.poll() is None
