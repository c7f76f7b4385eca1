"""jamgen's native MRT2 engine (:mod:`generator.mrt2`) against the real ``magenta-rt`` package.

Parity without the real weights: the package's own initialisers make parameters of the official
layout at the reduced ``test`` shape (every constant tensor re-drawn so it matters), they are saved as
the official safetensors file, and both engines load that file and run on the same conditioning and
RNG stream. What must hold: per-level logits within 1e-3 (float32) and identical tokens over 60
frames, which is past the 9-slot ring buffer's wrap; a bad checkpoint fails in one line naming the
tensor. The full ``mrt2_small`` shape runs in ``bench/parity_mrt2.py --shape small``.
"""

from __future__ import annotations

import numpy as np
import pytest

SKIP_REASON = "magenta-rt is not installed (pip install 'magenta-rt==2.0.3'); native MRT2 parity skipped"
FRAMES = 60


@pytest.fixture(scope="module")
def parity():
    pytest.importorskip("magenta_rt", reason=SKIP_REASON)
    from generator.mrt2 import parity

    return parity


@pytest.fixture(scope="module")
def checkpoint(parity, tmp_path_factory):
    path = tmp_path_factory.mktemp("mrt2") / "mrt2_test.safetensors"
    return path, parity.official_checkpoint("test", path, seed=0)


def _conditioning(frames: int, seed: int = 3) -> np.ndarray:
    """Conditioning ids with a prompt change and piano-roll changes mid-run."""
    from generator.mrt2.parity import random_conditioning  # needs magenta-rt: imported where it is used

    return random_conditioning(frames, seed)


def test_logits_and_tokens_match_the_package(parity, checkpoint):
    path, params = checkpoint
    result = parity.compare_lm("test", path, params, _conditioning(FRAMES), seed=5, temperature=1.3, top_k=40)
    assert result.logit_max_abs <= 1e-3, result
    assert result.tokens_all_equal and result.tokens_equal_frames == FRAMES, result


def test_greedy_and_wide_top_k_match_too(parity, checkpoint):
    path, params = checkpoint
    for temperature, top_k in ((0.0, 40), (1.0, 2000)):  # greedy; k past one level
        result = parity.compare_lm("test", path, params, _conditioning(FRAMES, seed=4), seed=1,
                                   temperature=temperature, top_k=top_k)
        assert result.tokens_all_equal and result.logit_max_abs <= 1e-3, (temperature, top_k, result)


# ---- bad checkpoints: one line naming the tensor -------------------------------------------------

def _rewrite(src, dst, *, drop=None, reshape=None):
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(src))
    if drop:
        del tensors[drop]
    if reshape:
        tensors[reshape] = tensors[reshape][..., :-1].copy()
    save_file(tensors, str(dst))


QUERY = "params/depthformer/decoder/temporal_body/transformer/x_layers_1/self_attention/attention/query_projection/kernel"


def test_missing_and_misshapen_tensors_are_named(parity, checkpoint, tmp_path):
    from generator.mrt2 import system, weights

    path, _ = checkpoint
    _rewrite(path, tmp_path / "missing.safetensors", drop=QUERY)
    with pytest.raises(weights.CheckpointError) as err:
        system.load_lm("test", tmp_path / "missing.safetensors")
    assert QUERY in str(err.value) and "lacks" in str(err.value) and "\n" not in str(err.value)
    _rewrite(path, tmp_path / "short.safetensors", reshape=QUERY)
    with pytest.raises(weights.CheckpointError) as err:
        system.load_lm("test", tmp_path / "short.safetensors")
    assert QUERY in str(err.value) and "[64, 2, 31]" in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(weights.CheckpointError, match="junk.safetensors is not a readable safetensors file"):
        system.load_lm("test", tmp_path / "junk.safetensors")
    with pytest.raises(weights.CheckpointError, match="tensor params.* has shape .*, expected"):
        system.load_lm("small", path)  # the file of another size


def test_decoded_audio_matches_the_package(parity, checkpoint):
    """The native RVQ + codec path, 3 frames per compiled call, against the package stepping one frame."""
    path, params = checkpoint
    codes = np.random.default_rng(0).integers(0, 1024, (9, 12))
    result = parity.compare_audio(path, params, codes, block=3)
    assert result.snr_db >= 60.0 and result.peak > 1e-3, result


# ---- through the loader, as the daemon uses it ----------------------------------------------------

@pytest.fixture
def home_with_test_model(checkpoint, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("MAGENTA_HOME", str(tmp_path))
    target = tmp_path / "magenta-rt-v2" / "checkpoints" / "mrt2_test.safetensors"
    target.parent.mkdir(parents=True)
    shutil.copy(checkpoint[0], target)
    return target


def test_loads_by_name_and_streams_across_blocks(home_with_test_model):
    import generator
    from generator.core.contract import FRAME_SAMPLES, GenerationControls, check_audio

    gen = generator.load("mrt2:test")
    controls = GenerationControls(prompts=(("bossa nova", 1.0),), temperature=1.1, top_k=40)
    whole, _ = gen.generate(gen.init_state(7), controls, 2)
    state, parts = gen.init_state(7), []
    for _ in range(2):  # the same stream in 1-frame blocks: the state carries it exactly, seams included
        audio, state = gen.generate(state, controls, 1)
        parts.append(check_audio(audio, 1))
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-6)
    assert np.abs(whole[:FRAME_SAMPLES]).max() == 0.0, "the codec's lookahead: the first frame is silent"
    assert np.abs(whole[FRAME_SAMPLES:]).max() > 1e-4
    other, _ = gen.generate(gen.init_state(8), controls, 2)
    assert not np.allclose(other, whole), "the seed must change the stream"
    prompt, _ = gen.generate(gen.init_state(7), GenerationControls(prompts=(("drum and bass", 1.0),)), 2)
    assert not np.allclose(prompt, whole), "the prompt must change the stream"


def test_loader_names_a_bad_tensor_in_one_line(home_with_test_model):
    import generator

    _rewrite(home_with_test_model, home_with_test_model, drop=QUERY)
    with pytest.raises(generator.ModelLoadError) as err:
        generator.load("mrt2:test")
    assert QUERY in str(err.value) and "\n" not in str(err.value)


def test_models_lists_the_native_engine_with_the_adapters_missing_files(tmp_path, monkeypatch):
    import generator
    from generator import models

    monkeypatch.setenv("MAGENTA_HOME", str(tmp_path))
    listed = {m["spec"]: m for m in models.list_models()}
    for preset, official in (("small", "mrt2_small"), ("base", "mrt2_base")):
        native, adapter = listed[f"mrt2:{preset}"], listed[f"magenta:{official}"]
        assert not native["ready"] and native["missing"] == adapter["missing"] and native["fetch"] == adapter["fetch"]
        assert any(f"mrt checkpoints download {official}" in c for c in native["fetch"])
    from generator.backends import magenta_assets

    expected = "mrt checkpoints download mrt2_small" if magenta_assets.extra_installed() else "pip install"
    with pytest.raises(generator.ModelLoadError, match=expected) as err:
        generator.load("mrt2:small")
    assert "\n" not in str(err.value)
    with pytest.raises(generator.ModelLoadError, match="unknown MRT2 model mrt2:nope; choose one of mrt2:small"):
        generator.load("mrt2:nope")


def test_mrt2_controls_reach_the_native_conditioning_and_the_stream(home_with_test_model):
    """cfg_notes, cfg_drums, drumless and unmask_width (registry controls) arrive as GenerationControls fields and
    become the conditioning ids the native engine runs on, through the adapter's one MRT2Conditioning; a
    set_note_options call holds until the control next changes."""
    import dataclasses

    import generator
    from generator.core.contract import GenerationControls

    gen = generator.load("mrt2:test")
    base = GenerationControls(prompts=(("bossa nova", 1.0),), harmony="60 64")
    ids = lambda controls: gen.conditioning_block(controls, 2)[1, 0] - 7  # noqa: E731  (package values)
    plain = ids(base)  # channels: 12 MusicCoCa, 128 piano roll, drums, CFG (musiccoca, notes), CFG drums
    assert plain[141:].tolist() == [20, 10, 2] and plain[140] == -1  # CFG 3 / 1 / 1 binned; drums free
    assert plain[[12 + 59, 12 + 60, 12 + 64]].tolist() == [-1, 3, 3]  # held notes, the rest free
    moved = dataclasses.replace(base, cfg_notes=5.0, cfg_drums=3.0, drumless=True, unmask_width=127)
    cond = ids(moved)
    assert cond[141:].tolist() == [20, 30, 4], "the notes/drums CFG scales did not reach the CFG tokens"
    assert cond[140] == 0, "drumless did not reach the drum piano roll"
    assert cond[[12 + 59, 12 + 60, 12 + 64, 12 + 100]].tolist() == [0, 3, 3, 0], "unmask_width 127 is solo"
    assert (cond[:12] == plain[:12]).all()
    width = ids(dataclasses.replace(base, unmask_width=2))[12:140]
    assert width[57:68].tolist() == [-1, 0, 0, 3, 0, 0, 0, 3, 0, 0, -1]
    assert ids(base)[140:].tolist() == plain[140:].tolist()  # back to the defaults
    gen.set_note_options(cfg_notes=4.0)  # the note API: holds while the controls do not change
    assert ids(base)[142] == 25
    assert ids(dataclasses.replace(base, cfg_notes=2.0))[142] == 15  # a control change wins again
    ids(base)
    # They reach the model's computation: the logits move (the random-weight test model's conditioning table is too
    # small next to its MusicCoCa branch for the sampled tokens to change in a few frames).
    logits = [np.asarray(gen.engine.frames(gen.init_state(7), gen.conditioning_block(c, 2), 1.1, 40,
                                           keep_logits=True, decode=False)[2]) for c in (base, moved)]
    assert np.abs(logits[0] - logits[1]).max() > 1e-3, "the MRT2 controls must change the model's logits"
