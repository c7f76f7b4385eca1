"""Several streams' frames through one compiled step: the audio-token family batched over sessions.

Why: a server (``jamgen serve``, each Ray Serve replica) runs many sessions of one model. One session's step is
many small ops (the Depthformer's levels one by one, each a CFG batch of 2), so on a CPU most of its time is
dispatch and memory traffic, not arithmetic; B sessions stacked into one step cost far less than B steps
(``tiny`` on 2 CPU cores, 2-frame blocks: 1 stream 12.8 ms, 8 streams 64 ms against 111 ms one by one).

How: :meth:`System._generate_fn` (one stream: state, style tokens, guidance, temperature, top-k) is
``jax.vmap``-ed over a leading stream axis, with the states stacked and split again inside the same ``jax.jit``,
so every control stays a traced per-stream array and nothing recompiles when a knob turns. Batches are padded
to :data:`BUCKETS` (padding rows repeat the first stream and are dropped) so only a few shapes exist, and
:meth:`BatchedSystem.warmup` compiles each (persistently cached, like the single-stream step). A batched
stream's audio is the single-stream audio up to float rounding (the same tokens: checked by
``tests/test_remote_batch.py``).

Load it as ``python:generator.audio.batch:tiny`` (``jamgen serve --model ...``); a server batches whatever
offers ``generate_batch`` (``bridge/serve_sessions.py``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from generator.audio import system
from generator.core.contract import CHANNELS, FRAME_SAMPLES, GenerationControls

BUCKETS = (2, 4, 8)  # streams per compiled step; more sessions than the last run as several steps


class BatchedSystem(system.System):
    """A :class:`System` that can also step several streams at once (:meth:`generate_batch`).

    Attributes:
      buckets: the batch sizes compiled (ascending); a batch is padded up to the next one.
    """

    buckets: tuple[int, ...] = BUCKETS

    @classmethod
    def from_system(cls, base: system.System, buckets: tuple[int, ...] = BUCKETS) -> "BatchedSystem":
        """The loaded ``base`` (weights, compiled single-stream step, prompt bank) with batching added."""
        batched = cls.__new__(cls)
        batched.__dict__.update(base.__dict__)  # share everything loaded; only the batched steps are new
        batched.buckets = tuple(sorted(buckets))
        batched._batch_fns = {}
        return batched

    @property
    def max_batch(self) -> int:
        return self.buckets[-1]

    def _batch_fn(self, frames: int):
        """The compiled step for ``frames`` frames of a tuple of streams (one compile per tuple length)."""
        fn = self._batch_fns.get(frames)
        if fn is None:
            one = functools.partial(self._generate_fn, frames=frames)

            def step(params, states, style_bs, guidance_b, temperature_b, top_k_b):
                stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states)  # every leaf [B, ...]
                audio_bta, new = jax.vmap(one, in_axes=(None, 0, 0, 0, 0, 0))(
                    params, stacked, style_bs, guidance_b, temperature_b, top_k_b)
                return audio_bta, tuple(jax.tree.map(lambda x, i=i: x[i], new) for i in range(len(states)))

            fn = self._batch_fns[frames] = jax.jit(step)
        return fn

    def generate_batch(self, states: list, controls: list[GenerationControls], frames: int):
        """Continue each stream by ``frames`` frames in one compiled step per bucket.

        Args:
          states: one state per stream (as from :meth:`init_state`; not donated, unlike :meth:`generate`).
          controls: each stream's controls (prompts, guidance, temperature, top-k), same length as ``states``.
          frames: frames for every stream (a batch shares one shape).

        Returns:
          (list of float32 [frames*1920, 2] audio, list of new states), in the order given.
        """
        if len(states) != len(controls) or not states:
            raise ValueError(f"generate_batch needs as many controls as states, got {len(controls)} for "
                             f"{len(states)} states")
        audio, out = [], []
        for lo in range(0, len(states), self.max_batch):
            part_audio, part_states = self._step(states[lo:lo + self.max_batch], controls[lo:lo + self.max_batch],
                                                 frames)
            audio += part_audio
            out += part_states
        return audio, out

    def _step(self, states, controls, frames: int):
        n = len(states)
        if n == 1:
            audio, state = self.generate(states[0], controls[0], frames)
            return [audio], [state]
        size = next(b for b in self.buckets if b >= n)
        pad = size - n
        states = tuple(states) + (states[0],) * pad
        controls = list(controls) + [controls[0]] * pad
        style_bs = np.stack([self.style_tokens(c.prompts) for c in controls]).astype(np.int32)
        audio_bta, new = self._batch_fn(int(frames))(
            self._params, states, jnp.asarray(style_bs), jnp.asarray([c.guidance for c in controls], jnp.float32),
            jnp.asarray([c.temperature for c in controls], jnp.float32),
            jnp.asarray([c.top_k for c in controls], jnp.int32))
        audio_bta = np.asarray(audio_bta)
        assert audio_bta.shape == (size, frames * FRAME_SAMPLES, CHANNELS), audio_bta.shape
        return [audio_bta[i] for i in range(n)], list(new[:n])

    def warmup(self, frames: int | None = None, prompt: str = "warm up"):
        """The single-stream warm-up, then every bucket at every block size the latency settings use."""
        super().warmup(frames, prompt)
        controls = GenerationControls(prompts=((prompt, 1.0),))
        for n in [frames] if frames else sorted({s.block_frames for s in self.latency.values()}):
            for size in self.buckets:
                self.generate_batch([self.init_state(i) for i in range(size)], [controls] * size, n)


def tiny() -> BatchedSystem:
    """``python:generator.audio.batch:tiny``: the ``tiny`` preset, batched over streams."""
    return BatchedSystem.from_system(system.load("tiny"))
