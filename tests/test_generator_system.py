"""System: the Generator contract, bit-exact snapshots, no recompiles on control changes, style
changes landing on the very next frame, audio prompts, checkpoints and ``load`` errors."""

import json

import numpy as np
import pytest

import generator
from generator.audio import config as presets
from generator.core.contract import GenerationControls, Generator, check_audio
from generator.audio.system import System, load

TOK_A = np.asarray([1, 2, 3, 4], np.int32)
TOK_B = np.asarray([900, 800, 700, 600], np.int32)
GREEDY = GenerationControls(temperature=0.0)


@pytest.fixture(scope="module")
def system():
    return System(presets.test())


def test_contract_shapes(system):
    assert isinstance(system, Generator)
    state = system.init_state(0)
    audio, state = system.generate(state, GenerationControls(), 3)
    check_audio(audio, 3)
    assert np.abs(audio).max() <= 1.0
    assert int(state["lm"]["frame"]) == 3


def test_snapshot_restore_is_bit_exact(system, tmp_path):
    state, _ = system.generate_tokens(system.init_state(5), TOK_A, GenerationControls(), 4)[::-1]
    snap = system.snapshot(state)
    system.save_state(state, tmp_path / "s.safetensors")
    a1, s1 = system.generate_tokens(state, TOK_A, GenerationControls(), 6)  # donates state
    a2, _ = system.generate_tokens(system.restore(snap), TOK_A, GenerationControls(), 6)
    a3, _ = system.generate_tokens(system.load_state(tmp_path / "s.safetensors"), TOK_A,
                                   GenerationControls(), 6)
    np.testing.assert_array_equal(np.asarray(a1), np.asarray(a2))
    np.testing.assert_array_equal(np.asarray(a1), np.asarray(a3))


def test_controls_never_recompile(system):
    state = system.init_state(0)
    _, state = system.generate_tokens(state, TOK_A, GenerationControls(), 2)
    before = system.compile_count()
    for c in (GenerationControls(guidance=0.0, temperature=0.0, top_k=1),
              GenerationControls(guidance=7.5, temperature=2.0, top_k=1024, seed=3)):
        _, state = system.generate_tokens(state, TOK_B, c, 2)
        _, state = system.generate(state, c, 2)
    assert system.compile_count() == before


def test_style_change_lands_on_next_frame(system):
    state, _ = system.generate_tokens(system.init_state(0), TOK_A, GREEDY, 3)[::-1]
    snap = system.snapshot(state)
    same, s_same = system.generate_tokens(state, TOK_A, GREEDY, 1)
    changed, s_changed = system.generate_tokens(system.restore(snap), TOK_B, GREEDY, 1)
    np.testing.assert_array_equal(np.asarray(s_changed["style"]), TOK_B)
    assert not np.array_equal(np.asarray(s_same["codes"]), np.asarray(s_changed["codes"]))
    assert not np.allclose(np.asarray(same), np.asarray(changed))


def test_text_prompts_blend_and_cache(system):
    jazz = system.embed_style("jazz")
    assert jazz.shape == (presets.test().style.dim,)
    assert system.embed_style("jazz") is jazz  # cached per prompt text
    mix = system.bank.blend((("jazz", 0.25), ("techno", 0.75)))
    np.testing.assert_allclose(mix, 0.25 * jazz + 0.75 * system.embed_style("techno"), atol=1e-6)
    toks = system.style_tokens((("jazz", 0.5), ("techno", 0.5)))
    assert toks.shape == (presets.test().lm.style_levels,) and toks.max() < 1024
    assert (system.style_tokens(()) == 1024).all()


def test_audio_prompt_and_priming(system, tmp_path):
    import soundfile

    t = np.arange(48_000) / 48_000
    audio = np.stack([np.sin(2 * np.pi * 330 * t), np.sin(2 * np.pi * 440 * t)], -1).astype(np.float32) * 0.3
    soundfile.write(tmp_path / "clip.wav", audio, 48_000)
    key = system.add_audio_prompt("clip", tmp_path / "clip.wav")
    assert key == "audio:clip" and system.style_tokens(((key, 1.0),)).max() < 1024
    state = system.prime(system.init_state(0), tmp_path / "clip.wav")
    assert int(state["lm"]["frame"]) == min(25, presets.test().lm.window)  # the last window frames
    out, state = system.generate(state, GenerationControls(prompts=((key, 1.0),)), 2)
    check_audio(out, 2)
    with pytest.raises(FileNotFoundError):
        system.prime(system.init_state(0), tmp_path / "missing.wav")


def test_checkpoint_round_trip_and_corruption(system, tmp_path):
    system.save(tmp_path / "ck")
    meta = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert set(meta["files"]) == {"codec.safetensors", "lm.safetensors", "style.safetensors"}
    loaded = load(str(tmp_path / "ck"))
    a, _ = loaded.generate_tokens(loaded.init_state(0), TOK_A, GREEDY, 2)
    b, _ = system.generate_tokens(system.init_state(0), TOK_A, GREEDY, 2)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    lm_file = tmp_path / "ck" / "lm.safetensors"
    lm_file.write_bytes(lm_file.read_bytes()[:1000])  # truncated
    with pytest.raises(ValueError, match="corrupt"):
        load(str(tmp_path / "ck"))
    meta["files"].pop("lm.safetensors")  # without a digest the reader itself must refuse it
    (tmp_path / "ck" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="safetensors"):
        load(str(tmp_path / "ck"))


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown model"):
        load("no_such_preset")
    with pytest.raises(FileNotFoundError):
        load(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError):
        load(str(tmp_path))  # a directory without config.json
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="JSON"):
        load(str(tmp_path))
    with pytest.raises(generator.ModelLoadError):
        generator.load("no_such_preset")


def test_preset_sizes():
    """The MRT2-shaped presets have about the published parameter counts (no weights built)."""
    import jax
    from flax import nnx

    from generator.audio.lm import Depthformer

    def count(cfg):
        model = nnx.eval_shape(lambda: Depthformer(cfg.lm, rngs=nnx.Rngs(0)))
        return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))

    assert 0.15e9 < count(presets.mrt2_small()) < 0.35e9
    assert 1.8e9 < count(presets.mrt2_base()) < 3.0e9
