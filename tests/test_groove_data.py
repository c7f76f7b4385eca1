"""Groove token sets and the harmony grammar: tokens decode without a grammar error, windows start at bar
lines, metas round-trip, parallel builds give the same works, and the generated progressions are
deterministic, cadential, varied and accepted by mma. Needs Debian `mma` (CI installs it)."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest

from generator.data import groove_tokens as GT
from generator.data import harmony as H
from generator.data import source_mma as M
from generator.data import sources as S
from generator.data import symbolic_tokens, token_sets
from generator.groove import tokens as G

FAMILIES = ("jazz", "blues", "latin", "rock", "pop", "country", "funk", "waltz", "march", "ballad", "electronic")


def _require_mma():
    if shutil.which("mma") is None:
        pytest.fail("Debian package `mma` is not installed (apt-get install --no-install-recommends mma)")


# ---- harmony -------------------------------------------------------------------------------------
def test_progressions_are_deterministic_per_seed():
    for fam in FAMILIES:
        a = M.progression(fam, random.Random(f"x|{fam}"), 16)
        assert a == M.progression(fam, random.Random(f"x|{fam}"), 16)
        assert a != M.progression(fam, random.Random(f"y|{fam}"), 16) or fam in ("march", "waltz")


def test_phrases_end_on_cadences():
    for fam in FAMILIES:
        ends = []
        for seed in range(60):
            rng = random.Random(seed)
            song = H.song(fam, rng, rng.randint(8, 36))
            assert song.cadences()[-1], f"{fam} seed {seed}: the last phrase must close"
            assert song.phrase_ends[-1] == len(song.bars) - 1
            ends += song.cadences()
        assert sum(ends) / len(ends) > 0.85, fam


def test_many_distinct_progressions():
    """Transposition-free progressions (chords relative to the tonic): many per family, not a handful."""
    for fam in FAMILIES:
        seen = {tuple(H.song(fam, random.Random(seed), 16).bars) for seed in range(80)}
        assert len(seen) >= 60, (fam, len(seen))
        openings = {tuple(H.song(fam, random.Random(seed), 16).bars[:4]) for seed in range(80)}
        assert len(openings) >= 12, (fam, len(openings))


def test_family_idioms_and_harmonic_rhythm():
    def qualities(fam, slots=4):
        return [c.quality for s in range(40) for b in H.song(fam, random.Random(s), 16, slots).bars for c in b]

    jazz, rock = qualities("jazz"), qualities("rock")
    assert np.mean([q not in ("", "m") for q in jazz]) > 0.9  # sevenths, sixths, ninths
    assert np.mean([q in ("", "m") for q in rock]) > 0.8  # triads
    blues = H.song("blues", random.Random(0), 12)
    assert {c.quality for b in blues.bars for c in b} & {"7", "9", "13"}
    for seed in range(20):  # waltz phrasing: one chord a bar; odd chord slots never get two
        assert all(len(b) == 1 for b in H.song("waltz", random.Random(seed), 16).bars)
        assert all(" " not in c for c in M.progression("jazz", random.Random(seed), 16, slots=3)[2])
    lines = [c for s in range(20) for c in M.progression("jazz", random.Random(s), 16)[2]]
    two = [c.split() for c in lines if " " in c]
    assert two and all(len(w) == 4 and w[1] == w[3] == "/" for w in two)  # "Dm7 / G7 /" in 4 slots
    lines = [c.split() for s in range(20) for c in M.progression("jazz", random.Random(s), 16, slots=2)[2]]
    assert {len(w) for w in lines} == {1, 2} and not any("/" in w for w in lines)  # "Dm7 G7" in mma's 6/8


def test_roman_numerals():
    assert H.rn("bVII") == H.Chord(10, "maj") and H.rn("ii") == H.Chord(2, "min") and H.rn("V7") == H.Chord(7, "dom")
    assert H.rn("iiø").kind == "hdim" and H.rn("#io7") == H.Chord(1, "dim") and H.rn("Vsus").kind == "sus"
    assert H.Chord(10, "maj").symbol(0, "major") == "Bb"  # lowered degrees spelled with flats
    with pytest.raises(ValueError):
        H.rn("X7")


def test_mma_accepts_generated_progressions():
    _require_mma()
    every = sorted({q for pal in H.PALETTES.values() for opts in pal.values() for q, _ in opts})
    mid = M.mma_song("stdlib/swing", "Swing", 160, [f"C{q} / F#{q} /" for q in every])  # every quality
    assert mid.length > len(every) * 4 * 60 / 160 * 0.9
    for use, groove, fam in [("stdlib/swing", "SwingWalk", "jazz"), ("stdlib/waltz", "Waltz", "waltz"),
                             ("stdlib/68swing", "68Swing", "blues"), ("zoom/blues68", "68BLUS", "blues"),
                             ("stdlib/bossanova", "BossaNova", "latin"), ("stdlib/rock-128", "Rock128", "rock")]:
        slots = M.groove_slots(use, groove)
        _, _, chords = M.progression(fam, random.Random(use), 8, slots=slots)
        assert len(M.mma_song(use, groove, 120, chords).tracks) > 1, use
    assert M.groove_slots("stdlib/waltz", "Waltz") == 3 and M.groove_slots("stdlib/swing", "Swing") == 4


# ---- token sets ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    _require_mma()
    d = tmp_path_factory.mktemp("groove")
    GT.build(d / "one.npz", "train", ("mma", "music21"), seeds=(0, 1), limit=2, progress=False)
    return d


def test_tokens_decode_without_grammar_errors(built):
    data = GT.TokenSet(built / "one.npz")
    assert len(data) == 8 and len(set(data.collections)) >= 3
    for i in range(len(data)):
        seq = data.work(i)
        assert seq[0] == G.BOS and seq[1] == G.BAR and G.KIND[seq[2]] == G.K_TS
        dec = G.Decoder()
        notes = [n for t in seq[1:] if (n := dec.feed(t)) is not None]
        assert dec.invalid == 0 and notes and dec.bars >= 2, data.work_ids[i]


def test_bar_crops_start_at_bar_lines(built):
    data = GT.TokenSet(built / "one.npz")
    x, caps = GT.BarCrops(data, 96, seed=3).batch(24)
    assert x.shape == (24, 96) and x.dtype == np.int32
    assert (x[:, 0] == G.BOS).all() and (x[:, 1] == G.BAR).all() and (G.KIND[x[:, 2]] == G.K_TS).all()
    assert ((caps >= 0) & (caps < len(data.texts))).all()
    for row in x:  # every window is a valid stream from its BAR on (PAD only as a tail)
        body = row[1:][row[1:] != G.PAD]
        dec = G.Decoder()
        for t in body:
            dec.feed(t)
        assert dec.invalid == 0 and (row[1:1 + len(body)] != G.PAD).all()
    short = GT.BarCrops(data, 100_000, seed=0).batch(3)[0]  # longer than any piece: the whole piece, padded
    assert (short[:, 1] == G.BAR).all() and (short[:, -1] == G.PAD).all()


def test_metas_round_trip(built):
    data = GT.TokenSet(built / "one.npz")
    refs = {r.id: r for r in S.work_refs("train", ("mma", "music21"))}
    for i in (0, len(data) - 1):
        meta = data.metas[i]
        work = S.load_work(refs[data.work_ids[i]], meta["variant"])
        assert meta == json.loads(json.dumps(token_sets.work_meta(work)))
        assert meta["collection"] == data.collections[i] and "/" in meta["time_signature"]
    mma = [m for m in data.metas if m["source"] == "mma"]
    assert mma and all({"genre", "family", "bpm", "key", "mode", "groove", "drums", "chords"} <= set(m) for m in mma)


def test_old_files_without_metas_load(tmp_path, built):
    with np.load(built / "one.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "metas"}
    np.savez(tmp_path / "old.npz", **arrays)
    old = token_sets.TokenSet(tmp_path / "old.npz")
    assert old.metas == [{}] * len(old) and len(old) == len(GT.TokenSet(built / "one.npz"))


def test_two_workers_give_the_same_works(built, tmp_path):
    GT.build(tmp_path / "two.npz", "train", ("mma", "music21"), seeds=(0, 1), limit=2, workers=2, progress=False)
    one, two = GT.TokenSet(built / "one.npz"), GT.TokenSet(tmp_path / "two.npz")
    assert one.work_ids == two.work_ids and np.array_equal(one.tokens, two.tokens)
    assert one.metas == two.metas and one.texts == two.texts


def test_tokenize_cuts_long_works_at_a_bar_line(built):
    data = GT.TokenSet(built / "one.npz")
    seq = data.work(0)
    mf = G.notes_to_midi(*[G.decode(seq[1:])[0]], bars=G.decode(seq[1:])[1])
    cut = GT.tokenize(mf, max_tokens=len(seq) // 2)
    assert len(cut) <= len(seq) // 2 and np.array_equal(cut, GT.tokenize(mf)[:len(cut)])
    assert GT.tokenize(mf)[len(cut)] == G.BAR  # the next token would have started a bar


def test_symbolic_build_through_the_shared_builder(tmp_path):
    _require_mma()
    symbolic_tokens.build(tmp_path / "s.npz", "heldout", ("mma",), limit=2, progress=False)
    data = symbolic_tokens.TokenSet(tmp_path / "s.npz")
    assert len(data) == 2 and data.work(0)[0] == 1 and data.metas[0]["source"] == "mma"
    x, caps = symbolic_tokens.Crops(data, 64, seed=0).batch(4)
    assert x.shape == (4, 64) and (x[:, 0] == 1).all()


def test_cli_groove(tmp_path):
    _require_mma()
    from generator.data.__main__ import main

    out = tmp_path / "sub" / "held.npz"
    assert main(["groove", "--split", "heldout", "--sources", "mma", "--limit", "1", "--out", str(out)]) == 0
    assert len(GT.TokenSet(out)) == 1
