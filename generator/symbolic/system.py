"""The symbolic generator behind the daemon's interface: Music Transformer -> events -> FluidSynth.

How one ``generate(state, controls, frames)`` call works (one block of ``frames * 1920`` samples):

1. The prompts are blended (weighted mean of cached MiniLM vectors, once per prompt set:
   :class:`generator.core.prompts.PromptBank`, as the audio model) and mapped to GM programs and a
   drum kit (:mod:`generator.core.instruments`); changed programs are sent at the block start.
   The checkpoint's arrangement head (:mod:`generator.symbolic.arrangement`) decides from the same
   vector which instrument families may play: the sampler cannot switch to the others, and notes
   still sounding in a family the new prompt bans end at the block start. Its tempo head
   (:mod:`generator.symbolic.tempo`) reads the tempo the prompt asks for and sets the playback
   speed: the model's stream is time-scaled, continuously across prompt changes. Its pitch head
   (:mod:`generator.symbolic.pitch`) turns a key the prompt names into a bias on melodic notes.
2. Tokens are sampled in fixed chunks (one jitted ``lax.scan``; guidance, temperature, top-k and
   the style vector are traced, so no control change recompiles) and decoded into note events
   until the decoder's clock is ``lookahead`` past the block's end. Events therefore always
   exist before their audio is rendered (event lead time >= lookahead), and a control change
   reaches the very next events generated: latency <= the lookahead plus the time covered by
   one over-generated chunk, plus the daemon's pre-buffer.
3. Events due in the block are applied to an in-process FluidSynth between
   ``fluid_synth_write_float`` calls at their exact sample offsets, and queued as raw MIDI
   for :meth:`drain_midi` (the daemon's ``jamgen:midi_out``) with the same offsets.

Note hygiene: a note-on of a sounding (channel, pitch) first ends it (and is dropped when that note
started at the same sample); note-offs of silent notes
are dropped; drum hits end after 100 ms; any note ends after ``max_note_s``. ``init_state`` ends
every sounding note (also in the MIDI queue) and silences the synth, so reset/stop leave nothing
stuck. The synth belongs to the generator (one per process), so only the most recent state
returned by ``init_state``/``generate`` may be used.

Guard: one block samples at most ``max_tokens_per_s`` tokens per second of audio; if the model
has not advanced time by then (a degenerate stream of note tokens), the decoder clock is moved
forward, so a block's cost is bounded.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import logging

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from generator.core import runtime
from generator.core.contract import CHANNELS, FRAME_SAMPLES, SAMPLE_RATE, GenerationControls, Latency
from generator.core.checkpoint import SHIPPED as CHECKPOINTS  # noqa: F401  (re-exported)
from generator.core.note_generator import NoteGenerator, resolve
from generator.core.synth import PART_PAN, PART_SENDS  # noqa: F401  (re-exported)
from generator.symbolic import checkpoint as ckpt
from generator.symbolic import tokens as tok
from generator.symbolic.model import PRESETS, MusicTransformer, SymbolicConfig, init_sampler, sample_chunk
from generator.symbolic.tempo import TimeMap


log = logging.getLogger(__name__)
STEP_SAMPLES = int(round(tok.STEP_SECONDS * SAMPLE_RATE))  # 480


@dataclasses.dataclass(frozen=True)
class PromptHeads:
    """The sampler's inputs from the prompt heads for one blended prompt (neutral without a head)."""

    part_bias: jnp.ndarray  # [VOCAB] on PART tokens (arrangement head)
    pitch_bias: jnp.ndarray  # [128] on melodic NOTE_ONs (pitch head)
    allowed: np.ndarray  # bool [16]: families that may sound (arrangement head)
    speed: float  # playback speed (tempo head)


@dataclasses.dataclass
class SymbolicState:
    """Everything one stream needs. ``model`` is a pytree of arrays (donated to the sampler)."""

    model: dict
    decoder: tok.Decoder
    position: int = 0  # samples rendered since init_state
    pending: list = dataclasses.field(default_factory=list)  # heap (sample, seq, status, ch, pitch, vel, serial)
    active: dict = dataclasses.field(default_factory=dict)  # (channel, pitch) -> (serial, start sample)
    programs: dict = dataclasses.field(default_factory=dict)  # channel -> program sent
    serial: int = 0
    tokens: int = 0  # tokens sampled since init_state
    forced: int = 0  # times the guard moved the clock
    leads: collections.deque = dataclasses.field(default_factory=lambda: collections.deque(maxlen=100_000))
    timemap: TimeMap = dataclasses.field(default_factory=lambda: TimeMap(STEP_SAMPLES))  # decoder step -> sample


class SymbolicSystem(NoteGenerator):
    # Measured (python -m generator.train.symbolic_eval): guidance 1-1.5 keeps the prompted rhythm closest
    # to held-out music of the style; at 3.0 this small model degenerates into dense note runs.
    control_defaults = {"guidance": 1.25}
    # Events are sampled just in time (20 ms ahead of the block end), so a change reaches the next block's notes
    # and the block and the pre-buffer are all a listener waits for. low: 40 ms blocks, 100 ms ahead (a 1-frame
    # block samples at most two 8-token chunks: p99 ~10-25 ms on 2 cores); safe: 200 ms blocks, 0.8 s ahead
    # (the old setting, for a machine too loaded for low).
    latency = {"low": Latency(1, 0.1), "safe": Latency(5, 0.8)}

    def __init__(self, config: SymbolicConfig, model: MusicTransformer | None = None, soundfont: str | None = None,
                 chunk: int = 8, lookahead_s: float = 0.02, gain: float = 0.5, max_note_s: float = 6.0,
                 max_tokens_per_s: float = 300.0, meta: dict | None = None, arrangement=None, tempo=None,
                 pitch=None):
        self.config = config
        self.meta = meta or {}
        self.arrangement = arrangement  # generator.symbolic.arrangement.Arrangement or None
        self.tempo = tempo  # generator.symbolic.tempo.TempoHead or None (then the model's own tempo)
        self.pitch = pitch  # generator.symbolic.pitch.PitchHead or None (then the model's own notes)
        self.model = model if model is not None else nnx.jit(
            lambda: MusicTransformer(config, rngs=nnx.Rngs(config.seed)))()
        self.chunk = int(chunk)
        self.lookahead = int(lookahead_s * SAMPLE_RATE)
        self.max_note = int(max_note_s * SAMPLE_RATE)
        self.max_tokens_per_s = max_tokens_per_s
        self._graph, self._params = nnx.split(self.model)
        self._sample = jax.jit(self._sample_fn, donate_argnums=(1,), compiler_options=runtime.event_sampler_options())
        super().__init__(soundfont, gain)
        self._live: SymbolicState | None = None
        self._heads_key: tuple | None = None  # the prompt (and heads) that _heads_value was made for
        self._heads_value: PromptHeads | None = None
        self.last_block: dict = {}

    # ---- model ---------------------------------------------------------------------------
    def _sample_fn(self, params, state, style, has_style, guidance, temperature, top_k, part_bias, pitch_bias):
        return sample_chunk(nnx.merge(self._graph, params), state, style, has_style, guidance,
                            temperature, top_k, self.chunk, part_bias, pitch_bias)

    def compile_count(self) -> int:
        return self._sample._cache_size()

    def sample_tokens(self, state: SymbolicState, controls: GenerationControls, n_chunks: int = 1) -> np.ndarray:
        """Sample ``n_chunks * chunk`` tokens into ``state`` (no decoding); for tests and eval."""
        return self._sample_chunks(state, controls, self.bank.blend(controls.prompts), n_chunks)

    def _sample_chunks(self, state: SymbolicState, controls: GenerationControls, vec, n_chunks: int) -> np.ndarray:
        style = np.zeros((self.config.style_dim,), np.float32) if vec is None else vec
        heads = self._heads(vec)
        out = []
        for _ in range(n_chunks):
            # numpy arguments: jnp.float32(x) and friends are dispatched ops of their own (~0.1 ms each)
            toks, state.model = self._sample(self._params, state.model, np.asarray(style, np.float32),
                                             np.bool_(vec is not None), np.float32(controls.guidance),
                                             np.float32(controls.temperature), np.int32(controls.top_k),
                                             heads.part_bias, heads.pitch_bias)
            out.append(np.asarray(toks))
        return np.concatenate(out)

    def _heads(self, vec) -> PromptHeads:
        """What the prompt heads make of a blended prompt vector: evaluated once per prompt (or head)
        change, then reused by every block and chunk."""
        key = (None if vec is None else vec.tobytes(), self.arrangement, self.tempo, self.pitch)
        if self._heads_key != key:
            arr, tempo, pitch = self.arrangement, self.tempo, self.pitch
            self._heads_key, self._heads_value = key, PromptHeads(
                part_bias=jnp.asarray(np.zeros((tok.VOCAB,), np.float32) if arr is None else arr.part_bias(vec)),
                pitch_bias=jnp.asarray(np.zeros((128,), np.float32) if pitch is None else pitch.pitch_bias(vec)),
                allowed=np.ones(tok.N_PARTS, bool) if arr is None else arr.allowed(vec),
                speed=1.0 if tempo is None else tempo.scale(vec))
        return self._heads_value

    def speed_for(self, prompts) -> float:
        """Playback speed for a prompt list: the tempo head's scale (1 without a head or a prompt)."""
        return self._heads(self.bank.blend(prompts)).speed

    # ---- interface -----------------------------------------------------------------------
    def init_state(self, seed: int = 0) -> SymbolicState:
        """Fresh context; ends every sounding note of the previous stream (synth and MIDI out)."""
        self._end_stream(list(self._live.active) if self._live is not None else [])
        model_state = init_sampler(self.model, jax.random.key(int(seed) & 0x7FFFFFFF))
        self._live = SymbolicState(model=model_state, decoder=tok.Decoder())
        return self._live

    def generate(self, state: SymbolicState, controls: GenerationControls, frames: int):
        """Continue by ``frames`` frames -> (audio float32 [frames*1920, 2], state)."""
        n = int(frames) * FRAME_SAMPLES
        start, end = state.position, state.position + n
        self._start_block()
        # 1. programs chosen by the style (sent at the block start when they change)
        vec = self.bank.blend(controls.prompts)
        for ch, prog in self._programs(vec).items():
            if state.programs.get(ch) != prog:
                if ch not in state.programs:  # first program on this channel: place it in the mix too
                    part = tok.channel_part(ch)
                    for control, value in self.synth.place_events(part):
                        self._push(state, start, 0xB0, ch, control, value)
                state.programs[ch] = prog
                self._push(state, start, 0xC0, ch, prog, 0)
        heads = self._heads(vec)
        for ch, pitch in list(state.active):  # families the prompt no longer allows stop now
            if ch != tok.DRUM_CHANNEL and not heads.allowed[tok.channel_part(ch)]:
                self._push(state, start, 0x80, ch, pitch, 0)
        # 2. tokens -> events until the decoder clock is past the block end (+ lookahead), at the
        # prompt's tempo (a faster speed consumes more model time, so more tokens, per block)
        speed = heads.speed
        timemap = state.timemap
        timemap.set_speed(speed, state.decoder.step)
        target = end + self.lookahead
        budget = max(self.chunk, int(self.max_tokens_per_s * speed * n / SAMPLE_RATE))
        used = 0
        while timemap.sample_f(state.decoder.step) < target:
            if used >= budget:
                state.decoder.step = timemap.first_step_at(target)
                state.forced += 1
                break
            for t in self._sample_chunks(state, controls, vec, 1):
                ev = state.decoder.feed(int(t))
                if ev is not None:
                    self._schedule(state, ev, start)
            used += self.chunk
            state.tokens += self.chunk
        # 3. render with events at their sample offsets
        audio = np.zeros((n, CHANNELS), np.float32)
        pos = start
        while state.pending and state.pending[0][0] < end:
            t, _, status, ch, a, b, serial = heapq.heappop(state.pending)
            t = max(t, start)
            self._render(audio, pos - start, t - pos)
            pos = t
            self._apply(state, t - start, status, ch, a, b, serial)
        self._render(audio, pos - start, end - pos)
        state.position = end
        self.last_block = {"tokens": used, "pending": len(state.pending), "active": len(state.active), "speed": speed}
        np.clip(audio, -1.0, 1.0, out=audio)
        return audio, state

    # ---- scheduling ----------------------------------------------------------------------
    def _push(self, state, sample, status, ch, a, b, serial=0):
        state.serial += 1
        heapq.heappush(state.pending, (int(sample), state.serial, status, ch, a, b, serial))

    def _schedule(self, state: SymbolicState, ev: tok.Event, block_start: int):
        t = state.timemap.sample(ev.step)
        state.leads.append(t - block_start)
        ch = tok.part_channel(ev.part)
        if ev.on:
            self._push(state, t, 0x90, ch, ev.pitch, max(1, min(127, ev.velocity)))
        else:
            self._push(state, t, 0x80, ch, ev.pitch, 0)

    def _apply(self, state, offset, status, ch, a, b, serial):
        key = (ch, a)
        now = state.position + offset
        if status == 0x90:
            if key in state.active:
                if state.active[key][1] == now:
                    return  # the same note struck twice at the same instant: once is enough
                self._emit(offset, 0x80, ch, a, 0)  # re-strike: end the sounding one first
            self._emit(offset, 0x90, ch, a, b)
            state.serial += 1
            state.active[key] = (state.serial, now)
            hold = int(tok.DRUM_HIT_SECONDS * SAMPLE_RATE) if ch == tok.DRUM_CHANNEL else self.max_note
            self._push(state, now + hold, 0x80, ch, a, 0, serial=state.serial)
        elif status == 0x80:
            if key not in state.active:
                return
            if serial and state.active[key][0] != serial:  # a timed-out guard of an older note
                return
            if not serial and ch == tok.DRUM_CHANNEL:
                return  # drum hits end by their own timer
            del state.active[key]
            self._emit(offset, 0x80, ch, a, 0)
        elif status == 0xB0:
            self.synth.cc(offset, ch, a, b)
        elif status == 0xC0:
            self.synth.program(offset, ch, a)

    def _emit(self, offset, status, ch, pitch, vel):
        self.synth.note(offset, status == 0x90, ch, pitch, vel)

    def _render(self, audio: np.ndarray, offset: int, count: int):
        self.synth.render(audio, offset, count)



def load(spec: str, soundfont: str | None = None) -> SymbolicSystem:
    """``symbolic`` / ``symbolic-tiny`` or a symbolic checkpoint directory (see
    :func:`generator.core.note_generator.resolve`)."""
    return resolve(spec, "symbolic", PRESETS, ckpt.is_checkpoint, lambda d: _from_checkpoint(d, soundfont),
                   lambda config: SymbolicSystem(config, soundfont=soundfont))


def _from_checkpoint(directory, soundfont: str | None) -> SymbolicSystem:
    from generator.symbolic import arrangement as arr
    from generator.symbolic import pitch, tempo

    config, model, meta = ckpt.load(directory)
    files = meta.get("files", {})
    return SymbolicSystem(config, model, soundfont, meta=meta,
                          arrangement=arr.Arrangement.load(directory, files.get(arr.FILE)),
                          tempo=tempo.TempoHead.load(directory, files.get(tempo.FILE)),
                          pitch=pitch.PitchHead.load(directory, files.get(pitch.FILE)))
