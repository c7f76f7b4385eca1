"""The shipped default audio model (``generator/checkpoints/tiny``): it loads offline with its trained
weights, fits the size budget, and renders non-silent, non-clipping, truly stereo audio for a prompt.
(Its musical quality is measured by bench/quality_lm.py, not here.)"""

import pathlib

import numpy as np
import pytest

from generator.core.contract import GenerationControls
from generator.models import list_models

CKPT = pathlib.Path(__file__).resolve().parents[1] / "generator" / "checkpoints" / "tiny"


@pytest.fixture(scope="module")
def tiny():
    from generator.audio.system import load

    return load("tiny")


def test_shipped_checkpoint_is_trained_and_small():
    assert (CKPT / "config.json").is_file()
    size = sum(f.stat().st_size for f in CKPT.iterdir())
    assert size <= 60 * 2 ** 20, f"shipped tiny checkpoint is {size / 2 ** 20:.1f} MiB (> 60 MiB)"
    assert {m["spec"]: m["weights"] for m in list_models()}["tiny"] == "trained"


def test_renders_stereo_music_not_silence_not_clipping(tiny):
    assert tiny.config.codec.output_gain != 1.0  # the measured make-up gain travelled with the weights
    assert tiny.control_defaults == {"guidance": 2.0}  # the guidance that measured best (README)
    controls = GenerationControls(prompts=(("fast swing jazz with brushed drums and walking bass", 1.0),),
                                  guidance=3.0, temperature=1.0, top_k=40)
    state = tiny.init_state(0)
    blocks = []
    for _ in range(4):  # 4 s
        audio, state = tiny.generate(state, controls, 25)
        blocks.append(audio)
    audio = np.concatenate(blocks)
    assert np.isfinite(audio).all()
    rms_db = 20 * np.log10(np.sqrt((audio ** 2).mean()) + 1e-12)
    assert rms_db > -45, f"too quiet: {rms_db:.1f} dBFS"
    assert (np.abs(audio) >= 0.999).mean() < 1e-3, "clipping"
    side = audio[:, 0] - audio[:, 1]
    assert np.sqrt((side ** 2).mean()) > 0.01 * np.sqrt((audio ** 2).mean()), "left and right are the same"
