"""``jamgen serve --ray``: the same service as ``jamgen serve``, scaled out over Ray Serve replicas.

Why Ray Serve: installations, games and classes want many streams at once, on more GPUs than one process owns.
Ray Serve already places replicas on a cluster (whole or fractional GPUs), restarts dead ones, health-checks
them and scales their number; jamgen adds only the protocol. Each replica is one :class:`JamgenReplica`: the
models loaded and warmed up once, and one :class:`bridge.serve_sessions.Server`, so checks, refusals, flow control
and the per-model worker threads are exactly those of ``jamgen serve`` (protocol in ``docs/remote.md``).

**Sessions are pinned.** A session is one WebSocket connection. Ray's proxy accepts it, picks the replica with
the fewest ongoing requests (here: live sessions) and forwards that connection, and only that replica, for its
whole life; the session's state never leaves it. If the replica dies, the connection drops and the client
(:mod:`generator.backends.remote`) reconnects as a new session with a fresh context, which the proxy places on
a live replica. Session names carry the replica's id (``ready.session`` = ``<replica>.<n>``), so logs on both
sides say where a stream runs.

**Autoscaling on live sessions**: with ``--max-replicas`` above ``--replicas`` the deployment autoscales on
ongoing requests per replica, which for a WebSocket deployment is its live sessions (target
``--sessions-per-replica``). **Health**: ``check_health`` gives every model's worker thread a no-op and fails
when one does not answer within :data:`HEALTH_TIMEOUT` (a model call wedged far past any block's budget);
Serve then replaces the replica and its sessions move. **Drain**: on SIGTERM/SIGINT the driver raises a flag on
its control actor (a small named Ray actor, where replicas also register) that every replica polls; each
refuses new sessions and closes its live ones with 1001 "going away", then Serve shuts down. A replica Serve
stops by itself (a scale-down, a redeploy) keeps its sessions until ``--drain-seconds``
(``graceful_shutdown_timeout_s``), then Serve ends the process and its clients reconnect elsewhere: Serve tells
a replica nothing before, and calls its destructor (which closes with 1001) only once no session is left.

Threads and loops: each replica runs its sessions on Serve's user-code event loop (one per replica process),
the models' calls on their ``jamgen-serve-<name>`` worker threads; the driver (``jamgen serve --ray``) only
starts Ray, deploys, waits for a signal and drains.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the WebSocket endpoint's annotations at run
# time, and WebSocket is imported inside build_app (so that this module imports without FastAPI).
import asyncio
import dataclasses
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

from bridge.serve import check_options
from bridge.serve_sessions import ConnectionLost, Server, ServeOptions, load_models

log = logging.getLogger(__name__)

APP_NAME = "jamgen"
NAMESPACE = "jamgen"
CONTROL_ACTOR = "jamgen-control"  # the driver's: the drain flag, and the replicas as they come up
HEALTH_TIMEOUT = 2.0  # seconds a model's worker may take to answer a no-op: 10x the longest block (200 ms)
DRAIN_POLL = 0.5  # seconds between a replica's looks at the drain flag
INSTALL_HINT = "Ray Serve is not installed: pip install -e '.[ray]' (or ./scripts/setup.sh --with-ray)"


@dataclasses.dataclass(frozen=True, kw_only=True)
class RayOptions:
    """How the deployment scales (the ``--replicas`` ... flags of ``jamgen serve --ray``).

    Attributes:
      replicas: replicas at start, and the floor when autoscaling.
      max_replicas: autoscale up to this many on live sessions; None or ``replicas`` = a fixed number.
      sessions_per_replica: the autoscaler's target of live sessions per replica.
      replica_cpus, replica_gpus: what Ray reserves for each replica (a fraction shares a GPU).
      drain_seconds: how long a stopping replica keeps its sessions before its process ends (Serve's
        ``graceful_shutdown_timeout_s``).
    """

    replicas: int = 2
    max_replicas: int | None = None
    sessions_per_replica: int = 4
    replica_cpus: float = 1.0
    replica_gpus: float = 0.0
    drain_seconds: float = 10.0

    def __post_init__(self):
        if self.replicas < 1:
            raise ValueError(f"--replicas must be at least 1, got {self.replicas}")
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            raise ValueError(f"--max-replicas ({self.max_replicas}) must be at least --replicas ({self.replicas})")
        if self.sessions_per_replica < 1:
            raise ValueError(f"--sessions-per-replica must be at least 1, got {self.sessions_per_replica}")
        if self.replica_cpus < 0 or self.replica_gpus < 0:
            raise ValueError("--replica-cpus and --replica-gpus must not be negative")
        if self.drain_seconds <= 0:
            raise ValueError(f"--drain-seconds must be positive, got {self.drain_seconds}")

    def deployment_options(self, max_sessions: int) -> dict[str, Any]:
        """The Serve deployment's options: replicas or autoscaling, resources, health checks, drain."""
        scale: dict[str, Any] = {"num_replicas": self.replicas}
        if self.max_replicas and self.max_replicas > self.replicas:
            scale = {"autoscaling_config": {
                "min_replicas": self.replicas, "initial_replicas": self.replicas, "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.sessions_per_replica,
                "upscale_delay_s": 5.0, "downscale_delay_s": 120.0, "look_back_period_s": 10.0}}
        return {**scale,
                # A session is an ongoing request for its life: Serve must admit a few more than the server's own
                # limit, so the client hears the server's one-line "busy" rather than waiting in the proxy.
                "max_ongoing_requests": max_sessions + 2,
                "ray_actor_options": {"num_cpus": self.replica_cpus, "num_gpus": self.replica_gpus},
                "health_check_period_s": 1.0, "health_check_timeout_s": 2 * HEALTH_TIMEOUT,
                "graceful_shutdown_timeout_s": self.drain_seconds, "graceful_shutdown_wait_loop_s": DRAIN_POLL}


class _StarletteConnection:
    """A Starlette/FastAPI WebSocket (behind Ray's proxy) as a :class:`bridge.serve_sessions.Connection`."""

    def __init__(self, ws):
        self.ws = ws
        self.peer = (ws.client.host, ws.client.port) if ws.client else ("?", 0)

    async def recv(self):
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            code = message.get("code", 1005)
            raise ConnectionLost(code in (1000, 1001), f"{message.get('reason') or code}")
        return message["text"] if message.get("text") is not None else message.get("bytes", b"")

    async def send(self, data) -> None:
        try:
            if isinstance(data, str):
                await self.ws.send_text(data)
            else:
                await self.ws.send_bytes(data)
        except Exception as err:  # noqa: BLE001 - Starlette raises RuntimeError or WebSocketDisconnect for a gone peer
            raise ConnectionLost(False, f"send failed: {type(err).__name__}") from None

    async def close(self, code: int, reason: str) -> None:
        try:
            await self.ws.close(code, reason)
        except Exception:  # noqa: BLE001 - closing a connection that is already gone is not news
            pass


def _replica_logging() -> None:
    """Session lines at INFO on the replica's stderr (Ray streams it to the driver and its log files)."""
    logger = logging.getLogger("bridge")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("jamgen serve: %(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def build_app(options: ServeOptions, ray_options: RayOptions):
    """The Serve application: one ingress deployment whose replicas each run a full jamgen server.

    The class is made here (not at import) so that importing this module needs neither Ray nor FastAPI.
    """
    from fastapi import FastAPI, WebSocket
    from ray import serve

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)  # a WebSocket service, no HTTP pages

    @serve.deployment(name="JamgenReplica", **ray_options.deployment_options(options.max_sessions))
    @serve.ingress(app)
    class JamgenReplica:
        """One replica: the models, one :class:`Server`, a watcher for the drain flag (started with a session)."""

        def __init__(self, options: ServeOptions):
            _replica_logging()
            self.replica = serve.get_replica_context().replica_tag
            token = check_options(dataclasses.replace(options, port=0))
            self.server = Server(options, load_models(options), token, prefix=f"{self.replica}.")
            self.watcher: asyncio.Task | None = None
            log.info("replica %s ready: %s", self.replica, ", ".join(self.server.models))
            _register(self.replica)

        @app.websocket("/{path:path}")
        async def session(self, websocket: WebSocket, path: str = "") -> None:
            if self.watcher is None:
                self.watcher = asyncio.get_running_loop().create_task(self._watch_drain())
            await websocket.accept()
            await self.server.handle(_StarletteConnection(websocket))

        async def _watch_drain(self) -> None:
            import ray

            while not self.server.draining:
                await asyncio.sleep(DRAIN_POLL)
                try:
                    reason = await ray.get_actor(CONTROL_ACTOR, namespace=NAMESPACE).drain_reason.remote()
                except ValueError:
                    continue  # no driver flag (deployed with `serve run`): Serve's own shutdown drains
                if reason:
                    closed = await self.server.drain(reason)
                    log.info("replica %s: drained %d session(s): %s", self.replica, closed, reason)

        async def check_health(self) -> None:
            """Every model's worker thread answers a no-op within HEALTH_TIMEOUT, else this replica is replaced."""
            instances = {id(i): i for m in self.server.models.values() for i in m.free}
            instances.update({id(s.instance): s.instance for s in self.server.sessions})
            try:
                await asyncio.wait_for(asyncio.gather(*(i.call(int) for i in instances.values())), HEALTH_TIMEOUT)
            except asyncio.TimeoutError:
                raise RuntimeError(f"replica {self.replica}: a model's worker did not answer within "
                                   f"{HEALTH_TIMEOUT:g} s") from None

        async def __del__(self) -> None:
            await self.server.drain(f"replica {self.replica} stopping")

    return JamgenReplica.bind(options)


def app_builder(args: dict[str, str]):
    """``serve run bridge.serve_ray:app_builder model=groove models=tiny replicas=2 ...`` (Serve's app builder).

    Keys: ``model`` (required), ``models`` (comma-separated), ``host`` (for the token rule; Serve's own
    ``--host`` flag picks the address), ``token_file``, ``max_sessions`` and the :class:`RayOptions` fields.
    """
    unknown = set(args) - {"model", "models", "host", "token_file", "max_sessions",
                           *(f.name for f in dataclasses.fields(RayOptions))}
    if unknown or "model" not in args:
        raise ValueError(f"serve run bridge.serve_ray:app_builder takes model=NAME (required), models, host, "
                         f"token_file, max_sessions, replicas, max_replicas, sessions_per_replica, replica_cpus, "
                         f"replica_gpus, drain_seconds; got {', '.join(sorted(args))}")
    options = ServeOptions(model=args["model"], models=tuple(m for m in args.get("models", "").split(",") if m),
                           host=args.get("host", "127.0.0.1"), token_file=args.get("token_file"),
                           max_sessions=int(args.get("max_sessions", 16)))
    number = {"replicas": int, "max_replicas": int, "sessions_per_replica": int, "replica_cpus": float,
              "replica_gpus": float, "drain_seconds": float}
    ray_options = RayOptions(**{k: conv(args[k]) for k, conv in number.items() if k in args})
    check_options(dataclasses.replace(options, port=0))
    return build_app(options, ray_options)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def serve_ray(options: ServeOptions, ray_options: RayOptions) -> int:
    """Start (or join, with ``$RAY_ADDRESS``) a Ray cluster, deploy, serve until SIGTERM/SIGINT, drain.

    Raises:
      ValueError: a setting that cannot be served (one line), Ray not installed, a deployment that failed.
    """
    check_options(options)
    try:
        import ray
        from ray import serve
    except ImportError:
        raise ValueError(INSTALL_HINT) from None
    port = options.port or _free_port(options.host)
    here = os.getcwd()  # a python:module:factory model resolves here, as with the plain server
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")  # every session line matters; Ray folds repeated ones by default
    ray.init(address=os.environ.get("RAY_ADDRESS"), namespace=NAMESPACE, include_dashboard=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}}, logging_level=logging.WARNING)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    control = _control_class().options(name=CONTROL_ACTOR, namespace=NAMESPACE, num_cpus=0).remote()
    seen: set[str] = set()
    try:
        http = {"host": options.host, "port": port}
        if options.tls_cert:
            http.update(ssl_certfile=options.tls_cert, ssl_keyfile=options.tls_key)
        serve.start(http_options=http)
        t0 = time.monotonic()
        try:
            serve.run(build_app(options, ray_options), name=APP_NAME, route_prefix="/")
        except Exception as err:  # noqa: BLE001 - Serve wraps a replica's failure in its own errors
            raise ValueError(f"the Ray Serve deployment failed: {str(err).strip().splitlines()[-1][:300]}") from None
        guard = "token required" if check_options(options) else "loopback clients only, no token"
        scale = (f"{ray_options.replicas}..{ray_options.max_replicas} replicas (autoscaling on live sessions)"
                 if ray_options.max_replicas and ray_options.max_replicas > ray_options.replicas
                 else f"{ray_options.replicas} replicas")
        log.info("serving %s on %s://%s:%d (%s on Ray Serve, ready in %.1f s; %s)",
                 ", ".join(dict.fromkeys([options.model, *options.models])), "wss" if options.tls_cert else "ws",
                 options.host, port, scale, time.monotonic() - t0, guard)
        while True:
            for tag, (pid, node) in ray.get(control.replicas.remote()).items():
                if tag not in seen:
                    seen.add(tag)
                    log.info("replica %s up (pid %d on %s)", tag, pid, node)
            if stop.wait(0.5):
                break
        log.info("shutting down: draining the replicas' sessions (1001, clients reconnect elsewhere)")
        ray.get(control.drain.remote("the server is shutting down"))
        time.sleep(2 * DRAIN_POLL + 0.5)
        serve.shutdown()
    finally:
        ray.shutdown()
    return 0


def _register(replica: str) -> None:
    """Tell the driver's control actor this replica is up (none under ``serve run``: then nothing to tell)."""
    import ray

    try:
        control = ray.get_actor(CONTROL_ACTOR, namespace=NAMESPACE)
    except ValueError:
        return
    control.register.remote(replica, os.getpid(), ray.util.get_node_ip_address())


def _control_class():
    """The control actor's class, made on first use so that importing this module needs no Ray."""
    import ray

    @ray.remote
    class Control:
        """The driver's side of the replicas: who is up (for its log) and the drain flag they poll."""

        def __init__(self):
            self.reason, self.up = "", {}

        def register(self, replica: str, pid: int, node: str) -> None:
            self.up[replica] = (pid, node)

        def replicas(self) -> dict:
            return dict(self.up)

        def drain(self, reason: str) -> None:
            self.reason = reason

        def drain_reason(self) -> str:
            return self.reason

    return Control
