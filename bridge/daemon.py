"""The daemon's whole lifecycle in one place: build, start, run, stop in reverse order.

Start-up order: the mapping file and the controls' start-up values (cheap, so a mistake is refused
before the model loads) -> the model (slow: loading and compiling; see :mod:`bridge.session`, shared
with ``render``) -> its latency setting (block size, adaptive pre-buffer) -> ring buffers -> JACK output and engine,
wired to each other by their constructors
-> recorder -> control surfaces (OSC, MIDI, the mapping file's watcher) -> the engine starts filling
the pre-buffer -> OSC listens -> JACK connects. The main thread then supervises: it keeps the JACK
connection alive (reconnecting when the server comes back), prints a status line now and then, and
waits for SIGINT/SIGTERM or ``--duration``. Shutdown fades out and stops everything in reverse
order, so a ``--record`` WAV is complete.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import faulthandler
import functools
import queue
import logging
import signal
import threading
import time
from typing import Any, TextIO

import generator as generators
from bridge import gc_guard
from bridge.controls import OUTPUT_CONTROLS, ControlStore, output_gain
from bridge.engine import Engine
from bridge.jack_io import JackOutput, ring_buffer
from bridge.nsm import NsmClient, NsmError
from bridge.osc import OscServer
from bridge.prebuffer import AdaptivePrebuffer, cap_seconds, parse_policy
from bridge.recorder import Recorder
from bridge.session import Session
from generator.core.contract import FRAME_RATE, SAMPLE_RATE, Generator, Latency

log = logging.getLogger("jamgen")


class StartupError(Exception):
    """Something the user asked for cannot be done; the message is one line."""


@dataclasses.dataclass
class DaemonOptions:
    model: str = generators.DEFAULT_MODEL
    mapping: str | None = None
    prompts: list[tuple[str, float]] = dataclasses.field(default_factory=list)
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)  # --set NAME=VALUE
    osc_host: str | None = None  # None: the mapping file's osc.listen, else 127.0.0.1
    osc_port: int | None = None  # None: the mapping file's osc.listen, else 9000
    no_osc: bool = False
    osc_allow: list[str] | None = None
    jack_server: str | None = None
    client_name: str = "jamgen"
    connect: str | None = None
    record: str | None = None
    duration: float | None = None
    block_log: str | None = None
    latency: str = "low"  # which of the model's latency settings (Generator.latency) to run at
    block_frames: int | None = None  # frames per block; None: the latency setting's
    prebuffer: float | None = None  # the pre-buffer's floor in seconds; None: the latency setting's
    prebuffer_adapt: str = ""  # the adaptive pre-buffer's policy, "grow=1.25,calm=10" (bridge.prebuffer.parse_policy)
    status_interval: float = 30.0
    sync: str | None = None  # internal|jack|midi|link (bridge.sync); None: the mapping file's sync:, else internal
    timebase_master: bool = False  # publish jamgen's bpm as JACK BBT (bridge.sync_jack.TimebaseMaster)


class Daemon:
    def __init__(self, options: DaemonOptions):
        self.options = options
        self.stop_event = threading.Event()
        self.session: Session | None = None
        self.store: ControlStore | None = None
        self.engine: Engine | None = None
        self.gc_watch: gc_guard.GcWatch | None = None
        self.jack: JackOutput | None = None
        self.osc: OscServer | None = None
        self.recorder: Recorder | None = None
        self.surfaces: list[Any] = []  # objects with close(), stopped in reverse order
        self.mappings = None  # bridge.mappings.MappingEngine
        self.midi = None  # bridge.midi.MidiInput
        self.sync = None  # bridge.sync.SyncSource: the external clock (None: jamgen keeps its own time)
        self.timebase = None  # bridge.sync_jack.TimebaseMaster with --timebase-master
        self.nsm: NsmClient | None = None  # under a session manager (NSM_URL)
        self._block_log: TextIO | None = None
        self._embedder = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="jamgen-embed")

    # --- start-up -----------------------------------------------------------------------------
    def start(self) -> None:
        o = self.options
        import jack

        # libjack prints to stderr on every failed connection attempt; keep that for -v.
        jack.set_error_function(lambda m: log.debug("libjack: %s", m))
        jack.set_info_function(lambda m: log.debug("libjack: %s", m))
        t0 = time.monotonic()
        if o.block_log:
            try:
                self._block_log = open(o.block_log, "a", encoding="utf-8", buffering=1)
            except OSError as err:
                raise StartupError(f"cannot write block log {o.block_log}: {err.strerror}") from None
        # The mapping file first: a broken one is refused before the (slow) model loads.
        from bridge.learn import start_learn
        from bridge.mappings import MappingEngine

        self.session = Session(o.model, o.prompts, o.settings)
        self.store = self.session.store
        self.mappings = MappingEngine(self.store)
        # Under a session manager, its open names the JACK client and gives the session's mapping file and
        # saved values (bridge.nsm); nothing registers with JACK before it.
        self.nsm = NsmClient.from_environment()
        opened = None
        if self.nsm is not None:
            try:
                opened = self.nsm.open(o.mapping, self._load_controls, self.stop_event)
            except NsmError as err:
                raise StartupError(str(err)) from None
        if opened is None:
            self._load_controls(o.mapping, {})
        else:
            o.client_name = opened.client_id

        log.info("loading model %r", o.model)
        try:  # also applies the model's control defaults and warms it up
            gen = self.session.load_model()
        except generators.ModelLoadError as err:
            raise StartupError(str(err)) from None
        log.info("model ready in %.1f s", time.monotonic() - t0)
        # What start-up made lives as long as the process: out of the collector's way (bridge.gc_guard).
        frozen, ms = gc_guard.freeze_start_up()
        log.debug("froze %d start-up objects for the garbage collector (%.0f ms)", frozen, ms)
        self.gc_watch = gc_guard.GcWatch().install()
        if self.nsm is not None:  # the model's defaults are in: save a new session, report dirt from now on
            self.nsm.started(self.store)

        block_frames, prebuffer = self._latency(gen)
        block_seconds = block_frames / FRAME_RATE
        audio_rb = ring_buffer(prebuffer.cap / SAMPLE_RATE + 2 * block_seconds + 0.1)
        record_rb = ring_buffer(2.0) if o.record else None
        # A generator that makes notes: the engine queues them, stamped with their stream sample,
        # and the JACK callback sends each on <client>:midi_out in the period that plays it.
        midi_out = queue.SimpleQueue() if gen.makes_notes else None
        if o.timebase_master:
            from bridge.sync_jack import TimebaseMaster

            self.timebase = TimebaseMaster(self.store.get("bpm"))
        self.jack = JackOutput(audio_rb, prebuffer, o.client_name, o.jack_server, o.connect, record_rb,
                               midi_out_queue=midi_out, timebase=self.timebase)
        self.sync = self._make_sync(gen, block_frames, prebuffer)
        self.engine = Engine(gen, self.store, audio_rb, block_frames, prebuffer, self._block_log,
                             midi_out=midi_out, stream_position=lambda: self.jack.consumed,
                             on_flush=self._flush, before_block=[self._apply_timed_osc],
                             underruns=lambda: self.jack.underruns, period=lambda: self.jack.period_frames,
                             sync=self.sync, gc_watch=self.gc_watch)
        self.store.subscribe(self._on_control)
        self._apply_output_controls()
        if o.record:
            try:
                self.recorder = Recorder(o.record, record_rb)
            except Exception as err:  # soundfile raises its own error type for bad paths
                raise StartupError(f"cannot record to {o.record}: {err}") from None
            self.recorder.start()
        if not o.no_osc:
            osc = self.mappings.osc_settings()
            host, port = osc["listen"] or ("127.0.0.1", 9000)
            host = o.osc_host or host
            port = o.osc_port if o.osc_port is not None else port
            try:
                # Custom addresses go to the mapping file's rules; /jamgen/learn needs a file.
                learn = functools.partial(start_learn, self.mappings) if o.mapping else None
                self.osc = OscServer(self.store, host, port, o.osc_allow, self.engine.sounding,
                                     extra_handler=self.mappings.handle_osc, learn_handler=learn)
            except OSError as err:
                raise StartupError(f"cannot listen for OSC on {host}:{port}: {err.strerror}") from None
            if osc["feedback"]:
                self.osc.add_subscriber(*osc["feedback"])
        self._start_surfaces()
        self.engine.start()
        if self.osc is not None:
            self.osc.start()
        self.jack.maintain()
        if not self.jack.connected:
            log.warning("JACK: waiting for server %r (jamgen never starts one itself)",
                        o.jack_server or "default")
        self._t_start = t0

    def _load_controls(self, mapping: str | None, saved: dict[str, Any]) -> None:
        """The mapping file, then the start-up values: its prompts, the command line's --prompt/--set, then a
        session's saved values, each winning over the one before. Raises StartupError."""
        from bridge.mappings import MappingError

        self.options.mapping = mapping
        if mapping:
            try:
                self.mappings.load(mapping)
            except MappingError as err:
                raise StartupError(str(err)) from None
        try:
            self.session.set_start_values(self.mappings.initial_values(), saved)
        except ValueError as err:
            raise StartupError(str(err)) from None

    def _latency(self, gen: Generator) -> tuple[int, AdaptivePrebuffer]:
        """The block size and the adaptive pre-buffer: the model's ``--latency`` setting, each part
        overridden by an explicit ``--block-frames`` / ``--prebuffer``; the pre-buffer may grow up to
        max(1 s, 2x the model's "safe" pre-buffer)."""
        o = self.options
        setting = gen.latency.get(o.latency)
        if setting is None:
            raise StartupError(f"model {o.model!r} has no latency setting {o.latency!r} "
                               f"(it has: {', '.join(gen.latency)})")
        chosen = Latency(o.block_frames or setting.block_frames,
                         o.prebuffer if o.prebuffer is not None else setting.prebuffer_seconds)
        safe = gen.latency.get("safe", setting)
        try:
            policy = parse_policy(o.prebuffer_adapt)
        except ValueError as err:
            raise StartupError(f"--prebuffer-adapt: {err}") from None
        prebuffer = AdaptivePrebuffer(chosen.prebuffer_seconds, cap_seconds(safe.prebuffer_seconds,
                                                                            chosen.prebuffer_seconds), **policy)
        overrides = [flag for flag, value in (("--block-frames", o.block_frames), ("--prebuffer", o.prebuffer))
                     if value is not None]
        log.info("latency %s%s: blocks %d ms, pre-buffer %d ms (adaptive up to %d ms)", o.latency,
                 f" with {' and '.join(overrides)}" if overrides else "", chosen.block_frames * 1000 // FRAME_RATE,
                 round(chosen.prebuffer_seconds * 1000), round(prebuffer.cap * 1000 / SAMPLE_RATE))
        if policy:
            log.info("pre-buffer policy: x%g on a near miss, x%g per calm %g s, margin %g of it", prebuffer.grow,
                     prebuffer.shrink, prebuffer.calm_seconds, prebuffer.margin_fraction)
        return chosen.block_frames, prebuffer

    def _start_surfaces(self) -> None:
        """Start the MIDI input and the mapping-file engine (see bridge.midi, bridge.mappings).

        The mapping file itself was loaded (and a broken one refused) at the top of start(), and
        the OSC server was given its custom-address and ``/jamgen/learn`` hooks when built. The
        MIDI input (``<client>:midi_in``) always opens, connecting the ports that ``midi.inputs``
        names, and follows the file on reload.
        """
        from bridge.midi import MidiInput

        o = self.options
        if o.mapping:
            self.mappings.start()
            self.surfaces.append(self.mappings)
        self.midi = MidiInput(self.mappings.handle_midi, o.client_name,
                              self.mappings.midi_settings()["inputs"], o.jack_server,
                              jack_output=self.jack)
        self.mappings.on_reload(lambda mf: self.midi.set_patterns(mf.midi_inputs))
        self.midi.start()
        self.surfaces.append(self.midi)

    # --- control plumbing ---------------------------------------------------------------------
    def _flush(self) -> None:
        """The engine cleared its context (stop): the JACK callback drops what is buffered."""
        self.jack.flush_requests += 1

    def _apply_timed_osc(self, sounds_at: float) -> None:
        """Before each block: apply the timed OSC bundles due by ``sounds_at`` (none without OSC)."""
        if self.osc is not None:
            self.osc.apply_due(sounds_at)

    def _make_sync(self, gen: Generator, block_frames: int, prebuffer: AdaptivePrebuffer):
        """The sync source (bridge.sync): ``--sync``, else the mapping file's ``sync:``, else internal (None).

        A source that owns the transport holds jamgen stopped until its clock rolls, and plans each start far
        enough ahead for two blocks to be generated (two blocks, two periods and 33 ms; the JACK callback then starts
        with what is buffered, the engine filling the rest of the pre-buffer as it plays).
        """
        from bridge.sync import SyncError, check_available
        from bridge.sync_jack import JackTransportSync
        from bridge.sync_link import LinkSync
        from bridge.sync_midi import MidiClockSync

        o = self.options
        mapping_file = self.mappings.mapping_file
        kind = o.sync or (mapping_file.sync if mapping_file is not None else None) or "internal"
        if kind == "internal":
            return None
        try:
            check_available(kind)
        except SyncError as err:
            raise StartupError(str(err)) from None
        source = {"jack": JackTransportSync, "midi": MidiClockSync, "link": LinkSync}[kind](
            self.store, self.jack, self._publish)
        block = block_frames * SAMPLE_RATE // FRAME_RATE
        source.lead = lambda: 2 * block + 2 * (self.jack.period_frames or 1024) + SAMPLE_RATE // 30
        source.start_stopped()
        log.info("sync: following %s%s", kind, "; jamgen plays while it rolls" if source.follows_transport else "")
        if not gen.follows_clock:
            log.warning("model %s plays its own time: --sync %s only starts and stops it", o.model, kind)
        return source

    def _publish(self, address: str, value: Any) -> None:
        """Feedback that is not a control (the sync status) to the OSC subscribers, when OSC is on."""
        if self.osc is not None:
            self.osc.publish(address, value)

    def _apply_output_controls(self) -> None:
        values = self.store.values()
        self.jack.playing = values["transport"] == "playing"
        self.jack.target_gain = output_gain(values)

    def _on_control(self, name: str, value: Any) -> None:
        if name == "bpm" and self.timebase is not None:
            self.timebase.bpm = value  # a plain attribute the JACK timebase callback reads
        if name == "transport" or name in OUTPUT_CONTROLS:
            self._apply_output_controls()
        elif name.endswith(".text") and value:
            # Embed a new prompt off the generation thread, so the block that first uses it
            # finds it cached instead of paying for the text encoder.
            self._embedder.submit(self._prefetch_style, value)

    def _prefetch_style(self, text: str) -> None:
        try:
            self.engine.generator.embed_style(text)
        except Exception as err:  # noqa: BLE001 - the generation thread will report it properly
            log.debug("prefetching the style of %r failed: %s", text, err)

    # --- running ------------------------------------------------------------------------------
    def run(self) -> int:
        """Start, then supervise until a signal or ``--duration``; returns the exit status."""
        self.start()
        last_status = time.monotonic()
        first_audio_logged = False
        while not self.stop_event.wait(0.1):
            self.jack.maintain()
            if self.midi is not None:
                self.midi.maintain_shared()
            now = time.monotonic()
            if not first_audio_logged and self.engine.first_audio_time is not None:
                first_audio_logged = True
                log.info("first audio %.2f s after start", self.engine.first_audio_time - self._t_start)
            if self.options.duration is not None and self.engine.first_audio_time is not None:
                if now - self.engine.first_audio_time >= self.options.duration:
                    log.info("duration of %.1f s reached", self.options.duration)
                    break
            if now - last_status >= self.options.status_interval:
                last_status = now
                log.info("status: %s", self.status_line())
        self.shutdown()
        return 0

    def status_line(self) -> str:
        s = self.engine.stats()
        return (f"{'connected' if self.jack.connected else 'NOT connected'}, blocks {s['blocks']}, "
                f"rtf p50 {s['rtf_p50']:.2f} p95 {s['rtf_p95']:.2f}, pre-buffer {s['prebuffer_ms']:.0f} ms, "
                f"underruns {self.jack.underruns}, "
                f"xruns {self.jack.xruns}, generator errors {s['errors']}, "
                f"longest garbage collection {s['gc_longest_ms'] or 0:.0f} ms")

    def shutdown(self) -> None:
        log.info("stopping: %s", self.status_line())
        for surface in reversed(self.surfaces):
            try:
                surface.close()
            except Exception:
                log.exception("closing %r", surface)
        if self.osc is not None:
            self.osc.close()
        self.jack.close()  # fades out first
        self.engine.stop()
        if self.sync is not None:
            self.sync.close()  # a Link session leaves
        if self.recorder is not None:
            self.recorder.close()
        self._embedder.shutdown(wait=False, cancel_futures=True)
        if self.nsm is not None:
            self.nsm.close()
        if self._block_log is not None:
            self._block_log.close()

    def install_signal_handlers(self) -> None:
        def on_signal(signum, frame):
            log.info("received %s", signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        faulthandler.enable()  # a crash in native code (libjack, XLA) still leaves a traceback
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1: dump every stack
