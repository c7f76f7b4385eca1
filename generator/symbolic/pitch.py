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

from generator.core.heads import PITCH_FILE as FILE
from generator.core.heads import PitchHead

__all__ = ["FILE", "PitchHead"]
