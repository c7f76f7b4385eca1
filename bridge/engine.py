"""The generation thread: controls in, audio blocks out, a pre-buffer ahead of the JACK clock.

One thread owns the generator and its state. Once per block it waits until less than the current
pre-buffer is buffered ahead of playback, reads one consistent control snapshot, generates
``block_frames`` frames, validates them and writes them into the lock-free ring buffer the JACK
callback reads (:mod:`bridge.jack_io`). It never blocks on JACK: if the server is gone, the buffer
simply fills and the thread waits.

What a listener waits for after moving a control is about one block (the change is read when the
next block starts) plus the pre-buffer plus a JACK period, so both are small by default (the
model's ``latency`` setting) and the pre-buffer adapts (:mod:`bridge.prebuffer`): this thread grows
it at once when a block arrives with little audio left or the JACK callback counted an underrun, and
shrinks it slowly back to the setting; the JACK callback primes on the same value.

Each block is logged to the optional block log (JSON lines: wall time, first frame index, the
effective control values, the pre-buffer and what was still buffered when the block arrived), and
remembered with its position in the output stream so that :meth:`Engine.sounding` can say which
controls are audible right now.

A generator that raises does not stop the daemon: the error is logged once, the state is
rebuilt fresh, and generation resumes after a short back-off (the callback meanwhile plays
out the buffer, then silence).

With a sync source (:mod:`bridge.sync`: JACK transport, MIDI clock), the engine asks it before each block
where the block's first stream sample falls in the external clock's song and passes the answer as the
block's ``GenerationControls.clock``; it also lets the source look at its clock on every turn of the
loop (``poll``, playing or not), so a transport start or stop is acted on within milliseconds.

The engine knows its neighbours only through what its constructor is given (the play position,
a flush request, the MIDI queue the JACK callback reads, the hooks run before each block), so
the daemon wires everything in one place, when it builds it, and nothing is patched in later.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import queue
import threading
import time
from typing import IO, Any, Callable, Iterable

import numpy as np

import jack

from bridge.controls import OUTPUT_CONTROLS, ControlSnapshot, ControlStore
from bridge.gc_guard import GcWatch
from bridge.jack_io import BYTES_PER_FRAME
from bridge import thread_priority
from bridge.prebuffer import AdaptivePrebuffer
from bridge.session import generation_controls
from generator.core.contract import FRAME_RATE, FRAME_SAMPLES, SAMPLE_RATE, Generator, check_audio

log = logging.getLogger(__name__)

BlockListener = Callable[[dict[str, Any]], None]


class Engine:
    """Runs ``generator`` continuously into ``audio_rb`` under the controls of ``store``.

    Args:
      generator: anything implementing :class:`generator.core.contract.Generator`.
      store: the live controls.
      audio_rb: the ring buffer the JACK callback reads (single writer: this engine).
      block_frames: frames (40 ms each) generated per call; latency/overhead trade-off.
      prebuffer: the adaptive pre-buffer (audio kept buffered ahead of playback), shared with the
        JACK callback, which primes on its current value; this thread alone grows and shrinks it.
      block_log: a text file receiving one JSON line per block, or None.
      midi_out: where the notes of a generator that makes notes go, as ``(stream sample, bytes)``
        (the JACK callback's queue), or None to drop them.
      stream_position: returns the output stream's play position in samples (what the JACK callback
        has consumed); :meth:`sounding` reads it. Default: always 0.
      on_flush: asks the player to drop the buffered audio (called when a stop clears the context).
      before_block: called with the wall time at which the next block will start sounding, just
        before its controls are read (timed OSC bundles are applied here); a hook that raises is
        logged and skipped.
      underruns: returns the JACK callback's underrun counter (a rise is a near miss).
      period: returns the JACK period in frames (0 or None when not connected), for the danger level.
      sync: the sync source (:class:`bridge.sync.SyncSource`), or None: jamgen keeps its own time.
    """

    def __init__(
        self,
        generator: Generator,
        store: ControlStore,
        audio_rb: jack.RingBuffer,
        block_frames: int = 5,
        prebuffer: AdaptivePrebuffer | None = None,
        block_log: IO[str] | None = None,
        midi_out: queue.SimpleQueue | None = None,
        stream_position: Callable[[], int] = lambda: 0,
        on_flush: Callable[[], None] = lambda: None,
        before_block: Iterable[Callable[[float], Any]] = (),
        underruns: Callable[[], int] = lambda: 0,
        period: Callable[[], int | None] = lambda: None,
        sync=None,
        gc_watch: GcWatch | None = None,
    ):
        self.generator = generator
        self.gc_watch = gc_watch
        self.store = store
        self.audio_rb = audio_rb
        self.block_frames = block_frames
        self.block_samples = block_frames * FRAME_SAMPLES
        self.prebuffer = prebuffer if prebuffer is not None else AdaptivePrebuffer(0.3, 1.0)
        self.underruns = underruns
        self.period = period
        self._underruns_seen = 0
        self._filled = False  # the buffer reached the pre-buffer since the last start, flush or underrun
        self.block_log = block_log
        self.frame_index = 0  # model frames generated since the last reset
        self.written = 0  # audio samples (per channel) written to the ring buffer, ever
        self.blocks = 0
        self.errors = 0
        self.block_times: collections.deque[float] = collections.deque(maxlen=4096)
        self.first_audio_time: float | None = None
        self.stream_position = stream_position
        self.on_flush = on_flush
        self.midi_out = midi_out
        self.before_block: list[Callable[[float], Any]] = list(before_block)
        self._recent: collections.deque[tuple[int, dict[str, Any]]] = collections.deque(maxlen=64)
        self._listeners: list[BlockListener] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state: Any = None
        self._reset_count = -1
        self._last_error = ""
        self.sync = sync
        self._last_sync_error = ""

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="jamgen-generate", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.5) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def add_block_listener(self, listener: BlockListener) -> None:
        """Call ``listener(info)`` from the generation thread after each block is buffered."""
        self._listeners.append(listener)

    # --- the generation thread ----------------------------------------------------------------
    def _free_frames(self) -> int:
        return self.audio_rb.write_space // BYTES_PER_FRAME

    def _buffered_frames(self) -> int:
        return self.audio_rb.read_space // BYTES_PER_FRAME

    def _run(self) -> None:
        log.info("generation thread: %s", thread_priority.raise_this_thread())
        while not self._stop.is_set():
            if self.sync is not None:
                self._sync(self.sync.poll)
            snap = self.store.snapshot(0.0)
            if snap.reset_count != self._reset_count or self._state is None:
                self._fresh_state(snap, flush=snap.transport == "stopped" and self._reset_count >= 0)
            if snap.transport != "playing":
                self._stop.wait(0.01)
                continue
            self._check_underruns()
            if self._buffered_frames() >= self._target() or self._free_frames() < self.block_samples:
                self._filled = True
                self._stop.wait(0.002)  # at most 2 ms late: a small part of the smallest pre-buffer
                continue
            self._generate_block()

    def _check_underruns(self) -> bool:
        """Grow the pre-buffer when the JACK callback counted an underrun since the last look."""
        underruns = self.underruns()
        if underruns == self._underruns_seen:
            return False
        self._underruns_seen = underruns
        self._filled = False  # the callback waits for the pre-buffer again
        self.prebuffer.near_miss("underrun")
        return True

    def _target(self) -> int:
        """Frames to keep buffered: the pre-buffer, but at least the three periods the JACK callback
        waits for before it starts playing (else a tiny pre-buffer would never start)."""
        return max(self.prebuffer.frames, 3 * (self.period() or 0))

    def _fresh_state(self, snap: ControlSnapshot, flush: bool) -> None:
        self._reset_count = snap.reset_count
        seed = int(snap.values["seed"])
        try:
            self._state = self.generator.init_state(seed)
        except Exception as err:  # noqa: BLE001 - a generator bug must not kill the daemon
            self._report_error("init_state", err)
            self._state = None
            self._stop.wait(0.5)
            return
        self.frame_index = 0
        if flush:
            self._filled = False
            self.on_flush()
        log.info("generator: fresh context (seed %d)", seed)

    def _generate_block(self) -> None:
        block_seconds = self.block_frames / FRAME_RATE
        sounds_at = time.time() + self._buffered_frames() / SAMPLE_RATE
        for hook in self.before_block:
            try:
                hook(sounds_at)
            except Exception:
                log.exception("before-block hook failed")
        clock = self._sync(self.sync.position, self.written, sounds_at) if self.sync is not None else None
        snap = self.store.snapshot(block_seconds)  # after the sync source, which may have set bpm
        snap_time = time.time()
        controls = generation_controls(snap)
        if clock is not None:
            controls = dataclasses.replace(controls, clock=clock)
        t0, cpu0, thread0 = time.perf_counter(), time.process_time(), time.thread_time()
        try:
            audio, state = self.generator.generate(self._state, controls, self.block_frames)
            audio = check_audio(audio, self.block_frames)
        except Exception as err:  # noqa: BLE001
            self._report_error("generate", err)
            self._state = None  # a fresh state on the next loop
            self._reset_count = -1
            self._stop.wait(0.2)
            return
        elapsed = time.perf_counter() - t0
        cpu, thread_cpu = time.process_time() - cpu0, time.thread_time() - thread0
        self._state = state
        self._last_error = ""
        if self.generator.makes_notes:  # [(sample offset in this block, bytes)], stamped with stream positions
            try:
                events = self.generator.drain_midi()
            except Exception as err:  # noqa: BLE001
                self._report_error("drain_midi", err)
                events = []
            if self.midi_out is not None:
                for offset, data in events:
                    if 0 <= offset < self.block_samples and 1 <= len(data) <= 3:
                        self.midi_out.put((self.written + int(offset), bytes(data)))
        ahead = self._buffered_frames()  # what was left to play when this block arrived
        # One slow block is one near miss: an underrun during it, or else a late arrival; never
        # while (re)filling, when a short buffer is expected.
        if not self._check_underruns() and self._filled:
            self.prebuffer.check_arrival(ahead, self.block_samples, self.period())
        self.audio_rb.write(audio)  # [n, 2] C-contiguous float32 is already interleaved
        if self.first_audio_time is None:
            self.first_audio_time = time.monotonic()
        info = {
            "wall": round(snap_time, 4),  # when the controls were read
            "frame": self.frame_index,
            "frames": self.block_frames,
            "sample": self.written,  # position of the block's first sample in the output stream
            "gen_ms": round(elapsed * 1000.0, 2),
            # CPU time during it: a slow block with little CPU waited for a core (or the GIL), one with
            # cpu_ms ~ gen_ms computed; thread_ms is this thread's own share (XLA may run on its own threads)
            "cpu_ms": round(cpu * 1000.0, 2),
            "thread_ms": round(thread_cpu * 1000.0, 2),
            "rtf": round(elapsed / block_seconds, 4),
            "prebuffer_ms": round(self.prebuffer.frames * 1000.0 / SAMPLE_RATE, 1),
            "ahead_ms": round(ahead * 1000.0 / SAMPLE_RATE, 1),
            # the longest garbage collection since the last block (any thread: it held them all), bridge.gc_guard
            "gc_ms": round(self.gc_watch.take(), 2) if self.gc_watch is not None else None,
            "controls": {
                **controls.as_dict(),
                **{name: snap.values[name] for name in OUTPUT_CONTROLS},
                "transport": snap.transport,
            },
        }
        self._recent.append((self.written, info))
        self.written += self.block_samples
        self.frame_index += self.block_frames
        self.blocks += 1
        self.block_times.append(elapsed)
        if self.block_log is not None:
            self.block_log.write(json.dumps(info) + "\n")
            self.block_log.flush()
        for listener in self._listeners:
            try:
                listener(info)
            except Exception:
                log.exception("block listener failed")

    def _sync(self, method: Callable[..., Any], *args: Any) -> Any:
        """Call the sync source; one that raises is logged once per distinct error and gives no clock."""
        try:
            return method(*args)
        except Exception as err:  # noqa: BLE001 - a sync bug must not stop the music
            message = f"sync {method.__name__} failed: {type(err).__name__}: {err}".splitlines()[0]
            if message != self._last_sync_error:
                log.exception("%s", message)
                self._last_sync_error = message
            return None

    def _report_error(self, where: str, err: Exception) -> None:
        self.errors += 1
        message = f"generator {where} failed: {type(err).__name__}: {err}".splitlines()[0]
        if message != self._last_error:  # once per distinct error, not once per retry
            log.error("%s (restarting from a fresh state)", message)
            self._last_error = message

    # --- readers (any thread) -----------------------------------------------------------------
    def sounding(self) -> dict[str, Any] | None:
        """The block info of what is audible now (the block containing the play position)."""
        position = self.stream_position()
        current = None
        for start, info in list(self._recent):
            if start <= position:
                current = info
            else:
                break
        return current

    def stats(self) -> dict[str, Any]:
        times = np.array(self.block_times) if self.block_times else np.zeros(1)
        block_seconds = self.block_frames / FRAME_RATE
        return {
            "blocks": self.blocks,
            "errors": self.errors,
            "rtf_p50": float(np.percentile(times, 50) / block_seconds),
            "rtf_p95": float(np.percentile(times, 95) / block_seconds),
            "rtf_p99": float(np.percentile(times, 99) / block_seconds),
            "prebuffer_ms": self.prebuffer.frames * 1000.0 / SAMPLE_RATE,
            "gc_longest_ms": self.gc_watch.longest_ms if self.gc_watch is not None else None,
        }
