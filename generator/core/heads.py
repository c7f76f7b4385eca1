"""Prompt heads: small regressions from the prompt's MiniLM vector, stored beside a model's weights.

Why in the core: a note family reads things from the prompt that its network does not (the symbolic
family's arrangement, tempo and key: :mod:`generator.symbolic.arrangement`, :mod:`~generator.symbolic.tempo`,
:mod:`~generator.symbolic.pitch`; the groove family's arrangement, tempo and key), each a regression fitted in seconds on the
tokenised works and their captions. They are stored and checked alike in any family's checkpoint: a
``<name>.safetensors`` file whose SHA-256 and fit numbers live in the checkpoint's ``config.json``. The
tempo reading (:class:`TempoHead`), the parts (:class:`PartHead`) and the key (:class:`PitchHead`) are the same
for every family. Fitting the heads (and their refit
command, ``python -m generator.train heads <head>``) is training code and lives in :mod:`generator.train.heads`.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from generator.core import checkpoint as io


def save_head(directory, name: str, tensors: dict, metadata: dict, section: str, info: dict) -> str:
    """Write a small prompt head ``name`` into checkpoint ``directory`` (atomically), and record its
    SHA-256 under ``files`` and ``info`` under ``section`` in ``config.json``. Returns the path."""
    d = pathlib.Path(directory)
    meta = json.loads((d / "config.json").read_text())  # the family's loader checked its format
    meta.setdefault("files", {})[name] = io.write_tensors(d / name, tensors, {k: repr(v) for k, v in metadata.items()})
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


TEMPO_FILE = "tempo.safetensors"


class TempoHead:
    """log2(BPM) = style @ weight + bias; ``scale(style)`` is the playback speed factor."""

    def __init__(self, weight: np.ndarray, bias: float, native_bpm: float, strength: float = 1.0,
                 min_scale: float = 0.6, max_scale: float = 1.6):
        self.weight = np.asarray(weight, np.float32).reshape(-1)
        self.bias = float(bias)
        self.native_bpm = float(native_bpm)
        self.strength = float(strength)
        self.min_scale, self.max_scale = float(min_scale), float(max_scale)

    def bpm(self, style: np.ndarray) -> float:
        return float(2.0 ** (float(np.asarray(style, np.float32) @ self.weight) + self.bias))

    def scale(self, style: np.ndarray | None) -> float:
        """How much faster than the model's own tempo to play (1 without a prompt)."""
        if style is None:
            return 1.0
        raw = (self.bpm(style) / self.native_bpm) ** self.strength
        return float(min(self.max_scale, max(self.min_scale, raw)))

    # ---- files ---------------------------------------------------------------------------
    def save(self, directory, info: dict) -> str:
        """Writes ``tempo.safetensors`` into a checkpoint and ``info`` into its config.json."""
        settings = {"native_bpm": self.native_bpm, "strength": self.strength, "min_scale": self.min_scale,
                    "max_scale": self.max_scale}
        return save_head(directory, TEMPO_FILE, {"weight": self.weight, "bias": np.asarray([self.bias], np.float32)},
                              settings, "tempo", {**settings, **info})

    @classmethod
    def load(cls, directory, digest: str | None = None) -> "TempoHead | None":
        """The head of a checkpoint directory, or None when it has none; a damaged file is refused
        with a one-line error."""
        found = load_head(directory, TEMPO_FILE, digest, {"weight": (None,), "bias": (1,)})
        if found is None:
            return None
        tensors, meta = found
        native = meta.get("native_bpm", 0.0)
        if not native > 0:
            raise ValueError(f"{pathlib.Path(directory) / TEMPO_FILE}: expected native_bpm > 0, got {native}")
        return cls(tensors["weight"], float(tensors["bias"][0]), native, meta.get("strength", 1.0),
                   meta.get("min_scale", 0.6), meta.get("max_scale", 1.6))


ARRANGEMENT_FILE = "arrangement.safetensors"
NEG = -1e9


class PartHead:
    """Which of the 16 parts (:data:`generator.core.gm.N_PARTS`) a prompt lets play:
    p(part plays | prompt vector) = sigmoid(W v + b). Families turn :meth:`bias16` into a bias on their own
    PART tokens: banned parts (p < ``floor``; never the most likely one) get -1e9, the others ``strength * log p``
    (a product of experts with the model's own part choice)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, floor: float = 0.2, strength: float = 1.0):
        self.weight = np.asarray(weight, np.float32)  # [384, 16]
        self.bias = np.asarray(bias, np.float32)  # [16]
        self.floor, self.strength = float(floor), float(strength)

    def probs(self, style: np.ndarray) -> np.ndarray:
        z = np.asarray(style, np.float32) @ self.weight + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def allowed(self, style: np.ndarray | None) -> np.ndarray:
        """bool [16]: the parts the prompt lets play (all of them without a prompt)."""
        if style is None:
            return np.ones(len(self.bias), bool)
        p = self.probs(style)
        keep = p >= self.floor
        keep[int(np.argmax(p))] = True
        return keep

    def bias16(self, style: np.ndarray | None) -> np.ndarray:
        """float32 [16]: the log-probability bias of each part's token (zero without a prompt)."""
        if style is None:
            return np.zeros(len(self.bias), np.float32)
        p = self.probs(style)
        return np.where(self.allowed(style), self.strength * np.log(np.maximum(p, 1e-6)), NEG).astype(np.float32)

    def save(self, directory, info: dict) -> str:
        """Writes ``arrangement.safetensors`` into a checkpoint and ``info`` into its config.json."""
        return save_head(directory, ARRANGEMENT_FILE, {"weight": self.weight, "bias": self.bias},
                         {"floor": self.floor, "strength": self.strength}, "arrangement",
                         {"floor": self.floor, "strength": self.strength, **info})

    @classmethod
    def load(cls, directory, digest: str | None = None):
        """The head of a checkpoint directory, or None when it has none."""
        found = load_head(directory, ARRANGEMENT_FILE, digest, {"weight": (None, 16), "bias": (16,)})
        if found is None:
            return None
        tensors, meta = found
        return cls(tensors["weight"], tensors["bias"], meta.get("floor", 0.2), meta.get("strength", 1.0))


PITCH_FILE = "pitch.safetensors"


class PitchHead:
    """The key a prompt names: p(pitch class | prompt vector) = softmax(v W + b). Families turn
    :meth:`pitch_bias` into a bias on their own melodic note tokens (never drums, whose "pitches" are
    instruments): ``strength * (log p(pitch class) - mean)``, a product of experts with the model's choice; a
    prompt that names no key predicts a nearly flat distribution, so its bias is nearly zero."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, strength: float = 1.0):
        self.weight = np.asarray(weight, np.float32)  # [384, 12]
        self.bias = np.asarray(bias, np.float32)  # [12]
        self.strength = float(strength)

    def probs(self, style: np.ndarray) -> np.ndarray:
        z = np.asarray(style, np.float32) @ self.weight + self.bias
        e = np.exp(z - z.max())
        return e / e.sum()

    def pitch_bias(self, style: np.ndarray | None) -> np.ndarray:
        """float32 [128]: the bias of each MIDI pitch of a melodic part (zero without a prompt)."""
        if style is None:
            return np.zeros(128, np.float32)
        logp = np.log(np.maximum(self.probs(style), 1e-6))
        return np.tile(self.strength * (logp - logp.mean()), 11)[:128].astype(np.float32)

    # ---- files ---------------------------------------------------------------------------
    def save(self, directory, info: dict) -> str:
        """Writes ``pitch.safetensors`` into a checkpoint and ``info`` into its config.json."""
        return save_head(directory, PITCH_FILE, {"weight": self.weight, "bias": self.bias},
                              {"strength": self.strength}, "pitch", {"strength": self.strength, **info})

    @classmethod
    def load(cls, directory, digest: str | None = None) -> "PitchHead | None":
        """The head of a checkpoint directory, or None when it has none; a damaged file is refused
        with a one-line error."""
        found = load_head(directory, PITCH_FILE, digest, {"weight": (None, 12), "bias": (12,)})
        if found is None:
            return None
        tensors, meta = found
        return cls(tensors["weight"], tensors["bias"], meta.get("strength", 1.0))
