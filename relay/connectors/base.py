"""The one small interface every channel connector implements.

A connector turns a batch of ``Update``s into API calls and maps the remote's answers to ours at
its boundary: nothing but ``ItemResult``s and ``DeliveryError``s leave it. It owns what the
marketplace connectors need: a batch size, a rate budget that learns from throttle answers, and
(for OAuth-style APIs) a ``TokenAuth`` whose refresh is shared by concurrent callers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import aiohttp

from ..config import ChannelConfig
from ..delivery.ratelimit import RateBudget
from ..errors import AuthDeliveryError, ConfigError, DeliveryError, QuotaHold
from ..intake.sales import Sale, SaleRejection
from ..storage.dbapi import Conn
from ..vault import Credentials, Vault

MAX_CLAIM = 1000  # SKUs a claim grown with the rate holds at most: the largest batch_size the config allows


class SalesGate(Protocol):
    """What ``sales_since`` awaits before each API call: it takes ``cost`` from the channel's rate budget, in the
    budget's units (one call; Shopify's cost points, where one query costs what it selects)."""

    def __call__(self, cost: float = 1.0) -> Awaitable[None]: ...


@dataclass(frozen=True, slots=True)
class Update:
    """Set ``channel_sku`` to ``quantity`` (absolute)."""

    sku: str  # the shop's SKU: the key the dispatcher settles by
    channel_sku: str
    quantity: int
    event_id: str
    version: int
    product_id: int
    idempotency_key: str  # stable per (site, channel, event): the same on every retry


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One item's answer. ``error`` None means the channel now shows the quantity."""

    error: DeliveryError | None = None
    http_status: int | None = None
    excerpt: str = ""


class Connector(ABC):
    type: ClassVar[str]
    # identifiers the channel's ``account:`` mapping must hold (checked at start and by check-config)
    account_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self, site: str, config: ChannelConfig, session: aiohttp.ClientSession, vault: Vault | None = None
    ) -> None:
        self.site = site
        self.config = config
        self.session = session
        self.budget = RateBudget(config.rate.per_second, config.rate.burst)
        self.credentials = Credentials(vault, config.credentials or f"{site}/{config.name}")

    def spend_budgets(self) -> None:
        """Empty every rate budget of this channel (pushes, reads, orders): this relay has just taken the channel
        over from another, which may have spent them a moment ago, and together they must stay within them."""
        for value in vars(self).values():
            if isinstance(value, RateBudget):
                value.bucket.empty()

    @classmethod
    def check_account(cls, config: ChannelConfig, path: str) -> None:
        """Raise ConfigError naming the first identifier the account mapping lacks."""
        for key in cls.account_keys:
            if not config.account.get(key):
                raise ConfigError(f"{path}.account.{key}", f"required for a {cls.type} channel")

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def batch_size(self) -> int:
        return self.config.batch_size

    def rate_scaled_batch(self, default_rate: float) -> int:
        """``batch_size`` for a connector whose claim is sized for the marketplace's default rate: a budget k times
        faster (an upgraded app, a marketplace's dynamic limit) claims k times as many SKUs, at most ``MAX_CLAIM``.

        Each claim and each settle is a database commit whatever its size, and while the shop sends a burst
        each waits behind ingest's commits; a claim that holds a fixed number of SKUs holds ever fewer seconds
        of calls as the rate grows, until the worker spends more time committing than calling.
        """
        faster = max(1.0, self.budget.rate / default_rate) if default_rate > 0 else 1.0
        return max(1, min(max(MAX_CLAIM, self.config.batch_size), int(self.config.batch_size * faster)))

    # Whether the running worker claims its next batch before this one is settled, so the push does not wait for the
    # settle's commit (relay/delivery/dispatch.py). The batch claimed ahead waits one push with its quantities fixed: worth it
    # where a claim holds about a second of calls, not where it holds many seconds (FeedConnector).
    claims_ahead: ClassVar[bool] = True

    def in_flight(self, most: int) -> int:
        """Calls to have in flight at once: ``most``, but never more than the budget's burst.

        The budget paces when calls leave, but the marketplace counts them when they arrive. Calls in flight
        while the marketplace is slow to answer arrive together when it catches up, and more of them than the
        burst it allows are throttled (seen in the drain bench: three 429s at once after a stall). Held to the
        burst, a pile-up is at most what the marketplace's bucket takes at once.
        """
        return max(1, min(most, int(self.budget.bucket.burst)))

    def cost(self, updates: Sequence[Update]) -> float:
        """API calls ``push`` will make for this batch (what the rate budget is charged)."""
        return 1.0

    # What a connector keeps across restarts (eBay's revision counts). The worker reads it once, before the
    # first push, and writes what changed inside the transaction that settles the batch that changed it.
    def read_state(self, conn: Conn) -> Any:
        """Read the connector's saved state (on a read-only connection, off the event loop); return it as data."""
        return None

    def restore_state(self, state: Any) -> None:  # noqa: B027 - optional hook, like close
        """Adopt what ``read_state`` returned (on the event loop)."""

    def state_saver(self) -> Callable[[Conn], None] | None:
        """A write job for what changed since the last call, or None when nothing did."""
        return None

    def hold(self) -> QuotaHold | None:
        """The hold in force while the marketplace's quota for a long window is spent (``relay/connectors/quota.py``).

        The dispatcher claims nothing while there is one, so a hold found by read-back stops pushes too.
        """
        return None

    @abstractmethod
    async def push(self, updates: Sequence[Update]) -> Mapping[str, ItemResult]:
        """Publish the batch. Return a result per ``Update.sku``, or raise a DeliveryError for all of them."""

    # Read-back (reconciliation): what the channel shows now. A connector that can read sets
    # ``read_batch_size`` to how many channel SKUs one ``read`` takes; 0 means it cannot be read back.
    read_batch_size: ClassVar[int] = 0

    @property
    def read_budget(self) -> RateBudget:
        """The budget ``read_cost`` is charged to: the push's, unless the API limits reads on their own."""
        return self.budget

    def read_cost(self, channel_skus: Sequence[str]) -> float:
        """API calls ``read`` will make for these SKUs (what the rate budget is charged before it runs)."""
        return 1.0

    async def read(self, channel_skus: Sequence[str]) -> Mapping[str, int | None]:
        """The quantity the channel shows for each channel SKU; None where the channel has no such listing.

        Raises a DeliveryError (transient, permanent or auth) when the whole read failed. The caller has
        already charged ``read_budget`` with ``read_cost``; ``read`` must not spend more calls than that.
        """
        raise NotImplementedError(f"the {self.type} connector cannot read back")

    # Sales intake by polling (relay/intake/sweep.py): a connector that can list the channel's order lines sets
    # ``lists_sales`` and implements ``sales_since``.
    lists_sales: ClassVar[bool] = False

    async def sales_since(self, since: dt.datetime, gate: SalesGate) -> tuple[list[Sale], list[SaleRejection]]:
        """The sales (and cancellations) of the orders modified since ``since``, keyed ``<channel>:<order>:<line>``
        with the shop's SKU, and the lines that are not sales of the shop's stock. ``gate`` is awaited before
        each API call (it takes the call, or with ``gate(cost)`` the query's cost, from the rate budget). Raises a
        DeliveryError when any page failed: the caller then records nothing."""
        raise NotImplementedError(f"the {self.type} connector cannot list orders")

    async def close(self) -> None:  # noqa: B027 - optional hook: most connectors hold nothing of their own
        """Release anything the connector holds open."""


class TokenAuth:
    """An access token refreshed before it expires; concurrent callers share one refresh.

    ``fetch`` returns ``(token, lifetime_seconds)`` or raises AuthDeliveryError when the
    credentials are refused for good (the dispatcher then pauses the channel with that reason).
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[tuple[str, float]]],
        margin_seconds: float = 60.0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._margin = margin_seconds
        self._now = now
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self.refreshes = 0

    async def token(self) -> str:
        if self._token is not None and self._now() < self._expires - self._margin:
            return self._token
        async with self._lock:
            if self._token is None or self._now() >= self._expires - self._margin:
                token, lifetime = await self._fetch()
                if not token:
                    raise AuthDeliveryError("the token endpoint returned no token")
                self._token, self._expires = token, self._now() + lifetime
                self.refreshes += 1
            return self._token

    def invalidate(self, token: str) -> None:
        """The remote refused ``token`` (401): the next caller refreshes, once."""
        if token == self._token:
            self._token = None


async def read_each(
    channel_skus: Sequence[str], read_one: Callable[[str], Awaitable[int | None]], concurrency: int
) -> dict[str, int | None]:
    """A read for APIs with one SKU per call: each SKU once, ``concurrency`` calls at a time, in the caller's order."""
    gate = asyncio.Semaphore(concurrency)
    shown: dict[str, int | None] = {}

    async def one(sku: str) -> None:
        async with gate:
            shown[sku] = await read_one(sku)

    tasks = [asyncio.ensure_future(one(s)) for s in dict.fromkeys(channel_skus)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    return {sku: shown[sku] for sku in channel_skus}
