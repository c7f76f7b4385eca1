"""The JACK side of the daemon: one client, two audio output ports, a real-time-safe process callback.

The process callback runs in JACK's real-time thread. It only copies samples out of a lock-free
:class:`jack.RingBuffer` (filled by the generation thread, see :mod:`bridge.engine`) into the port
buffers, applies a gain ramp, and mirrors what it played into a second ring buffer for
``--record``. It never allocates audio buffers, takes a lock, logs or blocks: all work buffers are
preallocated for the largest period, and everything the callback needs from other threads is a
plain attribute (reads and writes of Python attributes are atomic under the GIL).

When the buffer is about to run dry (less than two periods left), it fades the period out to
silence and counts one underrun; it then waits until the pre-buffer has filled again and fades
back in, so a slow, stalled or failing generator never produces a click or garbage. The pre-buffer
it waits for is the engine's adaptive one (:mod:`bridge.prebuffer`): the callback reads its current
``frames``, a plain int the generation thread replaces whole, so both use the same value and the
callback neither calls, allocates nor locks for it.

The JACK server may go away at any time. :class:`JackOutput` notices (shutdown callback), and
:meth:`JackOutput.maintain`, called periodically by the daemon, closes the dead client and
reconnects when a server is back, re-registering ports and re-making connections. Generation
continues meanwhile, filling the buffer.
"""

from __future__ import annotations

import fnmatch
import logging
import queue
import threading
import time

import numpy as np

import jack

from bridge.prebuffer import AdaptivePrebuffer
from generator.core.contract import CHANNELS, SAMPLE_RATE

log = logging.getLogger(__name__)

MAX_PERIOD = 8192  # the largest JACK period we preallocate for
FRAME_MASK = 0xFFFFFFFF  # JACK frame times are 32-bit and wrap (about every 24.8 h at 48 kHz)
# MIDI clock, start, continue, stop and song position: with a sync queue they go to the MIDI clock
# follower (bridge.sync_midi) with their frame time, not to the mappings.
SYNC_STATUSES = frozenset((0xF2, 0xF8, 0xFA, 0xFB, 0xFC))
REFUSED_RETRY_SECONDS = 1.0  # how often a server at the wrong rate or period is asked again
FADE_SECONDS = 0.02  # gain ramps (volume, mute, pause) never take less than this
BYTES_PER_FRAME = 4 * CHANNELS  # interleaved float32 stereo


def ring_buffer(seconds: float) -> jack.RingBuffer:
    """A ring buffer holding at least ``seconds`` of interleaved stereo float32 at 48 kHz."""
    size = 1
    while size < seconds * SAMPLE_RATE * BYTES_PER_FRAME:
        size *= 2
    return jack.RingBuffer(size)


def _read_into(rb: jack.RingBuffer, out: np.ndarray) -> None:
    """Copy ``out.size`` float32 samples out of ``rb`` without allocating a new buffer."""
    first, second = rb.read_buffers
    a = np.frombuffer(first, dtype=np.float32)
    n = min(len(a), out.size)
    out[:n] = a[:n]
    if n < out.size:
        out[n:] = np.frombuffer(second, dtype=np.float32)[: out.size - n]
    rb.read_advance(out.size * 4)


class JackOutput:
    """Plays interleaved stereo float32 from ``audio_rb`` into JACK ports ``<name>:out_L/out_R``.

    Args:
      audio_rb: the ring buffer the engine fills (single reader: this callback).
      prebuffer: the engine's adaptive pre-buffer; its current ``frames`` must be buffered before
        playing starts (and after an underrun), and at least three periods.
      client_name: the JACK client name (ports ``<name>:out_L``/``out_R``).
      server_name: the JACK server, or None for the default one.
      connect: ``system`` or a port pattern to connect the outputs to, or None.
      record_rb: where the callback mirrors what it played (``--record``), or None.
      midi_out_queue: the generator's notes as ``(stream sample, bytes)`` (filled by the engine);
        when given, the client also has a ``<name>:midi_out`` port that sends each note in the
        period that plays its sample.
      timebase: a JACK timebase callback (``--timebase-master``: :class:`bridge.sync_jack.TimebaseMaster`),
        registered on every (re)connect, or None.

    Attributes read by other threads (all plain counters, never reset while running):
      underruns: periods in which the buffer ran dry while playing (after priming).
      xruns: xrun notifications from the server.
      consumed: audio frames taken from ``audio_rb`` so far (played or flushed).
      connected: whether a client is active on a server right now.
      period_frames: the server's period (0 when never connected); a plain copy, so other threads
        never call into libjack for it.

    Sync (bridge.sync): :meth:`frame_time_of` says when a stream sample will play, from ``cycle`` (the
    frame time and stream position of the last period played, set by the callback) or, before the
    first period, from ``start_at``: a frame time a sync source asked for with :meth:`plan_start`, at
    which the callback starts playing exactly (so the first block's musical position is known before
    it is generated). ``sync_queue``, when set, receives MIDI clock messages as ``(frame time, bytes)``.
    ``client_lock`` is held while the client is closed, so another thread may query it under the lock.
    """

    def __init__(
        self,
        audio_rb: jack.RingBuffer,
        prebuffer: AdaptivePrebuffer,
        client_name: str = "jamgen",
        server_name: str | None = None,
        connect: str | None = None,
        record_rb: jack.RingBuffer | None = None,
        midi_out_queue: queue.SimpleQueue | None = None,
        timebase=None,
    ):
        self.audio_rb = audio_rb
        self.record_rb = record_rb
        self.prebuffer = prebuffer
        self.period_frames = 0
        self.client_name = client_name
        self.server_name = server_name
        self.connect_pattern = connect
        self.client: jack.Client | None = None
        self.underruns = 0
        self.xruns = 0
        self.consumed = 0
        self.record_dropped = 0
        self.connected = False
        self.reconnects = 0
        # Written by other threads, read by the callback.
        self.playing = False  # transport: when False, fade out and hold the buffer
        self.target_gain = 1.0  # volume/mute, linear
        self.flush_requests = 0  # bump to drop everything buffered (stop)
        # Callback-private state.
        self._flushes_done = 0
        self._gain = 0.0
        self._primed = False
        self._server_gone = threading.Event()
        self._last_error = ""
        self._retry_at = 0.0  # after a refused server (wrong rate or period): next try not before this
        self._interleaved = np.zeros(MAX_PERIOD * CHANNELS, dtype=np.float32)
        self._ramp = np.zeros(MAX_PERIOD, dtype=np.float32)
        self._gains = np.zeros(MAX_PERIOD, dtype=np.float32)
        self._silent_rec = np.zeros(MAX_PERIOD * CHANNELS, dtype=np.float32)
        self._ports: list = []
        # MIDI input on this same client (one JACK client per process; see bridge.midi).
        self.midi_queue: queue.SimpleQueue | None = None  # set before open() to get <name>:midi_in
        self.midi_port = None
        self.midi_dropped = 0
        self.ports_changed = threading.Event()  # a port appeared/vanished (MIDI re-connects)
        # MIDI output (<name>:midi_out) for generators that make notes: the engine queues
        # (stream_sample, bytes); the callback sends each event in the period that plays that
        # sample, so notes stay sample-aligned with the audio they belong to.
        self.midi_out_queue = midi_out_queue
        self.midi_out_port = None
        self._midi_pending: list[tuple[int, bytes]] = []
        self._notes_on: set[tuple[int, int]] = set()  # (status & 0x0F, note) sounding downstream
        # Sync (see the class docstring): written by the callback / by a sync source, read by both.
        self.timebase = timebase
        self.sync_queue: queue.SimpleQueue | None = None
        self.cycle: tuple[int, int] | None = None  # (frame time, consumed) of the last period while primed
        self.last_frame = 0  # frame time of the last period's first frame
        self.start_at: int | None = None  # frame time at which to start playing (a sync source's plan)
        self.slow_sync = False  # set before open(): hold the transport's starts until the pre-buffer is here
        self.roll_plan: int | None = None  # transport frame at which the next unplayed stream sample plays
        self.rolls_aligned = 0  # starts that began exactly on the transport's first rolling frame (counter)
        self.keep_time = False  # a sync source: after a missed period, drop what the stream is behind by
        self.caught_up = 0  # frames dropped so (counter)
        self._played = 0  # frames the last period played (0: it did not play a whole period)
        self.client_lock = threading.Lock()
        self._rt_client: jack.Client | None = None

    # --- the real-time thread ---------------------------------------------------------------
    def _process(self, nframes: int) -> None:
        frame = self._rt_client.last_frame_time  # jack_last_frame_time: RT-safe, this period's first frame
        self.last_frame = frame
        if self.midi_port is not None:
            self._take_midi(frame)
        rb = self.audio_rb
        flushing = self.flush_requests != self._flushes_done
        if flushing:  # stop: drop what is buffered
            self._flushes_done = self.flush_requests
            dropped = rb.read_space // BYTES_PER_FRAME
            rb.read_advance(dropped * BYTES_PER_FRAME)
            self.consumed += dropped
            self._primed = False
        available = rb.read_space // BYTES_PER_FRAME
        if not self._primed:
            self._prime(available, nframes, frame)
            available = rb.read_space // BYTES_PER_FRAME
        if self._primed:
            if self.keep_time and self._played:
                available -= self._catch_up(frame, available, nframes)
            self.cycle = (frame, self.consumed)
        self._played = 0
        if self.midi_out_port is not None:  # after priming, so the first period's notes go out on time
            self._send_midi(nframes, flushing)
        out_l = self._ports[0].get_array()
        out_r = self._ports[1].get_array()
        target = self.target_gain if self.playing else 0.0
        if not self._primed or (not self.playing and self._gain == 0.0):
            out_l.fill(0.0)
            out_r.fill(0.0)
            self._gain = 0.0  # whatever plays next fades in
            self._record_silence(nframes)
            return
        inter = self._interleaved[: nframes * CHANNELS]
        starving = False
        if available >= nframes:
            got = nframes
            _read_into(rb, inter)
            if self.playing and available - nframes < nframes:
                # The next period would run dry (a slow, stalled or failed generator): fade this
                # one out to silence instead of cutting off, and wait for the pre-buffer again.
                starving = True
        else:  # a hard underrun (pre-buffer smaller than two periods): play what is there
            got = available
            if got:
                _read_into(rb, inter[: got * CHANNELS])
            inter[got * CHANNELS:].fill(0.0)
            starving = self.playing
        self.consumed += got
        if got == nframes and not starving:
            self._played = nframes
        np.copyto(out_l, inter[0::2])
        np.copyto(out_r, inter[1::2])
        # Gain: a linear ramp from the current to the target gain over this period.
        start, stop = self._gain, (0.0 if starving else target)
        if start == stop:
            if start != 1.0:
                out_l *= start
                out_r *= start
        else:
            if not starving:  # never faster than FADE_SECONDS for the full swing
                max_step = nframes / (FADE_SECONDS * SAMPLE_RATE) * max(1.0, start, stop)
                stop = start + min(max(stop - start, -max_step), max_step)
            gains = self._gains[:nframes]
            np.multiply(self._ramp[:nframes], stop - start, out=gains)
            gains += start
            out_l *= gains
            out_r *= gains
            self._gain = stop
        if starving:
            self.underruns += 1
            self._primed = False
        if self.record_rb is not None:
            inter[0::2] = out_l
            inter[1::2] = out_r
            if self.record_rb.write_space >= len(inter) * 4:
                self.record_rb.write(inter)
            else:
                self.record_dropped += nframes

    def _prime(self, available: int, nframes: int, frame: int) -> None:
        """RT: start playing once the pre-buffer is there; with a planned start (``start_at``), exactly then.

        A planned start that finds the buffer late drops the frames it is late by, so the stream stays on
        the sync source's timeline; if that would leave less than two periods, it starts unaligned (the
        source re-phases from ``cycle``).
        """
        rb = self.audio_rb
        need = self._need(nframes)
        if self.roll_plan is not None:
            self._roll(available, nframes)
            return
        start = self.start_at
        if start is None:
            self._primed = available >= need
            return
        late = ((frame - start + 0x80000000) & FRAME_MASK) - 0x80000000
        if late < 0:
            return  # not yet
        if available - late >= 2 * nframes:
            rb.read_advance(late * BYTES_PER_FRAME)
            self.consumed += late
        elif available < need:
            return
        self.start_at = None
        self._primed = True

    def _need(self, nframes: int) -> int:
        """Frames to hold before playing: the pre-buffer, at least three periods, at most what the ring holds."""
        return min(max(self.prebuffer.frames, 3 * nframes), self.audio_rb.size // BYTES_PER_FRAME - nframes)

    def _on_sync(self, state, pos) -> bool:
        """RT, JACK's slow-sync callback (``slow_sync``): a start waits (``STARTING``) until the stream planned for
        that transport frame (:meth:`plan_roll`) has its pre-buffer, so the transport's first rolling frame plays the
        stream's first sample. Anything else (a locate while stopped, a start while jamgen already plays in its own
        time) is ready at once; JACK's sync timeout (2 s) starts the transport anyway if the generator never
        delivers."""
        if state != jack.STARTING or not self.connected or self._primed:
            return True
        plan = self.roll_plan
        return (plan is not None and plan == pos.frame
                and self.audio_rb.read_space // BYTES_PER_FRAME >= self._need(self.period_frames or 1024))

    def _roll(self, available: int, nframes: int) -> None:
        """RT: with a roll plan, start on the first period the transport rolls, at the planned transport frame
        (dropping what the transport is past it by: JACK's sync timeout, or a plan made late)."""
        state, pos = self._rt_client.transport_query_struct()
        if state != jack.ROLLING:
            return
        late = pos.frame - self.roll_plan
        if late == 0:
            self.rolls_aligned += 1
        elif 0 < late <= available - 2 * nframes:
            self.audio_rb.read_advance(late * BYTES_PER_FRAME)
            self.consumed += late
        elif available < self._need(nframes):
            return
        self.roll_plan = None
        self.start_at = None
        self._primed = True

    def _catch_up(self, frame: int, available: int, nframes: int) -> int:
        """RT, with a sync source (``keep_time``): a period this client missed (an xrun) leaves the stream behind
        the clock; drop what it is behind by, so the audio and notes already generated stay on the clock's time
        (one glitch, where an xrun glitched anyway). Returns the frames dropped."""
        previous = self.cycle
        if previous is None:
            return 0
        behind = ((frame - previous[0] - self._played + 0x80000000) & FRAME_MASK) - 0x80000000
        if behind <= 0 or behind > available - 2 * nframes:
            return 0
        self.audio_rb.read_advance(behind * BYTES_PER_FRAME)
        self.consumed += behind
        self.caught_up += behind
        return behind

    def _take_midi(self, frame: int) -> None:
        """RT: copy incoming MIDI events to the MIDI worker's queue (no parsing here); MIDI clock
        messages to the sync queue, with their frame time, when there is one."""
        q = self.midi_queue
        sq = self.sync_queue
        for offset, data in self.midi_port.incoming_midi_events():
            if len(data) > 3 or q.qsize() >= 4096:  # SysEx or a flood: not for us
                self.midi_dropped += 1
                continue
            data = bytes(data)
            if sq is not None and data and data[0] in SYNC_STATUSES:
                if sq.qsize() < 4096:
                    sq.put_nowait((frame + offset, data))
            else:
                q.put_nowait(data)

    def _send_midi(self, nframes: int, flushing: bool) -> None:
        """RT: send the queued generator notes that fall into this period.

        ``consumed`` is the stream position of this period's first sample *before* this period's
        audio is read, so an event at stream sample p goes out at offset p - consumed. When the
        transport stops playing, or buffered audio is flushed, every sounding note gets its
        note-off at once, so a DAW never keeps a stuck note.
        """
        port = self.midi_out_port
        port.clear_buffer()
        q = self.midi_out_queue
        pending = self._midi_pending
        while not q.empty():
            pending.append(q.get_nowait())
        if flushing:
            pending.clear()
        if not self.playing or flushing or not self._primed:
            self._all_notes_off(port)
            return
        end = self.consumed + nframes
        while pending and pending[0][0] < end:
            position, data = pending.pop(0)
            status = data[0] & 0xF0
            key = (data[0] & 0x0F, data[1]) if len(data) > 1 else None
            if status == 0x90 and data[2] > 0:
                self._notes_on.add(key)
            elif status == 0x80 or status == 0x90:
                self._notes_on.discard(key)
            port.write_midi_event(max(0, min(nframes - 1, position - self.consumed)), data)

    def _all_notes_off(self, port) -> None:
        while self._notes_on:
            channel, note = self._notes_on.pop()
            port.write_midi_event(0, bytes((0x80 | channel, note, 0)))

    def _record_silence(self, nframes: int) -> None:
        if self.record_rb is not None and self.playing:
            silence = self._silent_rec[: nframes * CHANNELS]
            if self.record_rb.write_space >= len(silence) * 4:
                self.record_rb.write(silence)

    # --- notification threads ---------------------------------------------------------------
    def _on_shutdown(self, status, reason) -> None:  # "as if it were a signal handler": set a flag
        self._server_gone.set()

    def _on_xrun(self, delay) -> None:
        self.xruns += 1

    def _on_samplerate(self, samplerate: int) -> None:
        if samplerate != SAMPLE_RATE:
            self._server_gone.set()  # maintain() will refuse this server until it is at 48 kHz

    # --- control thread ---------------------------------------------------------------------
    def open(self) -> None:
        """Connect to the server once; raises :class:`jack.JackOpenError` or RuntimeError."""
        client = jack.Client(self.client_name, servername=self.server_name, no_start_server=True)
        if client.samplerate != SAMPLE_RATE:
            rate = client.samplerate
            client.close()
            raise RuntimeError(
                f"JACK server runs at {rate} Hz; jamgen generates at {SAMPLE_RATE} Hz "
                f"(restart jackd with -r {SAMPLE_RATE})"
            )
        if client.blocksize > MAX_PERIOD:
            size = client.blocksize
            client.close()
            raise RuntimeError(f"JACK period {size} is larger than the supported {MAX_PERIOD}")
        self._on_blocksize(client.blocksize)
        self._server_gone.clear()
        self._rt_client = client
        self.cycle, self.start_at, self.roll_plan = None, None, None
        self._ports = [client.outports.register("out_L"), client.outports.register("out_R")]
        if self.midi_out_queue is not None:
            self.midi_out_port = client.midi_outports.register("midi_out")
            self._notes_on.clear()  # a new server has no notes sounding
        if self.midi_queue is not None:
            self.midi_port = client.midi_inports.register("midi_in")
            client.set_port_registration_callback(lambda port, registered: self.ports_changed.set(),
                                                  only_available=False)
        client.set_process_callback(self._process)
        client.set_shutdown_callback(self._on_shutdown)
        client.set_xrun_callback(self._on_xrun)
        client.set_samplerate_callback(self._on_samplerate)
        client.set_blocksize_callback(self._on_blocksize)
        if self.timebase is not None:
            client.set_timebase_callback(self.timebase)
        if self.slow_sync:
            client.set_sync_callback(self._on_sync)
        client.activate()
        self.client = client
        self.connected = True
        self._auto_connect()
        log.info("JACK: client %r active on server %r (%d Hz, period %d)",
                 client.name, self.server_name or "default", client.samplerate, client.blocksize)

    def _on_blocksize(self, blocksize: int) -> None:
        if blocksize > MAX_PERIOD:
            self._server_gone.set()
        else:
            # The ramp's shape depends on the period length: rebuild it for the new size.
            self._ramp[:blocksize] = np.arange(1, blocksize + 1, dtype=np.float32) / np.float32(blocksize)
            self.period_frames = blocksize

    def _auto_connect(self) -> None:
        pattern = self.connect_pattern
        if not pattern or self.client is None:
            return
        if pattern == "system":
            targets = [p.name for p in self.client.get_ports(is_physical=True, is_input=True, is_audio=True)]
        else:
            targets = [p.name for p in self.client.get_ports(is_input=True, is_audio=True)
                       if fnmatch.fnmatchcase(p.name, pattern) or p.name.startswith(pattern)]
            targets = [t for t in targets if not t.startswith(self.client.name + ":")]
        if not targets:
            log.warning("JACK: no input ports match --connect %r", pattern)
            return
        for port, target in zip(self._ports, (targets * 2)[:2] if len(targets) == 1 else targets[:2]):
            try:
                self.client.connect(port, target)
            except jack.JackError as err:
                log.warning("JACK: cannot connect %s -> %s: %s", port.name, target, err)
            else:
                log.info("JACK: connected %s -> %s", port.name, target)

    def maintain(self) -> None:
        """Called about every 100 ms by the daemon: notice a lost server and reconnect."""
        if self.client is not None and self._server_gone.is_set():
            log.warning("JACK: server went away (or changed to an unsupported setting); "
                        "generation continues, reconnecting")
            self._drop_client()
        if self.client is None and time.monotonic() >= self._retry_at:
            try:
                self.open()
            except (jack.JackError, RuntimeError) as err:
                if isinstance(err, RuntimeError):
                    # A running server we refuse stays unusable until it is restarted: ask it once a
                    # second, not ten times, so its graph is not flooded with clients that come and go.
                    self._retry_at = time.monotonic() + REFUSED_RETRY_SECONDS
                message = str(err).splitlines()[0] if str(err) else type(err).__name__
                if message != self._last_error:
                    log.warning("JACK: not connected: %s (retrying)", message)
                    self._last_error = message
            else:
                if self._last_error or self.reconnects:
                    log.info("JACK: connected again")
                self.reconnects += 1
                self._last_error = ""

    def _drop_client(self) -> None:
        with self.client_lock:  # a sync source may be querying the transport
            client, self.client = self.client, None
            self.midi_port = self.midi_out_port = None
            self.connected = False
            self._primed = False
            self.cycle = None
            if client is None:
                return
            try:
                client.deactivate(ignore_errors=True)
                client.close(ignore_errors=True)
            except Exception as err:  # a dead server can make libjack complain; we move on
                log.debug("JACK: closing old client: %s", err)

    def close(self) -> None:
        self.playing = False
        if self.client is not None and not self._server_gone.is_set():
            time.sleep(FADE_SECONDS * 2)  # let the fade-out reach the speakers
        self._drop_client()

    # --- sync (any thread) --------------------------------------------------------------------
    def frame_time_of(self, sample: int) -> int | None:
        """The JACK frame time at which stream sample ``sample`` will play, if playback goes on without an
        underrun; None when nothing anchors the stream (not connected, not started, no planned start)."""
        cycle = self.cycle
        if self._primed and cycle is not None:
            return (cycle[0] + sample - cycle[1]) & FRAME_MASK
        start = self.start_at
        if start is not None:
            return (start + sample - self.consumed) & FRAME_MASK
        return None

    def plan_roll(self, transport_frame: int) -> None:
        """A slow-sync start (:meth:`_on_sync`): the next unplayed stream sample plays at ``transport_frame``, on the
        first period the transport rolls (nothing to plan while already playing)."""
        if self._primed:
            return
        self.start_at = None
        self.roll_plan = int(transport_frame)

    def transport_frame_of(self, sample: int) -> int | None:
        """Under a roll plan, the transport frame at which stream sample ``sample`` will play (else None)."""
        plan = self.roll_plan
        if plan is None or self._primed:
            return None
        return plan + sample - self.consumed

    def plan_start(self, lead_frames: int) -> int | None:
        """Start playing (after a stop, flush or underrun) exactly at the first period boundary at least
        ``lead_frames`` from now, so a sync source knows when the next block will sound; returns that frame
        time (None when not connected, or already playing)."""
        period = self.period_frames
        if not self.connected or period <= 0 or self._primed:
            return None
        periods = -(-(lead_frames + period) // period)  # the period running now may be half done
        self.start_at = (self.last_frame + periods * period) & FRAME_MASK
        return self.start_at

    @property
    def period(self) -> int | None:
        return self.client.blocksize if self.client is not None else None
