"""Remote generation end to end: ``jamgen serve`` and daemons running ``--model remote:ws://...``, all real processes.

The server plays the tone test generator, whose pitch encodes the temperature it was generated with
(``tests/tone_generator.py``), so a recording says which session's controls made it, and its phase-continuous
blocks make a seam or a click show up as a jump no tone of that pitch can make.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile
from pythonosc.udp_client import SimpleUDPClient

import generator
from generator.core.contract import FRAME_SAMPLES, SAMPLE_RATE, GenerationControls
from tests.conftest import ROOT, DaemonProcess, record
from tests.remote_server import MIDI_MODEL, ServeProcess, next_message, session
from tests.tone_generator import note_off_offset

TOKEN = "s3cret-for-tests"


def _frequency(x: np.ndarray) -> float:
    """The tone's frequency from its rising zero crossings."""
    up = np.flatnonzero((x[:-1] <= 0) & (x[1:] > 0))
    assert len(up) > 10, "no tone"
    return (len(up) - 1) * SAMPLE_RATE / (up[-1] - up[0])


def _tone(temperature: float) -> float:
    return 220.0 * 2.0 ** temperature


def _max_step(temperature: float, amplitude: float = 0.5) -> float:
    """The largest sample-to-sample step a phase-continuous tone of this pitch makes."""
    return amplitude * 2 * np.pi * _tone(temperature) / SAMPLE_RATE


def _assert_continuous(x: np.ndarray, temperature: float, what: str) -> None:
    """No click (no step larger than the tone's own) and no gap (no run of silence)."""
    steps = np.abs(np.diff(x))
    assert steps.max() <= 1.05 * _max_step(temperature), f"{what}: a step of {steps.max():.3f} (a seam or a click)"
    loud = np.flatnonzero(np.abs(x) > 1e-4)
    assert loud.size and loud[0] < 100 and len(x) - loud[-1] < 100, f"{what}: silent at an end"
    assert np.diff(loud).max() < 200, f"{what}: a gap of {np.diff(loud).max()} near-silent samples"


def _daemon(jackd, tmp_path, name: str, url: str, *args: str, env: dict | None = None) -> DaemonProcess:
    (tmp_path / name).mkdir()
    return DaemonProcess(jackd, tmp_path / name, "--client-name", name, *args, model=f"remote:{url}", env=env)


def _refusals(url: str) -> dict[str, str]:
    """Each way a client can be refused, tried once; the server's one-line message by code."""
    import websockets

    seen = {}
    for code, setup in (("bad_token", {"token": "wrong"}), ("bad_token", {}),
                        ("unknown_model", {"token": TOKEN, "model": "nosuch"}),
                        ("unknown_model", {"token": TOKEN, "model": "../../etc/passwd"})):
        with session(url, setup) as ws:
            reply = next_message(ws)
            assert reply["type"] == "error" and reply["code"] == code, reply
            seen[code] = reply["message"]
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                ws.recv(timeout=5)
    with session(url, {"token": TOKEN}) as ws:  # malformed messages are dropped; the session goes on
        assert next_message(ws)["type"] == "ready"
        for bad in ("{not json", "[1, 2]", json.dumps({"type": "dance"}),
                    json.dumps({"type": "controls", "controls": {"temperature": "hot"}}),
                    json.dumps({"type": "request", "frames": 10_000})):
            ws.send(bad)
            reply = next_message(ws)
            assert reply["type"] == "error" and reply["code"] in ("malformed", "too_far_ahead"), (bad, reply)
            seen.setdefault("malformed", reply["message"])
        ws.send(b"\x00" * 8)
        assert next_message(ws)["code"] == "malformed"
        ws.send(json.dumps({"type": "request", "frames": 1}))
        chunk = ws.recv(timeout=5)
        assert isinstance(chunk, bytes) and len(chunk) > FRAME_SAMPLES * 8, "the session stopped streaming"
    with session(url, {"token": TOKEN}) as ws:  # an oversized frame ends the session
        assert next_message(ws)["type"] == "ready"
        ws.send("x" * 100_000)
        reply = next_message(ws)
        assert reply["code"] == "too_big", reply
        seen["too_big"] = reply["message"]
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            ws.recv(timeout=5)
    with session(url, {"token": TOKEN}) as ws:  # a flood ends the session
        assert next_message(ws)["type"] == "ready"
        try:
            for _ in range(1000):
                ws.send(json.dumps({"type": "controls", "controls": {}}))
        except websockets.exceptions.ConnectionClosed:
            pass
        reply = next_message(ws)
        assert reply["code"] == "rate", reply
        seen["rate"] = reply["message"]
    return seen


def test_two_daemons_stream_at_once_each_following_its_own_controls_through_refusals(jackd, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    server = ServeProcess(tmp_path / "serve.log", "--token-file", str(token_file)).start()
    env = {"JAMGEN_REMOTE_TOKEN": TOKEN}
    a = _daemon(jackd, tmp_path, "remA", server.url, "--set", "temperature=0.5", env=env)
    b = _daemon(jackd, tmp_path, "remB", server.url, "--set", "temperature=1.0", env=env)
    temperatures = [0.5, 0.0, 0.5]  # A's, changed once per recording
    try:
        a.wait_for_blocks(5)
        b.wait_for_blocks(5)
        # A server xrun (a cycle missed on a loaded machine) breaks the recording itself: one more try then.
        for attempt in range(2):
            before, after = temperatures[attempt], temperatures[attempt + 1]
            rec = record(jackd, tmp_path / "ab.wav", 5.0, ports=("remA:out_L", "remB:out_L"))
            deadline = time.monotonic() + 20
            while not re.search(r"remB:out_L\n\s+rec:in_1", jackd.connections()) and time.monotonic() < deadline:
                time.sleep(0.05)
            recording = time.monotonic()
            refusals = _refusals(server.url)  # while both stream
            time.sleep(max(0.0, recording + 2.5 - time.monotonic()))  # the change lands mid-recording
            t_change = time.time()
            SimpleUDPClient("127.0.0.1", a.osc_port).send_message("/jamgen/temperature", after)
            out, err = rec.communicate(timeout=60)
            assert rec.returncode == 0, (out, err)
            summary = json.loads(out.strip().splitlines()[-1])
            if summary["xruns"] == 0:
                break
        assert summary["xruns"] == 0, "every recording had server xruns: the machine is overloaded"
        assert summary["frames"] >= 5 * SAMPLE_RATE
        blocks_a, blocks_b = a.blocks(), b.blocks()
        assert a.proc.poll() is None and b.proc.poll() is None
    finally:
        a.stop()
        b.stop()
        server.stop()
    audio, _ = soundfile.read(tmp_path / "ab.wav", dtype="float32")
    # JACK2 applies a new connection a cycle or two after the recorder asks for it: those read digital zeros.
    start = max(int(np.argmax(audio[:, c] != 0)) for c in (0, 1))
    assert start <= 2 * 1024, f"the recording starts with {start} samples of silence"
    x_a, x_b = audio[start:, 0], audio[start:, 1]
    # Each continuous (every seam of 5 s of 80 ms blocks, and the refusals, happened in here), each its own pitch.
    _assert_continuous(x_b, 1.0, "daemon B")
    assert abs(_frequency(x_b) - _tone(1.0)) < 2.0
    _assert_continuous(x_a, max(before, after), "daemon A")
    second = SAMPLE_RATE // 2
    assert abs(_frequency(x_a[:second]) - _tone(before)) < 2.0, "A did not start at its own temperature"
    assert abs(_frequency(x_a[-second:]) - _tone(after)) < 2.0, "A's new temperature never reached its audio"
    # The block logs: A took its change, B never saw it; neither daemon ran dry.
    assert {blk["controls"]["temperature"] for blk in blocks_b} == {1.0}
    assert all(blk["controls"]["temperature"] == (after if blk["wall"] > t_change else before)
               for blk in blocks_a if t_change - 2.0 < blk["wall"] and abs(blk["wall"] - t_change) > 0.05)
    assert blocks_a[-1]["controls"]["temperature"] == after
    for d in (a, b):
        assert "underruns 0," in [line for line in d.log().splitlines() if "stopping:" in line][-1], d.log()
    for d in (a, b):
        assert "remote: connected to ws://127.0.0.1" in d.log() and "remote: connection to" not in d.log(), d.log()
    # Each refusal was one clear line to the client and one to the server's log.
    assert "wrong or missing token" in refusals["bad_token"]
    assert "unknown model '../../etc/passwd'; this server serves: python:tests.tone_generator:factory" \
        in refusals["unknown_model"]
    assert "100000 bytes is over the limit of 65536" in refusals["too_big"]
    assert "not JSON" in refusals["malformed"]
    assert "more than 200 messages a second" in refusals["rate"]
    log = server.log()
    for code in ("bad_token", "unknown_model", "malformed", "too_big", "rate"):
        assert f"refused ({code})" in log, log
    assert TOKEN not in log


def _count(d: DaemonProcess, text: str) -> int:
    return d.log().count(text)


def test_killing_the_server_fades_out_and_the_daemon_plays_again_within_5_s(jackd, tmp_path):
    server = ServeProcess(tmp_path / "serve.log").start()
    wav = tmp_path / "played.wav"
    d = _daemon(jackd, tmp_path, "remK", server.url, "--record", str(wav))
    try:
        d.wait_for_blocks(10)
        time.sleep(0.5)
        server.kill()
        d.wait_for_log("lost (")
        backs = _count(d, "remote: audio back")
        time.sleep(1.0)
        assert d.proc.poll() is None, "the daemon exited when its server died"
        during = len(d.blocks())
        server.start()
        deadline = server.ready_at + 5.0
        while _count(d, "remote: audio back") == backs and time.monotonic() < deadline:
            time.sleep(0.02)
        # generate() has the audio again; JACK plays it a pre-buffer (150 ms) later
        assert time.monotonic() + 0.2 < deadline, f"no audio within 5 s of the server's return:\n{d.log()}"
        time.sleep(1.0)
        assert len(d.blocks()) > during + 5, "the daemon stopped generating"
        assert d.stop() == 0, d.log()
    finally:
        d.stop()
        server.stop()
    assert "connected again to ws://127.0.0.1" in d.log() and "fresh context" in d.log(), d.log()
    x = soundfile.read(wav, dtype="float32")[0][:, 0]
    # Fades, never a click: no step anywhere larger than the tone's own (the default temperature, 1.1).
    steps = np.abs(np.diff(x))
    assert steps.max() <= 1.05 * _max_step(1.1), f"a click: a step of {steps.max():.3f}"
    quiet = np.abs(x) < 1e-4
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    runs = [(s + 1, e + 1) for s, e in zip(edges[:-1], edges[1:]) if quiet[s + 1]]
    start, end = max(runs, key=lambda r: r[1] - r[0])
    assert (end - start) / SAMPLE_RATE > 0.8, "no silence while the server was gone"
    before, after = x[start - 480:start], x[end:end + 480]
    assert np.abs(before[-48:]).max() < 0.1 < np.abs(before[:96]).max(), "the sound did not fade out"
    assert np.abs(after[:48]).max() < 0.1 < np.abs(after[-96:]).max(), "the sound did not fade in"
    assert abs(_frequency(x[end:end + SAMPLE_RATE // 2]) - _tone(1.1)) < 2.0


def test_generate_keeps_its_budget_and_notes_travel_with_their_chunk(tmp_path):
    """In process, against a real server: MIDI arrives with its block; a dead server costs no block more than
    half its length, fades out with note-offs for what was sounding, and the stream comes back by itself."""
    server = ServeProcess(tmp_path / "serve.log", "--models", MIDI_MODEL).start()
    gen = generator.load(f"remote:{server.url}{MIDI_MODEL}")
    try:
        assert gen.makes_notes and gen.control_defaults == {"guidance": 1.5}
        gen.init_state(0)
        controls = GenerationControls()
        notes = []
        for _ in range(40):
            audio, _ = gen.generate(None, controls, 2)
            last, events = audio, gen.drain_midi()
            if np.abs(audio).max() > 0:
                notes.append(events)
            time.sleep(0.02)
        assert len(notes) >= 30
        assert notes[0] == [(0, bytes((0x90, 60, 100))), (note_off_offset(2), bytes((0x80, 60, 0)))], notes[0]
        ons = [data[1] for events in notes for _, data in events if data[0] == 0x90]
        assert ons == [60 + i % 12 for i in range(len(ons))] and len(ons) >= 30, "a chunk lost its notes"
        server.kill()
        times, blocks = [], []
        for _ in range(10):
            t0 = time.perf_counter()
            audio, _ = gen.generate(None, controls, 2)
            times.append(time.perf_counter() - t0)
            blocks.append((audio[:, 0].copy(), gen.drain_midi()))
            time.sleep(0.04)
        assert max(times) < 0.04 + 0.02, f"generate waited {max(times) * 1000:.0f} ms (budget 40 ms)"
        stream = np.concatenate([last[:, 0]] + [x for x, _ in blocks])  # from the last block before the kill
        assert np.abs(np.diff(stream)).max() <= 1.05 * _max_step(controls.temperature), "a click"
        faded = next(i for i, (x, _) in enumerate(blocks) if np.abs(x[-24:]).max() < 0.01)
        x, events = blocks[faded]
        assert all(np.abs(later).max() == 0 for later, _ in blocks[faded + 1:])
        if np.abs(x).max() > 0:  # the fading block ends the note it played
            assert events[-1][1][0] == 0x80, events
        server.start()
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            audio, _ = gen.generate(None, controls, 2)
            if np.abs(audio).max() > 0:
                break
            time.sleep(0.04)
        assert np.abs(audio).max() > 0, "no audio within 5 s of the server's return"
        assert np.abs(audio[:24, 0]).max() < 0.05, "the sound came back without a fade-in"
        assert gen.drain_midi()[-1][1][1] == 60, "not a fresh context"  # the first note of a new stream
    finally:
        gen.close()
        server.stop()


def test_load_refusals_and_serve_settings_are_one_line_errors(tmp_path):
    server = ServeProcess(tmp_path / "serve.log").start()
    try:
        with pytest.raises(generator.ModelLoadError, match=r"must look like remote:ws://HOST:PORT"):
            generator.load("remote:http://127.0.0.1:1/")
        with pytest.raises(generator.ModelLoadError, match=r"unknown model 'nosuch'; this server serves: python:"):
            generator.load(f"remote:{server.url}nosuch")
    finally:
        server.stop()
    with pytest.raises(generator.ModelLoadError, match=rf"cannot load model 'remote:{server.url}'.*(refused|Errno)"):
        generator.load(f"remote:{server.url}")  # nothing listens there any more
    env = {k: v for k, v in os.environ.items() if k != "JAMGEN_REMOTE_TOKEN"}
    for args, text in ((["--host", "0.0.0.0"], "not a loopback address: give a shared secret"),
                       (["--token-file", str(tmp_path / "missing")], "cannot read token file"),
                       (["--tls-cert", str(tmp_path / "c.pem")], "--tls-cert and --tls-key go together")):
        r = subprocess.run([sys.executable, "-m", "bridge.cli", "serve", "--model", "python:tests.tone_generator:"
                            "factory", "--port", "0", *args], cwd=ROOT, capture_output=True, text=True, env=env,
                           timeout=30)
        assert r.returncode == 1, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and text in r.stderr, (args, r.stderr)


def test_wss_directly_with_a_certificate_the_client_trusts(tmp_path, monkeypatch):
    """``--tls-cert/--tls-key``: the daemon's side checks the certificate (here a private one it is told to
    trust through ``SSL_CERT_FILE``) and refuses one it does not trust."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = ServeProcess(tmp_path / "serve.log", "--tls-cert", str(cert), "--tls-key", str(key)).start()
    url = f"remote:wss://127.0.0.1:{server.port}/"
    try:
        assert f"on wss://127.0.0.1:{server.port}" in server.log()
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        with pytest.raises(generator.ModelLoadError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            generator.load(url)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        gen = generator.load(url)
        try:
            gen.init_state(0)
            for _ in range(20):
                audio, _ = gen.generate(None, GenerationControls(temperature=0.5), 2)
                if np.abs(audio).max() > 0:
                    break
                time.sleep(0.04)
            assert abs(_frequency(audio[:, 0]) - _tone(0.5)) < 5.0, "no tone over wss://"
        finally:
            gen.close()
    finally:
        server.stop()
