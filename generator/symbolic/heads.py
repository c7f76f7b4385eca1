"""The prompt heads' shared file handling: their files inside a symbolic checkpoint.

Why one module: the arrangement, tempo and pitch heads (:mod:`generator.symbolic.arrangement`,
:mod:`~generator.symbolic.tempo`, :mod:`~generator.symbolic.pitch`) are each a small regression from
the prompt's MiniLM vector, fitted in seconds on the tokenised works and their captions. They are
stored and checked alike: a ``<name>.safetensors`` file whose SHA-256 and fit numbers live in the
checkpoint's ``config.json``. Fitting them (and their shared refit command,
``python -m generator.train heads <head>``) is training code and lives in :mod:`generator.train.heads`.
"""

from __future__ import annotations

import pathlib

from generator.core import checkpoint as io
from generator.symbolic.checkpoint import read_meta


def save_head(directory, name: str, tensors: dict, metadata: dict, section: str, info: dict) -> str:
    """Write a small prompt head ``name`` into checkpoint ``directory`` (atomically), and record its
    SHA-256 under ``files`` and ``info`` under ``section`` in ``config.json``. Returns the path."""
    d = pathlib.Path(directory)
    meta = read_meta(d)
    meta["files"][name] = io.write_tensors(d / name, tensors, {k: repr(v) for k, v in metadata.items()})
    meta[section] = info
    io.write_meta(d, meta)
    return str(d / name)


def load_head(directory, name: str, digest: str | None, shapes: dict) -> tuple[dict, dict] | None:
    """(tensors, metadata as floats) of head file ``name`` in ``directory``; None when there is none.
    ``shapes`` names every tensor the head needs and its shape (None: any size). A file whose SHA-256
    differs from ``digest`` (from config.json), that is not readable, or whose tensors are missing or
    misshapen is refused with a one-line ValueError naming it."""
    from safetensors import SafetensorError, safe_open

    path = pathlib.Path(directory) / name
    if not path.is_file():
        return None
    if digest is not None and io.sha256(path) != digest:
        raise ValueError(f"{path} is corrupt: its SHA-256 does not match config.json")
    try:
        with safe_open(str(path), "np") as f:
            meta = {k: float(v) for k, v in (f.metadata() or {}).items()}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from err

    def fits(key, shape):
        t = tensors.get(key)
        return t is not None and t.ndim == len(shape) and all(s is None or s == n for s, n in zip(shape, t.shape))

    if not all(fits(k, shape) for k, shape in shapes.items()):
        want = ", ".join(f"{k} {list(s)}" for k, s in shapes.items())
        got = ", ".join(f"{k} {list(getattr(tensors.get(k), 'shape', ()))}" for k in shapes)
        raise ValueError(f"{path}: expected {want}, got {got}".replace("None", "D"))
    return tensors, meta
