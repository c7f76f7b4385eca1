"""Connecting the tests' own JACK clients to the daemon's ports, robust to the daemon still starting.

A port is listed as soon as its client registers it, but JACK refuses a connection to it until that client is
activated (jack_connect returns -1). The daemon registers, then activates, so a test client that saw the port
may still be refused for a moment: wait for the ports, then retry the connection until the deadline.
"""

from __future__ import annotations

import time

import jack


def wait_for_ports(client: jack.Client, names: list[str], deadline: float, stop=None) -> bool:
    """True once every named port exists; False at the deadline (or once ``stop()`` is true)."""
    while True:
        present = {port.name for port in client.get_ports()}
        if all(name in present for name in names):
            return True
        if time.monotonic() > deadline or (stop is not None and stop()):
            return False
        time.sleep(0.02)


def connect_when_ready(client: jack.Client, pairs, deadline: float, stop=None) -> str | None:
    """Connect each (source, destination) pair, retrying refusals; None, or one line saying what failed."""
    for src, dst in pairs:
        while True:
            try:
                client.connect(src, dst)
                break
            except jack.JackError as err:
                if time.monotonic() > deadline or (stop is not None and stop()):
                    return f"cannot connect {src} -> {getattr(dst, 'name', dst)}: {err}"
                time.sleep(0.05)
    return None
