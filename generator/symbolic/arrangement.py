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

from generator.core.heads import ARRANGEMENT_FILE, NEG, PartHead  # noqa: F401  (NEG re-exported)
from generator.symbolic import tokens as tok

FILE = ARRANGEMENT_FILE


class Arrangement(PartHead):
    """The core's part head, as a bias on the symbolic vocabulary's PART tokens."""

    def part_bias(self, style: np.ndarray | None) -> np.ndarray:
        """float32 [VOCAB]: added to the sampler's log-probabilities (zero without a prompt)."""
        out = np.zeros(tok.VOCAB, np.float32)
        if style is not None:
            out[tok.PART0:tok.VEL0] = self.bias16(style)
        return out
