"""A small NSM server for tests, written from the NSM API document (Debian 12 ships no ``nsmd``).

It does what a session manager does to one client, over real UDP, and records everything the client sends:

- listens on ``127.0.0.1:<free port>``; :meth:`NsmServer.env` gives a child process ``NSM_URL`` for it;
- checks ``/nsm/server/announce s:name s:capabilities s:executable i:major i:minor i:pid`` and answers
  ``/reply "/nsm/server/announce" s:message s:server_name s:server_capabilities`` (or ``/error`` with
  ``ERR_INCOMPATIBLE_API`` for a major version above 1, ``ERR_GENERAL`` for malformed arguments);
- then, unless told not to, sends ``/nsm/client/open s:path s:display_name s:client_id``, where ``client_id``
  is the announced name, a dot and a unique ``n`` + four letters id, and ``path`` is
  ``<session dir>/<client_id>`` (what ``nsmd`` does);
- :meth:`NsmServer.save` sends ``/nsm/client/save`` (only after an open was answered, as the API says);
- records ``/reply``, ``/error``, ``/nsm/client/is_dirty`` / ``is_clean`` and anything else, in order.

Quit is SIGTERM to the client, which the test sends itself.
"""

from __future__ import annotations

import random
import socket
import string
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pythonosc import osc_packet
from pythonosc.osc_message_builder import OscMessageBuilder

ERR_GENERAL = -1
ERR_INCOMPATIBLE_API = -2
SERVER_CAPABILITIES = ":server-control:broadcast:optional-gui:"


@dataclass
class Received:
    address: str
    args: tuple
    sender: tuple
    time: float


def encode(address: str, *args: Any) -> bytes:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg, "i" if isinstance(arg, int) else "f" if isinstance(arg, float) else "s")
    return builder.build().dgram


class NsmServer:
    """One session with one client; see the module docstring.

    Args:
      session_dir: the session's directory (a client's path is ``<session_dir>/<client_id>``).
      auto_open: send ``open`` right after answering the announce.
      client_id: reuse this id (restoring a session); None makes a new one on announce.
    """

    def __init__(self, session_dir: Path, auto_open: bool = True, client_id: str | None = None):
        self.session_dir = Path(session_dir)
        self.auto_open = auto_open
        self.client_id = client_id
        self.client: tuple | None = None  # the client's address: where its announce came from
        self.announce: Received | None = None
        self.received: list[Received] = []
        self.open_answered = threading.Event()
        self._cond = threading.Condition()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="test-nsmd", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"osc.udp://127.0.0.1:{self.port}/"

    def env(self, base: dict | None = None) -> dict:
        return dict(base or {}, NSM_URL=self.url)

    @property
    def client_path(self) -> Path:
        return self.session_dir / self.client_id

    # --- sending ---------------------------------------------------------------------------------
    def send(self, address: str, *args: Any) -> None:
        assert self.client is not None, "no client has announced"
        self.sock.sendto(encode(address, *args), self.client)

    def send_raw(self, data: bytes) -> None:
        assert self.client is not None, "no client has announced"
        self.sock.sendto(data, self.client)

    def open(self) -> None:
        self.send("/nsm/client/open", str(self.client_path), "jamgen", self.client_id)

    def save(self) -> None:
        assert self.open_answered.is_set(), "the API sends save only after an open"
        self.send("/nsm/client/save")

    # --- receiving -------------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, sender = self.sock.recvfrom(65536)
            except (socket.timeout, OSError):
                continue
            try:
                messages = [m.message for m in osc_packet.OscPacket(data).messages]
            except Exception:  # noqa: BLE001 - a test server records what it cannot parse
                messages = []
                self._record(Received("(unparseable)", (data,), sender, time.monotonic()))
            for m in messages:
                r = Received(m.address, tuple(m.params), sender, time.monotonic())
                if m.address == "/nsm/server/announce":
                    self._announce(r)
                if m.address == "/reply" and r.args[:1] == ("/nsm/client/open",) \
                        or m.address == "/error" and r.args[:1] == ("/nsm/client/open",):
                    self.open_answered.set()
                self._record(r)

    def _record(self, r: Received) -> None:
        with self._cond:
            self.received.append(r)
            self._cond.notify_all()

    def _announce(self, r: Received) -> None:
        self.client = r.sender
        types = tuple(type(a) for a in r.args)
        if types != (str, str, str, int, int, int):
            self.sock.sendto(encode("/error", "/nsm/server/announce", ERR_GENERAL,
                                    "announce needs s:name s:capabilities s:executable i:major i:minor i:pid"),
                             r.sender)
            return
        if r.args[3] > 1:
            self.sock.sendto(encode("/error", "/nsm/server/announce", ERR_INCOMPATIBLE_API,
                                    "incompatible API version"), r.sender)
            return
        self.announce = r
        if self.client_id is None:
            self.client_id = f"{r.args[0]}.n" + "".join(random.choices(string.ascii_uppercase, k=4))
        self.sock.sendto(encode("/reply", "/nsm/server/announce", "Howdy, what took you so long?",
                                "jamgen test session manager", SERVER_CAPABILITIES), r.sender)
        if self.auto_open:
            self.open()

    def wait_for(self, predicate: Callable[[Received], bool], timeout: float = 30.0, after: int = 0) -> Received:
        """The first message (from index ``after`` on) matching ``predicate``; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for r in self.received[after:]:
                    if predicate(r):
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching message in {timeout} s; got "
                                         f"{[(r.address, r.args) for r in self.received]}")
                self._cond.wait(left)

    def wait_address(self, address: str, first_arg: Any = None, timeout: float = 30.0, after: int = 0) -> Received:
        return self.wait_for(lambda r: r.address == address and (first_arg is None or r.args[:1] == (first_arg,)),
                             timeout, after)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1.0)
        self.sock.close()
