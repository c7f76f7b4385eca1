"""Form: bars that come back. When a new bar begins, the groove stream may play an earlier bar again, note for note.

Why: real grooves repeat their bars (measured with bench/musicality.py on held-out music: 34 % of bars recur
within a 20 s clip, 71 % of mma grooves'), but a sampled stream almost never reproduces a bar of ~100 tokens
exactly, even when the model has learned the pattern: with 100 draws at temperature 1, one differing token is
enough to break the repeat. So the form is decided here, as a drummer or a loop-based producer decides it, and
the model continues *from* the repeated bar: the bar is fed to it as if it had sampled it (its context holds the
repeat), and whatever it adds afterwards in the bar is its own variation.

The rule, in four-bar phrases counted from the stream's first bar (a common AABA-like groove form)::

    phrase bar 1   may repeat the bar four bars back (the phrase comes back)
    phrase bar 2   may repeat the bar before it
    phrase bar 3   may repeat phrase bar 1
    phrase bar 4   is always new (the turnaround, the fill)

each with probability ``repeat`` (the live control of that name, read when the bar begins; drawn from a seeded
generator, so a stream is reproducible), and only when the source bar has notes and was played in the same
*context* (prompt and held chord): a bar from before a chord or prompt change never comes back after it.
"""

from __future__ import annotations

import collections

import numpy as np

from generator.groove import tokens as G

SOURCE_BACK = {0: 4, 1: 1, 2: 2}  # phrase bar (0-based) -> how many bars back its source is; bar 3: none


class Form:
    """The recent bars' tokens (from each bar's TS on) and the decision which earlier bar a new one repeats.

    Args:
      seed: the decisions' random generator.
    """

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(int(seed) & 0x7FFFFFFF)
        # (BAR index, tokens, context the bar was begun in)
        self.bars: collections.deque[tuple[int, list[int], object]] = collections.deque(maxlen=8)
        self.count = 0  # bars begun since the stream started (recorded ones)
        self.repeats = 0

    def record(self, index: int, token: int, context: object = None) -> None:
        """Token ``token`` (global index ``index``) joined the stream, under ``context`` (anything comparable)."""
        if G.KIND[token] == G.K_BAR:
            self.bars.append((index, [], context))
            self.count += 1
        elif self.bars:
            self.bars[-1][1].append(int(token))

    def truncate(self, cut: int) -> None:
        """Forget the tokens from global index ``cut`` on (a rewind took them back)."""
        while self.bars and self.bars[-1][0] >= cut:
            self.bars.pop()
            self.count -= 1
        if self.bars:
            start, tokens, _ = self.bars[-1]
            del tokens[max(0, cut - start - 1):]

    def choose(self, repeat: float) -> list[int] | None:
        """For the bar just begun (its BAR the last recorded token): the tokens of the bar it repeats, or None;
        ``repeat`` is the probability that a bar with a source repeats it (0 = never, 1 = always); the source
        must have been begun in the new bar's context."""
        back = SOURCE_BACK.get((self.count - 1) % 4)
        if back is None or self.count - 1 < back or self.rng.random() >= repeat:
            return None
        if back >= len(self.bars):
            return None
        _, source, context = self.bars[-1 - back]
        if context != self.bars[-1][2]:
            return None
        if not any(G.KIND[t] == G.K_VEL for t in source):  # a bar without notes
            return None
        self.repeats += 1
        return list(source)
