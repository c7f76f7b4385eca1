"""What ``jamgen models`` prints: every model spec ``--model`` accepts, and whether it is ready.

Only looks at files (no JAX, no ``magenta_rt`` import), so it answers instantly on any machine,
and never downloads: for a model that lacks files it names each missing file and the official
command that fetches it, for the user to run.
"""

from __future__ import annotations

import pathlib

from generator.backends import magenta_assets

NATIVE_CHECKPOINTS = pathlib.Path(__file__).resolve().parent / "checkpoints"  # = core.checkpoint.SHIPPED
# The presets of generator.symbolic.model (named here so that listing models imports no JAX).
SYMBOLIC_NAMES = ("symbolic", "symbolic-tiny")
GROOVE_NAMES = ("groove", "groove-tiny")  # the presets of generator.groove.model
# mrt2:<preset> -> the official checkpoint it reads (= generator.mrt2.config.OFFICIAL_NAMES, kept JAX-free).
MRT2_NATIVE = {"small": "mrt2_small", "base": "mrt2_base"}

_NATIVE_NOTES = {
    "tiny": "audio-token model (codec + style + Depthformer LM), real time on 2 CPU cores",
    "symbolic": "Music Transformer over 10 ms note events (the default until groove), FluidSynth, MIDI out",
    "symbolic-tiny": "a very small symbolic model for tests",
    "groove": "jamgen's default: beat-grid, multi-track notes on a tempo clock (bpm), FluidSynth, MIDI out",
    "groove-tiny": "a very small groove model for tests",
    "test": "a very small model for tests",
    "mrt2_small": "jamgen's own implementation, Magenta RT 2 small shape",
    "mrt2_base": "jamgen's own implementation, Magenta RT 2 base shape",
}


def list_models() -> list[dict]:
    """One dict per model spec, with keys:

    ``spec`` (what ``--model`` takes), ``backend`` (``native`` | ``magenta-rt``), ``ready``
    (loadable now), ``weights`` (``trained`` | ``random`` | ``missing``), ``description``,
    ``missing`` (absolute paths of the files it lacks), ``fetch`` (commands that fetch them).
    """
    from generator.audio.config import PRESETS

    models = []
    for name in [*SYMBOLIC_NAMES, *GROOVE_NAMES, *PRESETS]:
        trained = (NATIVE_CHECKPOINTS / name / "config.json").is_file()
        models.append({
            "spec": name, "backend": "native", "ready": True,
            "weights": "trained" if trained else "random",
            "description": _NATIVE_NOTES.get(name, "native preset"),
            "missing": [], "fetch": [],
        })
    extra = magenta_assets.extra_installed()
    for name in magenta_assets.MODELS:
        missing = magenta_assets.missing_files(name)
        models.append({
            "spec": magenta_assets.SPEC_PREFIX + name, "backend": "magenta-rt",
            "ready": extra and not missing,
            "weights": "missing" if missing else "trained",
            "description": f"official Magenta RealTime 2, {magenta_assets.SIZES[name]}; needs a GPU",
            "missing": [str(p) for p in missing],
            "fetch": magenta_assets.fetch_commands(name, missing),
        })
    for preset, name in MRT2_NATIVE.items():  # the same files, in jamgen's own engine
        missing = magenta_assets.missing_files(name)
        models.append({
            "spec": "mrt2:" + preset, "backend": "native+magenta-rt",
            "ready": extra and not missing,
            "weights": "missing" if missing else "trained",
            "description": f"official Magenta RealTime 2 weights in jamgen's engine, {magenta_assets.SIZES[name]}",
            "missing": [str(p) for p in missing],
            "fetch": magenta_assets.fetch_commands(name, missing),
        })
    return models


def format_models(models: list[dict] | None = None) -> str:
    """A human-readable table of :func:`list_models`, with what to run for each model not ready."""
    models = list_models() if models is None else models
    width = max(len(m["spec"]) for m in models)
    lines = [f"MAGENTA_HOME files: {magenta_assets.magenta_home()}",
             f"magenta-rt package: {'installed' if magenta_assets.extra_installed() else 'not installed'}", ""]
    for m in models:
        if m["ready"]:
            state = "ready" if m["weights"] == "trained" else "ready (untrained, random weights)"
        else:
            state = "NOT READY"
        lines.append(f"{m['spec']:<{width}}  {state:<40}  {m['description']}")
        for path in m["missing"]:
            lines.append(f"{'':<{width}}    missing: {path}")
        for cmd in m["fetch"]:
            lines.append(f"{'':<{width}}    fetch:   {cmd}")
    return "\n".join(lines)
