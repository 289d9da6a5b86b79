"""Read-back: ask a channel what it shows, compare with what the relay last sent it, and send again where they differ.

A quantity edited by hand on a marketplace (or lost there) is invisible to the shop and to the relay's own
records; only the channel knows. So each channel whose connector can read (``read_batch_size`` > 0) is read
SKU by SKU, in the API's batches, once every ``reconcile.readback_hours``.

Updates always go first: the channel's worker reads only when it has nothing due, and read-back spends at
most ``readback_share`` of the channel's rate budget (after a read that cost *n* calls it waits
*n* / (share x rate) seconds). A difference is repaired through the ordinary delivery (the row is made
due, so the dispatcher sends the shop's newest value) and audited with cause ``reconcile``.

A channel that shows LESS than it was sent may have sold the difference (invariant 11: nothing raises a channel
above the truth). While a sale of that SKU from that channel is not yet applied to the shop, or was applied after
the relay's newest shop event for the SKU (the shop's change is not back yet), the difference is explained by sales:
it is audited (reason ``explained_by_sales``) and left for the sale's own push, which sends the shop's new quantity
and so also repairs any part of the difference the sales do not explain. A lower count with no such sale is
repaired at once on a channel that cannot report sales; one that can report them (a ``sales_secret``, or order
import) is first held as drift ``lower_unreported`` and raised only if a read at least ``UNREPORTED_GRACE_SECONDS``
later still finds it lower with no sale recorded: a sale not reported yet must not be offered again, while a
count lowered by hand must not stay low forever (docs/operations.md, "Read-back"). A channel showing MORE than it
was sent is repaired at once.

Read-back needs no ``shop_url``: it compares a channel with the relay's own record of what it sent, so it
runs on a site the shop only pushes to, too (docs/configuration.md). Each ReadBack says at start-up that it
will read, so its calls are no surprise; ``readback_hours: 0`` turns it off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from ..config import ChannelConfig, ReconcileConfig
from ..connectors.base import Connector
from ..delivery import rules
from ..delivery.deliveries import make_due, unapplied_sales
from ..errors import DeliveryError, TransientDeliveryError
from ..storage import audit
from ..storage.dbapi import Conn
from ..storage.store import Store
from .reconcile import record_drift

log = logging.getLogger("stock_relay.readback")
FAILURE_PAUSE_SECONDS = 60.0
NOTHING_YET_SECONDS = 5.0
UNREPORTED_GRACE_SECONDS = 3600.0  # how long a lower count on a channel that reports sales is trusted


def delivered(conn: Conn, site: str, channel: str, after: str, limit: int) -> list[tuple[str, int]]:
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
        has_shop: bool = True,
    ) -> None:
        self.store, self.site, self.channel, self.connector = store, site, channel, connector
        self.has_shop = has_shop  # the site has a shop_url: without one no sale is imported, none can explain a count
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
            now, sells = self.now(), reports_sales(self.channel, self.connector, self.has_shop)
            await self.store.write(lambda conn: repair(conn, self.site, self.channel.name, differ, now, sells))
            self.differences += len(differ)
        return len(differ)


def reports_sales(channel: ChannelConfig, connector: Connector, has_shop: bool) -> bool:
    """Whether the channel's sales reach the relay: its inbound sales route (``sales_secret``), or its orders imported
    (``import_sales`` on a connector that lists orders, or Shopify's order webhooks). Never on a site without
    ``shop_url``: no order is read there (config refuses the sales routes without one)."""
    imports = channel.import_sales and (connector.lists_sales or channel.takes_sales_webhooks)
    return has_shop and (bool(channel.sales_secrets) or imports)


def _held(conn: Conn, site: str, channel: str, sku: str, sent: int, shown: int, now: float) -> bool:
    """Write-job step: True while a lower count on a channel that reports sales is still trusted (see the module
    docstring); the first sighting is recorded as drift ``lower_unreported`` and its time kept until it is raised."""
    row = conn.execute(
        "SELECT reason, expected, shown, found_at FROM drift WHERE site = ? AND channel = ? AND sku = ?",
        (site, channel, sku),
    ).fetchone()
    if row is not None and tuple(row[:3]) == ("lower_unreported", sent, shown):
        return now - float(row[3]) < UNREPORTED_GRACE_SECONDS
    record_drift(conn, site, channel, sku, sent, shown, "lower_unreported", now)
    return True


def repair(
    conn: Conn,
    site: str,
    channel: str,
    differ: Sequence[tuple[str, int, int | None]],
    now: float,
    sells: bool = False,
) -> int:
    """Write job: make each differing delivery due again (unless it moved on meanwhile, or sales explain a lower
    count: see the module docstring); returns how many. ``sells``: the channel reports its sales."""
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
        if shown is not None and shown < sent:
            keys = [key for key, _ in unapplied_sales(conn, site, channel, [(sku, row[0])]).get(sku, [])][:20]
            held = not keys and sells and _held(conn, site, channel, sku, sent, shown, now)
            if keys or held:
                reason = "explained_by_sales" if keys else "lower_unreported"
                detail = {"cause": "reconcile", "reason": reason, "expected": sent, "shown": shown}
                if keys:
                    detail["sales"] = keys
                logged.append(
                    audit.entry(now, site, "reconcile", channel=channel, sku=sku, quantity=sent, detail=detail)
                )
                continue
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
