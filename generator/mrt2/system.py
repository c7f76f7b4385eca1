"""``--model mrt2:small|mrt2:base``: the official Magenta RT 2 weights in jamgen's native engine.

What is whose: the weights and the file layout are the official checkpoint's
(``<MAGENTA_HOME>/magenta-rt-v2/checkpoints/mrt2_{small,base}.safetensors``, found and reported
missing exactly as for ``magenta:`` by :mod:`generator.backends.magenta_assets`); the controls
(MusicCoCa prompts, guidance as the CFG token, notes and drums CFG, MIDI notes as the piano roll)
are the adapter's :class:`~generator.backends.magenta_rt2.MRT2Conditioning`, one implementation for
both; the language model, its sampler, the codec and the block loop are jamgen's (:mod:`generator.mrt2.lm`,
:mod:`generator.mrt2.codec`, :mod:`generator.mrt2.engine`). ``mrt2:test`` loads ``checkpoints/mrt2_test.safetensors`` at the
reduced shape (written by ``bench/parity_mrt2.py --write-test-checkpoint``) with the package's
weightless ``MockMusicCoCa``, for tests and CPU smoke runs.

Precision: float32 on the CPU; on a GPU/TPU bfloat16 weights and compute by default (the package's
models compute in bfloat16 too), ``JAMGEN_MRT2_DTYPE=float32`` to override.
"""

from __future__ import annotations

import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from generator.backends import magenta_assets as assets
from generator.backends import magenta_rt2 as adapter
from generator.core.contract import CHANNELS, FRAME_SAMPLES, GenerationControls, Latency
from generator.mrt2 import weights
from generator.mrt2.codec import SpectroStreamDecoder
from generator.mrt2.config import OFFICIAL_NAMES, PRESETS
from generator.mrt2.engine import Engine, key_data
from generator.mrt2.lm import MRT2LM

log = logging.getLogger(__name__)

SPEC_PREFIX = "mrt2:"
LISTED = ("small", "base")  # what `jamgen models` lists; "test" is for tests
DTYPE_ENV = "JAMGEN_MRT2_DTYPE"
ADAPTER_SHAPE = {"small": "mrt2_small", "base": "mrt2_base", "test": "test"}


def checkpoint_path(preset: str):
    name = OFFICIAL_NAMES.get(preset, f"mrt2_{preset}")
    return assets.checkpoint_path(name)


def load_lm(preset: str, path, *, dtype=jnp.float32, param_dtype=jnp.float32, with_codec: bool = False) -> Engine:
    """An :class:`Engine` over the checkpoint at ``path`` (every tensor checked before the first read)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown MRT2 shape {preset!r}; choose one of {', '.join(PRESETS)}")
    cfg = PRESETS[preset]
    ckpt = weights.Checkpoint(path)
    codec = SpectroStreamDecoder(cfg.levels) if with_codec else None
    codec_params = codec.read(ckpt) if codec else None  # checks the codec's tensors too, before the LM's
    graph, params = weights.fill(nnx.eval_shape(lambda: MRT2LM(cfg)), ckpt, dtype=param_dtype)
    return Engine(cfg, graph, params, dtype=dtype, codec=codec, codec_params=codec_params)


class MRT2NativeGenerator(adapter.MRT2Conditioning):
    """MRT2 under the Generator contract, on jamgen's engine; controls as the adapter's.

    A block of ``frames`` is one compiled call (one executable per block size, all compiled by
    :meth:`warmup`); ``state`` is donated to it, keep only the returned one (or a :meth:`snapshot`).
    """

    # Not measured on a GPU yet (the dev VM has none). The block loop runs on the device, so bigger
    # blocks cost little more per frame than small ones; "low" keeps the adapter's 2-frame blocks.
    latency = {"low": Latency(2, 0.2), "safe": Latency(5, 0.3)}

    def __init__(self, preset: str, engine: Engine, style_model, *, name: str, use_mapper: bool = False):
        super().__init__(adapter.SHAPES[ADAPTER_SHAPE[preset]](), style_model, name=name, use_mapper=use_mapper)
        self.engine = engine

    def init_state(self, seed: int = 0):
        """A fresh context whose sampling key is ``split(PRNGKey(seed), 1)``."""
        return self.engine.init_state(key_data(int(seed)))

    def conditioning_block(self, controls: GenerationControls, frames: int) -> np.ndarray:
        """[frames, 1, 144] ids: the first frame may carry note onsets the others do not."""
        first, rest = self.frame_conditioning(controls)
        cond = np.repeat(rest[None, None], frames, axis=0)
        cond[0, 0] = first
        return cond

    def generate(self, state, controls: GenerationControls, frames: int):
        if frames < 1:
            raise ValueError(f"frames must be >= 1, not {frames}")
        cond = self.conditioning_block(controls, frames)
        top_k = int(np.clip(controls.top_k, 1, 1024))
        state, _, _, audio = self.engine.frames(state, cond, controls.temperature, top_k)
        audio = np.asarray(jax.device_get(audio[0]), np.float32)
        return audio.reshape(frames * FRAME_SAMPLES, CHANNELS), state

    def warmup(self):
        """Compiles every latency setting's block size on a throwaway state."""
        controls = GenerationControls(prompts=(("warm up", 1.0),))
        for frames in sorted({lat.block_frames for lat in self.latency.values()}):
            self.generate(self.init_state(0), controls, frames)


def _dtypes():
    choice = os.environ.get(DTYPE_ENV, "")
    if choice not in ("", "float32", "bfloat16"):
        raise ValueError(f"{DTYPE_ENV} must be float32 or bfloat16, not {choice!r}")
    if not choice:
        choice = "float32" if jax.default_backend() == "cpu" else "bfloat16"
    return getattr(jnp, choice)


def preflight(preset: str) -> None:
    """The name, the extra and the files, before anything heavy is built (one-line errors)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown MRT2 model {SPEC_PREFIX}{preset}; choose one of "
                         f"{', '.join(SPEC_PREFIX + p for p in LISTED)}")
    if preset in OFFICIAL_NAMES:
        assets.preflight(OFFICIAL_NAMES[preset])
    elif not checkpoint_path(preset).is_file():
        raise FileNotFoundError(f"missing {checkpoint_path(preset)}; write it with: "
                                ".venv/bin/python bench/parity_mrt2.py --write-test-checkpoint")


def load(spec: str, *, allow_cpu: bool | None = None) -> MRT2NativeGenerator:
    """``mrt2:small`` | ``mrt2:base`` (| ``mrt2:test``). Raises ValueError, ImportError,
    FileNotFoundError or :class:`generator.mrt2.weights.CheckpointError` with one-line messages."""
    preset = spec[len(SPEC_PREFIX):] if spec.startswith(SPEC_PREFIX) else spec
    preflight(preset)
    if allow_cpu is None:
        allow_cpu = os.environ.get(adapter.ALLOW_CPU_ENV, "") not in ("", "0")
    if preset != "test" and jax.default_backend() == "cpu" and not allow_cpu:
        raise ValueError(f"{SPEC_PREFIX}{preset} needs a GPU or TPU to play in real time but JAX only sees the "
                         f"CPU; install CUDA JAX (pip install -U 'jax[cuda12]') or set {adapter.ALLOW_CPU_ENV}=1 "
                         "for slow offline use (jamgen render)")
    adapter._compile_cache()
    dtype = _dtypes()
    path = checkpoint_path(preset)
    log.info("loading %s into the native MRT2 engine (%s, %s)", path, jax.default_backend(), jnp.dtype(dtype).name)
    engine = load_lm(preset, path, dtype=dtype, param_dtype=dtype, with_codec=True)
    if preset == "test":
        from magenta_rt import musiccoca

        return MRT2NativeGenerator(preset, engine, musiccoca.MockMusicCoCa(), name=spec)
    from magenta_rt import musiccoca

    mapper = (assets.musiccoca_dir() / "mapper.tflite").is_file()
    style = musiccoca.MusicCoCa(resource_dir=assets.musiccoca_dir())
    return MRT2NativeGenerator(preset, engine, style, name=spec, use_mapper=mapper)
