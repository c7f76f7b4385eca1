"""Captions and paraphrases built from what was actually rendered.

Why: no pretrained audio-text model exists offline (see data.md), so the style model learns from
(render, caption) pairs whose labels are exact because we chose them. The caption uses one fixed,
canonical vocabulary; the paraphrases reword the same facts with other words (synonyms, other
orders, tag lists), so a retrieval evaluation can test prompts phrased unlike the training captions.

Every function here is pure: ``meta`` dict in, strings out.
"""

from __future__ import annotations

import random

# Canonical tempo words (used in captions) and their paraphrase synonyms.
TEMPO_WORDS = ((76, "slow"), (108, "moderate"), (140, "upbeat"), (10_000, "fast"))
TEMPO_SYNONYMS = {
    "slow": ("unhurried", "laid-back", "gentle-paced", "leisurely"),
    "moderate": ("mid-tempo", "medium-paced", "steady", "walking-pace"),
    "upbeat": ("lively", "brisk", "energetic", "bouncy"),
    "fast": ("quick", "rapid", "up-tempo", "racing"),
}
DRUM_SYNONYMS = ("a drum kit", "percussion", "a beat", "a rhythm section")
NO_DRUM_SYNONYMS = ("no percussion", "no beat", "drumless")


def tempo_word(bpm: float) -> str:
    for limit, word in TEMPO_WORDS:
        if bpm < limit:
            return word
    return "fast"


def _join(items: list[str], conj: str = "and") -> str:
    items = list(items)
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + f" {conj} " + items[-1]


def caption(meta: dict) -> str:
    """The canonical caption, e.g. 'fast swing jazz with brushed drums, walking bass, jazz guitar and
    rock organ, 168 BPM, in B flat major'."""
    parts = [f"{meta['tempo_word']} {meta['genre']}"]
    if meta.get("drums"):
        parts[0] += f" with {meta['drum_words']}"
    else:
        parts[0] += " without drums"
    if meta.get("instruments"):
        parts.append(_join(meta["instruments"]))
    parts.append(f"{round(meta['bpm'])} BPM")
    if meta.get("key"):
        parts.append(f"in {meta['key']} {meta['mode']}")
    return ", ".join(parts)


def _key_short(meta: dict) -> str:
    k = meta["key"].replace(" flat", "b").replace(" sharp", "#")
    return k + ("m" if meta["mode"] == "minor" else " maj")


def paraphrases(meta: dict, seed: int = 0, n: int = 4) -> tuple[str, ...]:
    """``n`` rewordings of :func:`caption` that avoid its canonical tempo/drum words."""
    rng = random.Random(seed)
    tw = rng.choice(TEMPO_SYNONYMS[meta["tempo_word"]])
    bpm = round(meta["bpm"])
    inst = list(meta.get("instruments") or [])
    rng.shuffle(inst)
    drums = rng.choice(DRUM_SYNONYMS) if meta.get("drums") else rng.choice(NO_DRUM_SYNONYMS)
    kit = meta.get("drum_words", "drums")
    key = f"the key of {meta['key']} {meta['mode']}" if meta.get("key") else ""
    genre = meta["genre"]
    out = []
    # 1: prose, instruments first.
    s = f"{_join(inst) or 'an ensemble'} playing {genre}"
    s += f" over {kit}" if meta.get("drums") else f", {drums}"
    s += f"; {tw}, around {bpm} beats per minute"
    if key:
        s += f", {key}"
    out.append(s)
    # 2: short tag-like line.
    tags = [genre, tw, f"{bpm} bpm"] + (inst[:3]) + ([kit] if meta.get("drums") else [drums])
    if key:
        tags.append(_key_short(meta))
    out.append(" / ".join(tags))
    # 3: a request a musician might type.
    s = f"a {tw} {genre} track"
    if inst:
        s += f" featuring {_join(inst[:3])}"
    s += f" with {drums}" if meta.get("drums") else f", {drums}"
    out.append(s)
    # 4: facts as key: value.
    s = f"style: {genre}; tempo: {bpm} bpm ({tw})"
    if inst:
        s += f"; instrumentation: {', '.join(inst)}"
    s += f"; percussion: {kit if meta.get('drums') else 'none'}"
    if key:
        s += f"; key: {meta['key']} {meta['mode']}"
    out.append(s)
    return tuple(out[:n])
