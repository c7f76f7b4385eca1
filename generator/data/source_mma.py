"""The ``mma`` source: Debian ``mma`` grooves played over chord progressions generated per genre family.

Why a module of its own: each source finds its works and arranges them in its own way; this one reads the
grooves of the MMA library (a groove *file* is one held-out group), draws a tempo, key and a progression per
seed from the family's harmonic grammar (:mod:`generator.data.harmony`), runs ``mma`` in a temp dir
(~0.1-0.25 s per song) and varies the timbres. The API over all sources is :mod:`generator.data.sources`.
"""

from __future__ import annotations

import functools
import random
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import mido

from generator.core import gm
from . import harmony
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

# Per family: tempo range (BPM). The progressions come from the harmony grammar (:mod:`.harmony`).
_FAMILY_TEMPO = {"jazz": (110, 210), "blues": (70, 140), "latin": (95, 150), "rock": (95, 160),
                 "funk": (88, 120), "country": (90, 160), "waltz": (90, 180), "march": (100, 130),
                 "ballad": (56, 84), "electronic": (100, 135), "pop": (80, 128)}
# chord slots per bar of mma's time signatures (the number of its chord "tabs")
_TIME_SLOTS = {"2/2": 2, "2/4": 2, "6/4": 2, "6/8": 2, "3/2": 3, "3/4": 3, "3/8": 3, "9/8": 3, "4/4": 4, "12/8": 4,
               "5/4": 5, "5/8": 5, "7/4": 7, "common": 4, "cut": 2}
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


def mma_song(groove_use: str, groove: str, bpm: int, chords: list[str], seed: int = 0) -> mido.MidiFile:
    """Run ``mma`` on a one-groove song (``groove_use`` like ``stdlib/swing``); returns the MIDI.

    mma humanises grooves at random (timing, velocity, skipped notes) from an unseeded generator;
    ``RndSeed`` pins it, so the same arguments give the same MIDI in any process (a work is reproducible
    and a parallel token build gives the same tokens as a serial one)."""
    exe = _require_mma()
    body = [f"Tempo {bpm}", f"Use {groove_use}", f"Groove {groove}", f"RndSeed {int(seed)}"]
    body += [f"{i + 1} {c}" for i, c in enumerate(chords)]
    with tempfile.TemporaryDirectory(prefix="jamgen-mma-") as d:
        src = Path(d) / "song.mma"
        src.write_text("\n".join(body) + "\n")
        p = subprocess.run([exe, "-f", "song.mid", "song.mma"], cwd=d, capture_output=True, text=True, timeout=60)
        out = Path(d) / "song.mid"
        if p.returncode != 0 or not out.exists():
            raise RuntimeError(f"mma failed for {groove_use}:{groove}: {(p.stdout + p.stderr)[-300:]}")
        return mido.MidiFile(out)


def progression(family: str, rng: random.Random, bars_target: int, *, slots: int = 4) -> tuple[int, str, list[str]]:
    """(tonic pitch class, mode, chord symbols): about ``bars_target`` bars of the family's harmonic grammar
    (:func:`generator.data.harmony.song`), one mma chord line per bar for a groove with ``slots`` chord slots
    per bar (two chords a bar read ``Dm7 / G7 /`` in 4 slots)."""
    song = harmony.song(family, rng, bars_target, slots)
    tonic = rng.randrange(12)
    return tonic, song.mode, song.symbols(tonic, slots)


@functools.lru_cache(maxsize=None)
def groove_slots(groove_use: str, groove: str) -> int:
    """Chord slots per bar of a library groove (``stdlib/waltz``, ``Waltz``): the ``Time`` in force where
    its file defines it (4 when none is given), so a chord line never names more chords than the bar has."""
    slots = 4
    try:
        text = (MMA_LIB / f"{groove_use}.mma").read_text(errors="replace")
    except OSError:
        return slots
    for line in text.splitlines():
        words = line.split("//")[0].split()
        if len(words) >= 2 and words[0].lower() == "time":
            arg = words[1].lower()
            try:
                slots = _TIME_SLOTS[arg] if "/" in arg or arg in _TIME_SLOTS else max(1, int(float(arg)))
            except (KeyError, ValueError):
                pass
        elif len(words) >= 2 and words[0].lower() == "defgroove" and words[1].lower() == groove.lower():
            return slots
    return slots


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
    tonic, mode, chords = progression(fam, rng, max(8, bars_target), slots=groove_slots(ref.path, ref.extra))
    raw = mma_song(ref.path, ref.extra, bpm, chords, seed=rng.randrange(2**31))
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
