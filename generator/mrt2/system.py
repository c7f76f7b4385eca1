"""Loading MRT2 into the native engine (the Generator comes below)."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from generator.mrt2 import weights
from generator.mrt2.config import PRESETS
from generator.mrt2.engine import Engine
from generator.mrt2.lm import MRT2LM


def load_lm(preset: str, path, *, dtype=jnp.float32, param_dtype=jnp.float32, codec=None) -> Engine:
    cfg = PRESETS[preset]
    ckpt = weights.Checkpoint(path)
    graph, params = weights.fill(nnx.eval_shape(lambda: MRT2LM(cfg)), ckpt, dtype=param_dtype)
    return Engine(cfg, graph, params, dtype=dtype, codec=codec)
