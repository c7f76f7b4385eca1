"""The ``debian`` source: MIDI files shipped by small Debian game-music packages, if installed.

Why a module of its own: each source finds its works and arranges them in its own way; this one takes the
files as they are and varies programs, drum kit, key and tempo a little per seed. The API over all sources
is :mod:`generator.data.sources`.
"""

from __future__ import annotations

import random
from pathlib import Path

import mido

from generator.core import gm
from .works import Work, WorkRef, arrange, channel_stats, finish_work, first_tempo, instrument_words, kit_meta, \
    split_of

# package -> (glob of MIDI files, genre words, licence, attribution)
DEBIAN_MIDI = {
    "openttd-openmsx": ("/usr/share/games/openttd/baseset/openmsx/*.mid", "retro video game music", "GPL-2.0",
                        "OpenMSX music set for OpenTTD (various authors, see its readme.txt)"),
    "planetblupi-music-midi": ("/usr/share/planetblupi/music/*.mid", "playful video game music", "GPL-3.0-or-later",
                               "Planet Blupi music (Epsitec SA; Debian package by Mathieu Schroeter)"),
}


def debian_refs() -> list[WorkRef]:
    import glob

    refs = []
    for pkg, (pattern, *_rest) in DEBIAN_MIDI.items():
        for f in sorted(glob.glob(pattern)):
            wid = f"debian/{pkg}/{Path(f).name}"
            refs.append(WorkRef(id=wid, source="debian", collection=f"debian/{pkg}", group=wid,
                                split=split_of(wid), path=f))
    return refs


def debian_work(ref: WorkRef, rng: random.Random, seed: int) -> Work | None:
    pkg = ref.collection.split("/", 1)[1]
    _pattern, genre, lic, attr = DEBIAN_MIDI[pkg]
    raw = mido.MidiFile(ref.path)
    stats = channel_stats(raw)
    has_drums = stats.pop(gm.DRUM_CHANNEL, None) is not None
    if not stats or raw.length < 4:
        return None
    programs = {}
    for c, s in stats.items():
        p = s["program"]
        if rng.random() < 0.3:
            p = rng.choice([q for q in range(gm.family(p) * 8, gm.family(p) * 8 + 8)])
        programs[c] = p
    kit = rng.choice([0, 8, 16, 24, 25, 32]) if has_drums else None
    transpose = rng.randint(-3, 3)
    scale = rng.uniform(0.9, 1.1)
    mid = arrange(raw, programs, transpose, scale, kit=kit)
    meta = {"genre": genre, "family": "game", "instruments": instrument_words(stats, programs),
            "programs": programs, "bpm": round(60e6 / first_tempo(raw) * scale, 1), "transpose": transpose,
            "title": Path(ref.path).stem, **kit_meta(kit)}
    return finish_work(ref, mid, meta, lic, attr, seed)
