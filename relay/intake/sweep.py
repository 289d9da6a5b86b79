"""Sales intake by polling: a marketplace's own orders, read every ``sales_poll_seconds`` since a persisted cursor.

One sweeper per channel whose connector can list order lines (``Connector.lists_sales``) and whose
``import_sales`` is on, on a site with ``shop_url`` (the shop worker sends the sales there). A poll asks the
connector for the lines of the orders modified since the cursor minus ``OVERLAP_SECONDS`` (orders the marketplace
indexes late), records them through the sales write job (``ReportWrite``, source ``sweep``: an insert that ignores a conflict on
the sale's key, so a line seen twice counts once, DESIGN.md invariant 10) and moves the cursor to the poll's start
in the same transaction. A poll that fails on any page records nothing and leaves the cursor where it was: the
next poll reads the same window again.

Intake never starves pushes: its calls take from the channel's own rate budget only what is spare
(``RateBudget.try_spare``: nobody waits in the push's ``acquire`` and half the burst stays), so a push never waits
for an intake call. Only when nothing was spare for a whole poll interval does one call queue like a push, so a
channel saturated for hours still reads its orders, at a cost of at most one call per interval to its pushes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..config import ChannelConfig, SiteConfig
from ..connectors.base import Connector
from ..errors import DeliveryError, StorageError
from ..storage.dbapi import Conn
from ..storage.store import Store
from .sales import ReportOutcome, ReportWrite, Sale, SaleRejection

log = logging.getLogger("stock_relay.sweep")
SOURCE_SWEEP = "sweep"
OVERLAP_SECONDS = 120.0  # each window starts this far before the cursor: orders indexed late are still read
SPARE_WAIT_SECONDS = 0.05  # how often a poll looks for a spare call while the budget has none


def iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat()


def load_cursor(conn: Conn, site: str, channel: str) -> float | None:
    """View: the channel's cursor (epoch seconds), or None before its first poll."""
    row = conn.execute("SELECT cursor FROM sales_cursors WHERE site = ? AND channel = ?", (site, channel)).fetchone()
    return None if row is None else dt.datetime.fromisoformat(row[0]).timestamp()


@dataclass(frozen=True, slots=True)
class SweepWrite:
    """Write job: record a poll's sales (each key once, through ``ReportWrite``) and move the cursor with them."""

    site: str
    channel: str
    sales: Sequence[Sale]
    cursor: float
    now: float

    def __call__(self, conn: Conn) -> ReportOutcome:
        poll_id = f"sweep-{self.now:.6f}"  # stands in for a webhook-id: the audit names the poll that found a sale
        outcome = ReportWrite(self.site, self.channel, poll_id, self.sales, (), self.now, "", source=SOURCE_SWEEP)(conn)
        conn.execute(
            "INSERT INTO sales_cursors (site, channel, cursor, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (site, channel) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            (self.site, self.channel, iso(self.cursor), self.now),
        )
        return outcome


class _Stopped(Exception):
    """The relay is stopping: the poll in hand is abandoned (nothing recorded, the cursor unmoved)."""


class SalesSweeper:
    """Polls one channel's orders; ``poll_once`` is one poll (tests and tools drive it), ``run`` the loop."""

    def __init__(
        self,
        store: Store,
        site: SiteConfig,
        channel: ChannelConfig,
        connector: Connector,
        now: Callable[[], float] = time.time,
        on_recorded: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.site = site
        self.channel = channel
        self.connector = connector
        self.now = now
        self.on_recorded = on_recorded
        self.interval = channel.sales_poll_seconds
        self.wake = asyncio.Event()
        # Polls only while this relay works the channel (its worker's lease, relay/delivery/leases.py).
        self.may_work: Callable[[], bool] = lambda: True
        self.recheck_seconds = self.interval  # how soon to ask may_work again when it said no
        self.stopping = asyncio.Event()
        self._last_call = time.monotonic()  # intake's last API call (see the module's docstring)
        self._said = ""  # the last failure logged, so an outage is one line, not one per poll
        self.last_read_at: float | None = None  # the last poll that read every page (wall clock), for status
        self.last_error: str | None = None  # why the polls since then failed, for status
        self._skipped: set[tuple[str, str]] = set()  # lines already said to be no sale of the shop's stock

    @property
    def name(self) -> str:
        return f"{self.site.id}/{self.channel.name} (sales)"

    async def poll_once(self) -> int:
        """Read the orders modified since the cursor, record their sales and move the cursor; returns how many
        sales were new. Raises what the connector or the database raised (nothing is recorded then)."""
        started = self.now()
        cursor = await self.store.query(lambda conn: load_cursor(conn, self.site.id, self.channel.name))
        since = dt.datetime.fromtimestamp((started if cursor is None else cursor) - OVERLAP_SECONDS, dt.UTC)
        sales, skipped = await self.connector.sales_since(since, self._gate)
        self._log_skipped(skipped)
        outcome = await self.store.write(SweepWrite(self.site.id, self.channel.name, sales, started, self.now()))
        self.last_read_at, self.last_error = started, None
        if outcome.accepted:
            log.info("%s: %d new sale(s) recorded", self.name, outcome.accepted)
            self.on_recorded()
        return outcome.accepted

    async def run(self, stopping: asyncio.Event) -> None:
        """Poll at once, then every ``sales_poll_seconds`` until ``stopping``; failures are logged once per cause."""
        self.stopping = stopping
        while not stopping.is_set():
            self.wake.clear()
            try:
                if self.may_work():
                    await self.poll_once()
                if self._said:
                    log.info("%s: orders are read again", self.name)
                self._said = ""
            except _Stopped:
                return
            except (DeliveryError, StorageError) as exc:
                self.last_error = str(exc)
                said = f"{type(exc).__name__}: {exc}"
                if said != self._said:
                    log.warning("%s: reading orders failed, the next poll reads the same window: %s", self.name, exc)
                self._said = said
            waits = [asyncio.ensure_future(stopping.wait()), asyncio.ensure_future(self.wake.wait())]
            try:
                interval = self.interval if self.may_work() else min(self.interval, self.recheck_seconds)
                await asyncio.wait(waits, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()

    async def _gate(self, cost: float = 1.0) -> None:
        """Take one call (``cost`` in the budget's units) from the channel's budget: a spare one, or, when no call
        was made for a whole interval, one queued with the pushes (so intake's floor is one call per interval)."""
        budget = self.connector.budget
        while not budget.try_spare(cost):
            if self.stopping.is_set():
                raise _Stopped
            if time.monotonic() - self._last_call >= self.interval:
                await budget.acquire(cost)
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), SPARE_WAIT_SECONDS)
        self._last_call = time.monotonic()

    def _log_skipped(self, skipped: Sequence[SaleRejection]) -> None:
        for line in skipped:
            seen = (f"{line.order}:{line.line}", line.code)
            if seen not in self._skipped and len(self._skipped) < 10_000:
                self._skipped.add(seen)
                where = f"order {line.order}" + (f" line {line.line}" if line.line is not None else "")
                log.warning("%s: %s is not imported: %s", self.name, where, line.message)
