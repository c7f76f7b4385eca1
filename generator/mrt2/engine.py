"""The compiled hot path: a block of frames is one ``jax.jit`` call over ``(graphdef, params, state)``.

Why: the package steps one frame per Python call and syncs with the host every frame; here the frame
loop, the 12-level depth loop and (with a codec) the decoder run in one compiled ``lax.scan``, the
state buffers are donated (reused in place on accelerators), and temperature and top-k are traced,
so no control change recompiles. Only the block length is static: one executable per block size.
"""

from __future__ import annotations

import functools
import os
import warnings

import jax
import jax.numpy as jnp
from flax import nnx

from generator.mrt2.config import MRT2Config
from generator.mrt2.lm import codes_of

UNROLL_ENV = "JAMGEN_MRT2_UNROLL"


class Engine:
    """An MRT2 language model (and optionally its codec) ready to run.

    Args:
      cfg: the model's shape.
      graph, params: ``nnx.split`` of a filled :class:`generator.mrt2.lm.MRT2LM`.
      dtype: compute dtype (float32, or bfloat16 on accelerators; the package's models use bfloat16).
      codec: an object with ``init_state(codec_params, batch)`` and ``decode(codec_params, state, codes [F, B, 12]) ->
        (audio [B, F * 1920, 2], state)`` (:class:`generator.mrt2.codec.SpectroStreamDecoder`), or None.
      codec_params: its parameters (passed to the compiled call, never baked into it).
      unroll: "none" | "levels" | "all" (see :meth:`generator.mrt2.lm.MRT2LM.frames`); default
        ``$JAMGEN_MRT2_UNROLL``, else "levels" on a GPU/TPU and "none" on the CPU.
    """

    def __init__(self, cfg: MRT2Config, graph, params, *, dtype=jnp.float32, codec=None, codec_params=None,
                 unroll: str | None = None):
        self.cfg, self.dtype, self.codec = cfg, dtype, codec
        default = "none" if jax.default_backend() == "cpu" else "levels"
        self.unroll = unroll or os.environ.get(UNROLL_ENV) or default
        if self.unroll not in ("none", "levels", "all"):
            raise ValueError(f"{UNROLL_ENV} must be none, levels or all, not {self.unroll!r}")
        self._graph = graph
        self.params = {"lm": params, "codec": codec_params}
        self._jit_frames = jax.jit(self._frames, static_argnames=("keep_logits", "decode"), donate_argnums=(1,))
        self._jit_init = jax.jit(self._init, static_argnames=("batch",))

    def _init(self, params, rng, batch=1):
        lm = nnx.merge(self._graph, params["lm"])
        state = {"lm": lm.init_state(rng, batch, self.dtype)}
        if self.codec is not None:
            state["codec"] = self.codec.init_state(params["codec"], batch)
        return state

    def _frames(self, params, state, cond, temperature, top_k, keep_logits=False, decode=True):
        lm = nnx.merge(self._graph, params["lm"])
        lm_state, ids, logits = lm.frames(state["lm"], cond, temperature, top_k, self.dtype, keep_logits,
                                             self.unroll)
        state = dict(state, lm=lm_state)
        audio = None
        if decode and self.codec is not None:
            audio, codec_state = self.codec.decode(params["codec"], state["codec"], codes_of(ids))
            state["codec"] = codec_state
        return state, ids, logits, audio

    def init_state(self, rng, batch: int = 1):
        """A fresh context; ``rng`` is ``[batch, 2]`` uint32 key data (see :func:`key_data`)."""
        return self._jit_init(self.params, jnp.asarray(rng, jnp.uint32).reshape(batch, 2), batch=batch)

    def frames(self, state, cond, temperature, top_k, *, keep_logits=False, decode=True):
        """``cond`` [F, B, 144] -> (state, ids [F, B, 12], logits or None, audio or None). Donates ``state``."""
        with warnings.catch_warnings():  # CPU cannot donate; harmless
            warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
            return self._jit_frames(self.params, state, jnp.asarray(cond, jnp.int32),
                                    jnp.asarray(temperature, jnp.float32), jnp.asarray(top_k, jnp.int32),
                                    keep_logits=keep_logits, decode=decode)

    def run(self, rng, cond, temperature, top_k, *, keep_logits=False):
        """Tokens (and logits) of ``cond`` [F, B, 144] from a fresh state: the parity entry point."""
        state = self.init_state(rng, cond.shape[1])
        _, ids, logits, _ = self.frames(state, cond, temperature, top_k, keep_logits=keep_logits, decode=False)
        return ids, logits


@functools.lru_cache(maxsize=None)
def key_data(seed: int):
    """``[1, 2]`` uint32 key data of ``PRNGKey(seed)`` split once, as the package's initial state draws it."""
    return jax.random.split(jax.random.PRNGKey(int(seed)), 1)
