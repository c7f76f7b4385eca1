"""Transformer blocks shared by the temporal and the depth stacks of the Depthformer.

Why: both stacks need the same two entry points, a whole-sequence pass for teacher-forced
training and a one-position step that reads and writes a KV cache for streaming, and the two
must agree exactly. Attention is NoPE (no positional encoding, as in Magenta RT 2), so a ring
buffer cache needs no position bookkeeping: the set of cached frames is all that matters.
Each layer has one learned attention-sink key/value so a head can attend to "nothing".

Shapes: B batch, T time, W cache slots, H heads, D head size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

NEG = -1e9


class Attention(nnx.Module):
    def __init__(self, d_model: int, heads: int, *, rngs: nnx.Rngs):
        self.heads, self.head_dim = heads, d_model // heads
        self.qkv = nnx.Linear(d_model, 3 * d_model, use_bias=False, rngs=rngs)
        self.out = nnx.Linear(d_model, d_model, use_bias=False, rngs=rngs)
        self.sink_k = nnx.Param(jnp.zeros((heads, self.head_dim)))
        self.sink_v = nnx.Param(jnp.zeros((heads, self.head_dim)))

    def _split(self, x):
        q, k, v = jnp.split(self.qkv(x), 3, axis=-1)
        shape = x.shape[:-1] + (self.heads, self.head_dim)
        return q.reshape(shape), k.reshape(shape), v.reshape(shape)

    def _attend(self, q, k, v, mask):
        """q [B,T,H,D], k/v [B,S,H,D], mask [T,S] or [B,T,S] (True = visible)."""
        scale = self.head_dim ** -0.5
        logits = jnp.einsum("bthd,bshd->bhts", q, k) * scale
        logits = jnp.where(mask[..., None, :, :] if mask.ndim == 3 else mask, logits, NEG)
        sink = jnp.einsum("bthd,hd->bht", q, self.sink_k[...]) * scale
        full = jnp.concatenate([sink[..., None], logits], axis=-1)
        p = jax.nn.softmax(full, axis=-1)
        out = jnp.einsum("bhts,bshd->bthd", p[..., 1:], v) + jnp.einsum(
            "bht,hd->bthd", p[..., 0], self.sink_v[...])
        return self.out(out.reshape(out.shape[:-2] + (-1,)))

    def seq(self, x, mask):
        """Whole sequence x [B,T,d] with a [T,T] visibility mask."""
        q, k, v = self._split(x)
        return self._attend(q, k, v, mask)

    def step(self, x, cache, slot, valid):
        """One position x [B,d]; cache (k, v) [B,W,H,D]; writes slot, attends to ``valid`` [W]."""
        q, k, v = self._split(x[:, None])
        ck = jax.lax.dynamic_update_slice_in_dim(cache[0], k, slot, axis=1)
        cv = jax.lax.dynamic_update_slice_in_dim(cache[1], v, slot, axis=1)
        out = self._attend(q, ck, cv, valid[None, :])
        return out[:, 0], (ck, cv)


class Block(nnx.Module):
    """Pre-norm transformer layer with a non-gated GELU MLP (as Magenta RT 2)."""

    def __init__(self, d_model: int, heads: int, ffn: int, *, rngs: nnx.Rngs):
        self.norm1 = nnx.RMSNorm(d_model, rngs=rngs)
        self.attn = Attention(d_model, heads, rngs=rngs)
        self.norm2 = nnx.RMSNorm(d_model, rngs=rngs)
        self.up = nnx.Linear(d_model, ffn, rngs=rngs)
        self.down = nnx.Linear(ffn, d_model, rngs=rngs)

    def _mlp(self, x):
        return self.down(jax.nn.gelu(self.up(self.norm2(x))))

    def seq(self, x, mask):
        x = x + self.attn.seq(self.norm1(x), mask)
        return x + self._mlp(x)

    def step(self, x, cache, slot, valid):
        h, cache = self.attn.step(self.norm1(x), cache, slot, valid)
        x = x + h
        return x + self._mlp(x), cache


class Stack(nnx.Module):
    def __init__(self, d_model: int, heads: int, ffn: int, layers: int, *, rngs: nnx.Rngs):
        self.blocks = nnx.List([Block(d_model, heads, ffn, rngs=rngs) for _ in range(layers)])
        self.norm = nnx.RMSNorm(d_model, rngs=rngs)
        self.heads, self.head_dim = heads, d_model // heads

    def seq(self, x, mask):
        for block in self.blocks:
            x = block.seq(x, mask)
        return self.norm(x)

    def step(self, x, caches, slot, valid):
        """caches: tuple of per-layer (k, v); per-layer arrays are much faster than one stack."""
        new = []
        for block, cache in zip(self.blocks, caches):
            x, cache = block.step(x, cache, slot, valid)
            new.append(cache)
        return self.norm(x), tuple(new)

    def empty_cache(self, batch: int, slots: int):
        shape = (batch, slots, self.heads, self.head_dim)
        return tuple((jnp.zeros(shape), jnp.zeros(shape)) for _ in self.blocks)


def window_mask(t: int, window: int):
    """[T,T] causal mask limited to the last ``window`` positions (the ring buffer's view)."""
    i = jnp.arange(t)[:, None]
    j = jnp.arange(t)[None, :]
    return (j <= i) & (j > i - window)
