"""generator.data.sources: captions say what was arranged, splits are disjoint, Essen is excluded,
mma grooves produce MIDI. Needs Debian `mma` (CI installs it); a missing tool fails with its name."""

from __future__ import annotations

import shutil

import pytest

from generator.core import gm
from generator.data import source_music21
from generator.data import sources as S


def _require_mma():
    if shutil.which("mma") is None:
        pytest.fail("Debian package `mma` is not installed (apt-get install --no-install-recommends mma)")


def test_mma_grooves_produce_midi():
    _require_mma()
    mid = S.mma_song("stdlib/bossanova", "BossaNova", 130, ["Dm7", "G7", "CM7", "CM7"])
    notes = [m for t in mid.tracks for m in t if m.type == "note_on" and m.velocity > 0]
    assert len(notes) > 20
    assert any(m.channel == gm.DRUM_CHANNEL for m in notes)
    assert 5 < mid.length < 15  # 4 bars at 130 BPM (plus the tail mma adds)


def test_mma_caption_names_what_was_arranged():
    _require_mma()
    works = list(S.iter_works("train", ("mma",), seed=3, limit=3))
    assert len(works) == 3
    for w in works:
        m = w.meta
        assert w.split == "train" and w.license.startswith("GPL")
        assert m["genre"] in w.caption and f"{round(m['bpm'])} BPM" in w.caption
        assert f"in {m['key']} {m['mode']}" in w.caption
        assert m["tempo_word"] in w.caption
        # every named instrument is really a program in the arranged MIDI
        progs = {msg.program for t in w.midi.tracks for msg in t
                 if msg.type == "program_change" and msg.channel != gm.DRUM_CHANNEL}
        for inst in m["instruments"]:
            assert inst in w.caption
            assert inst == "walking bass" or inst in {gm.program_name(p) for p in progs}
        if m["drums"]:
            assert m["drum_words"] in w.caption
            kits = [msg.program for t in w.midi.tracks for msg in t
                    if msg.type == "program_change" and msg.channel == gm.DRUM_CHANNEL]
            assert kits == [m["kit_program"]]
        assert len(w.paraphrases) >= 3 and all(p != w.caption for p in w.paraphrases)
        assert all(str(round(m["bpm"])) in p for p in w.paraphrases[:2])


def test_same_seed_same_work_other_seed_other_arrangement():
    _require_mma()
    a = next(S.iter_works("train", ("mma",), seed=11, limit=1))
    b = next(S.iter_works("train", ("mma",), seed=11, limit=1))
    assert (a.id, a.caption) == (b.id, b.caption)
    ref = S.work_refs("train", ("mma",))[0]
    variants = {S.load_work(ref, seed).caption for seed in range(4)}
    assert len(variants) > 1


def test_heldout_disjoint_by_work_and_groove():
    _require_mma()
    refs = S.work_refs(None, ("mma", "music21", "debian"))
    train = [r for r in refs if r.split == "train"]
    held = [r for r in refs if r.split == "heldout"]
    assert held and train
    assert not {r.id for r in train} & {r.id for r in held}
    assert not {r.group for r in train} & {r.group for r in held}
    # grooves: a held-out groove file's grooves never appear in training, by name either
    train_grooves = {r.id.rsplit("/", 1)[0] for r in train if r.source == "mma"}
    held_grooves = {r.id.rsplit("/", 1)[0] for r in held if r.source == "mma"}
    assert held_grooves and not train_grooves & held_grooves
    assert 0.05 < len(held) / len(refs) < 0.15
    # deterministic, seed-independent
    assert all(S.split_of(r.group) == r.split for r in refs[:500])
    ws = list(S.iter_works("heldout", ("mma",), seed=0, limit=2))
    assert all(w.split == "heldout" and w.meta["group"] in held_grooves for w in ws)


def test_essen_is_excluded():
    refs = S.work_refs(None, ("music21",))
    assert len(refs) > 5000
    assert (source_music21.m21_corpus_dir() / "essenFolksong").is_dir()  # it ships, so excluding it is a real choice
    assert not any(r.path.split("/")[0] == "essenFolksong" or r.collection == "music21/essenFolksong" for r in refs)
    assert not any(w.collection == "music21/essenFolksong" for w in S.iter_works("train", ("music21",), limit=3))
    assert not any(r.path.endswith(".rntxt") for r in refs)


def test_music21_work_caption_and_transposed_key():
    w = next(S.iter_works("train", ("music21",), seed=0, limit=1, collections=("music21/bach",)))
    m = w.meta
    assert w.collection == "music21/bach" and "baroque chorale" in w.caption
    assert "without drums" in w.caption and f"{round(m['bpm'])} BPM" in w.caption
    assert f"in {m['key']} {m['mode']}" in w.caption
    progs = {msg.program for t in w.midi.tracks for msg in t if msg.type == "program_change"}
    assert {gm.program_name(p) for p in progs} >= set(m["instruments"])
    assert w.duration > 10
    # a four-part chorale: one channel (and one program) per part, so parts can be panned apart
    assert len({msg.channel for t in w.midi.tracks for msg in t if msg.type == "note_on"}) == 4


def test_key_names():
    assert gm.key_name(10, "major") == "B flat"
    assert gm.key_name(1, "minor") == "C sharp"
    assert gm.chord_root(3, 10, "major") == "Eb"
