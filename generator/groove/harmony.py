"""Harmony from outside: a chord (the notes a player holds, the ``harmony`` control) steers the melodic parts.

Why a bias and not a rule: the model has learnt voice leading, rhythm and register; what it cannot know is the
chord the player is holding. So the chord becomes a bias on the PITCH tokens, per part, in the same product of
experts as the key head (:class:`generator.core.heads.PitchHead`), which it replaces while a chord is held:

- melodic parts: chord tones ``+CHORD``, the other tones of the chord's scale ``+SCALE``, the rest ``OUT``
  (strongly against, so a held C-E-G is heard as C major, not as a suggestion);
- the bass (GM family 4): the root (the lowest held note's pitch class) ``+ROOT``, the fifth ``+CHORD``, the
  other chord tones ``+SCALE``, the rest ``OUT``;
- drums: nothing (their "pitches" are instruments).

The chord's scale: the seven-note mode on the root that contains the chord's third, choosing ionian for a major
third (mixolydian when the minor seventh is held), dorian for a minor third (aeolian when the minor sixth is
held), and ionian for chords without a third. C-E-G -> C ionian; D-F-A -> D dorian (both are the white keys).
"""

from __future__ import annotations

import numpy as np

from generator.core import gm

BASS_PART = 4  # GM family "bass"
CHORD, SCALE, OUT, ROOT = 3.0, 1.0, -6.0, 4.0
MODES = {"ionian": (0, 2, 4, 5, 7, 9, 11), "mixolydian": (0, 2, 4, 5, 7, 9, 10),
         "dorian": (0, 2, 3, 5, 7, 9, 10), "aeolian": (0, 2, 3, 5, 7, 8, 10)}


def chord_scale(notes) -> tuple[int, set[int]]:
    """(root pitch class, the pitch classes of the chord's scale) for held MIDI ``notes`` (lowest = root)."""
    root = min(notes) % 12
    held = {(n - root) % 12 for n in notes}
    if 4 in held:
        mode = "mixolydian" if 10 in held else "ionian"
    elif 3 in held:
        mode = "aeolian" if 8 in held else "dorian"
    else:
        mode = "ionian"
    return root, {(root + step) % 12 for step in MODES[mode]} | {(root + i) % 12 for i in held}


def part_pitch_bias(notes) -> np.ndarray:
    """float32 [N_PARTS, 128]: the bias of each MIDI pitch for each part while ``notes`` are held."""
    root, scale = chord_scale(notes)
    held = {n % 12 for n in notes}
    pcs = np.arange(128) % 12
    melodic = np.where(np.isin(pcs, list(held)), CHORD, np.where(np.isin(pcs, list(scale)), SCALE, OUT))
    bass = np.where(pcs == root, ROOT, np.where(pcs == (root + 7) % 12, CHORD, melodic.clip(max=SCALE)))
    out = np.tile(melodic.astype(np.float32), (gm.N_PARTS, 1))
    out[BASS_PART] = bass
    out[gm.DRUM_PART] = 0.0
    return out
