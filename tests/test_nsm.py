"""bridge.nsm without the daemon: message handling, the session files, and the client against the test server
(tests/nsm_server.py) in this process, over real UDP. Quick (no JACK, no model)."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from bridge import nsm
from bridge.controls import ControlStore
from tests.nsm_server import NsmServer, encode


@pytest.fixture
def server(tmp_path):
    s = NsmServer(tmp_path / "session")
    yield s
    s.close()


@pytest.fixture
def wire():
    """A client whose server is a plain socket here: what it sends can be read back with ``wire.read()``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    client = nsm.NsmClient(f"osc.udp://127.0.0.1:{sock.getsockname()[1]}/")

    def read():
        from pythonosc import osc_packet

        data, _ = sock.recvfrom(65536)
        m = osc_packet.OscPacket(data).messages[0].message
        return m.address, tuple(m.params)

    client.read = read
    client.server_sock = sock
    yield client
    client.close()
    sock.close()


def test_parse_url():
    assert nsm.parse_url("osc.udp://localhost:11287/") == ("localhost", 11287)
    for bad in ("osc.tcp://h:1/", "osc.udp://h/", "http://h:1/", "osc.udp://h:port/", ""):
        with pytest.raises(nsm.NsmError) as err:
            nsm.parse_url(bad)
        assert "\n" not in str(err.value)


def test_open_arguments_are_checked():
    assert nsm.check_open_args(("/s/jamgen.nABCD", "jamgen", "jamgen.nABCD")).client_id == "jamgen.nABCD"
    for bad in [(), ("/s", "d"), ("/s", "d", 3), ("rel/path", "d", "id"), ("/s", "d", "a:b"), ("/s", "d", ""),
                ("/s", "d", "x" * 100), ("/s\x00", "d", "id"), ("/s", "d", "a\nb")]:
        with pytest.raises(nsm.NsmError):
            nsm.check_open_args(bad)


def test_announce_names_jamgen_its_capabilities_api_and_pid(wire):
    wire.start()
    address, args = wire.read()
    assert address == "/nsm/server/announce"
    name, caps, exe, major, minor, pid = args
    assert (name, caps, major, minor) == ("jamgen", ":dirty:", 1, 2)
    assert exe and pid == __import__("os").getpid()


def test_save_before_open_and_a_second_open_get_errors(wire, tmp_path):
    wire.handle("/nsm/client/save", ())
    assert wire.read() == ("/error", ("/nsm/client/save", nsm.ERR_NOT_NOW, "no session is open yet"))
    wire.handle("/nsm/client/open", (str(tmp_path / "a"), "jamgen", "jamgen.nAAAA"))
    wire.handle("/nsm/client/open", (str(tmp_path / "b"), "jamgen", "jamgen.nBBBB"))
    address, (path, code, message) = wire.read()
    assert (address, path, code) == ("/error", "/nsm/client/open", nsm.ERR_NOT_NOW) and "switch" in message


def test_malformed_open_gets_a_one_line_error(wire):
    wire.handle("/nsm/client/open", (1, 2.0))
    address, (path, code, message) = wire.read()
    assert (address, path, code) == ("/error", "/nsm/client/open", nsm.ERR_GENERAL)
    assert "3 strings" in message and "\n" not in message


def test_garbage_and_strangers_are_logged_and_ignored(wire, caplog):
    port = wire.server[1]
    for data in (b"\x00garbage", b"/nsm/client/open\x00\x00\x00\x00,sss\x00\x00\x00\x00\xff", b"", b"#bundle\x00"):
        wire.handle_datagram(data, ("127.0.0.1", port))
    wire.handle_datagram(encode("/nsm/client/unheard_of", 1), ("127.0.0.1", port))
    wire.handle_datagram(encode("/nsm/client/save"), ("127.0.0.1", port + 1))  # not the session manager
    wire.handle_datagram(encode("/reply"), ("127.0.0.1", port))  # no arguments at all
    for what in ("unparseable", "unknown message", "not the session manager"):
        assert what in caplog.text
    assert all("\n" not in r.getMessage() for r in caplog.records)


def test_session_files_round_trip_atomically(tmp_path):
    d = nsm.SessionDir(str(tmp_path / "jamgen.nABCD"))
    mapping = tmp_path / "m.yaml"
    mapping.write_text("prompts: []\n")
    assert d.prepare(str(mapping)) == str(d.mapping) and d.mapping.read_text() == "prompts: []\n"
    assert d.read_controls() is None  # a new session
    store = ControlStore({"prompts[0].text": "dub techno", "temperature": 0.7})
    d.write_controls(store.values())
    assert sorted(p.name for p in d.path.iterdir()) == ["controls.json", "mapping.yaml"]  # no temporary left
    saved = d.read_controls()
    assert saved["prompts[0].text"] == "dub techno" and saved["temperature"] == 0.7 and "transport" not in saved
    # The session's own mapping wins over another --mapping.
    other = tmp_path / "other.yaml"
    other.write_text("x")
    assert d.prepare(str(other)) == str(d.mapping) and d.mapping.read_text() == "prompts: []\n"


def test_a_corrupt_or_foreign_session_file_is_refused_and_bad_values_skipped(tmp_path, caplog):
    d = nsm.SessionDir(str(tmp_path / "s"))
    d.prepare(None)
    d.controls.write_text("{not json")
    with pytest.raises(nsm.NsmError) as err:
        d.read_controls()
    assert err.value.code == nsm.ERR_BAD_PROJECT and "controls.json:1: not valid JSON" in str(err.value)
    d.controls.write_text("[1, 2]")
    with pytest.raises(nsm.NsmError):
        d.read_controls()
    d.controls.write_text(json.dumps({"controls": {"temperature": 0.5, "no_such": 1, "guidance": "loud",
                                                   "transport": "stopped", "play": 1}}))
    assert d.read_controls() == {"temperature": 0.5}
    assert "no_such" in caplog.text and "guidance" in caplog.text


def test_client_against_the_test_server_opens_saves_and_reports_dirt(server, tmp_path, monkeypatch):
    monkeypatch.setenv("NSM_URL", server.url)
    client = nsm.NsmClient.from_environment()
    applied = {}
    try:
        request = client.open(None, lambda m, saved: applied.update(mapping=m, saved=saved), threading.Event())
        assert request.client_id == server.client_id and request.client_id.startswith("jamgen.n")
        assert applied == {"mapping": None, "saved": {}}
        assert server.wait_address("/reply", "/nsm/client/open").args[1].startswith("created ")
        store = ControlStore({"prompts[0].text": "bossa nova"})
        client.started(store)  # a new session: its files are written at once
        assert (server.client_path / "controls.json").exists()
        n = len(server.received)
        server.wait_address("/nsm/client/is_clean", after=n - 1)
        n = len(server.received)
        store.set("temperature", 0.6)
        store.set("temperature", 0.65)
        server.wait_address("/nsm/client/is_dirty", after=n)
        server.save()
        server.wait_address("/reply", "/nsm/client/save", after=n)
        server.wait_address("/nsm/client/is_clean", after=n)
        assert [r.address for r in server.received[n:]].count("/nsm/client/is_dirty") == 1
        saved = json.loads((server.client_path / "controls.json").read_text())["controls"]
        assert saved["temperature"] == 0.65 and saved["prompts[0].text"] == "bossa nova"
    finally:
        client.close()


def test_no_answer_means_unmanaged(monkeypatch, tmp_path):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))  # a silent "server"
    monkeypatch.setenv("NSM_URL", f"osc.udp://127.0.0.1:{sock.getsockname()[1]}/")
    monkeypatch.setattr(nsm, "ANNOUNCE_TIMEOUT", 0.3)
    client = nsm.NsmClient.from_environment()
    assert client.open(None, lambda *a: pytest.fail("applied"), threading.Event()) is None
    sock.close()
    monkeypatch.setenv("NSM_URL", "not a url")
    assert nsm.NsmClient.from_environment() is None


def test_stop_while_waiting_for_open(server, monkeypatch, tmp_path):
    server.auto_open = False
    monkeypatch.setenv("NSM_URL", server.url)
    client = nsm.NsmClient.from_environment()
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    try:
        with pytest.raises(nsm.NsmError, match="stopped while waiting"):
            client.open(None, lambda *a: None, stop)
    finally:
        client.close()


def test_plain_jamgen_under_a_session_manager_means_run(monkeypatch):
    from bridge import cli

    seen = []
    monkeypatch.setitem(cli.COMMANDS, "run", lambda parser, args: seen.append(args.command) or 0)
    monkeypatch.setenv("NSM_URL", "osc.udp://127.0.0.1:1/")
    assert cli.main([]) == 0 and seen == ["run"]
    monkeypatch.delenv("NSM_URL")
    assert cli.main([]) == 2 and seen == ["run"]  # without one: the help, as before
