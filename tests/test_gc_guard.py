"""bridge.gc_guard: start-up objects leave the collector's walk, later garbage is still collected, pauses are timed."""

from __future__ import annotations

import gc
import weakref

from bridge import gc_guard


class _Node:
    def __init__(self):
        self.me = self  # a reference cycle: only the collector can free it


def test_freeze_takes_start_up_objects_out_of_every_collection_but_not_later_garbage():
    survivor = _Node()
    try:
        frozen, _ms = gc_guard.freeze_start_up()
        assert frozen >= 1 and gc.get_freeze_count() == frozen
        assert not any(o is survivor for o in gc.get_objects())  # what start-up made is not walked any more
        later = _Node()
        gone = []
        weakref.finalize(later, gone.append, True)
        del later
        gc.collect()
        assert gone == [True]  # cyclic garbage made after the freeze is still freed
    finally:
        gc.unfreeze()  # this is a test process: give pytest's objects back to the collector


def test_watch_times_each_collection_and_reports_the_longest_once():
    watch = gc_guard.GcWatch().install()
    try:
        before = list(watch.collections)
        gc.collect(0)
        gc.collect(2)
        assert watch.collections[0] >= before[0] + 1 and watch.collections[2] >= before[2] + 1
        first = watch.take()
        assert first > 0.0 and watch.longest_ms >= first
        assert watch.take() == 0.0  # reset by the first take
    finally:
        watch.remove()
    gc.collect()
    assert watch.take() == 0.0  # removed: no longer called
