"""The run-directory conventions the three trainers share: atomic checkpoints, resuming, metrics.

Why one module: ``jamgen train codec|style|lm`` must behave alike (a run directory resumes when it holds
``state.json``; a crash mid-save never leaves a torn checkpoint; ``metrics.jsonl`` rows are
``{"kind": "train"|"eval", "step": ...}``), and the plots read those rows the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import time
from typing import Callable

import numpy as np

from generator.core import checkpoint


def save(out: pathlib.Path, modules: dict, state: dict) -> None:
    """Write ``<name>.safetensors`` for each module and ``state.json``, each by write-then-rename."""
    from safetensors.numpy import save_file

    out = pathlib.Path(out)
    for name, module in modules.items():
        tmp = out / f"{name}.safetensors.tmp"
        save_file(checkpoint.flatten(module), str(tmp))
        os.replace(tmp, out / f"{name}.safetensors")
    (out / "state.json.tmp").write_text(json.dumps(state, indent=1))
    os.replace(out / "state.json.tmp", out / "state.json")


def load_module(path, module) -> None:
    """Fill ``module`` from a safetensors file (float16 files are widened; names and shapes checked)."""
    from safetensors.numpy import load_file

    checkpoint.assign(module, checkpoint.to_float32(load_file(str(path))), str(path))


def train_loop(out, state: dict, modules: dict, *, steps: int, minutes: float | None, eval_every: int,
               ckpt_every: float, step: Callable[[], dict], evaluate: Callable[[], dict], plot: Callable,
               metrics_file, desc: str, postfix: Callable[[dict], dict] = lambda row: {}) -> int:
    """The loop of every trainer, so that they stop, log, evaluate and save alike.

    ``step()`` runs one optimiser step and returns its numbers (at least ``"loss"``); ``evaluate()``
    returns held-out numbers. Runs until ``state["step"] == steps`` or ``minutes`` of wall time; a
    fresh run is evaluated before its first step, and a run that trained after its last. Rows go to
    ``metrics_file`` (train and eval kinds), checkpoints of ``modules`` + ``state`` to ``out`` every
    ``ckpt_every`` seconds (with the curve redrawn by ``plot(out)``); ``state["elapsed"]`` counts
    training time only. A non-finite loss stops the run without saving. Returns the steps run; the
    caller saves the final checkpoint (after any closing work of its own)."""
    from tqdm import tqdm

    evaluated = {"step": -1}

    def log_eval():
        row = {"kind": "eval", "step": state["step"], "elapsed": round(state["elapsed"], 1), **evaluate()}
        metrics_file.write(json.dumps(row) + "\n")
        metrics_file.flush()
        tqdm.write(json.dumps(row))
        evaluated["step"] = state["step"]

    if state["step"] == 0:
        log_eval()
    t_start = last = t_ckpt = time.time()
    ran = 0
    bar = tqdm(total=steps, initial=state["step"], desc=desc, unit="step", dynamic_ncols=True)
    while state["step"] < steps and (minutes is None or time.time() - t_start < minutes * 60):
        numbers = step()
        loss = float(numbers["loss"])
        if not np.isfinite(loss):
            raise SystemExit(f"loss is {loss} at step {state['step'] + 1}; not saving")
        now = time.time()
        state["elapsed"] += now - last
        last = now
        state["step"] += 1
        ran += 1
        row = {"kind": "train", "step": state["step"], "elapsed": round(state["elapsed"], 2),
               **{k: float(v) for k, v in numbers.items()}}
        metrics_file.write(json.dumps(row) + "\n")
        bar.update(1)
        bar.set_postfix(**postfix(row))
        if state["step"] % eval_every == 0:
            log_eval()
            last = time.time()
        if now - t_ckpt > ckpt_every:
            save(out, modules, state)
            plot(out)
            t_ckpt = last = time.time()
    bar.close()
    if ran and evaluated["step"] != state["step"]:
        log_eval()
    return ran


def finish(out, modules: dict, state: dict, plot: Callable) -> int:
    """A trainer's last act: the final checkpoint, the curve, and one line saying where and how far."""
    save(out, modules, state)
    plot(out)
    print(f"saved {out} at step {state['step']} ({state['elapsed'] / 60:.1f} min of training)")
    return 0


def metrics(out) -> tuple[list[dict], list[dict]]:
    """The train rows and the eval rows of ``out/metrics.jsonl``."""
    rows = [json.loads(line) for line in open(pathlib.Path(out) / "metrics.jsonl")]
    return [r for r in rows if r["kind"] == "train"], [r for r in rows if r["kind"] == "eval"]


def moving_average(steps, values, k: int = 25):
    """(steps, values) smoothed over ``k`` rows, for the train-loss panel of ``curve.png``."""
    v = np.asarray(values, float)
    k = max(1, min(k, len(v)))
    return np.asarray(steps)[k - 1:], np.convolve(v, np.ones(k) / k, "valid")


@contextlib.contextmanager
def curve(out):
    """The trainers' two-panel figure (train | held-out, both over steps) with the run's metrics:
    ``with curve(out) as (train_rows, eval_rows, axes): ...`` draws, then ``out/curve.png`` is saved."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr, ev = metrics(out)
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2), dpi=80)
    try:
        yield tr, ev, ax
        for a in ax:
            a.set_xlabel("step")
        fig.tight_layout()
        fig.savefig(pathlib.Path(out) / "curve.png")
    finally:
        plt.close(fig)
