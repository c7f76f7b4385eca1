"""Symbolic-model checkpoints: ``config.json`` + ``model.safetensors`` (+ optimiser/trainer state when
training), never pickle.

Why reuse :mod:`generator.checkpoint`'s helpers: the same guarantees as the audio model (SHA-256 of
every file in ``config.json``; names, shapes and dtypes checked against a model built from the
config) with a different ``format`` tag, so neither loader accepts the other's directory.

Layout::

    config.json        {"format": "jamgen-symbolic", "version": 1, "config": {...}, "files": {...},
                        "train": {...}}   # "train": step, losses, held-out NLL (informational)
    model.safetensors
    opt.safetensors    trainer.json       # only in training run directories (resume)
"""

from __future__ import annotations

import json
import pathlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # jax-free at import: the loader asks ``is_checkpoint`` before importing jax
    from generator.symbolic.model import MusicTransformer, SymbolicConfig

FORMAT, VERSION = "jamgen-symbolic", 1


def save(directory, config: "SymbolicConfig", model: "MusicTransformer", train_info: dict | None = None):
    from safetensors.numpy import save_file

    from generator.checkpoint import _sha256, flatten

    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / "model.safetensors.tmp"
    save_file(flatten(model), str(tmp))
    tmp.replace(d / "model.safetensors")
    meta = {"format": FORMAT, "version": VERSION, "config": config.to_dict(),
            "files": {"model.safetensors": _sha256(d / "model.safetensors")}, "train": train_info or {}}
    (d / "config.json.tmp").write_text(json.dumps(meta, indent=2))
    (d / "config.json.tmp").replace(d / "config.json")


def is_checkpoint(directory) -> bool:
    path = pathlib.Path(directory) / "config.json"
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("format") == FORMAT
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def read_meta(directory) -> dict:
    d = pathlib.Path(directory)
    path = d / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{d} is not a symbolic checkpoint directory (no config.json)")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a jamgen symbolic checkpoint")
    if meta.get("version") != VERSION:
        raise ValueError(f"{path}: unsupported checkpoint version {meta.get('version')!r}")
    return meta


def load(directory) -> tuple["SymbolicConfig", "MusicTransformer", dict]:
    """-> (config, model with the checkpoint's weights, meta)."""
    from safetensors import SafetensorError
    from flax import nnx
    from safetensors.numpy import load_file

    from generator.checkpoint import _sha256, assign
    from generator.symbolic.model import MusicTransformer, SymbolicConfig

    d = pathlib.Path(directory)
    meta = read_meta(d)
    config = SymbolicConfig.from_dict(meta["config"])
    path = d / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {d} has no model.safetensors")
    digest = meta.get("files", {}).get(path.name)
    if digest is not None and _sha256(path) != digest:
        raise ValueError(f"{path} is corrupt: its SHA-256 does not match config.json")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from err
    model = nnx.eval_shape(lambda: MusicTransformer(config, rngs=nnx.Rngs(0)))
    assign(model, tensors, str(path))
    return config, model, meta

