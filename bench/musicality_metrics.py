"""Musicality measures of a clip of notes: ONE code path for real music and for generated music.

Why: issue 15 found that ``symbolic`` names the right instruments and keys but has no pulse, and a new
beat-grid family (``generator/groove/``) is meant to fix that. Whether it does is decided by comparing
generated clips with real clips of the same styles on the same measures, computed by the same function
(:func:`measure`) from nothing but notes, so no measure can favour one source by reading something the
other lacks. Each measure is checked against a case it must fail (``tests/test_musicality_metrics.py``):
metronomic onsets against the same notes at random times, swing against straight, repeated bars
against different bars.

A note is ``(onset s, duration s, pitch, velocity, part, is_drum)``; ``part`` is a jamgen part
(:mod:`generator.core.gm`: one per GM family 0..14, 15 = drums), which is what the instrument-family
measure reads. Times are on 10 ms frames (the symbolic tokens' step), fine enough for any grid here.

The measures (keys of :func:`measure`'s dict; NaN where a clip has too few notes to say):

- ``pulse_clarity``: the normalised autocorrelation of the onset-strength envelope at its best lag
  between 0.25 and 1.5 s (40-240 BPM). The envelope is the sum of note-on velocities per 10 ms frame,
  smoothed by a 20 ms Gaussian (onsets a few ms apart still line up), mean removed; the autocorrelation
  is unbiased (divided by the overlap) and divided by its lag-0 value, so a metronome gives ~1 and
  random onsets ~0. This is the "maximum of the autocorrelation" pulse-clarity descriptor of Lartillot,
  Eerola, Toiviainen & Fornari, "Multi-feature modeling of pulse clarity", ISMIR 2008 (MIRtoolbox
  ``mirpulseclarity``), computed on symbolic onsets instead of an audio onset curve.
- ``tempo_bpm``: the beat: the autocorrelation lag weighted by a log-Gaussian tempo prior (centre 120
  BPM, one octave), so that the beat and not the bar or the subdivision wins (Ellis, "Beat tracking by
  dynamic programming", JNMR 2007), refined below a frame by the grid fit.
- ``grid_kappa``, ``grid_triplet``: how well onsets sit on a metrical grid, chance-corrected like
  Cohen's kappa (Cohen 1960): kappa = (p_o - p_e) / (1 - p_e), where p_o is the fraction of distinct
  onset times within 1/8 of a grid step of the grid and p_e = 1/4 the fraction a random onset would hit.
  The grid's step and phase come from the beat: the step is searched within +-3 % of beat/4 (16th
  grid) or beat/3 (8th-note triplet grid) for the largest mean resultant length of the onsets' phases
  (the Rayleigh statistic of circular statistics), and the phase is that resultant's angle, so a
  tempo estimate one frame off does not drift off the grid over 20 s. The prior may pick half the real
  tempo (fast jazz), whose 16th grid misses every other 16th: the grids of the half beat replace those of
  the detected one when they fit better by more than 0.1 kappa (then ``tempo_bpm`` doubles too; random
  onsets seldom clear that margin). ``grid_kappa_16th`` and ``grid_kappa_triplet`` are the two grids at
  the beat kept, ``grid_kappa`` the better (``grid_triplet`` 1.0 when the triplet grid won, as swing
  does); 1 = every onset on the grid, 0 = chance.
- ``drum_pulse_clarity``: ``pulse_clarity`` of the drum onsets alone.
- ``drum_pattern_consistency``: drum onsets quantised to the grid, per bar (3 or 4 beats, whichever lag
  autocorrelates better), as sets of (grid slot, drum pitch); the mean over bars of each bar's best
  Jaccard similarity with another bar. A groove repeats its bar: ~1. Like the "grooving pattern
  similarity" of Wu & Yang, "The Jazz Transformer on the front line", ISMIR 2020, with the drum sound
  in the pattern and the best match instead of the mean (a fill bar should not lower every other bar).
- ``bar_recurrence``: the share of non-empty bars whose quantised (slot, pitch, drum) set has a Jaccard
  similarity >= 0.8 with another bar of the clip (one stray or missing note in a ten-note bar still
  recurs): do the notes come back, as riffs, grooves and repeated phrases do (the self-similarity
  behind Foote's 2000 similarity matrix and Wu & Yang's structureness indicator).
- ``long_note_share``, ``longest_note_s``, ``median_note_s``: of the melodic notes (drum lengths are
  arbitrary in MIDI), the share of note time (sum of durations, cut at the clip end) in notes longer
  than 4 s, the longest, and the median. Real parts rarely hold a note 4 s; a model whose note-offs go
  missing holds them until a guard ends them.
- ``polyphony``: the median number of melodic notes sounding at once over the frames where one sounds
  (the "polyphony" of Mogren's C-RNN-GAN, 2016, and Dong et al.'s MuseGAN, 2018, per frame).
- ``scale_consistency``: the largest fraction of melodic note-ons whose pitch class lies in one of the
  24 major and harmonic-minor scales (Mogren 2016's "scale consistency"; harmonic minor so that the
  raised leading tone of minor-key music is in its scale; 24 distinct seven-note sets).
- ``key``: ``(tonic pitch class, "major"|"minor")`` by the Krumhansl-Schmuckler key finder: the key
  whose Krumhansl-Kessler (1982) profile correlates best with the melodic note-on pitch-class counts
  (:func:`generator.core.gm.key_of`, which imports only numpy).
- ``families``: the GM families (names of :data:`generator.core.gm.FAMILY_NAMES`, plus ``"drums"``)
  that play a note; :func:`family_match` turns them and a caption's into precision and recall.
- ``silence_share``: the share of the clip where nothing sounds (a drum hit counts 100 ms, as the
  symbolic model plays it, since a drum note's MIDI length means nothing).
- ``notes_per_s``: note-ons per second, for context (a pulse measure means little on three notes).

Numpy only, and milliseconds per clip.
"""

from __future__ import annotations

import math

import numpy as np

from generator.core import gm

FRAME = 0.01  # s
SMOOTH_SIGMA = 0.02  # s, the envelope's Gaussian
MIN_LAG, MAX_LAG = 0.25, 1.5  # s: 240..40 BPM
PRIOR_BPM, PRIOR_OCTAVES = 120.0, 1.0
GRID_TOLERANCE = 1.0 / 8  # of a grid step, each side: p_e = 1/4
GRID_SEARCH = 0.03  # +- relative step search
GRID_SEARCH_STEPS = 241
RECUR_JACCARD = 0.8
DOUBLE_MARGIN = 0.1  # the half beat replaces the detected one only when its grid fits clearly better
METER_MARGIN = 0.05  # 3 beats to the bar only when that lag autocorrelates clearly better
LONG_NOTE_S = 4.0
DRUM_SOUND_S = 0.1
MIN_ONSETS = 8
# Krumhansl-Kessler probe-tone profiles, C major and C minor (as generator.train.heads.pitch).
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
HARMONIC_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 11)
SCALES = np.array([[(pc - t) % 12 in s for pc in range(12)] for s in (MAJOR_SCALE, HARMONIC_MINOR_SCALE)
                   for t in range(12)], bool)  # [24, 12]
GRIDS = (("16th", 4), ("triplet", 3))


def as_notes(notes) -> np.ndarray:
    """Notes (a list of 6-tuples or an array) -> float array [N, 6] sorted by onset."""
    a = np.asarray(list(notes) if not isinstance(notes, np.ndarray) else notes, np.float64).reshape(-1, 6)
    return a[np.argsort(a[:, 0], kind="stable")]


# ---- pulse ------------------------------------------------------------------------------------
def onset_envelope(onsets, weights, seconds: float) -> np.ndarray:
    """Onset strength per 10 ms frame: summed ``weights`` of the onsets, Gaussian-smoothed (20 ms)."""
    n = max(1, int(math.ceil(seconds / FRAME)))
    env = np.zeros(n)
    idx = np.clip(np.round(np.asarray(onsets) / FRAME).astype(np.int64), 0, n - 1)
    np.add.at(env, idx, weights)
    half = int(4 * SMOOTH_SIGMA / FRAME)
    k = np.exp(-0.5 * (np.arange(-half, half + 1) * FRAME / SMOOTH_SIGMA) ** 2)
    return np.convolve(env, k / k.sum(), "same")


def autocorrelation(env: np.ndarray) -> np.ndarray:
    """Unbiased autocorrelation of the mean-removed envelope, 1 at lag 0 (all zeros for a flat one)."""
    e = env - env.mean()
    n = len(e)
    f = np.fft.rfft(e, 2 * n)
    ac = np.fft.irfft(f * np.conj(f), 2 * n)[:n] / (n - np.arange(n))
    return ac / ac[0] if ac[0] > 0 else np.zeros(n)


def pulse(onsets, weights, seconds: float) -> tuple[float, float, np.ndarray]:
    """(pulse clarity, beat period s from the prior-weighted lag, autocorrelation); NaNs under 8 onsets."""
    onsets = np.asarray(onsets, np.float64)
    if len(onsets) < MIN_ONSETS:
        return float("nan"), float("nan"), np.zeros(0)
    ac = autocorrelation(onset_envelope(onsets, weights, seconds))
    lo, hi = int(round(MIN_LAG / FRAME)), min(int(round(MAX_LAG / FRAME)), len(ac) - 2)
    if hi <= lo:
        return float("nan"), float("nan"), ac
    lags = np.arange(lo, hi + 1)
    r = ac[lags]
    bpm = 60.0 / (lags * FRAME)
    k = int(lags[np.argmax(r * np.exp(-0.5 * (np.log2(bpm / PRIOR_BPM) / PRIOR_OCTAVES) ** 2))])
    a, b, c = ac[k - 1], ac[k], ac[k + 1]  # parabolic peak: below one frame
    den = a - 2 * b + c
    shift = 0.5 * (a - c) / den if den < 0 else 0.0
    return float(max(r.max(), 0.0)), (k + float(np.clip(shift, -0.5, 0.5))) * FRAME, ac


# ---- grid ----------------------------------------------------------------------------------------
def grid_fit(times, beat: float, division: int) -> tuple[float, float, float]:
    """(kappa, step s, phase s) of the grid of ``beat / division`` that best fits ``times``.

    The step is searched within +-3 % for the largest mean resultant length of the onset phases; the
    phase is that resultant's angle. kappa = (p_o - 1/4) / (3/4), p_o = share within 1/8 step."""
    times = np.asarray(times, np.float64)
    steps = beat / division * (1.0 + np.linspace(-GRID_SEARCH, GRID_SEARCH, GRID_SEARCH_STEPS))
    z = np.exp(2j * np.pi * times[None, :] / steps[:, None]).mean(axis=1)
    best = int(np.argmax(np.abs(z)))
    step = float(steps[best])
    phase = (np.angle(z[best]) / (2 * np.pi)) % 1.0 * step
    d = ((times - phase) / step + 0.5) % 1.0 - 0.5
    p_o = float(np.mean(np.abs(d) <= GRID_TOLERANCE))
    p_e = 2 * GRID_TOLERANCE
    return (p_o - p_e) / (1 - p_e), step, float(phase)


def bar_sets(notes: np.ndarray, seconds: float, step: float, phase: float, slots: int,
             drums_only: bool = False) -> list[frozenset]:
    """Per whole bar of ``slots`` grid steps starting at ``phase``: the set of (slot, pitch, is_drum)
    of its (drum) notes' onsets rounded to the grid; empty bars are left out."""
    sel = notes[notes[:, 5] > 0] if drums_only else notes
    q = np.round((sel[:, 0] - phase) / step).astype(np.int64)
    n_bars = int((seconds - phase) // (step * slots))
    out = []
    for b in range(n_bars):
        m = (q >= b * slots) & (q < (b + 1) * slots)
        if m.any():
            out.append(frozenset(zip((q[m] - b * slots).tolist(), sel[m, 2].astype(int).tolist(),
                                     sel[m, 5].astype(int).tolist())))
    return out


def best_jaccard(bars: list[frozenset]) -> np.ndarray:
    """Each bar's largest Jaccard similarity with another bar (empty for fewer than two bars)."""
    if len(bars) < 2:
        return np.zeros(0)
    best = np.zeros(len(bars))
    for i, a in enumerate(bars):
        for j in range(i + 1, len(bars)):
            b = bars[j]
            s = len(a & b) / len(a | b)
            best[i], best[j] = max(best[i], s), max(best[j], s)
    return best


# ---- pitch -------------------------------------------------------------------------------------------
def scale_consistency(pc_counts) -> float:
    """The largest share of the counts inside one of the 24 major / harmonic-minor scales."""
    pc = np.asarray(pc_counts, np.float64)
    return float((SCALES @ pc).max() / pc.sum()) if pc.sum() > 0 else float("nan")


def family_match(present, asked) -> tuple[float, float]:
    """(precision, recall) of the families played against those asked for; NaN where undefined."""
    present, asked = set(present), set(asked)
    hit = len(present & asked)
    return (hit / len(present) if present else float("nan"), hit / len(asked) if asked else float("nan"))


# ---- the one entry point ------------------------------------------------------------------------
def sounding_counts(notes: np.ndarray, seconds: float) -> np.ndarray:
    """Notes sounding per 10 ms frame (each note from its onset frame up to its end frame)."""
    n = max(1, int(math.ceil(seconds / FRAME)))
    diff = np.zeros(n + 1)
    s = np.clip(np.round(notes[:, 0] / FRAME).astype(np.int64), 0, n)
    e = np.clip(np.round((notes[:, 0] + notes[:, 1]) / FRAME).astype(np.int64), 0, n)
    e = np.maximum(e, np.minimum(s + 1, n))
    np.add.at(diff, s, 1)
    np.add.at(diff, e, -1)
    return np.cumsum(diff)[:n]


def measure(notes, seconds: float) -> dict:
    """Every measure of the module docstring for the notes of one clip of ``seconds``."""
    a = as_notes(notes)
    a = a[(a[:, 0] >= 0) & (a[:, 0] < seconds)]
    a[:, 1] = np.minimum(np.maximum(a[:, 1], 0.0), seconds - a[:, 0])
    drum = a[:, 5] > 0
    mel, drm = a[~drum], a[drum]
    nan = float("nan")
    out: dict = {"notes_per_s": len(a) / seconds}
    # pulse and tempo
    clarity, beat, ac = pulse(a[:, 0], a[:, 3] / 127.0, seconds)
    out["pulse_clarity"] = clarity
    out["drum_pulse_clarity"] = pulse(drm[:, 0], drm[:, 3] / 127.0, seconds)[0]
    out.update(tempo_bpm=nan, grid_kappa=nan, grid_kappa_16th=nan, grid_kappa_triplet=nan, grid_triplet=nan,
               drum_pattern_consistency=nan, bar_recurrence=nan, beats_per_bar=nan)
    if not math.isnan(beat):
        times = np.unique(np.round(a[:, 0] / FRAME)) * FRAME  # a chord is one attack
        fits = [[(grid_fit(times, b, div), name, div) for name, div in GRIDS] for b in (beat, beat / 2)]
        best = [max(f, key=lambda g: g[0][0]) for f in fits]  # ties: the 16th grid
        fits = fits[1] if best[1][0][0] > best[0][0][0] + DOUBLE_MARGIN else fits[0]
        for (k, _, _), name, _ in fits:
            out[f"grid_kappa_{name}"] = k
        (kappa, step, phase), name, div = max(fits, key=lambda g: g[0][0])
        beat = step * div
        lag = lambda m: float(np.interp(m * beat / FRAME, np.arange(len(ac)), ac))  # noqa: E731
        beats = 3 if lag(3) > lag(4) + METER_MARGIN else 4
        out.update(tempo_bpm=60.0 / beat, grid_kappa=kappa, grid_triplet=float(name == "triplet"),
                   beats_per_bar=float(beats))
        bars = bar_sets(a, seconds, step, phase, beats * div)
        if len(bars) >= 2:
            out["bar_recurrence"] = float(np.mean(best_jaccard(bars) >= RECUR_JACCARD))
        drum_bars = bar_sets(a, seconds, step, phase, beats * div, drums_only=True)
        if len(drum_bars) >= 2:
            out["drum_pattern_consistency"] = float(best_jaccard(drum_bars).mean())
    # note lengths and polyphony (melodic notes)
    if len(mel):
        d = mel[:, 1]
        out.update(long_note_share=float(d[d > LONG_NOTE_S].sum() / max(d.sum(), 1e-9)), longest_note_s=float(d.max()),
                   median_note_s=float(np.median(d)))
        counts = sounding_counts(mel, seconds)
        out["polyphony"] = float(np.median(counts[counts > 0])) if (counts > 0).any() else nan
        pc = np.bincount(mel[:, 2].astype(np.int64) % 12, minlength=12).astype(np.float64)
        out["scale_consistency"] = scale_consistency(pc)
        out["key"] = gm.key_of(pc)
    else:
        out.update(long_note_share=nan, longest_note_s=nan, median_note_s=nan, polyphony=nan,
                   scale_consistency=nan, key=None)
    # what sounds at all
    fams = {gm.FAMILY_NAMES[int(p)] for p in np.unique(mel[:, 4]) if 0 <= p < len(gm.FAMILY_NAMES)}
    out["families"] = sorted(fams | ({"drums"} if len(drm) else set()))
    sound = np.concatenate([mel, np.column_stack([drm[:, 0], np.full(len(drm), DRUM_SOUND_S), drm[:, 2:]])])
    out["silence_share"] = float(np.mean(sounding_counts(sound, seconds) == 0)) if len(sound) else 1.0
    return out


def random_times(notes, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """The "random" baseline: the same notes (lengths, pitches, velocities, parts) at uniform random onsets."""
    a = as_notes(notes).copy()
    a[:, 0] = rng.uniform(0.0, seconds, len(a))
    return as_notes(a)
