"""The prompt chooses who plays: a learned text -> instrument-family head that constrains sampling.

Why: the symbolic transformer is conditioned on the prompt vector, but at the sizes we can train on a
CPU it barely uses it (held-out NLL with and without the prompt differ by 0.003 nats), so "gentle solo
piano lullaby" came out with drums and a band. Which families play is the part of a prompt that
listeners (and the style-model judge) hear first, and it is easy to learn directly: every training
caption names the rendered instruments and says "with ..." or "without drums", and every tokenised
work shows which PART tokens it uses. So a logistic regression from the frozen MiniLM caption vector
to "family p plays" (16 outputs) is fitted on (caption or paraphrase, work) pairs, and at sampling
time it becomes a bias on the 16 PART tokens (:meth:`Arrangement.part_bias`):

* families the prompt makes unlikely (p < ``floor``) are banned: their PART token gets -1e9, so the
  model cannot switch to them and they play no notes;
* the others get ``log p`` (a product of experts with the transformer's own part choice), so the
  families the prompt names come more often;
* the most likely family is never banned, so some part can always play.

The bias enters the sampler as a traced [VOCAB] vector (no recompilation when the prompt changes).
Fitting takes seconds (``python -m generator.train heads arrangement``, :mod:`generator.train.heads.arrangement`);
the weights (384 x 16) live in the symbolic checkpoint as ``arrangement.safetensors``.
"""

from __future__ import annotations

import numpy as np

from generator.core import heads
from generator.symbolic import tokens as tok

FILE = "arrangement.safetensors"
NEG = -1e9


class Arrangement:
    """p(family plays | prompt vector) = sigmoid(W v + b), and the PART-token bias made from it."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, floor: float = 0.2, strength: float = 1.0):
        self.weight = np.asarray(weight, np.float32)  # [384, 16]
        self.bias = np.asarray(bias, np.float32)  # [16]
        self.floor, self.strength = float(floor), float(strength)

    def probs(self, style: np.ndarray) -> np.ndarray:
        z = np.asarray(style, np.float32) @ self.weight + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def allowed(self, style: np.ndarray | None) -> np.ndarray:
        """bool [16]: the families the prompt lets play (all of them without a prompt)."""
        if style is None:
            return np.ones(tok.N_PARTS, bool)
        p = self.probs(style)
        keep = p >= self.floor
        keep[int(np.argmax(p))] = True
        return keep

    def part_bias(self, style: np.ndarray | None) -> np.ndarray:
        """float32 [VOCAB]: added to the sampler's log-probabilities (zero without a prompt)."""
        out = np.zeros(tok.VOCAB, np.float32)
        if style is None:
            return out
        p = self.probs(style)
        keep = self.allowed(style)
        out[tok.PART0:tok.VEL0] = np.where(keep, self.strength * np.log(np.maximum(p, 1e-6)), NEG)
        return out

    # ---- files ---------------------------------------------------------------------------
    def save(self, directory, info: dict) -> str:
        """Writes ``arrangement.safetensors`` into a symbolic checkpoint and ``info`` into its config.json."""
        return heads.save_head(directory, FILE, {"weight": self.weight, "bias": self.bias},
                              {"floor": self.floor, "strength": self.strength}, "arrangement",
                              {"floor": self.floor, "strength": self.strength, **info})

    @classmethod
    def load(cls, directory, digest: str | None = None) -> "Arrangement | None":
        """The head of a checkpoint directory, or None when it has none."""
        found = heads.load_head(directory, FILE, digest, {"weight": (None, tok.N_PARTS), "bias": (tok.N_PARTS,)})
        if found is None:
            return None
        tensors, meta = found
        return cls(tensors["weight"], tensors["bias"], meta.get("floor", 0.2), meta.get("strength", 1.0))
