"""``python -m generator.train codec|style|lm|symbolic|heads ...`` (also ``jamgen train ...``): one entry point
per model part.

Why one dispatcher: the trainers share conventions (a run directory that resumes, ``metrics.jsonl``,
``curve.png``, progress bars, ``--minutes`` wall-time budgets), and users should find them under one command:
the audio model's three parts (``codec``, ``style``, ``lm``), the symbolic Music Transformer (``symbolic``,
:mod:`generator.train.symbolic`) and the symbolic model's prompt heads (``heads arrangement|tempo|pitch``,
:mod:`generator.train.heads`). Each part's flags: ``python -m generator.train <part> -h``.
"""

from __future__ import annotations

import importlib
import sys

PARTS = {"codec": "generator.train.codec", "style": "generator.train.style", "lm": "generator.train.lm",
         "symbolic": "generator.train.symbolic", "groove": "generator.train.groove", "heads": "generator.train.heads"}


def dispatch(argv, choices: dict[str, str], usage: str, noun: str) -> int:
    """Run ``choices[argv[0]].main(argv[1:])``; print ``usage`` for ``-h``/no choice (exit 0) or an
    unknown one (exit 2, one line on stderr)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in choices:
        what = f"unknown {noun} {argv[0]!r}; " if argv and argv[0] not in ("-h", "--help") else ""
        print(f"usage: {usage} {{{'|'.join(choices)}}} [options]  ({what}one of: {', '.join(choices)})",
              file=sys.stderr if what else sys.stdout)
        return 2 if what else 0
    return importlib.import_module(choices[argv[0]]).main(argv[1:])


def main(argv=None) -> int:
    return dispatch(argv, PARTS, "jamgen train", "part")


if __name__ == "__main__":
    raise SystemExit(main())
