"""Token datasets for the symbolic model: works of :mod:`generator.data.sources` -> one ``.npz``.

Why it lives in :mod:`generator.data`: it is training data (built from the data sources, cropped into
training windows), and nothing the symbolic generator needs at run time imports it.

The builder and the file layout are the note families' shared ones (:mod:`generator.data.token_sets`,
re-exported here: ``TokenSet``, ``PARAPHRASES``); what is the symbolic family's own is its tokenizer
(performance events, every work starting with BOS) and its training windows (:class:`Crops`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from generator.symbolic import tokens as tok
from . import token_sets
from .token_sets import PARAPHRASES, TokenSet

__all__ = ["PARAPHRASES", "Crops", "TokenSet", "build", "context_prefix"]


def build(path, split: str, sources: Sequence[str], seeds: Sequence[int] = (0,), limit: int | None = None,
          seconds: float | None = None, max_tokens_per_work: int = 20_000, work_seconds: float = 15.0,
          progress: bool = True, workers: int = 1):
    """Tokenise the works of ``split`` from ``sources`` (one pass per seed = one arrangement each)
    until ``limit`` works per source and seed or ``seconds`` of wall time; writes ``path``
    (see :func:`generator.data.token_sets.build`)."""
    return token_sets.build(path, split, sources, tok.midi_to_tokens, seeds=seeds, limit=limit, seconds=seconds,
                            max_tokens_per_work=max_tokens_per_work, work_seconds=work_seconds, progress=progress,
                            workers=workers, desc="tokenise")


def context_prefix(seq: np.ndarray, start: int) -> np.ndarray:
    """``[BOS, PART p, VEL v]``: the decoder's part and velocity just before ``seq[start]``."""
    head = seq[:start]
    parts = head[(head >= tok.PART0) & (head < tok.VEL0)]
    vels = head[(head >= tok.VEL0) & (head < tok.ON0)]
    part = int(parts[-1]) if len(parts) else tok.PART0
    vel = int(vels[-1]) if len(vels) else tok.VEL0 + 12
    return np.asarray([tok.BOS, part, vel], np.int32)


class Crops:
    """Random training windows: ``[BOS] + crop`` of ``length`` tokens and a caption index per row.

    A third of the windows start at a piece's beginning (the situation right after a reset);
    the rest start at a random position behind ``[BOS, PART p, VEL v]`` stating the decoder state
    there (:func:`context_prefix`), so after BOS the model has always seen a part before notes,
    and a note never refers to a part the window does not show.
    """

    def __init__(self, data: TokenSet, length: int, seed: int = 0):
        self.data, self.length = data, length
        self.rng = np.random.default_rng(seed)
        sizes = np.diff(data.offsets)
        self.p = sizes / sizes.sum()  # pieces weighted by length: every token equally likely

    def batch(self, size: int):
        x = np.full((size, self.length), tok.PAD, np.int32)
        caps = np.zeros((size,), np.int32)
        for r in range(size):
            i = int(self.rng.choice(len(self.p), p=self.p))
            seq = self.data.work(i)
            caps[r] = self.data.caption_ids[i, self.rng.integers(self.data.caption_ids.shape[1])]
            if self.rng.random() < 1 / 3 or len(seq) <= self.length:
                window = seq[: self.length]
            else:
                s = int(self.rng.integers(1, len(seq) - self.length + 4))
                window = np.concatenate([context_prefix(seq, s), seq[s: s + self.length - 3]])
            x[r, : len(window)] = window
        return x, caps
