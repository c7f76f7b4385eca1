"""The symbolic generator family: a Music Transformer over performance events, played by FluidSynth.

Why a second family: a small transformer over note events learns convincing short-range music
from a few million tokens on a CPU, and DAW users get the notes as MIDI, not only audio.
Modules, one concern each: :mod:`.tokens` (vocabulary, MIDI <-> tokens, ``write_midi``),
:mod:`.model` (the transformer and its streaming CFG sampler), :mod:`.instruments` (style ->
GM programs and drum kit), :mod:`.system` (the real-time generator behind the daemon's
interface, with ``drain_midi``), :mod:`.dataset`, :mod:`.train`, :mod:`.checkpoint`, :mod:`.eval`.
"""
