"""Checkpoint I/O every family shares: a JSON config plus safetensors weight files, never pickle.

Why: weights must be loadable without executing code, and a truncated or tampered file must give a
clear one-line error instead of garbage music. A checkpoint directory holds ``config.json``
(``{"format": <family tag>, "version": 1, "config": {...}, "files": {name: sha256}, ...}``) and the
weight files it names. Reading checks the format tag (so one family's loader never accepts another's
directory), each file's SHA-256, and then every tensor's name, shape and dtype against a model built
from the config (:func:`assign`). Writes are atomic (a temporary file, then a rename).

The family-specific layouts live with the families: :mod:`generator.audio.checkpoint` and
:mod:`generator.symbolic.checkpoint`. This module imports no JAX until a function needs it, so
``jamgen models`` and the loaders' format checks stay instant.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Any, Callable

import numpy as np

SHIPPED = pathlib.Path(__file__).resolve().parent.parent / "checkpoints"  # the checkpoints in the repository


def sha256(path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- config.json ----------------------------------------------------------------------------------
def has_format(directory, fmt: str) -> bool:
    """Whether ``directory/config.json`` exists and carries format tag ``fmt`` (never raises)."""
    path = pathlib.Path(directory) / "config.json"
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("format") == fmt
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, OSError):
        return False


def read_meta(directory, fmt: str, version: int, kind: str) -> dict[str, Any]:
    """The parsed ``config.json`` of a ``kind`` checkpoint (e.g. "symbolic checkpoint").

    Raises:
      FileNotFoundError: no config.json.
      ValueError: not JSON, another format tag, or an unsupported version (one line each).
    """
    d = pathlib.Path(directory)
    path = d / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{d} is not a {kind} directory (no config.json)")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise ValueError(f"{path} is not a jamgen {kind}")
    if meta.get("version") != version:
        raise ValueError(f"{path}: unsupported checkpoint version {meta.get('version')!r}")
    return meta


def write_meta(directory, meta: dict[str, Any]) -> None:
    """Write ``config.json`` atomically."""
    d = pathlib.Path(directory)
    (d / "config.json.tmp").write_text(json.dumps(meta, indent=2))
    (d / "config.json.tmp").replace(d / "config.json")


# --- weight files ---------------------------------------------------------------------------------
def write_tensors(path, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> str:
    """Write a safetensors file atomically; returns its SHA-256 (for config.json's ``files``)."""
    from safetensors.numpy import save_file

    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)
    return sha256(path)


def read_tensors(path, digest: str | None) -> dict[str, np.ndarray]:
    """The tensors of a weight file, after checking it exists, matches ``digest`` and parses.

    Raises:
      FileNotFoundError: the file is missing.
      ValueError: corrupt (SHA-256 differs from config.json) or not a safetensors file.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path.parent} has no {path.name}")
    if digest is not None and sha256(path) != digest:
        raise ValueError(f"{path} is corrupt: its SHA-256 does not match config.json "
                         "(truncated or modified file)")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from err


def to_float32(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """float16 tensors (a ``half`` checkpoint) widened to the float32 the models compute in."""
    return {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in tensors.items()}


def halve(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """float32 -> float16 where the values fit (EMA statistics that would overflow stay float32)."""
    out = {}
    for k, v in tensors.items():
        if v.dtype == np.float32 and (v.size == 0 or float(np.abs(v).max()) < 60000.0):
            v = v.astype(np.float16)
        out[k] = v
    return out


# --- modules <-> tensors --------------------------------------------------------------------------
def key_of(path) -> str:
    """The tensor name of a pytree path: ``('lm', 'blocks', 0, 'attn', 'qkv', 'kernel')`` -> ``lm/blocks/0/...``."""
    parts = []
    for k in path:
        for attr in ("key", "idx", "name"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(p for p in parts if p != "value")


def flatten(module) -> dict[str, np.ndarray]:
    """All variables of an NNX ``module`` (params, codebooks, EMA stats) as ``a/b/c -> array``."""
    import jax
    from flax import nnx

    leaves, _ = jax.tree_util.tree_flatten_with_path(nnx.state(module))
    return {key_of(p): np.asarray(v) for p, v in leaves}


def assign(module, tensors: dict[str, np.ndarray], source: str) -> None:
    """Replace every variable of ``module`` by ``tensors`` after checking names, shapes, dtypes."""
    import jax
    from flax import nnx

    state = nnx.state(module)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(state)
    want = {key_of(p): v for p, v in leaves}
    missing, extra = set(want) - set(tensors), set(tensors) - set(want)
    if missing or extra:
        raise ValueError(f"{source}: tensor names do not match the config "
                         f"(missing {sorted(missing)[:3]}, unexpected {sorted(extra)[:3]})")
    new = []
    for p, v in leaves:
        t = tensors[key_of(p)]
        if t.shape != v.shape or t.dtype != v.dtype:
            raise ValueError(f"{source}: {key_of(p)} is {t.dtype}{list(t.shape)}, "
                             f"expected {v.dtype}{list(v.shape)}")
        new.append(jax.numpy.asarray(t))
    nnx.update(module, jax.tree_util.tree_unflatten(treedef, new))


# --- one-model checkpoints (the note families) ---------------------------------------------------
def save_model(directory, fmt: str, version: int, kind: str, config, model, train_info: dict | None = None,
               half: bool = False) -> None:
    """Write ``model.safetensors`` and ``config.json`` (format ``fmt``), keeping the prompt heads a directory
    already has; ``half`` stores float16 (a shipped checkpoint: half the size in git)."""
    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors = flatten(model)
    digest = write_tensors(d / "model.safetensors", halve(tensors) if half else tensors)
    meta = read_meta(d, fmt, version, kind) if has_format(d, fmt) else {}
    meta.update({"format": fmt, "version": version, "config": config.to_dict(), "train": train_info or {}})
    meta.setdefault("files", {})["model.safetensors"] = digest
    write_meta(d, meta)


def load_model(directory, fmt: str, version: int, kind: str, config_cls, model_cls):
    """-> (config, model with the checkpoint's weights, meta) of a one-model checkpoint."""
    from flax import nnx

    d = pathlib.Path(directory)
    meta = read_meta(d, fmt, version, kind)
    config = config_cls.from_dict(meta["config"])
    path = d / "model.safetensors"
    tensors = read_tensors(path, meta.get("files", {}).get(path.name))
    model = nnx.eval_shape(lambda: model_cls(config, rngs=nnx.Rngs(0)))
    assign(model, to_float32(tensors), str(path))
    return config, model, meta


class ModelFormat:
    """A family's one-model checkpoint format: its tag, version and (lazily) its config and model classes.

    ``classes`` returns ``(config class, model class)`` when first needed, so checking a directory's format
    imports no JAX.
    """

    def __init__(self, fmt: str, version: int, kind: str, classes: Callable[[], tuple[Any, Any]]):
        self.fmt, self.version, self.kind, self._classes = fmt, version, kind, classes

    def save(self, directory, config, model, train_info: dict | None = None, half: bool = False) -> None:
        """Write the weights and ``config.json``, keeping the prompt heads the directory already has."""
        save_model(directory, self.fmt, self.version, self.kind, config, model, train_info, half)

    def is_checkpoint(self, directory) -> bool:
        return has_format(directory, self.fmt)

    def read_meta(self, directory) -> dict[str, Any]:
        return read_meta(directory, self.fmt, self.version, self.kind)

    def load(self, directory):
        """-> (config, model with the checkpoint's weights, meta)."""
        return load_model(directory, self.fmt, self.version, self.kind, *self._classes())

