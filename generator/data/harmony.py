"""Chord progressions from a small generative grammar of functional harmony, one grammar per style family.

Why a grammar: the mma source plays a thousand grooves over chord progressions, and a model trained on a
handful of looped progressions learns those loops, not harmony. Real progressions are built from phrases
whose chords have *functions* -- tonic (T), predominant (P), dominant (D) -- that move T -> (P) -> D -> T
and close on a cadence, and whose chords get elaborated by substitution (Steedman 1984, "A generative
grammar for jazz chord sequences"; Rohrmeier 2011, "Towards a generative syntax of tonal harmony").
Sampling that process gives many distinct progressions that all still sound like their style.

How a song is made (:func:`song`):

1. **Form**: phrases of 4 or 8 bars labelled like ``AABA`` (a letter repeats its phrase), or 8/12/16-bar
   blues choruses. The last phrase always closes on an authentic (or plagal/modal) cadence; an inner one
   closes or ends on the dominant (a half cadence that resolves into the next phrase).
2. **Phrase**: a body (a tonic prolongation stretched over bars -- the harmonic rhythm speeds up towards
   the cadence -- or a vamp/loop repeated one or two chords a bar) then the cadence ``P D I`` (``P D`` when
   open). The family's rules say which Roman-numeral chords each function may be.
3. **Elaboration** (right to left, so approach chords get approached in turn: circle-of-fifths chains):
   a chord long enough to split may give its last part to an approach to the next chord -- a secondary
   dominant, a ii-V, a tritone substitute, a diminished passing chord, the backdoor iv7-bVII7 -- with
   probabilities per family (many in jazz, few in rock).
4. **Colour**: each (root, kind) gets one chord quality per song from the family's palette: 7ths, 9ths,
   6ths and 13ths in jazz, 7b9 on dominants of minor chords, triads in rock, country and marches.

Harmonic rhythm is one chord per bar or two (half bars) when the groove's bar has an even number of
chord slots. In mma a chord line names one chord per beat slot and ``/`` repeats the previous chord, so
two chords in a bar of 4 slots read ``Dm7 / G7 /`` (``Dm7 G7`` would change on beat 2); a bar of 2
slots (mma's 6/8) reads ``Dm7 G7``. Everything is drawn from the ``random.Random`` passed in: seeded,
deterministic.
"""

from __future__ import annotations

import dataclasses
import random
import re

from generator.core import gm

_FLATS = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
KINDS = ("maj", "min", "dom", "hdim", "dim", "sus")
CADENTIAL_ROOTS = frozenset({7, 11, 1, 5, 10})  # V, vii°, bII7 (tritone), IV/iv (plagal), bVII (modal)


@dataclasses.dataclass(frozen=True)
class Chord:
    """A chord relative to the key: ``root`` in semitones above the tonic, functional ``kind``
    (one of :data:`KINDS`) and the mma ``quality`` suffix chosen when the song is coloured."""

    root: int
    kind: str
    quality: str = ""

    def symbol(self, tonic: int, mode: str) -> str:
        """The mma chord symbol in the key of ``tonic``; lowered degrees (bII, bIII, bVI, bVII) are spelled
        with flats (Bb, not A#, is the bVII of C)."""
        pc = (tonic + self.root) % 12
        name = _FLATS[pc] if self.root in (1, 3, 8, 10) else gm.chord_root(pc, tonic, mode)
        return name + self.quality


@dataclasses.dataclass
class Song:
    """A progression: ``bars`` (one or two chords each), the index of each phrase's last bar, the form."""

    mode: str
    bars: list[tuple[Chord, ...]]
    phrase_ends: list[int]
    form: str

    def symbols(self, tonic: int, slots: int = 4) -> list[str]:
        """One mma chord line per bar for a groove with ``slots`` chord slots per bar."""
        pad = " /" * (slots // 2 - 1)
        out = []
        for bar in self.bars:
            names = [c.symbol(tonic, self.mode) for c in bar]
            out.append(names[0] if len(names) == 1 else f"{names[0]}{pad} {names[1]}{pad}")
        return out

    def cadences(self) -> list[bool]:
        """Per phrase: does it end on a cadence? Either its last chord change inside the phrase goes from a
        cadential chord (:data:`CADENTIAL_ROOTS`) to the tonic, or (not the last phrase) it ends on a
        cadential chord and the next phrase starts on the tonic (a half cadence that resolves)."""
        out, start = [], 0
        for k, end in enumerate(self.phrase_ends):
            chords = [c for bar in self.bars[start:end + 1] for c in bar]
            last, prev = chords[-1], next((c for c in reversed(chords) if c.root != chords[-1].root), None)
            closed = last.root == 0 and prev is not None and prev.root in CADENTIAL_ROOTS
            if not closed and k + 1 < len(self.phrase_ends):
                closed = last.root in CADENTIAL_ROOTS and self.bars[end + 1][0].root == 0
            out.append(closed)
            start = end + 1
        return out


# ---- Roman numerals ------------------------------------------------------------------------------
_DEGREES = {"I": 0, "II": 2, "III": 4, "IV": 5, "V": 7, "VI": 9, "VII": 11}
_RN = re.compile(r"^([b#]?)(VII|VI|V|IV|III|II|I|vii|vi|v|iv|iii|ii|i)(7|o7|o|ø|sus)?$")


def rn(text: str) -> Chord:
    """``"bVII"``, ``"ii7"``, ``"V7"``, ``"viio7"``, ``"iiø"``, ``"Vsus"`` -> a :class:`Chord` (uppercase is
    major, lowercase minor, ``7`` on an uppercase numeral a dominant seventh)."""
    m = _RN.match(text)
    if m is None:
        raise ValueError(f"bad Roman numeral {text!r}")
    acc, num, suffix = m.groups()
    root = (_DEGREES[num.upper()] + {"b": -1, "#": 1, "": 0}[acc]) % 12
    if suffix in ("o", "o7"):
        return Chord(root, "dim")
    if suffix == "ø":
        return Chord(root, "hdim")
    if suffix == "sus":
        return Chord(root, "sus")
    if num.isupper():
        return Chord(root, "dom" if suffix == "7" else "maj")
    return Chord(root, "min")


def _seq(text: str) -> tuple[Chord, ...]:
    return tuple(rn(t) for t in text.split())


# ---- the grammars --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Grammar:
    """One style family's rules. ``body``/``pre``/``dom`` map a mode to weighted options in Roman numerals:
    the phrase body (a trailing ``*`` makes it a vamp repeated to fill the body), the predominant before
    the cadence (``""`` = none) and the dominant. ``elaborate``: probabilities of each substitution."""

    minor: float  # probability of a minor key
    phrase_bars: tuple[tuple[int, int], ...]  # (weight, bars)
    body: dict[str, tuple[tuple[int, str], ...]]
    pre: dict[str, tuple[tuple[int, str], ...]]
    dom: dict[str, tuple[tuple[int, str], ...]]
    palette: str
    elaborate: tuple[tuple[str, float], ...] = ()
    fast: float = 0.25  # probability that a vamp changes chord every half bar
    halves: bool = True  # two chords per bar allowed (False: waltz phrasing, one chord per bar)
    tonic: dict[str, str] = dataclasses.field(default_factory=lambda: {"major": "I", "minor": "i"})


_MINOR_POP = {"body": ((3, "i bVI bIII bVII*"), (2, "i bVII bVI bVII*"), (1, "i iv*"), (1, "i"), (1, "i bVI*"),
                       (1, "i bIII bVII iv*")),
              "pre": ((2, "bVI"), (2, "iv"), (2, "")), "dom": ((3, "bVII"), (2, "V"), (2, "bVI bVII"))}
GRAMMARS: dict[str, Grammar] = {
    "jazz": Grammar(
        0.25, ((1, 4), (3, 8)),
        body={"major": ((3, "I"), (3, "I vi ii V7*"), (2, "iii vi ii V7*"), (2, "I vi"), (1, "I I7"),
                        (1, "I #io7 ii V7*"), (1, "I bIIIo7 ii V7*"), (1, "iii vi")),
              "minor": ((3, "i"), (2, "i iv7 bVII7 bIII*"), (2, "i iiø V7*"), (1, "i bVI"), (1, "i bVI7"))},
        pre={"major": ((3, "ii"), (2, "IV"), (1, "IV iv"), (2, "iii VI7 ii"), (1, "II7"), (1, "")),
             "minor": ((3, "iiø"), (2, "iv"), (1, "bVI"), (1, ""))},
        dom={"major": ((4, "V7"), (1, "bII7"), (1, "iv bVII7"), (1, "Vsus V7")),
             "minor": ((4, "V7"), (1, "bII7"), (1, "bVI7 V7"))},
        palette="jazz", elaborate=(("secondary", 0.35), ("two_five", 0.35), ("tritone", 0.2), ("passing", 0.1),
                                   ("backdoor", 0.05))),
    "latin": Grammar(
        0.45, ((2, 4), (2, 8)),
        body={"major": ((3, "I V7*"), (2, "I IV V7 IV*"), (2, "I"), (2, "ii V7*"), (1, "I vi ii V7*"),
                        (1, "I bVII*")),
              "minor": ((3, "i V7*"), (2, "i IV7*"), (2, "i bVII bVI V7*"), (2, "i iv V7*"), (1, "i"),
                        (1, "i iv7 bVII7 bIII*"))},
        pre={"major": ((2, "ii"), (2, "IV"), (2, "")), "minor": ((2, "iv"), (2, "iiø"), (1, "bVI"), (2, ""))},
        dom={"major": ((4, "V7"), (1, "bII7"), (1, "Vsus V7")), "minor": ((4, "V7"), (1, "bVI7 V7"))},
        palette="latin", elaborate=(("secondary", 0.2), ("two_five", 0.2), ("tritone", 0.1), ("passing", 0.05))),
    "rock": Grammar(
        0.2, ((3, 4), (1, 8)),
        body={"major": ((2, "I"), (2, "I IV"), (2, "I bVII IV I*"), (2, "I V vi IV*"), (1, "I IV I V*"),
                        (1, "I bIII IV I*"), (1, "I bVII*"), (1, "I IV bVII IV*")),
              "minor": _MINOR_POP["body"]},
        pre={"major": ((3, "IV"), (1, "ii"), (1, "bVII IV"), (2, "")), "minor": _MINOR_POP["pre"]},
        dom={"major": ((4, "V"), (2, "bVII"), (1, "bVI bVII"), (1, "IV"), (1, "Vsus V")),
             "minor": _MINOR_POP["dom"]},
        palette="triads", elaborate=(("secondary", 0.08),), fast=0.15),
    "pop": Grammar(
        0.2, ((2, 4), (2, 8)),
        body={"major": ((3, "I V vi IV*"), (2, "vi IV I V*"), (2, "I vi IV V*"), (1, "IV V iii vi*"),
                        (1, "I IV vi V*"), (1, "I V vi iii IV I IV V*"), (1, "I"), (1, "I iii IV"), (1, "I IV")),
              "minor": _MINOR_POP["body"]},
        pre={"major": ((2, "IV"), (1, "ii"), (1, "IV iv"), (2, "")), "minor": _MINOR_POP["pre"]},
        dom={"major": ((3, "V"), (2, "Vsus V"), (1, "bVI bVII"), (1, "IV")), "minor": _MINOR_POP["dom"]},
        palette="pop", elaborate=(("secondary", 0.08),), fast=0.3),
    "country": Grammar(
        0.08, ((2, 4), (2, 8)),
        body={"major": ((3, "I"), (2, "I IV"), (1, "I I7"), (1, "I IV I V7*"), (1, "I VI7 II7 V7*")),
              "minor": ((1, "i"), (1, "i iv"))},
        pre={"major": ((3, "IV"), (2, "II7"), (1, "VI7 II7"), (1, "")), "minor": ((1, "iv"), (1, "bVI"))},
        dom={"major": ((4, "V7"), (2, "V")), "minor": ((1, "V7"),)},
        palette="country", elaborate=(("secondary", 0.15),), fast=0.1),
    "funk": Grammar(
        0.6, ((2, 4), (2, 8)),
        body={"major": ((3, "I7"), (3, "I7 IV7*"), (1, "I7 bVII*"), (1, "I7 bIII7 IV7*")),
              "minor": ((3, "i"), (3, "i IV7*"), (2, "i bVII*"), (1, "i iv*"), (1, "i bIII IV7*"))},
        pre={"major": ((2, "IV7"), (1, "ii"), (3, "")), "minor": ((2, "iv"), (1, "bVII"), (3, ""))},
        dom={"major": ((2, "V7"), (1, "bVII7"), (1, "bVI7 V7")), "minor": ((2, "V7"), (2, "bVI7 V7"), (2, "bVII"))},
        palette="funk", elaborate=(("secondary", 0.1), ("tritone", 0.1)), fast=0.4,
        tonic={"major": "I7", "minor": "i"}),
    "waltz": Grammar(
        0.2, ((1, 4), (3, 8)),
        body={"major": ((3, "I"), (2, "I vi"), (1, "I I7"), (1, "I IV I V7*")),
              "minor": ((3, "i"), (1, "i bVI"), (1, "i iv i V7*"))},
        pre={"major": ((3, "IV"), (2, "ii"), (1, "II7"), (1, "")), "minor": ((3, "iv"), (1, "iiø"), (1, ""))},
        dom={"major": ((5, "V7"), (1, "ii V7")), "minor": ((1, "V7"),)},
        palette="waltz", elaborate=(("secondary", 0.15), ("passing", 0.05)), halves=False),
    "march": Grammar(
        0.1, ((1, 4), (3, 8)),
        body={"major": ((3, "I"), (1, "I V7 I*"), (1, "I IV")), "minor": ((1, "i"), (1, "i iv"))},
        pre={"major": ((3, "IV"), (2, "II7"), (1, "")), "minor": ((1, "iv"), (1, "bVI"))},
        dom={"major": ((4, "V7"), (1, "V")), "minor": ((1, "V7"),)},
        palette="triads", elaborate=(("secondary", 0.15), ("passing", 0.15)), fast=0.1),
    "ballad": Grammar(
        0.25, ((2, 4), (2, 8)),
        body={"major": ((2, "I"), (2, "I vi"), (1, "I iii"), (1, "I V vi iii IV I IV V*"), (1, "I I7 IV iv"),
                        (1, "I vi IV V*"), (1, "I iii vi")),
              "minor": ((2, "i"), (2, "i bVI bIII bVII*"), (1, "i iv"), (1, "i bVII bVI V*"))},
        pre={"major": ((2, "IV"), (2, "ii"), (1, "IV iv"), (1, "")), "minor": ((2, "iv"), (1, "bVI"), (1, ""))},
        dom={"major": ((2, "V"), (2, "Vsus V"), (1, "V7")), "minor": ((2, "V"), (1, "bVII"), (1, "V7"))},
        palette="ballad", elaborate=(("secondary", 0.15), ("two_five", 0.05), ("passing", 0.05)), fast=0.15),
    "electronic": Grammar(
        0.65, ((2, 4), (2, 8)),
        body={"major": ((3, "vi IV I V*"), (2, "I V vi IV*"), (1, "IV V iii vi*"), (1, "I*")),
              "minor": _MINOR_POP["body"]},
        pre={"major": ((2, "IV"), (2, "")), "minor": _MINOR_POP["pre"]},
        dom={"major": ((2, "V"), (1, "bVI bVII")), "minor": _MINOR_POP["dom"]},
        palette="electronic", fast=0.2),
}

# chord qualities per palette and kind: (mma suffix, weight); "tmaj"/"tmin" = on the tonic, "domm" = a
# dominant resolving to a minor chord (7b9 in jazz)
_TRIADS = {"maj": (("", 1),), "min": (("m", 1),), "dom": (("7", 1),), "hdim": (("m7b5", 1),), "dim": (("dim", 1),),
           "sus": (("sus4", 1),)}
PALETTES: dict[str, dict[str, tuple[tuple[str, int], ...]]] = {
    "triads": _TRIADS,
    "country": {**_TRIADS, "maj": (("", 6), ("6", 1))},
    "jazz": {"maj": (("M7", 4), ("6", 2), ("M9", 1)), "tmaj": (("6", 3), ("M7", 3), ("6(add9)", 1), ("M9", 1)),
             "min": (("m7", 5), ("m9", 2)), "tmin": (("m6", 2), ("m7", 2), ("mM7", 1), ("m9", 1)),
             "dom": (("7", 4), ("9", 2), ("13", 2)), "domm": (("7b9", 3), ("7", 1), ("7#9", 1)),
             "hdim": (("m7b5", 1),), "dim": (("dim7", 1),), "sus": (("7sus", 1),)},
    "latin": {"maj": (("M7", 3), ("6", 2), ("", 1)), "min": (("m7", 3), ("m6", 1), ("m", 1)),
              "dom": (("7", 3), ("9", 1)), "domm": (("7b9", 2), ("7", 2)), "hdim": (("m7b5", 1),),
              "dim": (("dim7", 1),), "sus": (("7sus", 1),)},
    "funk": {"maj": (("M7", 2), ("", 1)), "min": (("m7", 4), ("m9", 2), ("m11", 1)),
             "dom": (("9", 3), ("7", 2), ("13", 2), ("7#9", 1)), "domm": (("7#9", 2), ("7b9", 1), ("7", 1)),
             "hdim": (("m7b5", 1),), "dim": (("dim7", 1),), "sus": (("7sus", 1),)},
    "blues": {"maj": (("", 1),), "min": (("m7", 3), ("m9", 1), ("m", 1)), "dom": (("7", 4), ("9", 2), ("13", 1)),
              "domm": (("7", 2), ("7b9", 1)), "hdim": (("m7b5", 1),), "dim": (("dim7", 1),), "sus": (("7sus", 1),)},
    "ballad": {**_TRIADS, "maj": (("", 3), ("M7", 2), ("add9", 2)), "min": (("m", 2), ("m7", 2))},
    "pop": {**_TRIADS, "maj": (("", 6), ("add9", 1), ("M7", 1)), "min": (("m", 4), ("m7", 1))},
    "electronic": {**_TRIADS, "maj": (("", 3), ("add9", 1), ("M7", 1)), "min": (("m", 3), ("m7", 2), ("m9", 1)),
                   "sus": (("sus2", 1), ("sus4", 1))},
    "waltz": {**_TRIADS, "maj": (("", 4), ("M7", 1), ("6", 1)), "min": (("m", 3), ("m7", 1))},
}


def _pick(rng: random.Random, options):
    return rng.choices([o for _, o in options], [w for w, _ in options])[0]


# ---- phrases -------------------------------------------------------------------------------------
Event = list  # [Chord, units]: a chord and how many units (half bars, or bars when h == 1) it lasts


def _stretch(chords: tuple[Chord, ...], bars: int, h: int) -> list[Event]:
    """Lay a tonic prolongation over ``bars``: earlier chords last longer (the harmonic rhythm speeds up
    towards the cadence); with more chords than bars, the last ones share bars, two to a bar."""
    chords = chords[:max(1, bars * h)]
    n = len(chords)
    if n <= bars:
        d = [1] * n
        while sum(d) < bars:  # double chords in turn, earliest first: 3 chords over 8 bars -> 4 2 2
            grown = False
            for i in range(n):
                if sum(d) + d[i] <= bars:
                    d[i] *= 2
                    grown = True
            if not grown:
                d[0] += bars - sum(d)
        return [[c, k * h] for c, k in zip(chords, d)]
    paired = n - bars  # the last 2 * paired chords go two to a bar
    singles = n - 2 * paired
    return [[c, h] for c in chords[:singles]] + [[c, 1] for c in chords[singles:]]


def _vamp(chords: tuple[Chord, ...], bars: int, h: int, per_bar: int) -> list[Event]:
    """A loop repeated over ``bars``, ``per_bar`` chords a bar (1 or 2)."""
    n = bars * per_bar
    return [[chords[i % len(chords)], h // per_bar] for i in range(n)]


def _phrase(g: Grammar, mode: str, rng: random.Random, bars: int, h: int, close: bool) -> list[Event]:
    """One phrase: body then cadence (``P D I`` closed, ``P D`` open), elaborated. Every draw but the
    elaboration happens up front in a fixed order, so the open and closed variants of a phrase drawn
    from equally seeded ``rng`` share their body and differ only in how they end."""
    raw = _pick(rng, g.body[mode])
    pre, dom = _seq(_pick(rng, g.pre[mode])), _seq(_pick(rng, g.dom[mode]))
    run_on, paired, fast = rng.random() < 0.5, rng.random() < 0.6, rng.random() < g.fast
    vamp, body, tonic = raw.endswith("*"), _seq(raw.rstrip("*")), rn(g.tonic[mode])
    cad_events: list[Event] = []
    pd = [] if (vamp and not close and run_on) else list(pre + dom)  # a vamp may lead back by itself
    while pd:
        if h == 2 and len(pd) >= 2 and (len(pd) > 2 or paired):
            cad_events += [[pd[0], 1], [pd[1], 1]]  # "ii V |": two chords in the bar before the tonic
            pd = pd[2:]
        else:
            cad_events.append([pd.pop(0), h])
    if close:
        cad_events.append([tonic, h])
    while cad_events and sum(u for _, u in cad_events) > (bars - 1) * h:  # a short phrase keeps the cadence
        del cad_events[:2 if cad_events[0][1] < h else 1]  # half bars go in pairs
    body_bars = bars - sum(u for _, u in cad_events) // h
    if vamp:
        events = _vamp(body, body_bars, h, 2 if (h == 2 and len(body) > 1 and fast) else 1)
    else:
        events = _stretch(body, body_bars, h)
    return _elaborate(g, events + cad_events, rng, h)


def _elaborate(g: Grammar, events: list[Event], rng: random.Random, h: int) -> list[Event]:
    """Right to left, give the last part of a chord long enough to split to an approach to the next chord
    (secondary dominant, ii-V, tritone substitute, passing diminished, backdoor); turn plain V7 -> X into
    bII7 -> X now and then (the tritone substitution)."""
    probs = dict(g.elaborate)
    if not probs:
        return events
    j = len(events) - 1
    while j >= 1:
        target, (pred, units) = events[j][0], events[j - 1]
        if target.kind in ("dim", "hdim") or pred.root == target.root:
            j -= 1
            continue
        v_of = (target.root + 7) % 12
        if pred.kind == "dom" and pred.root == v_of:
            if rng.random() < probs.get("tritone", 0.0):
                events[j - 1] = [Chord((target.root + 1) % 12, "dom"), units]
            j -= 1
            continue
        split = units // 2 if units <= 2 * h else h  # a half bar of a bar, or the last bar of several
        if split < 1:
            j -= 1
            continue
        approach = _approach(probs, target, rng, split)
        if approach is None:
            j -= 1
            continue
        parts = [[c, split // len(approach)] for c in approach]
        events[j - 1:j] = [[pred, units - split], *parts]  # j is now the first approach chord: the next
        # target, so approaches get approached in turn (chains of dominants)
    return events


def _approach(probs: dict, target: Chord, rng: random.Random, room: int) -> tuple[Chord, ...] | None:
    """The chords approaching ``target`` in ``room`` units, or None (no elaboration this time)."""
    r, minor = target.root, target.kind == "min"
    for name in ("two_five", "backdoor", "secondary", "passing"):
        p = probs.get(name, 0.0)
        if name in ("two_five", "backdoor") and (room < 2 or room % 2):
            continue
        if name == "backdoor" and (r != 0 or minor):
            continue
        if rng.random() >= p:
            continue
        if name == "two_five":
            return Chord((r + 2) % 12, "hdim" if minor else "min"), Chord((r + 7) % 12, "dom")
        if name == "backdoor":
            return Chord(5, "min"), Chord(10, "dom")
        if name == "secondary":
            tritone = rng.random() < probs.get("tritone", 0.0)
            return (Chord((r + 1) % 12, "dom") if tritone else Chord((r + 7) % 12, "dom")),
        return (Chord((r + 11) % 12, "dim"),)
    return None


# ---- blues ---------------------------------------------------------------------------------------
# One list per bar: the options for that bar (weight, Roman numerals; two numerals = two half bars).
_BLUES12 = (((5, "I7"),), ((5, "I7"), (4, "IV7")), ((1, "I7"),), ((4, "I7"), (1, "v7 I7")),
            ((1, "IV7"),), ((3, "IV7"), (1, "IV7 #ivo7")), ((1, "I7"),), ((3, "I7"), (1, "I7 VI7"), (1, "iii7 VI7")),
            ((3, "V7"), (1, "ii7")), ((3, "IV7"), (1, "V7")), ((3, "I7"), (1, "I7 VI7"), (1, "I7 IV7")),
            ((3, "V7"), (2, "I7 V7"), (1, "ii7 V7")))
_BLUES8 = (((1, "I7"),), ((2, "V7"), (1, "I7")), ((1, "IV7"),), ((2, "IV7"), (1, "iv7")),
           ((1, "I7"),), ((2, "V7"), (1, "VI7")), ((2, "I7"), (1, "ii7 V7")), ((1, "V7"),))
_BLUES_MINOR = (((1, "i7"),), ((3, "i7"), (2, "iv7")), ((1, "i7"),), ((3, "i7"), (1, "vø I7")),
                ((1, "iv7"),), ((1, "iv7"),), ((1, "i7"),), ((3, "i7"), (1, "bVI7")),
                ((3, "bVI7"), (2, "iiø")), ((1, "V7"),), ((3, "i7"), (1, "i7 bVI7")), ((3, "V7"), (1, "iiø V7")))
_BLUES_FORMS = ((6, 12), (1, 8), (1, 16))


def _blues_chorus(rng: random.Random, mode: str, bars: int, h: int, close: bool) -> list[Event]:
    table = _BLUES_MINOR if mode == "minor" else {8: _BLUES8, 12: _BLUES12, 16: _BLUES12[:4] * 2 + _BLUES12[4:]}[bars]
    tonic = rn("i7") if mode == "minor" else rn("I7")
    events: list[Event] = []
    for k, options in enumerate(table):
        if close and k >= len(table) - 2:  # the last chorus ends V7 | I7 (8 bars) or IV/V | I7 | I7
            events.append([rn("V7") if bars == 8 and k == len(table) - 2 else tonic, h])
            continue
        options = [o for o in options if h == 2 or " " not in o[1]] or [(1, options[0][1].split()[0])]
        chords = _seq(_pick(rng, options))
        events += [[c, h // len(chords)] for c in chords]
    return events


# ---- songs ---------------------------------------------------------------------------------------
_FORMS = {1: ("A",), 2: ("AB", "AA"), 3: ("AAB", "ABA", "ABB"), 4: ("AABA", "ABAB", "ABAC", "AABB")}


def song(family: str, rng: random.Random, bars_target: int, slots: int = 4) -> Song:
    """A progression of about ``bars_target`` bars in the style of ``family`` for a groove whose bar has
    ``slots`` chord slots (two chords a bar only when ``slots`` is even)."""
    blues = family == "blues"
    g = GRAMMARS.get(family, GRAMMARS["pop"])
    mode = "minor" if rng.random() < (0.15 if blues else g.minor) else "major"
    h = 2 if (slots % 2 == 0 and (blues or g.halves)) else 1
    if blues:
        size = _pick(rng, _BLUES_FORMS) if mode == "major" else 12
        n = max(1, round(bars_target / size))
        form = "A" * n
    else:
        size = _pick(rng, g.phrase_bars)
        n = max(1, round(bars_target / size))
        form = rng.choice(_FORMS[n]) if n in _FORMS else (rng.choice(_FORMS[4]) * n)[:n]
    seeds = {letter: rng.getrandbits(32) for letter in sorted(set(form))}  # one phrase per letter...
    phrases: dict[tuple[str, bool], list[Event]] = {}
    events: list[Event] = []
    ends: list[int] = []
    for k, letter in enumerate(form):
        close = k == len(form) - 1 or (not blues and rng.random() < 0.5)
        if (letter, close) not in phrases:  # ...that ends open or closed
            r = random.Random(seeds[letter])
            phrases[letter, close] = (_blues_chorus(r, mode, size, h, close) if blues
                                      else _phrase(g, mode, r, size, h, close))
        events += [list(e) for e in phrases[letter, close]]
        ends.append((k + 1) * size - 1)
    bars = _to_bars(_colour("blues" if blues else g.palette, events, rng), h)
    return Song(mode, bars, ends, form)


def _colour(palette: str, events: list[Event], rng: random.Random) -> list[Event]:
    """Give every (root, kind, context) one quality for the whole song, so a ii is the same ii every time."""
    table, chosen = PALETTES[palette], {}
    out = []
    for i, (c, units) in enumerate(events):
        nxt = events[i + 1][0] if i + 1 < len(events) else None
        key = c.kind
        if c.kind == "dom" and nxt is not None and nxt.kind in ("min", "hdim") and nxt.root == (c.root + 5) % 12:
            key = "domm"
        elif c.root == 0 and c.kind in ("maj", "min"):
            key = "t" + c.kind
        elif c.root == 7 and c.kind == "maj":
            key = "vmaj"  # a major V is a dominant: never a major seventh
        options = table.get(key) or ((("", 1),) if key == "vmaj" else table[c.kind])
        if (c.root, key) not in chosen:
            chosen[c.root, key] = _pick(rng, [(w, q) for q, w in options])
        out.append([dataclasses.replace(c, quality=chosen[c.root, key]), units])
    return out


def _to_bars(events: list[Event], h: int) -> list[tuple[Chord, ...]]:
    """Events -> bars of one or two chords (a chord held across the bar line is restated each bar)."""
    bars: list[list[Chord]] = []
    pos = 0
    for chord, units in events:
        for _ in range(units):
            if pos % h == 0:
                bars.append([])
            if not bars[-1] or bars[-1][-1] != chord:
                bars[-1].append(chord)
            pos += 1
    return [tuple(b) for b in bars]
