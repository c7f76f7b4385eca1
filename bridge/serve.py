"""``jamgen serve``: any generator jamgen can load, streamed to remote daemons over WebSocket.

Why a separate process: the models worth hearing want a GPU, but the performer's machine is the one with the
sound card, the controllers and the DAW. The daemon there runs ``--model remote:ws://HOST:PORT/NAME``
(:mod:`generator.backends.remote`) and drives this server through the usual generator contract; the protocol is
written down in ``docs/remote.md``.

One WebSocket connection is one session: one stream with its own generator state, controls and position. The
models named on the command line are loaded (and warmed up) once, before the server listens; sessions share the
loaded model and each calls its own ``init_state``. A model that makes notes keeps a stream on the instance (its
synth and the notes sounding), so each live session of such a model takes its own instance from a small pool
(loaded on demand, kept for the next session).

Flow control is the client's: a ``request`` asks for N more frames, and a chunk is generated only when one is
asked for. So the client's audio clock paces the stream and two machines' clocks never drift apart. Each loaded
instance has one worker thread (``jamgen-serve-<name>``) that runs its ``init_state``/``generate``/
``drain_midi`` calls in order, so sessions sharing a model never call it at once; the event loop thread
(``jamgen-serve``, the main thread) only parses, checks and sends.

Security: loopback only unless told otherwise, and then only with a shared secret (``--token-file`` or the
``JAMGEN_REMOTE_TOKEN`` environment variable, never the command line, where ``ps`` shows it). When a token is
configured every client must present it, loopback ones too (a reverse proxy on this host makes remote clients
look local). Messages are bounded in size and in rate per session, requests in how far ahead they reach, and a
client names a model from the list this server serves, never a path. Every refusal is one ``error`` message to
the client and one log line; the other sessions go on.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl

from bridge.serve_sessions import (MAX_AHEAD_FRAMES, MAX_MESSAGE_BYTES, MAX_REQUEST_FRAMES,  # noqa: F401
                                   MESSAGES_PER_SECOND, PROTOCOL, TOKEN_ENV, WIRE_LIMIT, ConnectionLost, Refusal,
                                   Server, ServeOptions, clean_controls, is_loopback, load_models, pack_chunk,
                                   parse, read_token)

log = logging.getLogger(__name__)


class _WebsocketsConnection:
    """A ``websockets`` server connection as a :class:`bridge.serve_sessions.Connection`."""

    def __init__(self, ws):
        self.ws = ws
        self.peer = ws.remote_address

    @staticmethod
    def _lost(closed) -> ConnectionLost:
        rcvd, sent = closed.rcvd, closed.sent
        normal = rcvd is not None and rcvd.code in (1000, 1001)
        return ConnectionLost(normal, str((rcvd.reason or rcvd.code) if rcvd else "no close frame"),
                              sent.code if sent is not None else None)

    async def recv(self):
        import websockets

        try:
            return await self.ws.recv()
        except websockets.exceptions.ConnectionClosed as closed:
            raise self._lost(closed) from None

    async def send(self, data) -> None:
        import websockets

        try:
            await self.ws.send(data)
        except websockets.exceptions.ConnectionClosed as closed:
            raise self._lost(closed) from None

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)


def _tls(options: ServeOptions) -> ssl.SSLContext | None:
    if not options.tls_cert:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(options.tls_cert, options.tls_key)
    return context


async def _serve(server: Server, tls: ssl.SSLContext | None) -> None:
    import websockets.asyncio.server

    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    o = server.options
    async with websockets.asyncio.server.serve(
            lambda ws: server.handle(_WebsocketsConnection(ws)), o.host, o.port, max_size=WIRE_LIMIT,
            compression=None, ssl=tls, ping_interval=5, ping_timeout=10, close_timeout=2,
            server_header=None) as ws_server:
        port = next(iter(ws_server.sockets)).getsockname()[1]
        guard = "token required" if server.token else "loopback clients only, no token"
        log.info("serving %s on %s://%s:%d (%s)", ", ".join(server.models), "wss" if tls else "ws", o.host, port,
                 guard)
        await stop
        log.info("shutting down: closing %d session(s)", len(server.sessions))
        ws_server.close(close_connections=True)
        await ws_server.wait_closed()


def check_options(options: ServeOptions) -> str | None:
    """The settings both servers refuse before loading anything; returns the shared secret (or None).

    Raises:
      ValueError: a setting that cannot be served (one line): a non-loopback host without a token, a bad token
        file, a TLS half, a port out of range.
    """
    if not 0 <= options.port < 65536:
        raise ValueError(f"--port must be in 0..65535, not {options.port}")
    if bool(options.tls_cert) != bool(options.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    token = read_token(options.token_file)
    if token is None and not is_loopback(options.host):
        raise ValueError(f"--host {options.host} is not a loopback address: give a shared secret with "
                         f"--token-file FILE or ${TOKEN_ENV}")
    return token


def serve(options: ServeOptions) -> int:
    """Load the models, listen, serve until SIGTERM/SIGINT. Returns the exit status.

    Raises:
      ValueError: a setting that cannot be served (see :func:`check_options`), or an unreadable certificate.
      generator.ModelLoadError: a model that does not load.
    """
    token = check_options(options)
    try:
        tls = _tls(options)
    except (OSError, ssl.SSLError) as err:
        raise ValueError(f"cannot load the TLS certificate {options.tls_cert}: {err}") from None
    logging.getLogger("websockets").setLevel(logging.WARNING)  # our own lines say when sessions open and close
    asyncio.run(_serve(Server(options, load_models(options), token), tls))
    return 0
