"""The built-in ``sandbox`` channel: an in-process stand-in for a marketplace.

It keeps listings in memory, answers after ``latency_ms``, enforces its own rate limit the way a
marketplace does (a "429" with a Retry-After when called too fast) and fails a ``failure_rate``
share of calls with a transient error, so the demo shows retries and convergence for real.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence

import aiohttp

from ..config import ChannelConfig
from ..delivery.ratelimit import TokenBucket
from ..errors import TransientDeliveryError
from ..vault import Vault
from .base import Connector, ItemResult, Update


class SandboxConnector(Connector):
    type = "sandbox"
    read_batch_size = 250

    def __init__(
        self, site: str, config: ChannelConfig, session: aiohttp.ClientSession, vault: Vault | None = None
    ) -> None:
        super().__init__(site, config, session, vault)
        self.listings: dict[str, int] = {}
        self.calls = 0
        self.throttled_calls = 0
        self.failed_calls = 0
        self.log: list[tuple[str, int]] = []  # ("push" | "read", SKUs): the order the channel was called in
        self._server_limit = TokenBucket(config.rate.per_second, config.rate.burst)
        self._random = random.Random()

    async def push(self, updates: Sequence[Update]) -> Mapping[str, ItemResult]:
        self.calls += 1
        self.log.append(("push", len(updates)))
        await asyncio.sleep(self.config.latency_ms / 1000)
        if not self._server_limit.try_take():
            self.throttled_calls += 1
            self.budget.throttled(1.0)
            raise TransientDeliveryError("sandbox: too many requests", retry_after=1.0, http_status=429)
        if self._random.random() < self.config.failure_rate:
            self.failed_calls += 1
            raise TransientDeliveryError("sandbox: simulated outage (503)", http_status=503)
        for update in updates:
            self.listings[update.channel_sku] = update.quantity
        self.budget.succeeded()
        return {u.sku: ItemResult(http_status=200) for u in updates}

    async def read(self, channel_skus: Sequence[str]) -> Mapping[str, int | None]:
        self.calls += 1
        self.log.append(("read", len(channel_skus)))
        await asyncio.sleep(self.config.latency_ms / 1000)
        if not self._server_limit.try_take():
            self.throttled_calls += 1
            self.budget.throttled(1.0)
            raise TransientDeliveryError("sandbox: too many requests", retry_after=1.0, http_status=429)
        self.budget.succeeded()
        return {sku: self.listings.get(sku) for sku in channel_skus}
