"""Checkpoints: one JSON config plus safetensors weight files per model, never pickle.

Why: weights must be loadable without executing code, and a truncated or tampered file must give
a clear one-line error instead of garbage music. ``config.json`` records the model config and the
SHA-256 of every weight file; loading checks the digests, then every tensor's name, shape and
dtype against a freshly built model of that config.

Layout of a checkpoint directory::

    config.json          {"format": "jamgen", "version": 1, "config": {...}, "files": {name: sha256}}
    codec.safetensors    lm.safetensors    style.safetensors
"""

from __future__ import annotations

import hashlib
import json
import pathlib

import jax
import numpy as np
from flax import nnx

from generator.config import SystemConfig

FORMAT, VERSION = "jamgen", 1
PARTS = ("codec", "lm", "style")


def _key(path) -> str:
    parts = []
    for k in path:
        for attr in ("key", "idx", "name"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(p for p in parts if p != "value")


def flatten(module: nnx.Module) -> dict[str, np.ndarray]:
    """All variables of ``module`` (params, codebooks, EMA stats) as ``a/b/c -> array``."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(nnx.state(module))
    return {_key(p): np.asarray(v) for p, v in leaves}


def assign(module: nnx.Module, tensors: dict[str, np.ndarray], source: str):
    """Replace every variable of ``module`` by ``tensors`` after checking names, shapes, dtypes."""
    state = nnx.state(module)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(state)
    want = {_key(p): v for p, v in leaves}
    missing, extra = set(want) - set(tensors), set(tensors) - set(want)
    if missing or extra:
        raise ValueError(f"{source}: tensor names do not match the config "
                         f"(missing {sorted(missing)[:3]}, unexpected {sorted(extra)[:3]})")
    new = []
    for p, v in leaves:
        t = tensors[_key(p)]
        if t.shape != v.shape or t.dtype != v.dtype:
            raise ValueError(f"{source}: {_key(p)} is {t.dtype}{list(t.shape)}, "
                             f"expected {v.dtype}{list(v.shape)}")
        new.append(jax.numpy.asarray(t))
    nnx.update(module, jax.tree_util.tree_unflatten(treedef, new))


def _sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def to_float32(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """float16 tensors (a ``half`` checkpoint) widened to the float32 the models compute in."""
    return {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in tensors.items()}


def _halve(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """float32 -> float16 where the values fit (EMA statistics that would overflow stay float32)."""
    out = {}
    for k, v in tensors.items():
        if v.dtype == np.float32 and (v.size == 0 or float(np.abs(v).max()) < 60000.0):
            v = v.astype(np.float16)
        out[k] = v
    return out


def save(directory, config: SystemConfig, modules: dict[str, nnx.Module], half: bool = False):
    """Write ``config.json`` and one safetensors file per module; ``half`` stores float16 (half the
    size of the shipped default in git; loading widens back to float32)."""
    from safetensors.numpy import save_file

    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, module in modules.items():
        fname = f"{name}.safetensors"
        tensors = flatten(module)
        save_file(_halve(tensors) if half else tensors, str(d / fname))
        files[fname] = _sha256(d / fname)
    meta = {"format": FORMAT, "version": VERSION, "config": config.to_dict(), "files": files}
    (d / "config.json").write_text(json.dumps(meta, indent=2))


def read_config(directory) -> tuple[SystemConfig, dict]:
    d = pathlib.Path(directory)
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{d} is not a checkpoint directory (no config.json)")
    try:
        meta = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{cfg_path} is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{cfg_path} is not a jamgen checkpoint config")
    if meta.get("version") != VERSION:
        raise ValueError(f"{cfg_path}: unsupported checkpoint version {meta.get('version')!r}")
    return SystemConfig.from_dict(meta["config"]), meta.get("files", {})


def load_into(directory, files: dict[str, str], modules: dict[str, nnx.Module]):
    """Verify digests and fill ``modules`` from ``<name>.safetensors`` in ``directory``."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    d = pathlib.Path(directory)
    for name, module in modules.items():
        path = d / f"{name}.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {d} has no {path.name}")
        digest = files.get(path.name)
        if digest is not None and _sha256(path) != digest:
            raise ValueError(f"{path} is corrupt: its SHA-256 does not match config.json "
                             "(truncated or modified file)")
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise ValueError(f"{path} is not a readable safetensors file: {err}") from err
        assign(module, to_float32(tensors), str(path))
