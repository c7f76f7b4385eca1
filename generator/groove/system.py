"""The groove generator behind the daemon's contract: beat-grid tokens -> notes on a tempo clock -> FluidSynth.

How one ``generate(state, controls, frames)`` call works (one block of ``frames * 1920`` samples):

1. **Tempo.** The block's tempo is ``controls.bpm`` (a live control), or, when it is 0, the tempo the
   prompt asks for (a tempo head in the checkpoint, else :data:`DEFAULT_BPM`). The :class:`TickClock`
   maps grid ticks to stream samples piecewise-linearly; a tempo change starts a new piece at the block's
   first sample, so the tick position is continuous and every later tick lands at the new tempo, exactly.
2. **Notes.** Tokens are sampled in fixed chunks (one jitted ``lax.scan``; guidance, temperature, top-k
   and the prompt vector are traced) and decoded into notes until the decoder's position is past the
   block's end (every note starting in the block is then complete: ``lookahead_ticks`` adds more, but a
   block that re-samples after a change pays for every tick of it; at 1 tick the blocks after a change took
   p90 33 ms, at 0 p90 24 ms, ``bench/sampler_speed.py --lookahead-ticks 1,0``), then up to one more chunk
   per block while less than ``lookahead_s`` of
   music is sampled ahead (so a dense downbeat was usually sampled during quiet blocks). A note carries
   its duration, so its note-off is scheduled with it: a note cannot outlive its duration token.
   **A control change** (prompt, guidance, temperature, top-k, repeat, harmony) takes back every note that has not started
   yet and samples again from the first grid tick not yet rendered (:mod:`generator.groove.timeline`), so
   the change is heard at the next block whatever the lookahead; notes already sounding end as scheduled.
3. **Sound.** Pending note-ons and note-offs are kept in *ticks* and turned into sample offsets only when
   their block is rendered, so a tempo change re-times every note not yet played, including the ends of
   notes already sounding. FluidSynth renders between events at their exact offsets
   (:class:`generator.core.synth.NoteSynth`), and the same messages go to ``drain_midi``.

Note hygiene: a note-on of a sounding (channel, pitch) ends it first; a note-off belongs to one note (a
serial), so an older note's end never cuts a newer one; ``init_state`` ends every sounding note (also on
MIDI out). Guard: sampling draws on a budget that refills at ``max_tokens_per_s`` tokens per second of audio
(holding at most one second's worth); when a block's notes need more, the clock is delayed by whole ticks until
the block ends where the stream has got to (a rest instead of a late block, still on the grid), so a block's
cost is bounded and the model never sees a token it did not choose.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from generator.core import gm, runtime
from generator.core.contract import CHANNELS, FRAME_SAMPLES, SAMPLE_RATE, GenerationControls, Latency
from generator.core.note_generator import NoteGenerator, resolve
from generator.groove import checkpoint as ckpt
from generator.groove import tokens as G
from generator.groove.form import Form
from generator.groove.harmony import part_pitch_bias
from generator.groove.lock import NUDGE_TICKS, BarMarks, metre_index, phase_error
from generator.groove.model import PRESETS, GrooveConfig, GrooveTransformer, feed_tokens, init_sampler, sample_chunk
from generator.groove.timeline import Timeline

log = logging.getLogger(__name__)
DEFAULT_BPM = 110.0
MIN_BPM, MAX_BPM = 20.0, 300.0


class TickClock:
    """Grid ticks <-> stream samples at a tempo that may change at any sample.

    One linear piece is kept: ``tick(sample) = tick0 + (sample - sample0) / samples_per_tick``. Changing
    the tempo at sample ``s`` starts a new piece at ``(tick(s), s)``, so the clock never jumps.
    """

    def __init__(self, bpm: float = DEFAULT_BPM):
        self.tick0, self.sample0 = 0.0, 0
        self.bpm = float(bpm)

    @property
    def samples_per_tick(self) -> float:
        return SAMPLE_RATE * 60.0 / (self.bpm * G.TPB)

    def set_bpm(self, bpm: float, at_sample: int) -> None:
        bpm = float(min(MAX_BPM, max(MIN_BPM, bpm)))
        if bpm != self.bpm:
            self.tick0, self.sample0, self.bpm = self.tick_at(at_sample), int(at_sample), bpm

    def tick_at(self, sample: float) -> float:
        return self.tick0 + (sample - self.sample0) / self.samples_per_tick

    def sample_at(self, tick: float) -> int:
        return int(round(self.sample0 + (tick - self.tick0) * self.samples_per_tick))


@dataclasses.dataclass
class GrooveState:
    """Everything one stream needs. ``model`` is a pytree of arrays (donated to the sampler)."""

    model: dict
    decoder: G.Decoder = dataclasses.field(default_factory=G.Decoder)
    clock: TickClock = dataclasses.field(default_factory=TickClock)
    position: int = 0  # samples rendered since init_state
    # heap (tick, seq, on, channel, pitch, velocity, serial); a note's serial is the global index of the token
    # that completed it, so a rewind drops exactly the notes of the tokens it takes back
    pending: list = dataclasses.field(default_factory=list)
    active: dict = dataclasses.field(default_factory=dict)  # (channel, pitch) -> serial of the sounding note
    programs: dict = dataclasses.field(default_factory=dict)  # channel -> program sent
    seq: int = 0
    tokens: int = 0  # tokens sampled since init_state (rewound ones included)
    forced: int = 0  # times the guard re-anchored the clock
    timeline: Timeline = dataclasses.field(default_factory=Timeline)
    replay: list = dataclasses.field(default_factory=list)  # recorded tokens the next chunk feeds again (a rewind)
    script: list = dataclasses.field(default_factory=list)  # new tokens the next chunks feed (a repeated bar)
    form: Form = dataclasses.field(default_factory=Form)
    key: tuple | None = None  # the controls the sampled-ahead tokens were sampled with
    credit: float = -1.0  # the guard's token budget (-1: full)
    rewinds: int = 0  # control changes that re-sampled notes not yet heard
    bars: BarMarks = dataclasses.field(default_factory=BarMarks)
    metre: int | None = None  # the TS an external clock locks the stream to (None: the model's choice)
    rephases: int = 0  # times an external clock's bar line moved the stream (generator.groove.lock)
    dropped: int = 0  # notes taken back by those rewinds


class GrooveSystem(NoteGenerator):
    # Guidance: the registry's 3.0 (measured, bench/render_check.py and bench/quality_lm.py: at 1.5 a lullaby is
    # played too loud and busy for the style judge to tell it from swing jazz; at 3.0 both directions pass).
    control_defaults: dict = {}
    # low: 40 ms blocks, 80 ms ahead. Notes are sampled up to lookahead_s ahead and a change re-samples the
    # ones not yet heard, so the block and the pre-buffer are all a listener waits for (with a 1024-frame JACK
    # period: 80-140 ms); a block's compute on 2 cores is p99 11 ms steady, 29 ms when every block re-samples
    # (measured with the shipped model, docs/benchmarks.md "Latency"). safe: 80 ms blocks, 250 ms ahead.
    latency = {"low": Latency(1, 0.08), "safe": Latency(2, 0.25)}
    follows_clock = True  # controls.clock: the host's tempo, metre and bar line (generator.groove.lock)

    def __init__(self, config: GrooveConfig, model: GrooveTransformer | None = None, soundfont: str | None = None,
                 chunk: int = 16, lookahead_ticks: float = 0.0, gain: float = 0.5, max_tokens_per_s: float = 500.0,
                 meta: dict | None = None, tempo=None, arrangement=None, lookahead_s: float = 0.5, pitch=None):
        self.config = config
        self.meta = meta or {}
        self.tempo = tempo  # generator.core.heads.TempoHead (the prompt's tempo) or None
        self.arrangement = arrangement  # generator.core.heads.PartHead (who plays) or None
        self.pitch = pitch  # generator.core.heads.PitchHead (the key) or None
        self._bias_key: bytes | None = None
        self._style_key: bytes | None | str = "none yet"  # the blended prompt _style last made arrays for
        self._style_args: tuple = ()
        self._bias = (jnp.zeros((G.VOCAB,), jnp.float32), jnp.zeros((G.N_PARTS, G.VOCAB), jnp.float32))
        self.model = model if model is not None else nnx.jit(
            lambda: GrooveTransformer(config, rngs=nnx.Rngs(config.seed)))()
        self.chunk = int(chunk)
        self.lookahead_ticks = float(lookahead_ticks)
        self.lookahead_s = float(lookahead_s)
        self.max_tokens_per_s = float(max_tokens_per_s)
        self._graph, self._params = nnx.split(self.model)
        # the compiled calls take the parameters as a flat list: flattening an nnx.State costs ~0.1 ms a call
        self._leaves, self._treedef = jax.tree.flatten(self._params)
        # No donation: a rewind restarts from an older sampler state, so every state must stay valid.
        self._sample = jax.jit(self._sample_fn, compiler_options=runtime.event_sampler_options())
        self._feed = jax.jit(self._feed_fn, compiler_options=runtime.event_sampler_options())
        super().__init__(soundfont, gain)
        self._live: GrooveState | None = None
        self.last_block: dict = {}

    # ---- model ---------------------------------------------------------------------------
    def _sample_fn(self, leaves, state, style, has_style, guidance, temperature, top_k, biases, forced, n_forced):
        return sample_chunk(self._merge(leaves), state, style, has_style, guidance, temperature, top_k, self.chunk,
                            biases[0], forced, n_forced, biases[1])

    def _feed_fn(self, leaves, state, style, has_style, tokens, n):
        return feed_tokens(self._merge(leaves), state, style, has_style, tokens, n)

    def _merge(self, leaves):
        return nnx.merge(self._graph, jax.tree.unflatten(self._treedef, leaves))

    def biases(self, vec, harmony: tuple[int, ...] = (), metre: int | None = None) -> tuple[jnp.ndarray, jnp.ndarray]:
        """([V] bias on the PART tokens from the arrangement head and, when an external clock fixes the ``metre``,
        against every other TS token; [N_PARTS, V] bias on each part's PITCH tokens: a held chord's
        (:mod:`generator.groove.harmony`) when ``harmony`` has notes, else the key head's on the melodic parts);
        zeros without a head or a prompt; made once per blended prompt, chord and metre."""
        key = (None if vec is None else vec.tobytes(), harmony, metre)
        if key != self._bias_key:
            part, pitch = np.zeros(G.VOCAB, np.float32), np.zeros((G.N_PARTS, G.VOCAB), np.float32)
            if metre is not None:
                part[G.TS0:G.TS0 + len(G.TIME_SIGNATURES)] = -1e9
                part[G.TS0 + metre] = 0.0
            if self.arrangement is not None and vec is not None:
                part[G.PART0:G.PART0 + G.N_PARTS] = self.arrangement.bias16(vec)
            if harmony:
                pitch[:, G.PITCH0:G.PITCH0 + 128] = part_pitch_bias(harmony)
            elif self.pitch is not None and vec is not None:
                pitch[:, G.PITCH0:G.PITCH0 + 128] = self.pitch.pitch_bias(vec)
                pitch[G.DRUM_PART] = 0.0
            self._bias_key, self._bias = key, (jnp.asarray(part), jnp.asarray(pitch))
        return self._bias

    def warmup(self, frames: int = 5, prompt: str = "warm up"):
        """The base warm-up (text tower, instruments, the sampler), and the one-pass feed a repeated bar uses, so
        the first repeat does not compile in a real-time block."""
        super().warmup(frames, prompt)
        self._feed_chunk(self.init_state(0), self.bank.blend(((prompt, 1.0),)), [G.BAR])
        self.init_state(0)
        self.drain_midi()

    def compile_count(self) -> int:
        return self._sample._cache_size()

    def _style(self, vec):
        """(style [384], has style) as device arrays, made once per blended prompt (~0.2 ms each time otherwise)."""
        key = None if vec is None else vec.tobytes()
        if key != self._style_key:
            style = np.zeros((self.config.style_dim,), np.float32) if vec is None else vec
            self._style_key, self._style_args = key, (jnp.asarray(style), jnp.asarray(vec is not None))
        return self._style_args

    def sample_tokens(self, state: GrooveState, controls: GenerationControls, n_chunks: int = 1) -> np.ndarray:
        """Sample ``n_chunks * chunk`` tokens into ``state`` without decoding (for tests and evaluation)."""
        vec = self.bank.blend(controls.prompts)
        return np.concatenate([self._sample_chunk(state, controls, vec) for _ in range(n_chunks)])

    def _sample_chunk(self, state: GrooveState, controls: GenerationControls, vec, replay=()) -> np.ndarray:
        """One chunk of tokens into ``state.model`` (the controls and the prompt are traced arguments); the
        first ``len(replay)`` are ``replay``, fed instead of sampled."""
        style, has = self._style(vec)
        # numpy scalars: jnp.float32(x) is a dispatched op of its own (~0.1 ms each)
        toks, state.model = self._sample(self._leaves, state.model, style, has, np.float32(controls.guidance),
                                         np.float32(controls.temperature), np.int32(controls.top_k),
                                         self.biases(vec, controls.harmony_notes, state.metre), self._padded(replay),
                                         np.int32(len(replay)))
        return np.asarray(toks)

    def _feed_chunk(self, state: GrooveState, vec, tokens: list[int]) -> None:
        """Feed up to a chunk of known tokens into ``state.model`` in one pass
        (:func:`generator.groove.model.feed_tokens`)."""
        style, has = self._style(vec)
        state.model = self._feed(self._leaves, state.model, style, has, self._padded(tokens), np.int32(len(tokens)))

    def _padded(self, tokens) -> np.ndarray:
        """``tokens`` (at most a chunk) zero-padded to the compiled chunk length."""
        out = np.zeros(self.chunk, np.int32)
        out[:len(tokens)] = tokens
        return out

    def tempo_for(self, controls: GenerationControls, vec=None) -> float:
        """The block's tempo: ``controls.bpm`` when set, else the prompt's (the checkpoint's tempo head, bounded
        to 50-220 BPM), else :data:`DEFAULT_BPM`."""
        if controls.bpm > 0:
            return float(controls.bpm)
        if self.tempo is not None and vec is not None:
            return float(min(220.0, max(50.0, self.tempo.bpm(vec))))
        return DEFAULT_BPM

    # ---- the contract --------------------------------------------------------------------
    def init_state(self, seed: int = 0) -> GrooveState:
        """Fresh context; ends every sounding note of the previous stream (synth and MIDI out)."""
        self._end_stream(list(self._live.active) if self._live is not None else [])
        self._live = GrooveState(model=init_sampler(self.model, jax.random.key(int(seed) & 0x7FFFFFFF)),
                                 form=Form(seed))
        return self._live

    def generate(self, state: GrooveState, controls: GenerationControls, frames: int):
        """Continue by ``frames`` frames -> (audio float32 [frames*1920, 2], state)."""
        n = int(frames) * FRAME_SAMPLES
        start, end = state.position, state.position + n
        self._start_block()
        vec = self.bank.blend(controls.prompts)
        for ch, prog in self._programs(vec).items():  # programs chosen by the style, at the block start
            if state.programs.get(ch) != prog:
                if ch not in state.programs:  # first program on this channel: place it in the mix too
                    for control, value in self.synth.place_events(gm.channel_part(ch)):
                        self.synth.cc(0, ch, control, value)
                state.programs[ch] = prog
                self.synth.program(0, ch, prog)
        clock = controls.clock
        state.clock.set_bpm(clock.bpm if clock is not None else self.tempo_for(controls, vec), start)
        metre = None if clock is None else metre_index(clock.beats_per_bar)
        key = (controls.prompts, controls.guidance, controls.temperature, controls.top_k, controls.repeat,
               controls.harmony_notes, metre)
        rewound = state.key is not None and key != state.key and self._rewind(state, state.clock.tick_at(start))
        state.key = key
        state.metre = metre
        if clock is not None:
            self._follow(state, clock, start, metre)
        self._refill(state, n)
        used = self._notes_until(state, controls, vec, state.clock.tick_at(end) + self.lookahead_ticks)
        if not rewound:  # a block that re-sampled has done its share; the lookahead refills in the next ones
            used += self._prefetch(state, controls, vec, end)
        audio = np.zeros((n, CHANNELS), np.float32)
        end_tick = state.clock.tick_at(end)
        pos = start
        start_tick = state.clock.tick_at(start)
        while state.pending and state.pending[0][0] < end_tick:
            tick, _, on, ch, pitch, vel, serial = heapq.heappop(state.pending)
            if on and tick < start_tick - 0.5:  # a note a re-phase skipped over: never played late (its off is moot)
                continue
            t = min(end - 1, max(pos, state.clock.sample_at(tick)))
            self.synth.render(audio, pos - start, t - pos)
            pos = t
            self._apply(state, t - start, on, ch, pitch, vel, serial)
        self.synth.render(audio, pos - start, end - pos)
        state.position = end
        state.timeline.prune(end_tick)
        self.last_block = {"tokens": used, "pending": len(state.pending), "active": len(state.active),
                           "bpm": state.clock.bpm, "tick": end_tick, "ahead": state.decoder.tick - end_tick,
                           "rewinds": state.rewinds}
        np.clip(audio, -1.0, 1.0, out=audio)
        return audio, state

    # ---- scheduling ----------------------------------------------------------------------
    def _rewind(self, state: GrooveState, cut_tick: float) -> bool:
        """Take back every note that starts at ``cut_tick`` or later (none has sounded) and restart the sampler
        where they began (:mod:`generator.groove.timeline`); False when nothing was sampled that far."""
        back = state.timeline.rewind(cut_tick)
        if back is None:
            return False
        self._restart(state, back, [])
        state.rewinds += 1
        return True

    def _restart(self, state: GrooveState, back, script: list[int]) -> None:
        """Continue from a rewind's point: drop the notes of the tokens taken back, restore the sampler and the
        decoder, and feed ``script`` next (a repeated bar) instead of what was left of an older one."""
        kept = [e for e in state.pending if e[6] < back.cut]
        state.dropped += (len(state.pending) - len(kept)) // 2
        heapq.heapify(kept)
        state.pending = kept
        state.model = dict(back.model, floor=jnp.int32(back.floor))
        state.decoder = back.decoder
        state.replay = back.replay
        state.script = script
        state.form.truncate(back.cut)
        state.bars.truncate(back.cut)

    def _refill(self, state: GrooveState, n: int) -> None:
        cap = self.max_tokens_per_s
        state.credit = cap if state.credit < 0 else min(cap, state.credit + cap * n / SAMPLE_RATE)

    def _next_chunk(self, state: GrooveState, controls: GenerationControls, vec) -> int:
        """The next chunk: what a rewind replays, then either the next piece of a repeated bar's script (fed in one
        pass, nothing sampled) or sampled tokens; record the new tokens and schedule their notes. A sampled BAR
        may start a repeat (:mod:`generator.groove.form`). Returns how many tokens it added."""
        tl, replay = state.timeline, state.replay
        if not replay:
            tl.snapshot(state.model, state.decoder)
        script = state.script[:self.chunk - len(replay)]
        state.replay, state.script = [], state.script[len(script):]
        if script:
            self._feed_chunk(state, vec, replay + script)
            toks = script
        else:
            toks = [int(t) for t in self._sample_chunk(state, controls, vec, replay)[len(replay):]]
        state.tokens += len(toks)
        state.credit -= self.chunk  # the budget bounds compute: a call costs about a chunk whatever it adds
        dec = state.decoder
        for k, t in enumerate(toks):
            index = tl.end
            note = dec.feed(t)
            tl.append(t, dec.tick)
            state.form.record(index, t, (controls.prompts, controls.harmony_notes))
            if G.KIND[t] == G.K_TS:
                state.bars.record(index, dec.bar_start, dec.state.bar_len)
            if note is not None:
                self._schedule(state, note, index)
            if not script and G.KIND[t] == G.K_BAR and (source := state.form.choose(controls.repeat)) is not None:
                back = tl.rewind_to(index + 1)
                if back is None:  # the BAR ended the chunk: nothing to take back
                    state.script = source
                else:
                    self._restart(state, back, source)
                return k + 1
        return len(toks)

    def _follow(self, state: GrooveState, clock, start: int, metre: int | None) -> None:
        """Keep the stream's bar line on the host's (:mod:`generator.groove.lock`): nudge a drift under a tick,
        re-phase a larger error at this block's first sample."""
        tick = state.clock.tick_at(start)
        period = float(G.TS_TICKS[metre]) if metre is not None else float(G.TPB)
        found = state.bars.phase(tick) if metre is not None else None
        stream_phase = found[0] if found is not None and found[1] == period else tick % period
        error = phase_error(stream_phase, (clock.beat * G.TPB) % period, period)
        fresh = state.tokens == 0 and not state.script  # nothing sampled yet, so nothing a skip would lose
        if fresh and error > NUDGE_TICKS:  # a start in the host's bar: join it there rather than rest to its end
            error -= period
        state.clock.tick0 -= error  # > 0: the stream waits; < 0: it skips ahead
        if abs(error) <= NUDGE_TICKS:
            return
        state.rephases += 1
        if fresh and metre is not None:  # its first bar begins at the host's bar line, its notes from here on
            state.script = [G.BAR, G.TS0 + metre]
            state.model = dict(state.model, floor=jnp.int32(math.ceil(state.clock.tick_at(start) - 1e-6)))
        now = state.clock.tick_at(start)
        for ch, pitch in list(state.active):  # what sounds ends here, cleanly
            self.synth.note(0, False, ch, pitch)
        ended = set(state.active.values())
        state.active.clear()
        skipped = {e[6] for e in state.pending if e[2] and e[0] < now}  # note-ons the skip jumped over
        state.pending = [e for e in state.pending if e[6] not in skipped and not (not e[2] and e[6] in ended)]
        heapq.heapify(state.pending)

    def _notes_until(self, state: GrooveState, controls: GenerationControls, vec, target_tick: float) -> int:
        """Sample and schedule notes until the decoder's position is past ``target_tick``; returns tokens used."""
        used = 0
        while state.decoder.tick <= target_tick:
            if state.credit < self.chunk:  # a degenerate stream: delay the clock by whole ticks (on the grid)
                state.clock.tick0 += np.floor(state.decoder.tick - target_tick) - 1.0
                state.forced += 1
                break
            used += self._next_chunk(state, controls, vec)
        return used

    def _prefetch(self, state: GrooveState, controls: GenerationControls, vec, end: int) -> int:
        """One more chunk while less than ``lookahead_s`` of music is sampled ahead and the budget is more than
        half full (so the guard's reserve is for the blocks that need it)."""
        ahead_ticks = self.lookahead_s * state.clock.bpm / 60.0 * G.TPB
        if state.decoder.tick - state.clock.tick_at(end) >= ahead_ticks or state.credit < self.max_tokens_per_s / 2:
            return 0
        return self._next_chunk(state, controls, vec)

    def _schedule(self, state: GrooveState, note: G.Note, serial: int) -> None:
        ch = gm.part_channel(note.part)
        state.seq += 1
        heapq.heappush(state.pending, (float(note.start), state.seq, True, ch, note.pitch, note.velocity, serial))
        state.seq += 1
        heapq.heappush(state.pending, (float(note.end), state.seq, False, ch, note.pitch, 0, serial))

    def _apply(self, state: GrooveState, offset: int, on: bool, ch: int, pitch: int, vel: int, serial: int):
        key = (ch, pitch)
        if on:
            if key in state.active:  # re-strike: end the sounding one first
                self.synth.note(offset, False, ch, pitch)
            self.synth.note(offset, True, ch, pitch, max(1, min(127, vel)))
            state.active[key] = serial
        elif state.active.get(key) == serial:
            del state.active[key]
            self.synth.note(offset, False, ch, pitch)



def load(spec: str, soundfont: str | None = None) -> GrooveSystem:
    """``groove`` / ``groove-tiny`` or a groove checkpoint directory (see
    :func:`generator.core.note_generator.resolve`)."""
    return resolve(spec, "groove", PRESETS, ckpt.is_checkpoint, lambda d: _from_checkpoint(d, soundfont),
                   lambda config: GrooveSystem(config, soundfont=soundfont))


def _from_checkpoint(directory, soundfont: str | None) -> GrooveSystem:
    from generator.core.heads import ARRANGEMENT_FILE, PITCH_FILE, TEMPO_FILE, PartHead, PitchHead, TempoHead

    config, model, meta = ckpt.load(directory)
    files = meta.get("files", {})
    return GrooveSystem(config, model, soundfont, meta=meta, tempo=TempoHead.load(directory, files.get(TEMPO_FILE)),
                        arrangement=PartHead.load(directory, files.get(ARRANGEMENT_FILE)),
                        pitch=PitchHead.load(directory, files.get(PITCH_FILE)))
