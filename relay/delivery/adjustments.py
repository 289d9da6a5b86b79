"""The sales table's write jobs: claim due sales for the shop under a lease, settle them by the shop's answer.

The shop is one more destination: what goes to it are changes (``delta``), not states, so nothing coalesces and
every row is sent until the shop has answered for its key. A claim stamps rows with a fresh ``claim_token`` and a
``lease_until`` and audits them as sent (the claim is the send's own commit); every settlement is conditional on
that token, as in deliveries.py, so a worker that stalled past its lease can never settle a row claimed since.
Resending is always safe: the plugin applies each key at most once and answers a repeat ``duplicate``.

A sale is never given up (invariant 10: at least once, once seen): a transient failure retries with the dispatch
backoff for as long as it takes; only the shop's own refusal makes a row ``refused`` (a dead letter).

A sale the shop answers with a quantity below zero sold a unit the shop no longer had (the last unit sold twice):
its settlement also records an ``oversold`` incident in the audit log (invariant 11: shown, never clamped), once
per sale, since only the settlement that moves the row to ``applied`` records it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ..storage import audit
from ..storage.dbapi import Conn, skip_locked
from .deliveries import AUTH, PERMANENT, TRANSIENT, RetryPolicy
from .leases import Fence, fenced, still_fenced

APPLIED = "applied"  # the shop applied the key, now or before (its "applied" and "duplicate")


@dataclass(frozen=True, slots=True)
class Claimed:
    key: str
    channel: str
    sku: str
    delta: int
    reason: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Result:
    """What became of one claimed sale."""

    key: str
    status: str  # APPLIED | PERMANENT (refused) | TRANSIENT | AUTH (retried after a pause, no attempt counted)
    quantity: int | None = None  # the shop's stock after applying
    version: int | None = None  # the product's event version before it (events above it include it; old plugin: None)
    answer: str = ""  # the shop's per-item result: applied | duplicate | refused
    code: str = ""  # the shop's refusal code
    error: str = ""
    retry_after: float | None = None  # seconds: the shop's Retry-After, or the pause
    http_status: int | None = None
    latency_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Oversold:
    """An incident: ``key`` (a sale on ``channel``) left the shop's stock of ``sku`` at ``quantity`` < 0."""

    key: str
    channel: str
    sku: str
    quantity: int


def claim(
    conn: Conn,
    site: str,
    limit: int,
    token: str,
    lease_seconds: float,
    now: float,
    msg_id: str,
    fence: Fence | None = None,
) -> list[Claimed]:
    """Claim up to ``limit`` due sales of ``site`` and audit them as sent in request ``msg_id`` (while ``fence``
    holds: the relay works the site's shop, relay/delivery/leases.py)."""
    due, parameters = fenced(
        "SELECT key, channel, sku, delta, reason, attempts FROM sales"
        " WHERE site = ? AND state = 'pending' AND next_attempt_at <= ? AND (claim_token IS NULL OR lease_until < ?)",
        (site, now, now),
        fence,
    )
    rows = conn.execute(
        due + " ORDER BY next_attempt_at, received_at LIMIT ?" + skip_locked(conn), (*parameters, limit)
    ).fetchall()
    conn.executemany(
        "UPDATE sales SET claim_token = ?, lease_until = ?, updated_at = ? WHERE site = ? AND key = ?",
        [(token, now + lease_seconds, now, site, row[0]) for row in rows],
    )
    claimed = [Claimed(*row) for row in rows]
    audit.record(
        conn,
        [
            audit.entry(
                now,
                site,
                "adjust_sent",
                channel=c.channel,
                sku=c.sku,
                event_id=c.key,
                detail={"delta": c.delta, "reason": c.reason, "attempt": c.attempts + 1, "webhook_id": msg_id},
            )  # fmt: skip
            for c in claimed
        ],
    )
    return claimed


def settle(
    conn: Conn,
    site: str,
    token: str,
    claimed: Sequence[Claimed],
    results: Sequence[Result],
    policy: RetryPolicy,
    now: float,
    rand: random.Random,
    oversold: list[Oversold] | None = None,
    fence: Fence | None = None,
) -> int:
    """Record each result (only where our claim, and ``fence``, still hold); returns how many rows were ours. Each
    sale that left the shop below zero is audited as an incident and, when ``oversold`` is given, appended to it."""
    if not still_fenced(conn, fence):
        return 0  # another relay took the shop over and gave these sales back: its answer is the one recorded
    by_key = {c.key: c for c in claimed}
    logged: list[audit.Entry] = []
    settled = 0
    for result in results:
        item = by_key[result.key]
        where = (site, result.key, token)
        detail: dict[str, object] = {"attempt": item.attempts + 1}
        if result.status == APPLIED:
            cursor = conn.execute(
                "UPDATE sales SET state = 'applied', quantity = ?, shop_version = ?, attempts = attempts + 1,"
                " last_error = NULL, claim_token = NULL, lease_until = NULL, updated_at = ?"
                " WHERE site = ? AND key = ? AND claim_token = ?",
                (result.quantity, result.version, now, *where),
            )
            action, detail["result"] = "sale_applied", result.answer
            if cursor.rowcount and result.version is not None and item.delta < 0:
                rearm_undersold(conn, site, item.channel, item.sku, result.version, now)
        elif result.status == PERMANENT:
            reason = f"{result.code}: {result.error}" if result.code else result.error
            cursor = conn.execute(
                "UPDATE sales SET state = 'refused', attempts = attempts + 1, last_error = ?,"
                " claim_token = NULL, lease_until = NULL, updated_at = ? WHERE site = ? AND key = ? AND claim_token = ?",
                (reason, now, *where),
            )
            action, detail["reason"], detail["code"] = "dead_letter", reason, result.code
        else:
            if result.status == AUTH:  # paused: the claim is released, no attempt counted
                attempts, delay = item.attempts, result.retry_after or 0.0
            else:
                assert result.status == TRANSIENT
                attempts = item.attempts + 1
                delay = policy.delay(attempts, result.retry_after, rand)
            cursor = conn.execute(
                "UPDATE sales SET attempts = ?, next_attempt_at = ?, last_error = ?,"
                " claim_token = NULL, lease_until = NULL, updated_at = ? WHERE site = ? AND key = ? AND claim_token = ?",
                (attempts, now + delay, result.error, now, *where),
            )
            action, detail["outcome"], detail["error"] = "attempt", result.status, result.error
            detail["retry_in"] = round(delay, 3)
        if cursor.rowcount == 0:
            action, detail = "lease_lost", {}
        else:
            settled += 1
        logged.append(
            audit.entry(
                now,
                site,
                action,
                channel=item.channel,
                sku=item.sku,
                event_id=item.key,
                quantity=result.quantity,
                http_status=result.http_status,
                latency_ms=result.latency_ms,
                detail=detail,
            )  # fmt: skip
        )
        below = result.quantity is not None and result.quantity < 0
        if action == "sale_applied" and below and item.delta < 0:
            assert result.quantity is not None
            incident = Oversold(item.key, item.channel, item.sku, result.quantity)
            logged.append(_oversold_entry(conn, site, incident, item.delta, now))
            if oversold is not None:
                oversold.append(incident)
    audit.record(conn, logged)
    return settled


def rearm_undersold(conn: Conn, site: str, channel: str, sku: str, version: int, now: float) -> None:
    """The selling channel's last push of ``sku`` already held this sale (its event is newer than ``version``: the
    shop's change came back before the shop's answer to the adjust did) yet took it off again, since the sale was
    still pending then: that channel shows a unit fewer than the shop has, until the SKU changes again. Due once
    more, the same event is pushed again and, the sale now known to be in it, nothing is taken off. (A push of it
    still in flight is handled by its own settle, deliveries.settle.)"""
    conn.execute(
        "UPDATE deliveries SET state = 'pending', next_attempt_at = ?, pending_since = ?, updated_at = ?"
        " WHERE site = ? AND channel = ? AND sku = ? AND state = 'delivered' AND claim_token IS NULL"
        "   AND (SELECT e.version FROM events e WHERE e.seq = deliveries.delivered_seq) > ?",
        (now, now, now, site, channel, sku, version),
    )


def _oversold_entry(conn: Conn, site: str, incident: Oversold, delta: int, now: float) -> audit.Entry:
    """The incident's audit entry: this sale, and the sale that took the stock this sale found (the last unit, or
    the one before), found as the newest other applied sale of the SKU that answered that quantity. None is named
    when the shop's stock reached it otherwise (an edit in the shop, an order in the shop itself)."""
    found = incident.quantity - delta  # the shop's stock just before this sale
    rows = conn.execute(
        "SELECT key, channel, order_id, delta, quantity FROM sales WHERE site = ? AND key = ?"
        " UNION ALL SELECT * FROM (SELECT key, channel, order_id, delta, quantity FROM sales"
        "   WHERE site = ? AND sku = ? AND key <> ? AND state = 'applied' AND delta < 0 AND quantity = ?"
        "   ORDER BY updated_at DESC LIMIT 1) AS before_it",
        (site, incident.key, site, incident.sku, incident.key, found),
    ).fetchall()
    sales = [{"key": r[0], "channel": r[1], "order": r[2], "delta": r[3], "quantity": r[4]} for r in rows]
    detail = {
        "shop_quantity": incident.quantity,
        "channels": sorted({s["channel"] for s in sales}),
        "sales": sales,
    }
    return audit.entry(
        now, site, "oversold", channel=incident.channel, sku=incident.sku, event_id=incident.key,
        quantity=incident.quantity, detail=detail,
    )  # fmt: skip


def release(conn: Conn, site: str | None = None) -> int:
    """Drop claims so their rows are due again: one site's at its worker's stop, or every claim at start-up (the
    state directory's lock proves no other relay holds one)."""
    if site is None:
        return conn.execute(
            "UPDATE sales SET claim_token = NULL, lease_until = NULL WHERE claim_token IS NOT NULL"
        ).rowcount
    return conn.execute(
        "UPDATE sales SET claim_token = NULL, lease_until = NULL WHERE site = ? AND claim_token IS NOT NULL", (site,)
    ).rowcount


def next_due(conn: Conn, site: str) -> float | None:
    """View: when the site's next pending sale is due (wall clock), or None when nothing is pending."""
    due = conn.execute(
        "SELECT MIN(next_attempt_at) FROM sales WHERE site = ? AND state = 'pending'", (site,)
    ).fetchone()[0]
    return None if due is None else float(due)
