"""Fitting the symbolic generator's prompt heads: ``python -m generator.train heads arrangement|tempo|pitch``.

Why here and not beside the heads: the heads themselves (:mod:`generator.symbolic.arrangement`,
:mod:`~generator.symbolic.tempo`, :mod:`~generator.symbolic.pitch`) run at generation time, while fitting
them needs the tokenised works (:mod:`generator.data.symbolic_tokens`) and the symbolic trainer's cached
caption vectors (:mod:`generator.train.symbolic`), which the run-time generator never imports. One module
per head holds its labels, fit, evaluation (and judge) and refit command; this package holds the refit
command they share (:func:`refit`) and the dispatcher (:func:`main`, also ``python -m generator.train.heads``).
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
from typing import Callable

HEADS = ("arrangement", "tempo", "pitch")


def refit(argv, description: str, options: Callable[[argparse.ArgumentParser], None], fit: Callable,
          prog: str | None = None) -> int:
    """The refit command of a head: ``--data``/``--heldout`` token sets (with their cached caption
    vectors), ``--out`` checkpoint and ``--dry-run``, plus the head's own ``options``.
    ``fit(args, train, held, train_vectors, held_vectors) -> (head, numbers)``; the numbers are
    printed and, unless ``--dry-run``, saved with the head.

    Args:
        argv: the command's arguments (None: ``sys.argv[1:]``).
        description: the ``--help`` text (the head module's docstring).
        options: adds the head's own flags to the parser.
        fit: fits and evaluates the head, as above.
        prog: the command's name in ``--help`` (None: argparse's default).

    Returns:
        The exit status, 0.
    """
    from generator.data.symbolic_tokens import TokenSet
    from generator.train.symbolic import text_vectors

    p = argparse.ArgumentParser(prog=prog, description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="runs/symbolic/train.npz")
    p.add_argument("--heldout", default="runs/symbolic/heldout.npz")
    p.add_argument("--out", default="generator/checkpoints/symbolic", help="symbolic checkpoint directory")
    p.add_argument("--dry-run", action="store_true", help="fit and evaluate, do not write")
    options(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    train, held = TokenSet(args.data), TokenSet(args.heldout)
    head, result = fit(args, train, held, text_vectors(train, pathlib.Path(args.data).with_suffix(".vectors.npy")),
                       text_vectors(held, pathlib.Path(args.heldout).with_suffix(".vectors.npy")))
    result = {**result, "works": {"train": len(train), "heldout": len(held)}}
    print(json.dumps(result, indent=2))
    if not args.dry_run:
        print(f"wrote {head.save(args.out, result)}")
    return 0


def main(argv=None) -> int:
    """``heads <head> [options]``: refit one head (``heads <head> -h`` lists its options).

    Args:
        argv: the arguments after ``heads`` (None: ``sys.argv[1:]``).

    Returns:
        The exit status: the head's, 0 for ``-h`` (or no head), 2 for an unknown head.
    """
    from generator.train.__main__ import dispatch

    return dispatch(argv, {h: f"generator.train.heads.{h}" for h in HEADS}, "jamgen train heads", "head")
