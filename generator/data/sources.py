"""Symbolic music sources, arranged and captioned: the one API the renderers and tokenizers consume.

Why this module exists: jamgen has no downloadable music model or audio dataset, so its training
material is symbolic music we can synthesise (audio models) or tokenize (the symbolic generator).
Every :class:`Work` is one piece *already arranged* (GM program per part, drum kit, transposition,
tempo) together with a caption that names exactly those choices, so labels are exact for free.

Sources (licences in ``generator/data/ATTRIBUTION.md``):

* ``music21`` -- the music21 corpus minus the non-commercial Essen folk-song collection. Single works
  come from the metadata bundle (``corpus.parse(path, number=N)`` -- parsing whole ABC opus files is
  ~500x slower). Parsed works are cached as MIDI + JSON under :func:`cache_dir`.
* ``mma`` -- Debian ``mma`` grooves (swing, bossa, rock, funk, latin, country...) played over chord
  progressions generated per genre family; ``mma`` runs in a temp dir (~0.1-0.25 s per song).
* ``debian`` -- MIDI files shipped by small Debian game-music packages, if installed.

Each source lives in its own module (:mod:`generator.data.source_music21`, :mod:`~generator.data.source_mma`,
:mod:`~generator.data.source_debian`), and what they share (:class:`Work`, :class:`WorkRef`, the split hash,
the MIDI arrangement helpers) in :mod:`generator.data.works`; this module is the API over them and re-exports
those names, so ``generator.data.sources.<name>`` keeps working.

Held-out split: a work's *group* (the music21 work, the mma groove *file* so that sibling variants
of a held-out groove never leak into training, the Debian file) is hashed; 10% of groups are
``"heldout"``. The split never depends on the seed.

Determinism: ``iter_works(split, sources, seed)`` always yields the same works with the same
arrangements for the same arguments (``random.Random`` seeded from the work id and the seed).
"""

from __future__ import annotations

import logging
import random
from typing import Iterator, Sequence

from .source_debian import DEBIAN_MIDI, debian_refs, debian_work
from .source_mma import MMA_LIB, mma_genre, mma_refs, mma_song, mma_work, progression
from .source_music21 import EXCLUDED_MUSIC21, music21_refs, music21_work
from .works import HELDOUT_PERCENT, MissingToolError, Work, WorkRef, arrange, cache_dir, channel_stats, \
    channels_by_track, first_tempo, split_of

log = logging.getLogger(__name__)

SPLITS = ("train", "heldout")
SOURCES = ("music21", "mma", "debian")

__all__ = ["DEBIAN_MIDI", "EXCLUDED_MUSIC21", "HELDOUT_PERCENT", "MMA_LIB", "SOURCES", "SPLITS", "MissingToolError",
           "Work", "WorkRef", "arrange", "cache_dir", "channel_stats", "channels_by_track", "first_tempo",
           "iter_works", "load_work", "mma_genre", "mma_song", "progression", "split_of", "work_refs"]


def work_refs(split: str | None = "train", sources: Sequence[str] = SOURCES,
              collections: Sequence[str] | None = None) -> list[WorkRef]:
    """All works of ``split`` (None = both) from ``sources``, in a stable order.

    ``collections`` optionally keeps only these collections (e.g. ``("music21/bach", "mma/stdlib")``).
    """
    refs: list[WorkRef] = []
    for s in sources:
        if s == "music21":
            refs += music21_refs()
        elif s == "mma":
            refs += mma_refs()
        elif s == "debian":
            refs += debian_refs()
        else:
            raise ValueError(f"unknown source {s!r}; known: {SOURCES}")
    if split is not None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        refs = [r for r in refs if r.split == split]
    if collections:
        refs = [r for r in refs if r.collection in collections]
    return refs


def iter_works(split: str = "train", sources: Sequence[str] = SOURCES, seed: int = 0,
               limit: int | None = None, collections: Sequence[str] | None = None,
               shuffle: bool = True) -> Iterator[Work]:
    """Arranged, captioned works of one split, shuffled by ``seed``; one pass over every work.

    Call again with another seed for another epoch: other order, other arrangements (programs,
    kit, key, tempo, chord progression). Works that fail to parse are logged and skipped.
    """
    refs = work_refs(split, sources, collections)
    if shuffle:
        random.Random(seed).shuffle(refs)
    n = 0
    for ref in refs:
        if limit is not None and n >= limit:
            return
        try:
            work = load_work(ref, seed)
        except MissingToolError:
            raise
        except Exception as e:  # a broken encoding must not stop a training run
            log.warning("skipping %s: %s", ref.id, e)
            continue
        if work is None:
            continue
        n += 1
        yield work


def load_work(ref: WorkRef, seed: int = 0) -> Work | None:
    """Load and arrange one work (None when it has no usable notes)."""
    rng = random.Random(f"{ref.id}|{seed}")
    if ref.source == "music21":
        return music21_work(ref, rng, seed)
    if ref.source == "mma":
        return mma_work(ref, rng, seed)
    if ref.source == "debian":
        return debian_work(ref, rng, seed)
    raise ValueError(ref.source)
