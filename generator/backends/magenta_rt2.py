"""The official Magenta RealTime 2 model (PyPI ``magenta-rt``, JAX path) behind jamgen's
:class:`generator.core.contract.Generator` contract.

Why not just call ``magenta_rt.MagentaRT2Jax``: that class loads weights in its constructor
(there is no random-init path, so nothing could be tested without the multi-GB checkpoints),
compiles its RNG as a constant ``PRNGKey(0)`` (so jamgen's ``seed`` control could not work), and
uses one conditioning block for a whole call (so a MIDI note-on could not be an onset on the
first frame only). This adapter builds the *same* objects the package builds — the model config
from ``magenta_rt.jax.model``, ``MagentaRT2Sampler`` with the SpectroStream config, the CFG-token
binning ``discretize_cfg`` and the +7 token offset of ``MagentaRT2System._build_conditioning`` —
and compiles ``get_initial_state`` / ``step_with_emits`` itself with the seed as an input. The
parameters come either from the official checkpoint (:func:`load`) or from the sampler's own
random initialiser (:func:`random_generator`, used by tests and the CPU benchmark).

Control mapping (one :class:`GenerationControls` per ``generate`` call):

- prompts -> each text is embedded once by MusicCoCa (cached), L2-normalised, blended with the
  normalised weights in embedding space and quantised to 12 RVQ tokens (as the official engine
  does); no prompt = MusicCoCa tokens masked (unconditional);
- ``guidance`` -> the ``musiccoca`` CFG scale, binned into MRT2's CFG conditioning token
  (trained conditioning, batch 1: it costs nothing extra; clamped to MRT2's [-1, 7]);
- ``cfg_notes``, ``cfg_drums`` -> the notes and drums CFG scales, binned the same way; ``drumless`` -> the drum
  piano roll set to "no drums"; ``unmask_width`` -> the piano roll's unmask width (see :func:`pianoroll_values`);
- ``temperature``, ``top_k`` -> the sampler's traced constants (no recompilation);
- ``seed`` -> the sampling RNG of a fresh state (:meth:`MagentaRT2Generator.init_state`).

MIDI notes: the ``harmony`` control (the chord a mapping file's ``notes`` source plays from
``jamgen:midi_in``, or text from OSC/Pd) is held in MRT2's 128-pitch piano roll, each note new to it an
onset; and (optional, not part of the Generator protocol) :meth:`note_on`, :meth:`note_off`,
:meth:`all_notes_off` and :meth:`set_note_options` may be called from any thread; the notes held
become the piano-roll conditioning from the next frame generated.

Importing this module sets ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` unless the user set it, so the
daemon does not grab 75 % of the GPU at start-up. It only takes effect if no JAX backend was
initialised earlier in the process.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import threading
import warnings
from typing import Any, Iterable

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # before jax initialises

import numpy as np

from generator.backends import magenta_assets as assets
from generator.core.contract import (CHANNELS, FRAME_SAMPLES, SAMPLE_RATE, GenerationControls, Generator,
                                     Latency, normalise_prompts)

try:
    import magenta_rt  # noqa: F401  (puts the vendored sequence_layers on sys.path)
    import sequence_layers.jax as sl
    from magenta_rt import musiccoca
    from magenta_rt.config import DRUM_PIANOROLL, MUSICCOCA, PIANOROLL_WITH_ONSETS, ModelSpec
    from magenta_rt.jax import model as mrt_model
    from magenta_rt.jax import spectrostream
    from magenta_rt.jax.system import NUM_RESERVED_TOKENS, MagentaRT2Sampler, discretize_cfg
except ImportError as err:  # one line, with the fix
    raise ImportError(f"the Magenta RT 2 backend needs magenta-rt ({err}); "
                      f"install it with: {assets.PIP_EXTRA}") from None

import jax
import jax.numpy as jnp
from generator.core import snapshots
from generator.core.prompts import PromptBank

log = logging.getLogger(__name__)

# Token id = value + 6 reserved ids + 1 dropout id, so the "masked" value -1 becomes id 6.
TOKEN_OFFSET = NUM_RESERVED_TOKENS + 1
MASKED = -1
PITCHES = PIANOROLL_WITH_ONSETS.rvq_truncation_level  # 128
# Piano-roll values (magenta_rt.config.PIANOROLL_WITH_ONSETS).
NOTE_OFF, NOTE_SUSTAIN, NOTE_ONSET, NOTE_ON_FREE = 0, 1, 2, 3
ALLOW_CPU_ENV = "JAMGEN_MAGENTA_ALLOW_CPU"
# The note options that are also registry controls (GenerationControls fields of the same names).
CONTROL_OPTIONS = ("unmask_width", "drumless", "cfg_notes", "cfg_drums")
CFG_RANGE = (-1.0, 7.0)  # what discretize_cfg clamps a CFG scale to


class _TestShape(mrt_model.MagentaRT2ModelBase):
    """A tiny MRT2 model of the official architecture (2 temporal layers, d=64), randomly
    initialised only: lets tests and CPU smoke benchmarks run the package's real streaming
    step in seconds. The codec (SpectroStream) keeps its full, fixed size."""

    encoder_size = ModelSpec(num_layers=1, model_dims=64, hidden_dims=128, num_heads=2,
                             dim_per_head=32, ffn_use_gated_activation=False)
    decoder_temporal_size = dataclasses.replace(encoder_size, num_layers=2)
    decoder_depth_size = encoder_size
    encoder_max_past_horizon = 8
    decoder_temporal_self_attention_max_past_horizon = 8
    decoder_temporal_cross_attention_max_past_horizon = 8


SHAPES: dict[str, type[mrt_model.MagentaRT2ModelBase]] = {
    **mrt_model.MODEL_REGISTRY,  # mrt2_small, mrt2_base: the official shapes
    "test": _TestShape,
}


# ---- conditioning ----------------------------------------------------------------------------

def conditioning_ids(model: mrt_model.MagentaRT2ModelBase, tokens: dict[str, Iterable[int]],
                     cfg_scales: dict[str, float]) -> np.ndarray:
    """One frame's conditioning ids, int32 ``[model.input_num_channels]`` (144 for MRT2).

    Same rules as ``MagentaRT2System._build_conditioning``: a key given in ``tokens`` is used
    as is, a CFG channel gets ``discretize_cfg(scale)``, anything else is masked (-1); then
    every value is offset by 7. ``tests/test_magenta_backend.py`` checks this against the
    package's own method.
    """
    values: list[int] = []
    for cfg in model.input_configs:
        if cfg.key in tokens:
            vals = [int(v) for v in tokens[cfg.key]]
        elif cfg.cfg_scale_keys:
            vals = [discretize_cfg(cfg_scales.get(k, 3.0), cfg.step, cfg.codebook_size - 1)
                    for k in cfg.cfg_scale_keys][: cfg.rvq_truncation_level]
        else:
            vals = [MASKED] * cfg.rvq_truncation_level
        if len(vals) != cfg.rvq_truncation_level:
            raise ValueError(f"{cfg.key} needs {cfg.rvq_truncation_level} tokens, got {len(vals)}")
        values += vals
    return np.asarray(values, np.int32) + TOKEN_OFFSET


def pianoroll_values(held: Iterable[int], onsets: Iterable[int] = (), *, unmask_width: int = 0,
                     onset_mode: str = "auto") -> list[int]:
    """MRT2's 128-pitch piano roll for one frame, with the official engine's semantics.

    ``unmask_width >= 127`` ("solo"): every pitch is explicit, so the model plays only what is
    held. Otherwise pitches are masked (free) except held notes and the pitches within
    ``±unmask_width`` of one, which are set to off. ``onset_mode="auto"`` marks held notes 3
    (the model decides onset vs sustain, the engine's default "auto-strum"); ``"explicit"``
    marks a note 2 on its first frame (``onsets``) and 1 after.
    """
    if onset_mode not in ("auto", "explicit"):
        raise ValueError(f"onset_mode must be 'auto' or 'explicit', not {onset_mode!r}")
    held = {int(p) for p in held if 0 <= int(p) < PITCHES}
    onsets = {int(p) for p in onsets if 0 <= int(p) < PITCHES}
    held |= onsets
    roll = [NOTE_OFF if unmask_width >= 127 else MASKED] * PITCHES
    if unmask_width > 0:
        for p in held:
            for q in range(max(0, p - unmask_width), min(PITCHES, p + unmask_width + 1)):
                roll[q] = NOTE_OFF
    for p in held:
        if onset_mode == "auto":
            roll[p] = NOTE_ON_FREE
        else:
            roll[p] = NOTE_ONSET if p in onsets else NOTE_SUSTAIN
    return roll


# ---- the generator ---------------------------------------------------------------------------

def build_sampler(model: mrt_model.MagentaRT2ModelBase) -> MagentaRT2Sampler:
    """The package's sampler for ``model``, configured exactly as ``MagentaRT2System`` does."""
    codec = spectrostream.stft_spectrostream_40ms_generic_48khz_stereo_config(
        rvq_truncation_level=model.spectrostream.rvq_truncation_level, use_unique_codes=False)
    return MagentaRT2Sampler.Config(depthformer=model.depthformer_config(), spectrostream=codec).make()


class MRT2Conditioning(Generator):
    """What every MRT2 engine shares: prompts through MusicCoCa, guidance as the CFG token, MIDI
    notes as the piano roll, all turned into one frame's 144 conditioning ids. The adapter below
    and jamgen's native engine (:mod:`generator.mrt2.system`) both subclass it, so the control
    mapping has one implementation.

    Args:
      model: an instance of a ``magenta_rt.jax.model`` class (the channel layout; nothing is built).
      style_model: a ``magenta_rt.musiccoca.MusicCoCaBase`` (the TFLite model for real use).
      name: shown in logs and ``repr``.
      use_mapper: pass text embeddings through MusicCoCa's text->audio mapper, as
        ``mrt jax generate`` and the official engine do (needs ``mapper.tflite``).
      style_levels: how many of the 12 MusicCoCa levels to feed (12 in the Python path, 6 in
        the official C++ apps); the rest are masked.
    """

    def __init__(self, model, style_model, *, name: str = "mrt2", use_mapper: bool = False,
                 style_levels: int = 12):
        self.name = name
        self._model = model
        self._style = style_model
        self._use_mapper = use_mapper
        self._style_levels = style_levels
        self._channels = model.input_num_channels
        self._embed_lock = threading.Lock()  # TFLite interpreters are not thread-safe
        self.bank = PromptBank(self._embed_texts, self._tokens_of, cache_size=256)
        self._notes_lock = threading.Lock()
        self._held: set[int] = set()
        self._fresh: set[int] = set()  # note-ons not yet seen by a generated frame
        self._chord: set[int] = set()  # controls.harmony_notes at the last call
        self._note_opts = {"unmask_width": 0, "onset_mode": "auto", "drumless": False,
                           "cfg_notes": 1.0, "cfg_drums": 1.0}
        self._controls_seen = self._control_options(GenerationControls())

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"

    def embed_style(self, text: str) -> np.ndarray:
        """MusicCoCa's 768-d embedding of ``text``, L2-normalised (cached per text)."""
        return self.bank.vector(text).copy()

    def _embed_texts(self, texts) -> np.ndarray:
        with self._embed_lock:
            out = []
            for text in texts:
                emb = np.asarray(self._style.embed(text, use_mapper=self._use_mapper), np.float32).reshape(-1)
                out.append(emb / max(float(np.linalg.norm(emb)), 1e-12))
            return np.stack(out)

    def _tokens_of(self, blend: np.ndarray) -> list[int]:
        with self._embed_lock:
            tokens = np.asarray(self._style.tokenize(np.asarray(blend, np.float32))).reshape(-1)
        levels = MUSICCOCA.rvq_truncation_level
        tokens = [int(t) for t in tokens[:levels]]
        return tokens[: self._style_levels] + [MASKED] * (levels - self._style_levels)

    # ---- mapping -----------------------------------------------------------------------------
    def style_tokens(self, prompts: tuple[tuple[str, float], ...]) -> list[int] | None:
        """The 12 MusicCoCa RVQ ids (0..1023) of the weighted blend of ``prompts``; the levels past
        ``style_levels`` are -1. None when there is no prompt (unconditional). The last result
        is cached per prompt set (:class:`generator.core.prompts.PromptBank`)."""
        return self.bank.derived(normalise_prompts(prompts))

    def frame_conditioning(self, controls: GenerationControls) -> tuple[np.ndarray, np.ndarray]:
        """The conditioning ids of the first frame of a call and of the frames after it.

        They differ only when a note-on arrived since the previous call and onsets are explicit
        (the onset belongs to one frame); otherwise the same array object is returned twice.
        Consumes the pending note-ons. The controls' note options (:data:`CONTROL_OPTIONS`) are applied
        through :meth:`set_note_options` when they change, so the last change wins, a control's or a call's.
        """
        seen = self._control_options(controls)
        if seen != self._controls_seen:
            changed = {k: v for k, v in seen.items() if self._controls_seen.get(k) != v}
            self._controls_seen = seen
            self.set_note_options(**changed)
        with self._notes_lock:
            held, fresh, opts = set(self._held), self._fresh, dict(self._note_opts)
            self._fresh = set()
            # The chord the player holds (``harmony``: a mapping file's ``notes`` source, OSC, Pd) is held notes
            # too, so a keyboard on jamgen:midi_in steers MRT2 through the same path as the note models; a note
            # new to it since the last call is an onset.
            chord = set(controls.harmony_notes)
            fresh = fresh | (chord - self._chord)
            held |= chord
            self._chord = chord
        scales = {"musiccoca": controls.guidance, "notes": opts["cfg_notes"], "drums": opts["cfg_drums"]}
        tokens: dict[str, list[int]] = {}
        style = self.style_tokens(controls.prompts)
        if style is not None:
            tokens[MUSICCOCA.key] = style
        if opts["drumless"]:
            tokens[DRUM_PIANOROLL.key] = [0]
        roll = dict(unmask_width=opts["unmask_width"], onset_mode=opts["onset_mode"])
        tokens[PIANOROLL_WITH_ONSETS.key] = pianoroll_values(held, fresh, **roll)
        first = conditioning_ids(self._model, tokens, scales)
        if not fresh or opts["onset_mode"] == "auto":
            return first, first
        tokens[PIANOROLL_WITH_ONSETS.key] = pianoroll_values(held, (), **roll)
        return first, conditioning_ids(self._model, tokens, scales)

    # ---- MIDI note conditioning (optional API; thread-safe) -----------------------------------
    def note_on(self, pitch: int) -> None:
        """A key went down: from the next frame the piano roll holds ``pitch`` (an onset first,
        when onsets are explicit). A note-on and note-off within one block still sounds."""
        with self._notes_lock:
            self._held.add(int(pitch))
            self._fresh.add(int(pitch))

    def note_off(self, pitch: int) -> None:
        with self._notes_lock:
            self._held.discard(int(pitch))

    def all_notes_off(self) -> None:
        with self._notes_lock:
            self._held.clear()
            self._fresh.clear()
            self._chord = set()

    @staticmethod
    def _control_options(controls: GenerationControls) -> dict[str, Any]:
        return {k: getattr(controls, k) for k in CONTROL_OPTIONS}

    def set_note_options(self, *, unmask_width: int | None = None, onset_mode: str | None = None,
                         drumless: bool | None = None, cfg_notes: float | None = None,
                         cfg_drums: float | None = None) -> None:
        """The official engine's note controls: ``unmask_width`` 0..127 (127 = solo: only the
        held notes play), ``onset_mode`` auto|explicit, ``drumless`` (ask for no drums), and the
        notes/drums CFG scales (-1..7; defaults 1.0 as in ``MagentaRT2System``). The registry
        controls of the same names (all but ``onset_mode``) arrive here too (:meth:`frame_conditioning`).

        Raises:
          ValueError: a value that is not one (one line naming it); numbers out of range are clamped.
        """
        new = {k: v for k, v in dict(unmask_width=unmask_width, onset_mode=onset_mode, drumless=drumless,
                                     cfg_notes=cfg_notes, cfg_drums=cfg_drums).items() if v is not None}
        if "onset_mode" in new and new["onset_mode"] not in ("auto", "explicit"):
            raise ValueError(f"onset_mode must be 'auto' or 'explicit', not {new['onset_mode']!r}")
        for name in ("unmask_width", "cfg_notes", "cfg_drums"):
            if name in new:
                try:
                    value = float(new[name])
                except (TypeError, ValueError):
                    raise ValueError(f"{name} must be a number, not {new[name]!r}") from None
                if not np.isfinite(value):
                    raise ValueError(f"{name} must be a finite number, not {value}")
                new[name] = int(np.clip(round(value), 0, 127)) if name == "unmask_width" else float(
                    np.clip(value, *CFG_RANGE))
        if "drumless" in new:
            if not isinstance(new["drumless"], (bool, int, np.bool_, np.integer)):
                raise ValueError(f"drumless must be true or false, not {new['drumless']!r}")
            new["drumless"] = bool(new["drumless"])
        with self._notes_lock:
            self._note_opts.update(new)

    # ---- snapshots -----------------------------------------------------------------------------
    snapshot = staticmethod(snapshots.snapshot)
    restore = staticmethod(snapshots.restore)


class MagentaRT2Generator(MRT2Conditioning):
    """The official package's streaming step under jamgen's Generator interface (see the module
    docstring); the controls come from :class:`MRT2Conditioning`.

    Args:
      model, style_model, name, use_mapper, style_levels: as :class:`MRT2Conditioning`.
      params: the sampler's parameters (official checkpoint or random init).
    """

    # One compiled step per frame, so any block size costs the same per frame and compiles nothing new.
    # Not measured on a GPU here (the dev VM has none; on its 2 CPU cores one frame of the test shape,
    # full-size SpectroStream included, takes p50 125 / p99 170-220 ms, 3x slower than real time, which
    # is why load() refuses the CPU). Real time on a GPU means under 40 ms a frame: "low" plays 2-frame
    # blocks with 200 ms ahead (room for a block of ~80 ms plus two JACK periods; the daemon's adaptive
    # pre-buffer grows if that is not enough); "safe" is the 200 ms blocks and 0.3 s it always had.
    latency = {"low": Latency(2, 0.2), "safe": Latency(5, 0.3)}

    def __init__(self, model, params, style_model, *, name: str = "mrt2", use_mapper: bool = False,
                 style_levels: int = 12):
        super().__init__(model, style_model, name=name, use_mapper=use_mapper, style_levels=style_levels)
        self._params = params
        self._sampler = build_sampler(model)
        self._compile()

    # ---- compilation -----------------------------------------------------------------------
    def _compile(self):
        """AOT-compile ``init_state(params, key)`` and the donated per-frame step, as the
        package does, but with the RNG key as an input so ``seed`` works without recompiling."""
        sampler = self._sampler
        spec = jax.ShapeDtypeStruct([self._channels], jnp.int32)
        step_rngs = {"params": jax.random.PRNGKey(42), "random": jax.random.PRNGKey(0)}

        def init_state(params, key):
            return sampler.apply(params, 1, spec, constants={}, training=False,
                                 rngs={"params": key, "random": key},
                                 method=sampler.get_initial_state)

        def step(params, x, constants, state):
            return sampler.apply(params, x=x, state=state, constants=constants, training=False,
                                 rngs=step_rngs, method=sampler.step_with_emits)

        self._init_state = jax.jit(init_state)
        block = self._block(np.full(self._channels, TOKEN_OFFSET + MASKED, np.int32))
        state = self._init_state(self._params, jax.random.PRNGKey(0))
        with warnings.catch_warnings():  # CPU cannot donate: harmless, said once per compile
            warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
            self._step = jax.jit(step, donate_argnums=(3,)).lower(
                self._params, block, self._constants(1.0, 40), state).compile()

    @staticmethod
    def _block(ids: np.ndarray):
        return sl.Sequence.from_values(jnp.asarray(ids.reshape(1, 1, -1)))

    @staticmethod
    def _constants(temperature: float, top_k: int) -> dict:
        return {"temperature": jnp.array([float(temperature)], jnp.float32),
                "top_k": jnp.array([int(np.clip(top_k, 1, 1024))], jnp.int32)}

    # ---- Generator protocol ----------------------------------------------------------------
    def init_state(self, seed: int = 0):
        """A fresh streaming state (empty KV caches, SOS frame) whose sampling RNG is
        ``PRNGKey(seed)``; seed 0 equals the package's own fresh state."""
        return self._init_state(self._params, jax.random.PRNGKey(int(seed)))

    def generate(self, state, controls: GenerationControls, frames: int):
        """``frames`` frames (40 ms each) of 48 kHz stereo float32, and the next state.

        ``state`` is donated to the compiled step (on accelerators its buffers are reused):
        keep only the returned state, and use :meth:`snapshot` to keep a copy.
        """
        if frames < 1:
            raise ValueError(f"frames must be >= 1, not {frames}")
        first, rest = self.frame_conditioning(controls)
        constants = self._constants(controls.temperature, controls.top_k)
        blocks = [self._block(first)] + ([self._block(rest)] if rest is not first else [])
        outputs = []
        for i in range(frames):
            out, state, _ = self._step(self._params, blocks[min(i, len(blocks) - 1)], constants, state)
            outputs.append(out.values[0])
        samples = np.asarray(jax.device_get(jnp.concatenate(outputs, axis=0)))
        audio = samples.astype(np.float32) / 32768.0  # the package emits int16 at gain 0.5
        return audio.reshape(frames * FRAME_SAMPLES, CHANNELS), state

    def warmup(self):
        """Runs one frame on a throwaway state, so the first live block pays no first-call cost
        (TFLite interpreter creation, device transfers)."""
        self.generate(self.init_state(0), GenerationControls(prompts=(("warm up", 1.0),)), 1)


# ---- construction ----------------------------------------------------------------------------

def _compile_cache():
    """jamgen's persistent XLA cache: the MRT2 step takes minutes to compile for mrt2_base,
    and a daemon restart should not pay that again."""
    from generator.core.runtime import enable_compile_cache

    enable_compile_cache()


def random_params(model: mrt_model.MagentaRT2ModelBase, seed: int = 0):
    """Randomly initialised sampler parameters for ``model``, from the package's own initialisers.

    ``mulan_dequantizer`` (the MusicCoCa-token embedding) is zero-initialised by the package
    (training overwrites it with pretrained codebooks); left at zero, style tokens would have no
    effect, so it is redrawn from N(0, 1) to let tests see prompts change the output.
    """
    from flax.core import meta

    _compile_cache()
    sampler = build_sampler(model)
    channels = model.input_num_channels
    spec = jax.ShapeDtypeStruct([channels], jnp.int32)
    x = sl.Sequence.from_values(jnp.full((1, 1, channels), TOKEN_OFFSET + MASKED, jnp.int32))
    constants = MagentaRT2Generator._constants(1.0, 40)

    def init_and_step(module, x, constants):
        state = module.get_initial_state(1, spec, training=False, constants={})
        return module.step_with_emits(x, state, training=False, constants=constants)

    key = jax.random.PRNGKey(seed)
    params = jax.jit(lambda k: meta.unbox(sampler.init({"params": k, "random": k}, x, constants,
                                                       method=init_and_step)))(key)

    def redraw(path, leaf):
        names = [getattr(p, "key", "") for p in path]
        if "mulan_dequantizer" in names:
            return jax.random.normal(jax.random.fold_in(key, 7), leaf.shape, leaf.dtype)
        return leaf

    return jax.tree_util.tree_map_with_path(redraw, params)


def load_checkpoint(path) -> Any:
    """The official ``<name>.safetensors`` as the nested Flax param dict the sampler expects
    (``/``-joined keys), as ``magenta_rt.jax.system._load_jax_weights`` reads it."""
    import flax.traverse_util as traverse_util
    import safetensors.flax

    flat = safetensors.flax.load_file(str(path))
    return traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in flat.items()})


def random_generator(shape: str = "test", *, seed: int = 0, style_model=None) -> MagentaRT2Generator:
    """An MRT2-shaped generator with random weights (no files needed): ``shape`` is ``test``
    (tiny), ``mrt2_small`` or ``mrt2_base``. The style model defaults to the package's
    ``MockMusicCoCa`` (hash-seeded embeddings and tokens), its only weightless MusicCoCa."""
    if shape not in SHAPES:
        raise ValueError(f"unknown MRT2 shape {shape!r}; choose one of {', '.join(SHAPES)}")
    model = SHAPES[shape]()
    return MagentaRT2Generator(model, random_params(model, seed), style_model or musiccoca.MockMusicCoCa(),
                               name=f"random:{shape}")


def load(name: str, *, allow_cpu: bool | None = None) -> MagentaRT2Generator:
    """The official ``name`` (mrt2_small | mrt2_base) from ``$MAGENTA_HOME/magenta-rt-v2``.

    Raises (one line each; :func:`generator.load` wraps them in ``ModelLoadError``):
      ValueError: unknown name, or no GPU/TPU (unless ``allow_cpu`` or $JAMGEN_MAGENTA_ALLOW_CPU=1).
      ImportError: the extra is missing.  FileNotFoundError: weights are missing.
    """
    assets.preflight(name)
    if allow_cpu is None:
        allow_cpu = os.environ.get(ALLOW_CPU_ENV, "") not in ("", "0")
    backend = jax.default_backend()
    if backend == "cpu" and not allow_cpu:
        raise ValueError(f"magenta:{name} needs a GPU or TPU to play in real time but JAX only sees the CPU; "
                         f"install CUDA JAX (pip install -U 'jax[cuda12]') or set {ALLOW_CPU_ENV}=1 "
                         "for slow offline use (jamgen render)")
    _compile_cache()
    mapper = (assets.musiccoca_dir() / "mapper.tflite").is_file()
    style = musiccoca.MusicCoCa(resource_dir=assets.musiccoca_dir())
    log.info("loading %s on %s (MusicCoCa mapper %s)", assets.checkpoint_path(name), backend,
             "on" if mapper else "absent")
    return MagentaRT2Generator(SHAPES[name](), load_checkpoint(assets.checkpoint_path(name)), style,
                               name=f"magenta:{name}", use_mapper=mapper)
