"""Residual vector quantisation with EMA codebooks, for the codec and the style tokenizer.

Why EMA codebooks (not gradient-learned): they are stable with the tiny batches a CPU can afford
and need no codebook loss; the codebooks and their running statistics are ``nnx.Variable``s of
their own kind so the optimiser (which only touches ``nnx.Param``) never sees them.
Quantizer dropout in training (a random number of levels per item) makes every prefix of
levels decodable, which is what lets the LM generate fewer levels than the codec stores.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class Codebook(nnx.Variable):
    """RVQ code vectors [levels, K, dim] (updated by EMA, not by the optimiser)."""


class CodebookStats(nnx.Variable):
    """EMA statistics of the codebooks: counts [levels, K] and sums [levels, K, dim]."""


class RVQ(nnx.Module):
    def __init__(self, levels: int, size: int, dim: int, *, decay: float = 0.99, rngs: nnx.Rngs):
        self.levels, self.size, self.dim, self.decay = levels, size, dim, decay
        init = jax.random.normal(rngs.params(), (levels, size, dim)) * dim ** -0.5
        self.codebook = Codebook(init)
        self.counts = CodebookStats(jnp.ones((levels, size)))
        self.sums = CodebookStats(init)

    def quantize(self, x, levels: int | None = None):
        """x [..., dim] -> (codes [..., n], quantized sum [..., dim], residuals [n, ..., dim])."""
        n = levels or self.levels
        books = self.codebook[...][:n]

        def one(res, book):
            d = (res ** 2).sum(-1, keepdims=True) - 2 * res @ book.T + (book ** 2).sum(-1)
            code = jnp.argmin(d, axis=-1)
            q = book[code]
            return res - q, (code, q, res)

        _, (codes, qs, residuals) = jax.lax.scan(one, x, books)
        return jnp.moveaxis(codes, 0, -1).astype(jnp.int32), qs.sum(0), residuals

    def dequantize(self, codes):
        """codes [..., n] (any prefix of levels) -> [..., dim]."""
        n = codes.shape[-1]
        return sum(self.codebook[...][i][codes[..., i]] for i in range(n))

    def train_quantize(self, x, key, dropout: float = 0.5):
        """Straight-through quantisation with quantizer dropout; x [B, T, dim].

        Returns (quantized [B,T,dim], commitment loss, (codes, residuals) for :meth:`ema_update`).
        """
        codes, _, residuals = self.quantize(jax.lax.stop_gradient(x))
        k1, k2 = jax.random.split(key)
        b = x.shape[0]
        n_keep = jnp.where(jax.random.bernoulli(k1, dropout, (b,)),
                           jax.random.randint(k2, (b,), 1, self.levels + 1), self.levels)
        keep = jnp.arange(self.levels)[:, None] < n_keep[None, :]  # [n, B]
        qs = jnp.stack([self.codebook[...][i][codes[..., i]] for i in range(self.levels)])
        qs = qs * keep[:, :, None, None]
        q = qs.sum(0)
        commit = ((x - jax.lax.stop_gradient(q)) ** 2).mean()
        return x + jax.lax.stop_gradient(q - x), commit, (codes, residuals)

    def ema_update(self, codes, residuals):
        """Move each code to the EMA mean of the residuals assigned to it; revive dead codes."""
        k = self.size
        flat_r = residuals.reshape(self.levels, -1, self.dim)
        flat_c = codes.reshape(-1, self.levels).T
        onehot = jax.nn.one_hot(flat_c, k)  # [n, N, K]
        cnt = onehot.sum(1)
        sm = jnp.einsum("nNk,nNd->nkd", onehot, flat_r)
        counts = self.decay * self.counts[...] + (1 - self.decay) * cnt
        sums = self.decay * self.sums[...] + (1 - self.decay) * sm
        book = sums / jnp.maximum(counts, 1e-6)[..., None]
        # dead codes (EMA count far below average) restart at a batch residual
        dead = counts < 1e-3
        pick = flat_r[:, jnp.arange(k) % flat_r.shape[1]]
        book = jnp.where(dead[..., None], pick, book)
        sums = jnp.where(dead[..., None], pick, sums)
        counts = jnp.where(dead, 1.0, counts)
        self.codebook[...] = book
        self.sums[...] = sums
        self.counts[...] = counts
