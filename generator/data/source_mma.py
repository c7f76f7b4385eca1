"""The ``mma`` source: Debian ``mma`` grooves played over chord progressions generated per genre family.

Why a module of its own: each source finds its works and arranges them in its own way; this one reads the
grooves of the MMA library (a groove *file* is one held-out group), draws a tempo, key and idiomatic
progression per seed, runs ``mma`` in a temp dir (~0.1-0.25 s per song) and varies the timbres. The API
over all sources is :mod:`generator.data.sources`.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import mido

from generator.core import gm
from .works import MissingToolError, Work, WorkRef, arrange, channel_stats, finish_work, instrument_words, kit_meta, \
    split_of

MMA_LIB = Path("/usr/share/mma/lib")

# (substring of the groove file name, genre words, family); the first match wins.
_MMA_GENRES: list[tuple[str, str, str]] = [
    ("bossa", "bossa nova", "latin"), ("samba", "samba", "latin"), ("salsa", "salsa", "latin"),
    ("mambo", "mambo", "latin"), ("rhumba", "rumba", "latin"), ("rumba", "rumba", "latin"),
    ("chacha", "cha-cha", "latin"), ("merengue", "merengue", "latin"), ("tango", "tango", "latin"),
    ("bolero", "bolero", "latin"), ("beguine", "beguine", "latin"), ("calypso", "calypso", "latin"),
    ("reggae", "reggae", "funk"), ("ska", "ska", "funk"), ("zydeco", "zydeco", "country"),
    ("son", "cuban son", "latin"), ("cuban", "afro-cuban groove", "latin"), ("latin", "latin groove", "latin"),
    ("bebop", "bebop jazz", "jazz"), ("bigband", "big band swing", "jazz"), ("dixie", "dixieland jazz", "jazz"),
    ("gypsy", "gypsy jazz", "jazz"), ("charleston", "charleston", "jazz"), ("jazzwaltz", "jazz waltz", "waltz"),
    ("jazzrock", "jazz rock", "funk"), ("fusion", "jazz fusion", "funk"), ("swing", "swing jazz", "jazz"),
    ("jazz", "jazz", "jazz"), ("foxtrot", "foxtrot", "jazz"), ("quickstep", "quickstep", "jazz"),
    ("softshoe", "soft-shoe", "jazz"), ("showtune", "show tune", "jazz"), ("broadway", "broadway show tune", "jazz"),
    ("ragtime", "ragtime", "jazz"), ("boogie", "boogie-woogie", "blues"), ("boggie", "boogie-woogie", "blues"),
    ("blues", "blues", "blues"), ("shuffle", "shuffle", "blues"), ("jive", "jive", "blues"),
    ("metal", "heavy metal", "rock"), ("punk", "punk rock", "rock"), ("twist", "twist", "rock"),
    ("rockballad", "rock ballad", "ballad"), ("rock", "rock", "rock"), ("funk", "funk", "funk"),
    ("soul", "soul", "funk"), ("r+b", "rhythm and blues", "funk"), ("rb", "rhythm and blues", "funk"),
    ("disco", "disco", "electronic"), ("motown", "motown soul", "funk"), ("strut", "strut", "funk"),
    ("bluegrass", "bluegrass", "country"), ("country", "country", "country"), ("western", "western swing", "country"),
    ("hillcountry", "hill country", "country"), ("folk", "folk", "country"),
    ("waltz", "waltz", "waltz"), ("polka", "polka", "march"), ("march", "march", "march"),
    ("lullaby", "lullaby", "ballad"), ("hymn", "hymn", "ballad"), ("spiritual", "spiritual", "ballad"),
    ("ballad", "ballad", "ballad"), ("serenade", "serenade", "ballad"),
    ("hiphop", "hip hop", "electronic"), ("hip-hop", "hip hop", "electronic"), ("techno", "techno", "electronic"),
    ("trance", "trance", "electronic"), ("house", "house", "electronic"), ("rave", "rave", "electronic"),
    ("dance", "dance pop", "electronic"), ("ambient", "ambient", "electronic"), ("electr", "electropop", "electronic"),
    ("digital", "electronic rock", "electronic"), ("pop", "pop", "pop"), ("16beat", "16-beat pop", "pop"),
    ("8beat", "8-beat pop", "pop"), ("beat", "pop", "pop"), ("arpeggio", "arpeggiated pop", "pop"),
]

# Per family: tempo range (BPM) and idiomatic progressions as (mode, [(root semitones, quality), ...]).
_FAMILY_TEMPO = {"jazz": (110, 210), "blues": (70, 140), "latin": (95, 150), "rock": (95, 160),
                 "funk": (88, 120), "country": (90, 160), "waltz": (90, 180), "march": (100, 130),
                 "ballad": (56, 84), "electronic": (100, 135), "pop": (80, 128)}
_PROGRESSIONS: dict[str, list[tuple[str, list[tuple[int, str]]]]] = {
    "jazz": [("major", [(2, "m7"), (7, "7"), (0, "M7"), (0, "M7")]),
             ("major", [(0, "M7"), (9, "m7"), (2, "m7"), (7, "7")]),
             ("major", [(4, "m7"), (9, "7"), (2, "m7"), (7, "7"), (0, "6"), (0, "6")]),
             ("minor", [(2, "m7b5"), (7, "7"), (0, "m7"), (0, "m7")]),
             ("major", [(0, "6"), (9, "m7"), (2, "m7"), (7, "7"), (4, "m7"), (9, "7"), (2, "m7"), (7, "7")])],
    "blues": [("major", [(0, "7")] * 4 + [(5, "7")] * 2 + [(0, "7")] * 2 + [(7, "7"), (5, "7"), (0, "7"), (7, "7")]),
              ("major", [(0, "7"), (5, "7"), (0, "7"), (0, "7"), (5, "7"), (5, "7"), (0, "7"), (0, "7"),
                         (7, "7"), (5, "7"), (0, "7"), (0, "7")]),
              ("minor", [(0, "m7")] * 4 + [(5, "m7")] * 2 + [(0, "m7")] * 2
               + [(8, "7"), (7, "7"), (0, "m7"), (7, "7")])],
    "latin": [("major", [(2, "m7"), (7, "7"), (0, "M7"), (0, "M7")]),
              ("minor", [(0, "m7"), (5, "m7"), (7, "7"), (0, "m7")]),
              ("minor", [(0, "m"), (10, ""), (8, ""), (7, "7")]),
              ("major", [(0, "M7"), (1, "dim"), (2, "m7"), (7, "7")])],
    "rock": [("major", [(0, ""), (7, ""), (9, "m"), (5, "")]), ("major", [(0, ""), (5, ""), (7, ""), (5, "")]),
             ("major", [(0, ""), (10, ""), (5, ""), (0, "")]), ("minor", [(0, "m"), (8, ""), (10, ""), (0, "m")]),
             ("major", [(0, ""), (0, ""), (5, ""), (7, "")])],
    "funk": [("minor", [(0, "m7"), (0, "m7"), (5, "7"), (5, "7")]), ("major", [(0, "9"), (0, "9"), (5, "9"), (0, "9")]),
             ("minor", [(0, "m7"), (0, "m7"), (0, "m7"), (10, "7")])],
    "country": [("major", [(0, ""), (5, ""), (0, ""), (7, "7")]), ("major", [(0, ""), (0, ""), (5, ""), (5, ""),
                                                                            (7, "7"), (7, "7"), (0, ""), (0, "")]),
                ("major", [(0, ""), (7, ""), (0, ""), (5, "")])],
    "waltz": [("major", [(0, ""), (5, ""), (7, "7"), (0, "")]), ("major", [(0, ""), (9, "m"), (2, "m"), (7, "7")]),
              ("minor", [(0, "m"), (5, "m"), (7, "7"), (0, "m")])],
    "march": [("major", [(0, ""), (5, ""), (7, "7"), (0, "")]), ("major", [(0, ""), (7, "7"), (7, "7"), (0, "")])],
    "ballad": [("major", [(0, ""), (9, "m"), (5, ""), (7, "")]), ("major", [(0, "M7"), (9, "m7"), (2, "m7"), (7, "7")]),
               ("major", [(0, ""), (4, "m"), (5, ""), (7, "sus4")]), ("minor", [(0, "m"), (8, ""), (3, ""), (10, "")])],
    "electronic": [("minor", [(0, "m"), (8, ""), (3, ""), (10, "")]),
                   ("minor", [(0, "m7"), (0, "m7"), (8, "M7"), (10, "")]),
                   ("major", [(9, "m"), (5, ""), (0, ""), (7, "")])],
    "pop": [("major", [(0, ""), (7, ""), (9, "m"), (5, "")]), ("major", [(9, "m"), (5, ""), (0, ""), (7, "")]),
            ("major", [(0, ""), (9, "m"), (5, ""), (7, "")]), ("major", [(5, ""), (7, ""), (4, "m"), (9, "m")])],
}
_FAMILY_KITS = {"jazz": [32, 40, 0, 8], "blues": [0, 8, 32], "latin": [0, 8, 32], "rock": [16, 0, 8],
                "funk": [0, 16, 24, 25], "country": [0, 8, 40], "waltz": [0, 8, 40], "march": [48, 0, 8],
                "ballad": [40, 0, 8, 32], "electronic": [24, 25, 0], "pop": [0, 8, 24, 25]}
_MMA_SKIP_NAME = re.compile(r"(intro|end|fill|break|metronome)", re.I)
_MMA_SKIP_FILE = re.compile(r"^(metronome|none|stdpats)", re.I)


def _require_mma() -> str:
    exe = shutil.which("mma")
    if exe is None or not MMA_LIB.is_dir():
        raise MissingToolError("the `mma` program is not installed: apt-get install --no-install-recommends mma")
    return exe


def mma_genre(lib_file: str, groove: str) -> tuple[str, str]:
    """(genre words, family) of a groove from its file stem (``swing``) and name (``SwingWalk``)."""
    stem = lib_file.lower()
    for sub, words, fam in _MMA_GENRES:
        if sub in stem:
            break
    else:
        words, fam = stem.replace("_", " ").replace("-", " "), "pop"
    if "ballad" in groove.lower() and fam not in ("ballad",):
        words, fam = f"{words} ballad", "ballad"
    if "waltz" in stem and "waltz" not in words:
        words = f"{words} waltz"
    return words, fam


def mma_refs() -> list[WorkRef]:
    _require_mma()
    refs = []
    for f in sorted(MMA_LIB.glob("*/*.mma")):
        lib, stem = f.parent.name, f.stem
        if _MMA_SKIP_FILE.match(stem):
            continue
        group = f"mma/{lib}/{stem}"
        try:
            text = f.read_text(errors="replace")
        except OSError:
            continue
        seen = set()
        for m in re.finditer(r"^\s*DefGroove\s+(\S+)", text, re.M | re.I):
            name = m.group(1)
            if _MMA_SKIP_NAME.search(name) or name.lower() in seen:
                continue
            seen.add(name.lower())
            refs.append(WorkRef(id=f"{group}/{name}", source="mma", collection=f"mma/{lib}", group=group,
                                split=split_of(group), path=str(f.relative_to(MMA_LIB).with_suffix("")),
                                extra=name))
    return refs


def mma_song(groove_use: str, groove: str, bpm: int, chords: list[str]) -> mido.MidiFile:
    """Run ``mma`` on a one-groove song (``groove_use`` like ``stdlib/swing``); returns the MIDI."""
    exe = _require_mma()
    body = [f"Tempo {bpm}", f"Use {groove_use}", f"Groove {groove}"]
    body += [f"{i + 1} {c}" for i, c in enumerate(chords)]
    with tempfile.TemporaryDirectory(prefix="jamgen-mma-") as d:
        src = Path(d) / "song.mma"
        src.write_text("\n".join(body) + "\n")
        p = subprocess.run([exe, "-f", "song.mid", "song.mma"], cwd=d, capture_output=True, text=True, timeout=60)
        out = Path(d) / "song.mid"
        if p.returncode != 0 or not out.exists():
            raise RuntimeError(f"mma failed for {groove_use}:{groove}: {(p.stdout + p.stderr)[-300:]}")
        return mido.MidiFile(out)


def progression(family: str, rng: random.Random, bars_target: int) -> tuple[int, str, list[str]]:
    """(tonic pitch class, mode, chord symbols) -- an idiomatic progression of the family, repeated."""
    mode, prog = rng.choice(_PROGRESSIONS.get(family, _PROGRESSIONS["pop"]))
    tonic = rng.randrange(12)
    reps = max(1, round(bars_target / len(prog)))
    chords = [gm.chord_root(tonic + r, tonic, mode) + q for r, q in prog] * reps
    return tonic, mode, chords


def mma_work(ref: WorkRef, rng: random.Random, seed: int) -> Work | None:
    lib_file = ref.path.split("/")[-1]
    genre, fam = mma_genre(lib_file, ref.extra)
    lo, hi = _FAMILY_TEMPO[fam]
    if "fast" in lib_file.lower():
        lo, hi = (lo + hi) // 2, hi + 30
    elif "slow" in lib_file.lower():
        lo, hi = max(50, lo - 20), (lo + hi) // 2
    bpm = rng.randint(lo, hi)
    bars_target = int(rng.uniform(30, 75) * bpm / 60 / 4)
    tonic, mode, chords = progression(fam, rng, max(8, bars_target))
    raw = mma_song(ref.path, ref.extra, bpm, chords)
    stats = channel_stats(raw)
    has_drums = stats.pop(gm.DRUM_CHANNEL, None) is not None
    if not stats and not has_drums:
        return None
    programs = {}
    for c, s in stats.items():
        p = s["program"]
        if rng.random() < 0.5:  # keep the groove's idiom but vary the timbre within the GM family
            fam_progs = [q for q in range(gm.family(p) * 8, gm.family(p) * 8 + 8) if q in gm.MELODIC_PROGRAMS]
            p = rng.choice(fam_progs or [p])
        programs[c] = p
    kit = rng.choice(_FAMILY_KITS[fam]) if has_drums else None
    mid = arrange(raw, programs, 0, 1.0, kit=kit)
    meta = {"genre": genre, "family": fam, "groove": ref.extra, "groove_file": ref.path,
            "instruments": instrument_words(stats, programs, walking="walk" in ref.extra.lower()),
            "programs": programs, "bpm": float(bpm), "key": gm.key_name(tonic, mode), "mode": mode,
            "chords": chords, "transpose": 0, **kit_meta(kit)}
    return finish_work(ref, mid, meta, "GPL-2.0-or-later (MMA groove library)",
                   f"MMA groove {ref.extra} ({ref.path}), MMA by Bob van der Poel and contributors", seed)
