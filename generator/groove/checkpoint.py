"""Groove-model checkpoints: ``config.json`` + ``model.safetensors`` (+ its arrangement and tempo heads), format
tag ``jamgen-groove``.

The guarantees are :mod:`generator.core.checkpoint`'s (SHA-256 of every file, names, shapes and dtypes
checked against a model built from the config); the format tag keeps the other families' loaders from
accepting a groove directory, and this one from accepting theirs.
"""

from __future__ import annotations

from generator.core.checkpoint import ModelFormat


def _classes():
    from generator.groove.model import GrooveConfig, GrooveTransformer  # jax: only when a model is built

    return GrooveConfig, GrooveTransformer


FORMAT = ModelFormat("jamgen-groove", 1, "groove checkpoint", _classes)
save, is_checkpoint, read_meta, load = FORMAT.save, FORMAT.is_checkpoint, FORMAT.read_meta, FORMAT.load
