"""The style chooses the sounds: GM program per part (family) and the drum kit, from the prompt vector.

Why: the note families generate parts at the level of GM *families* (:data:`generator.core.gm.N_PARTS`);
the exact program inside a family and the drum kit come from the text style, by cosine similarity
between the blended prompt vector and MiniLM vectors of the program/kit caption words (the same
words :mod:`generator.core.gm` uses in training captions, so "brushed drums" picks the brush kit
and "jazz guitar" the jazz guitar). No prompt gives the family's first program and the standard kit.
Choosing is a 128x384 matrix product per new prompt set, cached by the caller.
"""

from __future__ import annotations

import numpy as np

from generator.core import gm

PRIOR = 0.08


class InstrumentChooser:
    """Maps a style vector to ``{part: program}`` and a drum-kit program.

    Args:
      embed_texts: texts -> unit vectors [N, 384] (the frozen MiniLM).
      kits: the drum-kit programs available in the loaded soundfont (bank 128).
    """

    def __init__(self, embed_texts, kits: list[int] | None = None):
        self.kits = [k for k in (kits if kits is not None else list(gm.DRUM_KITS)) if k in gm.DRUM_KITS] or [0]
        names = list(gm.PROGRAM_NAMES)
        kit_words = [gm.DRUM_KITS[k][1] if gm.DRUM_KITS[k][1] != "drums" else "standard drum kit" for k in self.kits]
        vecs = np.asarray(embed_texts(names + kit_words), np.float32)
        self.candidates, self.prior = {}, np.zeros(128, np.float32)
        for part in range(gm.DRUM_PART):
            members = [p for p in range(128) if gm.program_part(p) == part]
            usual = [p for p in members if p in gm.MELODIC_PROGRAMS] or members
            self.candidates[part] = np.asarray(usual)
            self.prior[usual[0]] = PRIOR
        self.program_vecs, self.kit_vecs = vecs[:128], vecs[128:]

    def choose(self, style: np.ndarray | None) -> tuple[dict[int, int], int]:
        """-> ({melodic part: GM program}, drum-kit program)."""
        if style is None:
            return {p: 8 * p for p in range(gm.DRUM_PART)}, 0
        s = np.asarray(style, np.float32)
        sim = self.program_vecs @ s
        # a small prior for each family's first (most generic) program breaks near-ties
        score = sim + self.prior
        programs = {part: int(cands[np.argmax(score[cands])]) for part, cands in self.candidates.items()}
        kit = self.kits[int(np.argmax(self.kit_vecs @ s))]
        return programs, kit
