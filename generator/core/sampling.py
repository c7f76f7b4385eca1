"""Classifier-free guidance, temperature and top-k sampling with every control traced.

Why a module: the daemon changes guidance, temperature and top-k live, so nothing here may be a
Python constant of the compiled function. top-k uses a sort and a dynamic index instead of
``lax.top_k`` (whose k is static); temperature 0 is greedy through Gumbel-max
(``argmax(logits + T * gumbel)``), with no branch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def cfg(cond, uncond, guidance):
    """``uncond + w * (cond - uncond)``: w = 1 is the conditional logits, w = 0 the unconditional."""
    return uncond + guidance * (cond - uncond)


def top_k_mask(logits, top_k):
    """Keep the ``top_k`` largest logits (traced int, clipped to [1, V]); the rest get -inf."""
    v = logits.shape[-1]
    k = jnp.clip(top_k, 1, v).astype(jnp.int32)
    ranked = jnp.sort(logits, axis=-1)[..., ::-1]
    kth = jax.lax.dynamic_index_in_dim(ranked, k - 1, axis=-1, keepdims=True)
    return jnp.where(logits >= kth, logits, -jnp.inf)


def sample(key, logits, temperature, top_k):
    """One token id from ``logits`` [..., V]; temperature 0 gives argmax (deterministic)."""
    return sample_with_noise(jax.random.gumbel(key, logits.shape, logits.dtype), logits, temperature, top_k)


def chunk_noise(key, length: int, vocab: int):
    """(the key for the next chunk, Gumbel noise [length, vocab] for this one): see :func:`sample_with_noise`."""
    key, sub = jax.random.split(key)
    return key, jax.random.gumbel(sub, (length, vocab))


def sample_with_noise(noise, logits, temperature, top_k):
    """:func:`sample` with its Gumbel ``noise`` (shaped like ``logits``) drawn by the caller.

    Why: an autoregressive ``lax.scan`` that draws per step runs the PRNG inside the loop; on XLA's CPU backend
    threefry is a rolled loop of its own (~0.1 ms a step, ~6 % of a small event model's token), so the event
    samplers draw a whole chunk's noise with one call before the scan and feed a row per step.
    """
    masked = top_k_mask(logits, top_k)
    return jnp.argmax(masked + jnp.maximum(temperature, 0.0) * noise, axis=-1).astype(jnp.int32)
