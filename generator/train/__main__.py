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
         "symbolic": "generator.train.symbolic", "heads": "generator.train.heads"}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in PARTS:
        what = f"unknown part {argv[0]!r}; " if argv and argv[0] not in ("-h", "--help") else ""
        print(f"usage: jamgen train {{{'|'.join(PARTS)}}} [options]  ({what}one of: {', '.join(PARTS)})",
              file=sys.stderr if what else sys.stdout)
        return 2 if what else 0
    module = importlib.import_module(PARTS[argv[0]])
    return module.main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
