"""The blocks of MRT2's transformers, one streaming step at a time, with fixed-size KV caches.

Why our own and not :mod:`generator.core.layers`: the official weights fix the arithmetic. MRT2
(``sequence_layers`` as configured by ``magenta_rt.jax.transformer``) uses per-head projection tensors
``[d, heads, head_dim]``, a learned per-dimension query scale (``1.442695041 / sqrt(head_dim) *
softplus(per_dim_scale)``), one attention-sink key/value whose logit is the *unscaled* query times the
sink key, RMS norms both before and after each sub-layer ("primer hybrid"), and a biased tanh-GELU FFN.
Each of these changes the numbers, so each is written out here exactly.

Caches are ring buffers of ``W`` slots: a step writes its key/value at ``slot`` and attends to every
valid slot. Order inside the buffer does not matter because MRT2 has no positional encoding (NoPE),
so a frame costs the same forever and nothing is ever shifted.

Shapes: B batch, W cache slots, N heads, H head size, D model width, S source width.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

INVALID_LOGIT = -1e9          # sequence_layers' _INVALID_LOGIT_VALUE
R_SOFTPLUS_0 = 1.442695041    # 1 / softplus(0): per_dim_scale = 0 means plain 1/sqrt(H)


def zeros_param(*shape):
    """Zero placeholders: every parameter is overwritten by the checkpoint (or the package's initialiser)."""
    return nnx.Param(jnp.zeros(shape, jnp.float32))


def rms_norm(x, scale, eps=1e-6):
    """RMS norm computed in float32 whatever the activations' dtype."""
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + eps)
    return (y * scale.astype(jnp.float32)).astype(x.dtype)


def layer_norm(x, scale, bias, eps=1e-6):
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(var + eps)
    return (y * scale.astype(jnp.float32) + bias.astype(jnp.float32)).astype(x.dtype)


class Attention(nnx.Module):
    """One residual attention sub-layer (pre norm, attention, output projection, post norm).

    Self-attention passes the normed input as its own source; cross-attention passes the
    conditioning frame (its keys are projected from the un-normed source, as in the package).
    """

    def __init__(self, dim: int, source_dim: int, heads: int, head_dim: int, *, sinks: int):
        self.pre_norm, self.post_norm = zeros_param(dim), zeros_param(dim)
        self.query, self.out = zeros_param(dim, heads, head_dim), zeros_param(dim, heads, head_dim)
        self.key, self.value = zeros_param(source_dim, heads, head_dim), zeros_param(source_dim, heads, head_dim)
        self.per_dim_scale = zeros_param(head_dim)
        self.sinks = sinks
        if sinks:
            self.sink_key, self.sink_value = zeros_param(sinks, heads, head_dim), zeros_param(sinks, heads, head_dim)

    def empty_cache(self, batch: int, slots: int, dtype) -> dict:
        n, h = self.key.shape[1:]
        zeros = jnp.zeros((batch, slots, n, h), dtype)
        return {"k": zeros, "v": zeros, "valid": jnp.zeros((slots,), bool)}

    def __call__(self, x, cache: dict, slot, source=None):
        """x [B, D]; source [B, S] (None: self-attention). Returns (x + attention, cache)."""
        dt = x.dtype
        h = rms_norm(x, self.pre_norm[...])
        src = h if source is None else source.astype(dt)
        q = jnp.einsum("bd,dnh->bnh", h, self.query[...].astype(dt))
        k = jnp.einsum("bs,snh->bnh", src, self.key[...].astype(dt))
        v = jnp.einsum("bs,snh->bnh", src, self.value[...].astype(dt))
        cache = {"k": cache["k"].at[:, slot].set(k), "v": cache["v"].at[:, slot].set(v),
                 "valid": cache["valid"].at[slot].set(True)}
        scale = (R_SOFTPLUS_0 / jnp.sqrt(q.shape[-1])) * jax.nn.softplus(self.per_dim_scale[...].astype(dt))
        logits = jnp.einsum("bnh,bwnh->bnw", q * scale.astype(dt), cache["k"]).astype(jnp.float32)
        logits = jnp.where(cache["valid"], logits, INVALID_LOGIT)
        values = cache["v"]
        if self.sinks:
            sink = jnp.einsum("bnh,snh->bns", q, self.sink_key[...].astype(dt)).astype(jnp.float32)
            logits = jnp.concatenate([sink, logits], axis=-1)
            sink_v = jnp.broadcast_to(self.sink_value[...].astype(dt)[None], (x.shape[0],) + self.sink_value.shape)
            values = jnp.concatenate([sink_v, values], axis=1)
        p = jax.nn.softmax(logits, axis=-1).astype(dt)
        ctx = jnp.einsum("bnw,bwnh->bnh", p, values)
        y = jnp.einsum("bnh,dnh->bd", ctx, self.out[...].astype(dt))
        return x + rms_norm(y, self.post_norm[...]), cache


class FeedForward(nnx.Module):
    """Residual pre/post-normed FFN with biases and tanh-approximated GELU (``jax.nn.gelu``'s default)."""

    def __init__(self, dim: int, hidden: int):
        self.pre_norm, self.post_norm = zeros_param(dim), zeros_param(dim)
        self.w1, self.b1 = zeros_param(dim, hidden), zeros_param(hidden)
        self.w2, self.b2 = zeros_param(hidden, dim), zeros_param(dim)

    def __call__(self, x):
        dt = x.dtype
        h = rms_norm(x, self.pre_norm[...])
        h = jax.nn.gelu(h @ self.w1[...].astype(dt) + self.b1[...].astype(dt))
        y = h @ self.w2[...].astype(dt) + self.b2[...].astype(dt)
        return x + rms_norm(y, self.post_norm[...])


class Block(nnx.Module):
    def __init__(self, dim: int, ffn: int, heads: int, head_dim: int, *, source_dim: int | None, sinks: int):
        self.self_attn = Attention(dim, dim, heads, head_dim, sinks=sinks)
        self.cross_attn = (Attention(dim, source_dim, heads, head_dim, sinks=sinks)
                           if source_dim is not None else None)
        self.ffn = FeedForward(dim, ffn)


class Transformer(nnx.Module):
    """A stack of blocks stepped one position at a time; its cache is a list of per-block dicts."""

    def __init__(self, dim: int, ffn: int, heads: int, head_dim: int, layers: int, *,
                 source_dim: int | None = None, sinks: int = 0):
        self.blocks = nnx.List([Block(dim, ffn, heads, head_dim, source_dim=source_dim, sinks=sinks)
                                for _ in range(layers)])

    def empty_cache(self, batch: int, slots: int, dtype) -> list:
        out = []
        for b in self.blocks:
            c = {"self": b.self_attn.empty_cache(batch, slots, dtype)}
            if b.cross_attn is not None:
                c["cross"] = b.cross_attn.empty_cache(batch, slots, dtype)
            out.append(c)
        return out

    def step(self, x, cache: list, slot, source=None):
        new = []
        for b, c in zip(self.blocks, cache):
            x, cs = b.self_attn(x, c["self"], slot)
            c = dict(c, self=cs)
            if b.cross_attn is not None:
                x, cc = b.cross_attn(x, c["cross"], slot, source)
                c["cross"] = cc
            x = b.ffn(x)
            new.append(c)
        return x, new
