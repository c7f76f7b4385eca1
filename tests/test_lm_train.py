"""LM trainer mechanics (generator.train.lm) on a synthetic clip cache with the ``test`` preset:
tokenising with a codec and style run, training steps with finite loss, resuming, and exporting a
float16 checkpoint that loads and streams. (The real run's numbers live in README / bench.)"""

import json

import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import save_file

from generator.core import checkpoint
from generator.audio.codec import Codec
from generator.audio.config import preset
from generator.core.contract import GenerationControls
from generator.audio.style import StyleModel
from generator.audio.system import load
from generator.train import lm as tl


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("lmtrain")
    cfg = preset("test")
    rng = np.random.default_rng(0)
    data = root / "data"
    data.mkdir()
    for split, n in (("train", 3), ("heldout", 2)):
        t = np.arange(48000 * 2) / 48000
        clips = np.stack([np.stack([np.sin(2 * np.pi * (200 + 100 * i) * t)] * 2, -1) * 0.3
                          + rng.normal(0, 0.01, (len(t), 2)) for i in range(n)])
        np.save(data / f"{split}.npy", (clips * 32767).astype(np.int16))
        with open(data / f"{split}.meta.jsonl", "w") as f:
            for i in range(n):
                f.write(json.dumps({"i": i, "caption": f"tone number {i}",
                                    "paraphrases": [f"a sine at step {i}"]}) + "\n")
    for name, module in (("codec", Codec(cfg.codec, rngs=nnx.Rngs(1))),
                         ("style", StyleModel(cfg.style, rngs=nnx.Rngs(2)))):
        (root / name).mkdir()
        save_file(checkpoint.flatten(module), str(root / name / f"{name}.safetensors"))
    return root


@pytest.mark.timeout(900)  # three jit compilations of the train step on a loaded 2-core CI machine
def test_tokenize_train_resume_export(runs):
    args = ["--out", str(runs / "lm"), "--codec", str(runs / "codec"), "--style", str(runs / "style"),
            "--data", str(runs / "data"), "--preset", "test", "--steps", "3", "--batch", "2",
            "--frames", "16", "--eval-every", "2", "--warmup", "1"]
    assert tl.main(args + ["--codes-only"]) == 0  # codec tokens first, while "the style model trains"
    assert (runs / "lm" / "codes_train.npy").is_file() and not (runs / "lm" / "tokens.npz").exists()
    assert tl.main(args) == 0
    tokens = np.load(runs / "lm" / "tokens.npz")
    assert tokens["codes"].shape == (3, 50, 4) and tokens["codes"].max() < 1024
    assert tokens["audio_style"].shape == (3, 4)
    assert tokens["text_style"].shape == (3, tl.MAX_TEXTS, 4)
    assert (tokens["text_style"][:, 2:] == -1).all() and (tokens["text_style"][:, :2] >= 0).all()
    rows = [json.loads(line) for line in open(runs / "lm" / "metrics.jsonl")]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3]
    assert all(np.isfinite(r["nll"]) and len(r["nll_per_level"]) == 4 for r in rows if r["kind"] == "eval")
    assert (runs / "lm" / "curve.png").stat().st_size > 1000

    assert tl.main(args[:args.index("--steps") + 1] + ["5"] + args[args.index("--steps") + 2:]) == 0
    rows = [json.loads(line) for line in open(runs / "lm" / "metrics.jsonl")]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3, 4, 5]  # resumed, not restarted

    out = runs / "ckpt"
    assert tl.main(["export", "--codec", str(runs / "codec"), "--style", str(runs / "style"),
                    "--lm", str(runs / "lm"), "--out", str(out), "--preset", "test",
                    "--gain-data", str(runs / "data")]) == 0
    from safetensors.numpy import load_file
    assert load_file(str(out / "lm.safetensors"))["head"].dtype == np.float16
    system = load(str(out))
    assert system.config.codec.output_gain > 0 and system.config.codec.output_gain != 1.0  # measured
    audio, _ = system.generate(system.init_state(0), GenerationControls(prompts=(("tone", 1.0),)), 3)
    assert audio.shape == (3 * 1920, 2) and np.isfinite(audio).all()
