"""Where the official Magenta RealTime 2 files live, and which of them are missing.

Kept apart from the adapter (:mod:`generator.backends.magenta_rt2`) on purpose: this module
imports neither ``magenta_rt`` nor JAX, so ``jamgen models`` and the loader's pre-flight check can
run on a machine without the extra and answer in milliseconds. It also never creates
directories (``magenta_rt.paths.checkpoints_dir()`` does, as a side effect), because listing
models must not change the disk.

Layout, as written by the package's own ``mrt`` CLI (``magenta_rt/cli/models_commands.py``)::

    $MAGENTA_HOME/magenta-rt-v2/          MAGENTA_HOME defaults to ~/Documents/Magenta
      checkpoints/<name>.safetensors      `mrt checkpoints download <name>` (LM + SpectroStream)
      resources/musiccoca/*.tflite, spm   `mrt models init` (text -> style embedding -> tokens)

The JAX path reads the codec from inside the checkpoint, so ``resources/spectrostream`` (also
fetched by ``mrt models init``) is not required here.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib

MODELS = ("mrt2_small", "mrt2_base")
SPEC_PREFIX = "magenta:"
PIP_EXTRA = "pip install 'magenta-rt==2.0.3'"

# What MusicCoCa needs for text prompts (magenta_rt.musiccoca.MusicCoCa). The audio encoder
# files are only used for audio prompts, which this backend does not expose.
MUSICCOCA_REQUIRED = ("spm.model", "text_encoder.tflite", "pretrained_vector_quantizer.tflite")
# Used when present: maps text embeddings into the audio embedding space, as `mrt jax generate`
# and the official C++ engine do.
MUSICCOCA_OPTIONAL = ("mapper.tflite",)

SIZES = {"mrt2_small": "230M parameters (official: real time on any Apple M-series)",
         "mrt2_base": "2.4B parameters (official: real time on M2 Max class or better)"}


def magenta_home() -> pathlib.Path:
    """``$MAGENTA_HOME/magenta-rt-v2``, resolved now (the package resolves it at import time)."""
    base = os.environ.get("MAGENTA_HOME") or str(pathlib.Path.home() / "Documents" / "Magenta")
    return pathlib.Path(base).expanduser() / "magenta-rt-v2"


def checkpoint_path(name: str) -> pathlib.Path:
    return magenta_home() / "checkpoints" / f"{name}.safetensors"


def musiccoca_dir() -> pathlib.Path:
    return magenta_home() / "resources" / "musiccoca"


def extra_installed() -> bool:
    """Whether ``magenta_rt`` is importable (checked without importing it)."""
    return importlib.util.find_spec("magenta_rt") is not None


def missing_files(name: str) -> list[pathlib.Path]:
    """The files ``magenta:<name>`` needs that are not on disk (empty = ready to load)."""
    if name not in MODELS:
        raise ValueError(f"unknown Magenta RT 2 model {name!r}; choose one of {', '.join(MODELS)}")
    missing = [] if checkpoint_path(name).is_file() else [checkpoint_path(name)]
    missing += [musiccoca_dir() / f for f in MUSICCOCA_REQUIRED if not (musiccoca_dir() / f).is_file()]
    return missing


def fetch_commands(name: str, missing: list[pathlib.Path] | None = None) -> list[str]:
    """The official commands that fetch what ``magenta:<name>`` lacks (all of it when
    ``missing`` is None). Run by the user, never by jamgen: nothing downloads at run time."""
    missing = missing_files(name) if missing is None else missing
    home = os.environ.get("MAGENTA_HOME")
    prefix = f"MAGENTA_HOME={home} " if home else ""
    cmds = []
    if not extra_installed():
        cmds.append(PIP_EXTRA)
    if checkpoint_path(name) in missing:
        cmds.append(f"{prefix}mrt checkpoints download {name}")
    if any(p.parent == musiccoca_dir() for p in missing):
        cmds.append(f"{prefix}mrt models init")
    return cmds


def preflight(name: str) -> None:
    """Check the extra and the files for ``magenta:<name>`` before anything heavy is imported.

    Raises (one-line messages, which :func:`generator.load` turns into ``ModelLoadError``):
      ValueError: an unknown model name.
      ImportError: the ``magenta-rt`` package is not installed.
      FileNotFoundError: weights or MusicCoCa resources are missing (says which and how to fetch).
    """
    if name not in MODELS:
        raise ValueError(f"unknown Magenta RT 2 model {name!r}; choose one of "
                         f"{', '.join(SPEC_PREFIX + m for m in MODELS)}")
    if not extra_installed():
        raise ImportError(f"the magenta-rt package is not installed; install it with: {PIP_EXTRA}")
    problem = describe_missing(name)
    if problem:
        raise FileNotFoundError(problem)


def describe_missing(name: str) -> str | None:
    """One line for an error message, or None when everything is there."""
    missing = missing_files(name)
    if not missing:
        return None
    files = ", ".join(str(p.relative_to(magenta_home())) for p in missing)
    return (f"missing {files} under {magenta_home()}; fetch with: "
            f"{' && '.join(fetch_commands(name, missing))} (jamgen models lists them)")
