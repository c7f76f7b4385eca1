"""The note families' shared trainer: a few steps on real mma works, resumed exactly, loadable as a model."""

from __future__ import annotations

import json
import shutil

import pytest

import generator

pytestmark = pytest.mark.skipif(shutil.which("mma") is None, reason="needs mma (scripts/setup.sh installs it)")


@pytest.mark.parametrize("family", ["symbolic", "groove"])
def test_train_resume_and_load(family, tmp_path):
    import importlib

    from generator.train.__main__ import main as train

    data = importlib.import_module(f"generator.data.{family}_tokens")
    data.build(tmp_path / "train.npz", "train", ["mma"], limit=3, progress=False)
    data.build(tmp_path / "heldout.npz", "heldout", ["mma"], limit=2, progress=False)
    args = [family, "--data", str(tmp_path / "train.npz"), "--heldout", str(tmp_path / "heldout.npz"),
            "--out", str(tmp_path / "run"), "--preset", f"{family}-tiny", "--batch", "2"]
    train([*args, "--max-steps", "2"])
    first = json.loads((tmp_path / "run" / "trainer.json").read_text())
    train([*args, "--max-steps", "4", "--resume"])
    second = json.loads((tmp_path / "run" / "trainer.json").read_text())
    assert (first["step"], second["step"]) == (2, 4) and second["elapsed"] >= first["elapsed"]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]
    gen = generator.load(str(tmp_path / "run"))
    assert gen.config.name == f"{family}-tiny" and gen.makes_notes
