"""The Magenta RealTime 2 backend against the real ``magenta-rt`` package, without its weights.

The adapter is driven on randomly initialised parameters of a tiny model of the official
architecture (``magenta_rt2.random_generator("test")``): the package's own sampler,
depthformer, SpectroStream decoder and CFG-token binning run for real, so conditioning tokens,
control mapping and state handling are checked end to end. Style text goes through the
package's ``MockMusicCoCa`` (its only weightless MusicCoCa). Tests that need the package are
skipped, with the reason shown, where the extra is not installed; the asset listing and the
loader's errors are checked everywhere.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

import generator
from generator import models
from generator.backends import magenta_assets
from generator.core.contract import FRAME_SAMPLES, GenerationControls, check_audio

SKIP_REASON = "magenta-rt is not installed (pip install 'magenta-rt==2.0.3'); MRT2 backend tests skipped"


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MAGENTA_HOME", str(tmp_path))
    return tmp_path / "magenta-rt-v2"


def _install_placeholders(home, name):
    """Empty files at the official paths: enough for the file checks, never read as weights."""
    (home / "checkpoints").mkdir(parents=True)
    (home / "checkpoints" / f"{name}.safetensors").write_bytes(b"")
    (home / "resources" / "musiccoca").mkdir(parents=True)
    for f in magenta_assets.MUSICCOCA_REQUIRED:
        (home / "resources" / "musiccoca" / f).write_bytes(b"")


# ---- asset listing and loader errors (no magenta-rt needed) ------------------------------------

def test_list_models_names_missing_files_and_fetch_commands(empty_home):
    listed = {m["spec"]: m for m in models.list_models()}
    assert {"tiny", "mrt2_small", "magenta:mrt2_small", "magenta:mrt2_base"} <= set(listed)
    small = listed["magenta:mrt2_small"]
    assert not small["ready"] and small["weights"] == "missing"
    assert str(empty_home / "checkpoints" / "mrt2_small.safetensors") in small["missing"]
    assert str(empty_home / "resources" / "musiccoca" / "spm.model") in small["missing"]
    assert any("mrt checkpoints download mrt2_small" in c for c in small["fetch"])
    assert any("mrt models init" in c for c in small["fetch"])
    text = models.format_models()
    assert "magenta:mrt2_base" in text and "NOT READY" in text
    assert not (empty_home / "checkpoints").exists()  # listing never creates directories


def test_list_models_ready_when_files_present(empty_home):
    _install_placeholders(empty_home, "mrt2_small")
    small = {m["spec"]: m for m in models.list_models()}["magenta:mrt2_small"]
    assert small["missing"] == [] and small["weights"] == "trained"
    assert small["ready"] == magenta_assets.extra_installed()


def test_loader_errors_are_one_line(empty_home):
    for spec in ("magenta:mrt2_small", "magenta:nope"):
        with pytest.raises(generator.ModelLoadError) as err:
            generator.load(spec)
        assert "\n" not in str(err.value)
    with pytest.raises(generator.ModelLoadError, match="unknown Magenta RT 2 model"):
        generator.load("magenta:nope")
    expected = "mrt checkpoints download" if magenta_assets.extra_installed() else "pip install"
    with pytest.raises(generator.ModelLoadError, match=expected):
        generator.load("magenta:mrt2_small")


# ---- the adapter on the real package -----------------------------------------------------------

@pytest.fixture(scope="module")
def mrt():
    pytest.importorskip("magenta_rt", reason=SKIP_REASON)
    from generator.backends import magenta_rt2

    return magenta_rt2


@pytest.fixture(scope="module")
def gen(mrt):
    return mrt.random_generator("test", seed=0)


def test_conditioning_matches_the_package(mrt):
    """Our ids equal ``MagentaRT2System._build_conditioning``'s for the same inputs."""
    from magenta_rt.jax.system import MagentaRT2System

    model = mrt.SHAPES["mrt2_small"]()
    tokens = {"mulan_tokens_25hz": list(range(100, 112)),
              "pianoroll_with_onsets_tokens": mrt.pianoroll_values([60, 64], [64], onset_mode="explicit")}
    for scales in ({"musiccoca": 3.0, "notes": 1.0, "drums": 1.0}, {"musiccoca": 6.3, "notes": -1.0, "drums": 7.0}):
        official = types.SimpleNamespace(cfg_scales=dict(scales), _model=model, temperature=1.3, top_k=40)
        block, _ = MagentaRT2System._build_conditioning(official, tokens, scales)
        ours = mrt.conditioning_ids(model, tokens, scales)
        np.testing.assert_array_equal(ours, np.asarray(block.values).reshape(-1))
    assert ours.shape == (144,)


def _split(gen, ids):
    """The conditioning ids of one frame, per input key, as values (id - 7; -1 = masked)."""
    from generator.backends.magenta_rt2 import TOKEN_OFFSET

    out, i = {}, 0
    for cfg in gen._model.input_configs:
        out[cfg.key] = [int(v) - TOKEN_OFFSET for v in ids[i:i + cfg.rvq_truncation_level]]
        i += cfg.rvq_truncation_level
    return out


def test_guidance_becomes_the_musiccoca_cfg_token(gen):
    for guidance, value in ((0.0, 5), (1.0, 10), (3.0, 20), (6.8, 39), (10.0, 40)):
        first, _ = gen.frame_conditioning(GenerationControls(guidance=guidance))
        assert _split(gen, first)["cfg_conditioning_tokens"] == [value, 10]  # notes CFG default 1.0


def test_prompts_blend_in_embedding_space_and_tokenize(gen):
    from magenta_rt.musiccoca import MockMusicCoCa

    style = MockMusicCoCa()
    unit = lambda t: (lambda e: e / np.linalg.norm(e))(style.embed(t))  # noqa: E731
    expected = style.tokenize((0.25 * unit("jazz trio") + 0.75 * unit("techno")).astype(np.float32))
    assert gen.style_tokens((("jazz trio", 0.25), ("techno", 0.75))) == expected.tolist()
    assert gen.style_tokens((("jazz trio", 1.0), ("techno", 3.0))) == expected.tolist()  # weights normalised
    first, _ = gen.frame_conditioning(GenerationControls(prompts=(("jazz trio", 0.25), ("techno", 0.75))))
    assert _split(gen, first)["mulan_tokens_25hz"] == expected.tolist()
    first, _ = gen.frame_conditioning(GenerationControls())  # no prompt: unconditional
    assert _split(gen, first)["mulan_tokens_25hz"] == [-1] * 12
    np.testing.assert_allclose(np.linalg.norm(gen.embed_style("techno")), 1.0, rtol=1e-5)
    assert gen.bank.vector("techno") is gen.bank.vector("techno")  # cached per text


def test_notes_become_the_piano_roll(gen, mrt):
    roll = mrt.pianoroll_values([60], unmask_width=2)
    assert roll[58:63] == [0, 0, 3, 0, 0] and roll[57] == roll[63] == -1
    assert mrt.pianoroll_values([], unmask_width=127) == [0] * 128  # solo, nothing held: silence
    try:
        gen.set_note_options(onset_mode="explicit", drumless=True, cfg_notes=5.0)
        gen.note_on(64)
        first, rest = gen.frame_conditioning(GenerationControls())
        a, b = _split(gen, first), _split(gen, rest)
        assert a["pianoroll_with_onsets_tokens"][64] == 2 and b["pianoroll_with_onsets_tokens"][64] == 1
        assert a["drum_pianoroll_tokens"] == [0] and a["cfg_conditioning_tokens"] == [20, 30]
        first, rest = gen.frame_conditioning(GenerationControls())  # onset consumed: sustain
        assert first is rest and _split(gen, first)["pianoroll_with_onsets_tokens"][64] == 1
        gen.note_off(64)
        first, _ = gen.frame_conditioning(GenerationControls())
        assert _split(gen, first)["pianoroll_with_onsets_tokens"] == [-1] * 128
    finally:
        gen.all_notes_off()
        gen.set_note_options(onset_mode="auto", drumless=False, cfg_notes=1.0)


def test_the_chord_held_on_midi_in_is_the_piano_roll(gen):
    """``harmony`` (what a mapping's notes source plays from jamgen:midi_in) is held notes: new ones are onsets."""
    try:
        gen.set_note_options(onset_mode="explicit")
        first, rest = gen.frame_conditioning(GenerationControls(harmony="60 64 67"))
        a, b = _split(gen, first)["pianoroll_with_onsets_tokens"], _split(gen, rest)["pianoroll_with_onsets_tokens"]
        assert [a[p] for p in (60, 64, 67)] == [2, 2, 2] and [b[p] for p in (60, 64, 67)] == [1, 1, 1]
        first, _ = gen.frame_conditioning(GenerationControls(harmony="60 64 69"))  # only the new note strikes
        roll = _split(gen, first)["pianoroll_with_onsets_tokens"]
        assert (roll[60], roll[64], roll[69], roll[67]) == (1, 1, 2, -1)
        first, _ = gen.frame_conditioning(GenerationControls())  # released
        assert _split(gen, first)["pianoroll_with_onsets_tokens"] == [-1] * 128
    finally:
        gen.all_notes_off()
        gen.set_note_options(onset_mode="auto")


def _play(gen, seed, controls, frames=(2,)):
    state = gen.init_state(seed)
    chunks = []
    for n in frames:
        audio, state = gen.generate(state, controls, n)
        chunks.append(check_audio(audio, n))
    return np.concatenate(chunks), state


def test_generate_shape_seed_and_state(gen):
    controls = GenerationControls(prompts=(("bossa nova", 1.0),), temperature=1.0, top_k=40)
    audio, _ = _play(gen, 1, controls, (3,))
    assert audio.shape == (3 * FRAME_SAMPLES, 2) and audio.dtype == np.float32
    assert np.abs(audio).max() <= 0.5 + 1e-6  # the package's int16 output at gain 0.5
    again, _ = _play(gen, 1, controls, (1, 2))  # the state carries the stream across calls
    np.testing.assert_array_equal(audio, again)
    other, _ = _play(gen, 2, controls, (3,))
    assert not np.array_equal(audio, other), "the seed must change the sampling RNG"
    prompt, _ = _play(gen, 1, GenerationControls(prompts=(("drum and bass", 1.0),)), (3,))
    assert not np.array_equal(audio, prompt), "the prompt must change the output"


def test_temperature_zero_and_top_k_one_ignore_the_seed(gen):
    for controls in (GenerationControls(temperature=0.0), GenerationControls(temperature=1.5, top_k=1)):
        a, _ = _play(gen, 3, controls)
        b, _ = _play(gen, 4, controls)
        np.testing.assert_array_equal(a, b)


def test_snapshot_survives_donation_and_restores_twice(gen):
    controls = GenerationControls(prompts=(("ambient", 1.0),))
    _, state = _play(gen, 5, controls, (1,))
    snap = gen.snapshot(state)
    first, _ = gen.generate(state, controls, 2)  # donates `state`
    for _ in range(2):
        again, _ = gen.generate(gen.restore(snap), controls, 2)
        np.testing.assert_array_equal(first, again)


def test_checkpoint_format_round_trip(gen, mrt, tmp_path):
    """Params saved the way the official checkpoints are (``/``-joined keys) load back equal."""
    import flax.traverse_util as traverse_util
    import jax
    from safetensors.numpy import save_file

    flat = traverse_util.flatten_dict(jax.device_get(gen._params), sep="/")
    save_file({k: np.asarray(v) for k, v in flat.items()}, str(tmp_path / "test.safetensors"))
    loaded = mrt.load_checkpoint(tmp_path / "test.safetensors")
    assert jax.tree.structure(loaded) == jax.tree.structure(gen._params)
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(gen._params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_load_refuses_cpu_with_a_suggestion(mrt, empty_home, monkeypatch):
    import jax

    if jax.default_backend() != "cpu":
        pytest.skip("an accelerator is present")
    monkeypatch.delenv(mrt.ALLOW_CPU_ENV, raising=False)
    _install_placeholders(empty_home, "mrt2_small")
    with pytest.raises(generator.ModelLoadError, match="needs a GPU or TPU.*JAMGEN_MAGENTA_ALLOW_CPU=1"):
        generator.load("magenta:mrt2_small")


def test_mrt2_controls_become_the_adapters_conditioning_too(gen, mrt):
    """The registry's MRT2 controls through the adapter (the same MRT2Conditioning as mrt2:); bad values given to
    the note API are refused in one line, numbers out of range clamped as the package clamps them."""
    import dataclasses

    try:
        first, _ = gen.frame_conditioning(GenerationControls(cfg_notes=6.0, cfg_drums=-1.0, drumless=True,
                                                             unmask_width=1, harmony="60"))
        got = _split(gen, first)
        assert got["cfg_conditioning_tokens"] == [20, 35] and got["cfg_conditioning_drums_tokens"] == [0]
        assert got["drum_pianoroll_tokens"] == [0] and got["pianoroll_with_onsets_tokens"][58:63] == [-1, 0, 3, 0, -1]
        for bad, message in ((dict(cfg_notes="loud"), "cfg_notes must be a number, not 'loud'"),
                             (dict(cfg_drums=float("nan")), "cfg_drums must be a finite number"),
                             (dict(drumless="yes"), "drumless must be true or false"),
                             (dict(unmask_width=None, onset_mode="later"), "onset_mode must be")):
            with pytest.raises(ValueError, match=message) as err:
                gen.set_note_options(**bad)
            assert "\n" not in str(err.value)
        gen.set_note_options(cfg_notes=99.0, unmask_width=-3)
        first, _ = gen.frame_conditioning(GenerationControls(cfg_notes=6.0, cfg_drums=-1.0, drumless=True,
                                                             unmask_width=1, harmony="60"))
        assert _split(gen, first)["cfg_conditioning_tokens"] == [20, 40]  # clamped to 7; unchanged controls
        assert dataclasses.replace(GenerationControls(), drumless=True).as_dict()["drumless"] is True
    finally:
        gen.frame_conditioning(GenerationControls())  # the controls back at their defaults
        gen.all_notes_off()
    first, _ = gen.frame_conditioning(GenerationControls())
    assert _split(gen, first)["cfg_conditioning_tokens"] == [20, 10] and _split(gen, first)["drum_pianoroll_tokens"] == [-1]
