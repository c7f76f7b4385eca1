"""What every note-making generator shares: prompts in MiniLM space, the instruments they choose, FluidSynth,
and the MIDI mirror of what was played.

Why a base class: the ``symbolic`` and ``groove`` families differ in *when* notes happen (their tokens and
schedulers) but not in how a prompt becomes a vector and a set of GM programs, how notes become sound, or how
the daemon collects a block's MIDI. Subclasses call :meth:`_end_stream` from ``init_state`` and
:meth:`_start_block` at the top of ``generate``, and :meth:`_warm_prompts` from ``warmup``.
"""

from __future__ import annotations

import functools
import logging
import pathlib
from typing import Callable

import numpy as np

from generator.core import gm
from generator.core.checkpoint import SHIPPED
from generator.core.contract import CHANNELS, FRAME_SAMPLES, GenerationControls, Generator, MidiEvent
from generator.core.prompts import PromptBank
from generator.core.synth import NoteSynth


class NoteGenerator(Generator):
    makes_notes = True  # drain_midi() returns each block's notes

    def __init__(self, soundfont: str | None = None, gain: float = 0.5):
        self.synth = NoteSynth(soundfont, gain)
        self.soundfont = self.synth.soundfont
        self.bank = PromptBank(self._embed_texts)
        self._carry: list[MidiEvent] = []  # note-offs of the last init_state, not drained yet

    # ---- prompts -------------------------------------------------------------------------
    @functools.cached_property
    def text_encoder(self):
        from generator.core.text_encoder import TextEncoder

        return TextEncoder()

    def _embed_texts(self, texts):
        return self.text_encoder(list(texts))

    def embed_style(self, text: str) -> np.ndarray:
        """The 384-d MiniLM vector of a prompt (cached); the model learns its own projection."""
        return self.bank.vector(text)

    @functools.cached_property
    def chooser(self):
        from generator.core.instruments import InstrumentChooser

        return InstrumentChooser(self._embed_texts, self.synth.kits)

    def programs_for(self, prompts) -> dict[int, int]:
        """{MIDI channel: program} for a prompt list (drum channel: kit program)."""
        return self._programs(self.bank.blend(prompts))

    def _programs(self, vec) -> dict[int, int]:
        programs, kit = self.chooser.choose(vec)
        out = {gm.part_channel(p): prog for p, prog in programs.items()}
        out[gm.DRUM_CHANNEL] = kit
        return out

    def _warm_prompts(self, prompt: str) -> None:
        """Load the text tower for every prompt-length bucket and build the instrument table."""
        self.embed_style(prompt)
        for n in self.text_encoder.BUCKETS[1:]:
            self._embed_texts([" ".join(["music"] * (n - 4))])
        self.chooser  # noqa: B018 - builds the program/kit table

    def warmup(self, frames: int = 5, prompt: str = "warm up"):
        """Load the text tower and the instrument table and compile the sampler (one block on a throwaway
        state), so no later call compiles. Leaves the synth silent."""
        self._warm_prompts(prompt)
        state = self.init_state(0)
        audio, _ = self.generate(state, GenerationControls(prompts=((prompt, 1.0),)), frames)
        assert audio.shape == (frames * FRAME_SAMPLES, CHANNELS)
        self.init_state(0)
        self.drain_midi()

    def describe(self) -> str:
        return f"{self.config.name} ({self.soundfont})"

    # ---- MIDI out ------------------------------------------------------------------------
    def _end_stream(self, sounding) -> None:
        """A new stream: every (channel, pitch) in ``sounding`` ends at offset 0 of the next drain, and the
        synth falls silent at once."""
        offs = [(0, bytes([0x80 | ch, pitch, 0])) for ch, pitch in sounding]
        self.synth.silence()
        self.synth.outbox, self._carry = [], offs  # drained next, at offset 0

    def _start_block(self) -> None:
        self.synth.outbox, self._carry = self._carry, []  # undrained MIDI of older blocks is dropped

    def drain_midi(self) -> list[MidiEvent]:
        """The raw MIDI of the block the last ``generate`` returned, as ``(sample offset, bytes)`` in time
        order: note-on/off (0x90/0x80), program change (0xC0), and pan, reverb and chorus sends (0xB0: CC10,
        CC91, CC93; once per channel after each reset) on channels 0-15, channel 9 = drums. The note-offs
        ``init_state`` issues for notes still sounding come at offset 0 of the first drain after it. Call
        after every ``generate``; undrained messages are dropped by the next one."""
        out = self.synth.drain() + self._carry
        self._carry = []
        return out


log = logging.getLogger(__name__)
_warned: set[str] = set()


def resolve(spec: str, family: str, presets: dict, is_checkpoint: Callable, from_checkpoint: Callable,
            from_preset: Callable):
    """A note family's model spec: a preset name (its weights from ``generator/checkpoints/<name>/`` when
    they exist, else a seeded random init, said once) or a checkpoint directory of that family.

    Raises:
      ValueError: neither (the message lists the presets).
    """
    from generator.core.runtime import enable_compile_cache

    enable_compile_cache()
    if spec in presets:
        directory = SHIPPED / spec
        if is_checkpoint(directory):
            return from_checkpoint(directory)
        if spec not in _warned:
            _warned.add(spec)
            log.warning("no trained weights for model %r (looked in %s): using a seeded random init", spec, directory)
        return from_preset(presets[spec])
    path = pathlib.Path(spec).expanduser()
    if path.is_dir():
        return from_checkpoint(path)
    raise ValueError(f"unknown {family} model {spec!r}: use {', '.join(presets)} or a {family} checkpoint directory")

