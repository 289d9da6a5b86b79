"""Retry chosen dead letters (``dead.retry``): each (channel, SKU) item is sent the shop's current quantity again.

Replay (relay/repair/replay.py) works by scope and by SKU across channels; the console's dead-letter list retries what
the shop owner ticked, which is a channel *and* a SKU: a SKU dead on Amazon must not be resent to eBay. An item is
retried only while it is still a dead letter there: one delivered or retried meanwhile is answered ``not_dead`` and
left alone, so a double click or a resent request schedules nothing twice. Like replay, the delivery is made due now
with a fresh retry count, pointing at the newest event the shop sent (never the stored payload), and its open dead
letter is resolved; a paused channel keeps it queued until it is resumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..delivery import deliveries
from . import audit
from .dbapi import Conn

MAX_ITEMS = 500


def retry_dead(
    conn: Conn, site: str, items: Sequence[tuple[str, str]], actor: str | None, now: float
) -> list[dict[str, Any]]:
    """Write job: for each (channel, SKU), in order (repeats once), ``scheduled`` or ``not_dead``."""
    results, logged = [], []
    for channel, sku in dict.fromkeys(items):
        row = conn.execute(
            "SELECT want_seq FROM deliveries WHERE site = ? AND channel = ? AND sku = ? AND state = 'dead'",
            (site, channel, sku),
        ).fetchone()
        if row is None:
            results.append({"channel": channel, "sku": sku, "result": "not_dead"})
            continue
        deliveries.make_due(conn, site, channel, sku, row[0], now, restart=True)
        conn.execute(deliveries.RESOLVE_DEAD_LETTER, (now, site, channel, sku))
        detail = {"scope": "retry", **({"actor": actor} if actor else {})}
        logged.append(audit.entry(now, site, "replay", channel=channel, sku=sku, detail=detail))
        results.append({"channel": channel, "sku": sku, "result": "scheduled"})
    audit.record(conn, logged)
    return results
