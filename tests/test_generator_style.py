"""Style model: the JAX MiniLM agrees with meaning, our WordPiece matches the reference
tokenizer, the audio tower and tokenizer give valid shapes, and InfoNCE prefers matched pairs."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from generator.audio import config as presets
from generator.audio.style import StyleModel, clips_of, info_nce, to_mono_16k
from generator.core.text_encoder import TextEncoder, model_dir


@pytest.fixture(scope="module")
def text():
    return TextEncoder()


def test_minilm_similarities_make_sense(text):
    jazz, swing, metal, techno, edm, rock = text(
        ["jazz", "swing", "heavy metal", "techno", "electronic dance music", "rock"])
    assert jazz @ swing > jazz @ metal
    assert techno @ edm > techno @ jazz
    assert metal @ rock > metal @ swing
    np.testing.assert_allclose(np.linalg.norm(jazz), 1.0, atol=1e-5)


# Ids of the hand-written WordPiece jamgen used before it tokenised with `tokenizers` (regression).
WORDPIECE_IDS = {
    "Jazz fusion, with café-style Rhodes!": [101, 4166, 10077, 1010, 2007, 7668, 1011, 2806, 10588, 999, 102],
    "lo-fi hip hop beats (90s)": [101, 8840, 1011, 10882, 5099, 6154, 10299, 1006, 17233, 1007, 102],
    "dubstep wobble bass": [101, 12931, 13473, 2361, 24185, 11362, 3321, 102],
}


def test_wordpiece_matches_reference_tokenizer(text):
    for s, ids in WORDPIECE_IDS.items():
        assert text.tokenizer(s) == ids
    long = text.tokenizer(" ".join(["music"] * 80))  # truncated to the longest bucket, [SEP] kept
    assert len(long) == 64 and long[0] == 101 and long[-1] == 102 and set(long[1:-1]) == {2189}


def test_audio_tower_and_tokenizer_shapes():
    cfg = presets.test().style
    model = StyleModel(cfg, rngs=nnx.Rngs(0))
    audio48 = np.random.default_rng(0).normal(0, 0.1, (48_000 * 12, 2)).astype(np.float32)
    clips = clips_of(to_mono_16k(audio48))
    assert clips.shape == (2, 160_000)
    vec = nnx.jit(lambda m, c: m.embed_audio(c))(model, jnp.asarray(clips))
    assert vec.shape == (2, cfg.dim)
    toks = model.tokenize(vec)
    assert toks.shape == (2, cfg.levels) and int(toks.max()) < 1024


def test_info_nce_prefers_matched_pairs():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(4, 8))
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    matched = float(info_nce(jnp.asarray(t), jnp.asarray(t), jnp.log(10.0)))
    shuffled = float(info_nce(jnp.asarray(t), jnp.asarray(t[::-1]), jnp.log(10.0)))
    assert matched < shuffled
