"""The native generator: style model + Depthformer LM + codec behind the daemon's interface.

Why it looks like this: the daemon calls :meth:`System.generate` once per block from one thread,
so the hot path is one jitted pure function (``nnx.split`` once, ``nnx.merge`` inside the trace)
that ``lax.scan``s the LM over the block's frames and then decodes them with the streaming codec.
The state argument is donated; guidance, temperature, top-k and style tokens are traced arrays of
fixed dtype, so changing a control never recompiles. The state is a plain pytree of arrays
(ring-buffer KV caches, previous frame's tokens, codec decoder tail, RNG key, frame index):
:meth:`snapshot`/:meth:`restore` copy it and :meth:`save_state`/:meth:`load_state` persist it.

Prompts: ``controls.prompts`` are texts; a text ``audio:<name>`` refers to a vector registered
with :meth:`add_audio_prompt`. Call :meth:`warmup` before the first real block to move the
compilation (and the MiniLM load) out of the audio path: the hot path compiles once per block size,
so it compiles every block size of the model's latency settings.
"""

from __future__ import annotations

import functools
import logging
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from generator.audio import checkpoint
from generator.core.checkpoint import key_of
from generator.audio.codec import Codec, as_batch
from generator.audio.config import PRESETS, SystemConfig, preset
from generator.core.contract import CHANNELS, FRAME_SAMPLES, SAMPLE_RATE, GenerationControls, Generator, Latency
from generator.core.prompts import PromptBank
from generator.audio.lm import Depthformer
from generator.audio.style import StyleModel, clips_of, to_mono_16k
from generator.core import snapshots
from generator.core.checkpoint import SHIPPED as CHECKPOINTS
from generator.core.runtime import enable_compile_cache

log = logging.getLogger(__name__)
_warned: set[str] = set()

# The CPU-sized models (tiny, test, and checkpoints trained from them). Measured with the shipped tiny
# on the 2-core dev VM (``generate`` after warm-up, 200-400 blocks each): one frame per call takes
# p50 2.6 / p99 3.8 / max 7 ms idle and p50 5.5 / p99 14-28 / max 37 ms with both cores busy; two
# frames p50 4.3 / p99 5.5 ms idle, p99 31 / max 52 ms busy; five frames p99 13 ms idle, 83 / max 124
# ms busy. So "low" plays 1-frame (40 ms) blocks with 120 ms ahead: about 3x the loaded p99 of a block
# plus a 1024-frame JACK period of margin (idle, 30x the p99). A control is then heard within about
# 40 + 120 ms + the JACK period (the goal: p99 <= 250 ms); the daemon's adaptive pre-buffer
# grows when a machine is busier than that. "safe" is the 200 ms blocks and 0.3 s it always had.
CPU_LATENCY = {"low": Latency(1, 0.12), "safe": Latency(5, 0.3)}
# The Magenta RT 2 shapes (mrt2_small, mrt2_base: random weights, GPU benchmarks) are not measured
# here (no GPU; on 2 CPU cores they are far slower than real time): 2-frame blocks with room for a
# block of up to ~80 ms (real time on a GPU means under 40 ms a frame), and the old values as "safe".
GPU_LATENCY = {"low": Latency(2, 0.2), "safe": Latency(5, 0.3)}


class System(Generator):
    def __init__(self, config: SystemConfig, directory=None, files=None):
        self.config = config

        def make():
            rngs = nnx.Rngs(config.seed)
            return (Codec(config.codec, rngs=rngs), Depthformer(config.lm, rngs=rngs),
                    StyleModel(config.style, rngs=rngs))

        # one compiled init (persistently cached) instead of hundreds of eager ops; only shapes
        # when the weights come from a checkpoint anyway
        self.codec, self.lm, self.style = nnx.eval_shape(make) if directory else nnx.jit(make)()
        self.directory = directory
        if directory is not None:
            checkpoint.load_into(directory, files or {},
                                 {"codec": self.codec, "lm": self.lm, "style": self.style})
        self._graph, self._params = nnx.split((self.codec, self.lm))
        self._style_graph, self._style_params = nnx.split(self.style)
        self._gen = jax.jit(self._generate_fn, static_argnames=("frames",), donate_argnums=(1,))
        self.latency = GPU_LATENCY if config.name.startswith("mrt2") else CPU_LATENCY
        self.bank = self.new_prompt_bank()

    # ---- hot path ------------------------------------------------------------------------
    def _generate_fn(self, params, state, style, guidance, temperature, top_k, *, frames):
        codec, lm = nnx.merge(self._graph, params)

        def body(s, _):
            s, codes, _ = lm.step(s, style, guidance, temperature, top_k)
            return s, codes

        lm_state, codes = jax.lax.scan(body, state["lm"], None, length=frames)
        audio, dec = codec.decode_stream(codes[None], state["dec"])
        audio = jnp.clip(audio[0], -1.0, 1.0)
        return audio, {"lm": lm_state, "dec": dec, "style": style, "codes": codes[-1]}

    @property
    def control_defaults(self) -> dict:
        """What the checkpoint documents as its start-up controls (see bridge/daemon.py)."""
        return dict(self.config.control_defaults)

    def init_state(self, seed: int = 0):
        lm = self.config.lm
        return {
            "lm": self.lm.init_state(seed),
            "dec": self.codec.init_decoder_state(1),
            "style": jnp.full((lm.style_levels,), lm.codebook_size, jnp.int32),
            "codes": jnp.zeros((lm.levels,), jnp.int32),
        }

    def style_tokens(self, prompts) -> np.ndarray:
        """The LM's style tokens for a prompt list (all MASK = unconditional when empty)."""
        lm = self.config.lm
        toks = self.bank.derived(prompts)
        if toks is None:
            return np.full((lm.style_levels,), lm.codebook_size, np.int32)
        return toks[: lm.style_levels].astype(np.int32)

    def generate(self, state, controls: GenerationControls, frames: int):
        """Continue by ``frames`` frames -> (audio float32 [frames*1920, 2], new state). Donates ``state``."""
        audio, state = self.generate_tokens(state, self.style_tokens(controls.prompts), controls, frames)
        return np.asarray(audio), state

    def generate_tokens(self, state, style_tokens, controls: GenerationControls, frames: int):
        """Like :meth:`generate` with explicit style tokens [style_levels] (1024 = masked)."""
        return self._gen(self._params, state, jnp.asarray(style_tokens, jnp.int32),
                         np.float32(controls.guidance), np.float32(controls.temperature),
                         np.int32(controls.top_k), frames=int(frames))

    def compile_count(self) -> int:
        """Number of compiled variants of the hot path (for no-recompile checks)."""
        return self._gen._cache_size()

    def warmup(self, frames: int | None = None, prompt: str = "warm up"):
        """Compile the hot path for ``frames``-frame blocks (default: every block size of the latency
        settings, so the daemon compiles nothing whichever it runs at) and load + compile the text
        tower for every prompt-length bucket, so no later call compiles (persistently cached)."""
        self.embed_style(prompt)
        for n in self.text_encoder.BUCKETS[1:]:
            self._embed_texts([" ".join(["music"] * (n - 4))])
        controls = GenerationControls(prompts=((prompt, 1.0),))
        sizes = [frames] if frames else sorted({s.block_frames for s in self.latency.values()})
        for n in sizes:
            audio, _ = self.generate(self.init_state(0), controls, n)
            assert audio.shape == (n * FRAME_SAMPLES, CHANNELS)

    # ---- style ---------------------------------------------------------------------------
    def new_prompt_bank(self) -> PromptBank:
        """Empty prompt caches over the current style weights (a trainer swapping them makes a new one)."""
        return PromptBank(self._embed_texts, lambda vec: np.asarray(self._tokenize(vec), np.int32))

    @functools.cached_property
    def text_encoder(self):
        from generator.core.text_encoder import TextEncoder

        return TextEncoder(self.config.style.text_max_len)

    @functools.cached_property
    def _style_fns(self):
        def text(params, vecs):
            return nnx.merge(self._style_graph, params).embed_text(vecs)

        def audio(params, clips):
            return nnx.merge(self._style_graph, params).embed_audio(clips)

        def tokenize(params, vec):
            return nnx.merge(self._style_graph, params).tokenize(vec)

        return jax.jit(text), jax.jit(audio), jax.jit(tokenize)

    def _embed_texts(self, texts):
        return np.asarray(self._style_fns[0](self._style_params, jnp.asarray(self.text_encoder(texts))))

    def _tokenize(self, vector):
        return np.asarray(self._style_fns[2](self._style_params, jnp.asarray(vector, jnp.float32)))

    def embed_style(self, text_or_audio, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """Style vector [dim] of a text prompt (cached) or of audio ([N] or [N, C] float)."""
        if isinstance(text_or_audio, str):
            return self.bank.vector(text_or_audio)
        clips = clips_of(to_mono_16k(np.asarray(text_or_audio), sample_rate))
        vecs = np.asarray(self._style_fns[1](self._style_params, jnp.asarray(clips)))
        mean = vecs.mean(0)
        return (mean / max(np.linalg.norm(mean), 1e-8)).astype(np.float32)

    def add_audio_prompt(self, name: str, audio_or_path) -> str:
        """Register the style of an audio clip (array at 48 kHz, or a sound file); returns the
        prompt text ``audio:<name>`` to use in ``controls.prompts``."""
        audio, rate = _read_audio(audio_or_path)
        key = f"audio:{name}"
        self.bank.put(key, self.embed_style(audio, rate))
        return key

    # ---- context priming -----------------------------------------------------------------
    def prime(self, state, audio_or_path):
        """Fill the LM context (and the decoder's carried state) from audio; returns the new state."""
        audio, rate = _read_audio(audio_or_path)
        if rate != SAMPLE_RATE:
            raise ValueError(f"priming audio must be {SAMPLE_RATE} Hz, got {rate}")
        batch = as_batch(audio)
        if batch.shape[1] == 0:
            raise ValueError("priming audio is shorter than one 40 ms frame")
        codes = self._encode(self._params, batch)[0]
        window = self.config.lm.window
        codes = codes[-window:]
        lm_state, dec = self._prime_fn(self._params, state["lm"], state["dec"], codes)
        return dict(state, lm=lm_state, dec=dec, codes=codes[-1])

    @functools.cached_property
    def _encode(self):
        levels = self.config.lm.levels
        return jax.jit(lambda p, a: nnx.merge(self._graph, p)[0].encode(a, levels))

    @functools.cached_property
    def _prime_fn(self):
        def run(params, lm_state, dec, codes):
            codec, lm = nnx.merge(self._graph, params)
            lm_state = lm.prime(lm_state, codes)
            _, dec = codec.decode_stream(codes[None], dec)
            return lm_state, dec
        return jax.jit(run)

    # ---- snapshots -----------------------------------------------------------------------
    snapshot = staticmethod(snapshots.snapshot)
    restore = staticmethod(snapshots.restore)

    def save_state(self, state, path):
        from safetensors.numpy import save_file

        leaves, _ = jax.tree_util.tree_flatten_with_path(state)
        save_file({key_of(p): np.asarray(v) for p, v in leaves}, str(path),
                  metadata={"model": self.config.name})

    def load_state(self, path):
        from safetensors.numpy import load_file

        tensors = load_file(str(path))
        leaves, treedef = jax.tree_util.tree_flatten_with_path(self.init_state(0))
        try:
            new = [jnp.asarray(tensors[key_of(p)]) for p, _ in leaves]
        except KeyError as err:
            raise ValueError(f"{path} is not a state of model {self.config.name!r}: missing {err}") from err
        for (p, old), arr in zip(leaves, new):
            if old.shape != arr.shape or old.dtype != arr.dtype:
                raise ValueError(f"{path}: {key_of(p)} has shape {arr.shape}, expected {old.shape}")
        return jax.tree_util.tree_unflatten(treedef, new)

    def save(self, directory):
        checkpoint.save(directory, self.config, {"codec": self.codec, "lm": self.lm, "style": self.style})


def _read_audio(audio_or_path):
    if isinstance(audio_or_path, (str, os.PathLike)):
        import soundfile

        if not os.path.isfile(audio_or_path):
            raise FileNotFoundError(f"no audio file {audio_or_path}")
        data, rate = soundfile.read(str(audio_or_path), dtype="float32", always_2d=True)
        return data, rate
    return np.asarray(audio_or_path, np.float32), SAMPLE_RATE


def load(spec: str) -> System:
    """A preset name (weights from ``generator/checkpoints/<name>/`` when present, else a
    deterministic random init with a one-time warning) or a checkpoint directory."""
    enable_compile_cache()
    if spec in PRESETS:
        directory = CHECKPOINTS / spec
        if (directory / "config.json").is_file():
            config, files = checkpoint.read_config(directory)
            return System(config, directory, files)
        if spec not in _warned:
            _warned.add(spec)
            log.warning("no trained weights for model %r (looked in %s): using a seeded random init, "
                        "which plays noise-like audio", spec, directory)
        return System(preset(spec))
    path = pathlib.Path(spec).expanduser()
    if path.is_dir():
        config, files = checkpoint.read_config(path)
        return System(config, path, files)
    if path.exists() or os.sep in spec or spec.startswith("."):
        raise FileNotFoundError(f"{spec} is not a checkpoint directory")
    raise ValueError(f"unknown model {spec!r}: use a preset ({', '.join(PRESETS)}) or a checkpoint directory")
