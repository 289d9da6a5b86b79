"""A per-channel circuit breaker: stop calling a channel that keeps failing, probe it now and then.

closed ──(threshold consecutive failures)──▶ open ──(cool-down over)──▶ half-open
  ▲                                            ▲                           │ one probe batch of one item
  └──────────────── probe succeeds ────────────┴───── probe fails ─────────┘ (cool-down doubles, capped)

Pending deliveries are simply left in SQLite while the circuit is open; nothing is dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    def __init__(
        self,
        threshold: int,
        open_seconds: float,
        max_open_seconds: float = 300.0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.base_open_seconds = open_seconds
        self.max_open_seconds = max(max_open_seconds, open_seconds)
        self._now = now
        self.failures = 0
        self.opened_at: float | None = None
        self.open_for = open_seconds
        self.reason = ""
        self._probing = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return CLOSED
        if self._probing or self._now() >= self.opened_at + self.open_for:
            return HALF_OPEN
        return OPEN

    def seconds_until_probe(self) -> float:
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.opened_at + self.open_for - self._now())

    def begin_probe(self) -> None:
        self._probing = True

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.open_for = self.base_open_seconds
        self.reason = ""
        self._probing = False

    def record_failure(self, reason: str) -> None:
        self.failures += 1
        if self.opened_at is not None:  # a failed probe: stay open, longer
            self._open(min(self.max_open_seconds, self.open_for * 2), reason)
        elif self.failures >= self.threshold:
            self._open(self.base_open_seconds, reason)

    def trip(self, seconds: float, reason: str) -> None:
        """Open at once (credentials refused): retrying every item would only burn the account."""
        self._open(seconds, reason)

    def _open(self, seconds: float, reason: str) -> None:
        self.opened_at = self._now()
        self.open_for = seconds
        self.reason = reason
        self._probing = False
