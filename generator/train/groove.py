"""Train the groove model: ``python -m generator.train groove --help`` (``jamgen train groove``).

The loop is :mod:`generator.train.event_lm`'s; this module names what is groove: the presets, the
checkpoint format, training windows that start at a bar line (:class:`generator.data.groove_tokens.BarCrops`:
after ``[BOS]`` the model always sees a bar and its metre before any note), held-out windows at bar lines, and
the token sets of :mod:`generator.data.groove_tokens`. Typical use (resumable; progress bars; curves in the run
directory)::

    python -m generator.data groove --split heldout --seeds 0 1 --workers 2 --out runs/groove/heldout.npz
    python -m generator.data groove --split train --seeds 0 1 2 3 --workers 2 --out runs/groove/train.npz
    python -m generator.train groove --minutes 90            # then: --resume --minutes 180, ...
"""

from __future__ import annotations

import numpy as np

from generator.groove import checkpoint
from generator.groove import tokens as G
from generator.groove.model import PRESETS
from generator.train import event_lm


def bar_starts(seq: np.ndarray, length: int):
    """Held-out windows at the first bar line at least ``length - 1`` tokens after the previous window."""
    starts, last = [0], 0
    for b in np.flatnonzero(seq == G.BAR):
        if b >= last + length - 1:
            starts.append(int(b))
            last = int(b)
    return starts


def crops(data, length: int, seed: int = 0):
    from generator.data.groove_tokens import BarCrops

    return BarCrops(data, length, seed=seed)


def prepare(train_path, heldout_path, sources, seconds: float) -> None:
    from generator.data import groove_tokens

    groove_tokens.build(heldout_path, "heldout", sources, seeds=(0, 1), seconds=seconds / 4)
    groove_tokens.build(train_path, "train", sources, seeds=(0, 1, 2, 3), seconds=seconds)


FAMILY = event_lm.Family(name="groove", presets=PRESETS, checkpoint=checkpoint, crops=crops,
                         window_starts=bar_starts, prepare=prepare)


def main(argv=None):
    return event_lm.main(argv, FAMILY, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()
