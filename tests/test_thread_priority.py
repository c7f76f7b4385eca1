"""The generation thread's priority (bridge/thread_priority.py): its own thread only, and reported truthfully."""

from __future__ import annotations


def test_the_generation_thread_priority_is_its_own_and_reported_truthfully():
    """``thread_priority.raise_this_thread`` lowers the nice value of the calling thread only, and says what it got
    (as root, in CI: nice -10; without the right to: unchanged, and it says so)."""
    import os
    import threading

    from bridge import thread_priority

    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen = {}

    def worker():
        seen["said"] = thread_priority.raise_this_thread()
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen["said"].startswith(f"nice {seen['nice']}")
    if "unchanged" not in seen["said"]:
        assert seen["nice"] < main_before
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before  # the caller's thread only
