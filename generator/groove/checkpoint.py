"""Groove-model checkpoints: ``config.json`` + ``model.safetensors``, format tag ``jamgen-groove``.

The guarantees are :mod:`generator.core.checkpoint`'s (SHA-256 of every file, names, shapes and dtypes
checked against a model built from the config); the format tag keeps the other families' loaders from
accepting a groove directory, and this one from accepting theirs.
"""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING

from generator.core import checkpoint as io

if TYPE_CHECKING:  # jax-free at import: the loader asks ``is_checkpoint`` before importing jax
    from generator.groove.model import GrooveConfig, GrooveTransformer

FORMAT, VERSION = "jamgen-groove", 1
KIND = "groove checkpoint"


def save(directory, config: "GrooveConfig", model: "GrooveTransformer", train_info: dict | None = None,
         half: bool = False):
    """Write the weights and ``config.json`` (keeping the heads a directory already has); ``half`` stores
    float16 (the shipped checkpoint: half the size in git; loading widens back to float32)."""
    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors = io.flatten(model)
    digest = io.write_tensors(d / "model.safetensors", io.halve(tensors) if half else tensors)
    meta = io.read_meta(d, FORMAT, VERSION, KIND) if io.has_format(d, FORMAT) else {}
    meta.update({"format": FORMAT, "version": VERSION, "config": config.to_dict(), "train": train_info or {}})
    meta.setdefault("files", {})["model.safetensors"] = digest
    io.write_meta(d, meta)


def is_checkpoint(directory) -> bool:
    return io.has_format(directory, FORMAT)


def read_meta(directory) -> dict:
    return io.read_meta(directory, FORMAT, VERSION, KIND)


def load(directory) -> tuple["GrooveConfig", "GrooveTransformer", dict]:
    """-> (config, model with the checkpoint's weights, meta)."""
    from flax import nnx

    from generator.groove.model import GrooveConfig, GrooveTransformer

    d = pathlib.Path(directory)
    meta = read_meta(d)
    config = GrooveConfig.from_dict(meta["config"])
    path = d / "model.safetensors"
    tensors = io.read_tensors(path, meta.get("files", {}).get(path.name))
    model = nnx.eval_shape(lambda: GrooveTransformer(config, rngs=nnx.Rngs(0)))
    io.assign(model, io.to_float32(tensors), str(path))
    return config, model, meta
