"""Audio-family checkpoints: one ``config.json`` and one safetensors file per part (codec, lm, style).

Layout of a checkpoint directory::

    config.json          {"format": "jamgen", "version": 1, "config": {...}, "files": {name: sha256}}
    codec.safetensors    lm.safetensors    style.safetensors

The checks (digests, names, shapes, dtypes) are :mod:`generator.core.checkpoint`'s.
"""

from __future__ import annotations

import pathlib

from generator.audio.config import SystemConfig
from generator.core import checkpoint as io

FORMAT, VERSION = "jamgen", 1
PARTS = ("codec", "lm", "style")


def save(directory, config: SystemConfig, modules: dict, half: bool = False):
    """Write ``config.json`` and one safetensors file per module; ``half`` stores float16 (half the
    size of the shipped default in git; loading widens back to float32)."""
    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, module in modules.items():
        tensors = io.flatten(module)
        files[f"{name}.safetensors"] = io.write_tensors(d / f"{name}.safetensors",
                                                        io.halve(tensors) if half else tensors)
    io.write_meta(d, {"format": FORMAT, "version": VERSION, "config": config.to_dict(), "files": files})


def read_config(directory) -> tuple[SystemConfig, dict]:
    """(config, {file name: sha256}) of an audio checkpoint directory (one-line errors)."""
    meta = io.read_meta(directory, FORMAT, VERSION, "checkpoint")
    return SystemConfig.from_dict(meta["config"]), meta.get("files", {})


def load_into(directory, files: dict[str, str], modules: dict):
    """Verify digests and fill ``modules`` from ``<name>.safetensors`` in ``directory``."""
    d = pathlib.Path(directory)
    for name, module in modules.items():
        path = d / f"{name}.safetensors"
        io.assign(module, io.to_float32(io.read_tensors(path, files.get(path.name))), str(path))
