"""Keep Python's garbage collector out of the audio path: freeze what start-up made, time every collection.

Why: once a model is loaded the daemon holds ~190,000 objects that live as long as the process (modules, the
model's Flax/JAX trees, compiled functions, the text tower). CPython's full (generation-2) collection walks every
one of them: 115-120 ms with the groove model loaded, on this 2-core VM (``bench/gc_pause.py``; docs/benchmarks.md,
"Latency"). It starts unannounced in whichever thread allocates when the counters cross,
usually the generation thread, and holds the GIL throughout, so the JACK process callback (Python) and the
generation thread stop together: a single slow block, exactly what the near misses of the loaded 1-hour soak
were (single blocks of 50-73 ms, a few an hour), each of which grew the pre-buffer for minutes.

How: after the model is loaded and warmed up, :func:`freeze_start_up` collects once and then ``gc.freeze()``s
everything still alive into the permanent generation, which collections skip; a full collection then walks only
what was made since (0.46 ms after 3,000 more groove blocks, against 115 ms unfrozen). Cyclic garbage made later
is still collected; what start-up made is never freed, as it never would be anyway. :class:`GcWatch` times every
collection through ``gc.callbacks`` (a few list operations, no allocation in the callback beyond a float): the
engine puts the longest pause since the last block in the block log (``gc_ms``), and a pause over
:data:`SLOW_MS` is logged once per block.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)
SLOW_MS = 20.0  # a collection longer than this is worth a log line: it is a good part of a low-latency block


def freeze_start_up() -> tuple[int, float]:
    """Collect once, then move every live object to the permanent generation; -> (objects frozen, ms taken)."""
    t0 = time.perf_counter()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count(), 1000.0 * (time.perf_counter() - t0)


class GcWatch:
    """Times garbage collections in any thread; :meth:`take` returns the longest since the last call.

    Attributes:
      collections: how many collections ran since :meth:`install`, by generation (0, 1, 2).
      longest_ms: the longest collection since :meth:`install`.
    """

    def __init__(self):
        self.collections = [0, 0, 0]
        self.longest_ms = 0.0
        self._since_take = 0.0
        self._slowest_gen = 0
        self._t0 = 0.0
        self._installed = False

    def install(self) -> "GcWatch":
        if not self._installed:
            gc.callbacks.append(self._callback)
            self._installed = True
        return self

    def remove(self) -> None:
        if self._installed:
            gc.callbacks.remove(self._callback)
            self._installed = False

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
            return
        ms = 1000.0 * (time.perf_counter() - self._t0)
        generation = info.get("generation", 0)
        self.collections[min(2, generation)] += 1
        if ms > self._since_take:
            self._since_take, self._slowest_gen = ms, generation
        if ms > self.longest_ms:
            self.longest_ms = ms

    def take(self) -> float:
        """The longest collection (ms) since the last call, logged when over :data:`SLOW_MS`; resets it."""
        ms, gen = self._since_take, self._slowest_gen
        self._since_take = 0.0
        if ms > SLOW_MS:
            log.warning("a generation-%d garbage collection held every Python thread for %.0f ms", gen, ms)
        return ms
