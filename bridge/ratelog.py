"""Rate-limited warnings for bad input from the outside world.

A controller with a broken encoder or a fuzzing script can send thousands of bad messages a
second. Each problem is logged once, then at most once per ``interval`` seconds per key with a
count of what was suppressed, so the log stays readable and logging never becomes the load.
"""

from __future__ import annotations

import logging
import threading
import time


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, interval: float = 5.0):
        self._log = logger
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self.count = 0  # total problems reported (logged or suppressed), for tests and stats

    def warning(self, key: str, msg: str, *args) -> bool:
        """Log ``msg % args`` unless ``key`` was logged in the last interval; True if logged."""
        now = time.monotonic()
        with self._lock:
            self.count += 1
            if len(self._last) > 1000:  # keys come from the outside: bound the table
                self._last.clear()
                self._suppressed.clear()
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            skipped = self._suppressed.pop(key, 0)
        if skipped:
            self._log.warning(msg + " (%d similar suppressed)", *args, skipped)
        else:
            self._log.warning(msg, *args)
        return True
