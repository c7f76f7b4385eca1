"""Token datasets for the groove family: works on the beat grid (:mod:`generator.groove.tokens`) -> one ``.npz``.

Why it lives in :mod:`generator.data`: it is training data, built from the data sources with the shared
builder (:mod:`generator.data.token_sets`, same layout as the symbolic family's, ``metas`` included), and
nothing the groove generator needs at run time imports it.

What is the groove family's own: its tokenizer (:func:`tokenize`: bars, positions, parts, notes; a work in
a metre the vocabulary cannot spell is refused and counted, not mangled; a long work is cut at a bar line)
and its training windows (:class:`BarCrops`, which start at bar lines so that a window always begins where
the grammar and the real-time generator begin: ``[BOS, BAR, TS...]``).
"""

from __future__ import annotations

import functools
from typing import Sequence

import mido
import numpy as np

from generator.groove import tokens as G
from . import token_sets
from .token_sets import TokenSet

__all__ = ["BarCrops", "TokenSet", "build", "tokenize"]


def tokenize(midi: mido.MidiFile, max_tokens: int = 20_000) -> np.ndarray:
    """Groove tokens of a work's MIDI, at most ``max_tokens``, cut before the first bar that would not fit
    (so the stream ends on a whole bar).

    Raises:
      ValueError: the work changes to a metre the vocabulary cannot represent.
    """
    ids = np.asarray(G.encode_midi(midi), np.int16)
    if len(ids) > max_tokens:
        bars = np.flatnonzero(ids[:max_tokens + 1] == G.BAR)
        ids = ids[:bars[-1]] if len(bars) > 1 else ids[:max_tokens]
    return ids


def build(path, split: str, sources: Sequence[str], seeds: Sequence[int] = (0,), limit: int | None = None,
          seconds: float | None = None, workers: int = 1, max_tokens_per_work: int = 20_000,
          work_seconds: float = 15.0, progress: bool = True):
    """Tokenise the works of ``split`` from ``sources`` on the beat grid (one pass per seed = one
    arrangement each) until ``limit`` works per source and seed or ``seconds`` of wall time, in
    ``workers`` processes; writes ``path`` (see :func:`generator.data.token_sets.build`)."""
    return token_sets.build(path, split, sources, functools.partial(tokenize, max_tokens=max_tokens_per_work),
                            seeds=seeds, limit=limit, seconds=seconds, max_tokens_per_work=max_tokens_per_work,
                            work_seconds=work_seconds, progress=progress, workers=workers, desc="groove")


class BarCrops:
    """Random training windows that start at a bar line: ``[BOS] + window`` of ``length`` tokens in all
    (PAD after a piece's end) and a caption index per row (a random column: caption or paraphrase).

    A third of the windows start at the piece's first bar (the situation right after a reset); the rest at
    a random bar from which a full window fits (any bar of a piece shorter than a window). No state prefix
    is needed, unlike the symbolic family's crops: every bar states its time signature, every position
    its part, every note its velocity, so the grammar and decoder start afresh at any BAR.
    """

    def __init__(self, data: TokenSet, length: int, seed: int = 0):
        self.data, self.length = data, length
        self.rng = np.random.default_rng(seed)
        sizes = np.diff(data.offsets)
        self.p = sizes / sizes.sum()  # pieces weighted by length: every token equally likely
        self.bars = []  # per piece: the offsets of its BAR tokens that may start a window
        for i in range(len(data)):
            seq = data.work(i)
            bars = np.flatnonzero(seq == G.BAR)
            fits = bars[bars <= len(seq) - (length - 1)]
            self.bars.append(fits if len(fits) else bars[:1])

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``(tokens [size, length] int32, caption indices [size] int32)``."""
        x = np.full((size, self.length), G.PAD, np.int32)
        caps = np.zeros((size,), np.int32)
        for r in range(size):
            i = int(self.rng.choice(len(self.p), p=self.p))
            seq, bars = self.data.work(i), self.bars[i]
            caps[r] = self.data.caption_ids[i, self.rng.integers(self.data.caption_ids.shape[1])]
            x[r, 0] = G.BOS
            if not len(bars):
                continue  # a piece without a bar (build never writes one): BOS then PAD
            s = int(bars[0]) if self.rng.random() < 1 / 3 else int(bars[self.rng.integers(len(bars))])
            window = seq[s: s + self.length - 1]
            x[r, 1: 1 + len(window)] = window
        return x, caps
