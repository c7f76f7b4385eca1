"""Style trainer mechanics on a tiny synthetic cache: runs, writes metrics, resumes, fits the RVQ,
and its weights load into a System (random int16 audio and fake captions: this tests the plumbing,
not what the model learns)."""

import json

import numpy as np
from flax import nnx

from generator.audio.config import preset
from generator.train import rundir
from generator.train import style as train_style


def _fake_cache(directory, rng):
    directory.mkdir()
    words = ["jazz", "rock", "techno", "folk", "ambient", "funk"]
    for split, n in (("train", 6), ("heldout", 4)):
        np.save(directory / f"{split}.npy", rng.integers(-3000, 3000, (n, 48_000 * 2, 2), dtype=np.int16))
        with open(directory / f"{split}.meta.jsonl", "w") as f:
            for i in range(n):
                cap = f"{words[i]} {split} {i}"
                f.write(json.dumps({"i": i, "id": f"x{i}", "caption": cap,
                                    "paraphrases": [f"some {cap}", f"{cap} tune"]}) + "\n")


def test_trainer_runs_resumes_and_exports(tmp_path):
    data, out = tmp_path / "data", tmp_path / "run"
    _fake_cache(data, np.random.default_rng(0))
    common = ["--out", str(out), "--data", str(data), "--heldout", str(data), "--cache", str(tmp_path / "cache"),
              "--preset", "test", "--batch", "4", "--crop", "1.0", "--eval-every", "2", "--warmup", "1"]
    assert train_style.main(common + ["--steps", "3"]) == 0
    state = json.loads((out / "state.json").read_text())
    assert state["step"] == 3 and state["rvq"]["vectors"] > 0
    rows = [json.loads(line) for line in open(out / "metrics.jsonl")]
    train = [r for r in rows if r["kind"] == "train"]
    assert len(train) == 3 and all(np.isfinite(r["loss"]) for r in train)
    assert any(r["kind"] == "eval" and "cap_top1" in r and "para_top5" in r for r in rows)
    assert (out / "curve.png").is_file() and (out / "style.safetensors").is_file()

    assert train_style.main(common + ["--steps", "5"]) == 0  # resumes at step 3
    rows = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3, 4, 5]
    assert json.loads((out / "state.json").read_text())["step"] == 5

    from generator.audio.system import System

    system = System(preset("test"))
    before = system.embed_style("jazz").copy()
    train_style.load_trained(system, out)
    after = system.embed_style("jazz")
    trained = train_style.StyleModel(preset("test").style, rngs=nnx.Rngs(1))
    rundir.load_module(out / "style.safetensors", trained)
    want = np.asarray(trained.embed_text(system.text_encoder(["jazz"])))[0]
    np.testing.assert_allclose(after, want, atol=1e-5)
    assert not np.allclose(before, after)
    toks = system.style_tokens((("jazz", 1.0),))
    assert toks.shape == (preset("test").lm.style_levels,) and toks.max() < 1024
