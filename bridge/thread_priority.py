"""The generation thread's scheduling priority: ahead of ordinary processes, behind JACK's real-time threads.

Why: on a loaded 2-core machine (the soak's busy loop on the other core, jackd, the daemon's own threads) the
generation thread competes for a core with ordinary processes, and a block that waits for one arrives late like a
slow block: every late block grows the pre-buffer and holds the knob's latency up for minutes. Cheap insurance, not
a measured cure: the soak report that suggested most late blocks were waiting ones printed the block *before* each
late one (fixed; the late blocks themselves took 60-100 ms of compute, docs/benchmarks.md).

How: a lower nice value (-10 by default) for the calling thread only (Linux ``setpriority`` on a thread id), when the
process may lower it: root, ``CAP_SYS_NICE``, or an ``RLIMIT_NICE`` such as an audio group's (``@audio - nice -10``
in ``/etc/security/limits.d``). Otherwise nothing changes and the caller says so. Not a real-time class: this thread
computes for up to ~100 ms at a time in Python and XLA, and at a real-time priority it would hold off every ordinary
thread of its core for that long; JACK's own threads stay above it either way.
"""

from __future__ import annotations

import os
import threading

DEFAULT_NICE = -10


def raise_this_thread(nice: int = DEFAULT_NICE) -> str:
    """Lower the calling thread's nice value to ``nice`` (or the lowest of -10, -5, -1 allowed); returns what it
    got, for the log (``"nice -10"``, or ``"nice 0 (unchanged: Permission denied)"``)."""
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
    except (OSError, AttributeError) as err:  # not Linux, or no such call: leave the thread as it is
        return f"priority unchanged ({err})"
    if current <= nice:
        return f"nice {current}"
    error = ""
    for value in sorted({nice, -5, -1}):
        if value >= current:
            break
        try:
            os.setpriority(os.PRIO_PROCESS, tid, value)
            return f"nice {value}"
        except OSError as err:  # PermissionError: no CAP_SYS_NICE and no RLIMIT_NICE that allows it
            error = err.strerror or type(err).__name__
    return f"nice {current} (unchanged: {error or 'already as low as allowed'})"
