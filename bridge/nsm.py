"""Non/New Session Manager (NSM) support: jamgen as a client in a Linux audio session.

Written from the NSM API document (New Session Manager, "API" chapter; API 1.x). When ``NSM_URL`` is set,
``jamgen run`` (or plain ``jamgen``, which is what a session manager launches) announces itself from its own
UDP socket::

    /nsm/server/announce "jamgen" ":dirty:" <executable> 1 2 <pid>

and then **defers** everything that depends on the session until ``/nsm/client/open path display_name
client_id`` arrives: the JACK client (named by ``client_id``: the API forbids registering one before
``open``), the mapping file and the controls' start-up values. Open is quick (read two small files); the
model loads after the reply, as it would without a session manager. No answer to the announce within
:data:`ANNOUNCE_TIMEOUT` seconds, an ``/error`` answer or a ``NSM_URL`` that is not ``osc.udp://host:port/``:
one warning line, and jamgen runs unmanaged, as the API asks.

The session directory is ``<path>/`` (created on open):

- ``controls.json``: every control's value (prompt texts and weights included; not the transport: a session
  opens playing) as ``{"jamgen_session": 1, "controls": {name: value}}``. Written atomically (temporary
  file, fsync, rename) on ``/nsm/client/save``, and once when a new session's start-up is complete (so it
  holds the model's own defaults). On open its values win over the mapping file's prompts and the command
  line's ``--prompt``/``--set``; an unknown control or a bad value is skipped with one warning line (a file
  from another jamgen version still opens), a file that is not JSON is refused with ``/error``
  ``ERR_BAD_PROJECT`` and jamgen exits with one line rather than overwrite it.
- ``mapping.yaml``: the mapping file in use. On open, a session without one gets a copy of ``--mapping``;
  one that has it uses it (``--mapping`` is then ignored, with a line saying so). jamgen always loads the
  session's copy, so edits to it hot-reload as usual and ``jamgen learn`` / ``/jamgen/learn`` write there.

Dirty state (``:dirty:``): after start-up, a control change (not the transport) sends
``/nsm/client/is_dirty`` once; a save sends ``/nsm/client/is_clean`` after its ``/reply``.
``:switch:`` is not claimed: a JACK client cannot be renamed, so a second ``open`` is refused with
``ERR_NOT_NOW`` and the session manager restarts jamgen instead. Quit is SIGTERM, which the daemon already
handles (no save: saving is the session manager's call).

Robustness: only datagrams from the session manager's port are read; an unparseable packet, an unknown
address or arguments of the wrong type are logged (one rate-limited line) and ignored; a control message
that cannot be done gets an ``/error`` reply with a one-line message. Nothing a server sends raises.

Threading: one receive thread (``jamgen-nsm``) reads the socket and answers ``save`` itself (it reads
``ControlStore.values`` and writes the session files). ``open`` is handed to the main thread, which waits
for it in :meth:`NsmClient.open` during start-up. ``is_dirty`` is sent from whichever thread changed a
control (a store listener: one datagram, under a lock).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pythonosc import osc_packet

from bridge.controls import REGISTRY, TRIGGER, ControlError, ControlStore
from bridge.osc import encode_message
from bridge.ratelimit import RateLimitedLogger

log = logging.getLogger(__name__)
warn = RateLimitedLogger(log)

APP_NAME = "jamgen"
CAPABILITIES = ":dirty:"
API_VERSION = (1, 2)
ANNOUNCE_TIMEOUT = 5.0  # seconds to wait for the announce reply before running unmanaged
CONTROLS_FILE = "controls.json"
MAPPING_FILE = "mapping.yaml"
SESSION_FORMAT = 1
NOT_SAVED = ("transport",)  # controls a session does not restore

# Error codes (NSM API, "Error Code Definitions").
ERR_GENERAL = -1
ERR_INCOMPATIBLE_API = -2
ERR_NOT_NOW = -8
ERR_BAD_PROJECT = -9
ERR_CREATE_FAILED = -10


class NsmError(Exception):
    """A session operation failed; ``code`` is the NSM error code, the message one line."""

    def __init__(self, message: str, code: int = ERR_GENERAL):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class OpenRequest:
    path: str
    display_name: str
    client_id: str


def parse_url(url: str) -> tuple[str, int]:
    """``osc.udp://host:port/`` -> ``(host, port)``.

    Raises:
      NsmError: anything else (one line).
    """
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme != "osc.udp":
        raise NsmError(f"NSM_URL {url!r} is not an osc.udp:// URL")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or not port:
        raise NsmError(f"NSM_URL {url!r} has no host:port")
    return parts.hostname, port


def check_open_args(args: tuple) -> OpenRequest:
    """The arguments of ``/nsm/client/open``, checked.

    Raises:
      NsmError: wrong count or types, a relative path, or a client id that cannot name a JACK client.
    """
    if len(args) != 3 or not all(isinstance(a, str) for a in args):
        raise NsmError(f"open needs 3 strings (path, display name, client id), got {_describe(args)}")
    path, display_name, client_id = args
    if not os.path.isabs(path) or "\x00" in path:
        raise NsmError(f"open: the session path must be absolute, got {path[:200]!r}", ERR_CREATE_FAILED)
    if not client_id or len(client_id) > 63 or ":" in client_id or not client_id.isprintable():
        raise NsmError(f"open: client id {client_id[:80]!r} cannot name a JACK client")
    return OpenRequest(path, display_name, client_id)


def _describe(args: tuple) -> str:
    return "(" + ", ".join(type(a).__name__ for a in args[:8]) + (", ..." if len(args) > 8 else "") + ")"


def executable_name() -> str:
    """What the session manager should launch next time: ``argv[0]``, or ``jamgen`` under ``python -m``."""
    name = sys.argv[0] if sys.argv and sys.argv[0] else APP_NAME
    return APP_NAME if name.endswith(".py") or name in ("-c", "-m") else name


# --- the session directory (plain file I/O) ----------------------------------------------------------------
def write_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` so a reader (or a crash) sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def saved_controls(data: Any, where: str) -> dict[str, Any]:
    """The control values of a parsed ``controls.json``; unknown names and bad values are skipped (logged).

    Raises:
      NsmError: not a jamgen session file at all (ERR_BAD_PROJECT).
    """
    if not isinstance(data, dict) or not isinstance(data.get("controls"), dict):
        raise NsmError(f"{where}: not a jamgen session file (no \"controls\" object)", ERR_BAD_PROJECT)
    values = {}
    for name, value in data["controls"].items():
        control = REGISTRY.get(name)
        if control is None or control.type == TRIGGER or name in NOT_SAVED:
            log.warning("%s: skipping unknown control %r", where, str(name)[:80])
            continue
        try:
            control.coerce(value)
        except ControlError as err:
            log.warning("%s: skipping %s", where, err)
            continue
        values[name] = value
    return values


class SessionDir:
    """The files of one session: ``<path>/controls.json`` and ``<path>/mapping.yaml``."""

    def __init__(self, path: str):
        self.path = Path(path)
        self.controls = self.path / CONTROLS_FILE
        self.mapping = self.path / MAPPING_FILE

    def prepare(self, mapping: str | None) -> str | None:
        """Create the directory; return the mapping file to load: the session's, else a copy of ``mapping``.

        Raises:
          NsmError: the directory or the copy cannot be made (ERR_CREATE_FAILED).
        """
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            if self.mapping.exists():
                if mapping and Path(mapping).resolve() != self.mapping.resolve():
                    log.info("NSM: using the session's mapping file %s (--mapping %s ignored)", self.mapping, mapping)
                return str(self.mapping)
            if mapping:
                write_atomically(self.mapping, Path(mapping).read_bytes())
                log.info("NSM: copied mapping file %s into the session as %s", mapping, self.mapping)
                return str(self.mapping)
        except OSError as err:
            raise NsmError(f"cannot create the session in {self.path}: {err.strerror or err}",
                           ERR_CREATE_FAILED) from None
        return None

    def read_controls(self) -> dict[str, Any] | None:
        """The saved control values; None for a new session (no file yet).

        Raises:
          NsmError: the file cannot be read or is not a session file (ERR_BAD_PROJECT).
        """
        try:
            text = self.controls.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as err:
            raise NsmError(f"cannot read {self.controls}: {getattr(err, 'strerror', None) or err}",
                           ERR_BAD_PROJECT) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise NsmError(f"{self.controls}:{err.lineno}: not valid JSON ({err.msg})", ERR_BAD_PROJECT) from None
        return saved_controls(data, str(self.controls))

    def write_controls(self, values: dict[str, Any]) -> None:
        """Save every control but the transport, atomically. Raises OSError."""
        saved = {name: value for name, value in values.items() if name not in NOT_SAVED}
        text = json.dumps({"jamgen_session": SESSION_FORMAT, "controls": saved}, indent=1, sort_keys=True)
        write_atomically(self.controls, (text + "\n").encode("utf-8"))


# --- the client ------------------------------------------------------------------------------------------
class NsmClient:
    """jamgen's side of the NSM protocol; see the module docstring for the flow and its threads.

    Args:
      url: ``NSM_URL``.
      sock: a bound UDP socket (tests); None opens one.
    """

    def __init__(self, url: str, sock: socket.socket | None = None):
        host, port = parse_url(url)
        self.url = url
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)
        if not infos:
            raise NsmError(f"NSM_URL {url!r}: cannot resolve {host}")
        family, _, _, _, self.server = infos[0]
        self._server_hosts = {info[4][0] for info in infos} | {"127.0.0.1", "::1"}
        if sock is None:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            loopback = self.server[0] in ("127.0.0.1", "::1") or self.server[0].startswith("127.")
            sock.bind(("127.0.0.1" if family == socket.AF_INET and loopback else "", 0))
        self.sock = sock
        self.sock.settimeout(0.2)
        self.server_name: str | None = None
        self.session: SessionDir | None = None
        self.store: ControlStore | None = None
        self._announced = threading.Event()
        self._refused: str | None = None
        self._opens: queue.SimpleQueue[OpenRequest] = queue.SimpleQueue()
        self._opened = False  # an open was accepted (a second is refused: no :switch:)
        self._lock = threading.Lock()  # the dirty state (held briefly: listeners run on writers' threads)
        self._write_lock = threading.Lock()  # one writer of the session files at a time
        self._new_session = False
        self._dirty = False
        self._tracking = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_environment(cls) -> NsmClient | None:
        """A started client when ``NSM_URL`` is set and usable; None (with one warning line) otherwise."""
        url = os.environ.get("NSM_URL")
        if not url:
            return None
        try:
            client = cls(url)
        except (NsmError, OSError) as err:
            log.warning("NSM: %s; running without session management", str(err) or err.__class__.__name__)
            return None
        client.start()
        return client

    # --- sending ---------------------------------------------------------------------------------
    def send(self, address: str, *args: Any) -> None:
        try:
            self.sock.sendto(encode_message(address, *args), self.server)
        except OSError as err:
            warn.warning("send", "NSM: cannot send %s to %s: %s", address, self.url, err.strerror or err)

    def reply(self, path: str, message: str) -> None:
        self.send("/reply", path, message)

    def error(self, path: str, code: int, message: str, logged: bool = False) -> None:
        """An ``/error`` reply; logged here unless the caller reports it itself (``logged``)."""
        if not logged:
            log.error("NSM: %s failed: %s", path, message)
        self.send("/error", path, int(code), message)

    # --- receiving (jamgen-nsm) -----------------------------------------------------------------
    def start(self) -> None:
        """Start the receive thread and announce."""
        self._thread = threading.Thread(target=self._serve, name="jamgen-nsm", daemon=True)
        self._thread.start()
        self.send("/nsm/server/announce", APP_NAME, CAPABILITIES, executable_name(), API_VERSION[0],
                  API_VERSION[1], os.getpid())

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, sender = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.05)  # e.g. ICMP port unreachable reported on a loopback socket
                continue
            self.handle_datagram(data, sender)

    def handle_datagram(self, data: bytes, sender: tuple) -> None:
        """Parse one datagram from ``sender`` and handle its messages; never raises."""
        if sender[1] != self.server[1] or sender[0] not in self._server_hosts:
            warn.warning("sender", "NSM: ignoring a datagram from %s:%s (not the session manager)", *sender[:2])
            return
        try:
            messages = [m.message for m in osc_packet.OscPacket(data).messages]
        except (osc_packet.ParseError, RecursionError, ValueError, IndexError, TypeError) as err:
            warn.warning("parse", "NSM: ignoring an unparseable packet of %d bytes: %s", len(data), str(err)[:120])
            return
        for message in messages:
            try:
                self.handle(message.address, tuple(message.params))
            except Exception as err:  # noqa: BLE001 - a hostile message must never stop the daemon
                warn.warning("handler", "NSM: ignoring %s: %s", str(message.address)[:80],
                             (str(err).splitlines() or [type(err).__name__])[0][:160])

    def handle(self, address: str, args: tuple) -> None:
        """One message from the session manager (the receive thread; tests call it directly)."""
        if address == "/reply" and args[:1] == ("/nsm/server/announce",):
            self.server_name = str(args[2]) if len(args) > 2 else "?"
            log.info("NSM: under session management by %s at %s", self.server_name, self.url)
            self._announced.set()
        elif address == "/error" and args[:1] == ("/nsm/server/announce",):
            self._refused = " ".join(str(a) for a in args[1:])[:200] or "no reason given"
            self._announced.set()
        elif address in ("/reply", "/error"):
            log.debug("NSM: %s %s", address, args[:3])
        elif address == "/nsm/client/open":
            try:
                request = check_open_args(args)
            except NsmError as err:
                self.error(address, err.code, str(err))
                return
            if self._opened:
                self.error(address, ERR_NOT_NOW, "jamgen cannot switch sessions while running (no :switch:)")
                return
            self._opened = True
            self._opens.put(request)
        elif address == "/nsm/client/save":
            self.save()
        elif address in ("/nsm/client/session_is_loaded", "/nsm/client/show_optional_gui",
                         "/nsm/client/hide_optional_gui"):
            log.debug("NSM: %s", address)
        else:
            warn.warning(f"address:{address[:40]}", "NSM: ignoring unknown message %s %s", address[:80],
                         _describe(args))

    # --- open (main thread, during start-up) -----------------------------------------------------
    def open(self, mapping: str | None, apply: Callable[[str | None, dict[str, Any]], None],
             stop: threading.Event) -> OpenRequest | None:
        """Wait for the announce reply and ``/nsm/client/open``; restore the session; reply.

        Args:
          mapping: the ``--mapping`` file (copied into a session that has none).
          apply: ``apply(mapping_file, saved_values)`` loads the mapping file and the start-up values
            (the saved ones win); raises with a one-line message if either is refused.
          stop: set by SIGTERM/SIGINT; waiting ends.

        Returns:
          The open request (its ``client_id`` names the JACK client), or None: running unmanaged
          (``apply`` was not called).

        Raises:
          NsmError: stopped while waiting, or the session directory could not be made or read (the server
            got ``/error``); whatever ``apply`` raised (the server got its first line).
        """
        if not self._wait(self._announced, ANNOUNCE_TIMEOUT, stop):
            if stop.is_set():
                raise NsmError("stopped while waiting for the session manager")
            log.warning("NSM: no answer from the session manager at %s in %.0f s; running without session "
                        "management", self.url, ANNOUNCE_TIMEOUT)
            self.close()
            return None
        if self._refused is not None:
            log.warning("NSM: the session manager refused jamgen (%s); running without session management",
                        self._refused)
            self.close()
            return None
        log.info("NSM: waiting for the session manager to open a session")
        while True:
            try:
                request = self._opens.get(timeout=0.1)
                break
            except queue.Empty:
                if stop.is_set():
                    raise NsmError("stopped while waiting for the session manager to open a session") from None
        session = SessionDir(request.path)
        try:
            mapping_file = session.prepare(mapping)
            saved = session.read_controls()
        except NsmError as err:
            self.error("/nsm/client/open", err.code, str(err), logged=True)  # the daemon exits with it
            raise
        try:
            apply(mapping_file, saved or {})
        except Exception as err:  # the caller's refusal: the server gets its first line, the caller all of it
            self.error("/nsm/client/open", ERR_BAD_PROJECT, (str(err).splitlines() or ["cannot open"])[0], logged=True)
            raise
        self.session, self._new_session = session, saved is None
        self.reply("/nsm/client/open", f"{'created' if saved is None else 'opened'} {request.path}")
        log.info("NSM: %s session %r as JACK client %r (%s)", "new" if saved is None else "restored",
                 request.display_name, request.client_id, request.path)
        return request

    def _wait(self, event: threading.Event, timeout: float, stop: threading.Event) -> bool:
        deadline = time.monotonic() + timeout
        while not event.wait(0.1):
            if stop.is_set() or time.monotonic() >= deadline:
                return False
        return True

    def started(self, store: ControlStore) -> None:
        """Start-up is complete: write a new session's files (with the model's defaults), track changes."""
        self.store = store
        if self.session is None:
            return
        if self._new_session:
            self._write()
        store.subscribe(self._on_control)
        with self._lock:
            self._tracking, self._dirty = True, False
        self.send("/nsm/client/is_clean")

    # --- save and dirty state ----------------------------------------------------------------------
    def _write(self) -> None:
        with self._write_lock:
            with self._lock:
                self._dirty = False
                values = self.store.values()
            self.session.write_controls(values)

    def save(self) -> None:
        """``/nsm/client/save``: write the session files, reply, then report clean (receive thread)."""
        path = "/nsm/client/save"
        if self.session is None or self.store is None:
            self.error(path, ERR_NOT_NOW, "no session is open yet" if self.session is None
                       else "jamgen is still starting")
            return
        try:
            self._write()
        except OSError as err:
            self.error(path, ERR_GENERAL, f"cannot write {self.session.controls}: {err.strerror or err}")
            return
        self.reply(path, f"saved {self.session.path}")
        log.info("NSM: saved the session to %s", self.session.path)
        with self._lock:
            if self._tracking and not self._dirty:
                self.send("/nsm/client/is_clean")

    def _on_control(self, name: str, value: Any) -> None:
        if name in NOT_SAVED or name not in REGISTRY or REGISTRY[name].type == TRIGGER:
            return
        with self._lock:
            if self._tracking and not self._dirty:
                self._dirty = True
                self.send("/nsm/client/is_dirty")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(1.0)
        try:
            self.sock.close()
        except OSError:
            pass
