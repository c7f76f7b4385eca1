"""The ``music21`` source: the music21 corpus (minus Essen), parsed once, re-orchestrated per seed.

Why a module of its own: each source finds its works and arranges them in its own way; this one parses
single works from the corpus's metadata bundle (cached as MIDI + JSON under
:func:`generator.data.works.cache_dir`), gives every part its own channel and an ensemble, transposes and
re-times them. The API over all sources is :mod:`generator.data.sources`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import mido

from generator.core import gm
from .works import Work, WorkRef, arrange, cache_dir, channel_stats, channels_by_track, finish_work, first_tempo, \
    instrument_words, kit_meta, split_of

EXCLUDED_MUSIC21 = ("essenFolksong",)  # non-commercial licence (essenFolksong/license.txt)

# Collection -> (genre words for the caption, licence note, attribution).
_M21_GENRES = {
    "bach": "baroque chorale", "palestrina": "renaissance choral polyphony", "josquin": "renaissance polyphony",
    "monteverdi": "renaissance madrigal", "trecento": "medieval polyphony", "ciconia": "medieval polyphony",
    "luca": "renaissance polyphony", "lusitano": "renaissance polyphony",
    "oneills1850": "irish fiddle tune", "ryansMammoth": "fiddle tune", "airdsAirs": "scottish folk air",
    "miscFolk": "folk melody", "nottingham-dataset": "folk dance tune",
    "beethoven": "classical chamber music", "mozart": "classical chamber music", "haydn": "classical string quartet",
    "schubert": "romantic song", "schumann_robert": "romantic piano music", "schumann_clara": "romantic piano music",
    "chopin": "romantic piano music", "beach": "romantic piano music", "joplin": "ragtime",
    "corelli": "baroque music", "handel": "baroque music", "cpebach": "baroque music", "weber": "romantic music",
    "verdi": "opera aria", "schoenberg": "atonal modern music", "webern": "atonal modern music",
    "liliuokalani": "hawaiian song", "johnson_j_r": "hymn", "leadSheet": "popular song",
    "demos": "classical music", "theoryExercises": "classical music",
}

# Ensembles for polyphonic works, listed top voice first, bass last.
_ENSEMBLES: dict[str, list[int]] = {
    "piano": [0], "electric piano": [4], "harpsichord": [6], "organ": [19], "choir": [52],
    "string quartet": [40, 40, 41, 42], "string orchestra": [48, 48, 48, 43],
    "brass": [56, 60, 57, 58], "woodwinds": [73, 68, 71, 70], "saxophones": [64, 65, 66, 67],
    "guitars": [24, 25, 24, 32], "synths": [81, 89, 90, 38], "mallets": [11, 12, 13, 32],
    "harp": [46], "accordion": [21], "mixed": [],  # empty = random program per part
}
_LEADS = (40, 110, 73, 78, 74, 21, 0, 24, 68, 71, 22, 105, 11, 46, 72, 75, 109, 6, 4, 80)


def m21_corpus_dir() -> Path:
    import music21.corpus

    return Path(music21.corpus.__file__).parent


def music21_refs() -> list[WorkRef]:
    import importlib.metadata

    ver = importlib.metadata.version("music21")
    index = cache_dir() / f"music21-index-{ver}.json"
    if index.exists():
        rows = json.loads(index.read_text())
    else:
        from music21 import corpus

        rows = []
        for e in corpus.corpora.CoreCorpus().metadataBundle:
            sp = str(e.sourcePath)
            coll = sp.split("/")[0]
            if coll in EXCLUDED_MUSIC21 or sp.endswith(".rntxt"):
                continue
            rows.append([sp, e.number])
        rows.sort(key=lambda r: (r[0], str(r[1])))
        tmp = index.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(rows))
        tmp.replace(index)
    refs = []
    for sp, num in rows:
        coll = sp.split("/")[0]
        if coll in EXCLUDED_MUSIC21:  # defensive: an old index must not leak Essen
            continue
        wid = f"music21/{sp}" + (f"#{num}" if num is not None else "")
        refs.append(WorkRef(id=wid, source="music21", collection=f"music21/{coll}", group=wid,
                            split=split_of(wid), path=sp, number=num))
    return refs


def music21_base(ref: WorkRef) -> tuple[mido.MidiFile, dict] | None:
    """Parse (once, then cached) a music21 work to MIDI plus key/title/composer."""
    h = hashlib.sha1(ref.id.encode()).hexdigest()[:20]
    mid_p, info_p = cache_dir() / f"m21-{h}.mid", cache_dir() / f"m21-{h}.json"
    if info_p.exists():
        info = json.loads(info_p.read_text())
        if info.get("error"):
            return None
        return mido.MidiFile(mid_p), info
    from music21 import corpus

    try:
        s = corpus.parse(str(m21_corpus_dir() / ref.path), number=ref.number)
        try:
            k = s.analyze("key")
            key = {"tonic_pc": k.tonic.pitchClass, "mode": k.mode if k.mode in ("major", "minor") else "major"}
        except Exception:
            key = {}
        md = s.metadata
        info = {"title": (md.title if md else None) or "", "composer": (md.composer if md else None) or "", **key}
        # a name of this process's own: two processes parsing the same work must not rename each
        # other's half-written file away; the last complete os.replace wins, both files are whole
        tmp = mid_p.with_suffix(f".{os.getpid()}.tmp.mid")
        s.write("midi", fp=str(tmp))
        tmp.replace(mid_p)
    except Exception as e:
        info_p.write_text(json.dumps({"error": repr(e)[:300]}))
        raise
    info_p.write_text(json.dumps(info))
    return mido.MidiFile(mid_p), info


def _m21_attribution(ref: WorkRef, info: dict) -> tuple[str, str]:
    coll = ref.collection.split("/", 1)[1]
    comp = info.get("composer") or ("traditional" if "folk" in _M21_GENRES.get(coll, "") or "tune" in
                                     _M21_GENRES.get(coll, "") or "air" in _M21_GENRES.get(coll, "") else coll)
    lic = "public-domain work; encoding from the music21 corpus (music21/corpus/license.txt)"
    if ref.path.endswith(".krn"):
        lic += "; Humdrum encoding from CCARH KernScores (check commercial use)"
    return lic, f"{comp}; encoded in the music21 corpus ({coll})"


def music21_work(ref: WorkRef, rng: random.Random, seed: int) -> Work | None:
    base = music21_base(ref)
    if base is None:
        return None
    mid, info = base
    mid = channels_by_track(mid)
    stats = channel_stats(mid)
    stats.pop(gm.DRUM_CHANNEL, None)
    if not stats or mid.length < 4:
        return None
    chans = sorted(stats, key=lambda c: -stats[c]["mean_pitch"])  # top voice first
    if len(chans) == 1:
        programs = {chans[0]: rng.choice(_LEADS)}
        ens = "solo"
    else:
        ens = rng.choice(list(_ENSEMBLES))
        lst = _ENSEMBLES[ens]
        programs = {}
        for i, c in enumerate(chans):
            if not lst:
                programs[c] = rng.choice(gm.MELODIC_PROGRAMS)
            elif i == len(chans) - 1:
                programs[c] = lst[-1]
            else:
                programs[c] = lst[min(i, max(len(lst) - 2, 0))]
    transpose = rng.randint(-5, 6)
    scale = rng.uniform(0.8, 1.25)
    bpm = 60e6 / first_tempo(mid) * scale
    if bpm < 45 or bpm > 220:  # keep the tempo musical
        scale *= min(max(bpm, 45), 220) / bpm
        bpm = 60e6 / first_tempo(mid) * scale
    arranged = arrange(mid, programs, transpose, scale, kit=None)
    coll = ref.collection.split("/", 1)[1]
    meta = {"genre": _M21_GENRES.get(coll, "classical music"), "family": "classical/folk", "ensemble": ens,
            "instruments": instrument_words(stats, programs), "programs": programs, "bpm": round(bpm, 1),
            "transpose": transpose, "title": info.get("title", ""), "composer": info.get("composer", ""),
            **kit_meta(None)}
    if "tonic_pc" in info:
        meta["mode"] = info["mode"]
        meta["key"] = gm.key_name(info["tonic_pc"] + transpose, info["mode"])
    lic, attr = _m21_attribution(ref, info)
    return finish_work(ref, arranged, meta, lic, attr, seed)
