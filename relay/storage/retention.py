"""Retention: forget history older than ``retention_days``, a small batch per write job.

Each call deletes at most ``BATCH`` rows, so the writer is held for a few milliseconds and ingest
never waits behind a big delete; housekeeping calls it again until a call deletes less than a batch.
Freed pages are reused by SQLite, so under steady traffic the file stops growing once the oldest
history is being pruned as fast as new history arrives.

What is never pruned, whatever its age: an event a delivery still points at (it holds the quantity
the channel shows or must show), an event behind an open dead letter, and open dead letters.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

BATCH = 1000


def prune_audit(conn: sqlite3.Connection, before: float) -> int:
    return conn.execute(
        "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < ? ORDER BY id LIMIT ?)", (before, BATCH)
    ).rowcount


def prune_events(conn: sqlite3.Connection, before: float, channels: Sequence[str]) -> int:
    """``channels``: every configured channel name; naming them lets each check use the primary key."""
    marks = ",".join("?" * len(channels)) or "NULL"
    return conn.execute(
        "DELETE FROM events WHERE seq IN ("
        " SELECT e.seq FROM events e WHERE e.received_at < ?"
        "  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.site = e.site"
        f"                  AND d.channel IN ({marks}) AND d.sku = e.sku"
        "                  AND e.seq IN (d.want_seq, d.claimed_seq, d.delivered_seq))"
        "  AND NOT EXISTS (SELECT 1 FROM dead_letters l WHERE l.event_seq = e.seq AND l.resolved_at IS NULL)"
        " ORDER BY e.seq LIMIT ?)",
        (before, *channels, BATCH),
    ).rowcount


def prune_dead_letters(conn: sqlite3.Connection, before: float) -> int:
    """Resolved dead letters only: an open one stays until it is replayed or superseded."""
    return conn.execute(
        "DELETE FROM dead_letters WHERE id IN ("
        " SELECT id FROM dead_letters WHERE resolved_at IS NOT NULL AND resolved_at < ? ORDER BY id LIMIT ?)",
        (before, BATCH),
    ).rowcount
