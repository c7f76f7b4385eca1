"""The prompt's pitch head: key names and key-finding, the NOTE_ON bias, its effect on real sampling
(melodic parts only, never the drum kit), its checkpoint file, and what the shipped head reads."""

from __future__ import annotations

import json

import numpy as np

import generator
from generator.core.contract import GenerationControls
from generator.symbolic import tokens as tok
from generator.symbolic.pitch import FILE, PitchHead
from generator.symbolic.system import CHECKPOINTS, SymbolicSystem
from generator.train.heads.pitch import MAJOR, MINOR, key_of, parse_key, pitch_classes
from generator.train.symbolic_eval import generate_midi

SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"


def only(classes, dim=384) -> PitchHead:
    """A head that asks for the pitch classes ``classes`` whatever the prompt says."""
    bias = np.full(12, -8.0, np.float32)
    bias[list(classes)] = 8.0
    return PitchHead(np.zeros((dim, 12), np.float32), bias)


def test_keys_are_named_and_found():
    assert parse_key("moderate jazz with drums, in E flat major") == (3, "major")
    assert parse_key("violin playing a reel; the key of F sharp minor") == (6, "minor")
    assert parse_key("fast swing jazz") is None
    for tonic in range(12):
        assert key_of(np.roll(MAJOR, tonic)) == (tonic, "major")
        assert key_of(np.roll(MINOR, tonic)) == (tonic, "minor")


def test_pitch_classes_leave_out_the_drums():
    seq = [tok.BOS, tok.PART0 + 0, tok.ON0 + 60, tok.ON0 + 64, tok.SHIFT0,
           tok.PART0 + tok.DRUM_PART, tok.ON0 + 38, tok.ON0 + 42,  # snare (D) and hi-hat (F sharp)
           tok.PART0 + 4, tok.ON0 + 43, tok.OFF0 + 43]
    got = pitch_classes(seq)
    assert got[0] == 1 and got[4] == 1 and got[7] == 1 and got.sum() == 3


def test_bias_is_per_pitch_class_and_neutral_without_a_prompt():
    head = only([0, 4, 7])
    bias = head.pitch_bias(np.ones(384, np.float32))
    assert bias.shape == (128,) and bias.dtype == np.float32
    assert np.allclose(bias[:12], bias[12:24]) and bias[60] - bias[62] > 10 and abs(bias[:12].mean()) < 1e-5
    assert not head.pitch_bias(None).any()


def test_sampler_bends_melodic_notes_only():
    """The trained model with a head that asks for C, E and G: melodic notes follow, the drums do not."""
    from generator.symbolic import checkpoint as ckpt

    config, model, _ = ckpt.load(CHECKPOINTS / "symbolic")
    controls = GenerationControls(prompts=(("upbeat jazz with drums, piano and walking bass", 1.0),), guidance=1.25)

    def notes(pitch):
        gen = SymbolicSystem(config, model, SOUNDFONT, pitch=pitch)
        events, *_ = generate_midi(gen, controls, 8.0, seed=2)
        on = [d for _, d in events if d[0] & 0xF0 == 0x90 and d[2] > 0]
        melodic = [d[1] % 12 for d in on if d[0] & 0x0F != tok.DRUM_CHANNEL]
        drums = [d[1] % 12 for d in on if d[0] & 0x0F == tok.DRUM_CHANNEL]
        return melodic, drums

    melodic, drums = notes(only([0, 4, 7]))
    inside = np.isin(melodic, [0, 4, 7]).mean()
    assert len(melodic) > 20 and inside > 0.98  # a bias of 12.7 nats, not a ban: a rare note may slip
    assert drums and set(drums) - {0, 4, 7}  # the kit's "pitches" are instruments: untouched
    plain, _ = notes(None)
    assert np.isin(plain, [0, 4, 7]).mean() < 0.8  # without the head other pitch classes play (can fail)


def test_shipped_head_reads_key_names():
    meta = json.loads((CHECKPOINTS / "symbolic" / "config.json").read_text())
    held = meta["pitch"]["heldout"]
    assert FILE in meta["files"] and held["cross_entropy"] < held["mean_guess_cross_entropy"]
    gen = generator.load("symbolic")
    assert gen.pitch is not None

    def key(text):
        return key_of(gen.pitch.probs(gen.embed_style(text)))

    assert key("swing jazz with walking bass, in D minor") == (2, "minor")
    assert key("a folk song in G major") == (7, "major")
    keyless = np.abs(gen.pitch.pitch_bias(gen.embed_style("fast swing jazz with brushed drums"))).max()
    named = np.abs(gen.pitch.pitch_bias(gen.embed_style("fast swing jazz with brushed drums, in D minor"))).max()
    assert keyless < named  # a prompt without a key bends the notes less
