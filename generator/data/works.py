"""What a work is, and how a source's MIDI becomes one: the types and helpers every source shares.

Why a module of its own: the three sources (:mod:`generator.data.source_music21`,
:mod:`~generator.data.source_mma`, :mod:`~generator.data.source_debian`) each find works and arrange their
MIDI in their own way, but they all describe a work with the same :class:`WorkRef` / :class:`Work`, split it
with the same hash (:func:`split_of`), and arrange and caption it with the same helpers (:func:`arrange`,
:func:`finish_work`). :mod:`generator.data.sources` is the API over them (and re-exports these names).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import mido

from generator.core import gm
from . import captions

HELDOUT_PERCENT = 10


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


def instrument_words(stats: dict[int, dict], programs: dict[int, int], max_n: int = 4,
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


def kit_meta(kit: int | None) -> dict:
    if kit is None:
        return {"drums": False, "kit": None, "drum_words": ""}
    name, words = gm.DRUM_KITS[kit]
    return {"drums": True, "kit": name, "kit_program": kit, "drum_words": words}


def finish_work(ref: WorkRef, mid: mido.MidiFile, meta: dict, license: str, attribution: str,
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
