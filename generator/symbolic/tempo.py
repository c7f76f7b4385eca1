"""Tempo head: reads the tempo a prompt asks for, so that "fast swing jazz" is played fast.

Why a head rather than the language model: the Music Transformer's time unit is wall time (10 ms
shifts), and although every training caption states a tempo ("upbeat ..., 111 BPM" / "lively,
around 111 beats per minute"), the 2M-parameter model hardly listens to it (held-out NLL is the
same with and without the caption). A ridge regression from the prompt's MiniLM vector to
log2(BPM), fitted in a second on the training captions, paraphrases and their number-free forms
(so words such as "fast", "slow", "lullaby" or "ballad" carry the tempo, not only "140 BPM"), does
read it. The sampler then plays the model's stream faster or slower: a stream of the model's own
tempo (its training median) is time-scaled by ``(bpm(prompt) / native) ** strength``, bounded to
``[min_scale, max_scale]`` so that real time stays affordable and the music stays itself.

Time scaling changes when events sound, not what the model generates: with the same seed, a scale
of 2 plays the same notes in half the time. :class:`TimeMap` keeps the mapping continuous when the
prompt (and so the scale) changes mid-stream.

The judge, :func:`generator.train.heads.tempo.estimate_bpm` (used by ``bench/quality_tempo.py``), is an
onset autocorrelation with a broad prior around 120 BPM (on the 89 held-out works it finds the caption's
tempo within 8 % in 63 % of works, and a metrical multiple of it in 99 %).

Refit: ``python -m generator.train heads tempo`` (needs ``runs/symbolic/{train,heldout}.npz``).
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

from generator.symbolic import heads

FILE = "tempo.safetensors"


class TempoHead:
    """log2(BPM) = style @ weight + bias; ``scale(style)`` is the playback speed factor."""

    def __init__(self, weight: np.ndarray, bias: float, native_bpm: float, strength: float = 1.0,
                 min_scale: float = 0.6, max_scale: float = 1.6):
        self.weight = np.asarray(weight, np.float32).reshape(-1)
        self.bias = float(bias)
        self.native_bpm = float(native_bpm)
        self.strength = float(strength)
        self.min_scale, self.max_scale = float(min_scale), float(max_scale)

    def bpm(self, style: np.ndarray) -> float:
        return float(2.0 ** (float(np.asarray(style, np.float32) @ self.weight) + self.bias))

    def scale(self, style: np.ndarray | None) -> float:
        """How much faster than the model's own tempo to play (1 without a prompt)."""
        if style is None:
            return 1.0
        raw = (self.bpm(style) / self.native_bpm) ** self.strength
        return float(min(self.max_scale, max(self.min_scale, raw)))

    # ---- files ---------------------------------------------------------------------------
    def save(self, directory, info: dict) -> str:
        """Writes ``tempo.safetensors`` into a symbolic checkpoint and ``info`` into its config.json."""
        settings = {"native_bpm": self.native_bpm, "strength": self.strength, "min_scale": self.min_scale,
                    "max_scale": self.max_scale}
        return heads.save_head(directory, FILE, {"weight": self.weight, "bias": np.asarray([self.bias], np.float32)},
                              settings, "tempo", {**settings, **info})

    @classmethod
    def load(cls, directory, digest: str | None = None) -> "TempoHead | None":
        """The head of a checkpoint directory, or None when it has none; a damaged file is refused
        with a one-line error."""
        found = heads.load_head(directory, FILE, digest, {"weight": (None,), "bias": (1,)})
        if found is None:
            return None
        tensors, meta = found
        native = meta.get("native_bpm", 0.0)
        if not native > 0:
            raise ValueError(f"{pathlib.Path(directory) / FILE}: expected native_bpm > 0, got {native}")
        return cls(tensors["weight"], float(tensors["bias"][0]), native, meta.get("strength", 1.0),
                   meta.get("min_scale", 0.6), meta.get("max_scale", 1.6))


class TimeMap:
    """Model time (decoder steps of 10 ms) -> stream samples, at a playback speed that may change.

    ``sample(step)`` is piecewise linear and continuous: a new speed applies from the step where it
    was set, so events already scheduled keep their times and nothing jumps."""

    def __init__(self, step_samples: int):
        self.step_samples = int(step_samples)
        self.anchor_step = 0
        self.anchor_sample = 0.0
        self.speed = 1.0

    def set_speed(self, speed: float, at_step: int):
        if speed == self.speed:
            return
        self.anchor_sample = self.sample_f(at_step)
        self.anchor_step = int(at_step)
        self.speed = float(speed)

    def sample_f(self, step: int) -> float:
        return self.anchor_sample + (step - self.anchor_step) * self.step_samples / self.speed

    def sample(self, step: int) -> int:
        return int(round(self.sample_f(step)))

    def first_step_at(self, sample: int) -> int:
        """The smallest step from the last speed change on that sounds at or after ``sample`` (the
        scheduler only asks about the future)."""
        return self.anchor_step + max(0, math.ceil((sample - self.anchor_sample) * self.speed / self.step_samples))
