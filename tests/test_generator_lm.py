"""Depthformer: token ranges, the CFG identities, streaming == teacher forcing (ring buffer),
deterministic greedy sampling, style conditioning of the very next frame, and the loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from generator.audio import config as presets
from generator.core import sampling
from generator.audio.lm import Depthformer
from generator.train import lm_step, make_optimizer

CFG = presets.test().lm
STYLE = jnp.asarray([3, 14, 15, 92], jnp.int32)
MASKED = jnp.full((CFG.style_levels,), CFG.codebook_size, jnp.int32)


@pytest.fixture(scope="module")
def lm():
    return Depthformer(CFG, rngs=nnx.Rngs(0))


@nnx.jit(static_argnames="frames")
def run(lm, state, style, guidance, temperature, top_k, frames):
    def body(s, _):
        s, codes, logits = lm.step(s, style, guidance, temperature, top_k)
        return s, (codes, logits)
    return jax.lax.scan(body, state, None, length=frames)


@nnx.jit
def teacher(lm, codes, style):
    return lm.logits(codes, style)


def test_shapes_and_token_ranges(lm):
    state, (codes, logits) = run(lm, lm.init_state(0), STYLE, 3.0, 1.0, 40, frames=5)
    assert codes.shape == (5, CFG.levels) and codes.dtype == jnp.int32
    assert logits.shape == (5, CFG.levels, CFG.codebook_size)
    assert int(codes.min()) >= 0 and int(codes.max()) < CFG.codebook_size
    assert int(state["frame"]) == 5


@pytest.mark.parametrize("guidance,style_seen", [(1.0, STYLE), (0.0, MASKED)])
def test_cfg_identity_matches_single_path(lm, guidance, style_seen):
    """logits = u + w(c - u): w = 1 is the conditional-only path, w = 0 the unconditional one.
    Streaming runs past the window (24 frames, window 16), so this also checks the ring buffer
    against the teacher-forced windowed attention."""
    frames = 24
    _, (codes, guided) = run(lm, lm.init_state(1), STYLE, guidance, 1.0, 40, frames=frames)
    single = teacher(lm, codes[None], jnp.broadcast_to(style_seen, (1, frames, CFG.style_levels)))
    np.testing.assert_allclose(guided, single[0], atol=2e-4, rtol=1e-4)


def test_cfg_formula():
    c, u = jnp.asarray([1.0, 2.0]), jnp.asarray([0.5, -1.0])
    np.testing.assert_allclose(sampling.cfg(c, u, 1.0), c)
    np.testing.assert_allclose(sampling.cfg(c, u, 0.0), u)
    np.testing.assert_allclose(sampling.cfg(c, u, 3.0), u + 3 * (c - u))


def test_greedy_is_deterministic(lm):
    a = run(lm, lm.init_state(0), STYLE, 3.0, 0.0, 40, frames=6)[1][0]
    b = run(lm, lm.init_state(7), STYLE, 3.0, 0.0, 40, frames=6)[1][0]  # seed is irrelevant at T=0
    c = run(lm, lm.init_state(3), STYLE, 3.0, 1.5, 1, frames=6)[1][0]  # top_k 1 is greedy too
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    d = run(lm, lm.init_state(3), STYLE, 3.0, 1.5, 1024, frames=6)[1][0]
    assert not np.array_equal(a, d)  # sampling at T > 0 does vary


def test_top_k_mask():
    logits = jnp.asarray([0.1, 3.0, 2.0, -1.0, 2.5])
    kept = jnp.isfinite(sampling.top_k_mask(logits, jnp.int32(3)))
    np.testing.assert_array_equal(kept, [False, True, True, False, True])
    assert bool(jnp.isfinite(sampling.top_k_mask(logits, jnp.int32(99))).all())


def test_style_change_conditions_next_frame(lm):
    state, _ = run(lm, lm.init_state(0), STYLE, 3.0, 0.0, 40, frames=4)
    other = jnp.asarray([7, 7, 7, 7], jnp.int32)
    _, (_, same) = run(lm, jax.tree.map(jnp.copy, state), STYLE, 3.0, 0.0, 40, frames=1)
    _, (_, changed) = run(lm, jax.tree.map(jnp.copy, state), other, 3.0, 0.0, 40, frames=1)
    assert float(jnp.abs(same[0, 0] - changed[0, 0]).max()) > 1e-3


def test_loss_trains():
    lm = Depthformer(CFG, rngs=nnx.Rngs(2))
    opt = make_optimizer(lm, lr=3e-3)
    rng = np.random.default_rng(0)
    pattern = rng.integers(0, 1024, (4, CFG.levels))
    codes = jnp.asarray(np.tile(pattern, (2, 5, 1)).reshape(2, 20, CFG.levels))
    style = jnp.broadcast_to(STYLE, (2, 20, CFG.style_levels))
    losses = [float(lm_step(lm, opt, codes, style, jax.random.PRNGKey(i))[0]) for i in range(30)]
    assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0], losses[::5]
