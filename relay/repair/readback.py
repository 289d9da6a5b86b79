"""Read-back: ask a channel what it shows, compare with what the relay last sent it, and send again where they differ.

A quantity edited by hand on a marketplace (or lost there) is invisible to the shop and to the relay's own
records; only the channel knows. So each channel whose connector can read (``read_batch_size`` > 0) is read
SKU by SKU, in the API's batches, once every ``reconcile.readback_hours``.

Updates always go first: the channel's worker reads only when it has nothing due, and read-back spends at
most ``readback_share`` of the channel's rate budget (after a read that cost *n* calls it waits
*n* / (share x rate) seconds). A difference is repaired through the ordinary delivery (the row is made
due, so the dispatcher sends the shop's newest value) and audited with cause ``reconcile``.

Read-back needs no ``shop_url``: it compares a channel with the relay's own record of what it sent, so it
runs on a site the shop only pushes to, too (docs/configuration.md). Each ReadBack says at start-up that it
will read, so its calls are no surprise; ``readback_hours: 0`` turns it off.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence

from ..config import ChannelConfig, ReconcileConfig
from ..connectors.base import Connector
from ..delivery import rules
from ..delivery.deliveries import make_due
from ..errors import DeliveryError, TransientDeliveryError
from ..storage import audit
from ..storage.store import Store
from .reconcile import record_drift

log = logging.getLogger("stock_relay.readback")
FAILURE_PAUSE_SECONDS = 60.0
NOTHING_YET_SECONDS = 5.0


def delivered(conn: sqlite3.Connection, site: str, channel: str, after: str, limit: int) -> list[tuple[str, int]]:
    """View: the next ``limit`` delivered SKUs after ``after`` (in SKU order), with the quantity each was sent."""
    return conn.execute(
        "SELECT sku, delivered_quantity FROM deliveries WHERE site = ? AND channel = ? AND state = 'delivered'"
        " AND delivered_quantity IS NOT NULL AND sku > ? ORDER BY sku LIMIT ?",
        (site, channel, after, limit),
    ).fetchall()


class ReadBack:
    def __init__(
        self,
        store: Store,
        site: str,
        channel: ChannelConfig,
        connector: Connector,
        settings: ReconcileConfig,
        now: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.site, self.channel, self.connector = store, site, channel, connector
        self.settings = settings
        self.now, self.clock = now, clock
        self.cursor = ""  # the last shop SKU read in the current round
        self.round_started: float | None = None  # wall clock; None between rounds
        self.last_round_at: float | None = None  # when the last complete round started
        self.not_before = 0.0  # monotonic: pacing, or a pause after a failed read
        self.reads = 0
        self.differences = 0
        log.info(
            "%s/%s: read-back of what the channel shows, from now and every %g h (reconcile.readback_hours; 0: off)",
            site,
            channel.name,
            settings.readback_hours,
        )

    @classmethod
    def enabled_for(cls, connector: Connector, settings: ReconcileConfig) -> bool:
        return connector.read_batch_size > 0 and settings.readback_hours > 0 and connector.config.rate.per_second > 0

    def due(self) -> bool:
        if self.clock() < self.not_before:
            return False
        if self.round_started is None and self.last_round_at is not None:
            return self.now() - self.last_round_at >= self.settings.readback_hours * 3600
        return True

    async def step(self) -> int:
        """Read one batch of delivered SKUs; returns how many differed. DeliveryErrors pause read-back, not the channel."""
        if self.round_started is None:
            self.round_started = self.now()
        size = self.connector.read_batch_size
        after = self.cursor
        rows = await self.store.query(lambda conn: delivered(conn, self.site, self.channel.name, after, size))
        if not rows:
            if self.cursor:  # the end of a round
                self.cursor, self.last_round_at, self.round_started = "", self.round_started, None
            else:  # nothing delivered yet, so nothing to read: look again soon
                self.not_before = self.clock() + NOTHING_YET_SECONDS
            return 0
        self.cursor = rows[-1][0]
        sent = {}
        for sku, quantity in rows:
            channel_sku = rules.channel_sku(self.channel.rules, sku)
            if channel_sku is not None:
                sent[channel_sku] = (sku, int(quantity))
        if not sent:
            return 0
        cost = self.connector.read_cost(list(sent))
        await self.connector.read_budget.acquire(cost)
        self.not_before = self.clock() + cost / (self.settings.readback_share * self.channel.rate.per_second)
        try:
            shown = await self.connector.read(list(sent))
        except DeliveryError as exc:
            wait = exc.retry_after if isinstance(exc, TransientDeliveryError) and exc.retry_after else 0.0
            self.not_before = self.clock() + max(FAILURE_PAUSE_SECONDS, wait)
            self.cursor = ""  # start the round again later rather than skip what could not be read
            log.warning("%s/%s: read-back paused: %s", self.site, self.channel.name, exc)
            return 0
        self.reads += 1
        found = [(sku, quantity, shown.get(channel_sku)) for channel_sku, (sku, quantity) in sent.items()]
        differ = [(sku, quantity, seen) for sku, quantity, seen in found if seen != quantity]
        if differ:
            now = self.now()
            await self.store.write(lambda conn: repair(conn, self.site, self.channel.name, differ, now))
            self.differences += len(differ)
        return len(differ)


def repair(
    conn: sqlite3.Connection, site: str, channel: str, differ: Sequence[tuple[str, int, int | None]], now: float
) -> int:
    """Write job: make each differing delivery due again (unless it moved on meanwhile); returns how many."""
    repaired = 0
    logged: list[audit.Entry] = []
    for sku, sent, shown in differ:
        row = conn.execute(
            "SELECT want_seq FROM deliveries WHERE site = ? AND channel = ? AND sku = ? AND state = 'delivered'"
            " AND delivered_quantity = ?",
            (site, channel, sku, sent),
        ).fetchone()
        if row is None:
            continue  # a newer value is on its way, or was sent since the read: nothing to repair
        # A channel that has no such listing cannot be repaired by sending again (Amazon, for one,
        # accepts updates for unknown SKUs and drops them): report it, for the operator to list it.
        reason = "not_listed" if shown is None else "channel_shows"
        record_drift(conn, site, channel, sku, sent, shown, reason, now)
        if shown is not None:
            make_due(conn, site, channel, sku, row[0], now)
            repaired += 1
        detail = {"cause": "reconcile", "reason": reason, "expected": sent, "shown": shown}
        logged.append(audit.entry(now, site, "reconcile", channel=channel, sku=sku, quantity=sent, detail=detail))
    audit.record(conn, logged)
    return repaired
