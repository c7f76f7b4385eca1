"""Train the symbolic Music Transformer: ``python -m generator.train symbolic --help`` (``jamgen train symbolic``).

The loop is :mod:`generator.train.event_lm`'s; this module names what is symbolic: the presets, the
checkpoint format, training windows that may start at any token behind a ``[BOS, PART, VEL]`` prefix
(:class:`generator.data.symbolic_tokens.Crops`), and the token sets of :mod:`generator.data.symbolic_tokens`.
"""

from __future__ import annotations

from generator.data.symbolic_tokens import Crops
from generator.symbolic import checkpoint
from generator.symbolic.model import PRESETS
from generator.train.event_lm import (  # noqa: F401  (the symbolic trainer's API, used by its evaluation)
    Family, evaluate, heldout_batches, loss_fn, stride_starts, text_vectors)
from generator.train import event_lm


def prepare(train_path, heldout_path, sources, seconds: float) -> None:
    from generator.data import symbolic_tokens as dataset

    dataset.build(heldout_path, "heldout", sources, limit=40, seconds=seconds / 4)
    dataset.build(train_path, "train", sources, seconds=seconds)


FAMILY = Family(name="symbolic", presets=PRESETS, checkpoint=checkpoint, crops=Crops,
                window_starts=stride_starts, prepare=prepare)


def main(argv=None):
    return event_lm.main(argv, FAMILY, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()
