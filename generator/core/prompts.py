"""Prompt blending with a per-prompt cache, shared by every family that embeds text prompts.

Why: users steer with up to 8 weighted prompts and move the weights live. Embedding a text (MiniLM)
is the slow part; blending cached vectors is cheap. So each text is embedded once, each prompt set
(texts and weights) is blended once, and a family's derived value of a blend (the audio family's
style tokens) is cached beside it: moving a weight costs one weighted sum, a block that repeats the
previous prompts costs a dictionary lookup. The weights arrive normalised
(:class:`generator.core.contract.GenerationControls` normalises them, once), so blending is a plain
weighted sum. Thread-safe: the daemon embeds new prompts on a helper thread while it generates.
"""

from __future__ import annotations

import collections
import threading
from typing import Callable

import numpy as np


class PromptBank:
    """Cached prompt vectors and blends.

    Args:
      embed_texts: ``[text, ...] -> [N, D]`` vectors (the slow part).
      derive: an optional function of a blended vector (e.g. the style tokenizer); its result is
        cached per prompt set and returned by :meth:`derived`.
      cache_size: how many prompt sets keep their blend (least recently used are dropped).
    """

    def __init__(self, embed_texts: Callable, derive: Callable | None = None, cache_size: int = 256):
        self._embed_texts, self._derive = embed_texts, derive
        self._vectors: dict[str, np.ndarray] = {}
        self._blends: collections.OrderedDict = collections.OrderedDict()  # prompts -> (vector, derived)
        self._lock = threading.Lock()
        self._cache_size = cache_size

    def vector(self, text: str) -> np.ndarray:
        """The embedding of one prompt text (computed once)."""
        with self._lock:
            if text in self._vectors:
                return self._vectors[text]
        vec = np.asarray(self._embed_texts([text])[0])
        with self._lock:
            self._vectors[text] = vec
        return vec

    def put(self, key: str, vector: np.ndarray) -> None:
        """Register a vector under a name (e.g. an audio prompt ``audio:<path>``)."""
        with self._lock:
            self._vectors[key] = np.asarray(vector, np.float32)
            self._blends.clear()  # a blend may have used an older vector of that name

    def _entry(self, prompts) -> tuple[np.ndarray | None, object]:
        key = tuple(prompts)
        with self._lock:
            if key in self._blends:
                self._blends.move_to_end(key)
                return self._blends[key]
        vec = None
        if key:
            vec = sum(self.vector(t) * w for t, w in key).astype(np.float32)
        derived = None if vec is None or self._derive is None else self._derive(vec)
        with self._lock:
            self._blends[key] = (vec, derived)
            while len(self._blends) > self._cache_size:
                self._blends.popitem(last=False)
        return vec, derived

    def blend(self, prompts) -> np.ndarray | None:
        """Weighted sum of the prompts' vectors (weights already normalised); None without prompts."""
        return self._entry(prompts)[0]

    def derived(self, prompts):
        """``derive(blend(prompts))``, cached with the blend; None without prompts."""
        return self._entry(prompts)[1]
