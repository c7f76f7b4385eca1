"""Held-out text->audio retrieval of the trained style model vs its untrained (random-init) self.

Among the held-out clips of ``--heldout`` (100 in ``runs/lm_data``), each text should retrieve its own
clip: top-1 / top-5 accuracy (chance: 1 % / 5 % with 100 clips) for

(a) the canonical captions,
(b) the paraphrases rendered with the data (mean over the 4 per clip),
(c) the captions reworded by :func:`reword` (a fixed synonym table) into words that *no training
    text uses*: before scoring, every content word of every reworded text is checked against the
    vocabulary of all training captions and paraphrases; texts that fail are reported and dropped.

The untrained baseline is the same model built with the trainer's seed and no training, so it shows
what the frozen MiniLM + a random projection + a random audio tower give on their own.

    taskset -c 1 .venv/bin/python bench/quality_style.py --run runs/style --json runs/style/quality.json
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from generator.train import style as ts  # noqa: E402  (sets single-thread XLA flags when pinned)
from generator.train import rundir  # noqa: E402

import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from generator.audio.config import preset  # noqa: E402

# Function words and note letters are not "content": they carry no style vocabulary.
FUNCTION_WORDS = {"a", "an", "and", "the", "of", "in", "with", "on", "at", "by", "for", "to", "no", "plus",
                  "some", "any", "its", "from", "into", "over", "under", "minus"}

# Phrases first (longest first), then single words. Values avoid every word of the training texts.
PHRASES = {
    "without drums": "minus any trap set",
    "with drums": "backed by a trap set",
    "video game music": "arcade chiptune",
    "hip hop": "boom-bap rap",
    "honky-tonk piano": "saloon upright",
    "music box": "clockwork chime",
    "string ensemble": "symphonic violins",
    "synth drum": "electro tom",
    "jazz drums": "ride-and-hi-hat trap set",
    "drum machine": "beatbox unit",
    "fiddle tune": "hoedown reel",
    "choral polyphony": "sacred a-cappella counterpoint",
    "steel-string": "flattop",
    "pan flute": "panpipes",
    "french horn": "cor",
    "brass section": "flugelhorns",
    "voice oohs": "humming vocalists",
    "choir oohs": "humming vocalists",
    "irish": "celtic",
    "scottish": "highland",
    "game": "arcade",
    "tremolo strings": "shimmering violins",
    "pizzicato strings": "plucked violins",
    "church organ": "cathedral pipework",
    "rock organ": "hammond",
    "percussive organ": "hammond",
    "clean electric guitar": "twangy telecaster",
    "distorted guitar": "fuzz-laden axe",
    "overdriven guitar": "crunchy axe",
    "nylon guitar": "gut-strung axe",
    "jazz guitar": "hollow-body archtop",
    "acoustic guitar": "flattop",
    "electric piano": "rhodes",
    "grand piano": "concert steinway",
    "bright piano": "vivid steinway",
    "synth bass": "moog low-end",
    "electric bass": "amplified low-end",
    "acoustic bass": "upright doghouse",
    "fretless bass": "smooth-necked low-end",
    "slap bass": "thumb-popped low-end",
    "warm pad": "cozy wash",
    "square lead": "chiptune melody",
}
WORDS = {
    "fast": "breakneck", "upbeat": "peppy", "moderate": "ambling", "slow": "languid",
    "major": "ionian", "minor": "aeolian", "flat": "\u266d", "sharp": "\u266f", "bpm": "metronome",
    "ragtime": "stride", "renaissance": "sixteenth-century", "baroque": "bach-era", "jazz": "blue-note",
    "folk": "rustic", "funk": "groovy", "pop": "chart", "rock": "riff-driven", "salsa": "havana clave-driven",
    "waltz": "three-four sway", "ballad": "torch song", "lullaby": "cradle song", "air": "lament",
    "dixieland": "nola trad", "chorale": "psalm setting", "polyphony": "counterpoint", "choral": "sacred",
    "retro": "vintage", "atmosphere": "ambience", "melody": "motif", "tune": "ditty",
    "piano": "keys", "guitar": "axe", "organ": "harmonium", "bass": "low-end", "drums": "trap set",
    "drum": "tom", "strings": "violins", "string": "violin-family", "synth": "moog", "lead": "topline",
    "pad": "wash", "accordion": "squeezebox", "bandoneon": "concertina", "bagpipe": "highland pipes",
    "banjo": "five-stringer", "harp": "lyre", "harpsichord": "clavecin", "clavinet": "funky keys",
    "cello": "violoncelli", "contrabass": "doghouse viol", "viola": "mezzo viol", "violin": "treble viol",
    "fiddle": "hoedown viol", "flute": "transverse fife", "piccolo": "tiny fife", "recorder": "fipple pipe",
    "oboe": "hautboy", "clarinet": "licorice stick", "sax": "saxophone", "alto": "mezzo", "tenor": "middle-voiced",
    "soprano": "high-voiced", "baritone": "low-voiced", "trumpet": "cornet", "trombone": "sackbut",
    "tuba": "sousaphone", "horn": "bugle", "brass": "flugelhorns", "marimba": "wooden mallets",
    "xylophone": "wooden bars", "vibraphone": "vibes", "choir": "vocalists", "voice": "singer",
    "oohs": "humming", "ensemble": "group", "section": "group", "acoustic": "unplugged", "electric": "amplified",
    "electronic": "edm", "nylon": "gut-strung", "steel-string": "flattop", "fingered": "fingerstyle",
    "picked": "plectrum", "muted": "damped", "distorted": "fuzzy", "clean": "pristine", "bright": "vivid",
    "warm": "cozy", "brushed": "swept", "punchy": "snappy", "roomy": "spacious", "slap": "thumb-popped",
    "fretless": "smooth-necked", "arpeggiated": "broken-chord", "tremolo": "shimmering", "pizzicato": "plucked",
    "harmonics": "overtones", "square": "chiptune", "fm": "dx7", "percussive": "clicky", "machine": "unit",
    "music": "sounds", "box": "chime", "grand": "concert", "church": "cathedral", "mide": "demoscene",
    "hrk": "tracker-module", "french": "parisian", "irish": "celtic", "scottish": "highland", "pan": "panpipe",
    "hip": "rap", "hop": "rap", "honky-tonk": "saloon", "game": "arcade", "video": "arcade",
    "polysynth": "poly-moog", "ambient": "droney", "swing": "bouncy-jazz", "blues": "twelve-bar",
}


def words_of(text: str) -> list[str]:
    """Lower-case word tokens, hyphenated words split into their parts."""
    return [p for w in re.findall(r"[a-z\u266d\u266f][a-z\u266d\u266f'-]*", text.lower()) for p in w.split("-") if p]


def content_words(text: str) -> set[str]:
    """Words that carry style vocabulary: not function words, not single letters (note names)."""
    return {w for w in words_of(text) if w not in FUNCTION_WORDS and len(w) > 1}


def reword(caption: str) -> str:
    """Reword a canonical caption with the fixed tables above (phrases first, then words)."""
    s = caption.lower()
    for k in sorted(PHRASES, key=len, reverse=True):
        s = re.sub(rf"(?<![a-z-]){re.escape(k)}(?![a-z-])", PHRASES[k], s)
    out = []
    for tok in re.split(r"(\s+|,)", s):
        out.append(WORDS.get(tok, tok))
    return "".join(out)


def unseen_texts(captions: list[str], train_vocab: set[str]):
    """(reworded texts, mask of those whose content words are all absent from ``train_vocab``, leaks)."""
    texts = [reword(c) for c in captions]
    leaks = [sorted(content_words(t) & train_vocab) for t in texts]
    return texts, np.array([not leak for leak in leaks]), leaks


def evaluate(style, held: "ts.Heldout", unseen_vecs: np.ndarray, keep: np.ndarray) -> dict:
    audio = ts.embed_mels(style, held.mel)
    out = {"captions": ts.retrieval(ts.embed_texts(style, held.captions), audio)}
    res = [ts.retrieval(ts.embed_texts(style, p), audio) for p in held.paraphrases]
    out["paraphrases"] = {k: float(np.mean([r[k] for r in res])) for k in res[0]}
    # unseen-word texts: rank each kept text's own clip among all held-out clips
    sim = ts.embed_texts(style, unseen_vecs) @ audio.T
    rank = (sim > sim[np.arange(len(sim)), np.arange(len(sim))][:, None]).sum(1)[keep]
    out["unseen_words"] = {f"top{k}": float((rank < k).mean()) for k in (1, 5)}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="runs/style")
    p.add_argument("--heldout", default="runs/lm_data")
    p.add_argument("--train", nargs="+", default=None,
                   help="caches whose train texts define the seen vocabulary (default: the run's data)")
    p.add_argument("--cache", default="runs/style_cache")
    p.add_argument("--json", default=None)
    p.add_argument("--show", type=int, default=3, help="print this many reworded examples")
    a = p.parse_args(argv)
    run = pathlib.Path(a.run)
    state = json.loads((run / "state.json").read_text())
    train_dirs = a.train or state.get("data") or ["runs/lm_data", "runs/codec_data"]
    cfg = preset(state.get("preset", "tiny")).style
    cache = pathlib.Path(a.cache)

    from generator.core.text_encoder import TextEncoder

    encoder = TextEncoder(cfg.text_max_len)
    held = ts.Heldout(a.heldout, cfg.n_mels, cache, encoder)
    train_texts = [t for d in train_dirs for m in ts.read_meta(d, "train") for t in ts.texts_of(m)]
    caption_vocab = {w for d in train_dirs for m in ts.read_meta(d, "train") for w in words_of(m["caption"])}
    text_vocab = {w for t in train_texts for w in words_of(t)}
    captions = [m["caption"] for m in held.meta]
    unseen, keep, leaks = unseen_texts(captions, text_vocab)
    assert all(not (content_words(t) & caption_vocab) for t, k in zip(unseen, keep) if k)
    for c, t in list(zip(captions, unseen))[: a.show]:
        print(f"  {c!r}\n   -> {t!r}")
    if not keep.all():
        print(f"dropped {int((~keep).sum())} reworded texts that still use training words: "
              f"{sorted({w for leak in leaks for w in leak})}")
    unseen_vecs = encoder(unseen)

    trained = ts.StyleModel(cfg, rngs=nnx.Rngs(0))
    rundir.load_module(run / "style.safetensors", trained)
    seed = state.get("args", {}).get("seed", 0)
    untrained = ts.StyleModel(cfg, rngs=nnx.Rngs(seed))
    result = {
        "heldout_clips": len(held.meta), "chance": {"top1": 1 / len(held.meta), "top5": min(1, 5 / len(held.meta))},
        "unseen_words_texts": int(keep.sum()), "train_dirs": train_dirs, "run": str(run), "step": state["step"],
        "minutes": round(state["elapsed"] / 60, 2),
        "trained": evaluate(trained, held, unseen_vecs, keep),
        "untrained": evaluate(untrained, held, unseen_vecs, keep),
        "examples": [{"caption": c, "reworded": t} for c, t in list(zip(captions, unseen))[:5]],
    }
    print(f"\nheld-out text->audio retrieval among {len(held.meta)} clips ({run}, step {state['step']}, "
          f"{result['minutes']} min); unseen-word texts: {int(keep.sum())}/{len(keep)}")
    print(f"{'model':<10} {'texts':<14} {'top-1':>7} {'top-5':>7}")
    for model in ("trained", "untrained"):
        for kind in ("captions", "paraphrases", "unseen_words"):
            r = result[model][kind]
            print(f"{model:<10} {kind:<14} {100 * r['top1']:6.1f}% {100 * r['top5']:6.1f}%")
    print(f"{'chance':<10} {'':<14} {100 * result['chance']['top1']:6.1f}% {100 * result['chance']['top5']:6.1f}%")
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
