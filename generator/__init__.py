"""jamgen's music generators behind one small interface (see :mod:`generator.core.contract`).

``load(spec)`` is the only entry point the daemon and the CLI use:

- a preset name (``tiny``, ...) or a checkpoint directory (``config.json`` + ``*.safetensors``):
  the audio-token family, :mod:`generator.audio.system`;
- ``python:package.module:factory``: any object implementing the contract, built by calling
  ``factory()`` (used by the tests' deterministic generator and by third-party backends); an object
  that does not subclass :class:`generator.core.contract.Generator` is wrapped by ``adapt``;
- ``magenta:mrt2_small`` / ``magenta:mrt2_base``: the official Magenta RealTime 2 weights through
  the optional ``magenta-rt`` package (:mod:`generator.backends.magenta_rt2`). The bare names
  ``mrt2_small`` / ``mrt2_base`` stay jamgen's own random-weight presets of the same shapes;
- ``mrt2:small`` / ``mrt2:base``: the same official weights in jamgen's own streaming engine
  (:mod:`generator.mrt2.system`; the package is still needed for MusicCoCa);
- ``symbolic`` / ``symbolic-tiny`` or a symbolic checkpoint directory: the Music Transformer played
  by FluidSynth, with MIDI out (:mod:`generator.symbolic.system`);
- ``groove`` / ``groove-tiny`` or a groove checkpoint directory: the beat-grid, multi-track family played on
  a tempo clock (the ``bpm`` control) by FluidSynth, with MIDI out (:mod:`generator.groove.system`);
- ``remote:ws://HOST:PORT[/MODEL]`` (or ``wss://``): a model served by ``jamgen serve`` on another machine
  (:mod:`generator.backends.remote`, docs/remote.md).
"""

from __future__ import annotations

import importlib
import os
import sys

from generator.core.contract import (  # noqa: F401  (re-exported)
    CHANNELS,
    FRAME_RATE,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    GenerationControls,
    Generator,
    adapt,
    check_audio,
)

DEFAULT_MODEL = "groove"  # chosen by measurement: see docs/models.md, "Why groove is the default"


class ModelLoadError(Exception):
    """A model spec that cannot be turned into a generator (one-line message)."""


def _load_python(spec: str) -> Generator:
    target = spec[len("python:"):]
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ModelLoadError(f"model spec {spec!r} must look like python:package.module:factory")
    if os.getcwd() not in sys.path:  # like ``python -m``: modules of the current directory count
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
        factory = getattr(module, attr)
    except (ImportError, AttributeError) as err:
        raise ModelLoadError(f"cannot import generator {target!r}: {err}") from err
    try:
        return adapt(factory())
    except TypeError:
        raise ModelLoadError(f"{target!r} did not return an object with init_state/generate/embed_style") from None


def _load_magenta(spec: str) -> Generator:
    from generator.backends import magenta_assets  # file checks only: no jax, no magenta_rt

    name = spec[len("magenta:"):]
    try:
        magenta_assets.preflight(name)  # the extra and the weights, before the slow imports
        from generator.backends import magenta_rt2

        return magenta_rt2.load(name)
    except (ImportError, FileNotFoundError, ValueError) as err:
        raise ModelLoadError(f"cannot load model {spec!r}: {err}") from err


def _load_mrt2(spec: str) -> Generator:
    from generator.backends import magenta_assets  # file checks only: no jax, no magenta_rt
    from generator.mrt2.config import OFFICIAL_NAMES  # plain data

    try:
        if spec[len("mrt2:"):] in OFFICIAL_NAMES:  # the extra and the weights, before the slow imports
            magenta_assets.preflight(OFFICIAL_NAMES[spec[len("mrt2:"):]])
        from generator.mrt2 import system as mrt2_system
        from generator.mrt2.weights import CheckpointError

        try:
            return mrt2_system.load(spec)
        except CheckpointError as err:
            raise ValueError(str(err)) from None
    except (ImportError, FileNotFoundError, ValueError) as err:
        raise ModelLoadError(f"cannot load model {spec!r}: {err}") from err


def _load_remote(spec: str) -> Generator:
    from generator.backends import remote  # no JAX: the model runs on the server

    try:
        return remote.load(spec)
    except (ValueError, ConnectionError) as err:
        raise ModelLoadError(f"cannot load model {spec!r}: {err}") from err


def _is_symbolic_dir(spec: str) -> bool:
    from generator.symbolic.checkpoint import is_checkpoint  # json only: no jax

    return os.path.isdir(os.path.expanduser(spec)) and is_checkpoint(os.path.expanduser(spec))


def _load_symbolic(spec: str) -> Generator:
    from generator.symbolic import system as symbolic_system

    try:
        return symbolic_system.load(spec)
    except (ImportError, FileNotFoundError, ValueError, KeyError) as err:
        raise ModelLoadError(f"cannot load model {spec!r}: {err}") from err


def _load_groove(spec: str) -> Generator:
    from generator.groove import system as groove_system

    try:
        return groove_system.load(spec)
    except (ImportError, FileNotFoundError, ValueError, KeyError) as err:
        raise ModelLoadError(f"cannot load model {spec!r}: {err}") from err


def _is_groove_dir(spec: str) -> bool:
    from generator.groove.checkpoint import is_checkpoint  # json only: no jax

    return os.path.isdir(os.path.expanduser(spec)) and is_checkpoint(os.path.expanduser(spec))


def load(spec: str = DEFAULT_MODEL) -> Generator:
    """Build the generator named by ``spec`` (see module docstring)."""
    from generator.core.runtime import single_thread_cpu

    if spec.startswith("remote:"):
        return _load_remote(spec)
    single_thread_cpu()  # before the first JAX computation starts the CPU backend
    if spec.startswith("python:"):
        return _load_python(spec)
    if spec.startswith("magenta:"):
        return _load_magenta(spec)
    if spec.startswith("mrt2:"):
        return _load_mrt2(spec)
    if spec.startswith("symbolic") or _is_symbolic_dir(spec):
        return _load_symbolic(spec)
    if spec.startswith("groove") or _is_groove_dir(spec):
        return _load_groove(spec)
    from generator.audio import system  # heavy (jax): imported only when a native model is asked for

    try:
        return system.load(spec)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise ModelLoadError(f"cannot load model {spec!r}: {err}") from err
