"""The tokens a groove stream has sampled ahead of the play position, and how to take back the ones not yet heard.

Why: a performer must hear a knob within ~150 ms, but the model samples notes in bursts (a downbeat where the
drums, the bass and a chord start together costs several chunks), so tokens are sampled ahead of the play
position. When a control changes, every note that has not started sounding yet is dropped and sampled again
under the new controls, from exactly the point where the audio already rendered ends. Notes already sounding
keep their note-offs, so nothing hangs and nothing heard is taken back.

How: the sampler's state is a pytree of immutable arrays (the sampler does not donate it), so a *snapshot* at
every chunk boundary costs a reference, not a copy. The timeline records every token with the grid tick the
stream had reached after it (monotone: positions only move forward). To re-sample from grid tick ``cut``:

1. the cut index ``c`` is the first token that moved the stream to a tick >= ``cut`` (a ``POS`` or ``BAR``);
   every note completed before ``c`` starts before ``cut`` (it may already sound), every note from ``c`` on
   starts at or after it (none has sounded);
2. the sampler restarts from the last snapshot at or before ``c`` and *replays* the tokens between the
   snapshot and ``c`` (forced, not sampled: the same notes, already scheduled, are not scheduled again);
3. from ``c`` on it samples freely, with a floor on positions in the cut's bar so no new note lands in the
   past (see :func:`generator.groove.model.sample_chunk`).

Memory: snapshots before the play position are pruned after every block; the rest cover the lookahead only
(a KV cache is ~6 MB for the shipped model; ~0.5 s of lookahead is a handful of chunks).
"""

from __future__ import annotations

import bisect
import collections
import copy
import dataclasses

from generator.groove import tokens as G


@dataclasses.dataclass
class Snapshot:
    """The sampler and the decoder just before token ``index`` (a chunk boundary)."""

    index: int
    model: dict
    decoder: G.Decoder


@dataclasses.dataclass
class Rewind:
    """Where to restart: the snapshot's sampler state and decoder (already fed the replayed tokens), the
    tokens to replay through the sampler, the cut index and the position floor in the cut's bar."""

    model: dict
    decoder: G.Decoder
    replay: list[int]
    cut: int
    floor: int


class Timeline:
    """Tokens by global index (from :attr:`base`), the tick reached after each, snapshots at chunk starts."""

    def __init__(self):
        self.base = 0
        self.tokens: list[int] = []
        self.ticks: list[int] = []  # the decoder's tick after each token: non-decreasing
        self.snaps: collections.deque[Snapshot] = collections.deque()

    @property
    def end(self) -> int:
        """Global index of the next token."""
        return self.base + len(self.tokens)

    def snapshot(self, model: dict, decoder: G.Decoder) -> None:
        """Remember the state before token :attr:`end` (replaces one already taken at the same index)."""
        if self.snaps and self.snaps[-1].index == self.end:
            self.snaps.pop()
        self.snaps.append(Snapshot(self.end, model, copy.copy(decoder)))

    def append(self, token: int, tick: int) -> None:
        self.tokens.append(int(token))
        self.ticks.append(int(tick))

    def cut_index(self, cut_tick: float) -> int:
        """The first global index whose token moved the stream to ``cut_tick`` or later (:attr:`end` if none)."""
        return self.base + bisect.bisect_left(self.ticks, cut_tick)

    def _snapshot_at_or_before(self, index: int) -> int | None:
        """Position in :attr:`snaps` of the last snapshot whose index is <= ``index``."""
        found = None
        for i, snap in enumerate(self.snaps):
            if snap.index > index:
                break
            found = i
        return found

    def rewind(self, cut_tick: float) -> Rewind | None:
        """Take back every token from the cut for ``cut_tick`` on (see the module doc); None when nothing was
        sampled at or past ``cut_tick``, or no snapshot is old enough (a degenerate stream the guard delayed)."""
        back = self.rewind_to(self.cut_index(cut_tick))
        if back is not None:
            back.floor = int(-(-(cut_tick - back.decoder.bar_start) // 1))  # ceil: the first position not played
        return back

    def rewind_to(self, cut: int) -> Rewind | None:
        """Take back every token from global index ``cut`` on (no position floor); None when there is none, or
        no snapshot is old enough."""
        if cut >= self.end:
            return None
        at = self._snapshot_at_or_before(cut)
        if at is None:
            return None
        snap = self.snaps[at]
        while len(self.snaps) > at + 1:
            self.snaps.pop()
        replay = self.tokens[snap.index - self.base:cut - self.base]
        del self.tokens[cut - self.base:]
        del self.ticks[cut - self.base:]
        decoder = copy.copy(snap.decoder)
        for t in replay:
            decoder.feed(t)
        return Rewind(snap.model, decoder, replay, cut, -1)

    def prune(self, played_tick: float) -> None:
        """Forget what no rewind can reach any more: everything before the last snapshot at or before the cut
        index of ``played_tick`` (the play position only moves forward)."""
        at = self._snapshot_at_or_before(self.cut_index(played_tick))
        if not at:
            return
        for _ in range(at):
            self.snaps.popleft()
        drop = self.snaps[0].index - self.base
        del self.tokens[:drop]
        del self.ticks[:drop]
        self.base += drop
