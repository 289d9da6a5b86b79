"""Connectors with two routes to a marketplace: one call per SKU, or an asynchronous bulk feed.

Amazon (``JSON_LISTINGS_FEED``) and Walmart (the bulk inventory feed) both take thousands of SKUs in
one upload and answer later. The rule for choosing, the same for both:

- Single calls are answered at once, per SKU, so they are the default. One push sends at most
  ``SINGLE_WINDOW_SECONDS`` of them at the current single-call rate (the dispatcher cuts a push off at
  30 s), so the worker claims that many at a time.
- A push that got a full claim means a backlog: the next claim is as large as the channel's
  ``batch_size``, and if it holds more SKUs than single calls would send within ``feed_after_seconds``
  (the marketplace's usual feed turnaround) and a feed submission is free, it goes as one feed. The
  single-call budget stays free for what arrives meanwhile.

A feed is not waited for: push submits it and answers ``PendingDeliveryError`` for its items, which
come back through the dispatcher's retry schedule; each return asks the marketplace about the feed
(at most once per ``recheck_seconds``), and once it is done each item gets its own result from the
report. A newer quantity for a SKU whose feed is still processing waits for that feed, because
neither marketplace promises to apply a feed and a later single call in order. Feeds live in memory:
after a restart the items are simply sent again (absolute quantities, so that is harmless).
"""

from __future__ import annotations

import asyncio
import time
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp

from ..config import ChannelConfig
from ..delivery.ratelimit import RateBudget
from ..errors import AuthDeliveryError, DeliveryError, PendingDeliveryError, TransientDeliveryError
from ..vault import Vault
from .base import Connector, ItemResult, Update

SINGLE_WINDOW_SECONDS = 5.0  # single calls per push: far inside the dispatcher's 30 s limit, and a claim stays fresh
SINGLE_CONCURRENCY = 8  # single calls in flight at once; the rate budget paces them


@dataclass
class Feed:
    """A submitted feed: what it carries (channel SKU → quantity) and, once processed, each SKU's result."""

    feed_id: str
    quantities: dict[str, int]
    submitted: float
    checked: float = 0.0
    results: dict[str, ItemResult] | None = None  # None while the marketplace is still processing it

    def recheck_seconds(self, now: float) -> float:
        """Ask again after a quarter of the feed's age (0.2 s to 60 s): few calls, and a result seen soon after it exists."""
        return min(60.0, max(0.2, (now - self.submitted) / 4))


class FeedConnector(Connector):
    """A connector with a single-call route and a feed route (see the module docstring)."""

    # A claim holds 5 s of single calls: a batch claimed ahead would wait those 5 s with its quantities fixed, so each
    # SKU changed meanwhile went out twice (drain bench: 375 more Amazon calls), to save a commit a 5 s push hardly notices.
    claims_ahead = False
    feed_budget: RateBudget  # feed submissions
    feed_after_seconds: float  # a batch worth more single calls than this goes as a feed

    def __init__(
        self,
        site: str,
        config: ChannelConfig,
        session: aiohttp.ClientSession,
        vault: Vault | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(site, config, session, vault)
        self._clock = now
        self.feeds: dict[str, Feed] = {}  # channel SKU → the feed carrying it
        self.feeds_submitted = 0
        self._backlog = True  # the last claim was full, so more is waiting (at start: perhaps a backlog)

    # --- what a marketplace provides -------------------------------------------------------------

    @abstractmethod
    async def send_single(self, update: Update) -> ItemResult:
        """Set one SKU with a single call (charging the single-call budget); per-item errors in the result."""

    @abstractmethod
    async def submit_feed(self, updates: Sequence[Update]) -> str:
        """Upload and submit a feed for ``updates``; returns its id. Raises DeliveryError for all of them."""

    @abstractmethod
    async def feed_results(self, feed: Feed) -> dict[str, ItemResult] | None:
        """The feed's per-SKU results once processed (a SKU missing from it counts as done), None before."""

    # --- the routing -------------------------------------------------------------------------------

    def single_concurrency(self) -> int:
        """Single calls in flight at once (``Connector.in_flight``)."""
        return self.in_flight(SINGLE_CONCURRENCY)

    def single_chunk(self) -> int:
        return max(1, int(self.budget.rate * SINGLE_WINDOW_SECONDS))

    def feed_threshold(self) -> int:
        return max(self.single_chunk(), int(self.budget.rate * self.feed_after_seconds))

    def feed_free(self) -> bool:
        return self.feed_budget.bucket.wait_time(1.0) <= 0

    @property
    def batch_size(self) -> int:
        # A large claim only when it could go as a feed: otherwise most of it would just wait a round.
        if self._backlog and self.feed_free() and self.feed_threshold() < self.config.batch_size:
            return self.config.batch_size
        return min(self.config.batch_size, self.single_chunk())

    def cost(self, updates: Sequence[Update]) -> float:
        return 0.0  # each route charges its own budget per call as it makes it

    async def push(self, updates: Sequence[Update]) -> Mapping[str, ItemResult]:
        self._backlog = len(updates) >= min(self.config.batch_size, self.single_chunk())
        results: dict[str, ItemResult] = {}
        fresh: list[Update] = []
        waiting: dict[str, list[Update]] = {}
        for update in updates:
            feed = self.feeds.get(update.channel_sku)
            if feed is None:
                fresh.append(update)
            else:
                waiting.setdefault(feed.feed_id, []).append(update)
        for group in waiting.values():
            fresh.extend(await self._follow_feed(self.feeds[group[0].channel_sku], group, results))
        if len(fresh) > self.feed_threshold() and self.feed_free():
            await self._send_feed(fresh, results)
        else:
            await self._send_singles(fresh, results)
        return results

    async def _follow_feed(self, feed: Feed, group: Sequence[Update], results: dict[str, ItemResult]) -> list[Update]:
        """Results for items of a submitted feed; returns the updates that need sending anew."""
        now = self._clock()
        if feed.results is None and now - feed.checked >= feed.recheck_seconds(now):
            feed.checked = now
            try:
                feed.results = await self.feed_results(feed)
            except AuthDeliveryError:
                raise
            except DeliveryError as exc:  # could not ask: the items wait and ask again, whatever the answer was
                retry_after = exc.retry_after if isinstance(exc, TransientDeliveryError) else None
                wait = TransientDeliveryError(
                    f"could not read feed {feed.feed_id}'s status: {exc.message}", retry_after
                )
                for u in group:
                    results[u.sku] = ItemResult(wait, exc.http_status, exc.excerpt)
                return []
        resend: list[Update] = []
        for u in group:
            if feed.results is None:
                results[u.sku] = ItemResult(
                    PendingDeliveryError(f"in feed {feed.feed_id}, which the marketplace is still processing")
                )
                continue
            self._release(feed, u.channel_sku)
            if feed.quantities[u.channel_sku] != u.quantity:
                resend.append(u)  # a newer quantity waited for this feed: send it now
            else:
                results[u.sku] = feed.results.get(u.channel_sku, ItemResult(None, 200))
        return resend

    def _release(self, feed: Feed, channel_sku: str) -> None:
        if self.feeds.get(channel_sku) is feed:
            del self.feeds[channel_sku]

    async def _send_feed(self, updates: Sequence[Update], results: dict[str, ItemResult]) -> None:
        try:
            await self.feed_budget.acquire(1.0)
            feed_id = await self.submit_feed(updates)
        except AuthDeliveryError:
            raise
        except DeliveryError as exc:
            results.update({u.sku: ItemResult(exc, exc.http_status, exc.excerpt) for u in updates})
            return
        self.feeds_submitted += 1
        now = self._clock()
        quantities = {u.channel_sku: u.quantity for u in updates}
        feed = Feed(feed_id, quantities, submitted=now, checked=now)
        for u in updates:
            self.feeds[u.channel_sku] = feed
            results[u.sku] = ItemResult(PendingDeliveryError(f"submitted in feed {feed_id}"), 202)

    async def _send_singles(self, updates: Sequence[Update], results: dict[str, ItemResult]) -> None:
        # A push must end within the dispatcher's limit: what single calls cannot send in one window waits for
        # the next round (a large claim that turned out smaller than the feed threshold).
        chunk = self.single_chunk()
        for u in updates[chunk:]:
            results[u.sku] = ItemResult(PendingDeliveryError("not sent yet: the single-call budget is spent"))
        updates = updates[:chunk]
        gate = asyncio.Semaphore(self.single_concurrency())

        async def one(update: Update) -> None:
            async with gate:
                try:
                    results[update.sku] = await self.send_single(update)
                except AuthDeliveryError:
                    raise
                except DeliveryError as exc:
                    results[update.sku] = ItemResult(exc, exc.http_status, exc.excerpt)

        tasks = [asyncio.ensure_future(one(u)) for u in updates]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()


def throttle_wait(rate: float) -> float:
    """How long to hold off after a throttle answer that carried no Retry-After: one call's worth, at least 1 s."""
    return max(1.0, 1.0 / rate) if rate > 0 else 1.0
