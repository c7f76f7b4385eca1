"""The Depthformer language model: one temporal step per 40 ms frame, then the frame's RVQ levels.

Why this shape (Magenta RT 2): a causal temporal transformer runs once per frame on the summed
embeddings of the previous frame's tokens plus the current frame's style tokens, so a style change
is heard from the very next frame. Its attention window is a ring-buffer KV cache of ``window``
frames, so the cost per frame is constant forever. A small depth transformer then samples the
frame's ``levels`` codes one by one. Classifier-free guidance runs a batch of 2: row 0 sees the
style, row 1 the same history with the style masked; both rows are fed the same sampled tokens.

Token layout: a level-l code c has id ``l * 1024 + c`` in the shared tables; id ``levels * 1024``
is the start-of-stream frame. Style token s of level j has id ``j * 1025 + s``; s = 1024 is MASK.
The per-level valid-range mask is realised by slicing level l's rows out of the output matrix,
which is the same as masking every other id to -inf but computes 1/levels of the logits.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from generator.core import sampling
from generator.audio.config import LMConfig
from generator.core.layers import Stack, window_mask


class Depthformer(nnx.Module):
    def __init__(self, cfg: LMConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        v, d, dd = cfg.codebook_size, cfg.d_model, cfg.depth_d_model
        self.tok_embed = nnx.Embed(cfg.levels * v + 1, d, rngs=rngs)
        self.style_embed = nnx.Embed(cfg.style_levels * (v + 1), d, rngs=rngs)
        self.temporal = Stack(d, cfg.heads, cfg.ffn, cfg.layers, rngs=rngs)
        self.depth_in = nnx.Linear(d, dd, rngs=rngs)
        self.depth_embed = nnx.Embed(cfg.levels * v, dd, rngs=rngs)
        self.level_embed = nnx.Embed(cfg.levels, dd, rngs=rngs)
        self.depth = Stack(dd, cfg.depth_heads, cfg.depth_ffn, cfg.depth_layers, rngs=rngs)
        self.head = nnx.Param(jax.random.normal(rngs.params(), (cfg.levels * v, dd)) * dd ** -0.5)
        self.head_bias = nnx.Param(jnp.zeros((cfg.levels * v,)))

    # ---- shared pieces -------------------------------------------------------------------
    def _frame_input(self, prev_ids, style_ids):
        """prev_ids [..., L] codes (or None rows for SOS handled by caller); style_ids [..., S]."""
        v = self.cfg.codebook_size
        lvl = jnp.arange(self.cfg.levels) * v
        x = self.tok_embed(prev_ids + lvl).sum(-2)
        s_off = jnp.arange(self.cfg.style_levels) * (v + 1)
        return x, self.style_embed(style_ids + s_off).sum(-2)

    def _level_logits(self, y, level):
        """y [..., dd] -> logits of level ``level`` (traced) only: [..., 1024]."""
        v = self.cfg.codebook_size
        w = jax.lax.dynamic_slice_in_dim(self.head[...], level * v, v, axis=0)
        b = jax.lax.dynamic_slice_in_dim(self.head_bias[...], level * v, v, axis=0)
        logits = y @ w.T + b
        cap = self.cfg.logit_cap
        return jnp.tanh(logits / cap) * cap

    def masked_style(self, batch_shape=()):
        return jnp.full(batch_shape + (self.cfg.style_levels,), self.cfg.codebook_size, jnp.int32)

    # ---- streaming -------------------------------------------------------------------------
    def init_state(self, seed: int = 0):
        """Empty context: zeroed ring buffer, SOS as previous frame, frame 0."""
        return {
            "kv": self.temporal.empty_cache(2, self.cfg.window),
            "prev": jnp.zeros((self.cfg.levels,), jnp.int32),
            "frame": jnp.zeros((), jnp.int32),
            "rng": jax.random.PRNGKey(seed),
        }

    def _temporal_step(self, state, style_rows):
        """Advance the temporal stack by one frame for both CFG rows; returns h [2, d]."""
        cfg = self.cfg
        frame = state["frame"]
        x, s = self._frame_input(state["prev"], style_rows)
        sos = self.tok_embed(jnp.asarray(cfg.levels * cfg.codebook_size))
        x = jnp.where(frame == 0, sos, x)
        slot = frame % cfg.window
        valid = jnp.arange(cfg.window) <= frame
        h, kv = self.temporal.step(x[None] + s, state["kv"], slot, valid)
        return h, dict(state, kv=kv, frame=frame + 1)

    def step(self, state, style_tokens, guidance, temperature, top_k):
        """Generate one frame. style_tokens [S] int (1024 = masked). Returns (state, codes [L], logits [L, 1024])."""
        cfg = self.cfg
        style_rows = jnp.stack([style_tokens.astype(jnp.int32), self.masked_style()])
        h, state = self._temporal_step(state, style_rows)
        rng, key = jax.random.split(state["rng"])
        cache = self.depth.empty_cache(2, cfg.levels)
        inp = self.depth_in(h) + self.level_embed(jnp.asarray(0))

        def level_step(carry, level):
            inp, cache = carry
            y, cache = self.depth.step(inp, cache, level, jnp.arange(cfg.levels) <= level)
            logits = self._level_logits(y, level)
            guided = sampling.cfg(logits[0], logits[1], guidance)
            tok = sampling.sample(jax.random.fold_in(key, level), guided, temperature, top_k)
            nxt = jnp.minimum(level + 1, cfg.levels - 1)
            inp = self.depth_embed(level * cfg.codebook_size + tok) + self.level_embed(nxt)
            return (jnp.broadcast_to(inp, (2, inp.shape[-1])), cache), (tok, guided)

        _, (codes, logits) = jax.lax.scan(level_step, (inp, cache), jnp.arange(cfg.levels))
        return dict(state, prev=codes, rng=rng), codes, logits

    def prime(self, state, codes):
        """Teacher-force the context with known frames codes [T, L] (style masked, as MRT2 prefill)."""
        masked = jnp.stack([self.masked_style(), self.masked_style()])

        def one(state, frame_codes):
            _, state = self._temporal_step(state, masked)
            return dict(state, prev=frame_codes), None

        state, _ = jax.lax.scan(one, state, codes)
        return state

    # ---- training --------------------------------------------------------------------------
    def logits(self, codes, style):
        """Teacher-forced logits. codes [B, T, L], style [B, T, S] -> [B, T, L, 1024]."""
        cfg = self.cfg
        b, t, n = codes.shape
        x, s = self._frame_input(codes, style)
        sos = self.tok_embed(jnp.asarray(cfg.levels * cfg.codebook_size))
        x = jnp.concatenate([jnp.broadcast_to(sos, (b, 1, x.shape[-1])), x[:, :-1]], axis=1) + s
        h = self.temporal.seq(x, window_mask(t, cfg.window))
        lvl = self.level_embed(jnp.arange(n))
        first = self.depth_in(h)[:, :, None]
        rest = self.depth_embed(codes[..., :-1] + jnp.arange(n - 1) * cfg.codebook_size)
        dx = (jnp.concatenate([first, rest], axis=2) + lvl).reshape(b * t, n, -1)
        y = self.depth.seq(dx, window_mask(n, n)).reshape(b, t, n, -1)
        head = self.head[...].reshape(n, cfg.codebook_size, -1)
        bias = self.head_bias[...].reshape(n, cfg.codebook_size)
        logits = jnp.einsum("btld,lvd->btlv", y, head) + bias
        return jnp.tanh(logits / cfg.logit_cap) * cfg.logit_cap

    def loss(self, codes, style, key):
        """Cross-entropy of teacher forcing, with per-sequence style dropout (so CFG works)."""
        drop = jax.random.bernoulli(key, self.cfg.cond_dropout, (codes.shape[0], 1, 1))
        style = jnp.where(drop, self.cfg.codebook_size, style)
        logits = self.logits(codes, style)
        logp = jax.nn.log_softmax(logits, axis=-1)
        nll = -jnp.take_along_axis(logp, codes[..., None], axis=-1)[..., 0]
        return nll.mean(), {"nll_per_level": nll.mean(axis=(0, 1))}
