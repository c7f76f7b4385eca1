"""Which MIDI channels a note generator plays for a prompt (shared by the families' arrangement checks)."""

from __future__ import annotations

from generator.core.contract import GenerationControls


def channels_played(gen, prompt: str, seed: int, blocks: int, guidance: float, frames: int = 5) -> set[int]:
    """The channels of every note-on in ``blocks`` blocks of ``prompt`` from a fresh state of ``seed``."""
    state = gen.init_state(seed)
    gen.drain_midi()
    controls = GenerationControls(prompts=((prompt, 1.0),), guidance=guidance, seed=seed)
    on = set()
    for _ in range(blocks):
        _, state = gen.generate(state, controls, frames)
        on |= {d[0] & 0x0F for _, d in gen.drain_midi() if d[0] & 0xF0 == 0x90 and d[2] > 0}
    return on
