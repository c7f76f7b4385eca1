"""A prompt-conditioned decoder-only transformer over event tokens, with a streaming step.

Why in the core: both note families (``symbolic``: time-shift events; ``groove``: beat-grid events) are the
same machine over different vocabularies, so they share its layers, its positions and its guided sampling:

- **Relative positions by RoPE with integer, periodic frequencies.** Each rotary frequency is
  ``2*pi*m_i / 65536`` for an integer ``m_i`` (the nearest to the usual ``base**(-2i/D)``), and
  angles are computed as ``(pos * m_i) mod 65536`` in integer arithmetic. Rotations are therefore
  exactly periodic in the position, so the streaming ring-buffer cache stores keys rotated once
  when written and positions may wrap forever: hours of streaming lose no precision, nothing is
  re-rotated per step, and the cost per token is constant.
- **Style conditioning is additive at the input of every position**: ``h0 = embed(token) + cond``
  with ``cond = proj(style)`` for a 384-d MiniLM sentence vector (the blended prompt embedding) or a
  learned ``null`` vector when the prompt is absent or dropped (conditioning dropout at training). A
  prefix token would fall out of the sliding window; an additive condition is present at every step,
  so a style change acts on the very next token.
- **CFG runs as batch 2** (row 0 conditional, row 1 unconditional, separate caches) on
  log-probabilities, ``uncond + w * (cond - uncond)``, with a plausibility floor
  (:func:`guided_logits`): extrapolating (w > 1) an event LM degenerates into streams of implausible
  tokens, so tokens whose *conditional* probability is below ``alpha * p_max`` are excluded, with
  ``alpha`` rising from 0 at w = 1 (plain conditional sampling, exactly) to ``PLAUSIBILITY`` at
  |w - 1| >= 1 (as in contrastive decoding, Li et al. 2023).

Shapes: B batch, T time, W cache slots, H heads, D head size, V vocabulary.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from generator.core import sampling
from generator.core.layers import Block

NEG = -1e9
PLAUSIBILITY = 0.1  # CFG plausibility floor
ROPE_PERIOD = 1 << 16  # positions wrap here; a multiple of every power-of-two window


@dataclasses.dataclass(frozen=True, kw_only=True)
class EventLMConfig:
    """Shape of an :class:`EventTransformer`; families subclass it with their own name and vocabulary."""

    name: str
    vocab: int
    d_model: int = 192
    layers: int = 4
    heads: int = 4
    ffn: int = 768
    window: int = 256  # KV-cache slots at generation = training sequence length
    style_dim: int = 384  # MiniLM sentence vectors
    cond_dropout: float = 0.15
    rope_base: float = 10_000.0
    seed: int = 0

    def __post_init__(self):
        if self.window & (self.window - 1) or self.window > ROPE_PERIOD:
            raise ValueError(f"window must be a power of two <= {ROPE_PERIOD}, got {self.window}")
        if self.d_model % self.heads or (self.d_model // self.heads) % 2:
            raise ValueError("d_model / heads must be an even integer")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys {sorted(unknown)}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def rope_freqs(head_dim: int, base: float) -> np.ndarray:
    """Integer multipliers m_i of ``2*pi / ROPE_PERIOD`` nearest to RoPE's ``base**(-2i/D)``."""
    theta = base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    return np.maximum(1, np.round(theta * ROPE_PERIOD / (2 * np.pi))).astype(np.int32)


def rope_angles(positions, head_dim: int, base: float):
    """positions [...] (int, any size: wrapped) -> cos, sin [..., head_dim // 2], exactly periodic."""
    m = jnp.asarray(rope_freqs(head_dim, base))
    phase = ((positions.astype(jnp.int32) % ROPE_PERIOD)[..., None] * m) % ROPE_PERIOD
    ang = phase.astype(jnp.float32) * (2 * np.pi / ROPE_PERIOD)
    return jnp.cos(ang), jnp.sin(ang)


class EventTransformer(nnx.Module):
    """Decoder-only transformer over event tokens, conditioned additively on a prompt vector, with a
    streaming step (see the module docstring). ``cfg`` is any :class:`EventLMConfig`."""

    def __init__(self, cfg: "EventLMConfig", *, rngs: nnx.Rngs):
        self.cfg = cfg
        d = cfg.d_model
        self.embed = nnx.Embed(cfg.vocab, d, rngs=rngs)
        self.style_proj = nnx.Linear(cfg.style_dim, d, rngs=rngs)
        self.null_style = nnx.Param(jnp.zeros((d,)))
        self.blocks = nnx.List([Block(d, cfg.heads, cfg.ffn, rngs=rngs) for _ in range(cfg.layers)])
        self.norm = nnx.RMSNorm(d, rngs=rngs)
        self.head = nnx.Linear(d, cfg.vocab, rngs=rngs)

    @property
    def head_dim(self) -> int:
        return self.cfg.d_model // self.cfg.heads

    def condition(self, style, use_style):
        """style [B, 384] float, use_style [B] bool -> [B, d]."""
        return jnp.where(use_style[:, None], self.style_proj(style), self.null_style[...][None])

    def __call__(self, tokens, style, use_style):
        """Teacher-forced logits [B,T,V] for tokens [B,T] (T <= window)."""
        t = tokens.shape[1]
        x = self.embed(tokens) + self.condition(style, use_style)[:, None]
        cos, sin = rope_angles(jnp.arange(t), self.head_dim, self.cfg.rope_base)
        i, j = jnp.arange(t)[:, None], jnp.arange(t)[None, :]
        mask = (j <= i) & (j > i - self.cfg.window)
        for block in self.blocks:
            x = block.seq(x, mask, (cos, sin))
        return self.head(self.norm(x))

    # ---- streaming -----------------------------------------------------------------------
    def init_cache(self, batch: int = 2):
        shape = (batch, self.cfg.heads, self.cfg.window, self.head_dim)  # heads-major: see Attention.step
        kv = tuple((jnp.zeros(shape), jnp.zeros(shape)) for _ in self.blocks)
        return {"kv": kv, "filled": jnp.zeros((self.cfg.window,), bool), "pos": jnp.int32(0)}

    def step(self, cache, token, cond):
        """Feed token [B] at position ``cache['pos']`` -> (logits [B,V], new cache). cond [B,d]."""
        pos = cache["pos"]
        slot = pos % self.cfg.window  # ROPE_PERIOD is a multiple of any power-of-two window
        filled = cache["filled"].at[slot].set(True)
        cos, sin = rope_angles(pos, self.head_dim, self.cfg.rope_base)
        x = self.embed(token) + cond
        kv = []
        for block, c in zip(self.blocks, cache["kv"]):
            x, c = block.step(x, c, slot, filled, (cos, sin))
            kv.append(c)
        logits = self.head(self.norm(x))
        return logits, {"kv": tuple(kv), "filled": filled, "pos": (pos + 1) % ROPE_PERIOD}

    def prefill(self, cache, tokens, n, cond):
        """Feed ``tokens[:, :n]`` ([B,P], ``n`` traced, 0..P) at positions ``cache['pos']``... in one pass -> the
        cache exactly as ``n`` :meth:`step` calls leave it (their logits are not needed: the tokens are known).

        Why: a repeated bar feeds a whole scripted bar (:func:`generator.groove.model.feed_tokens`); one pass
        reads the weights once for all of its tokens instead of once per token. Query ``i`` (position ``pos + i``) sees the new
        rows ``j <= i`` and the cache slots that still hold one of the ``W - 1 - i`` positions before it: slot
        ``s`` holds position ``pos - W + r`` with ``r = (s - pos) mod W``, visible when ``r > i``; rows past
        ``n`` are computed but neither written nor visible to the real rows."""
        w, p = self.cfg.window, tokens.shape[1]
        pos = cache["pos"]
        rows = jnp.arange(p)
        slots = jnp.where(rows < n, (pos + rows) % w, w)  # w: dropped by the scatter
        r = (jnp.arange(w) - pos) % w
        old = cache["filled"][None, :] & (r[None, :] > rows[:, None])
        mask = jnp.concatenate([old, rows[None, :] <= rows[:, None]], axis=1)
        x = self.embed(tokens) + cond[:, None]
        rope = rope_angles(pos + rows, self.head_dim, self.cfg.rope_base)
        kv = []
        for block, c in zip(self.blocks, cache["kv"]):
            x, c = block.prefill(x, c, slots, mask, rope)
            kv.append(c)
        filled = cache["filled"].at[slots].set(True, mode="drop")
        return {"kv": tuple(kv), "filled": filled, "pos": (pos + n) % ROPE_PERIOD}


def guided_logits(logp, allowed, guidance):
    """CFG over batch-2 log-probabilities ``logp`` [2, V] with the plausibility floor; tokens outside
    ``allowed`` [V] (a grammar) get ``NEG``. The floor is relative to the best allowed token, so one
    always survives."""
    log_alpha = jnp.log(jnp.maximum(PLAUSIBILITY * jnp.minimum(1.0, jnp.abs(guidance - 1.0)), 1e-30))
    mixed = sampling.cfg(logp[0], logp[1], guidance)
    valid = jnp.where(allowed, logp[0], NEG)
    mixed = jnp.where(valid >= valid.max() + log_alpha, mixed, NEG)
    return jnp.where(allowed, mixed, NEG)


def param_count(model: nnx.Module) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param))))
