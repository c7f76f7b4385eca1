"""Pitch head: the prompt's key ("... in D minor") steers which notes the symbolic model plays.

Why a head: the Music Transformer barely uses its prompt (held-out NLL is the same with and without the
caption), so "in E flat major" changed nothing in the notes. Every training work was rendered in a
stated key (its caption says "in E flat major" / "the key of E flat major", and the transposition was
random), so a softmax regression from the prompt's MiniLM vector to the work's pitch-class
distribution (12 classes, note-ons of the melodic parts) learns what a named key sounds like, in
seconds. In the sampler it becomes a bias on the NOTE_ON tokens of the melodic parts (never the drum
kit, whose "pitches" are instruments): ``strength * (log p(pitch class) - mean)``, a product of
experts with the model's own choice. A prompt that names no key predicts a nearly flat distribution,
so its bias is nearly zero and the model plays as before.

:func:`generator.train.heads.pitch.key_of` (Krumhansl-Kessler profiles) names the key of a pitch-class
distribution: the head's evaluation and ``bench/quality_pitch.py`` use it to ask whether generated notes are
in the prompt's key.

Refit: ``python -m generator.train heads pitch`` (needs ``runs/symbolic/{train,heldout}.npz``).
"""

from __future__ import annotations

import numpy as np

from generator.core import heads

FILE = "pitch.safetensors"


class PitchHead:
    """p(pitch class | prompt vector) = softmax(v W + b), and the NOTE_ON bias made from it."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, strength: float = 1.0):
        self.weight = np.asarray(weight, np.float32)  # [384, 12]
        self.bias = np.asarray(bias, np.float32)  # [12]
        self.strength = float(strength)

    def probs(self, style: np.ndarray) -> np.ndarray:
        z = np.asarray(style, np.float32) @ self.weight + self.bias
        e = np.exp(z - z.max())
        return e / e.sum()

    def pitch_bias(self, style: np.ndarray | None) -> np.ndarray:
        """float32 [128]: added to the NOTE_ON logits of melodic parts (zero without a prompt)."""
        if style is None:
            return np.zeros(128, np.float32)
        logp = np.log(np.maximum(self.probs(style), 1e-6))
        return np.tile(self.strength * (logp - logp.mean()), 11)[:128].astype(np.float32)

    # ---- files ---------------------------------------------------------------------------
    def save(self, directory, info: dict) -> str:
        """Writes ``pitch.safetensors`` into a symbolic checkpoint and ``info`` into its config.json."""
        return heads.save_head(directory, FILE, {"weight": self.weight, "bias": self.bias},
                              {"strength": self.strength}, "pitch", {"strength": self.strength, **info})

    @classmethod
    def load(cls, directory, digest: str | None = None) -> "PitchHead | None":
        """The head of a checkpoint directory, or None when it has none; a damaged file is refused
        with a one-line error."""
        found = heads.load_head(directory, FILE, digest, {"weight": (None, 12), "bias": (12,)})
        if found is None:
            return None
        tensors, meta = found
        return cls(tensors["weight"], tensors["bias"], meta.get("strength", 1.0))
