"""What an operator reads: status, audit pages, dead letters, a SKU's lineage, and streamed exports.

Plain functions over a read-only ``Conn``, so the signed API (on a reader thread of the
running relay) and the CLI (straight on the database file, relay running or not) give the same answers.
Every result is plain JSON-able data; nothing here can see a secret (the database holds none).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from . import pauses
from .dbapi import Conn, stream

MAX_PAGE = 500
J = TypeVar("J")
# Fields that hold a time as Unix seconds. Each answer keeps the number (scripts and the WordPress plugin read it)
# and gets ``<name>_iso`` beside it: the same time in ISO 8601 UTC, e.g. "2026-12-03T12:00:00.558Z".
TIME_FIELDS = frozenset(
    {
        "at", "server_time", "last_event_at", "last_success", "created_at", "received_at", "updated_at",
        "next_attempt_at", "found_at", "started_at", "finished_at", "checked_at", "paused_at", "since",
        "confirmed_at", "pending_since", "failing_since", "orders_read_at",
    }
)  # fmt: skip


def iso(at: float | None) -> str | None:
    """Unix seconds as ISO 8601 UTC to the millisecond (``2026-12-03T12:00:00.558Z``); None stays None."""
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


def with_iso(value: J) -> J:
    """``value`` with an ``<name>_iso`` twin right after every time field of TIME_FIELDS, at any depth.

    Only numbers (and None) are twinned: a time the shop sent as text (``occurred_at``) is shown as sent.
    """
    if isinstance(value, list):
        return cast(J, [with_iso(item) for item in value])
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in TIME_FIELDS and (item is None or (isinstance(item, int | float) and not isinstance(item, bool))):
            out[key] = item
            out[f"{key}_iso"] = iso(item)
        elif key not in out:  # an ``_iso`` twin already made above is not overwritten
            out[key] = with_iso(item)
    return cast(J, out)


def channel_status(
    conn: Conn,
    site: str,
    channel: str,
    now: float,
    last_success: float | None = None,
    read_back_at: float | None = None,
) -> dict[str, Any]:
    """One channel's queue as the database sees it (the running relay adds circuit state).

    ``last_success``: when the caller already knows it (the running relay does), the audit log is not searched.
    ``read_back_at``: when the channel's last complete read-back round started (only the running relay knows).
    """
    counts = dict(
        conn.execute(
            "SELECT state, COUNT(*) FROM deliveries WHERE site = ? AND channel = ? GROUP BY state", (site, channel)
        ).fetchall()
    )
    # With what the plugin raises notices from: deliveries failing (waiting for a retry) and since when.
    oldest, in_flight, failing, failing_since = conn.execute(
        "SELECT MIN(pending_since), COUNT(*) FILTER (WHERE claim_token IS NOT NULL AND lease_until > ?),"
        " COUNT(first_failure_at),"
        " MIN(first_failure_at) FROM deliveries WHERE site = ? AND channel = ? AND state = 'pending'",
        (now, site, channel),
    ).fetchone()
    if last_success is None:
        # Newest first, stopping at the first match: cheap while the channel works, which is when it matters.
        success = conn.execute(
            "SELECT at FROM audit WHERE site = ? AND channel = ? AND action = 'attempt'"
            " AND json_extract(detail, '$.outcome') = 'ok' ORDER BY id DESC LIMIT 1",
            (site, channel),
        ).fetchone()
        last_success = None if success is None else success[0]
    error = conn.execute(
        "SELECT last_error, updated_at, sku FROM deliveries WHERE site = ? AND channel = ? AND last_error IS NOT NULL"
        " ORDER BY updated_at DESC LIMIT 1",
        (site, channel),
    ).fetchone()
    dead = conn.execute(
        "SELECT COUNT(*) FROM dead_letters WHERE site = ? AND channel = ? AND resolved_at IS NULL", (site, channel)
    ).fetchone()[0]
    # The newest dead letter, by dead_letters_open: its rows are in rowid order, so no sort.
    newest_dead = conn.execute(
        "SELECT sku, reason, created_at FROM dead_letters WHERE site = ? AND channel = ? AND resolved_at IS NULL"
        " ORDER BY id DESC LIMIT 1",
        (site, channel),
    ).fetchone()
    paused = pauses.pause_of(conn, site, channel)
    # When the channel's orders were last read whole (its sales cursor's poll; None: never, or not imported).
    read = conn.execute(
        "SELECT updated_at FROM sales_cursors WHERE site = ? AND channel = ?", (site, channel)
    ).fetchone()
    return with_iso(
        {
            "name": channel,
            "pending": counts.get("pending", 0),
            "in_flight": in_flight or 0,
            "delivered": counts.get("delivered", 0),
            "oldest_pending_age": None if oldest is None else round(max(0.0, now - oldest), 3),
            "dead_letters": dead,
            "last_success": last_success,
            "last_error": None if error is None else {"message": error[0], "at": error[1], "sku": error[2]},
            "drift": {**drift(conn, site, channel), "checked_at": checked_at(conn, site, read_back_at)},
            "paused": None if paused is None else paused.as_dict(),
            "orders_read_at": None if read is None else read[0],
            "failing": {"items": failing, "since": failing_since},
            "newest_dead_letter": None
            if newest_dead is None
            else {"sku": newest_dead[0], "reason": newest_dead[1], "since": newest_dead[2]},
        }
    )


# A drift row stays open until the channel's delivery is confirmed after it was found (or forever, for a
# SKU the channel does not list): pending and dead deliveries still differ from the shop.
_OPEN_DRIFT = (
    " FROM drift f LEFT JOIN deliveries d ON d.site = f.site AND d.channel = f.channel AND d.sku = f.sku"
    " WHERE f.site = ? AND f.channel = ? AND (d.state IS NULL OR d.state <> 'delivered' OR d.updated_at < f.found_at)"
)


def drift(conn: Conn, site: str, channel: str, examples: int = 5) -> dict[str, Any]:
    """How many SKUs a channel is known to show wrongly (found by reconciliation or read-back), worst first."""
    count = conn.execute("SELECT COUNT(*)" + _OPEN_DRIFT, (site, channel)).fetchone()[0]
    rows = conn.execute(
        "SELECT f.sku, f.expected, f.shown, f.reason, f.found_at"
        + _OPEN_DRIFT
        + " ORDER BY abs(coalesce(f.expected, 0) - coalesce(f.shown, 0)) DESC, f.found_at LIMIT ?",
        (site, channel, examples),
    ).fetchall()
    names = ("sku", "expected", "shown", "reason", "found_at")
    return {"differ": count, "examples": [with_iso(dict(zip(names, row, strict=True))) for row in rows]}


def checked_at(conn: Conn, site: str, read_back_at: float | None = None) -> float | None:
    """When the channel was last compared with the truth: the newest reconciliation pass that finished without
    error (it covers every channel of the site), or its last complete read-back round, whichever is newer.

    None means never: "0 SKUs differ" would then be a guess, so the answer says so (a drift count alone cannot).
    """
    row = conn.execute(
        "SELECT MAX(finished_at) FROM reconcile_runs WHERE site = ? AND finished_at IS NOT NULL AND error IS NULL",
        (site,),
    ).fetchone()
    found = [at for at in (row[0], read_back_at) if at is not None]
    return max(found) if found else None


def last_run(conn: Conn, site: str, kind: str | None = None) -> dict[str, Any] | None:
    """The newest finished reconciliation pass (of ``kind``, or any), successful or not."""
    sql = "SELECT kind, started_at, finished_at, shop_time, items, corrections, error FROM reconcile_runs"
    sql += " WHERE site = ? AND finished_at IS NOT NULL" + (" AND kind = ?" if kind else "") + " ORDER BY id DESC"
    row = conn.execute(sql + " LIMIT 1", (site, kind) if kind else (site,)).fetchone()
    names = ("kind", "started_at", "finished_at", "shop_time", "items", "corrections", "error")
    return None if row is None else with_iso(dict(zip(names, row, strict=True)))


def reconcile_status(conn: Conn, site: str) -> dict[str, Any]:
    return {"last": last_run(conn, site), "last_full": last_run(conn, site, "full")}


def last_event_at(conn: Conn, site: str) -> float | None:
    row = conn.execute("SELECT received_at FROM events WHERE site = ? ORDER BY seq DESC LIMIT 1", (site,)).fetchone()
    return None if row is None else float(row[0])


def sales_status(conn: Conn, site: str, now: float, examples: int = 5) -> dict[str, Any]:
    """Sales other systems reported for the shop (relay/intake/sales.py): how many wait, were applied or refused,
    the newest error of one still waiting, and a few refused ones with the shop's reason."""
    counts = dict(conn.execute("SELECT state, count(*) FROM sales WHERE site = ? GROUP BY state", (site,)).fetchall())
    oldest = conn.execute(
        "SELECT min(received_at) FROM sales WHERE site = ? AND state = 'pending'", (site,)
    ).fetchone()[0]
    error = conn.execute(
        "SELECT key, last_error, updated_at FROM sales WHERE site = ? AND state = 'pending' AND last_error IS NOT NULL"
        " ORDER BY updated_at DESC LIMIT 1",
        (site,),
    ).fetchone()
    refused = conn.execute(
        "SELECT key, sku, delta, last_error, updated_at FROM sales WHERE site = ? AND state = 'refused'"
        " ORDER BY updated_at DESC LIMIT ?",
        (site, examples),
    ).fetchall()
    return {
        "pending": counts.get("pending", 0),
        "applied": counts.get("applied", 0),
        "refused": counts.get("refused", 0),
        "oldest_pending_age": None if oldest is None else max(0.0, now - oldest),
        "last_error": None if error is None else {"key": error[0], "message": error[1], "at": error[2]},
        "refused_examples": [
            {"key": r[0], "sku": r[1], "delta": r[2], "reason": r[3], "updated_at": r[4]} for r in refused
        ],
    }


OVERSOLD_DAYS = 7


def oversold_status(conn: Conn, site: str, now: float, days: int = OVERSOLD_DAYS) -> dict[str, Any]:
    """Oversold incidents (relay/delivery/adjustments.py) of the last ``days`` days: how many, and the newest."""
    since = now - days * 86400
    count = conn.execute(
        "SELECT COUNT(*) FROM audit WHERE at >= ? AND site = ? AND action = 'oversold'", (since, site)
    ).fetchone()[0]
    newest = conn.execute(
        f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit WHERE at >= ? AND site = ? AND action = 'oversold'"
        " ORDER BY id DESC LIMIT 1",
        (since, site),
    ).fetchone()
    return {"days": days, "incidents": count, "newest": None if newest is None else oversold_incident(newest)}


def oversold_incident(row: Sequence[Any] | dict[str, Any]) -> dict[str, Any]:
    """An ``oversold`` audit row as an incident: SKU, the shop's quantity after it, the channels and the sales."""
    entry = row if isinstance(row, dict) else _audit_row(row)
    detail = entry.get("detail") or {}
    return with_iso(
        {
            "at": entry["at"],
            "sku": entry["sku"],
            "channel": entry["channel"],
            "key": entry["event_id"],
            "shop_quantity": entry["quantity"],
            "channels": detail.get("channels", [entry["channel"]]),
            "sales": detail.get("sales", []),
        }
    )


@dataclass(frozen=True)
class AuditFilter:
    sku: str | None = None
    channel: str | None = None
    event_id: str | None = None
    since: float | None = None
    until: float | None = None
    action: str | None = None


AUDIT_COLUMNS = (
    "id", "at", "site", "channel", "sku", "event_id", "version", "action", "quantity", "http_status", "latency_ms",
    "detail",
)  # fmt: skip


def audit_page(
    conn: Conn, site: str, where: AuditFilter, limit: int = 100, before: int | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first; returns the page and the cursor for the next one (None at the end)."""
    limit = max(1, min(limit, MAX_PAGE))
    sql, params = _audit_where(site, where)
    if before is not None:
        sql += " AND id < ?"
        params.append(before)
    rows = conn.execute(
        f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit WHERE {sql} ORDER BY id DESC LIMIT ?", (*params, limit + 1)
    ).fetchall()
    page = [_audit_row(row) for row in rows[:limit]]
    return page, (page[-1]["id"] if len(rows) > limit else None)


def _audit_where(site: str, where: AuditFilter) -> tuple[str, list[Any]]:
    sql = "site = ?"
    params: list[Any] = [site]
    columns = (("sku", where.sku), ("channel", where.channel), ("event_id", where.event_id), ("action", where.action))
    for column, value in columns:
        if value is not None:
            sql += f" AND {column} = ?"
            params.append(value)
    if where.since is not None:
        sql += " AND at >= ?"
        params.append(where.since)
    if where.until is not None:
        sql += " AND at < ?"
        params.append(where.until)
    return sql, params


def _audit_row(row: Sequence[Any]) -> dict[str, Any]:
    item = dict(zip(AUDIT_COLUMNS, row, strict=True))
    item["detail"] = json.loads(item["detail"]) if item["detail"] else None
    return with_iso(item)


def _dead_where(site: str, channel: str | None, sku: str | None) -> tuple[str, list[Any]]:
    sql, params = " WHERE l.site = ? AND l.resolved_at IS NULL", [site]
    for column, value in (("channel", channel), ("sku", sku)):
        if value is not None:
            sql += f" AND l.{column} = ?"
            params.append(value)
    return sql, params


def dead_explanation(letter: dict[str, Any]) -> str:
    """A dead letter in plain words: the relay's reason and, where the channel answered, its answer ("(422)" alone
    says nothing), on one line."""
    reason = str(letter.get("reason") or "")
    answer = letter.get("answer")
    if answer and str(answer) not in reason:
        status = f"HTTP {letter['http_status']} " if letter.get("http_status") else ""
        reason += f"; answered {status}{answer}"
    return " ".join(reason.split())


def dead_letters(
    conn: Conn,
    site: str,
    channel: str | None = None,
    sku: str | None = None,
    limit: int | None = None,
    before: int | None = None,
) -> list[dict[str, Any]]:
    """Open dead letters, newest first, with the quantity the shop has now beside the one that failed, and the
    channel's own answer to the attempt that failed (``http_status`` and ``answer``, the audit log's excerpt; both in
    plain words as ``message``). ``before``: only letters older than that id (the next page's cursor)."""
    where, params = _dead_where(site, channel, sku)
    if before is not None:
        where += " AND l.id < ?"
        params.append(before)
    sql = (
        "SELECT l.id, l.channel, l.sku, l.quantity, l.reason, l.created_at, e.event_id, e.version, e.stock_quantity,"
        " a.http_status, json_extract(a.detail, '$.response'), e.product_id, e.parent_id"
        " FROM dead_letters l LEFT JOIN deliveries d ON d.site = l.site AND d.channel = l.channel AND d.sku = l.sku"
        " LEFT JOIN events e ON e.seq = d.want_seq LEFT JOIN events f ON f.seq = l.event_seq"
        # the last attempt that carried the dead-lettered event (audit_sku finds the SKU's rows; few per SKU)
        " LEFT JOIN audit a ON a.id = (SELECT MAX(t.id) FROM audit t WHERE t.site = l.site AND t.sku = l.sku"
        "   AND t.channel = l.channel AND t.event_id = f.event_id AND t.action = 'attempt')"
        + where
        + " ORDER BY l.id DESC"
    )
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    names = (
        "id", "channel", "sku", "quantity", "reason", "created_at", "event_id", "version", "shop_quantity",
        "http_status", "answer", "product_id", "parent_id",
    )  # fmt: skip
    letters = [dict(zip(names, row, strict=True)) for row in conn.execute(sql, params)]
    return [with_iso({**letter, "message": dead_explanation(letter)}) for letter in letters]


def count_dead_letters(conn: Conn, site: str, channel: str | None = None, sku: str | None = None) -> int:
    where, params = _dead_where(site, channel, sku)
    return int(conn.execute("SELECT COUNT(*) FROM dead_letters l" + where, params).fetchone()[0])


def lineage(conn: Conn, site: str, sku: str, limit: int = 50, channels_sold: Sequence[str] = ()) -> dict[str, Any]:
    """For one SKU: each recent shop event, what became of it on every channel, and where each channel stands now.

    This answers "why does Amazon show 3?": the channel's current row names the event it last
    delivered (version, cause, order), and each event lists the attempts that carried it, or the
    newer event it was coalesced into. ``channels_sold`` (the site's channels) adds the SKU's recent sales from
    those channels, each with the shop's quantity after it and the shop event that carried it back out.
    """
    events = [
        {
            "event_id": r[0], "version": r[1], "kind": r[2], "quantity": r[3], "stock_status": r[4],
            "cause": r[5], "order_id": r[6], "occurred_at": r[7], "received_at": r[8], "outcome": r[9],
            "seq": r[10], "channels": {},
        }
        for r in conn.execute(
            "SELECT event_id, version, kind, stock_quantity, stock_status, cause_kind, cause_order_id, occurred_at,"
            " received_at, outcome, seq FROM events WHERE seq IN ("
            "   SELECT e.seq FROM audit a JOIN events e ON e.site = a.site AND e.event_id = a.event_id"
            "   WHERE a.site = ? AND a.sku = ? AND a.channel IS NULL ORDER BY a.id DESC LIMIT ?)"
            " ORDER BY seq",
            (site, sku, limit),
        )
    ]  # fmt: skip
    by_id = {e["event_id"]: e for e in events}
    for r in conn.execute(
        "SELECT channel, event_id, action, quantity, http_status, latency_ms, detail, at FROM audit"
        " WHERE site = ? AND sku = ? AND channel IS NOT NULL ORDER BY id",
        (site, sku),
    ):
        event = by_id.get(r[1])
        if event is not None:
            detail = json.loads(r[6]) if r[6] else {}
            event["channels"].setdefault(r[0], []).append(
                {"action": r[2], "quantity": r[3], "http_status": r[4], "latency_ms": r[5], "at": r[7], **detail}
            )
    channels = []
    for r in conn.execute(
        "SELECT d.channel, d.state, d.delivered_quantity, d.last_error, d.attempts, d.next_attempt_at,"
        " e.event_id, e.version, e.cause_kind, e.cause_order_id, w.event_id, w.version, w.stock_quantity"
        " FROM deliveries d LEFT JOIN events e ON e.seq = d.delivered_seq LEFT JOIN events w ON w.seq = d.want_seq"
        " WHERE d.site = ? AND d.sku = ? ORDER BY d.channel",
        (site, sku),
    ):
        channels.append(
            {
                "channel": r[0], "state": r[1], "shows": r[2], "last_error": r[3], "attempts": r[4],
                "next_attempt_at": r[5] if r[1] == "pending" else None,
                "delivered_event": None if r[6] is None else
                {"event_id": r[6], "version": r[7], "cause": r[8], "order_id": r[9]},
                "newest_event": {"event_id": r[10], "version": r[11], "quantity": r[12]},
            }
        )  # fmt: skip
    # An accepted event with no attempt on a channel was either coalesced into a newer one that went
    # out in its place, or is still waiting for its turn.
    for channel in (c["channel"] for c in channels):
        carried_by = None
        for event in reversed(events):
            if event["outcome"] != "accepted":
                continue
            if channel in event["channels"]:
                carried_by = event["event_id"]
            elif carried_by is not None:
                event["channels"][channel] = [{"action": "coalesced", "into": carried_by}]
            else:
                event["channels"][channel] = [{"action": "waiting"}]
    sales = recent_sales(conn, site, sku, channels_sold, events, limit)
    return with_iso({"site": site, "sku": sku, "channels": channels, "events": events, "sales": sales})


def recent_sales(
    conn: Conn,
    site: str,
    sku: str,
    channels: Sequence[str],
    events: Sequence[dict[str, Any]],
    limit: int,
) -> list[dict[str, Any]]:
    """The SKU's newest sales, cancellations and refunds (by the ``sales_sku`` index, channel by channel), each with
    the shop event that carried it: the first event above the version the shop answered (the plugin's adjust
    route), or, from an older plugin, the first of the relay's own events received after it was applied."""
    if not channels:
        return []
    marks = ",".join("?" * len(channels))
    rows = conn.execute(
        "SELECT key, channel, order_id, line_id, delta, reason, state, quantity, received_at, updated_at,"
        f" shop_version, last_error FROM sales WHERE site = ? AND channel IN ({marks}) AND sku = ?"
        " ORDER BY received_at DESC LIMIT ?",
        (site, *channels, sku, limit),
    ).fetchall()
    found = []
    for r in rows:
        carried = None
        if r[6] == "applied":
            carried = next(
                (
                    e["event_id"]
                    for e in events
                    if (
                        e["version"] > r[10]
                        if r[10] is not None
                        else e["cause"] == "relay" and e["received_at"] >= r[9]
                    )
                ),
                None,
            )
        found.append(
            {
                "key": r[0], "channel": r[1], "order": r[2], "line": r[3], "delta": r[4], "reason": r[5],
                "state": r[6], "shop_quantity": r[7], "received_at": r[8], "updated_at": r[9], "refused": r[11],
                "carried_by": carried,
            }
        )  # fmt: skip
    return found


STATE_COLUMNS = ("channel", "sku", "state", "shows", "delivered_version", "wanted_quantity", "updated_at")
# What an export's rows hold (the CSV header): the columns, each time followed by its ISO 8601 twin.
EXPORT_COLUMNS = {
    what: tuple(
        name for column in columns for name in ((column, f"{column}_iso") if column in TIME_FIELDS else (column,))
    )
    for what, columns in (("state", STATE_COLUMNS), ("audit", AUDIT_COLUMNS))
}


def iter_state(conn: Conn, site: str) -> Iterator[dict[str, Any]]:
    """Every (channel, SKU): what the channel was last told, and what it should show. Streamed row by row."""
    cursor = stream(
        conn,
        "SELECT d.channel, d.sku, d.state, d.delivered_quantity, e.version, w.stock_quantity, d.updated_at"
        " FROM deliveries d LEFT JOIN events e ON e.seq = d.delivered_seq LEFT JOIN events w ON w.seq = d.want_seq"
        " WHERE d.site = ? ORDER BY d.channel, d.sku",
        (site,),
    )
    for row in cursor:
        yield with_iso(dict(zip(STATE_COLUMNS, row, strict=True)))


def iter_audit(conn: Conn, site: str, where: AuditFilter) -> Iterator[dict[str, Any]]:
    """The audit log oldest first, streamed (the cursor walks the table; memory stays flat)."""
    sql, params = _audit_where(site, where)
    for row in stream(conn, f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit WHERE {sql} ORDER BY id", params):
        yield _audit_row(row)


def count_rows(conn: Conn, site: str, what: str, where: AuditFilter) -> int:
    """How many rows an export will write (for the progress display)."""
    if what == "state":
        return int(conn.execute("SELECT COUNT(*) FROM deliveries WHERE site = ?", (site,)).fetchone()[0])
    sql, params = _audit_where(site, where)
    return int(conn.execute(f"SELECT COUNT(*) FROM audit WHERE {sql}", params).fetchone()[0])
