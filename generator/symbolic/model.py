"""Decoder-only Music Transformer over performance tokens, style-conditioned, with a streaming step.

Why these choices:

- **Relative positions by RoPE with integer, periodic frequencies.** Each rotary frequency is
  ``2*pi*m_i / 65536`` for an integer ``m_i`` (the nearest to the usual ``base**(-2i/D)``), and
  angles are computed as ``(pos * m_i) mod 65536`` in integer arithmetic. Rotations are therefore
  exactly periodic in the position, so the streaming ring-buffer cache stores keys rotated once
  when written and positions may wrap forever: hours of streaming lose no precision, nothing is
  re-rotated per step, and the cost per token is constant.
- **Style conditioning is additive at the input of every position**: ``h0 = embed(token) +
  cond`` with ``cond = proj(style)`` for a 384-d MiniLM sentence vector (the blended prompt
  embedding) or a learned ``null`` vector when the prompt is absent or dropped (conditioning
  dropout at training). A prefix token would fall out of the sliding window; an additive
  condition is present at every step, so a style change acts on the very next token.
- **CFG runs as batch 2** (row 0 conditional, row 1 unconditional, separate caches) on
  log-probabilities, ``uncond + w * (cond - uncond)`` exactly as the audio model, and every control
  (style vector, its presence flag, guidance, temperature, top-k) is a traced array, so changing a
  control never recompiles. Extrapolating (w > 1) an event LM degenerates into streams of
  implausible tokens (e.g. one drum note re-struck with no time shift), so tokens whose
  *conditional* probability is below ``alpha * p_max`` are excluded, with ``alpha`` rising from 0 at
  w = 1 (plain conditional sampling, exactly) to ``PLAUSIBILITY`` at |w - 1| >= 1.

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
from generator.symbolic import tokens as tok

NEG = -1e9
PLAUSIBILITY = 0.1  # CFG plausibility floor (as in contrastive decoding, Li et al. 2023)
ROPE_PERIOD = 1 << 16  # positions wrap here; a multiple of every power-of-two window


@dataclasses.dataclass(frozen=True, kw_only=True)
class SymbolicConfig:
    name: str = "symbolic"
    vocab: int = tok.VOCAB
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
    def from_dict(cls, d: dict[str, Any]) -> "SymbolicConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown symbolic config keys {sorted(unknown)}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


PRESETS = {
    "symbolic": SymbolicConfig(),
    "symbolic-tiny": SymbolicConfig(name="symbolic-tiny", d_model=64, layers=2, heads=2, ffn=128, window=64),
}


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


class MusicTransformer(nnx.Module):
    def __init__(self, cfg: SymbolicConfig, *, rngs: nnx.Rngs):
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
        shape = (batch, self.cfg.window, self.cfg.heads, self.head_dim)
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


def grammar_mask(logits, struck):
    """Exclude what no valid token stream contains: PAD/BOS, and a NOTE_ON of a pitch the current
    part already struck at the current time step (``struck`` [128] bool). Without the second rule
    a small model can loop on one note without ever advancing time."""
    logits = logits.at[..., jnp.array([tok.PAD, tok.BOS])].set(NEG)
    on = logits[..., tok.ON0:tok.OFF0]
    return logits.at[..., tok.ON0:tok.OFF0].set(jnp.where(struck, NEG, on))


def update_struck(struck, token):
    """Pitches struck at the current step by the current part, after ``token``."""
    reset = (token >= tok.SHIFT0) | ((token >= tok.PART0) & (token < tok.VEL0))
    hit = (token >= tok.ON0) & (token < tok.OFF0) & (jnp.arange(128) == token - tok.ON0)
    return jnp.where(reset, False, struck | hit)


def init_sampler(model: "MusicTransformer", seed_key):
    """A fresh sampler state (batch-2 cache, BOS as the last token, part 0 current)."""
    return {"cache": model.init_cache(2), "token": jnp.int32(tok.BOS), "key": seed_key,
            "struck": jnp.zeros((128,), bool), "part": jnp.int32(0)}


def sample_chunk(model: MusicTransformer, state, style, has_style, guidance, temperature, top_k,
                 length: int, part_bias=None, pitch_bias=None):
    """Sample ``length`` tokens with CFG; everything but ``length`` is traced.

    state: see :func:`init_sampler` (cache, last token, PRNG key, pitches struck at this step, part).
    style [384] float32; has_style bool (False = both rows unconditional).
    part_bias [VOCAB] float32 or None: added to both rows' logits before CFG (the prompt's
    arrangement, :mod:`generator.symbolic.arrangement`; -1e9 bans a PART token).
    pitch_bias [128] float32 or None: added to the NOTE_ON logits while a melodic part is current
    (never the drum kit's; the prompt's key, :mod:`generator.symbolic.pitch`).
    Returns (tokens [length] int32, new state).
    """
    styles = jnp.stack([style, style])
    use = jnp.stack([has_style, jnp.bool_(False)])
    cond = model.condition(styles, use)

    # plausibility floor: with guidance w != 1 only tokens the conditional model itself finds
    # plausible (p >= alpha * p_max) survive; alpha grows from 0 at w = 1 to PLAUSIBILITY at |w-1| >= 1
    log_alpha = jnp.log(jnp.maximum(PLAUSIBILITY * jnp.minimum(1.0, jnp.abs(guidance - 1.0)), 1e-30))

    def body(s, _):
        logits, cache = model.step(s["cache"], jnp.stack([s["token"], s["token"]]), cond)
        if part_bias is not None:
            logits = logits + part_bias
        if pitch_bias is not None:
            melodic = s["part"] != tok.DRUM_PART
            logits = logits.at[..., tok.ON0:tok.OFF0].add(jnp.where(melodic, pitch_bias, 0.0))
        logp = jax.nn.log_softmax(logits, axis=-1)
        mixed = sampling.cfg(logp[0], logp[1], guidance)
        valid = grammar_mask(logp[0], s["struck"])  # the floor is relative to the best valid token,
        mixed = jnp.where(valid >= valid.max() + log_alpha, mixed, NEG)  # so one always survives
        mixed = grammar_mask(mixed, s["struck"])
        key, sub = jax.random.split(s["key"])
        t = sampling.sample(sub, mixed, temperature, top_k)
        part = jnp.where((t >= tok.PART0) & (t < tok.VEL0), t - tok.PART0, s["part"]).astype(jnp.int32)
        return {"cache": cache, "token": t, "key": key, "struck": update_struck(s["struck"], t), "part": part}, t

    state, toks = jax.lax.scan(body, state, None, length=length)
    return toks, state


def param_count(model: nnx.Module) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param))))
