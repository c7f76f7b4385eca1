"""Symbolic-model checkpoints: ``config.json`` + ``model.safetensors`` (+ optimiser/trainer state when
training, + prompt heads), format tag ``jamgen-symbolic``, never pickle.

The guarantees are :mod:`generator.core.checkpoint`'s (SHA-256 of every file in ``config.json``; names,
shapes and dtypes checked against a model built from the config); the format tag keeps the other families'
loaders from accepting a symbolic directory, and this one from accepting theirs.

Layout::

    config.json        {"format": "jamgen-symbolic", "version": 1, "config": {...}, "files": {...},
                        "train": {...}}   # "train": step, losses, held-out NLL (informational)
    model.safetensors  arrangement.safetensors  tempo.safetensors  pitch.safetensors
    opt.safetensors    trainer.json       # only in training run directories (resume)
"""

from __future__ import annotations

from generator.core.checkpoint import ModelFormat


def _classes():
    from generator.symbolic.model import SymbolicConfig, MusicTransformer  # jax: only when a model is built

    return SymbolicConfig, MusicTransformer


FORMAT = ModelFormat("jamgen-symbolic", 1, "symbolic checkpoint", _classes)
save, is_checkpoint, read_meta, load = FORMAT.save, FORMAT.is_checkpoint, FORMAT.read_meta, FORMAT.load
