"""Per product: where each of a page of SKUs stands on every channel (``product.query``, the plugin's Products list).

One query answers a whole page (the plugin shows 20 products; up to MAX_SKUS are taken), and every table is reached by
its key or an index, never scanned, so the answer costs the same on a shop of a hundred SKUs as on one of a million
(tests/test_console_api.py checks the plan):

- deliveries by its primary key (site, channel, sku), for each asked SKU × the site's channels;
- the events it points at (what was confirmed, what waits) by ``seq``;
- the open dead letter by dead_letters_open_sku;
- the time a confirmation happened: a delivered row was last changed by it (``updated_at``); a row pending again (a
  newer value waits) or dead finds its confirmation in the audit log through audit_sku (that SKU's rows only), and
  only for those rows (CASE evaluates the lookup lazily);
- the channel's answer to a dead letter's last attempt, the same way and only where there is a dead letter.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from . import views
from .dbapi import Conn

MAX_SKUS = 100

PRODUCTS_SQL = (
    "WITH w (sku) AS (SELECT DISTINCT value FROM json_each(?2)), c (channel) AS (SELECT value FROM json_each(?3))"
    " SELECT w.sku, c.channel, d.state, d.delivered_quantity, d.attempts, d.first_failure_at, d.next_attempt_at,"
    "   d.last_error, d.pending_since, e.event_id, e.version, n.event_id, n.version, n.stock_quantity, n.product_id,"
    "   n.parent_id, n.received_at, l.id, l.reason, l.created_at, l.quantity, a.http_status,"
    "   json_extract(a.detail, '$.response'),"
    "   CASE WHEN d.state = 'delivered' THEN d.updated_at WHEN e.event_id IS NOT NULL THEN"
    "     (SELECT t.at FROM audit t WHERE t.site = ?1 AND t.sku = w.sku AND t.channel = c.channel"
    "       AND t.event_id = e.event_id AND t.action = 'attempt' AND json_extract(t.detail, '$.outcome') = 'ok'"
    "       ORDER BY t.id DESC LIMIT 1) END"
    " FROM w CROSS JOIN c"
    " LEFT JOIN deliveries d ON d.site = ?1 AND d.channel = c.channel AND d.sku = w.sku"
    " LEFT JOIN events e ON e.seq = d.delivered_seq"
    " LEFT JOIN events n ON n.seq = d.want_seq"
    " LEFT JOIN dead_letters l ON l.site = ?1 AND l.sku = w.sku AND l.channel = c.channel AND l.resolved_at IS NULL"
    " LEFT JOIN events f ON f.seq = l.event_seq"
    " LEFT JOIN audit a ON a.id = CASE WHEN l.id IS NOT NULL THEN"
    "   (SELECT MAX(t.id) FROM audit t WHERE t.site = ?1 AND t.sku = w.sku AND t.channel = c.channel"
    "     AND t.event_id = f.event_id AND t.action = 'attempt') END"
)


def products(
    conn: Conn, site: str, channels: Sequence[str], skus: Sequence[str], paused: Sequence[str] = ()
) -> dict[str, Any]:
    """For each SKU (in the order asked, repeats once), on each channel: what was last sent and confirmed and when, what
    waits to be sent, the last error in plain words, the open dead letter, and the event ids lineage.query starts
    from. ``paused``: the channels the operator paused (shown per channel, since their queue does not move).

    A SKU the relay has no delivery of on any channel is listed in ``unknown_skus`` instead (no shop change for it
    reached the relay, or the site has no channels)."""
    rows = conn.execute(PRODUCTS_SQL, (site, json.dumps(list(skus)), json.dumps(list(channels)))).fetchall()
    found: dict[str, list[dict[str, Any]]] = {}
    newest: dict[str, tuple[int, dict[str, Any]]] = {}
    for r in rows:
        sku, channel, state = r[0], r[1], r[2]
        entry = _channel_entry(r, channel in paused)
        found.setdefault(sku, []).append(entry)
        if state is not None and r[12] is not None and (sku not in newest or r[12] > newest[sku][0]):
            newest[sku] = (
                r[12],
                {"event_id": r[11], "version": r[12], "quantity": r[13], "product_id": r[14], "parent_id": r[15],
                 "received_at": r[16]},
            )  # fmt: skip
    answered, unknown = [], []
    for sku in dict.fromkeys(skus):
        if sku not in newest:
            unknown.append(sku)
            continue
        answered.append({"sku": sku, "newest_event": newest[sku][1], "channels": found.get(sku, [])})
    return views.with_iso({"products": answered, "unknown_skus": unknown})


def _channel_entry(r: Sequence[Any], paused: bool) -> dict[str, Any]:
    state = r[2] or "never_sent"
    dead = None
    if r[17] is not None:
        letter = {"reason": r[18], "http_status": r[21], "answer": r[22]}
        dead = {
            "id": r[17],
            "since": r[19],
            "quantity": r[20],
            "http_status": r[21],
            "answer": r[22],
            "message": views.dead_explanation(letter),
        }
    waiting = state == "pending"
    return {
        "channel": r[1],
        "state": state,  # delivered | pending | dead | never_sent
        "paused": paused,
        "confirmed_quantity": r[3] if r[9] is not None else None,
        "confirmed_at": r[23],
        "confirmed_event_id": r[9],
        "confirmed_version": r[10],
        "pending_quantity": r[13] if waiting else None,
        "pending_since": r[8] if waiting else None,
        "next_attempt_at": r[6] if waiting else None,
        "attempts": r[4] or 0,
        "failing_since": r[5] if waiting else None,
        "last_error": r[7],
        "dead_letter": dead,
        "newest_event_id": r[11],
    }
