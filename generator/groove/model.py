"""The groove family's model: the core's event transformer over beat-grid tokens, and its sampler.

The network, its positions and its guided sampling are :mod:`generator.core.event_lm`'s (shared with the
``symbolic`` family). What is groove here is the grammar the sampler enforces
(:mod:`generator.groove.tokens`): it tracks five integers (the last token's kind, the bar length, the
position, the part and the pitch) and masks every token that would break the bar/position/note order, so
the stream stays on the grid whatever the model's weights, and a note always gets its duration.

Shapes: V vocabulary; the sampler state is a pytree of arrays (donated between chunks).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from generator.core import sampling
from generator.core.event_lm import EventLMConfig, EventTransformer, guided_logits
from generator.groove import tokens as G

GrooveTransformer = EventTransformer  # the groove family's name for the shared network


@dataclasses.dataclass(frozen=True, kw_only=True)
class GrooveConfig(EventLMConfig):
    name: str = "groove"
    vocab: int = G.VOCAB
    # 1-4 bars of a band. The shipped model trained at 256, continued at 512 (--init-from, --window 512: 512 from
    # the start halves training throughput on 2 CPU cores, 2.4k vs 5.0k tokens/s) and *runs* at 256 (its
    # config.json): the same musicality on real-music measures, and at 512 the KV caches (6.3 MB) no longer stay in
    # this VM's cache with the weights, so a token costs 28-45 % more (bench/sampler_speed.py)
    window: int = 256


PRESETS = {
    "groove": GrooveConfig(),
    "groove-tiny": GrooveConfig(name="groove-tiny", d_model=64, layers=2, heads=2, ffn=128, window=64),
}

_KIND = jnp.asarray(G.KIND)
_VALUE = jnp.asarray(G.VALUE)
_TS_TICKS = jnp.asarray(G.TS_TICKS)


def grammar_init():
    """[last kind, bar length, position, part, pitch] before the first token (after BOS)."""
    return jnp.asarray([G.K_BOS, 0, -1, -1, -1], jnp.int32)


def grammar_allowed(gram):
    """Boolean mask [V] of the tokens that may follow grammar state ``gram`` (see :func:`grammar_init`)."""
    state = G.GrammarState(gram[0], gram[1], gram[2], gram[3], gram[4])
    return G.allowed(state, _KIND, _VALUE, _TS_TICKS, xp=jnp)


def grammar_advance(gram, token):
    """The grammar state after ``token`` (mirrors :func:`generator.groove.tokens.advance`)."""
    k, v = _KIND[token], _VALUE[token]
    reset_pos = (k == G.K_BAR) | (k == G.K_TS)
    reset_part = reset_pos | (k == G.K_POS)
    reset_pitch = reset_part | (k == G.K_PART)
    bar_len = jnp.where(k == G.K_TS, _TS_TICKS[jnp.clip(v, 0, len(G.TIME_SIGNATURES) - 1)], gram[1])
    pos = jnp.where(reset_pos, -1, jnp.where(k == G.K_POS, v, gram[2]))
    part = jnp.where(reset_part, -1, jnp.where(k == G.K_PART, v, gram[3]))
    pitch = jnp.where(reset_pitch, -1, jnp.where(k == G.K_PITCH, v, gram[4]))
    return jnp.stack([k, bar_len, pos, part, pitch]).astype(jnp.int32)


def init_sampler(model: EventTransformer, seed_key):
    """A fresh sampler state: batch-2 cache (CFG), BOS as the last token, the grammar at its start, no
    position floor (see :func:`sample_chunk`)."""
    return {"cache": model.init_cache(2), "token": jnp.int32(G.BOS), "key": seed_key, "gram": grammar_init(),
            "floor": jnp.int32(-1)}


def floor_allowed(gram, floor):
    """Boolean mask [V]: while the stream's position in the bar is below ``floor`` (a re-sampled stretch must
    not put notes where the audio was already played), no more notes at that position (PART, PITCH) and no
    position below the floor; later positions stay open, and so does BAR, so the mask never empties. Right after
    the bar's TS (a bar joined or re-sampled from the floor on, nothing in it yet) the first note must come within
    half a beat of the floor (the window always holds an eighth-note position), and BAR is closed while a position
    is left: masked from the bar's usual first positions, the model would otherwise often leave the bar empty, or
    start late in it, and rest for up to a bar."""
    past = floor > gram[2]
    first = (gram[0] == G.K_TS) & (floor < gram[1])
    blocked = ((_KIND == G.K_PART) | (_KIND == G.K_PITCH) | ((_KIND == G.K_POS) & (_VALUE < floor))
               | (first & (((_KIND == G.K_POS) & (_VALUE >= floor + G.TPB // 2)) | (_KIND == G.K_BAR))))
    return ~(past & blocked)


def feed_tokens(model: EventTransformer, state, style, has_style, tokens, n):
    """The sampler state after the known tokens ``tokens[:n]`` ([P] int32, ``n`` traced 0..P) instead of
    sampled ones: the model's cache fed them in one pass (:meth:`EventTransformer.prefill`), the grammar advanced
    through them, the last of them pending; the key and the position floor unchanged.

    Why: a repeated bar feeds a whole scripted bar (:mod:`generator.groove.form`), often at the dense downbeat of a
    block that must be fast; stepping it token by token cost as much as sampling it. One pass of 16 tokens costs
    about five steps (the weights are read once), so it pays for scripts, not for the few tokens a rewind replays
    (those ride in the sampled chunk, see :func:`sample_chunk`'s ``forced``)."""
    cond = model.condition(jnp.stack([style, style]), jnp.stack([has_style, jnp.bool_(False)]))

    def feed(s):
        seq = jnp.concatenate([s["token"][None], tokens[:-1]])  # the pending token first, the last one pending
        cache = model.prefill(s["cache"], jnp.stack([seq, seq]), n, cond)

        def advance(gram, xs):
            i, t = xs
            return jnp.where(i < n, grammar_advance(gram, t), gram), None

        gram, _ = jax.lax.scan(advance, s["gram"], (jnp.arange(tokens.shape[0]), tokens))
        return dict(s, cache=cache, token=tokens[jnp.maximum(n - 1, 0)], gram=gram)

    return jax.lax.cond(n > 0, feed, lambda s: s, state)


def sample_chunk(model: EventTransformer, state, style, has_style, guidance, temperature, top_k, length: int,
                 part_bias=None, forced=None, n_forced=0, pitch_bias=None):
    """Sample ``length`` grammatical tokens with CFG; everything but ``length`` is traced.

    Args:
      state: see :func:`init_sampler`. ``state["floor"]`` is the first position of the current bar a newly
        sampled token may still use (-1: none); a sampled BAR lifts it.
      style: [384] float32 prompt vector; has_style: bool (False = both rows unconditional).
      guidance, temperature, top_k: the live controls (traced: changing them never recompiles).
      part_bias: optional [V] float32 added to both rows' logits (e.g. an arrangement's PART bias).
      pitch_bias: optional [N_PARTS, V] float32: row ``p`` is added while the current part is ``p`` (a key's or a
        held chord's PITCH bias; the drums' row is zeros).
      forced: optional [length] int32; the first ``n_forced`` steps feed these tokens instead of sampling
        (replaying the few tokens between a rewind's snapshot and its cut, :mod:`generator.groove.timeline`,
        in the chunk that samples after them: cheaper than a :func:`feed_tokens` call of their own).

    Returns:
      (tokens [length] int32, new state).
    """
    cond = model.condition(jnp.stack([style, style]), jnp.stack([has_style, jnp.bool_(False)]))
    key, noise = sampling.chunk_noise(state["key"], length, model.cfg.vocab)

    if forced is None:
        forced = jnp.zeros((length,), jnp.int32)

    def body(s, xs):
        i, forced_token, gumbel = xs
        logits, cache = model.step(s["cache"], jnp.stack([s["token"], s["token"]]), cond)
        if part_bias is not None:
            logits = logits + part_bias
        if pitch_bias is not None:
            logits = logits + pitch_bias[jnp.clip(s["gram"][3], 0, G.N_PARTS - 1)]
        logp = jax.nn.log_softmax(logits, axis=-1)
        allowed = grammar_allowed(s["gram"]) & floor_allowed(s["gram"], s["floor"])
        mixed = guided_logits(logp, allowed, guidance)
        free = i >= n_forced
        t = jnp.where(free, sampling.sample_with_noise(gumbel, mixed, temperature, top_k), forced_token)
        t = t.astype(jnp.int32)
        floor = jnp.where(free & (_KIND[t] == G.K_BAR), -1, s["floor"])
        return dict(s, cache=cache, token=t, gram=grammar_advance(s["gram"], t), floor=floor), t

    state, toks = jax.lax.scan(body, state, (jnp.arange(length), forced, noise))
    return toks, dict(state, key=key)
