"""The generator contract: neutral defaults of the base class, adapt() for duck-typed generators, and
GenerationControls' normalisation and plain-data round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest

from generator.core.contract import (
    DEFAULT_LATENCY,
    FRAME_SAMPLES,
    GenerationControls,
    Generator,
    Latency,
    adapt,
)


def _silence(frames: int) -> np.ndarray:
    return np.zeros((frames * FRAME_SAMPLES, 2), np.float32)


class Minimal(Generator):
    """Only the three abstract methods."""

    def init_state(self, seed: int = 0):
        return seed

    def generate(self, state, controls, frames):
        return _silence(frames), state

    def embed_style(self, text):
        return np.zeros(4, np.float32)


class Duck:
    """The pre-base-class contract: the three methods, no optional features."""

    def __init__(self):
        self.warmed = 0
        self.compile_count = 7  # any other attribute reaches through the wrapper

    def init_state(self, seed=0):
        return ("state", seed)

    def generate(self, state, controls, frames):
        return _silence(frames), state

    def embed_style(self, text):
        return np.ones(4, np.float32)


class FullDuck(Duck):
    control_defaults = {"guidance": 1.25}
    latency = {"low": Latency(1, 0.1), "safe": (4, 0.5)}  # a plain pair is accepted too

    def warmup(self):
        self.warmed += 1

    def drain_midi(self):
        return [(0, b"\x90\x3c\x64")]


def test_a_minimal_subclass_gets_the_neutral_defaults():
    gen = Minimal()
    assert dict(gen.control_defaults) == {}
    assert gen.latency is DEFAULT_LATENCY
    assert dict(gen.latency) == {"low": Latency(2, 0.15), "safe": Latency(5, 0.3)}
    assert not hasattr(gen, "prebuffer_seconds")  # replaced by latency
    assert gen.makes_notes is False
    assert gen.warmup() is None
    assert gen.drain_midi() == []
    assert adapt(gen) is gen  # a subclass is not wrapped


def test_a_generator_needs_the_three_abstract_methods():
    class Partial(Generator):
        def init_state(self, seed=0):
            return None

    with pytest.raises(TypeError):
        Partial()


def test_adapt_wraps_a_bare_duck_with_neutral_defaults():
    duck = Duck()
    gen = adapt(duck)
    assert isinstance(gen, Generator) and gen is not duck
    assert dict(gen.control_defaults) == {}
    assert gen.latency == DEFAULT_LATENCY
    assert gen.makes_notes is False
    gen.warmup()  # nothing to call, and no error
    assert gen.drain_midi() == []
    assert gen.init_state(3) == ("state", 3)
    audio, state = gen.generate("s", GenerationControls(), 2)
    assert audio.shape == (2 * FRAME_SAMPLES, 2) and state == "s"
    assert gen.embed_style("jazz").tolist() == [1.0] * 4
    assert gen.compile_count == 7


def test_adapt_reads_a_ducks_optional_features():
    duck = FullDuck()
    gen = adapt(duck)
    assert gen.control_defaults == {"guidance": 1.25}
    assert gen.latency == {"low": Latency(1, 0.1), "safe": Latency(4, 0.5)}
    assert gen.makes_notes is True
    gen.warmup()
    assert duck.warmed == 1
    assert gen.drain_midi() == [(0, b"\x90\x3c\x64")]


def test_adapt_turns_an_old_style_prebuffer_into_both_settings():
    class OldDuck(Duck):
        prebuffer_seconds = 0.8

    gen = adapt(OldDuck())
    assert gen.latency == {"low": Latency(5, 0.8), "safe": Latency(5, 0.8)}


def test_latency_refuses_impossible_values():
    assert Latency(3, 1) == Latency(3, 1.0) and isinstance(Latency(3, 1).prebuffer_seconds, float)
    for bad in ((0, 0.1), (1.5, 0.1), (2, 0.0), (2, -1.0)):
        with pytest.raises(ValueError):
            Latency(*bad)
    with pytest.raises(AttributeError):
        Latency(2, 0.1).block_frames = 3  # frozen


def test_adapt_refuses_an_object_without_generate():
    class NoGenerate:
        def init_state(self, seed=0):
            return None

        def embed_style(self, text):
            return None

    with pytest.raises(TypeError, match="generate"):
        adapt(NoGenerate())


def test_generation_controls_normalise_their_prompts():
    controls = GenerationControls(prompts=(("jazz", 0.6), ("rock", 0.2), ("", 1.0), ("folk", 0.0), ("x", -1.0)))
    assert [t for t, _ in controls.prompts] == ["jazz", "rock"]
    assert math.isclose(sum(w for _, w in controls.prompts), 1.0)
    assert math.isclose(controls.prompts[0][1], 0.75)
    assert GenerationControls(prompts=(("", 1.0), ("folk", 0.0))).prompts == ()


def test_generation_controls_round_trip_through_plain_data():
    controls = GenerationControls(prompts=(("jazz", 0.5), ("rock", 0.5)), guidance=1.5, temperature=0.9,
                                  top_k=12, seed=42)
    data = controls.as_dict()
    assert data == {"prompts": [["jazz", 0.5], ["rock", 0.5]], "guidance": 1.5, "temperature": 0.9,
                    "top_k": 12, "seed": 42, "bpm": 0.0, "repeat": 0.5, "harmony": "", "cfg_notes": 1.0,
                    "cfg_drums": 1.0, "drumless": False, "unmask_width": 0, "clock": None}
    assert GenerationControls.from_dict(data) == controls
    assert GenerationControls.from_dict({}) == GenerationControls()  # missing keys take the defaults


def test_generation_controls_from_dict_refuses_unknown_keys():
    with pytest.raises(ValueError, match="unknown generation control"):
        GenerationControls.from_dict({"guidance": 1.0, "volume_db": -6.0})
    with pytest.raises(ValueError, match="invalid generation controls"):
        GenerationControls.from_dict({"top_k": "many"})
    # plain data spells booleans out: "false" is not truthy, a word that is neither is refused
    assert GenerationControls.from_dict({"drumless": "false"}).drumless is False
    assert GenerationControls.from_dict({"drumless": "true"}).drumless is True
    assert GenerationControls.from_dict({"drumless": 1}).drumless is True
    with pytest.raises(ValueError, match="invalid generation controls"):
        GenerationControls.from_dict({"drumless": "maybe"})


def test_registry_generation_group_is_the_generation_controls():
    """Each control of the registry's generation group is a GenerationControls field of the same name and
    default (the registry is plain data, so this test is what keeps the two declarations in step)."""
    import dataclasses

    from bridge.controls import GENERATION_CONTROLS, REGISTRY

    fields = {f.name: f.default for f in dataclasses.fields(GenerationControls) if f.name not in ("prompts", "clock")}
    assert set(GENERATION_CONTROLS) == set(fields)
    for name in GENERATION_CONTROLS:
        assert REGISTRY[name].default == fields[name], name
