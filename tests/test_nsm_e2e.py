"""End-to-end: ``jamgen run`` under the test NSM server (tests/nsm_server.py), a real jackd, real processes."""

from __future__ import annotations

import json
import time

import pytest
from pythonosc.udp_client import SimpleUDPClient

from tests.conftest import DaemonProcess
from tests.nsm_server import NsmServer

MAPPING = """\
version: 1
prompts:
  - {text: "minimal techno", weight: 1.0}
mappings: []
"""


def _wait_for_port(jackd, port: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port in jackd.ports():
            return
        time.sleep(0.1)
    raise AssertionError(f"{port} never appeared: {jackd.ports()}")


def _wait_for_controls(d: DaemonProcess, predicate, timeout: float = 20.0) -> None:
    """Until a block was generated with controls matching ``predicate`` (every OSC message applied)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(predicate(b["controls"]) for b in d.blocks()):
            return
        time.sleep(0.05)
    raise AssertionError(f"no block with the expected controls:\n{d.log()}")


def test_a_session_is_opened_saved_and_restored(jackd, tmp_path):
    mapping = tmp_path / "mine.yaml"
    mapping.write_text(MAPPING)
    server = NsmServer(tmp_path / "session")
    first = second = None
    try:
        (tmp_path / "first").mkdir()
        first = DaemonProcess(jackd, tmp_path / "first", "--mapping", str(mapping), env=server.env())
        server.wait_address("/reply", "/nsm/client/open", timeout=60)
        assert server.announce.args[:2] == ("jamgen", ":dirty:") and server.announce.args[3:5] == (1, 2)
        assert server.announce.args[5] == first.proc.pid
        # The JACK client is named by the client id, and only that one registers.
        _wait_for_port(jackd, f"{server.client_id}:out_L")
        assert not [p for p in jackd.ports() if p.startswith("jamgen:")], jackd.ports()
        first.wait_for_blocks(3)
        session = server.client_path
        assert (session / "mapping.yaml").read_text() == MAPPING  # the mapping in use now lives in the session
        assert "minimal techno" in (session / "controls.json").read_text()  # a new session is saved at once
        n = len(server.received)
        osc = SimpleUDPClient("127.0.0.1", first.osc_port)
        osc.send_message("/jamgen/temperature", 0.5)
        osc.send_message("/jamgen/prompt/2", ["warm analog synth pads", 0.8])
        server.wait_address("/nsm/client/is_dirty", after=n)
        _wait_for_controls(first, lambda c: any(t == "warm analog synth pads" for t, _ in c["prompts"]))
        server.save()
        server.wait_address("/reply", "/nsm/client/save", after=n)
        server.wait_address("/nsm/client/is_clean", after=n)
        saved = json.loads((session / "controls.json").read_text())["controls"]
        assert saved["temperature"] == 0.5 and saved["prompts[2].text"] == "warm analog synth pads"
        assert first.stop() == 0  # quit: SIGTERM
        # A new daemon in the same session (the server reopens the same client id) plays what was saved.
        server.close()
        server = NsmServer(tmp_path / "session", client_id=server.client_id)
        (tmp_path / "second").mkdir()
        second = DaemonProcess(jackd, tmp_path / "second", env=server.env())  # no --mapping: the session's
        assert server.wait_address("/reply", "/nsm/client/open", timeout=60).args[1].startswith("opened ")
        block = second.wait_for_blocks(1)[0]
        assert block["controls"]["temperature"] == 0.5
        prompts = dict(block["controls"]["prompts"])  # weights normalised: 1.0 and 0.8 of 1.8
        assert prompts == pytest.approx({"minimal techno": 1 / 1.8, "warm analog synth pads": 0.8 / 1.8}, abs=1e-3)
        assert "using the session's mapping" not in second.log()
        _wait_for_port(jackd, f"{server.client_id}:out_L")
    finally:
        for d in (first, second):
            if d is not None:
                d.stop()
        server.close()


def test_garbage_from_the_server_is_logged_and_ignored(jackd, tmp_path):
    server = NsmServer(tmp_path / "session")
    d = None
    try:
        d = DaemonProcess(jackd, tmp_path, env=server.env())
        server.wait_address("/reply", "/nsm/client/open", timeout=60)
        server.wait_address("/nsm/client/is_clean", timeout=60)  # start-up is complete
        d.wait_for_blocks(2)
        n = len(server.received)
        server.send_raw(b"\x00\x01garbage\xff" * 50)
        server.send_raw(b"/nsm/client/open\x00\x00\x00\x00,sss\x00\x00\x00\x00")  # arguments missing
        server.send("/nsm/client/open", 42, 3.5)  # wrong types: an /error, nothing else
        server.send("/nsm/client/open", "/tmp/elsewhere", "x", "jamgen.nXXXX")  # no :switch:
        server.send("/nsm/client/no_such_thing", "x")
        err = server.wait_address("/error", "/nsm/client/open", after=n)
        assert "\n" not in err.args[2]
        server.save()  # still answering
        server.wait_address("/reply", "/nsm/client/save", after=n)
        assert d.proc.poll() is None, d.log()
        log = d.log()
        assert "NSM: ignoring an unparseable packet" in log and "NSM: ignoring unknown message" in log
        assert "Traceback" not in log
        blocks = len(d.blocks())
        d.wait_for_blocks(blocks + 2)  # still playing
        assert d.stop() == 0
    finally:
        if d is not None:
            d.stop()
        server.close()


def test_a_broken_session_file_is_refused_with_one_line(jackd, tmp_path):
    server = NsmServer(tmp_path / "session", client_id="jamgen.nBADX")
    (tmp_path / "session" / "jamgen.nBADX").mkdir(parents=True)
    (tmp_path / "session" / "jamgen.nBADX" / "controls.json").write_text("{oops")
    d = None
    try:
        d = DaemonProcess(jackd, tmp_path, env=server.env())
        err = server.wait_address("/error", "/nsm/client/open", timeout=60)
        assert err.args[1] == -9 and "not valid JSON" in err.args[2]
        assert d.proc.wait(30) == 1
        errors = [line for line in d.log().splitlines() if ": ERROR: " in line]
        assert len(errors) == 1 and "controls.json:1: not valid JSON" in errors[0], d.log()
        assert (tmp_path / "session" / "jamgen.nBADX" / "controls.json").read_text() == "{oops"  # not overwritten
    finally:
        if d is not None:
            d.stop()
        server.close()
