"""Symbolic-model checkpoints: ``config.json`` + ``model.safetensors`` (+ optimiser/trainer state when
training), never pickle.

Why reuse :mod:`generator.core.checkpoint`'s helpers: the same guarantees as the audio model (SHA-256 of
every file in ``config.json``; names, shapes and dtypes checked against a model built from the
config) with a different ``format`` tag, so neither loader accepts the other's directory.

Layout::

    config.json        {"format": "jamgen-symbolic", "version": 1, "config": {...}, "files": {...},
                        "train": {...}}   # "train": step, losses, held-out NLL (informational)
    model.safetensors
    opt.safetensors    trainer.json       # only in training run directories (resume)
"""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING

from generator.core import checkpoint as io

if TYPE_CHECKING:  # jax-free at import: the loader asks ``is_checkpoint`` before importing jax
    from generator.symbolic.model import MusicTransformer, SymbolicConfig

FORMAT, VERSION = "jamgen-symbolic", 1
KIND = "symbolic checkpoint"


def save(directory, config: "SymbolicConfig", model: "MusicTransformer", train_info: dict | None = None):
    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    digest = io.write_tensors(d / "model.safetensors", io.flatten(model))
    io.write_meta(d, {"format": FORMAT, "version": VERSION, "config": config.to_dict(),
                      "files": {"model.safetensors": digest}, "train": train_info or {}})


def is_checkpoint(directory) -> bool:
    return io.has_format(directory, FORMAT)


def read_meta(directory) -> dict:
    return io.read_meta(directory, FORMAT, VERSION, KIND)


def load(directory) -> tuple["SymbolicConfig", "MusicTransformer", dict]:
    """-> (config, model with the checkpoint's weights, meta)."""
    from flax import nnx

    from generator.symbolic.model import MusicTransformer, SymbolicConfig

    d = pathlib.Path(directory)
    meta = read_meta(d)
    config = SymbolicConfig.from_dict(meta["config"])
    path = d / "model.safetensors"
    tensors = io.read_tensors(path, meta.get("files", {}).get(path.name))
    model = nnx.eval_shape(lambda: MusicTransformer(config, rngs=nnx.Rngs(0)))
    io.assign(model, tensors, str(path))
    return config, model, meta
