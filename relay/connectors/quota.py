"""A hold on a whole channel while a marketplace's quota for a long window is spent (Etsy's calls per day).

A rate budget paces calls within a second; it cannot help once the day's quota is gone: every call
until the quota returns would be refused, and each refusal would be retried and counted against the
item. So the connector holds: it makes no call until the quota returns (what the marketplace's
``retry-after`` says, or a probe a little later when it did not say), and every item it is asked to
publish meanwhile gets a ``QuotaHold``. The dispatcher stops claiming for as long (the channel's
circuit shows the reason in ``stock-relay status``) and leaves the items pending as they were: no
attempt is counted and nothing is dead-lettered, because nothing is wrong with them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import QuotaHold


class QuotaGate:
    """Whether a connector may call now; ``check`` raises the QuotaHold in force, with the time still to wait."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._until = 0.0
        self._reason = ""

    def hold(self, seconds: float, reason: str) -> QuotaHold:
        """Hold for ``seconds`` (extending, never shortening, a hold in force); returns the error to report."""
        self._until = max(self._until, self._now() + seconds)
        self._reason = reason
        return self.active() or QuotaHold(reason, seconds)

    def active(self) -> QuotaHold | None:
        left = self._until - self._now()
        return QuotaHold(self._reason, left) if left > 0 else None

    def check(self) -> None:
        held = self.active()
        if held is not None:
            raise held
