"""Symbolic music sources, arranged and captioned: the one API the renderers and tokenizers consume.

Why this module exists: jamgen has no downloadable music model or audio dataset, so its training
material is symbolic music we can synthesise (audio models) or tokenize (the symbolic generator).
Every :class:`Work` is one piece *already arranged* (GM program per part, drum kit, transposition,
tempo) together with a caption that names exactly those choices, so labels are exact for free.

Sources (licences in ``generator/data/ATTRIBUTION.md``):

* ``music21`` -- the music21 corpus minus the non-commercial Essen folk-song collection. Single works
  come from the metadata bundle (``corpus.parse(path, number=N)`` -- parsing whole ABC opus files is
  ~500x slower). Parsed works are cached as MIDI + JSON under :func:`cache_dir`.
* ``mma`` -- Debian ``mma`` grooves (swing, bossa, rock, funk, latin, country...) played over chord
  progressions generated per genre family; ``mma`` runs in a temp dir (~0.1-0.25 s per song).
* ``debian`` -- MIDI files shipped by small Debian game-music packages, if installed.

Held-out split: a work's *group* (the music21 work, the mma groove *file* so that sibling variants
of a held-out groove never leak into training, the Debian file) is hashed; 10% of groups are
``"heldout"``. The split never depends on the seed.

Determinism: ``iter_works(split, sources, seed)`` always yields the same works with the same
arrangements for the same arguments (``random.Random`` seeded from the work id and the seed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import mido

from generator.core import gm
from . import captions

log = logging.getLogger(__name__)

SPLITS = ("train", "heldout")
SOURCES = ("music21", "mma", "debian")
HELDOUT_PERCENT = 10
EXCLUDED_MUSIC21 = ("essenFolksong",)  # non-commercial licence (essenFolksong/license.txt)
MMA_LIB = Path("/usr/share/mma/lib")


# --------------------------------------------------------------------------------------------- API


@dataclasses.dataclass(frozen=True, eq=False)
class Work:
    """One piece of symbolic music, arranged and captioned, ready to render or tokenize.

    Attributes:
      id: stable id of the underlying work, e.g. ``music21/bach/bwv66.6.mxl``,
        ``mma/stdlib/swing/SwingWalk``, ``debian/openttd-openmsx/tttheme2.mid``.
      collection: ``music21/<dir>``, ``mma/<lib>`` or ``debian/<package>``.
      license: the licence of the material (see ATTRIBUTION.md for full terms).
      attribution: who made it (composer / encoder / package author).
      split: ``"train"`` or ``"heldout"``.
      midi: the arranged MIDI (GM programs at t=0, drum channel 9, tempo applied). Treat as read-only.
      caption: canonical caption naming genre, drums, instruments, BPM, key.
      paraphrases: the same facts in other words.
      meta: genre, family, instruments, programs {channel: program}, drums, kit, bpm, tempo_word,
        key, mode, transpose, collection, group, title, duration ...
      variant: the seed the arrangement was drawn with.
    """

    id: str
    collection: str
    license: str
    attribution: str
    split: str
    midi: mido.MidiFile
    caption: str
    paraphrases: tuple[str, ...]
    meta: dict
    variant: int = 0

    @property
    def duration(self) -> float:
        return float(self.meta["duration"])


@dataclasses.dataclass(frozen=True)
class WorkRef:
    """A work before it is loaded or arranged: enough to split, shuffle and count."""

    id: str
    source: str
    collection: str
    group: str
    split: str
    path: str  # file the work comes from
    number: int | str | None = None  # index in a multi-work (ABC opus) file
    extra: str = ""  # mma: groove name


def cache_dir() -> Path:
    """Where parsed MIDI is cached: ``$JAMGEN_DATA/midi`` or ``~/.cache/jamgen/midi``. Never committed."""
    root = os.environ.get("JAMGEN_DATA")
    base = Path(root) if root else Path.home() / ".cache" / "jamgen"
    d = base / "midi"
    d.mkdir(parents=True, exist_ok=True)
    return d


def split_of(group: str) -> str:
    """Deterministic split of a group id (stable across machines, Python versions and seeds)."""
    h = int.from_bytes(hashlib.sha1(group.encode()).digest()[:4], "big")
    return "heldout" if h % 100 < HELDOUT_PERCENT else "train"


def work_refs(split: str | None = "train", sources: Sequence[str] = SOURCES,
              collections: Sequence[str] | None = None) -> list[WorkRef]:
    """All works of ``split`` (None = both) from ``sources``, in a stable order.

    ``collections`` optionally keeps only these collections (e.g. ``("music21/bach", "mma/stdlib")``).
    """
    refs: list[WorkRef] = []
    for s in sources:
        if s == "music21":
            refs += _music21_refs()
        elif s == "mma":
            refs += _mma_refs()
        elif s == "debian":
            refs += _debian_refs()
        else:
            raise ValueError(f"unknown source {s!r}; known: {SOURCES}")
    if split is not None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        refs = [r for r in refs if r.split == split]
    if collections:
        refs = [r for r in refs if r.collection in collections]
    return refs


def iter_works(split: str = "train", sources: Sequence[str] = SOURCES, seed: int = 0,
               limit: int | None = None, collections: Sequence[str] | None = None,
               shuffle: bool = True) -> Iterator[Work]:
    """Arranged, captioned works of one split, shuffled by ``seed``; one pass over every work.

    Call again with another seed for another epoch: other order, other arrangements (programs,
    kit, key, tempo, chord progression). Works that fail to parse are logged and skipped.
    """
    refs = work_refs(split, sources, collections)
    if shuffle:
        random.Random(seed).shuffle(refs)
    n = 0
    for ref in refs:
        if limit is not None and n >= limit:
            return
        try:
            work = load_work(ref, seed)
        except MissingToolError:
            raise
        except Exception as e:  # a broken encoding must not stop a training run
            log.warning("skipping %s: %s", ref.id, e)
            continue
        if work is None:
            continue
        n += 1
        yield work


def load_work(ref: WorkRef, seed: int = 0) -> Work | None:
    """Load and arrange one work (None when it has no usable notes)."""
    rng = random.Random(f"{ref.id}|{seed}")
    if ref.source == "music21":
        return _music21_work(ref, rng, seed)
    if ref.source == "mma":
        return _mma_work(ref, rng, seed)
    if ref.source == "debian":
        return _debian_work(ref, rng, seed)
    raise ValueError(ref.source)


class MissingToolError(RuntimeError):
    """A required system package (mma, fluidsynth, a soundfont) is not installed."""


# ------------------------------------------------------------------------------ MIDI arrangement


def channel_stats(mid: mido.MidiFile) -> dict[int, dict]:
    """Per channel: note count, mean pitch, first program."""
    stats: dict[int, dict] = {}
    for track in mid.tracks:
        for msg in track:
            if msg.type == "note_on" and msg.velocity > 0:
                s = stats.setdefault(msg.channel, {"notes": 0, "pitch_sum": 0, "program": None})
                s["notes"] += 1
                s["pitch_sum"] += msg.note
            elif msg.type == "program_change":
                s = stats.setdefault(msg.channel, {"notes": 0, "pitch_sum": 0, "program": None})
                if s["program"] is None:
                    s["program"] = msg.program
    out = {}
    for ch, s in stats.items():
        if s["notes"]:
            out[ch] = {"notes": s["notes"], "mean_pitch": s["pitch_sum"] / s["notes"],
                       "program": s["program"] or 0}
    return out


def first_tempo(mid: mido.MidiFile) -> int:
    for track in mid.tracks:
        for msg in track:
            if msg.type == "set_tempo":
                return msg.tempo
    return 500_000


_STRIP_CC = (0, 32, 7, 10, 91, 93)  # bank select, volume, pan, reverb, chorus: set by us / the renderer


def arrange(mid: mido.MidiFile, programs: dict[int, int], transpose: int = 0, tempo_scale: float = 1.0,
            kit: int | None = None) -> mido.MidiFile:
    """A copy of ``mid`` with every program change replaced by ``programs`` (set at t=0), notes off
    the drum channel transposed, tempi multiplied by ``tempo_scale``, drum kit ``kit`` on channel 9,
    and bank/volume/pan/send CCs removed (the renderer owns the mix)."""
    out = mido.MidiFile(type=1, ticks_per_beat=mid.ticks_per_beat)
    setup = mido.MidiTrack()
    has_tempo = any(m.type == "set_tempo" for t in mid.tracks for m in t)
    if not has_tempo:
        setup.append(mido.MetaMessage("set_tempo", tempo=int(round(500_000 / tempo_scale)), time=0))
    for ch, prog in sorted(programs.items()):
        setup.append(mido.Message("program_change", channel=ch, program=prog, time=0))
        setup.append(mido.Message("control_change", channel=ch, control=7, value=100, time=0))
    if kit is not None:
        setup.append(mido.Message("program_change", channel=gm.DRUM_CHANNEL, program=kit, time=0))
        setup.append(mido.Message("control_change", channel=gm.DRUM_CHANNEL, control=7, value=100, time=0))
    out.tracks.append(setup)
    for track in mid.tracks:
        new = mido.MidiTrack()
        carry = 0
        for msg in track:
            t = msg.time + carry
            if msg.type == "program_change" or (msg.type == "control_change" and msg.control in _STRIP_CC):
                carry = t
                continue
            carry = 0
            if msg.type == "set_tempo":
                msg = msg.copy(tempo=max(1, int(round(msg.tempo / tempo_scale))))
            elif msg.type in ("note_on", "note_off") and msg.channel != gm.DRUM_CHANNEL and transpose:
                n = msg.note + transpose
                while n > 127:
                    n -= 12
                while n < 0:
                    n += 12
                msg = msg.copy(note=n)
            new.append(msg.copy(time=t))
        out.tracks.append(new)
    return out


def channels_by_track(mid: mido.MidiFile) -> mido.MidiFile:
    """Give every note-bearing track its own channel (skipping the drum channel).

    music21 writes parts with the same instrument on one channel; re-orchestrating parts separately
    (and panning them apart) needs one channel per part. More than 15 parts share channels cyclically.
    """
    chans = [c for c in range(16) if c != gm.DRUM_CHANNEL]
    out = mido.MidiFile(type=1, ticks_per_beat=mid.ticks_per_beat)
    k = 0
    for track in mid.tracks:
        if any(m.type == "note_on" for m in track):
            ch = chans[k % len(chans)]
            k += 1
            out.tracks.append(mido.MidiTrack(m.copy(channel=ch) if hasattr(m, "channel") else m for m in track))
        else:
            out.tracks.append(track)
    return out


def _instrument_words(stats: dict[int, dict], programs: dict[int, int], max_n: int = 4,
                      walking: bool = False) -> list[str]:
    """Caption names of the programs, most-played first, without duplicates."""
    chans = sorted((c for c in programs if c in stats), key=lambda c: -stats[c]["notes"])
    words: list[str] = []
    for c in chans:
        w = gm.program_name(programs[c])
        if walking and gm.family(programs[c]) == 4:
            w = "walking bass"
        if w not in words:
            words.append(w)
    return words[:max_n]


def _kit_meta(kit: int | None) -> dict:
    if kit is None:
        return {"drums": False, "kit": None, "drum_words": ""}
    name, words = gm.DRUM_KITS[kit]
    return {"drums": True, "kit": name, "kit_program": kit, "drum_words": words}


def _finish(ref: WorkRef, mid: mido.MidiFile, meta: dict, license: str, attribution: str,
            seed: int) -> Work:
    meta.setdefault("tempo_word", captions.tempo_word(meta["bpm"]))
    meta["collection"] = ref.collection
    meta["group"] = ref.group
    meta["source"] = ref.source
    meta["duration"] = float(mid.length)
    cap = captions.caption(meta)
    para = captions.paraphrases(meta, seed=int(hashlib.sha1(f'{ref.id}|{seed}'.encode()).hexdigest()[:8], 16))
    return Work(id=ref.id, collection=ref.collection, license=license, attribution=attribution,
                split=ref.split, midi=mid, caption=cap, paraphrases=para, meta=meta, variant=seed)


# ---------------------------------------------------------------------------------------- music21

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


def _m21_corpus_dir() -> Path:
    import music21.corpus

    return Path(music21.corpus.__file__).parent


def _music21_refs() -> list[WorkRef]:
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


def _music21_base(ref: WorkRef) -> tuple[mido.MidiFile, dict] | None:
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
        s = corpus.parse(str(_m21_corpus_dir() / ref.path), number=ref.number)
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


def _music21_work(ref: WorkRef, rng: random.Random, seed: int) -> Work | None:
    base = _music21_base(ref)
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
            "instruments": _instrument_words(stats, programs), "programs": programs, "bpm": round(bpm, 1),
            "transpose": transpose, "title": info.get("title", ""), "composer": info.get("composer", ""),
            **_kit_meta(None)}
    if "tonic_pc" in info:
        meta["mode"] = info["mode"]
        meta["key"] = gm.key_name(info["tonic_pc"] + transpose, info["mode"])
    lic, attr = _m21_attribution(ref, info)
    return _finish(ref, arranged, meta, lic, attr, seed)


# -------------------------------------------------------------------------------------------- mma

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
              ("minor", [(0, "m7")] * 4 + [(5, "m7")] * 2 + [(0, "m7")] * 2 + [(8, "7"), (7, "7"), (0, "m7"), (7, "7")])],
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
    "electronic": [("minor", [(0, "m"), (8, ""), (3, ""), (10, "")]), ("minor", [(0, "m7"), (0, "m7"), (8, "M7"), (10, "")]),
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


def _mma_refs() -> list[WorkRef]:
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


def _mma_work(ref: WorkRef, rng: random.Random, seed: int) -> Work | None:
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
            "instruments": _instrument_words(stats, programs, walking="walk" in ref.extra.lower()),
            "programs": programs, "bpm": float(bpm), "key": gm.key_name(tonic, mode), "mode": mode,
            "chords": chords, "transpose": 0, **_kit_meta(kit)}
    return _finish(ref, mid, meta, "GPL-2.0-or-later (MMA groove library)",
                   f"MMA groove {ref.extra} ({ref.path}), MMA by Bob van der Poel and contributors", seed)


# ----------------------------------------------------------------------------------------- debian

# package -> (glob of MIDI files, genre words, licence, attribution)
DEBIAN_MIDI = {
    "openttd-openmsx": ("/usr/share/games/openttd/baseset/openmsx/*.mid", "retro video game music", "GPL-2.0",
                        "OpenMSX music set for OpenTTD (various authors, see its readme.txt)"),
    "planetblupi-music-midi": ("/usr/share/planetblupi/music/*.mid", "playful video game music", "GPL-3.0-or-later",
                               "Planet Blupi music (Epsitec SA; Debian package by Mathieu Schroeter)"),
}


def _debian_refs() -> list[WorkRef]:
    import glob

    refs = []
    for pkg, (pattern, *_rest) in DEBIAN_MIDI.items():
        for f in sorted(glob.glob(pattern)):
            wid = f"debian/{pkg}/{Path(f).name}"
            refs.append(WorkRef(id=wid, source="debian", collection=f"debian/{pkg}", group=wid,
                                split=split_of(wid), path=f))
    return refs


def _debian_work(ref: WorkRef, rng: random.Random, seed: int) -> Work | None:
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
    meta = {"genre": genre, "family": "game", "instruments": _instrument_words(stats, programs),
            "programs": programs, "bpm": round(60e6 / first_tempo(raw) * scale, 1), "transpose": transpose,
            "title": Path(ref.path).stem, **_kit_meta(kit)}
    return _finish(ref, mid, meta, lic, attr, seed)
