"""Codec: token shapes and ranges, seamless streaming decode, and a short training run that
must beat the untrained codec on real (synthesised) audio."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from generator.audio.codec import Codec
from generator.audio import config as presets
from generator.train import codec_step, make_optimizer, spectral_distance

SR = 48_000


def chord(seconds: float, seed: int = 0) -> np.ndarray:
    """A stereo chord of harmonic tones with slow vibrato and note onsets: [N, 2] float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    out = np.zeros((len(t), 2))
    for f0, pan in zip((220.0, 277.18, 329.63), (0.2, 0.5, 0.8)):
        f = f0 * (1 + 0.003 * np.sin(2 * np.pi * 5 * t))
        phase = 2 * np.pi * np.cumsum(f) / SR
        tone = sum(np.sin(k * phase + rng.uniform(0, 6)) / k for k in range(1, 7))
        env = 0.5 + 0.5 * np.abs(np.sin(np.pi * t * 2))
        out += np.stack([tone * env * (1 - pan), tone * env * pan], -1)
    return (0.2 * out / np.abs(out).max()).astype(np.float32)


@pytest.fixture(scope="module")
def codec():
    return Codec(presets.test().codec, rngs=nnx.Rngs(0))


encode = nnx.jit(lambda c, a: c.encode(a))
decode = nnx.jit(lambda c, t: c.decode(t))
decode_stream = nnx.jit(lambda c, t, s: c.decode_stream(t, s))


def test_encode_shapes_and_ranges(codec):
    audio = jnp.asarray(chord(0.4))[None]  # 10 frames
    codes = encode(codec, audio)
    assert codes.shape == (1, 10, codec.cfg.levels) and codes.dtype == jnp.int32
    assert int(codes.min()) >= 0 and int(codes.max()) < 1024
    out = decode(codec, codes[..., :2])  # any prefix of levels decodes
    assert out.shape == (1, 10 * 1920, 2) and bool(jnp.isfinite(out).all())


def test_streaming_decode_matches_one_shot(codec):
    codes = encode(codec, jnp.asarray(chord(0.48))[None])  # 12 frames
    whole = decode(codec, codes)
    state, parts = codec.init_decoder_state(1), []
    for i in range(0, 12, 3):
        audio, state = decode_stream(codec, codes[:, i:i + 3], state)
        parts.append(audio)
    np.testing.assert_allclose(np.concatenate(parts, 1), whole, atol=1e-5)


def test_training_improves_round_trip():
    codec = Codec(presets.test().codec, rngs=nnx.Rngs(1))
    opt = make_optimizer(codec, lr=2e-3)
    train = chord(4.0, seed=1)
    held = jnp.asarray(chord(0.64, seed=2))[None]

    def error():
        return float(spectral_distance(decode(codec, encode(codec, held))[:, 1920:], held[:, 1920:]))

    before = error()
    rng = np.random.default_rng(0)
    key = jax.random.PRNGKey(0)
    n = 8 * 1920
    for step in range(150):
        starts = rng.integers(0, len(train) - n, 4)
        batch = jnp.asarray(np.stack([train[s:s + n] for s in starts]))
        key, sub = jax.random.split(key)
        loss, _ = codec_step(codec, opt, batch, sub)
    after = error()
    assert np.isfinite(float(loss))
    print("spectral distance before/after", before, after)
    assert after < 0.7 * before, (before, after)
