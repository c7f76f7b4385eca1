"""Fitting the tempo head, and the tempo judge: ``python -m generator.train heads tempo`` (a second).

Why here: the head (:class:`generator.symbolic.tempo.TempoHead`) runs at generation time; the ridge fit on
the captions' stated BPM (and their number-free forms, :func:`number_free`), its evaluation, the refit
command and the judge of played tempo (:func:`estimate_bpm`, used by ``bench/quality_tempo.py`` and the
tests) are training and measuring code.
"""

from __future__ import annotations

import math
import re

import numpy as np

from generator.symbolic import tempo as head_module
from generator.symbolic import tokens as tok
from generator.symbolic.tempo import TempoHead
from generator.train.heads import refit

BPM_IN_CAPTION = re.compile(r"(\d+) BPM")
NUMBERS = re.compile(r",? ?(?:around )?\d+ (?:BPM|beats per minute)")


# ---- the judge -------------------------------------------------------------------------------
def estimate_bpm(onsets, lo: float = 50.0, hi: float = 240.0, prior: float = 120.0, width: float = 1.0) -> float:
    """Tempo (BPM) of onset times in seconds: the lag of the strongest autocorrelation of a 10 ms
    onset envelope between ``lo`` and ``hi`` BPM, weighted by a log-normal prior (``width`` in
    octaves) so that the beat, not the bar or the subdivision, is usually chosen. NaN when there
    are fewer than 8 onsets."""
    onsets = np.asarray(onsets, np.float64)
    if len(onsets) < 8:
        return float("nan")
    idx = np.round(onsets / 0.01).astype(np.int64)
    env = np.zeros(int(idx.max()) + 1)
    np.add.at(env, idx, 1.0)
    env = np.convolve(env, [0.25, 0.5, 1.0, 0.5, 0.25], "same")
    env -= env.mean()
    n = len(env)
    lags = np.arange(int(6000 / hi), int(6000 / lo) + 1)
    lags = lags[lags < n]
    if len(lags) == 0:
        return float("nan")
    ac = np.array([env[:n - k] @ env[k:] for k in lags])
    bpm = 6000.0 / lags
    return float(bpm[np.argmax(ac * np.exp(-0.5 * (np.log2(bpm / prior) / width) ** 2))])


def onsets_of_tokens(seq) -> np.ndarray:
    """Note-on times (s) of a token sequence."""
    step, out = 0, []
    for t in np.asarray(seq, np.int64):
        if tok.ON0 <= t < tok.OFF0:
            out.append(step)
        elif t >= tok.SHIFT0:
            step += int(t) - tok.SHIFT0 + 1
    return np.asarray(out, np.float64) * tok.STEP_SECONDS


# ---- fitting ---------------------------------------------------------------------------------
def caption_bpm(data) -> np.ndarray:
    """The BPM each work's canonical caption states."""
    return np.asarray([float(BPM_IN_CAPTION.search(data.texts[c]).group(1)) for c in data.caption_ids[:, 0]])


def number_free(text: str) -> str:
    return NUMBERS.sub("", text).strip(" ,;")


def rows(data, vectors: np.ndarray, extra: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(text vectors, log2 BPM, kind) with one row per (work, caption or paraphrase), plus the
    number-free captions' vectors ``extra`` [W, D] when given. kind: 0 caption/paraphrase, 1 number-free."""
    y = np.log2(caption_bpm(data))
    xs, ys, kinds = [], [], []
    for i in range(len(data)):
        for c in np.unique(data.caption_ids[i]):
            xs.append(vectors[c]), ys.append(y[i]), kinds.append(0)
        if extra is not None:
            xs.append(extra[i]), ys.append(y[i]), kinds.append(1)
    return np.stack(xs), np.asarray(ys, np.float32), np.asarray(kinds)


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> tuple[np.ndarray, float]:
    """Closed-form ridge regression (unpenalised bias) -> (weight [D], bias)."""
    mx, my = x.mean(0), y.mean()
    xc = x - mx
    w = np.linalg.solve(xc.T @ xc + l2 * np.eye(x.shape[1]), xc.T @ (y - my))
    return w.astype(np.float32), float(my - mx @ w)


def evaluate(head: TempoHead, x: np.ndarray, y: np.ndarray) -> dict:
    """Errors in octaves of BPM (0.1 octave is about 7 %), against always guessing the median."""
    pred = x @ head.weight + head.bias
    err = np.abs(pred - y)
    base = np.abs(np.median(y) - y)
    return {"rows": int(len(y)), "mae_octaves": float(err.mean()), "median_guess_mae_octaves": float(base.mean()),
            "within_15pct": float((err < math.log2(1.15)).mean()),
            "median_guess_within_15pct": float((base < math.log2(1.15)).mean()),
            "corr": float(np.corrcoef(pred, y)[0, 1])}


def main(argv=None) -> int:
    """``jamgen train heads tempo [options]``: refit the tempo head; returns the exit status."""
    from generator.train.heads.arrangement import embed

    def options(p):
        p.add_argument("--l2", type=float, default=0.3)
        p.add_argument("--strength", type=float, default=1.0)
        p.add_argument("--min-scale", type=float, default=0.6)
        p.add_argument("--max-scale", type=float, default=1.6)

    def fit_head(args, train, held, train_vectors, held_vectors):
        free_t = embed([number_free(train.texts[c]) for c in train.caption_ids[:, 0]])
        free_h = embed([number_free(held.texts[c]) for c in held.caption_ids[:, 0]])
        xt, yt, _ = rows(train, train_vectors, free_t)
        xh, yh, kh = rows(held, held_vectors, free_h)
        native = float(np.median(caption_bpm(train)))
        head = TempoHead(*fit(xt, yt, args.l2), native, args.strength, args.min_scale, args.max_scale)
        return head, {"train": evaluate(head, xt, yt), "heldout": evaluate(head, xh[kh == 0], yh[kh == 0]),
                      "heldout_number_free": evaluate(head, xh[kh == 1], yh[kh == 1]), "l2": args.l2,
                      "native_bpm": native}

    return refit(argv, head_module.__doc__, options, fit_head, prog="python -m generator.train heads tempo")


if __name__ == "__main__":
    raise SystemExit(main())
