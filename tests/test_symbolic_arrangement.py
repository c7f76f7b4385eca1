"""The prompt's arrangement head: labels from tokens, the PART-token bias, its effect on real sampling,
its checkpoint file, and what the shipped head decides for plain-English prompts."""

from __future__ import annotations

import json

import numpy as np

import generator
from tests.note_channels import channels_played
from generator.core.contract import GenerationControls
from generator.symbolic import tokens as tok
from generator.symbolic.arrangement import FILE, NEG, Arrangement
from generator.symbolic.model import PRESETS
from generator.symbolic.system import CHECKPOINTS, SymbolicSystem
from generator.train.heads.arrangement import parts_present

SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
PIANO, BASS, DRUMS = 0, 4, tok.DRUM_PART


def only(parts, dim=384):
    """A head that lets exactly ``parts`` play whatever the prompt says."""
    bias = np.full(tok.N_PARTS, -8.0, np.float32)
    bias[list(parts)] = 4.0
    return Arrangement(np.zeros((dim, tok.N_PARTS), np.float32), bias)


def test_parts_present_needs_a_note():
    seq = np.array([tok.BOS, tok.PART0 + PIANO, tok.VEL0 + 8, tok.ON0 + 60, tok.SHIFT0 + 9,
                    tok.PART0 + BASS, tok.OFF0 + 40,  # a note-off only: the bass does not play here
                    tok.PART0 + DRUMS, tok.ON0 + 36])
    got = parts_present(seq)
    assert got[PIANO] and got[DRUMS] and not got[BASS] and got.sum() == 2


def test_part_bias_bans_unlikely_families_and_keeps_the_best():
    head = only([PIANO])
    vec = np.ones(384, np.float32) / np.sqrt(384)
    bias = head.part_bias(vec)
    assert bias.shape == (tok.VOCAB,)
    assert bias[tok.PART0 + PIANO] > -1.0 and bias[tok.PART0 + DRUMS] == NEG
    assert (bias[:tok.PART0] == 0).all() and (bias[tok.VEL0:] == 0).all()  # only PART tokens move
    assert not head.part_bias(None).any() and head.allowed(None).all()
    # everything unlikely: the most likely family still plays
    low = Arrangement(np.zeros((384, tok.N_PARTS)), np.linspace(-9, -5, tok.N_PARTS))
    assert low.allowed(vec).sum() == 1 and low.allowed(vec)[tok.N_PARTS - 1]


def test_sampler_plays_only_allowed_families():
    """The trained model (a random one hardly ever changes part) with a head that allows two families."""
    from generator.symbolic import checkpoint as ckpt

    config, model, _ = ckpt.load(CHECKPOINTS / "symbolic")
    controls = GenerationControls(prompts=(("big band swing with trumpets, saxophones and drums", 1.0),))

    def parts_sampled(arrangement):
        gen = SymbolicSystem(config, model, SOUNDFONT, arrangement=arrangement)
        toks = gen.sample_tokens(gen.init_state(3), controls, n_chunks=100)
        return {int(t) - tok.PART0 for t in toks if tok.PART0 <= t < tok.VEL0}

    parts = parts_sampled(only([PIANO, BASS]))
    assert parts and parts <= {PIANO, BASS}
    assert parts_sampled(None) - {PIANO, BASS}  # without the head other families play (the check can fail)


def test_banned_family_stops_sounding_at_the_next_block():
    gen = SymbolicSystem(PRESETS["symbolic-tiny"], soundfont=SOUNDFONT, arrangement=only([PIANO, BASS]))
    state = gen.init_state(0)
    controls = GenerationControls(prompts=(("anything", 1.0),))
    gen.generate(state, controls, 1)
    state.active[(tok.part_channel(5), 64)] = (999, state.position)  # a string note left sounding
    gen.generate(state, controls, 1)
    assert (tok.part_channel(5), 64) not in state.active
    assert (0, bytes([0x80 | tok.part_channel(5), 64, 0])) in gen.drain_midi()


def test_shipped_head_follows_plain_english():
    """The shipped symbolic checkpoint carries a fitted head, and it reads the issue's prompts."""
    directory = CHECKPOINTS / "symbolic"
    meta = json.loads((directory / "config.json").read_text())
    assert FILE in meta["files"] and meta["arrangement"]["heldout"]["accuracy"] > \
        meta["arrangement"]["heldout"]["majority_accuracy"]
    gen = generator.load("symbolic")
    assert gen.arrangement is not None
    jazz = gen.arrangement.allowed(gen.embed_style("fast swing jazz with brushed drums and walking bass"))
    lullaby = gen.arrangement.allowed(gen.embed_style("gentle solo piano lullaby"))
    quiet = gen.arrangement.allowed(gen.embed_style("quiet flute melody without drums"))
    assert jazz[DRUMS] and jazz[BASS]
    assert lullaby[PIANO] and not lullaby[DRUMS]
    assert not quiet[DRUMS] and quiet[9]  # pipe family (flute)


def test_shipped_model_lullaby_has_no_drums_and_jazz_has_them():
    """End to end through the default model: what the head bans never sounds (any seed, any rounding)."""
    gen = generator.load("symbolic")

    def channels(prompt, seed):
        return channels_played(gen, prompt, seed, blocks=12, guidance=1.25)

    lullaby = "gentle solo piano lullaby"
    allowed = {tok.part_channel(p) for p in np.nonzero(gen.arrangement.allowed(gen.embed_style(lullaby)))[0]}
    for seed in (0, 1):
        played = channels(lullaby, seed)
        assert played and played <= allowed and tok.DRUM_CHANNEL not in played
    assert tok.DRUM_CHANNEL in channels("fast swing jazz with brushed drums and walking bass", 0)


class _Works:
    """Two tokenised works with their metas, shaped like a TokenSet (len, work(i), metas)."""

    def __init__(self, seqs, metas):
        self.seqs, self.metas = seqs, metas

    def __len__(self):
        return len(self.seqs)

    def work(self, i):
        return self.seqs[i]


def test_genre_texts_label_a_style_word_with_its_whole_band():
    from generator.train.heads.arrangement import GENRE_FORMS, genre_texts

    band = np.array([tok.BOS, tok.PART0 + PIANO, tok.VEL0 + 8, tok.ON0 + 60, tok.PART0 + BASS, tok.ON0 + 40,
                     tok.PART0 + DRUMS, tok.ON0 + 36])
    works = _Works([band, band[:4]], [{"genre": "reggae", "tempo_word": "moderate", "instruments": ["organ", "bass"]},
                                      {}])  # the second names no genre: no rows
    texts, labels = genre_texts(works)
    assert len(texts) == len(GENRE_FORMS) == len(labels) and texts[0] == "reggae"
    assert (labels == parts_present(band)).all()  # the whole band, whatever the text names
