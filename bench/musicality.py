"""Musicality: real held-out music against the models, on the same measures (issue 15).

Why: a model can name the right instruments and key and still have no pulse. This bench judges generated
music against real music of the same styles with one measure code path
(:func:`musicality_metrics.measure`: pulse clarity, grid fit, drum patterns, note lengths, polyphony, bar
recurrence, scale consistency, silence; see that module for each definition), so "better" means "closer
to real music", and the "random" baseline (the first model's notes at random times) says where chance is.

What is measured, each cut to ``--seconds``:

- **real**: held-out works (``generator.data.sources.iter_works("heldout")``, taken in turn from each of
  ``--sources`` so grooves and scores are both there; or a held-out token set with ``--heldout PATH.npz``),
  their MIDI notes read directly; only works at least ``--seconds`` long;
- **each ``--model``** (anything ``generator.load`` takes: ``symbolic``, later ``groove``), rendered through
  the real-time path (``init_state``, 200 ms ``generate`` blocks with ``GenerationControls(prompts=((p,
  1.0),))`` at the model's own control defaults, ``drain_midi`` at its sample offsets; note-on/off
  messages paired into notes, program changes giving each channel's GM family), ``--seeds`` seeds per
  prompt. Prompts are the real works' captions, so each generated clip has a real counterpart of the same
  style (or ``--prompts-file``, one prompt a line);
- **random**: the first model's notes at uniformly random onsets (lengths, pitches, parts kept).

Printed: median [IQR] per measure and group (real is also split by source: mma grooves vs scores), then as
means over clips the share whose triplet grid fits best and the prompt-match numbers against each clip's
caption: key (Krumhansl-Schmuckler) = the caption's key;
tempo word of the estimated tempo (slow/moderate/upbeat/fast, :data:`generator.data.captions.TEMPO_WORDS`)
= the caption's; GM-family precision and recall against the caption's instruments (plus drums); drums
played exactly when the caption asks for them. Real music against its own caption is the ceiling.

    .venv/bin/python bench/musicality.py --prompts 20 --seeds 2 --seconds 20 --json out.json --png rolls.png
    .venv/bin/python bench/musicality.py --model symbolic --model groove --prompts-file prompts.txt
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import musicality_metrics as mm  # noqa: E402

from generator.core import gm  # noqa: E402

BLOCK_FRAMES = 5  # 200 ms, as the daemon
NEGATIVE_DRUMS = ("without drums", "no drums", "no percussion", "no beat", "drumless", "percussion: none")
DRUM_WORDS = ("drum", "percussion", "a beat", "rhythm section")
ROWS = (  # (key, label, format)
    ("pulse_clarity", "pulse clarity", ".2f"), ("tempo_bpm", "tempo (BPM)", ".0f"),
    ("grid_kappa", "grid fit kappa (best)", ".2f"), ("grid_kappa_16th", "  16th grid", ".2f"),
    ("grid_kappa_triplet", "  triplet grid", ".2f"),
    ("drum_pulse_clarity", "drum pulse clarity", ".2f"),
    ("drum_pattern_consistency", "drum pattern consistency", ".2f"),
    ("bar_recurrence", "bar recurrence", ".2f"), ("long_note_share", "note time in notes > 4 s", ".2f"),
    ("longest_note_s", "longest note (s)", ".1f"), ("median_note_s", "median note (s)", ".2f"),
    ("polyphony", "notes sounding at once", ".1f"), ("scale_consistency", "scale consistency", ".2f"),
    ("silence_share", "silence share", ".2f"), ("notes_per_s", "notes per second", ".1f"),
)
MATCH_ROWS = (("grid_triplet", "triplet grid fits best"), ("key_match", "key = caption's"),
              ("tempo_word_match", "tempo word = caption's"),
              ("family_precision", "family precision"), ("family_recall", "family recall"),
              ("drums_right", "drums iff asked"))


@dataclasses.dataclass
class Clip:
    group: str  # "real", a model spec, "random"
    source: str  # real: the source ("mma", "music21", ...); generated: the model
    prompt: str
    seed: int
    notes: np.ndarray
    measures: dict = dataclasses.field(default_factory=dict)
    match: dict = dataclasses.field(default_factory=dict)


# ---- what a caption asks for ---------------------------------------------------------------------
def asked_of_text(text: str) -> dict:
    """Key, tempo word, instrument families and drums a caption (or any prompt) asks for; None = not said.

    A canonical caption ("fast jazz with jazz drums, overdriven guitar and timpani, 150 BPM, in A minor")
    names its instruments between the first comma and the BPM, so only that part is read for them (a genre
    word such as "fiddle tune" is not an instrument); another prompt is read whole. Instrument words are
    GM program names (longest first, "walking bass" too), then bare family names ("piano", "strings")."""
    from generator.data.captions import TEMPO_SYNONYMS, TEMPO_WORDS, tempo_word
    from generator.train.heads.pitch import parse_key

    low = text.lower()
    bpm = next((float(w) for w, nxt in zip(low.split(), low.split()[1:]) if w.isdigit() and nxt.startswith("bpm")),
               None)
    word = tempo_word(bpm) if bpm else None
    if word is None:
        words = {w: w for _, w in TEMPO_WORDS} | {s: w for w, syn in TEMPO_SYNONYMS.items() for s in syn}
        word = next((words[w] for w in low.replace(",", " ").split() if w in words), None)
    segs = low.split(", ")
    bpm_seg = next((i for i, s in enumerate(segs) if s.endswith(" bpm")), None)
    inst = " , ".join(segs[1:bpm_seg]) if bpm_seg is not None else low
    fams = set()
    names = sorted(set(gm.PROGRAM_NAMES) | {"walking bass"}, key=len, reverse=True)
    for name in names:
        if name in inst:
            fams.add(gm.FAMILY_NAMES[4 if name == "walking bass" else gm.family(gm.PROGRAM_NAMES.index(name))])
            inst = inst.replace(name, " ")
    fams |= {f for f in gm.FAMILY_NAMES if f" {f}" in f" {inst}"}
    drums = False if any(n in low for n in NEGATIVE_DRUMS) else True if any(d in low for d in DRUM_WORDS) else None
    if drums:
        fams.add("drums")
    return {"key": parse_key(text), "tempo_word": word, "families": sorted(fams), "drums": drums}


def prompt_match(m: dict, asked: dict) -> dict:
    """How one clip's measures answer its prompt (NaN where the prompt does not say or the clip cannot)."""
    from generator.data.captions import tempo_word

    nan = float("nan")
    out = {"key_match": nan if asked["key"] is None or m["key"] is None else float(tuple(m["key"]) == asked["key"]),
           "tempo_word_match": nan if asked["tempo_word"] is None or math.isnan(m["tempo_bpm"])
           else float(tempo_word(m["tempo_bpm"]) == asked["tempo_word"]),
           "drums_right": nan if asked["drums"] is None else float(("drums" in m["families"]) == asked["drums"])}
    asked_fams = set(asked["families"]) | ({"drums"} if asked["drums"] else set())
    if asked_fams:  # a prompt naming no instrument and not saying whether drums play asks for no family
        out["family_precision"], out["family_recall"] = mm.family_match(m["families"], asked_fams)
    else:
        out["family_precision"] = out["family_recall"] = nan
    return out


# ---- MIDI -> notes (one pairing for real and generated MIDI) ----------------------------------------
def notes_of_messages(messages, seconds: float) -> np.ndarray:
    """Notes of ``(time s, MIDI bytes)`` messages, cut to ``seconds``, paired as a synth plays them: a note-off
    ends the sounding (channel, pitch), and so does a re-strike of it (FluidSynth and the symbolic model's
    tokens do the same; first-in-first-out pairing instead turns mma's overlapping strums into notes many
    seconds long). A note-off of a silent key followed at the same instant by a note-on of it is a zero-length
    note (music21 writes grace notes so: off before on), kept as an onset of no length, not held until the
    key's next note-off. A channel's last program change gives its part (else the channel's jamgen part), the
    drum channel is drums; notes still sounding end at the clip end."""
    programs: dict[int, int] = {}
    active: dict[tuple[int, int], tuple] = {}
    notes = []
    orphans: dict[tuple[int, int], float] = {}  # key -> time of a note-off that found it silent
    for t, d in sorted(messages, key=lambda e: e[0]):
        if t >= seconds:
            break
        status, ch = d[0] & 0xF0, d[0] & 0x0F
        if status == 0xC0:
            programs[ch] = d[1]
        elif status in (0x80, 0x90):
            key = (ch, d[1])
            on = status == 0x90 and d[2] > 0
            if key in active:
                t0, vel, part, drum = active.pop(key)
                notes.append((t0, t - t0, d[1], vel, part, drum))
            elif not on:
                orphans[key] = t
            if on:
                drum = ch == gm.DRUM_CHANNEL
                part = (gm.DRUM_PART if drum else gm.program_part(programs[ch]) if ch in programs
                        else gm.channel_part(ch))
                if orphans.pop(key, None) == t:
                    notes.append((t, 0.0, d[1], d[2], part, drum))
                else:
                    active[key] = (t, d[2], part, drum)
    notes += [(t0, seconds - t0, pitch, vel, part, drum) for (_, pitch), (t0, vel, part, drum) in active.items()]
    return clip_notes(notes, seconds)


def notes_of_midi_file(midi, seconds: float) -> np.ndarray:
    """A ``mido.MidiFile``'s notes (tempo map applied) in the measure's format, cut to ``seconds``."""
    messages, now = [], 0.0
    for msg in midi:
        now += msg.time
        if msg.type in ("note_on", "note_off", "program_change"):
            messages.append((now, bytes(msg.bytes())))
        if now >= seconds:
            break
    return notes_of_messages(messages, seconds)


def clip_notes(notes, seconds: float) -> np.ndarray:
    a = mm.as_notes(notes)
    a = a[a[:, 0] < seconds]
    a[:, 1] = np.minimum(a[:, 1], seconds - a[:, 0])
    return a


def real_clips(args) -> list[Clip]:
    """``--prompts`` real clips: from a token set, or held-out works taken in turn from each source."""
    from tqdm import tqdm

    out: list[Clip] = []
    bar = tqdm(total=args.prompts, desc="real held-out music", unit="clip")
    if args.heldout:
        from generator.data.symbolic_tokens import TokenSet
        from generator.symbolic import tokens as tok

        held = TokenSet(args.heldout)
        for i in np.random.default_rng(args.seed).permutation(len(held)):
            notes = tok.tokens_to_notes(held.work(int(i)))
            if not notes or max(n.end for n in notes) < args.seconds:
                continue
            a = clip_notes([(n.start, n.end - n.start, n.pitch, n.velocity, n.part, n.part == gm.DRUM_PART)
                            for n in notes], args.seconds)
            out.append(Clip("real", held.collections[int(i)].split("/")[0], held.texts[held.caption_ids[i, 0]], 0, a))
            bar.update()
            if len(out) >= args.prompts:
                break
        bar.close()
        return out
    from generator.data.sources import iter_works

    streams = {s: iter_works("heldout", sources=(s,), seed=args.seed) for s in args.sources}
    while len(out) < args.prompts and streams:
        for source in list(streams):
            work = next(streams[source], None)
            if work is None:
                del streams[source]
                continue
            if work.duration < args.seconds:
                continue
            a = notes_of_midi_file(work.midi, args.seconds)
            if len(a) < mm.MIN_ONSETS:
                continue
            out.append(Clip("real", source, work.caption, 0, a))
            bar.update()
            if len(out) >= args.prompts:
                break
    bar.close()
    return out


# ---- generated music ---------------------------------------------------------------------------
def render(gen, prompt: str, seconds: float, seed: int) -> list[tuple[int, bytes]]:
    """``(stream sample, MIDI bytes)`` of ``seconds`` of one prompt through the real-time path."""
    from generator.core.contract import FRAME_SAMPLES, GenerationControls

    fields = {f.name for f in dataclasses.fields(GenerationControls)} - {"prompts", "seed"}
    defaults = {k: v for k, v in (gen.control_defaults or {}).items() if k in fields}
    controls = GenerationControls(prompts=((prompt, 1.0),), seed=seed, **defaults)
    state = gen.init_state(seed)
    gen.drain_midi()
    events = []
    blocks = int(math.ceil(seconds * 25 / BLOCK_FRAMES))
    for i in range(blocks):
        _, state = gen.generate(state, controls, BLOCK_FRAMES)
        base = i * BLOCK_FRAMES * FRAME_SAMPLES
        events += [(base + off, bytes(d)) for off, d in gen.drain_midi()]
    gen.init_state(seed)  # ends the notes still sounding
    events += [(blocks * BLOCK_FRAMES * FRAME_SAMPLES, bytes(d)) for _, d in gen.drain_midi()]
    return events


def model_clips(spec: str, prompts: list[tuple[str, str]], seeds: int, seconds: float) -> list[Clip]:
    import generator
    from generator.core.contract import SAMPLE_RATE
    from tqdm import tqdm

    gen = generator.load(spec)
    gen.warmup()
    out = []
    for prompt, _ in tqdm(prompts, desc=f"render {spec}", unit="prompt"):
        for seed in range(seeds):
            events = render(gen, prompt, seconds, seed)
            out.append(Clip(spec, spec, prompt, seed, notes_of_messages([(n / SAMPLE_RATE, d) for n, d in events],
                                                                        seconds)))
    return out


# ---- the table -------------------------------------------------------------------------------------
def summary(clips: list[Clip], keys) -> dict:
    out = {}
    for k in keys:
        v = np.asarray([c.measures.get(k, c.match.get(k, np.nan)) for c in clips], np.float64)
        v = v[~np.isnan(v)]
        out[k] = {"n": int(len(v)), "median": float(np.median(v)) if len(v) else None,
                  "q1": float(np.percentile(v, 25)) if len(v) else None,
                  "q3": float(np.percentile(v, 75)) if len(v) else None,
                  "mean": float(v.mean()) if len(v) else None}
    return out


def print_table(groups: dict[str, list[Clip]]) -> dict:
    sums = {g: summary(c, [k for k, _, _ in ROWS] + [k for k, _ in MATCH_ROWS]) for g, c in groups.items()}
    width = 19
    print(f"{'median [IQR]':26s}" + "".join(f"{g[:width - 1]:>{width}s}" for g in groups))
    for key, label, fmt in ROWS:
        cells = []
        for g in groups:
            s = sums[g][key]
            cells.append("-" if s["median"] is None else
                         f"{s['median']:{fmt}} [{s['q1']:{fmt}}-{s['q3']:{fmt}}]")
        print(f"{label:26s}" + "".join(f"{c:>{width}s}" for c in cells))
    print(f"{'share of clips (mean)':26s}" + "".join(f"{g[:width - 1]:>{width}s}" for g in groups))
    for key, label in MATCH_ROWS:
        cells = ["-" if sums[g][key]["mean"] is None else f"{sums[g][key]['mean']:.2f} (n={sums[g][key]['n']})"
                 for g in groups]
        print(f"{label:26s}" + "".join(f"{c:>{width}s}" for c in cells))
    return sums


def piano_rolls(real: Clip, gen: Clip, path: str, seconds: float) -> None:
    """One real and one generated clip side by side: pitch over time, colour by GM family, drums below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(16, 6), sharey=True)
    cmap = plt.get_cmap("tab20")
    for ax, clip, title in ((axes[0], real, f"real ({real.source})"), (axes[1], gen, f"{gen.group}, seed {gen.seed}")):
        for on, dur, pitch, _, part, drum in clip.notes:
            y = pitch - 30 if drum else pitch  # drums in a band under the melodic range
            ax.broken_barh([(on, max(dur if not drum else 0.08, 0.03))], (y - 0.4, 0.8),
                           color="black" if drum else cmap(int(part) % 20))
        m = clip.measures
        ax.set_title(f"{title}: pulse {m['pulse_clarity']:.2f}, kappa {m['grid_kappa']:.2f}, "
                     f"{m['tempo_bpm']:.0f} BPM\n{clip.prompt[:90]}", fontsize=9)
        ax.set_xlim(0, seconds)
        ax.set_xlabel("seconds")
    axes[0].set_ylabel("MIDI pitch (drums: pitch - 30, black)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def plain(o):
    """JSON-ready: NaN -> null, tuples -> lists, numpy scalars -> Python."""
    if isinstance(o, dict):
        return {str(k): plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [plain(v) for v in o]
    if isinstance(o, (float, np.floating)):
        return None if math.isnan(o) else float(o)
    if isinstance(o, np.integer):
        return int(o)
    return o


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", help="generator spec (repeatable; default symbolic)")
    p.add_argument("--prompts", type=int, default=20, help="real clips, and prompts (their captions)")
    p.add_argument("--seeds", type=int, default=2, help="generated clips per prompt")
    p.add_argument("--seconds", type=float, default=20.0, help="clip length")
    p.add_argument("--sources", nargs="+", default=["mma", "music21", "debian"], help="held-out sources, in turn")
    p.add_argument("--heldout", help="a held-out token set (.npz) instead of the sources")
    p.add_argument("--prompts-file", help="prompts, one a line, instead of the real clips' captions")
    p.add_argument("--no-real", action="store_true", help="measure no real music (needs --prompts-file)")
    p.add_argument("--seed", type=int, default=0, help="which works, and the random baseline's times")
    p.add_argument("--json", help="also write every clip's measures and the summary here")
    p.add_argument("--png", help="piano rolls of the first real clip and its first generated counterpart")
    args = p.parse_args(argv)
    models = args.model or ["symbolic"]
    if args.no_real and not args.prompts_file:
        p.error("--no-real needs --prompts-file")
    from generator.data.sources import SOURCES, work_refs

    if not args.heldout:  # a source with no held-out works here (debian packages not installed) is left out
        args.sources = [s for s in args.sources if s in SOURCES and work_refs("heldout", [s])]
    real = [] if args.no_real else real_clips(args)
    if args.prompts_file:
        prompts = [(line.strip(), "") for line in Path(args.prompts_file).read_text().splitlines() if line.strip()]
    else:
        prompts = [(c.prompt, c.source) for c in real]
    groups: dict[str, list[Clip]] = {"real": real} if real else {}
    for source in sorted({c.source for c in real}) if len({c.source for c in real}) > 1 else ():
        groups[f"real {source}"] = [c for c in real if c.source == source]
    rng = np.random.default_rng(args.seed)
    for k, spec in enumerate(models):
        groups[spec] = model_clips(spec, prompts, args.seeds, args.seconds)
        if k == 0:
            groups[f"random ({spec})"] = [Clip("random", spec, c.prompt, c.seed,
                                               mm.random_times(c.notes, args.seconds, rng)) for c in groups[spec]]
    for clips in groups.values():
        for c in clips:
            if not c.measures:
                c.measures = mm.measure(c.notes, args.seconds)
                c.match = prompt_match(c.measures, asked_of_text(c.prompt))
    print(f"{len(prompts)} prompts x {args.seeds} seeds x {args.seconds:g} s; real: {len(real)} held-out clips "
          f"({', '.join(f'{s} {sum(c.source == s for c in real)}' for s in sorted({c.source for c in real}))})")
    sums = print_table(groups)
    if args.json:
        per_clip = [{"group": g, "source": c.source, "prompt": c.prompt, "seed": c.seed,
                     "measures": {k: v for k, v in c.measures.items()}, "match": c.match}
                    for g, clips in groups.items() if not g.startswith("real ") for c in clips]
        Path(args.json).write_text(json.dumps(plain({"args": vars(args), "summary": sums, "clips": per_clip}),
                                              indent=1))
    if args.png and real and models:
        both = [c for c in real if c.notes[:, 5].any() and not c.notes[:, 5].all()]  # a band: drums and parts
        ref = (both or real)[0]
        gen0 = next((c for c in groups[models[0]] if c.prompt == ref.prompt), groups[models[0]][0])
        piano_rolls(ref, gen0, args.png, args.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
