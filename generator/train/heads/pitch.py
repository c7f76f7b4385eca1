"""Fitting the pitch head, and the key judge: ``python -m generator.train heads pitch`` (seconds).

Why here: the head (:class:`generator.symbolic.pitch.PitchHead`) runs at generation time; its labels (the
pitch classes of a tokenised work, :func:`pitch_classes`, and the key a caption names, :func:`parse_key`),
the softmax-regression fit, its evaluation, the refit command and the key-finder (:func:`key_of`,
Krumhansl-Kessler profiles, also used by ``bench/quality_pitch.py``) are training and measuring code.
"""

from __future__ import annotations

import re

import numpy as np

from generator.core import gm

from generator.symbolic import pitch as head_module
from generator.symbolic import tokens as tok
from generator.symbolic.pitch import PitchHead
from generator.train.heads import refit

NAMES = ("C", "C sharp", "D", "E flat", "E", "F", "F sharp", "G", "A flat", "A", "B flat", "B")
_SPELLINGS = {"C": 0, "C sharp": 1, "D flat": 1, "D": 2, "D sharp": 3, "E flat": 3, "E": 4, "F": 5,
              "F sharp": 6, "G flat": 6, "G": 7, "G sharp": 8, "A flat": 8, "A": 9, "A sharp": 10, "B flat": 10,
              "B": 11, "C flat": 11}
KEY_IN_TEXT = re.compile(r"\b([A-G](?: flat| sharp)?) (major|minor)\b")
MAJOR, MINOR = gm.KK_MAJOR, gm.KK_MINOR  # Krumhansl-Kessler key profiles (re-exported)


def parse_key(text: str) -> tuple[int, str] | None:
    """(tonic pitch class, "major"|"minor") named in a text, or None."""
    m = KEY_IN_TEXT.search(text)
    return None if m is None else (_SPELLINGS[m.group(1)], m.group(2))


def key_of(profile) -> tuple[int, str]:
    """The key whose Krumhansl-Kessler profile correlates best with a 12-bin pitch-class distribution
    (:func:`generator.core.gm.key_of`; C major for a flat one)."""
    return gm.key_of(profile) or (0, "major")


def pitch_classes(seq) -> np.ndarray:
    """Note-on counts per pitch class [12] of the melodic parts of a token sequence (drums excluded)."""
    seq = np.asarray(seq, np.int64)
    out = np.zeros(12)
    part = 0
    for t in seq[(seq >= tok.PART0) & (seq < tok.OFF0) & ((seq < tok.VEL0) | (seq >= tok.ON0))]:
        if t < tok.VEL0:
            part = int(t) - tok.PART0
        elif part != tok.DRUM_PART:
            out[(int(t) - tok.ON0) % 12] += 1
    return out


def groove_pitch_classes(seq) -> np.ndarray:
    """:func:`pitch_classes` of a groove token sequence (PITCH tokens of every part but the drums)."""
    from generator.groove import tokens as G

    seq = np.asarray(seq, np.int64)
    out = np.zeros(12)
    part = -1
    for t in seq[(seq >= G.PART0) & (seq < G.VEL0)]:
        if t < G.PITCH0:
            part = int(t) - G.PART0
        elif part != G.DRUM_PART:
            out[(int(t) - G.PITCH0) % 12] += 1
    return out


PITCH_CLASSES = {"symbolic": pitch_classes, "groove": groove_pitch_classes}


# ---- fitting ---------------------------------------------------------------------------------
def rows(data, vectors: np.ndarray, classes=pitch_classes) -> tuple[np.ndarray, np.ndarray, list]:
    """(text vectors [M, D], pitch-class distributions [M, 12], caption keys) with one row per
    (work, caption or paraphrase) of the works that play melodic notes."""
    xs, ys, keys = [], [], []
    for i in range(len(data)):
        pcs = classes(data.work(i))
        if pcs.sum() < 8:
            continue
        for c in np.unique(data.caption_ids[i]):
            key = parse_key(data.texts[data.caption_ids[i, 0]])
            xs.append(vectors[c]), ys.append(pcs / pcs.sum()), keys.append(key)
    return np.stack(xs), np.stack(ys).astype(np.float32), keys


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1e-5, steps: int = 1500,
        lr: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Full-batch softmax regression on soft labels (Adam, L2 on the weights) -> (weight [D, 12], bias [12])."""
    import jax
    import jax.numpy as jnp
    import optax
    from tqdm import trange

    xj, yj = jnp.asarray(x), jnp.asarray(y)
    params = {"w": jnp.zeros((x.shape[1], 12)), "b": jnp.log(jnp.clip(yj.mean(0), 1e-4, 1))}
    opt = optax.adam(lr)
    state = opt.init(params)

    def loss(p):
        return optax.softmax_cross_entropy(xj @ p["w"] + p["b"], yj).mean() + l2 * (p["w"] ** 2).sum()

    @jax.jit
    def step(p, s):
        grad = jax.grad(loss)(p)
        upd, s = opt.update(grad, s)
        return optax.apply_updates(p, upd), s

    for _ in trange(steps, desc="fit pitch head", unit="step", leave=False):
        params, state = step(params, state)
    return np.asarray(params["w"], np.float32), np.asarray(params["b"], np.float32)


def evaluate(head: PitchHead, x: np.ndarray, y: np.ndarray, keys: list) -> dict:
    """Cross-entropy of the works' pitch classes under the head (nats; against the training mean as
    the guess) and how often the key of the predicted distribution is the caption's key."""
    p = np.stack([head.probs(v) for v in x])
    ce = float(-(y * np.log(np.maximum(p, 1e-9))).sum(1).mean())
    flat = float(-(y * np.log(np.maximum(y.mean(0), 1e-9))).sum(1).mean())
    named = [(i, k) for i, k in enumerate(keys) if k is not None]
    right = [key_of(p[i]) == k for i, k in named]
    works_own = [key_of(y[i]) == k for i, k in named]  # ceiling: the key-finder on the real notes
    return {"rows": int(len(y)), "cross_entropy": ce, "mean_guess_cross_entropy": flat,
            "key_right": float(np.mean(right)), "key_of_real_notes_right": float(np.mean(works_own))}


def main(argv=None) -> int:
    """``jamgen train heads pitch [options]``: refit the pitch head; returns the exit status."""
    def options(p):
        p.add_argument("--l2", type=float, default=1e-5)
        p.add_argument("--strength", type=float, default=1.0)
        p.add_argument("--family", choices=sorted(PITCH_CLASSES), default="symbolic", help="the token sets' family")

    def fit_head(args, train, held, train_vectors, held_vectors):
        classes = PITCH_CLASSES[args.family]
        xt, yt, kt = rows(train, train_vectors, classes)
        xh, yh, kh = rows(held, held_vectors, classes)
        head = PitchHead(*fit(xt, yt, l2=args.l2), strength=args.strength)
        return head, {"train": evaluate(head, xt, yt, kt), "heldout": evaluate(head, xh, yh, kh), "l2": args.l2}

    return refit(argv, head_module.__doc__, options, fit_head, prog="python -m generator.train heads pitch")


if __name__ == "__main__":
    raise SystemExit(main())
