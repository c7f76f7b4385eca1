"""A generator on another machine: ``--model remote:ws://HOST:PORT[/NAME]`` (or ``wss://``).

Why: the models worth hearing want a GPU, and the machine with the sound card, the controllers and the DAW often
has none. ``jamgen serve`` (:mod:`bridge.serve`) runs the model there; this class drives it through the usual
:class:`~generator.core.contract.Generator` contract, so the daemon needs no change. The protocol is written down
in ``docs/remote.md``.

How a block is made: :meth:`RemoteGenerator.generate` sends the block's controls at once when they changed, asks
the server for enough frames to keep the jitter buffer full, and returns the next block from it. The buffer's
depth follows the measured round trips of the chunks (the network plus the server's generation and queueing):
a chunk is asked for 1.5x their p99 plus 10 ms before it is needed (whole blocks early when half a block's wait
does not cover that), one block earlier for 30 s after a late chunk. ``generate`` waits at most half a block for
a chunk, so it never holds the generation thread longer than the block's budget.

When audio stops coming (a lost connection, or a chunk later than the buffer covers) the block in hand fades out
over 10 ms and silence follows, with a note-off for every note still sounding; when it comes back it fades in,
once the buffer holds its full depth again. Never a click, never an exception into the daemon.

Threads: the daemon's generation thread calls the contract's methods; one background thread (``jamgen-remote``)
runs an asyncio loop that connects, sends, receives, and reconnects after a loss with back-off (0.25 s doubling
to 2 s), each time with a fresh context (a new server session). One lock (``_cv``) guards what both touch.
Each event is one log line: connected, lost, refused, a late chunk, audio back, the buffer depth changing.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import math
import os
import random
import struct
import threading
import time
import urllib.parse
from typing import Any

import numpy as np

from generator.core.contract import (CHANNELS, FRAME_RATE, FRAME_SAMPLES, SAMPLE_RATE, GenerationControls,
                                     Generator, Latency, MidiEvent)

log = logging.getLogger(__name__)

PROTOCOL = 1
TOKEN_ENV, TOKEN_FILE_ENV = "JAMGEN_REMOTE_TOKEN", "JAMGEN_REMOTE_TOKEN_FILE"
FADE = 480  # samples (10 ms) of a fade in or out: short enough to keep the music, long enough not to click
BUDGET = 0.5  # of a block's duration: the longest generate() waits for a late chunk
TARGET_FLOOR, TARGET_CAP = 0.02, 2.0  # seconds of jitter buffer beyond the block being made and the fade reserve
HOLD_SECONDS = 30.0  # a depth grown after a late chunk is kept this long
BACKOFF_FIRST, BACKOFF_CAP = 0.25, 2.0
CONNECT_TIMEOUT = 5.0
MAX_CHUNK_BYTES = 2 * 1024 * 1024  # 50 frames of stereo float32 (768 KB) and their header, with room
_RAMP = (0.5 - 0.5 * np.cos(np.pi * (np.arange(FADE) + 0.5) / FADE)).astype(np.float32)[:, None]  # 0 -> 1


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``remote:ws://host:port[/path]/name`` -> (``ws://host:port[/path]/``, ``name`` or None for the default).

    The model is the last path segment (URL-quoted: a ``/`` in a name is ``%2F``), so a reverse proxy may serve
    the server under a path of its own (``wss://host/jamgen/groove``).

    Raises:
      ValueError: not a ws:// or wss:// address with a host (one line).
    """
    url = spec[len("remote:"):] if spec.startswith("remote:") else spec
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"model spec {spec!r} must look like remote:ws://HOST:PORT[/MODEL] or remote:wss://...")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as err:
        raise ValueError(f"model spec {spec!r}: {err}") from None
    prefix, _, last = (parts.path or "/").rpartition("/")
    return f"{parts.scheme}://{parts.netloc}{prefix}/", urllib.parse.unquote(last) or None


def read_token() -> str | None:
    """The shared secret: ``$JAMGEN_REMOTE_TOKEN``, else the file named by ``$JAMGEN_REMOTE_TOKEN_FILE``.

    Raises:
      ValueError: the file cannot be read (one line, naming it).
    """
    token = os.environ.get(TOKEN_ENV, "").strip()
    path = os.environ.get(TOKEN_FILE_ENV, "")
    if not token and path:
        try:
            with open(path, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as err:
            raise ValueError(f"cannot read ${TOKEN_FILE_ENV} {path}: {err.strerror}") from None
    return token or None


def unpack_chunk(raw: bytes) -> tuple[dict[str, Any], np.ndarray]:
    """A server's binary message -> (header, float32 audio [samples, 2]) (see docs/remote.md).

    Raises:
      ValueError: a header or length that does not add up.
    """
    if len(raw) < 4:
        raise ValueError("a binary message shorter than its header length")
    size = struct.unpack_from("<I", raw)[0]
    header = json.loads(raw[4:4 + size])
    pcm = raw[4 + size:]
    frames = int(header.get("frames", -1))
    if len(pcm) != frames * FRAME_SAMPLES * CHANNELS * 4:
        raise ValueError(f"a chunk of {len(pcm)} PCM bytes for {frames} frames")
    return header, np.frombuffer(pcm, dtype="<f4").reshape(-1, CHANNELS)


class JitterBuffer:
    """The received audio of one context, in stream order, with its MIDI at absolute stream positions.

    Not thread-safe on its own: :class:`RemoteGenerator` holds its lock around every call.

    Attributes:
      available: samples received and not yet played.
      faded: True until audio is played from it (then after each fade-out): the next read fades in.
    """

    def __init__(self):
        self._chunks: collections.deque[np.ndarray] = collections.deque()
        self._midi: list[tuple[int, bytes]] = []
        self.available = 0
        self.read_pos = self.write_pos = 0
        self.faded = True

    def append(self, position: int, audio: np.ndarray, midi: list) -> None:
        if position != self.write_pos:
            log.warning("remote: a chunk at sample %d, expected %d (played on as it comes)", position, self.write_pos)
            self.write_pos = position
        self._chunks.append(audio)
        self._midi += [(position + int(offset), bytes(data)) for offset, data in midi]
        self.available += len(audio)
        self.write_pos += len(audio)

    def take(self, m: int) -> tuple[np.ndarray, list[MidiEvent]]:
        """The next ``m`` samples (a new array) and the MIDI events among them, offsets relative to the first."""
        m = min(m, self.available)
        pieces, need = [], m
        while need:
            head = self._chunks[0]
            if len(head) <= need:
                pieces.append(self._chunks.popleft())
                need -= len(head)
            else:
                pieces.append(head[:need])
                self._chunks[0] = head[need:]
                need = 0
        audio = np.concatenate(pieces) if pieces else np.zeros((0, CHANNELS), np.float32)
        end = self.read_pos + m
        events = [(p - self.read_pos, d) for p, d in self._midi if p < end]
        self._midi = [(p, d) for p, d in self._midi if p >= end]
        self.read_pos, self.available = end, self.available - m
        return audio, events


class RemoteGenerator(Generator):
    """A generator served by ``jamgen serve`` at ``url``; see the module docstring.

    Args:
      url: ``ws://host:port/`` or ``wss://...``.
      model: the name of a model the server lists, or None for its default.
      token: the server's shared secret, or None.

    Raises:
      ConnectionError: the first connection failed or was refused (one line: the address and why).
    """

    def __init__(self, url: str, model: str | None = None, token: str | None = None):
        self.url, self.model, self.token = url, model, token
        self._cv = threading.Condition()
        self._buffer, self._tail = JitterBuffer(), None  # the tail: an old context's audio, faded out next
        self._context = 0
        self._connected = False
        self._outbox: asyncio.Queue | None = None
        self._pending: collections.deque[tuple[float, int]] = collections.deque()  # (sent at, samples) asked
        self._rtts: collections.deque[float] = collections.deque(maxlen=64)
        self._target, self._block = TARGET_FLOOR, 0.08  # the depth (s); the last block's duration (s)
        self._ahead, self._boost, self._boost_at = 1, 0, -HOLD_SECONDS  # whole blocks asked for early
        self._seed, self._controls_sent = 0, None
        self._midi: list[MidiEvent] = []
        self._sounding: set[tuple[int, int]] = set()
        self._carry: list[MidiEvent] = []  # note-offs for the next block (after a reset)
        self._silent_since: float | None = None
        self._limits: dict[str, Any] = {}
        self._closing = False
        self._first = threading.Event()
        self._first_error: str | None = None
        self._ready: dict[str, Any] = {}
        self._session = None  # the server's name for the current session
        self._ws = None  # the current connection (for a polite close)
        self._last_reason = ""  # why the last connection attempt ended (logged once, not per retry)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="jamgen-remote", daemon=True)
        self._thread.start()
        self._first.wait(3 * CONNECT_TIMEOUT)
        if self._first_error is not None or not self._ready:
            if self._first_error is not None:  # the connection thread has returned by itself
                self._closing = True
                self._thread.join(3.0)
            else:
                self.close()
            raise ConnectionError(f"{url}: {self._first_error or 'no answer to setup'}")
        ready = self._ready
        self.makes_notes = bool(ready.get("makes_notes"))
        self.follows_clock = bool(ready.get("follows_clock"))
        self.control_defaults = dict(ready.get("control_defaults") or {})
        self.latency = {k: Latency(*v) for k, v in (ready.get("latency") or {}).items()} or self.latency

    # --- the contract (the daemon's generation thread) ------------------------------------------
    def init_state(self, seed: int = 0) -> int:
        """A fresh context: what was buffered is dropped (as a local model's would be: the daemon flushes its own
        buffer on a stop), and the server starts a new stream from ``seed``; it fades in."""
        with self._cv:
            self._seed = int(seed)
            self._new_context(self._context + 1, fade=False)
            self._carry = self._note_offs(0)  # what was sounding ends with the next block
            if self._connected:
                self._send({"type": "playback", "action": "reset", "seed": self._seed, "context": self._context})
            return self._context

    def generate(self, state: Any, controls: GenerationControls, frames: int) -> tuple[np.ndarray, Any]:
        n = frames * FRAME_SAMPLES
        self._block = frames / FRAME_RATE
        deadline = time.monotonic() + BUDGET * self._block
        wire = controls.as_dict()
        clock = wire.pop("clock")
        with self._cv:
            self._retarget()
            if wire != self._controls_sent:  # at once, before the request that should hear them
                self._controls_sent = wire
                self._send({"type": "controls", "controls": wire})
            if self._tail is None:
                buf = self._buffer
                want = n + FADE + int(self._target * SAMPLE_RATE)
                need = want if buf.faded else n + FADE  # back only with the full depth, so it stays back
                self._request(frames, want, clock)
                while self._buffer is buf and buf.available < need and self._connected:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
            if self._tail is not None:  # the context changed: fade out what was playing
                audio, events = self._fade_out(self._tail, n)
                self._tail = None
            elif buf.available >= need:
                audio, events = buf.take(n)
                self._track(events)
                if buf.faded:
                    audio[:FADE] *= _RAMP
                    buf.faded = False
                    self._back()
            elif buf.faded:
                audio, events = np.zeros((n, CHANNELS), np.float32), []
            else:
                available = buf.available
                audio, events = self._fade_out(buf, n)
                self._late(available, n)
            self._midi, self._carry = self._carry + events, []
            return audio, state

    def embed_style(self, text: str) -> np.ndarray:
        """Nothing to embed here: the server embeds (and caches) the prompts its model is given."""
        return np.zeros(0, np.float32)

    def drain_midi(self) -> list[MidiEvent]:
        events, self._midi = self._midi, []
        return events

    def close(self) -> None:
        """Stop the connection thread (tests and benches; the daemon simply exits)."""
        self._closing = True
        with self._cv:
            self._connected = False
        if self._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(3.0)
            except Exception:  # noqa: BLE001 - closing is best effort: the thread is a daemon thread
                pass
        self._thread.join(3.0)

    async def _shutdown(self) -> None:
        """Say goodbye (close code 1000, so the server logs a normal close), then stop every task."""
        if self._ws is not None:
            await self._ws.close()
        for task in asyncio.all_tasks(self._loop):
            if task is not asyncio.current_task():
                task.cancel()

    # --- the buffer (under the lock) --------------------------------------------------------------
    def _new_context(self, context: int, fade: bool = True) -> None:
        """From now on only chunks of ``context`` count; with ``fade``, the next block fades the old buffer out."""
        if fade and not self._buffer.faded and self._tail is None:
            self._tail = self._buffer
        elif not fade:
            self._tail = None
        self._buffer = JitterBuffer()
        self._context = context
        self._pending.clear()
        self._cv.notify_all()

    def _fade_out(self, buf: JitterBuffer, n: int) -> tuple[np.ndarray, list[MidiEvent]]:
        """Up to ``n`` samples of ``buf`` ending in a fade, then silence; every sounding note ends at the fade."""
        audio, events = buf.take(n)
        m = len(audio)
        fade = min(FADE, m)
        if fade:
            audio[m - fade:] *= _RAMP[::-1][FADE - fade:]
        self._track(events)
        events += self._note_offs(max(0, m - 1))
        buf.faded = True
        self._silent_since = time.monotonic()
        if m < n:
            audio = np.concatenate([audio, np.zeros((n - m, CHANNELS), np.float32)])
        return audio, events

    def _note_offs(self, offset: int) -> list[MidiEvent]:
        """A note-off at ``offset`` for every note still sounding, which then sounds no more."""
        offs = [(offset, bytes((0x80 | ch, note, 0))) for ch, note in sorted(self._sounding)]
        self._sounding.clear()
        return offs

    def _track(self, events: list[MidiEvent]) -> None:
        for _offset, data in events:
            if len(data) == 3 and data[0] & 0xE0 == 0x80:  # note on/off
                key = (data[0] & 0x0F, data[1])
                if data[0] & 0xF0 == 0x90 and data[2] > 0:
                    self._sounding.add(key)
                else:
                    self._sounding.discard(key)

    def _request(self, frames: int, want: int, clock: dict[str, float] | None) -> None:
        """Ask for chunks until what is buffered and on its way covers ``want`` samples."""
        if not self._connected:
            return
        frames = min(frames, int(self._limits.get("max_request_frames", frames)))
        asked = sum(s for _, s in self._pending)
        limit = int(self._limits.get("max_ahead_frames", 250)) * FRAME_SAMPLES
        outstanding = self._buffer.available + asked
        while outstanding < want and asked + frames * FRAME_SAMPLES <= limit:
            msg: dict[str, Any] = {"type": "request", "frames": frames}
            if clock is not None:  # where the clock will be when this chunk starts playing
                ahead = outstanding / SAMPLE_RATE * clock["bpm"] / 60.0
                msg["clock"] = {**clock, "beat": clock["beat"] + ahead}
            self._send(msg)
            self._pending.append((time.monotonic(), frames * FRAME_SAMPLES))
            outstanding += frames * FRAME_SAMPLES
            asked += frames * FRAME_SAMPLES

    def _send(self, msg: dict[str, Any]) -> None:
        if self._connected and self._outbox is not None:
            self._loop.call_soon_threadsafe(self._outbox.put_nowait, msg)

    def _retarget(self) -> None:
        """The jitter buffer's depth from the measured round trips (and a recent late chunk's boost).

        Chunks are asked for when a block is made. What the next block needs beyond the depth is asked for only
        then, and waited for up to half a block; so a chunk must be on its way ``lead`` = 1.5x the p99 round trip
        + 10 ms before it is needed, and whatever 3/8 of a block does not cover (the rest of the half is kept for
        the threads' wake-ups on a busy machine) is asked for whole blocks early; fewer again only with a 25 %
        margin. Until 16 round trips are measured, one block early. Over loopback or a LAN, after that, none.
        """
        rtts = sorted(self._rtts) or [0.0]
        p99 = rtts[min(len(rtts) - 1, int(0.99 * len(rtts)))]
        lead = 1.5 * p99 + 0.01
        ahead = self._blocks_early(lead)
        if ahead < self._ahead:  # down only with a margin, so a p99 near a step does not flap
            ahead = min(self._ahead, self._blocks_early(1.25 * lead))
        if len(self._rtts) < 16:  # too few round trips to trust yet: a block early, as after a late chunk
            ahead = max(ahead, 1)
        if time.monotonic() - self._boost_at < HOLD_SECONDS:
            ahead = max(ahead, self._boost)
        self._target = min(TARGET_CAP, TARGET_FLOOR + ahead * self._block)
        if ahead != self._ahead:
            log.info("remote: jitter buffer %.0f ms: asking %d block(s) early (chunk round trip p50 %.0f ms, "
                     "p99 %.0f ms)", self._target * 1000, ahead, rtts[len(rtts) // 2] * 1000, p99 * 1000)
            self._ahead = ahead

    def _blocks_early(self, lead: float) -> int:
        """Whole blocks to ask early so a chunk has ``lead``; a quarter of the half block's wait is kept back for
        the threads' own wake-ups on a busy machine."""
        return max(0, math.ceil((lead - 0.75 * BUDGET * self._block) / self._block))

    def _late(self, available: int, n: int) -> None:
        self._boost, self._boost_at = self._ahead + 1, time.monotonic()
        if self._connected:
            log.warning("remote: a chunk came late (%.0f of %.0f ms buffered): faded out; asking %d block(s) early "
                        "for %.0f s", available * 1000 / SAMPLE_RATE, n * 1000 / SAMPLE_RATE, self._boost,
                        HOLD_SECONDS)
        self._retarget()

    def _back(self) -> None:
        if self._silent_since is not None:
            log.info("remote: audio back after %.1f s of silence", time.monotonic() - self._silent_since)
        self._silent_since = None

    # --- the connection (the jamgen-remote thread) ------------------------------------------------
    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._connections())
        except asyncio.CancelledError:
            pass
        finally:
            self._first.set()

    async def _connections(self) -> None:
        """Connect, stream until the connection ends, then reconnect with back-off; forever (until close)."""
        import websockets

        backoff, attempts, lost_at = BACKOFF_FIRST, 0, None
        while not self._closing:
            try:
                async with websockets.connect(self.url, open_timeout=CONNECT_TIMEOUT, ping_interval=2,
                                              ping_timeout=4, close_timeout=1, max_size=MAX_CHUNK_BYTES,
                                              compression=None, proxy=None) as ws:
                    self._ws = ws
                    context = await self._setup(ws)
                    self._connected_to(context, lost_at, attempts)
                    backoff, attempts, lost_at = BACKOFF_FIRST, 0, None
                    reason = await self._pump(ws)
            except _Refused as err:
                reason = f"the server refused: {err}"
            except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException, ValueError) as err:
                reason = f"{type(err).__name__}: {err}".splitlines()[0]
            except Exception as err:  # noqa: BLE001 - this loop must outlive any surprise: it is the way back
                log.exception("remote: unexpected error on the connection to %s", self.url)
                reason = f"{type(err).__name__}: {err}".splitlines()[0]
            if not self._first.is_set():  # the first connection is the load: fail it with the reason
                self._first_error = reason
                self._first.set()
                return
            if self._closing:
                return
            self._lost(reason, attempts)
            attempts += 1
            lost_at = lost_at or time.monotonic()
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(BACKOFF_CAP, backoff * 2)

    async def _setup(self, ws) -> int:
        with self._cv:
            context = self._context + 1
            setup = {"type": "setup", "protocol": PROTOCOL, "model": self.model, "seed": self._seed,
                     "context": context, "controls": self._controls_sent or {}}
        if self.token is not None:
            setup["token"] = self.token
        await ws.send(json.dumps(setup))
        raw = await asyncio.wait_for(ws.recv(), CONNECT_TIMEOUT)
        msg = json.loads(raw) if isinstance(raw, str) else {}
        if msg.get("type") == "error":
            raise _Refused(str(msg.get("message", "no reason given")))
        if msg.get("type") != "ready":
            raise _Refused(f"expected ready, got {str(raw)[:80]!r}")
        shape = (msg.get("sample_rate"), msg.get("channels"), msg.get("frame_samples"))
        if shape != (SAMPLE_RATE, CHANNELS, FRAME_SAMPLES):
            raise _Refused(f"the server streams {shape}, not (48000, 2, 1920)")
        self._ready = self._ready or msg
        self._limits = dict(msg.get("limits") or {})
        self._session = msg.get("session")
        return context

    def _connected_to(self, context: int, lost_at: float | None, attempts: int) -> None:
        with self._cv:
            self._outbox = asyncio.Queue()
            self._connected = True
            reset = self._context >= context  # init_state ran during the handshake: its seed wins
            self._new_context(self._context + 1 if reset else context)
            if reset:
                self._send({"type": "playback", "action": "reset", "seed": self._seed, "context": self._context})
        name = self._ready.get("model")
        if lost_at is None:
            log.info("remote: connected to %s: model %s (session %s)", self.url, name, self._session)
        else:
            log.info("remote: connected again to %s after %.1f s (%d attempts): session %s, fresh context",
                     self.url, time.monotonic() - lost_at, attempts + 1, self._session)
        self._first.set()

    async def _pump(self, ws) -> str:
        """Send what the generation thread queued and take in chunks until the connection ends; why it ended."""
        import websockets

        async def send():
            while True:
                await ws.send(json.dumps(await outbox.get()))

        async def receive():
            async for raw in ws:
                if isinstance(raw, bytes):
                    self._on_chunk(raw)
                else:
                    msg = json.loads(raw)
                    if msg.get("type") == "error":
                        log.warning("remote: the server says (%s): %s", msg.get("code"), msg.get("message"))

        outbox = self._outbox
        tasks = [asyncio.create_task(send()), asyncio.create_task(receive())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
        err = next(iter(done)).exception()
        if err is None or isinstance(err, websockets.exceptions.ConnectionClosed):
            code, why = ws.close_code, ws.close_reason
            return f"closed by the server ({code}{': ' + why if why else ''})" if code not in (None, 1006) \
                else "the connection dropped"
        return f"{type(err).__name__}: {err}".splitlines()[0]

    def _on_chunk(self, raw: bytes) -> None:
        header, audio = unpack_chunk(raw)
        now = time.monotonic()
        with self._cv:
            if header.get("context") != self._context:
                return  # a chunk of a stream that was reset meanwhile
            if self._pending:
                self._rtts.append(now - self._pending.popleft()[0])
            self._buffer.append(int(header["position"]), audio, header.get("midi") or [])
            self._cv.notify_all()

    def _lost(self, reason: str, attempts: int) -> None:
        with self._cv:
            was = self._connected
            self._connected, self._outbox = False, None
            self._new_context(self._context)  # the buffer fades out; nothing more comes for it
        if was:
            log.warning("remote: connection to %s lost (%s): fading out, reconnecting", self.url, reason)
        elif reason != self._last_reason and (attempts == 0 or "refused:" in reason):
            log.warning("remote: cannot reach %s (%s); retrying every %.1f s at most", self.url, reason, BACKOFF_CAP)
        else:  # the same again: once is news, every 2 s is noise
            log.debug("remote: still cannot reach %s (%s)", self.url, reason)
        self._last_reason = reason


class _Refused(Exception):
    """The server answered setup with an error (its one-line message)."""


def load(spec: str) -> RemoteGenerator:
    """``remote:ws[s]://HOST:PORT[/MODEL]`` -> a connected :class:`RemoteGenerator`.

    Raises:
      ValueError: a malformed spec or an unreadable token file; ConnectionError: the server cannot be reached or
        refused (one line each).
    """
    url, model = parse_spec(spec)
    try:
        import websockets  # noqa: F401
    except ImportError:
        raise ValueError("the remote backend needs the websockets package (pip install websockets)") from None
    return RemoteGenerator(url, model, read_token())
