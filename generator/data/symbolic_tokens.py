"""Token datasets for the symbolic model: works of :mod:`generator.data.sources` -> one ``.npz``.

Why it lives in :mod:`generator.data`: it is training data (built from the data sources, cropped into
training windows), and nothing the symbolic generator needs at run time imports it.

Why a cached file: arranging a work (mma run, music21 parse) costs 0.1-1 s, while a training step
needs a batch every ~100 ms, so works are tokenised once into one flat int16 array with offsets
and caption indices, then cropped at random by :class:`Crops`. The ``.npz`` holds only arrays and
strings (loaded with ``allow_pickle=False``).

Layout: ``tokens`` int16 [N] (every work starts with BOS), ``offsets`` int64 [W+1],
``caption_ids`` int32 [W, 1 + P] (index into ``texts``; column 0 is the canonical caption, the
rest paraphrases), ``texts`` str [C], ``work_ids`` str [W], ``collections`` str [W].
"""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import time
from typing import Sequence

import numpy as np

from generator.symbolic import tokens as tok

log = logging.getLogger(__name__)
PARAPHRASES = 2


def build(path, split: str, sources: Sequence[str], seeds: Sequence[int] = (0,), limit: int | None = None,
          seconds: float | None = None, max_tokens_per_work: int = 20_000, work_seconds: float = 15.0,
          progress: bool = True):
    """Tokenise the works of ``split`` from ``sources`` (one pass per seed = one arrangement each)
    until ``limit`` works per source and seed or ``seconds`` of wall time; writes ``path``."""
    from tqdm import tqdm

    from generator.data import sources as data_sources

    texts: dict[str, int] = {}
    rows, seqs, work_ids, colls = [], [], [], []
    t0 = time.monotonic()
    budget = None if seconds is None else seconds / max(1, len(sources) * len(seeds))
    bar = tqdm(desc=f"tokenise {split}", unit="work", disable=not progress)
    for seed in seeds:
        for source in sources:
            start = time.monotonic()
            try:
                refs = data_sources.work_refs(split, [source])
            except Exception as err:  # noqa: BLE001 - one broken source must not lose the others
                log.warning("source %s unavailable: %s: %s", source, type(err).__name__, err)
                continue
            random.Random(seed).shuffle(refs)
            done = 0
            for ref in refs:
                if (limit is not None and done >= limit) or (budget is not None and time.monotonic() - start > budget):
                    break
                try:  # some encodings take minutes to parse: give each work a deadline
                    with _deadline(work_seconds):
                        work = data_sources.load_work(ref, seed)
                except TimeoutError:
                    log.warning("skipping %s: took over %.0f s", ref.id, work_seconds)
                    continue
                except Exception as err:  # noqa: BLE001
                    log.warning("skipping %s: %s: %s", ref.id, type(err).__name__, err)
                    continue
                if work is None:
                    continue
                ids = tok.midi_to_tokens(work.midi)[:max_tokens_per_work]
                if len(ids) < 32:
                    continue
                caps = [work.caption, *work.paraphrases[:PARAPHRASES]]
                caps += [work.caption] * (1 + PARAPHRASES - len(caps))
                rows.append([texts.setdefault(c, len(texts)) for c in caps])
                seqs.append(ids.astype(np.int16))
                work_ids.append(work.id)
                colls.append(work.collection)
                done += 1
                bar.update(1)
                bar.set_postfix(tokens=sum(len(s) for s in seqs), source=source)
    bar.close()
    if not seqs:
        raise RuntimeError(f"no works found for split {split!r} in sources {list(sources)}")
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in seqs])]).astype(np.int64)
    np.savez(path, tokens=np.concatenate(seqs), offsets=offsets, caption_ids=np.asarray(rows, np.int32),
             texts=np.asarray(list(texts), dtype=str), work_ids=np.asarray(work_ids, dtype=str),
             collections=np.asarray(colls, dtype=str))
    log.info("wrote %s: %d works, %d tokens in %.0f s", path, len(seqs), offsets[-1], time.monotonic() - t0)
    return path


@contextlib.contextmanager
def _deadline(seconds: float):
    """Raise TimeoutError in the main thread after ``seconds`` (SIGALRM; main thread only)."""
    def fire(signum, frame):
        raise TimeoutError

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class TokenSet:
    """A loaded dataset file."""

    def __init__(self, path):
        with np.load(path, allow_pickle=False) as z:
            self.tokens = z["tokens"].astype(np.int32)
            self.offsets = z["offsets"]
            self.caption_ids = z["caption_ids"]
            self.texts = [str(t) for t in z["texts"]]
            self.work_ids = [str(t) for t in z["work_ids"]]
            self.collections = [str(t) for t in z["collections"]]

    def __len__(self) -> int:
        return len(self.work_ids)

    def work(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i]:self.offsets[i + 1]]


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
