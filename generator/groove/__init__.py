"""The groove family: beat-grid, multi-track note generation that keeps a pulse.

Modules, one concern each:

- :mod:`.tokens`: the bar/metre/position/part/note vocabulary (12 ticks per beat), its grammar, MIDI <-> tokens;
- :mod:`.model`: the core's event transformer with a sampler that masks every ungrammatical token;
- :mod:`.system`: :class:`~generator.groove.system.GrooveSystem`, notes scheduled in grid ticks and timed by a
  tempo clock that follows the live ``bpm`` control; FluidSynth and MIDI out from the core;
- :mod:`.checkpoint`: its checkpoint format (``jamgen-groove``), with optional tempo and arrangement heads.

Tempo is not part of the music the model writes: the scheduler plays grid ticks at the tempo in force.
Training: :mod:`generator.train.groove`; data: :mod:`generator.data.groove_tokens`.
"""
