"""Rate-limited logging: a flood of bad input produces a few clear lines, not millions.

Each warning has a key (e.g. the offending address); a key logs at most once per ``interval``
seconds, and the next line for it says how many were suppressed meanwhile. The number of keys
remembered is bounded, so a client inventing endless keys cannot grow memory.

Threading: :meth:`RateLimitedLogger.warning` may be called from any thread except the JACK
process callback (it logs); one lock guards the bookkeeping.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict


class RateLimitedLogger:
    def __init__(self, logger: logging.Logger, interval: float = 5.0, max_keys: int = 256):
        self.logger = logger
        self.interval = interval
        self.max_keys = max_keys
        self._seen: OrderedDict[str, list] = OrderedDict()  # key -> [last_time, suppressed]
        self._lock = threading.Lock()
        self.total = 0

    def _should_log(self, key: str) -> int | None:
        now = time.monotonic()
        with self._lock:
            self.total += 1
            entry = self._seen.get(key)
            if entry is None:
                if len(self._seen) >= self.max_keys:
                    self._seen.popitem(last=False)
                    key = "(other)"
                    entry = self._seen.get(key)
                if entry is None:
                    self._seen[key] = [now, 0]
                    return 0
            if now - entry[0] >= self.interval:
                suppressed, entry[0], entry[1] = entry[1], now, 0
                return suppressed
            entry[1] += 1
            return None

    def warning(self, key: str, msg: str, *args) -> None:
        suppressed = self._should_log(key)
        if suppressed is None:
            return
        if suppressed:
            msg += f" [{suppressed} similar suppressed]"
        self.logger.warning(msg, *args)
