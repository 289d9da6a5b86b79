"""Token buckets: a channel's outbound rate budget (which learns from throttling) and ingest's per-site limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up. ``now`` is a monotonic clock."""

    def __init__(self, rate: float, burst: float, now: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._now = now
        self._tokens = burst
        self._stamp = now()

    def _refill(self) -> None:
        stamp = self._now()
        self._tokens = min(self.burst, self._tokens + (stamp - self._stamp) * self.rate)
        self._stamp = stamp

    def try_take(self, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if they are there now (ingest: answer 429 otherwise)."""
        self._refill()
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def empty(self) -> None:
        """Nothing saved up: the next tokens come at ``rate`` from now."""
        self._refill()
        self._tokens = 0.0

    def wait_time(self, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens will be there."""
        self._refill()
        return max(0.0, (min(cost, self.burst) - self._tokens) / self.rate)


class RateBudget:
    """A channel account's budget of API calls.

    It starts at the marketplace's published rate. A throttle answer (429, THROTTLED, …) halves the
    rate and blocks until the remote's ``Retry-After``; every success wins back 5 % of the published
    rate, so after a throttle the budget creeps back up instead of oscillating. Remaining-quota
    headers can only lower what we think we have, never raise it.
    """

    def __init__(self, rate: float, burst: float, now: Callable[[], float] = time.monotonic) -> None:
        self.published_rate = rate
        self.bucket = TokenBucket(rate, burst, now)
        self._now = now
        self._blocked_until = 0.0
        self._lock = asyncio.Lock()
        self.throttles = 0

    @property
    def rate(self) -> float:
        return self.bucket.rate

    async def acquire(self, cost: float = 1.0) -> None:
        """Wait until ``cost`` calls may be made, then spend them. Callers queue in order."""
        async with self._lock:
            while True:
                wait = max(self._blocked_until - self._now(), self.bucket.wait_time(cost))
                if wait <= 0 and self.bucket.try_take(cost):
                    return
                await asyncio.sleep(max(wait, 0.001))

    def try_spare(self, cost: float = 1.0, reserve: float = 0.5) -> bool:
        """Take ``cost`` only if it is spare: nobody is waiting in ``acquire``, no throttle pause is in force, and
        at least ``reserve`` of the burst is still there afterwards (work that must never delay pushes: intake)."""
        if self._lock.locked() or self._now() < self._blocked_until:
            return False
        self.bucket._refill()
        if self.bucket._tokens - cost < self.bucket.burst * reserve:
            return False
        self.bucket._tokens -= cost
        return True

    def throttled(self, retry_after: float | None = None) -> None:
        """The remote said "too fast": slow down and respect its pause."""
        self.throttles += 1
        self.bucket._refill()
        self.bucket.rate = max(self.published_rate * 0.1, self.bucket.rate * 0.5)
        self.bucket._tokens = 0.0
        if retry_after:
            self._blocked_until = max(self._blocked_until, self._now() + retry_after)

    def succeeded(self) -> None:
        if self.bucket.rate < self.published_rate:
            self.bucket._refill()
            self.bucket.rate = min(self.published_rate, self.bucket.rate + self.published_rate * 0.05)

    def adopt(self, rate: float, burst: float) -> None:
        """The remote told us its real limit (Shopify's throttleStatus): it becomes the published rate.

        A slow-down still in force after a throttle keeps its proportion of the new rate.
        """
        if rate <= 0 or burst <= 0 or (rate == self.published_rate and burst == self.bucket.burst):
            return
        self.bucket._refill()
        share = self.bucket.rate / self.published_rate
        self.published_rate = rate
        self.bucket.rate = rate * share
        self.bucket.burst = burst
        self.bucket._tokens = min(self.bucket._tokens, burst)

    def observe_remaining(self, remaining: float) -> None:
        """A remaining-quota header: never believe we have more than the remote says."""
        self.bucket._refill()
        self.bucket._tokens = min(self.bucket._tokens, max(0.0, remaining))
