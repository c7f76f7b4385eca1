"""The one transformer block every family uses: pre-norm attention + GELU MLP, with a streaming step.

Why one block: the audio family's temporal and depth stacks (:mod:`generator.audio.lm`) and the
symbolic Music Transformer (:mod:`generator.symbolic.model`) need the same two entry points, a
whole-sequence pass for teacher-forced training and a one-position step that reads and writes a
ring-buffer KV cache for streaming, and the two must agree exactly. The families differ only in two
switches, both chosen at construction or per call:

- ``sink``: one learned attention-sink key/value per head, so a head can attend to "nothing"
  (the audio family, NoPE attention as in Magenta RT 2);
- ``rope``: rotary angles ``(cos, sin)`` passed per call (the symbolic family's exactly periodic
  RoPE); keys are rotated once when written, so the cache never re-rotates.

Variable names (``norm1``, ``attn/qkv``, ``attn/out``, ``attn/sink_k``, ``norm2``, ``up``, ``down``)
are the checkpoints' tensor names: renaming one breaks every shipped model.

Shapes: B batch, T time, S attended positions, W cache slots, H heads, D head size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

NEG = -1e9


def rotate(x, cos, sin):
    """Rotate pairs (first half, second half) of x [..., D] by angles whose cos/sin broadcast to [..., D/2]."""
    a, b = jnp.split(x, 2, axis=-1)
    return jnp.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)


class Attention(nnx.Module):
    def __init__(self, d_model: int, heads: int, *, sink: bool = False, rngs: nnx.Rngs):
        self.heads, self.head_dim = heads, d_model // heads
        self.qkv = nnx.Linear(d_model, 3 * d_model, use_bias=False, rngs=rngs)
        self.out = nnx.Linear(d_model, d_model, use_bias=False, rngs=rngs)
        self.sink = sink
        if sink:
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
        if not self.sink:
            out = jnp.einsum("bhts,bshd->bthd", jax.nn.softmax(logits, axis=-1), v)
            return self.out(out.reshape(out.shape[:-2] + (-1,)))
        sink = jnp.einsum("bthd,hd->bht", q, self.sink_k[...]) * scale
        full = jnp.concatenate([sink[..., None], logits], axis=-1)
        p = jax.nn.softmax(full, axis=-1)
        out = jnp.einsum("bhts,bshd->bthd", p[..., 1:], v) + jnp.einsum(
            "bht,hd->bthd", p[..., 0], self.sink_v[...])
        return self.out(out.reshape(out.shape[:-2] + (-1,)))

    def seq(self, x, mask, rope=None):
        """Whole sequence x [B,T,d] with a [T,T] visibility mask; rope: (cos, sin) [T, D/2] or None."""
        q, k, v = self._split(x)
        if rope is not None:
            cos, sin = rope[0][:, None], rope[1][:, None]
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        return self._attend(q, k, v, mask)

    def step(self, x, cache, slot, valid, rope=None):
        """One position x [B,d]; cache (k, v) [B,H,W,D] (heads-major, the layout the attention products read, so
        XLA does not transpose the whole cache every step); writes ``slot``, attends to ``valid`` [W].
        rope: (cos, sin) [D/2] of this position, or None."""
        q, k, v = self._split(x[:, None])
        if rope is not None:
            q, k = rotate(q, *rope), rotate(k, *rope)
        ck = jax.lax.dynamic_update_slice_in_dim(cache[0], k.transpose(0, 2, 1, 3), slot, axis=2)
        cv = jax.lax.dynamic_update_slice_in_dim(cache[1], v.transpose(0, 2, 1, 3), slot, axis=2)
        out = self._attend_cache(q[:, 0], ck, cv, valid)
        return out, (ck, cv)

    def prefill(self, x, cache, slots, mask, rope=None):
        """Several positions at once: x [B,P,d] attends to the cache (as it was) and to itself under ``mask``
        [P, W+P] (True = visible); writes row ``i`` to cache slot ``slots[i]`` (``W`` or more: not written).
        rope: (cos, sin) [P, D/2] of these positions, or None."""
        q, k, v = self._split(x)
        if rope is not None:
            cos, sin = rope[0][:, None], rope[1][:, None]
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        # the whole-sequence attention over [cache as it was, new rows]: once per call, so the cache's transpose
        # costs nothing measurable here (a 16-row pass took 7.1 ms either way at window 512), unlike in the
        # per-token step
        keys = jnp.concatenate([cache[0].transpose(0, 2, 1, 3), k], axis=1)
        values = jnp.concatenate([cache[1].transpose(0, 2, 1, 3), v], axis=1)
        out = self._attend(q, keys, values, mask)
        ck = cache[0].at[:, :, slots].set(k.transpose(0, 2, 1, 3), mode="drop")
        cv = cache[1].at[:, :, slots].set(v.transpose(0, 2, 1, 3), mode="drop")
        return out, (ck, cv)

    def _attend_cache(self, q, k, v, valid):
        """One query q [B,H,D] over a heads-major cache k/v [B,H,W,D], ``valid`` [W] (True = visible)."""
        scale = self.head_dim ** -0.5
        logits = jnp.where(valid, jnp.einsum("bhd,bhsd->bhs", q, k) * scale, NEG)
        if not self.sink:
            out = jnp.einsum("bhs,bhsd->bhd", jax.nn.softmax(logits, axis=-1), v)
        else:
            sink = jnp.einsum("bhd,hd->bh", q, self.sink_k[...]) * scale
            p = jax.nn.softmax(jnp.concatenate([sink[..., None], logits], axis=-1), axis=-1)
            out = jnp.einsum("bhs,bhsd->bhd", p[..., 1:], v) + p[..., 0, None] * self.sink_v[...]
        return self.out(out.reshape(out.shape[0], -1))


class Block(nnx.Module):
    """Pre-norm transformer layer with a non-gated GELU MLP (as Magenta RT 2)."""

    def __init__(self, d_model: int, heads: int, ffn: int, *, sink: bool = False, rngs: nnx.Rngs):
        self.norm1 = nnx.RMSNorm(d_model, rngs=rngs)
        self.attn = Attention(d_model, heads, sink=sink, rngs=rngs)
        self.norm2 = nnx.RMSNorm(d_model, rngs=rngs)
        self.up = nnx.Linear(d_model, ffn, rngs=rngs)
        self.down = nnx.Linear(ffn, d_model, rngs=rngs)

    def _mlp(self, x):
        return self.down(jax.nn.gelu(self.up(self.norm2(x))))

    def seq(self, x, mask, rope=None):
        x = x + self.attn.seq(self.norm1(x), mask, rope)
        return x + self._mlp(x)

    def step(self, x, cache, slot, valid, rope=None):
        h, cache = self.attn.step(self.norm1(x), cache, slot, valid, rope)
        x = x + h
        return x + self._mlp(x), cache

    def prefill(self, x, cache, slots, mask, rope=None):
        h, cache = self.attn.prefill(self.norm1(x), cache, slots, mask, rope)
        x = x + h
        return x + self._mlp(x), cache


class Stack(nnx.Module):
    """``layers`` blocks and a final norm (the audio family's temporal and depth stacks use sinks)."""

    def __init__(self, d_model: int, heads: int, ffn: int, layers: int, *, sink: bool = True, rngs: nnx.Rngs):
        self.blocks = nnx.List([Block(d_model, heads, ffn, sink=sink, rngs=rngs) for _ in range(layers)])
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
        shape = (batch, self.heads, slots, self.head_dim)  # heads-major: see Attention.step
        return tuple((jnp.zeros(shape), jnp.zeros(shape)) for _ in self.blocks)


def window_mask(t: int, window: int):
    """[T,T] causal mask limited to the last ``window`` positions (the ring buffer's view)."""
    i = jnp.arange(t)[:, None]
    j = jnp.arange(t)[None, :]
    return (j <= i) & (j > i - window)
