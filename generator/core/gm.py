"""General MIDI vocabulary shared by the sources, the captions and the renderer.

Why a module of its own: the caption of a clip must name exactly what the renderer plays, so the
program numbers, kit numbers and the words used for them live in one place.
"""

from __future__ import annotations

import numpy as np

# The 128 General MIDI level-1 melodic programs, as short lower-case caption words.
PROGRAM_NAMES: tuple[str, ...] = (
    # 0-7 piano
    "grand piano", "bright piano", "electric grand piano", "honky-tonk piano",
    "electric piano", "fm electric piano", "harpsichord", "clavinet",
    # 8-15 chromatic percussion
    "celesta", "glockenspiel", "music box", "vibraphone", "marimba", "xylophone", "tubular bells", "dulcimer",
    # 16-23 organ
    "drawbar organ", "percussive organ", "rock organ", "church organ", "reed organ", "accordion", "harmonica",
    "bandoneon",
    # 24-31 guitar
    "nylon guitar", "steel-string guitar", "jazz guitar", "clean electric guitar", "muted electric guitar",
    "overdriven guitar", "distorted guitar", "guitar harmonics",
    # 32-39 bass
    "acoustic bass", "fingered bass", "picked bass", "fretless bass", "slap bass", "slap bass",
    "synth bass", "synth bass",
    # 40-47 strings
    "violin", "viola", "cello", "contrabass", "tremolo strings", "pizzicato strings", "harp", "timpani",
    # 48-55 ensemble
    "string ensemble", "slow strings", "synth strings", "synth strings", "choir", "voice oohs", "synth voice",
    "orchestra hit",
    # 56-63 brass
    "trumpet", "trombone", "tuba", "muted trumpet", "french horn", "brass section", "synth brass", "synth brass",
    # 64-71 reed
    "soprano sax", "alto sax", "tenor sax", "baritone sax", "oboe", "english horn", "bassoon", "clarinet",
    # 72-79 pipe
    "piccolo", "flute", "recorder", "pan flute", "blown bottle", "shakuhachi", "whistle", "ocarina",
    # 80-87 synth lead
    "square lead", "sawtooth lead", "calliope lead", "chiff lead", "charang lead", "voice lead", "fifths lead",
    "bass and lead synth",
    # 88-95 synth pad
    "new age pad", "warm pad", "polysynth pad", "choir pad", "bowed pad", "metallic pad", "halo pad", "sweep pad",
    # 96-103 synth effects
    "rain synth", "soundtrack synth", "crystal synth", "atmosphere synth", "bright synth", "goblins synth",
    "echoes synth", "sci-fi synth",
    # 104-111 ethnic
    "sitar", "banjo", "shamisen", "koto", "kalimba", "bagpipe", "fiddle", "shanai",
    # 112-119 percussive
    "tinkle bell", "agogo", "steel drums", "woodblock", "taiko drum", "melodic tom", "synth drum", "reverse cymbal",
    # 120-127 sound effects
    "guitar fret noise", "breath noise", "seashore", "bird tweet", "telephone ring", "helicopter", "applause",
    "gunshot",
)
assert len(PROGRAM_NAMES) == 128

FAMILY_NAMES = ("piano", "chromatic percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass", "reed",
                "pipe", "synth lead", "synth pad", "synth effects", "ethnic", "percussive", "sound effects")

# Programs that make musical sense for a sustained melodic part (no sound effects, no unpitched percussion).
MELODIC_PROGRAMS: tuple[int, ...] = tuple(p for p in range(112) if p not in (55, 96, 97, 98, 99, 100, 101, 102, 103))
BASS_PROGRAMS: tuple[int, ...] = (32, 33, 34, 35, 36, 38, 39, 43)

DRUM_CHANNEL = 9  # 0-based MIDI channel 10

# Parts: what a note-event model calls an instrument. 15 melodic parts, one per GM family (sound effects
# 120..127 share the synth-effects part), and the drum kit; each part plays on its own MIDI channel.
N_PARTS = 16
DRUM_PART = 15
PART_NAMES = FAMILY_NAMES[:15] + ("drums",)


def program_part(program: int) -> int:
    """GM program 0..127 -> melodic part 0..14 (sound effects 120..127 share the synth-effects part)."""
    return 12 if program >= 120 else int(program) // 8


def part_channel(part: int) -> int:
    """Part -> MIDI channel (0-based): drums on channel 10 (index 9), parts 9..14 on 10..15."""
    if part == DRUM_PART:
        return DRUM_CHANNEL
    return part if part < DRUM_CHANNEL else part + 1


def channel_part(channel: int) -> int:
    """MIDI channel (0-based) -> part (the inverse of :func:`part_channel`)."""
    return DRUM_PART if channel == DRUM_CHANNEL else channel if channel < DRUM_CHANNEL else channel - 1

# GM2 / GS drum kits: program number on the drum channel -> caption words. FluidR3_GM has all of them
# (bank 128); smaller soundfonts fall back to the standard kit (the renderer reports what it really used).
DRUM_KITS: dict[int, tuple[str, str]] = {
    0: ("standard", "drums"),
    8: ("room", "roomy acoustic drums"),
    16: ("power", "punchy rock drums"),
    24: ("electronic", "electronic drums"),
    25: ("tr-808", "808 drum machine"),
    32: ("jazz", "jazz drums"),
    40: ("brush", "brushed drums"),
    48: ("orchestra", "orchestral percussion"),
}


def program_name(program: int) -> str:
    return PROGRAM_NAMES[program]


def family(program: int) -> int:
    return program // 8


PITCH_NAMES_FLAT = ("C", "D flat", "D", "E flat", "E", "F", "G flat", "G", "A flat", "A", "B flat", "B")
# Conventional spelling of key names (F sharp rather than G flat for minor, etc.).
MAJOR_KEY_NAMES = ("C", "D flat", "D", "E flat", "E", "F", "F sharp", "G", "A flat", "A", "B flat", "B")
MINOR_KEY_NAMES = ("C", "C sharp", "D", "E flat", "E", "F", "F sharp", "G", "G sharp", "A", "B flat", "B")
# Chord-symbol spellings for MMA (flats for flat keys, sharps elsewhere).
_SHARP_ROOTS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLAT_ROOTS = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")


def key_name(tonic_pc: int, mode: str) -> str:
    """'B flat' for (10, 'major'); 'C sharp' for (1, 'minor')."""
    names = MINOR_KEY_NAMES if mode == "minor" else MAJOR_KEY_NAMES
    return names[tonic_pc % 12]


def chord_root(pc: int, key_tonic_pc: int, mode: str) -> str:
    """Spell a chord root for a chord symbol, with flats in flat keys."""
    name = key_name(key_tonic_pc, mode)
    use_flats = "flat" in name or (mode == "major" and key_tonic_pc % 12 == 5) or (
        mode == "minor" and key_tonic_pc % 12 in (0, 2, 5, 7))
    return (_FLAT_ROOTS if use_flats else _SHARP_ROOTS)[pc % 12]


# Krumhansl-Kessler key profiles (probe-tone ratings), C major and C minor.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def key_of(profile) -> tuple[int, str] | None:
    """Krumhansl-Schmuckler: the (tonic pitch class, mode) whose Krumhansl-Kessler profile correlates best
    with a 12-bin pitch-class distribution; None for a flat one, which correlates with nothing."""
    pc = np.asarray(profile, np.float64)
    if pc.std() == 0:
        return None
    best, key = -2.0, (0, "major")
    for mode, ref in (("major", KK_MAJOR), ("minor", KK_MINOR)):
        for tonic in range(12):
            r = np.corrcoef(pc, np.roll(ref, tonic))[0, 1]
            if r > best:
                best, key = r, (tonic, mode)
    return key

