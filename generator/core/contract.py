"""The small contract between the daemon and any music generator.

The daemon (``bridge.engine``) knows nothing about models: it only calls the three methods of
:class:`Generator`, once per block, from one generation thread. Everything a generator needs
from the live controls arrives as one immutable :class:`GenerationControls` per call, so the
generator never reads shared mutable state.

Audio contract: 48 kHz, stereo, float32 in [-1, 1], ``frames * FRAME_SAMPLES`` samples per call
(one frame = 40 ms = 1920 samples, the 25 Hz token rate of Magenta RT / SpectroStream).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, runtime_checkable

import numpy as np

SAMPLE_RATE = 48_000
FRAME_RATE = 25
FRAME_SAMPLES = SAMPLE_RATE // FRAME_RATE  # 1920
CHANNELS = 2


@dataclasses.dataclass(frozen=True)
class GenerationControls:
    """The control values one block is generated with.

    Attributes:
      prompts: the active style prompts as ``(text, weight)``; weights are > 0 and sum to 1.
        Empty means unconditional generation.
      guidance: classifier-free guidance weight ``w`` in ``uncond + w * (cond - uncond)``.
      temperature: sampling temperature (0 = greedy).
      top_k: sample among the k most likely tokens (>= 1).
      seed: the seed a fresh state is made from (a change takes effect at the next reset).
    """

    prompts: tuple[tuple[str, float], ...] = ()
    guidance: float = 3.0
    temperature: float = 1.1
    top_k: int = 40
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompts": [[t, round(w, 6)] for t, w in self.prompts],
            "guidance": self.guidance,
            "temperature": self.temperature,
            "top_k": self.top_k,
            "seed": self.seed,
        }


@runtime_checkable
class Generator(Protocol):
    """What the daemon drives. Implementations: ``generator.system`` (the native model),
    optional backends, and the deterministic test generator in ``tests/``."""

    sample_rate: int  # always SAMPLE_RATE
    frame_samples: int  # always FRAME_SAMPLES

    def init_state(self, seed: int = 0) -> Any:
        """A fresh generation state (empty context). Must be cheap to call again on reset."""

    def generate(
        self, state: Any, controls: GenerationControls, frames: int
    ) -> tuple[np.ndarray, Any]:
        """Continue the music by ``frames`` frames.

        Returns ``(audio, new_state)`` with ``audio`` float32 ``[frames * 1920, 2]``.
        The old state may be consumed (donated); callers keep only the returned one.
        """

    def embed_style(self, text: str) -> np.ndarray:
        """The style embedding of a text prompt (used for blending and diagnostics)."""


# Optional extras a generator may have (the daemon looks for them with getattr):
#   warmup()                      compile/load before the first block (called once at start-up)
#   control_defaults: dict        start-up values for controls, where the model documents its own
#                                 (e.g. {"guidance": 1.25}); --set and mapping files still win
#   prebuffer_seconds: float      how much audio the daemon should keep ahead (default 0.3 s)
#   drain_midi() -> [(offset, bytes)]
#                                 the notes of the last generated block (sent on <client>:midi_out)


def check_audio(audio: np.ndarray, frames: int) -> np.ndarray:
    """Validate a generator's output block; returns it as C-contiguous float32.

    Raises:
      ValueError: wrong shape, or non-finite samples (a broken generator must never reach JACK).
    """
    expected = (frames * FRAME_SAMPLES, CHANNELS)
    audio = np.asarray(audio)
    if audio.shape != expected:
        raise ValueError(f"generator returned audio of shape {audio.shape}, expected {expected}")
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if not np.isfinite(audio).all():
        raise ValueError("generator returned non-finite samples (NaN or inf)")
    return audio
