"""The relay's log: one format, and no line repeated into a flood.

Under an attack or a fault some messages repeat thousands of times a second (asyncio's "socket.accept()
out of system resource" logged 423,052 times in 30 s, 188 MB). ``RepeatFilter`` lets the first of
each distinct message through, drops its repeats for ``window`` seconds, and then says how many it
dropped on the next one it lets through.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MAX_TRACKED = 1000  # distinct messages remembered at once; past that the oldest are forgotten


class RepeatFilter(logging.Filter):
    def __init__(self, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}  # key -> (window start, dropped)

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, record.getMessage())
        now = self.clock()
        started, dropped = self._seen.get(key, (None, 0))
        if started is not None and now - started < self.window:
            self._seen[key] = (started, dropped + 1)
            return False
        if dropped:
            record.msg = f"{record.getMessage()} (repeated {dropped} more times in the last {self.window:g} s)"
            record.args = None
        self._seen.pop(key, None)
        self._seen[key] = (now, 0)
        if len(self._seen) > MAX_TRACKED:
            del self._seen[next(iter(self._seen))]
        return True


def configure(level: int = logging.INFO) -> None:
    """Log to stderr (journald keeps it under systemd) through the repeat filter."""
    logging.basicConfig(level=level, format=FORMAT)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RepeatFilter())
