"""Retention: forget history older than ``retention_days``, a small slice per write job.

Each call looks at most ``BATCH`` rows, found through an index or the primary key, never by reading a table: at a
million SKUs a scan held the one writer for 100-200 ms every round even when nothing was old (issue 20), and
ingest waits behind the writer. Housekeeping calls a prune again while it says there is more.

The audit log and remembered webhook-ids are found by their time index. Events and dead letters are walked in
primary-key order, a slice at a time, from where the previous slice stopped (``Walk``, kept in memory for the
process): their oldest rows are the lowest keys, and a round stops at the first slice whose oldest row is still
young; the next round goes on from there. A walk (not "the oldest rows") because some old rows are kept for good
reasons and must not block the rest: what is never pruned, whatever its age, is an event a delivery still points
at (it holds the quantity the channel shows or must show: at a million quiet SKUs, a million old events), an event
behind an open dead letter, and open dead letters. Such a row may be freed later (its SKU changes again), so the
walk starts again from the first key once every ``REWALK_SECONDS``: a full pass over the kept rows an hour, in
slices, instead of one every round. Freed pages are reused
by SQLite, so under steady traffic the file stops growing once history is pruned as fast as it arrives.

Sales are never pruned: a sale's key is the relay's only memory that a marketplace's order line was applied,
and the marketplaces list an order again whenever it changes (shipped, returned, months later).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .dbapi import Conn

BATCH = 1000
REWALK_SECONDS = 3600.0


@dataclass
class Walk:
    """Where a primary-key walk stopped (the last key looked at; 0: from the start), and when it last started."""

    after: int = 0
    started_at: float | None = None

    def begin_round(self, now: float) -> None:
        """Go back to the first key when the last full pass began ``REWALK_SECONDS`` ago (or never)."""
        if self.started_at is None or now - self.started_at >= REWALK_SECONDS:
            self.after, self.started_at = 0, now


def prune_audit(conn: Conn, before: float) -> tuple[int, bool]:
    """Up to a slice of audit rows older than ``before``, by the ``audit_at`` index; (deleted, more to do)."""
    deleted = conn.execute(
        "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < ? LIMIT ?)", (before, BATCH)
    ).rowcount
    return deleted, deleted == BATCH


def prune_events(conn: Conn, before: float, channels: Sequence[str], walk: Walk) -> tuple[int, bool]:
    """The next slice of events in ``seq`` order: those older than ``before`` that nothing points at.

    ``channels``: every configured channel name; naming them lets each check use the deliveries' primary key."""
    upto = _slice_end(conn, "events", "seq", "received_at", before, walk)
    if upto is None:
        return 0, False
    marks = ",".join("?" * len(channels)) or "NULL"
    deleted = conn.execute(
        "DELETE FROM events WHERE seq IN ("
        " SELECT e.seq FROM events e WHERE e.seq > ? AND e.seq <= ? AND e.received_at < ?"
        "  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.site = e.site"
        f"                  AND d.channel IN ({marks}) AND d.sku = e.sku"
        "                  AND e.seq IN (d.want_seq, d.claimed_seq, d.delivered_seq))"
        "  AND NOT EXISTS (SELECT 1 FROM dead_letters l WHERE l.event_seq = e.seq AND l.resolved_at IS NULL))",
        (walk.after, upto, before, *channels),
    ).rowcount
    walk.after = upto
    return deleted, True


def prune_dead_letters(conn: Conn, before: float, walk: Walk) -> tuple[int, bool]:
    """The next slice of dead letters in ``id`` order: resolved ones, resolved before ``before``. An open one stays
    until it is replayed or superseded."""
    upto = _slice_end(conn, "dead_letters", "id", "created_at", before, walk)
    if upto is None:
        return 0, False
    deleted = conn.execute(
        "DELETE FROM dead_letters WHERE id > ? AND id <= ? AND resolved_at IS NOT NULL AND resolved_at < ?",
        (walk.after, upto, before),
    ).rowcount
    walk.after = upto
    return deleted, True


def _slice_end(conn: Conn, table: str, key: str, born: str, before: float, walk: Walk) -> int | None:
    """The last key of the walk's next slice, or None when the round is over: the table's end, or a slice whose
    rows are all younger than ``before`` (the rows after it are younger still; the next round starts there)."""
    last, oldest = conn.execute(
        f"SELECT MAX({key}), MIN({born})"
        f" FROM (SELECT {key}, {born} FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT ?) AS slice",
        (walk.after, BATCH),
    ).fetchone()
    if last is None or oldest >= before:
        return None
    return int(last)
