"""Replay: make chosen deliveries due again, so each channel is sent the shop's current quantity.

A delivery row always points at the newest accepted event for its SKU (``want_seq``), and the
dispatcher reads the quantity from that event when it claims the row. So replaying never resends a
stored payload: whatever the shop said last is what goes out, even if it changed after a dead letter.

Work is done in chunks of SKUs (one short write job each) so a replay of everything never holds the
writer long enough to delay ingest, and the caller can show progress between chunks.

Scope ``refused_sales`` is the shop's side: sales the shop refused (an unknown SKU, stock not managed, a trashed
product) are made pending again once their cause is fixed. The plugin tries a refused key again (only an applied
key is final), so each is applied at most once still. ``channel`` narrows it to one channel's sales.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..delivery import deliveries
from ..storage import audit
from ..storage.dbapi import Conn

SCOPES = ("dead", "skus", "all", "refused_sales")
CHUNK = 500


@dataclass(frozen=True)
class Chunk:
    scheduled: int  # (channel, SKU) deliveries made due now
    unknown: list[str]  # asked-for SKUs the relay has never received an event for
    next_after: str | None  # where the next chunk starts; None when this was the last


def replay_chunk(
    conn: Conn,
    site: str,
    channels: Sequence[str],
    scope: str,
    now: float,
    after: str = "",
    skus: Sequence[str] = (),
    limit: int = CHUNK,
) -> Chunk:
    """Write job: schedule the next ``limit`` SKUs of ``scope`` (SKUs sorted; ``after`` is exclusive)."""
    if scope == "refused_sales":
        return _refused_sales(conn, site, channels, now, after, limit)
    marks = ",".join("?" * len(channels))
    if scope == "skus":
        todo = sorted(set(skus))
        chosen = [s for s in todo if s > after][:limit]
        more = len(chosen) == limit and chosen[-1] != todo[-1]
    else:
        where = "state = 'dead'" if scope == "dead" else "TRUE"
        chosen = [
            row[0]
            for row in conn.execute(
                f"SELECT DISTINCT sku FROM deliveries WHERE site = ? AND channel IN ({marks}) AND {where}"
                " AND sku > ? ORDER BY sku LIMIT ?",
                (site, *channels, after, limit),
            )
        ]
        more = len(chosen) == limit
    scheduled, unknown, logged = 0, [], []
    for sku in chosen:
        newest = conn.execute(
            "SELECT MAX(want_seq) FROM deliveries WHERE site = ? AND sku = ?", (site, sku)
        ).fetchone()[0]
        if newest is None:
            unknown.append(sku)
            continue
        for channel in _targets(conn, site, channels, sku, scope):
            # Due now with a fresh retry count; created for a channel that never had the SKU.
            deliveries.make_due(conn, site, channel, sku, newest, now, restart=True)
            scheduled += 1
            logged.append(audit.entry(now, site, "replay", channel=channel, sku=sku, detail={"scope": scope}))
        conn.execute(
            "UPDATE dead_letters SET resolved_at = ? WHERE site = ? AND sku = ? AND resolved_at IS NULL"
            f" AND channel IN ({marks})",
            (now, site, sku, *channels),
        )
    audit.record(conn, logged)
    return Chunk(scheduled, unknown, chosen[-1] if more and chosen else None)


def _targets(conn: Conn, site: str, channels: Sequence[str], sku: str, scope: str) -> Sequence[str]:
    """The channels to replay ``sku`` to: all of them, or (scope ``dead``) those where it is a dead letter."""
    if scope != "dead":
        return channels
    dead = {
        row[0]
        for row in conn.execute(
            "SELECT channel FROM deliveries WHERE site = ? AND sku = ? AND state = 'dead'", (site, sku)
        )
    }
    return [channel for channel in channels if channel in dead]


def _refused_sales(conn: Conn, site: str, channels: Sequence[str], now: float, after: str, limit: int) -> Chunk:
    """The next ``limit`` refused sales (by key, ``after`` exclusive) due again now, with a fresh count of tries."""
    marks = ",".join("?" * len(channels))
    keys = [
        row[0]
        for row in conn.execute(
            f"SELECT key FROM sales WHERE site = ? AND state = 'refused' AND channel IN ({marks}) AND key > ?"
            " ORDER BY key LIMIT ?",
            (site, *channels, after, limit),
        )
    ]
    logged = []
    for key in keys:
        channel, sku, refused = conn.execute(
            "UPDATE sales SET state = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ?"
            " WHERE site = ? AND key = ? RETURNING channel, sku, last_error",
            (now, now, site, key),
        ).fetchone()
        detail = {"scope": "refused_sales", "refused": refused}
        logged.append(audit.entry(now, site, "replay", channel=channel, sku=sku, event_id=key, detail=detail))
    audit.record(conn, logged)
    return Chunk(len(keys), [], keys[-1] if len(keys) == limit else None)
