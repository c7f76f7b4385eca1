"""The groove family: beat-grid, multi-track note generation that keeps a pulse (work in progress).

Modules, one concern each: :mod:`.tokens` (the bar/position/part/note vocabulary, its grammar, MIDI <->
tokens). Tempo is not part of the music the model writes: the scheduler plays grid ticks at the tempo in
force.
"""
