"""The protocol and sessions of ``jamgen serve``, whatever carries the WebSocket (docs/remote.md).

Why a module of its own: two servers speak the same protocol. :mod:`bridge.serve` listens with the ``websockets``
library in one process; :mod:`bridge.serve_ray` runs the same sessions inside Ray Serve replicas behind Ray's
proxy (a FastAPI/Starlette WebSocket). Both hand each accepted connection to :meth:`Server.handle` through the
small :class:`Connection` interface, so checks, refusals, flow control and the per-model worker threads exist once.

One WebSocket connection is one session: one stream with its own generator state, controls and position. The
served models are loaded (and warmed up) once; sessions share a loaded model and each calls its own
``init_state``. A model that makes notes keeps a stream on the instance (its synth and the notes sounding), so
each live session of such a model takes its own instance from a small pool (loaded on demand, kept for the next
session).

Flow control is the client's: a ``request`` asks for N more frames, and a chunk is generated only when one is
asked for. So the client's audio clock paces the stream and two machines' clocks never drift apart. Each loaded
instance has one worker thread (``jamgen-serve-<name>``) that runs its ``init_state``/``generate``/
``drain_midi`` calls in order, so sessions sharing a model never call it at once; the event loop thread only
parses, checks and sends.

Every refusal is one ``error`` message to the client and one log line; the other sessions go on.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import hmac
import ipaddress
import itertools
import json
import logging
import math
import os
import struct
import time
from typing import Any, Protocol

import numpy as np

import bridge.checks  # noqa: F401  (installs the harmony check used when controls arrive)
import generator as generators
from bridge import gc_guard
from bridge.controls import GENERATION_CONTROLS, NUM_PROMPTS, REGISTRY, ControlError
from generator.core.contract import (CHANNELS, FRAME_SAMPLES, SAMPLE_RATE, GenerationControls, Generator,
                                     check_audio)

log = logging.getLogger(__name__)

PROTOCOL = 1
TOKEN_ENV = "JAMGEN_REMOTE_TOKEN"
MAX_MESSAGE_BYTES = 64 * 1024  # a controls message with 8 full prompts is under 3 KiB
WIRE_LIMIT = 4 * MAX_MESSAGE_BYTES  # past this the WebSocket layer itself closes (code 1009) before we read it
MAX_REQUEST_FRAMES = 50  # 2 s of audio in one chunk
MAX_AHEAD_FRAMES = 250  # 10 s asked for and not yet sent
MESSAGES_PER_SECOND, MESSAGE_BURST = 200.0, 400  # a 40 ms block sends at most 2 (controls, request)
SETUP_TIMEOUT = 10.0
PLAYBACK_ACTIONS = ("play", "pause", "stop", "reset")


class Refusal(Exception):
    """A message or client the server will not serve: ``code`` for programs, ``message`` (one line) for people.

    Attributes:
      close: end the session after saying so (trust and resource refusals); False drops just the message.
    """

    def __init__(self, code: str, message: str, close: bool = True):
        super().__init__(message)
        self.code, self.message, self.close = code, message, close


class ConnectionLost(Exception):
    """The peer is gone. ``normal``: it closed politely (1000/1001); ``detail``: what the close said, for the log;
    ``code``: the close code we sent, when we did (1009: a frame over the wire limit, closed by the transport)."""

    def __init__(self, normal: bool, detail: str = "", sent_code: int | None = None):
        super().__init__(detail)
        self.normal, self.detail, self.sent_code = normal, detail, sent_code


class Connection(Protocol):
    """One accepted WebSocket, as :class:`Server` sees it (an adapter per server library).

    Attributes:
      peer: the client's (host, port), as the transport saw it.
    """

    peer: tuple[str, int]

    async def recv(self) -> str | bytes:
        """The next message (text as ``str``, binary as ``bytes``). Raises :class:`ConnectionLost`."""

    async def send(self, data: str | bytes) -> None:
        """Send one text or binary message. Raises :class:`ConnectionLost`."""

    async def close(self, code: int, reason: str) -> None:
        """Close with ``code`` and a short ``reason``; never raises."""


@dataclasses.dataclass
class ServeOptions:
    """What ``jamgen serve`` was asked for (its flags of the same names)."""

    model: str
    models: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8765
    token_file: str | None = None
    max_sessions: int = 16
    tls_cert: str | None = None
    tls_key: str | None = None


def read_token(token_file: str | None) -> str | None:
    """The shared secret from ``token_file`` (surrounding white space dropped), else ``$JAMGEN_REMOTE_TOKEN``.

    Raises:
      ValueError: an unreadable or empty file (one line, naming it).
    """
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as err:
            raise ValueError(f"cannot read token file {token_file}: {err.strerror}") from None
        if not token:
            raise ValueError(f"token file {token_file} is empty")
        if os.stat(token_file).st_mode & 0o077:
            log.warning("token file %s is readable by others (chmod 600 it)", token_file)
        return token
    return os.environ.get(TOKEN_ENV, "").strip() or None


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback; names other than ``localhost`` are not."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def clean_controls(data: Any) -> GenerationControls:
    """A client's controls checked against the registry (types, ranges clamped, texts checked) and built.

    Raises:
      Refusal: not an object, an unknown name, a wrong type or a bad text (one line, not closing).
    """
    if not isinstance(data, dict):
        raise Refusal("malformed", "controls must be an object of generation controls", close=False)
    out: dict[str, Any] = {}
    try:
        for name, value in data.items():
            if name in GENERATION_CONTROLS:
                out[name], _note = REGISTRY[name].coerce(value)
            elif name == "prompts":
                if not isinstance(value, list) or len(value) > NUM_PROMPTS:
                    raise ControlError(f"prompts must be a list of at most {NUM_PROMPTS} [text, weight] pairs")
                pairs = []
                for pair in value:
                    if not isinstance(pair, list) or len(pair) != 2:
                        raise ControlError("each prompt must be a [text, weight] pair")
                    pairs.append((REGISTRY["prompts[0].text"].coerce(pair[0])[0],
                                  REGISTRY["prompts[0].weight"].coerce(pair[1])[0]))
                out["prompts"] = pairs
            elif name == "clock":
                out["clock"] = _clean_clock(value)
            else:
                raise ControlError(f"unknown generation control {name!r}")
        return GenerationControls.from_dict(out)
    except (ControlError, ValueError) as err:
        raise Refusal("malformed", f"controls: {err}", close=False) from None


def _clean_clock(value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    keys = {"beat", "beats_per_bar", "bpm"}
    if not isinstance(value, dict) or not set(value) <= keys or "beat" not in value:
        raise ControlError(f"clock must be null or an object with beat[, beats_per_bar, bpm], not {value!r:.60}")
    numbers = {k: v for k, v in value.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if len(numbers) != len(value) or not all(math.isfinite(v) for v in numbers.values()):
        raise ControlError("clock values must be finite numbers")
    return {k: float(v) for k, v in numbers.items()}


def pack_chunk(header: dict[str, Any], audio: np.ndarray) -> bytes:
    """One binary WebSocket message: header length (uint32 LE), the JSON header, then float32 LE PCM."""
    head = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<I", len(head)) + head + np.ascontiguousarray(audio, dtype="<f4").tobytes()


class _Instance:
    """One loaded generator and the one worker thread that calls it (calls never overlap).

    Batching: a generator that offers ``generate_batch(states, controls, frames)`` (the audio-token family's
    ``generator.audio.batch.BatchedSystem``) gets the chunks that sessions ask for while its worker is busy
    stepped together, one compiled step for all of them; nothing waits on purpose, so one session alone costs
    what it did and N sessions cost one batched step instead of N. Note models never batch (a synth per stream).
    """

    def __init__(self, name: str, gen: Generator):
        self.gen = gen
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"jamgen-serve-{name[:20]}")
        self.batches = callable(getattr(gen, "generate_batch", None)) and not gen.makes_notes
        self.waiting: list[tuple[Any, GenerationControls, int, asyncio.Future]] = []
        self.stepping: asyncio.Task | None = None

    async def call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def chunk(self, state, controls: GenerationControls, frames: int):
        """(audio, state, midi, seconds, streams in the step) for one session's request, batched when it can be."""
        if not self.batches:
            return (*await self.call(self.generate, state, controls, frames), 1)
        done = asyncio.get_running_loop().create_future()
        self.waiting.append((state, controls, frames, done))
        if self.stepping is None or self.stepping.done():
            self.stepping = asyncio.create_task(self._step_waiting())
        return await done

    async def _step_waiting(self) -> None:
        """Step what is waiting, a batch of one block size at a time, until nothing is."""
        while self.waiting:
            frames = self.waiting[0][2]
            batch = [job for job in self.waiting if job[2] == frames]
            self.waiting = [job for job in self.waiting if job[2] != frames]
            try:
                audios, states, seconds = await self.call(self._generate_batch, batch, frames)
            except Exception as err:  # noqa: BLE001 - each session reports it and starts afresh
                for *_, done in batch:
                    if not done.done():
                        done.set_exception(err)
                continue
            for (*_, done), audio, state in zip(batch, audios, states):
                if not done.done():  # a session cancelled while waiting (it closed) takes nothing
                    done.set_result((audio, state, [], seconds, len(batch)))

    def _generate_batch(self, batch, frames: int):
        t0 = time.perf_counter()
        audios, states = self.gen.generate_batch([job[0] for job in batch], [job[1] for job in batch], frames)
        return [check_audio(a, frames) for a in audios], states, time.perf_counter() - t0

    def generate(self, state, controls: GenerationControls, frames: int):
        """A chunk and its notes, drained in the same job so another session's call cannot take them."""
        t0 = time.perf_counter()
        audio, state = self.gen.generate(state, controls, frames)
        audio = check_audio(audio, frames)
        midi = self.gen.drain_midi() if self.gen.makes_notes else []
        return audio, state, midi, time.perf_counter() - t0


class _Model:
    """A served model: its name (the spec it was loaded from), the shared instance, a pool for note models."""

    def __init__(self, name: str):
        self.name = name
        self.shared = _Instance(name, self._load())
        self.free: list[_Instance] = [self.shared]

    def _load(self) -> Generator:
        gen = generators.load(self.name)
        if gen.sample_rate != SAMPLE_RATE or gen.frame_samples != FRAME_SAMPLES:
            raise generators.ModelLoadError(f"model {self.name!r} is not 48 kHz with 1920-sample frames")
        gen.warmup()
        return gen

    async def acquire(self, tag: str) -> _Instance:
        if not self.shared.gen.makes_notes:
            return self.shared
        if self.free:
            return self.free.pop()
        log.info("%s: loading another instance of %s (a note model's synth plays one stream)", tag, self.name)
        return _Instance(self.name, await asyncio.to_thread(self._load))

    def release(self, instance: _Instance) -> None:
        if self.shared.gen.makes_notes:
            self.free.append(instance)

    def describe(self) -> dict[str, Any]:
        gen = self.shared.gen
        return {"model": self.name, "makes_notes": gen.makes_notes, "follows_clock": gen.follows_clock,
                "latency": {k: [v.block_frames, v.prebuffer_seconds] for k, v in gen.latency.items()},
                "control_defaults": dict(gen.control_defaults)}


def load_models(options: ServeOptions) -> dict[str, _Model]:
    """Every model ``options`` names (the default first), loaded and warmed up, by the name clients use.

    Raises:
      generator.ModelLoadError: a model that does not load (one line).
    """
    models = {}
    for name in dict.fromkeys([options.model, *options.models]):
        t0 = time.monotonic()
        models[name] = _Model(name)
        log.info("model %s ready in %.1f s", name, time.monotonic() - t0)
    gc_guard.freeze_start_up()  # sessions stream in real time: no 100 ms collector pauses (bridge.gc_guard)
    return models


class _Bucket:
    """A token bucket: ``rate`` messages a second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst, self.tokens, self.t = rate, burst, float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class _Session:
    """One stream: its state, controls, position and queued requests; :meth:`run` generates what is asked."""

    def __init__(self, ws, tag: str, model: _Model, instance: _Instance, setup: dict[str, Any]):
        self.ws, self.tag, self.model, self.instance = ws, tag, model, instance
        self.seed = _int_field(setup, "seed", 0, 2**31 - 1, 0)
        self.context = _int_field(setup, "context", 0, 2**62, 0)
        self.controls = clean_controls(setup.get("controls") or {})
        self.playing = True
        self.requests: collections.deque[tuple[int, dict | None]] = collections.deque()
        self.asked = 0  # frames queued in requests
        self.position = 0  # samples sent in this context
        self.state = None
        self.reset_seed: int | None = self.seed  # the worker makes the first state too
        self.wake = asyncio.Event()
        self.wake.set()
        self.bucket = _Bucket(MESSAGES_PER_SECOND, MESSAGE_BURST)
        self.errors = 0

    def apply(self, msg: dict[str, Any]) -> None:
        """One client message after setup; the generation task sees its effect at its next chunk.

        Raises:
          Refusal: a message this session cannot take (``close`` says whether the session ends).
        """
        kind = msg.get("type")
        if kind == "controls":
            self.controls = clean_controls(msg.get("controls"))
        elif kind == "request":
            frames = _int_field(msg, "frames", 1, MAX_REQUEST_FRAMES)
            if self.asked + frames > MAX_AHEAD_FRAMES:
                raise Refusal("too_far_ahead", f"request of {frames} frames would put {self.asked + frames} frames "
                              f"in the queue; the limit is {MAX_AHEAD_FRAMES}", close=False)
            clock = msg.get("clock")
            try:
                clock = _clean_clock(clock)
            except ControlError as err:
                raise Refusal("malformed", f"request: {err}", close=False) from None
            self.requests.append((frames, clock))
            self.asked += frames
        elif kind == "playback":
            action = msg.get("action")
            if action not in PLAYBACK_ACTIONS:
                raise Refusal("malformed", f"playback action {action!r:.40} is not one of "
                              f"{', '.join(PLAYBACK_ACTIONS)}", close=False)
            seed = _int_field(msg, "seed", 0, 2**31 - 1, self.seed)
            context = _int_field(msg, "context", 0, 2**62, self.context + 1)
            if action == "play":
                self.playing = True
            elif action in ("pause", "stop"):
                self.playing = False
            if action in ("stop", "reset"):
                self.seed, self.context = seed, context
                self.reset_seed, self.position = self.seed, 0
                self.requests.clear()
                self.asked = 0
        elif kind == "setup":
            raise Refusal("malformed", "setup was already done; open a new connection for another stream",
                          close=False)
        else:
            raise Refusal("malformed", f"unknown message type {kind!r:.40}; expected controls, request, playback",
                          close=False)
        self.wake.set()

    async def run(self) -> None:
        """Generate and send a chunk for each request, in order, while playing; forever (cancelled at close)."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            while True:
                if self.reset_seed is not None:
                    seed, self.reset_seed = self.reset_seed, None
                    self.state = await self.instance.call(self.instance.gen.init_state, seed)
                    continue
                if not (self.playing and self.requests):
                    break
                frames, clock = self.requests.popleft()
                self.asked -= frames
                context, controls = self.context, self.controls
                if clock is not None:
                    controls = dataclasses.replace(controls, clock=GenerationControls.from_dict(
                        {"clock": clock}).clock)
                try:
                    audio, state, midi, seconds, streams = await self.instance.chunk(self.state, controls, frames)
                except Exception as err:  # noqa: BLE001 - a model bug must not end the other sessions
                    await self._generator_failed(err)
                    continue
                if context != self.context or self.reset_seed is not None:
                    continue  # a reset came while it was generating: that chunk belongs to the old stream
                self.state = state
                header = {"type": "chunk", "context": context, "position": self.position, "frames": frames,
                          "controls": controls.as_dict(), "gen_ms": round(seconds * 1000.0, 3),
                          "batch": streams, "midi": [[int(o), list(bytes(d))] for o, d in midi]}
                self.position += frames * FRAME_SAMPLES
                await self.ws.send(pack_chunk(header, audio))

    async def _generator_failed(self, err: Exception) -> None:
        self.errors += 1
        message = f"generator failed: {type(err).__name__}: {err}".splitlines()[0][:200]
        log.error("%s: %s (a fresh state)", self.tag, message)
        self.reset_seed = self.seed
        await self.ws.send(json.dumps({"type": "error", "code": "generator", "message": message}))
        await asyncio.sleep(0.2)


def _int_field(msg: dict[str, Any], name: str, lo: int, hi: int, default: int | None = None) -> int:
    value = msg.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise Refusal("malformed", f"{msg.get('type', 'message')}.{name} must be a whole number in {lo}..{hi}, "
                      f"not {value!r:.40}", close=False)
    return value


def parse(raw: str | bytes) -> dict[str, Any]:
    """A client message: one JSON object with a ``type``, in a text frame of at most MAX_MESSAGE_BYTES.

    Raises:
      Refusal: too big (closes), binary, not JSON, or not an object with a type (one line each).
    """
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_MESSAGE_BYTES:
        raise Refusal("too_big", f"message of {size} bytes is over the limit of {MAX_MESSAGE_BYTES} bytes")
    if isinstance(raw, bytes):
        raise Refusal("malformed", "binary frames go from server to client only; send JSON text", close=False)
    try:
        msg = json.loads(raw)
    except ValueError as err:
        raise Refusal("malformed", f"not JSON: {err}", close=False) from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise Refusal("malformed", "a message must be a JSON object with a \"type\"", close=False)
    return msg


class Server:
    """The sessions of one server process (or Ray replica): setup, checks, the per-session tasks, refusals.

    Runs on its event loop's thread; :meth:`handle` is awaited once per accepted connection.

    Args:
      options: what was asked for (the default model, ``max_sessions``).
      models: the loaded models by the name clients use.
      token: the shared secret, or None (loopback clients only).
      prefix: put before each session number (a Ray replica's id), so a session's name says where it runs.
    """

    def __init__(self, options: ServeOptions, models: dict[str, _Model], token: str | None, prefix: str = ""):
        self.options, self.models, self.token = options, models, token
        self.default = options.model
        self.sessions: set[_Session] = set()
        self.pending = 0  # connections not yet set up
        self.draining = ""  # why new sessions are refused, once a drain began
        self.prefix = prefix
        self._ids = itertools.count(1)

    async def handle(self, ws) -> None:
        """One connection, from its setup to its close."""
        peer = ws.peer or ("?", 0)
        host = str(peer[0])
        tag = f"session {self.prefix}{next(self._ids)} from {host}:{peer[1]}"
        session = task = None
        try:
            try:
                if self.draining:
                    raise Refusal("draining", f"this server is shutting down ({self.draining}); connect again")
                if len(self.sessions) + self.pending >= self.options.max_sessions:
                    raise Refusal("busy", f"the server is full ({self.options.max_sessions} sessions)")
                self.pending += 1
                try:
                    raw = await asyncio.wait_for(ws.recv(), SETUP_TIMEOUT)
                finally:
                    self.pending -= 1
                session = await self._setup(ws, tag, host, parse(raw))
                task = asyncio.create_task(session.run())
                while True:
                    try:
                        raw = await ws.recv()
                    except ConnectionLost as lost:
                        if not lost.normal:
                            raise
                        break
                    try:
                        if not session.bucket.take():
                            raise Refusal("rate", f"more than {MESSAGES_PER_SECOND:g} messages a second "
                                          f"(burst {MESSAGE_BURST})")
                        session.apply(parse(raw))
                    except Refusal as refusal:
                        await self._refuse(ws, tag, refusal)
                        if refusal.close:
                            return
                    if task.done():  # the generation task died: say so once and end the session
                        raise Refusal("server", f"stream stopped: {task.exception()!r:.120}")
                log.info("%s: closed by the client", tag)
            except Refusal as refusal:
                await self._refuse(ws, tag, refusal)
            except asyncio.TimeoutError:
                await self._refuse(ws, tag, Refusal("setup_timeout", f"no setup within {SETUP_TIMEOUT:g} s"))
            except ConnectionLost as lost:
                if lost.sent_code == 1009:
                    log.warning("%s: refused: a frame over %d bytes (closed by the WebSocket layer, 1009)",
                                tag, WIRE_LIMIT)
                else:
                    log.info("%s: closed (%s)", tag, lost.detail or "no close frame")
        finally:
            if task is not None:
                task.cancel()
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved: a send to a client that left is not news
            if session is not None:
                self.sessions.discard(session)
                session.model.release(session.instance)

    async def _setup(self, ws, tag: str, host: str, msg: dict[str, Any]) -> _Session:
        if msg["type"] != "setup":
            raise Refusal("setup_first", f"the first message must be setup, not {msg['type']!r:.40}")
        if self.token is not None:
            given = msg.get("token")
            if not isinstance(given, str) or not hmac.compare_digest(given.encode(), self.token.encode()):
                raise Refusal("bad_token", "wrong or missing token: setup.token must be this server's shared secret")
        elif not is_loopback(host):
            raise Refusal("bad_token", "this server has no token, so it serves loopback clients only")
        name = msg.get("model") or self.default
        if not isinstance(name, str) or name not in self.models:
            raise Refusal("unknown_model", f"unknown model {name!r:.80}; this server serves: "
                          f"{', '.join(self.models)}")
        if msg.get("protocol", PROTOCOL) != PROTOCOL:
            raise Refusal("protocol", f"protocol {msg.get('protocol')!r:.20} is not supported; this server "
                          f"speaks {PROTOCOL}")
        model = self.models[name]
        try:
            session = _Session(ws, tag, model, model.shared, msg)  # checks seed, context and controls
        except Refusal as refusal:
            raise Refusal(refusal.code, f"setup: {refusal.message}") from None
        try:
            session.instance = await model.acquire(tag)
        except Exception as err:  # noqa: BLE001 - one session's load must not take the server down
            raise Refusal("server", f"cannot load another instance of {name}: {err}".splitlines()[0]) from None
        self.sessions.add(session)
        await ws.send(json.dumps({"type": "ready", "protocol": PROTOCOL, "session": tag.split()[1],
                                  "sample_rate": SAMPLE_RATE, "channels": CHANNELS, "frame_samples": FRAME_SAMPLES,
                                  **model.describe(),
                                  "limits": {"max_message_bytes": MAX_MESSAGE_BYTES,
                                             "max_request_frames": MAX_REQUEST_FRAMES,
                                             "max_ahead_frames": MAX_AHEAD_FRAMES,
                                             "messages_per_second": MESSAGES_PER_SECOND}}))
        log.info("%s: streaming %s (seed %d, %d live)", tag, name, session.seed, len(self.sessions))
        return session

    async def _refuse(self, ws, tag: str, refusal: Refusal) -> None:
        """Say why in one line, log it in one line, and close when the refusal says so."""
        log.warning("%s: refused (%s): %s", tag, refusal.code, refusal.message)
        try:
            await ws.send(json.dumps({"type": "error", "code": refusal.code, "message": refusal.message}))
            if refusal.close:
                await ws.close(1008 if refusal.code != "too_big" else 1009, refusal.message[:120])
        except ConnectionLost:
            pass



    async def drain(self, reason: str, code: int = 1001) -> int:
        """Refuse new sessions and close the live ones politely (``code``, ``reason``); returns how many.

        A client takes 1001 as "going away" and reconnects with a fresh context, through Ray's proxy to another
        replica, so a drain moves sessions instead of cutting them.
        """
        self.draining = reason
        live = list(self.sessions)
        for session in live:
            log.info("%s: closing (%s)", session.tag, reason)
            await session.ws.close(code, reason[:120])
        return len(live)
