"""The symbolic family's model: the core's event transformer over performance tokens, and its sampler.

The network, its positions and its guided sampling are :mod:`generator.core.event_lm`'s (shared with the
groove family). What is symbolic here: the vocabulary (:mod:`generator.symbolic.tokens`), the presets, and
the sampler's grammar: no PAD/BOS, and no NOTE_ON of a pitch the current part already struck at the current
time step (without it a small model can loop on one note without ever advancing time). The prompt heads'
biases enter the sampler here (PART tokens; melodic NOTE_ONs).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from generator.core import sampling
from generator.core.event_lm import (  # noqa: F401  (re-exported)
    PLAUSIBILITY, EventLMConfig, EventTransformer, param_count, rope_angles)
from generator.symbolic import tokens as tok

NEG = -1e9


@dataclasses.dataclass(frozen=True, kw_only=True)
class SymbolicConfig(EventLMConfig):
    name: str = "symbolic"
    vocab: int = tok.VOCAB


PRESETS = {
    "symbolic": SymbolicConfig(),
    "symbolic-tiny": SymbolicConfig(name="symbolic-tiny", d_model=64, layers=2, heads=2, ffn=128, window=64),
}


MusicTransformer = EventTransformer  # the symbolic family's name for the shared network


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

    key, noise = sampling.chunk_noise(state["key"], length, model.cfg.vocab)

    def body(s, gumbel):
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
        t = sampling.sample_with_noise(gumbel, mixed, temperature, top_k)
        part = jnp.where((t >= tok.PART0) & (t < tok.VEL0), t - tok.PART0, s["part"]).astype(jnp.int32)
        return dict(s, cache=cache, token=t, struck=update_struck(s["struck"], t), part=part), t

    state, toks = jax.lax.scan(body, state, noise)
    return toks, dict(state, key=key)
