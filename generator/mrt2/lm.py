"""MRT2's language model as one jamgen-native Flax NNX module: conditioning encoder, temporal and
depth transformers, and the package's sampler, stepped frame by frame inside one compiled scan.

Why it is written this way (and how it matches ``magenta_rt.jax.depthformer``):

- **Conditioning** (``Encoder``: the body is the identity): the 12 MusicCoCa ids of a frame index one
  table with per-level offsets of 1031, are *summed* and projected to the encoder width; the other
  132 channels (piano roll, drums, two CFG tokens) index a second table with per-channel offsets and
  are *averaged*; the two branches are averaged and layer-normed. The result is the one source frame
  the temporal stack cross-attends to (a ring buffer of ``horizon + 1`` frames, like its self-attention).
- **Temporal step**: the previous frame's 12 ids are embedded (``* sqrt(width)``) and averaged.
- **Depth loop**: the temporal output (through ``depth_adapter`` when the widths differ) is position 0;
  each sampled level is embedded with the *same* table and fed back. Only level ``l``'s 1024 rows of
  ``to_logits`` are computed: the package masks every other id with ``-0.7 * float32 max``, so they
  can never win, and its top-k threshold lies inside the valid block whenever k <= 1024.
- **Sampling** reproduces ``_sample_categorical_with_temperature`` bit for bit: soft cap 30, top-k by
  sorted threshold (ties kept), ``argmax(logits + temperature * gumbel(key, [1, V]))`` with the gumbel
  drawn over the full vocabulary and sliced, then the key folded with the frame index after every
  level. The levels run in a ``lax.scan`` inside the frame ``lax.scan``. ``unroll`` ("levels" or "all")
  unrolls them: an XLA:GPU while loop may read its predicate back to the host every iteration, which
  stalls the launch queue 12 times a frame; unrolled, the loop is straight-line device code. On the
  CPU unrolling only costs compile time (x7 at the reduced shape), so it is off there.

MRT2's classifier-free guidance is trained conditioning (the CFG tokens among the 144 ids, binned by the
adapter's ``conditioning_ids``), so it costs no second batch row; ``batch`` is kept general anyway.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from generator.mrt2.config import (MUSICCOCA_DIM, MUSICCOCA_LEVELS, MUSICCOCA_VOCAB, REGULAR_CHANNELS,
                                   RESERVED, SOS_ID, MRT2Config)
from generator.mrt2.layers import Transformer, layer_norm, zeros_param

NEG_LOGIT = -0.7 * float(np.finfo(np.float32).max)  # depthformer.get_large_negative_number(float32)


def _regular_offsets() -> np.ndarray:
    sizes = [v for _, c, v in REGULAR_CHANNELS for _ in range(c)]
    return np.cumsum([0] + sizes[:-1]).astype(np.int32)


class MRT2LM(nnx.Module):
    """The Depthformer of Magenta RT 2 (see the module docstring). Build it under ``nnx.eval_shape``
    and fill it from a checkpoint (:mod:`generator.mrt2.weights`): every parameter starts at zero."""

    def __init__(self, cfg: MRT2Config):
        self.cfg = cfg
        t, d, e = cfg.temporal, cfg.depth, cfg.encoder_dim
        self.musiccoca_table = zeros_param(MUSICCOCA_LEVELS * MUSICCOCA_VOCAB, MUSICCOCA_DIM)
        self.musiccoca_proj = zeros_param(MUSICCOCA_DIM, e)
        self.regular_table = zeros_param(cfg.regular_embeddings, e)
        self.encoder_ln_scale, self.encoder_ln_bias = zeros_param(e), zeros_param(e)
        self.embedding = zeros_param(cfg.vocab, t.dim)
        self.temporal = Transformer(t.dim, t.ffn, t.heads, t.head_dim, t.layers, source_dim=e, sinks=cfg.sinks)
        self.depth_adapter = zeros_param(t.dim, d.dim) if t.dim != d.dim else None
        self.depth = Transformer(d.dim, d.ffn, d.heads, d.head_dim, d.layers)
        self.final_ln_scale, self.final_ln_bias = zeros_param(d.dim), zeros_param(d.dim)
        self.to_logits, self.to_logits_bias = zeros_param(d.dim, cfg.vocab), zeros_param(cfg.vocab)

    # ---- state -------------------------------------------------------------------------------
    def init_state(self, rng, batch: int = 1, dtype=jnp.float32) -> dict:
        """An empty context. ``rng``: ``[batch, 2]`` uint32 key data, one sampling stream per row."""
        return {"prev": jnp.full((batch, self.cfg.levels), SOS_ID, jnp.int32),
                "cache": self.temporal.empty_cache(batch, self.cfg.window, dtype),
                "frame": jnp.zeros((), jnp.int32),
                "rng": jnp.asarray(rng, jnp.uint32).reshape(batch, 2)}

    # ---- pieces --------------------------------------------------------------------------------
    def encode(self, ids, dtype):
        """Conditioning ids [B, 144] (package values + 7) -> the source frame [B, encoder_dim]."""
        m = ids[:, :MUSICCOCA_LEVELS] + jnp.arange(MUSICCOCA_LEVELS) * MUSICCOCA_VOCAB
        m = jnp.take(self.musiccoca_table[...].astype(dtype), m, axis=0).sum(axis=1)
        m = m @ self.musiccoca_proj[...].astype(dtype)
        r = ids[:, MUSICCOCA_LEVELS:] + _regular_offsets()
        r = jnp.take(self.regular_table[...].astype(dtype), r, axis=0).mean(axis=1)
        return layer_norm((m + r) / 2, self.encoder_ln_scale[...], self.encoder_ln_bias[...])

    def embed(self, ids, dtype):
        """Output ids [...] -> [..., temporal width], scaled by sqrt(width) as the package's embedder."""
        table = self.embedding[...].astype(dtype)
        return jnp.take(table, ids, axis=0) * jnp.asarray(np.sqrt(table.shape[-1]), dtype)

    def level_logits(self, y, level):
        """Depth output [B, d] -> level ``level``'s 1024 logits [B, 1024], float32, before the soft cap."""
        start = RESERVED + level * self.cfg.codebook
        w = jax.lax.dynamic_slice_in_dim(self.to_logits[...], start, self.cfg.codebook, axis=1)
        b = jax.lax.dynamic_slice_in_dim(self.to_logits_bias[...], start, self.cfg.codebook, axis=0)
        y = layer_norm(y, self.final_ln_scale[...], self.final_ln_bias[...])
        return (y @ w.astype(y.dtype) + b.astype(y.dtype)).astype(jnp.float32)

    def sample(self, logits, rng, level, temperature, top_k):
        """One level's code per row, exactly as the package samples (see the module docstring)."""
        cfg = self.cfg
        capped = jnp.tanh(logits / cfg.logit_cap) * cfg.logit_cap
        k = jnp.clip(top_k, 1, cfg.codebook)
        kth = jnp.take(jnp.sort(capped, axis=-1), cfg.codebook - k, axis=-1)[..., None]
        kept = jnp.where(capped >= kth, capped, NEG_LOGIT)
        start = RESERVED + level * cfg.codebook
        noise = jax.vmap(lambda key: jax.random.gumbel(key, (1, cfg.vocab), jnp.float32)[0])(rng)
        noise = jax.lax.dynamic_slice_in_dim(noise, start, cfg.codebook, axis=1)
        return jnp.argmax(kept + noise * temperature, axis=-1).astype(jnp.int32)

    # ---- one frame ------------------------------------------------------------------------------
    def step(self, state: dict, cond_ids, temperature, top_k, dtype=jnp.float32, unroll: str = "none"):
        """One 40 ms frame. cond_ids [B, 144]. Returns (state, ids [B, 12], logits [12, B, 1024])."""
        cfg = self.cfg
        batch = cond_ids.shape[0]
        source = self.encode(cond_ids, dtype)
        x = self.embed(state["prev"], dtype).mean(axis=1)
        slot = state["frame"] % cfg.window
        h, cache = self.temporal.step(x, state["cache"], slot, source)
        frame = state["frame"]

        def adapt(v):
            return v if self.depth_adapter is None else v @ self.depth_adapter[...].astype(dtype)

        def level_step(carry, level):
            inp, dcache, rng = carry
            y, dcache = self.depth.step(inp, dcache, level)
            logits = self.level_logits(y, level)
            code = self.sample(logits, rng, level, temperature, top_k)
            ids = code + RESERVED + level * cfg.codebook
            rng = jax.vmap(jax.random.fold_in)(rng, jnp.full((batch,), frame, jnp.int32))
            return (adapt(self.embed(ids, dtype)), dcache, rng), (ids, logits)

        dcache = self.depth.empty_cache(batch, cfg.levels, dtype)
        (_, _, rng), (ids, logits) = jax.lax.scan(level_step, (adapt(h), dcache, state["rng"]),
                                                  jnp.arange(cfg.levels), unroll=unroll in ("levels", "all"))
        ids = ids.T  # [B, 12]
        return {"prev": ids, "cache": cache, "frame": frame + 1, "rng": rng}, ids, logits

    def frames(self, state: dict, cond_ids, temperature, top_k, dtype=jnp.float32, keep_logits=False,
               unroll: str = "none"):
        """``F`` frames in one scan. cond_ids [F, B, 144]. Returns (state, ids [F, B, 12], logits
        [F, 12, B, 1024] or None); logits are only kept for parity checks. ``unroll``: "none",
        "levels" (the level loop) or "all" (the frame loop too, when ``F <= 8``: a daemon block)."""

        def one(state, ids):
            state, out, logits = self.step(state, ids, temperature, top_k, dtype, unroll)
            return state, (out, logits if keep_logits else None)

        unroll_frames = unroll == "all" and cond_ids.shape[0] <= 8
        state, (ids, logits) = jax.lax.scan(one, state, cond_ids, unroll=unroll_frames)
        return state, ids, logits


def codes_of(ids):
    """Output ids -> per-level codebook indices 0..1023 (package: ``convert_from_unique_codes``)."""
    return (ids - RESERVED) % 1024
