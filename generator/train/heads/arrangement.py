"""Fitting the arrangement head: ``python -m generator.train heads arrangement`` (seconds).

Why here: the head (:class:`generator.symbolic.arrangement.Arrangement`) runs at generation time; its labels
(which families a tokenised work plays, :func:`parts_present`), the logistic-regression fit, its evaluation
and the refit command are training code. The fit uses every (caption or paraphrase, work) pair of
``runs/symbolic/train.npz`` plus "solo ..." rewordings of the works that play one family (:func:`solo_texts`) and
genre-led rewordings of every work whose meta names its genre (:func:`genre_texts`).
"""

from __future__ import annotations

import argparse

import numpy as np

from generator.symbolic import arrangement as head_module
from generator.symbolic import tokens as tok
from generator.symbolic.arrangement import Arrangement
from generator.train.heads import refit


def parts_present(seq: np.ndarray) -> np.ndarray:
    """bool [16]: which parts a token sequence plays (a part plays when its PART token appears and a
    NOTE_ON follows before the next PART token)."""
    seq = np.asarray(seq)
    out = np.zeros(tok.N_PARTS, bool)
    part = None
    for t in seq[(seq >= tok.PART0) & (seq < tok.OFF0) & ((seq < tok.VEL0) | (seq >= tok.ON0))]:
        if t < tok.VEL0:
            part = int(t) - tok.PART0
        elif part is not None:
            out[part] = True
    return out


def groove_parts_present(seq: np.ndarray) -> np.ndarray:
    """bool [16]: which parts a groove token sequence plays (a PART token followed by a PITCH)."""
    from generator.groove import tokens as G

    seq = np.asarray(seq)
    out = np.zeros(G.N_PARTS, bool)
    is_part = (seq >= G.PART0) & (seq < G.PART0 + G.N_PARTS)
    follows = np.zeros_like(is_part)
    follows[:-1] = (seq[1:] >= G.PITCH0) & (seq[1:] < G.PITCH0 + 128)
    out[np.unique(seq[is_part & follows] - G.PART0)] = True
    return out


PRESENT = {"symbolic": parts_present, "groove": groove_parts_present}


def pairs(data, vectors: np.ndarray, present=parts_present) -> tuple[np.ndarray, np.ndarray]:
    """(text vectors [M, D], labels [M, 16]) with one row per (work, caption or paraphrase)."""
    labels = np.stack([present(data.work(i)) for i in range(len(data))])
    rows = [(vectors[c], labels[i]) for i in range(len(data)) for c in np.unique(data.caption_ids[i])]
    return np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows]).astype(np.float32)


SOLO_FORMS = ("solo {}", "a solo performance: {}")


def solo_texts(data, present=parts_present) -> tuple[list[str], np.ndarray]:
    """Extra (text, labels) rows that teach the word "solo": the training captions list what plays but
    never say "solo", so "solo piano" read like "piano" and let a band join in. Every work that
    plays exactly one family gets its caption and first paraphrase rephrased as a solo."""
    texts, labels = [], []
    for i in range(len(data)):
        lab = present(data.work(i))
        if lab.sum() != 1:
            continue
        for form, c in zip(SOLO_FORMS, data.caption_ids[i, :2]):
            texts.append(form.format(data.texts[c]))
            labels.append(lab)
    return texts, np.asarray(labels, np.float32).reshape(-1, tok.N_PARTS)


GENRE_FORMS = ("{genre}",)


def genre_texts(data, present=parts_present) -> tuple[list[str], np.ndarray]:
    """Extra (text, labels) rows that teach what a genre word alone implies. A musician types "heavy metal" or
    "reggae with offbeat guitar chords" and expects that style's band; the training captions list every part
    and say "with drums", so the genre word carried no weight of its own: the head allowed "heavy metal" the
    drums alone and "reggae with offbeat guitar chords" the guitar alone. Every work whose meta names its genre
    gets the genre alone (:data:`GENRE_FORMS`) labelled with everything it plays, so a genre rendered with and
    without drums is learnt as a probability. Measured and left out: the genre with its tempo word, or with one
    of its instruments, tied tempo and instrument words to whole bands ("slow sad cello" then allowed drums at
    p 0.61) for no gain on the style judge."""
    texts, labels = [], []
    for i in range(len(data)):
        meta = data.metas[i]  # a TokenSet holds one (maybe empty) meta per work
        if not meta.get("genre"):
            continue
        lab = present(data.work(i))
        for form in GENRE_FORMS:
            texts.append(form.format(genre=meta["genre"]))
            labels.append(lab)
    return texts, np.asarray(labels, np.float32).reshape(-1, tok.N_PARTS)


def embed(texts: list[str]) -> np.ndarray:
    from tqdm import tqdm

    from generator.core.text_encoder import TextEncoder

    enc = TextEncoder()
    out = np.zeros((len(texts), enc.dim), np.float32)
    for i in tqdm(range(0, len(texts), 64), desc="embed texts", unit="batch", leave=False):
        out[i:i + 64] = enc(texts[i:i + 64])
    return out


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1e-6, steps: int = 1500, lr: float = 0.05,
        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Full-batch logistic regression (Adam, L2 on the weights) -> (weight [D, 16], bias [16])."""
    import jax
    import jax.numpy as jnp
    import optax
    from tqdm import trange

    xj, yj = jnp.asarray(x), jnp.asarray(y)
    params = {"w": jnp.zeros((x.shape[1], y.shape[1])),
              "b": jnp.log(jnp.clip(yj.mean(0), 1e-3, 1 - 1e-3) / jnp.clip(1 - yj.mean(0), 1e-3, 1))}
    opt = optax.adam(lr)
    state = opt.init(params)

    def loss(p):
        z = xj @ p["w"] + p["b"]
        return optax.sigmoid_binary_cross_entropy(z, yj).mean() + l2 * (p["w"] ** 2).sum()

    @jax.jit
    def step(p, s):
        value, grad = jax.value_and_grad(loss)(p)
        upd, s = opt.update(grad, s)
        return optax.apply_updates(p, upd), s, value

    for _ in trange(steps, desc="fit arrangement", unit="step", leave=False):
        params, state, _ = step(params, state)
    return np.asarray(params["w"], np.float32), np.asarray(params["b"], np.float32)


def evaluate(head: Arrangement, x: np.ndarray, y: np.ndarray) -> dict:
    """Held-out accuracy of 'plays / does not play' per family, and of the allowed set as a whole."""
    p = 1.0 / (1.0 + np.exp(-(x @ head.weight + head.bias)))
    pred = p >= 0.5
    truth = y > 0.5
    base = np.maximum(truth.mean(0), 1 - truth.mean(0))  # always answering the majority
    allowed = p >= head.floor
    allowed[np.arange(len(p)), p.argmax(1)] = True
    return {"rows": int(len(y)), "accuracy": float((pred == truth).mean()),
            "majority_accuracy": float(np.mean(base)),
            "drums_accuracy": float((pred[:, tok.DRUM_PART] == truth[:, tok.DRUM_PART]).mean()),
            "drums_majority": float(base[tok.DRUM_PART]),
            "playing_parts_kept": float(allowed[truth].mean()),  # recall of families that play
            "silent_parts_banned": float((~allowed[~truth]).mean())}


def main(argv=None) -> int:
    """``jamgen train heads arrangement [options]``: refit the arrangement head; returns the exit status."""
    def options(p):
        p.add_argument("--l2", type=float, default=1e-6)
        p.add_argument("--floor", type=float, default=0.35)
        p.add_argument("--strength", type=float, default=2.0)
        p.add_argument("--family", choices=sorted(PRESENT), default="symbolic", help="the token sets' family")
        p.add_argument("--genre-rows", action=argparse.BooleanOptionalAction, default=True,
                       help="also fit genre-led rewordings of the training works (genre_texts)")

    def fit_head(args, train, held, train_vectors, held_vectors):
        present = PRESENT[args.family]
        xt, yt = pairs(train, train_vectors, present)
        solo, ys = solo_texts(train, present)
        if solo:
            xt, yt = np.concatenate([xt, embed(solo)]), np.concatenate([yt, ys])
        genre, yg = genre_texts(train, present) if args.genre_rows else ([], None)
        if genre:
            xt, yt = np.concatenate([xt, embed(genre)]), np.concatenate([yt, yg])
        xh, yh = pairs(held, held_vectors, present)
        held_genre, yhg = genre_texts(held, present)
        head = Arrangement(*fit(xt, yt, l2=args.l2), args.floor, args.strength)
        numbers = {"train": evaluate(head, xt, yt), "heldout": evaluate(head, xh, yh), "solo_rows": len(solo),
                   "genre_rows": len(genre), "l2": args.l2}
        if held_genre:  # held-out works' genre-led prompts: what a user who names a style, not a band, gets
            numbers["heldout_genre_led"] = evaluate(head, embed(held_genre), yhg)
        return head, numbers

    return refit(argv, head_module.__doc__, options, fit_head, prog="python -m generator.train heads arrangement")


if __name__ == "__main__":
    raise SystemExit(main())
