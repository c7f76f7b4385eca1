"""Training data for jamgen: symbolic sources with exact captions, rendered to 48 kHz stereo on the fly.

* :mod:`generator.data.sources` -- ``Work``, ``iter_works``: arranged, captioned MIDI (music21, mma, Debian);
  one module per source (``source_music21``, ``source_mma``, ``source_debian``) over the shared
  :mod:`generator.data.works`.
* :mod:`generator.data.render` -- ``Renderer``: MIDI -> 48 kHz stereo float32 with FluidSynth in-process.
* :mod:`generator.data.clips` -- ``iter_clips`` (streaming training clips) and the ``build`` command
  (``python -m generator.data build --hours H --out DIR``).
* :mod:`generator.data.codec_clips` -- the pre-rendered clip cache of codec training.
* :mod:`generator.data.token_sets` -- ``build``, ``TokenSet``: works tokenised once into one ``.npz`` (any note
  family's tokenizer, worker processes, captions and metas); :mod:`generator.data.symbolic_tokens` (``Crops``) and
  :mod:`generator.data.groove_tokens` (``BarCrops``, ``python -m generator.data groove``) are the two families'.
* :mod:`generator.data.harmony` -- chord progressions from a functional-harmony grammar per style, for mma.

Licences and attribution of every source: ``generator/data/ATTRIBUTION.md``.
"""

from .sources import SOURCES, SPLITS, MissingToolError, Work, WorkRef, iter_works, load_work, split_of, work_refs

__all__ = ["SOURCES", "SPLITS", "MissingToolError", "Work", "WorkRef", "iter_works", "load_work", "split_of",
           "work_refs"]
