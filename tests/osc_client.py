"""OSC from the tests' side: build a datagram, and collect what the daemon sends back for a while.

Why a module: every test that talks to the daemon over real UDP needs the same two things, and they were written
out four times."""

from __future__ import annotations

import socket
import time

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder


def message(address: str, *args) -> bytes:
    """One OSC message as a UDP datagram (argument types as python-osc infers them)."""
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def collect(sock: socket.socket, seconds: float) -> dict[str, list]:
    """Every message ``sock`` receives for ``seconds``, by address (each entry the message's arguments, in order
    of arrival). ``sock`` needs a timeout (e.g. 0.2 s) so the wait can end."""
    got: dict[str, list] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data, _ = sock.recvfrom(65536)
        except socket.timeout:
            continue
        msg = OscMessage(data)
        got.setdefault(msg.address, []).append(msg.params)
    return got
