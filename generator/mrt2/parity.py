"""The same random MRT2 run both ways: the official package's streaming step and jamgen's native engine.

Why this exists: without the real weights, the only proof that :mod:`generator.mrt2` computes MRT2 is
to give it the package's own parameters and compare. :func:`official_checkpoint` initialises the
package's sampler at a chosen shape with the package's initialisers, re-draws every constant-initialised
tensor (norm scales of 1, zero biases and query scales, the zero MusicCoCa table) so that each one
matters, and writes the official file layout. :func:`compare_lm` then steps both engines on the same
conditioning and RNG stream and reports per-level logit differences and token agreement.
Used by ``tests/test_mrt2_native.py`` (reduced shape) and ``bench/parity_mrt2.py`` (any shape).

Both sides compute in float32 here: the package's shipped models compute in bfloat16
(``MagentaRT2ModelBase.compute_dtype``), whose rounding would hide real differences.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from generator.backends import magenta_rt2 as adapter

SHAPE_OF = {"test": "test", "small": "mrt2_small", "base": "mrt2_base"}



def random_conditioning(frames: int, seed: int) -> np.ndarray:
    """[frames, 144] conditioning ids (package values + 7) that exercise every channel: two prompts (a change
    half-way), a random piano roll and drum roll, the CFG tokens."""
    rng = np.random.default_rng(seed)
    cond = np.full((frames, 144), 6, np.int32)
    style = rng.integers(0, 1024, (2, 12)) + 7
    cond[:, :12] = np.where(np.arange(frames)[:, None] < frames // 2, style[0], style[1])
    cond[:, 12:140] = rng.integers(-1, 4, (frames, 128)) + 7
    cond[:, 140] = rng.integers(-1, 2, frames) + 7
    cond[:, 141:143] = [20 + 7, 10 + 7]
    cond[:, 143] = 2 + 7
    return cond

def package_model(preset: str, dtype=jnp.float32):
    """The package's architecture object for a native preset, computing in ``dtype``."""
    base = adapter.SHAPES[SHAPE_OF[preset]]
    return type(f"{base.__name__}_{jnp.dtype(dtype).name}", (base,), {"compute_dtype": dtype})()


def official_checkpoint(preset: str, path, seed: int = 0):
    """Write ``path`` (safetensors, official layout) with package-initialised parameters; returns the
    package's nested params. Constant tensors are re-drawn around their value (see the module doc)."""
    import flax.traverse_util as traverse_util
    from safetensors.numpy import save_file

    params = adapter.random_params(package_model(preset), seed)
    flat = traverse_util.flatten_dict(jax.device_get(params), sep="/")
    rng = np.random.default_rng(seed + 1)
    out = {}
    for name, value in flat.items():
        value = np.asarray(value, np.float32)
        if value.size > 1 and np.all(value == value.flat[0]):
            value = value + rng.normal(0.0, 0.2, value.shape).astype(np.float32)
        out[name] = value
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(out, str(path))
    return traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in out.items()})


def read_checkpoint(path):
    """A checkpoint written by :func:`official_checkpoint`, back as the package's nested params."""
    import flax.traverse_util as traverse_util
    from safetensors.numpy import load_file

    return traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in load_file(str(path)).items()})


@dataclasses.dataclass
class LMParity:
    frames: int
    logit_max_abs: float          # over every level of every frame (the valid 1024 ids of each level)
    per_level_max_abs: list[float]
    tokens_equal_frames: int      # frames whose 12 ids are identical, counted from the first
    tokens_all_equal: bool


@functools.lru_cache(maxsize=None)
def _package_lm(preset: str):
    """The package's LM sampler (``sampler.layers[0]``: encoder + depthformer, no codec) as two
    jitted functions, compiled once per preset: ``init(params, key)`` and ``step(params, x, constants,
    state) -> (state, ids [12], logits [12, V])`` (logits before the soft cap, from its ``sow``)."""
    model = package_model(preset)
    sampler = adapter.build_sampler(model)
    spec = jax.ShapeDtypeStruct([model.input_num_channels], jnp.int32)

    def init(params, key):
        return sampler.apply(params, 1, spec, constants={}, training=False, rngs={"params": key, "random": key},
                             method=lambda m, *a, **k: m.layers[0].get_initial_state(*a, **k))

    def step(params, x, constants, state):
        (_, state), inter = sampler.apply(
            params, x, state, training=False, constants=constants, rngs={"params": jax.random.PRNGKey(42)},
            method=lambda m, *a, **k: m.layers[0].step(*a, **k), mutable=["intermediates"])
        dec = inter["intermediates"]["depthformer"]["decoder"]
        return state, jnp.stack([v[0, 0] for v in dec["depth_samples"]]), jnp.stack(
            [v[0, 0] for v in dec["depth_logits"]])

    return jax.jit(init), jax.jit(step)


def package_run(preset: str, params, cond: np.ndarray, seed: int, temperature: float, top_k: int):
    """The package's own streaming step over ``cond`` [F, 144]. Returns (ids [F, 12], logits
    [F, 12, V] before the soft cap, the initial RNG [1, 2] of its sampler state)."""
    import sequence_layers.jax as sl

    init, step = _package_lm(preset)
    state = init(params, jax.random.PRNGKey(seed))
    rng0 = np.asarray(state[2][0])  # (encoder, previous frame, (rng, sos, temporal, step), countdown)
    constants = adapter.MagentaRT2Generator._constants(temperature, top_k)
    ids, logits = [], []
    for frame in cond:
        state, i, lg = step(params, sl.Sequence.from_values(jnp.asarray(frame.reshape(1, 1, -1))), constants, state)
        ids.append(np.asarray(i))
        logits.append(np.asarray(lg))
    return np.stack(ids), np.stack(logits), rng0


@functools.lru_cache(maxsize=4)
def native_lm(preset: str, path: str):
    from generator.mrt2 import system

    return system.load_lm(preset, path)


def compare_lm(preset: str, ckpt_path, params, cond: np.ndarray, *, seed: int = 0,
               temperature: float = 1.3, top_k: int = 40) -> LMParity:
    """Step both engines over ``cond`` [F, 144] (conditioning ids) from the same RNG key."""
    from generator.mrt2.config import RESERVED

    ref_ids, ref_logits, rng0 = package_run(preset, params, cond, seed, temperature, top_k)
    lm = native_lm(preset, str(ckpt_path))
    ids, logits = lm.run(jnp.asarray(rng0), cond[:, None, :], temperature, top_k, keep_logits=True)
    ids, logits = np.asarray(ids)[:, 0], np.asarray(logits)[:, :, 0]  # [F, 12], [F, 12, 1024]
    v = lm.cfg.codebook
    ref = np.stack([ref_logits[:, l, RESERVED + l * v: RESERVED + (l + 1) * v] for l in range(lm.cfg.levels)], 1)
    diff = np.abs(ref - logits)
    same = np.all(ids == ref_ids, axis=1)
    first_bad = int(np.argmin(same)) if not same.all() else len(same)
    return LMParity(frames=len(cond), logit_max_abs=float(diff.max()),
                    per_level_max_abs=[float(d) for d in diff.max(axis=(0, 2))],
                    tokens_equal_frames=first_bad, tokens_all_equal=bool(same.all()))


@dataclasses.dataclass
class AudioParity:
    frames: int
    snr_db: float
    max_abs_diff: float
    peak: float


@functools.lru_cache(maxsize=None)
def _package_decoder():
    """The package's codec path for tokens: ``quantizer.codes_to_embeddings`` then
    ``embeddings_to_waveform_layer`` (decoder + inverse STFT), stepped one frame per call, float out."""
    import sequence_layers.jax as sl
    from magenta_rt.jax import spectrostream

    module = spectrostream.stft_spectrostream_40ms_generic_48khz_stereo_config(
        rvq_truncation_level=12, use_unique_codes=False).make()
    spec = sl.ChannelSpec((256,), jnp.float32)

    def init(m):
        return m.embeddings_to_waveform_layer.get_initial_state(1, spec, training=False)

    def step(m, codes, state):
        emb = m.quantizer.codes_to_embeddings(sl.Sequence.from_values(codes))
        out, state = m.embeddings_to_waveform_layer.step(emb, state, training=False)
        return jnp.where(out.mask[..., None], out.values, 0.0), state

    return (jax.jit(lambda p: module.apply(p, method=init)),
            jax.jit(lambda p, c, s: module.apply(p, c, s, method=step)))


def compare_audio(ckpt_path, params, codes: np.ndarray, *, block: int = 3) -> AudioParity:
    """Decode ``codes`` [F, 12] (0..1023) with the package (one frame per step) and with the native
    codec (``block`` frames per compiled call); SNR of the native audio against the package's."""
    from generator.mrt2.codec import GAIN

    init, step = _package_decoder()
    ss = {"params": params["params"]["soundstream"]}
    state = init(ss)
    ref = []
    for frame in codes:
        out, state = step(ss, jnp.asarray(frame.reshape(1, 1, -1), jnp.int32), state)
        ref.append(np.asarray(out[0]))
    ref = np.concatenate(ref)
    from generator.mrt2.codec import SpectroStreamDecoder
    from generator.mrt2.weights import Checkpoint

    codec = SpectroStreamDecoder(12)  # the codec is the same at every model size
    cparams = codec.read(Checkpoint(ckpt_path))
    cstate = codec.init_state(cparams, 1)
    ours = []
    decode = jax.jit(codec.decode)
    for i in range(0, len(codes), block):
        audio, cstate = decode(cparams, cstate, jnp.asarray(codes[i:i + block, None, :], jnp.int32))
        ours.append(np.asarray(audio[0]))
    ours = np.concatenate(ours) / GAIN  # undo the output gain (nothing clips at these levels)
    err = ours - ref
    snr = 10 * np.log10(np.sum(ref ** 2) / max(np.sum(err ** 2), 1e-30))
    return AudioParity(frames=len(codes), snr_db=float(snr), max_abs_diff=float(np.abs(err).max()),
                       peak=float(np.abs(ref).max()))
