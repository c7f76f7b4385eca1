"""The generated Pure Data patch in real headless Pd (``pd -nogui -nosound``): it loads with no
error, and used as an abstraction it drives a running daemon and shows the daemon's feedback.

The wrapper patch the test writes holds ``[jamgen <daemon port> <feedback port>]`` (found through
``-path pd_patches``), prints whatever leaves its outlet (the feedback) and, once loaded, sends
``; jamgen-bpm 123.25`` and friends: the patch's own ``[r jamgen-...]`` receivers move its
widgets, whose output goes through ``[oscformat]`` and ``[netsend]`` like a mouse drag would.
Skipped only when ``pd`` is not installed (``scripts/setup.sh`` installs ``puredata-core``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from bridge.controls import REGISTRY
from bridge.surfaces_pd import receive_name
from tests.conftest import ROOT, free_udp_port
from tests.processes import stop as stop_process

PD = shutil.which("pd")
PATCHES = ROOT / "pd_patches"
needs_pd = pytest.mark.skipif(PD is None, reason="Pure Data is not installed (apt-get install puredata-core)")


class PdProcess:
    """``pd -nogui -nosound -noprefs -stderr -open FILE`` with its console lines collected."""

    def __init__(self, patch: Path, *extra: str):
        self.proc = subprocess.Popen([PD, "-nogui", "-nosound", "-noprefs", "-stderr", "-path", str(PATCHES),
                                      *extra, "-open", str(patch)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in list(self.lines) if text in line]
            if found:
                return found[-1]
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never printed by pd:\n" + "\n".join(self.lines))

    def stop(self) -> None:
        stop_process(self.proc)
        self._reader.join(2)


def errors(lines: list[str]) -> list[str]:
    return [line for line in lines if "error" in line.lower() or "couldn't create" in line
            or "connection failed" in line]


def test_receive_names_are_unique_pd_symbols():
    names = [receive_name(n) for n in REGISTRY]
    assert len(names) == len(set(names))
    assert all(" " not in n and "/" not in n and "$" not in n for n in names)


@needs_pd
def test_patch_loads_in_pd_without_errors():
    pd = PdProcess(PATCHES / "jamgen.pd", "-send", "pd quit")
    try:
        pd.proc.wait(20)
    finally:
        pd.stop()
    assert pd.proc.returncode == 0, pd.lines
    assert not errors(pd.lines), pd.lines


@needs_pd
def test_pd_patch_drives_the_daemon_and_shows_its_feedback(daemon_factory, tmp_path):
    from pythonosc.osc_message_builder import OscMessageBuilder

    from tests.test_midi_e2e import state, until

    d = daemon_factory()
    d.wait_for_blocks(2)
    feedback_port = free_udp_port()
    sets = {"bpm": "123.25", "harmony": "D F A", "prompts[3].text": "dub techno chords", "top_k": "17",
            "mute": "1", "prompts[2].weight": "0.25"}
    messages = " ".join(f"\\; {receive_name(name)} {value}" for name, value in sets.items())
    wrapper = tmp_path / "wrapper.pd"
    wrapper.write_text(
        "#N canvas 0 0 400 300 10;\n"
        f"#X obj 10 10 jamgen {d.osc_port} {feedback_port};\n"
        "#X obj 10 40 print fb;\n"
        "#X obj 100 10 loadbang;\n"
        "#X obj 100 35 delay 500;\n"
        f"#X msg 100 60 {messages};\n"
        "#X connect 0 0 1 0;\n#X connect 2 0 3 0;\n#X connect 3 0 4 0;\n")
    pd = PdProcess(wrapper)
    try:
        # subscribed on load: the daemon answers with its whole state, which Pd prints
        pd.wait_for("fb: list transport playing")
        # values set in Pd reach the daemon
        st = until(lambda: state(d.osc_port), lambda s: s.get("/jamgen/top_k") == 17, timeout=10)
        assert st["/jamgen/bpm"] == pytest.approx(123.25)
        assert st["/jamgen/harmony"] == "D F A"
        assert st["/jamgen/prompt/3/text"] == "dub techno chords"
        assert st["/jamgen/prompt/2/weight"] == pytest.approx(0.25, abs=1e-6)
        assert st["/jamgen/mute"] in (1, True)
        # and come back as feedback (the same path another controller's changes take)
        pd.wait_for("fb: list bpm 123.25")
        pd.wait_for("fb: list harmony D\\ F\\ A")
        # a change from another controller shows up in Pd
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b = OscMessageBuilder("/jamgen/guidance")
        b.add_arg(2.5)
        sock.sendto(b.build().dgram, ("127.0.0.1", d.osc_port))
        sock.close()
        pd.wait_for("fb: list guidance 2.5")
    finally:
        pd.stop()
    assert not errors(pd.lines), pd.lines
    assert "WARNING: OSC:" not in d.log(), d.log()  # no unknown address or bad argument from Pd
