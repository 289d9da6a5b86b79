"""The deliveries table's write jobs: make a delivery due, claim due deliveries under a lease, settle their outcomes.

One row per (site, channel, SKU) points at the newest event to publish there (``want_seq``): making it due
again only moves that pointer, so however often a SKU changes, at most one update per channel is pending.
A claim stamps each row with a fresh ``claim_token`` and a ``lease_until``. Every settlement is
conditional on that token, so a worker that stalled past its lease (or a process that died) can
never settle a row that someone else has since claimed: its update simply matches no row.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..storage import audit
from ..storage.dbapi import Conn, is_postgres, skip_locked
from .leases import Fence, fenced

OK, SKIPPED, TRANSIENT, PERMANENT, AUTH = "ok", "skipped", "transient", "permanent", "auth"
HELD = "held"  # a marketplace quota for a long window is spent (relay/connectors/quota.py): settled like AUTH
MAX_RETRY_AFTER = 86_400.0  # a remote asking for more than a day is misbehaving; retry after a day anyway


# Runs on every confirmed delivery: it must find the SKU's open dead letter through an index
# (dead_letters_open_sku), never by reading all of the channel's open ones.
RESOLVE_DEAD_LETTER = (
    "UPDATE dead_letters SET resolved_at = ? WHERE site = ? AND channel = ? AND sku = ? AND resolved_at IS NULL"
)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A due delivery with the event it must publish (always the newest for its SKU)."""

    sku: str
    seq: int
    attempts: int
    event_id: str
    kind: str
    product_id: int
    manage_stock: bool
    stock_quantity: int | None
    stock_status: str
    version: int
    received_at: float  # when the shop's change reached the relay: the start of ingest→delivered latency
    # This channel's own sales of the SKU that ``stock_quantity`` does not include yet (UNAPPLIED_SALES): (key, units)
    # each. The channel already took them off; pushing the shop's quantity unreduced would offer them again.
    unapplied: tuple[tuple[str, int], ...] = ()

    @property
    def unapplied_units(self) -> int:
        return sum(units for _, units in self.unapplied)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one claimed delivery."""

    sku: str
    status: str  # OK | SKIPPED | TRANSIENT | PERMANENT | AUTH | HELD
    quantity: int | None = None
    error: str = ""
    retry_after: float | None = None
    http_status: int | None = None
    latency_ms: float | None = None
    excerpt: str = ""


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float
    max_seconds: float
    give_up_after_seconds: float

    def delay(self, attempts: int, retry_after: float | None, rand: random.Random) -> float:
        """Exponential backoff with equal jitter, never sooner than the remote's Retry-After."""
        ceiling = min(self.max_seconds, self.base_seconds * 2.0 ** min(attempts - 1, 30))
        delay = ceiling / 2 + rand.uniform(0, ceiling / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return delay


# Making a delivery due, for every writer: point (site, channel, sku) at event ?4, due at ?5; ?6 is now.
# {restart} false, a new value (ingest, reconcile, read-back): a row already pending keeps its backoff, retry count
# and coalescing wait (a new value must not hammer a failing channel); a delivered or dead one is due at ?5 with a
# fresh retry count; an older event never replaces a newer one.
# {restart} true, a restart (replay): whatever its state, the row is due at ?5 with a fresh retry count and no last
# error, and keeps the event it points at (?4 is for a row that does not exist yet).
# pending_since is NULL exactly when a row is not pending (settle and _dead_letter keep it so).
_MAKE_DUE = (
    "INSERT INTO deliveries AS d (site, channel, sku, want_seq, state, next_attempt_at, updated_at, pending_since)"
    " VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?6)"
    " ON CONFLICT (site, channel, sku) DO UPDATE SET"
    "   want_seq = CASE WHEN {restart} THEN d.want_seq ELSE excluded.want_seq END,"
    "   pending_since = CASE WHEN d.state = 'pending' THEN d.pending_since ELSE excluded.pending_since END,"
    "   next_attempt_at = CASE WHEN d.state = 'pending' AND NOT {restart} THEN d.next_attempt_at"
    "     ELSE excluded.next_attempt_at END,"
    "   attempts = CASE WHEN d.state = 'pending' AND NOT {restart} THEN d.attempts ELSE 0 END,"
    "   first_failure_at = CASE WHEN d.state = 'pending' AND NOT {restart} THEN d.first_failure_at ELSE NULL END,"
    "   last_error = CASE WHEN {restart} THEN NULL ELSE d.last_error END,"
    "   state = 'pending',"
    "   updated_at = excluded.updated_at"
    " WHERE {restart} OR excluded.want_seq >= d.want_seq"
)
# {restart} is written in as a literal, not bound: SQLite folds it away, where a parameter would cost ingest's
# executemany of this statement about 12 %.
MAKE_DUE = {restart: _MAKE_DUE.format(restart=str(restart).upper()) for restart in (False, True)}
Due = tuple[str, str, str, int, float, float]  # MAKE_DUE's parameters: site, channel, sku, seq, due_at, now


def make_due(
    conn: Conn,
    site: str,
    channel: str,
    sku: str,
    seq: int,
    now: float,
    *,
    due_at: float | None = None,
    restart: bool = False,
) -> None:
    """Point (site, channel, sku) at event ``seq`` and make it due (at ``due_at``, default now): see MAKE_DUE.

    Coalescing means only the newest event is ever sent. A row already pending keeps its backoff; one that
    was delivered or dead becomes due with a fresh retry count. ``restart`` (replay): due now with a fresh
    retry count even when pending, keeping the event the row points at.
    """
    conn.execute(MAKE_DUE[restart], (site, channel, sku, seq, now if due_at is None else due_at, now))


def make_due_many(conn: Conn, rows: Iterable[Due], *, restart: bool = False) -> None:
    """``make_due`` for many rows with one statement (ingest's group of batches), in key order: the upsert keeps the
    largest seq whatever the order, and on PostgreSQL rows locked in one order by every writer cannot deadlock
    (a settle locks its rows in that order too, ``LOCK_ORDER``)."""
    conn.executemany(MAKE_DUE[restart], sorted(rows, key=lambda row: (row[0], row[1], row[2], row[3])))


# A channel's own sales of a SKU that the shop's quantity in event ?seq does not include yet (invariant 11): still
# pending for the shop, or applied at or after that event reached the relay (the shop's change is on its way back)
# unless the shop's answer says the event is newer than the sale (shop_version, schema 11: the shop's change came
# back before its answer did, and the event holds the sale).
# ?3 is a JSON list of [sku, seq]; each is two lookups by the index sales_sku (the sales table is never pruned).
# Read-back asks it before raising a lower count; a claim, for the quantity it pushes (``claim``).
UNAPPLIED_SALES = (
    "WITH wanted (sku, since, version) AS (SELECT json_extract(j.value, '$[0]'), COALESCE(e.received_at, 0.0),"
    "   COALESCE(e.version, 0) FROM json_each(?3) j LEFT JOIN events e ON e.seq = json_extract(j.value, '$[1]'))"
    " SELECT w.sku, s.key, s.delta FROM wanted w CROSS JOIN sales s INDEXED BY sales_sku"
    "   WHERE s.site = ?1 AND s.channel = ?2 AND s.sku = w.sku AND s.state = 'pending'"
    " UNION ALL SELECT w.sku, s.key, s.delta FROM wanted w CROSS JOIN sales s INDEXED BY sales_sku"
    "   WHERE s.site = ?1 AND s.channel = ?2 AND s.sku = w.sku AND s.state = 'applied' AND s.updated_at >= w.since"
    "     AND (s.shop_version IS NULL OR s.shop_version >= w.version)"
    " ORDER BY 1, 2"
)
UNAPPLIED_SALES_PG = (  # the same: PostgreSQL reads the JSON list its own way, and needs the seq as a number
    "WITH wanted (sku, since, version) AS (SELECT j.value->>0, COALESCE(e.received_at, 0.0),"
    "   COALESCE(e.version, 0) FROM json_array_elements(?3::json) j LEFT JOIN events e ON e.seq = (j.value->>1)::bigint)"
    + UNAPPLIED_SALES[UNAPPLIED_SALES.index(" SELECT w.sku") :]
)


def unapplied_sales(
    conn: Conn, site: str, channel: str, wanted: Iterable[tuple[str, int]]
) -> dict[str, list[tuple[str, int]]]:
    """View: for each (SKU, event seq) wanted, the channel's sales, cancellations and refunds of the SKU (key, delta)
    that the event's quantity does not include yet (UNAPPLIED_SALES); SKUs with none are left out."""
    found: dict[str, list[tuple[str, int]]] = {}
    statement = UNAPPLIED_SALES_PG if is_postgres(conn) else UNAPPLIED_SALES
    for sku, key, delta in conn.execute(statement, (site, channel, json.dumps(list(wanted)))):
        found.setdefault(sku, []).append((key, int(delta)))
    return found


# Claiming the rows ``claim`` chose: one statement for the batch, ?3 a JSON list of their SKUs. It runs in the same
# transaction as the choice, so every row is still due and unclaimed.
CLAIM_ROWS = (
    "UPDATE deliveries SET claim_token = ?4, lease_until = ?5, claimed_seq = want_seq"
    " WHERE site = ?1 AND channel = ?2 AND sku IN (SELECT value FROM json_each(?3))"
)


def claim(
    conn: Conn,
    site: str,
    channel: str,
    limit: int,
    token: str,
    lease_seconds: float,
    now: float,
    fence: Fence | None = None,
) -> list[Claimed]:
    """Claim up to ``limit`` due deliveries, each with the newest event and the channel's own sales of the SKU that
    event does not include yet: three statements for the batch, whatever its size. Only sales count: a cancellation
    or refund not yet applied is left to arrive through the shop (nothing is raised on a restock the shop has not
    made)."""
    due, parameters = fenced(
        "SELECT d.sku, d.want_seq, d.attempts, e.event_id, e.kind, e.product_id, e.manage_stock,"
        " e.stock_quantity, e.stock_status, e.version, e.received_at"
        " FROM deliveries d JOIN events e ON e.seq = d.want_seq"
        " WHERE d.site = ? AND d.channel = ? AND d.state = 'pending' AND d.next_attempt_at <= ?"
        "   AND (d.claim_token IS NULL OR d.lease_until < ?)",
        (site, channel, now, now),
        fence,
    )
    rows = conn.execute(
        due + " ORDER BY d.next_attempt_at LIMIT ?" + skip_locked(conn, of="d"), (*parameters, limit)
    ).fetchall()
    if not rows:
        return []
    conn.execute(CLAIM_ROWS, (site, channel, json.dumps([row[0] for row in rows]), token, now + lease_seconds))
    sold = unapplied_sales(conn, site, channel, [(row[0], row[1]) for row in rows])
    return [
        Claimed(
            sku=r[0], seq=r[1], attempts=r[2], event_id=r[3], kind=r[4], product_id=r[5],
            manage_stock=bool(r[6]), stock_quantity=r[7], stock_status=r[8], version=r[9], received_at=r[10],
            unapplied=tuple((key, -delta) for key, delta in sold.get(r[0], ()) if delta < 0),
        )
        for r in rows
    ]  # fmt: skip


def shop_quantity(item: Claimed) -> int | None:
    """The shop's quantity to publish for a claimed delivery: the event's, less the channel's own sales it does not
    include yet (see ``claim``); the stock rules then floor it at 0."""
    if item.stock_quantity is None or not item.manage_stock:
        return item.stock_quantity
    return item.stock_quantity - item.unapplied_units


def unapplied_note(item: Claimed, sent: int | None, shown: int = 5) -> str:
    """The audit's account of a quantity lowered by the channel's own unapplied sales, e.g. "sent 4: shop 5, less 1
    unit of this channel's sale ebay:O-1:L1 not yet in the shop"; "" when nothing was taken off."""
    units = item.unapplied_units
    if not units or item.stock_quantity is None or not item.manage_stock:
        return ""
    keys = [key for key, _ in item.unapplied]
    named = ", ".join(keys[:shown]) + (f" and {len(keys) - shown} more" if len(keys) > shown else "")
    what = f"{units} unit{'s' if units != 1 else ''} of this channel's sale{'s' if len(keys) != 1 else ''} {named}"
    return f"sent {sent}: shop {item.stock_quantity}, less {what} not yet in the shop"


def _push_again_if_undersold(conn: Conn, site: str, channel: str, item: Claimed, now: float) -> None:
    """This push took off sales the shop had already applied when it sent the pushed event (their answers, which
    came after the claim, name a version below the event's): the channel was sent too few units, so the same event
    is due again and will be sent whole. (A push already settled is made due by the sale's settle instead:
    adjustments.rearm_undersold.)"""
    keys = [key for key, _ in item.unapplied]
    marks = ",".join("?" * len(keys))
    included = conn.execute(
        f"SELECT 1 FROM sales WHERE site = ? AND key IN ({marks}) AND state = 'applied' AND shop_version < ? LIMIT 1",
        (site, *keys, item.version),
    ).fetchone()
    if included:
        conn.execute(
            "UPDATE deliveries SET state = 'pending', next_attempt_at = ?, pending_since = ?"
            " WHERE site = ? AND channel = ? AND sku = ?",
            (now, now, site, channel, item.sku),
        )


# Which of a batch's SKUs (?3, a JSON list) are still ours: claimed under token ?4. Settling runs in the claim holder's
# write transaction, so what this finds is what each row's own conditional update would have matched. first_failure_at
# is the retry budget a transient failure counts against.
STILL_OURS = (
    "SELECT sku, first_failure_at FROM deliveries"
    " WHERE site = ?1 AND channel = ?2 AND sku IN (SELECT value FROM json_each(?3)) AND claim_token = ?4"
)
# PostgreSQL: lock a settle's rows up front, in key order (make_due_many's), so its updates take no lock later.
LOCK_ORDER = " ORDER BY sku FOR UPDATE"
STILL_OURS_FENCED = STILL_OURS + (
    " AND EXISTS (SELECT 1 FROM worker_leases WHERE site = ?1 AND worker = ?2 AND holder = ?5 AND token = ?6)"
)
# Each settlement: one statement per kind of outcome for the whole batch (executemany), every one still conditional
# on the claim token; the fixed parameters last: site, channel, sku, token.
_OURS = " WHERE site = ? AND channel = ? AND sku = ? AND claim_token = ?"
SETTLE_DONE = (  # OK or SKIPPED: delivered, unless a newer event arrived meanwhile (it stays pending: coalescing)
    "UPDATE deliveries SET delivered_seq = claimed_seq, delivered_quantity = ?, claim_token = NULL,"
    " lease_until = NULL, attempts = 0, first_failure_at = NULL, last_error = NULL, next_attempt_at = ?,"
    " pending_since = CASE WHEN want_seq > claimed_seq THEN ? END,"
    " state = CASE WHEN want_seq > claimed_seq THEN 'pending' ELSE 'delivered' END, updated_at = ?" + _OURS
)
# The same for a whole batch in one statement, on PostgreSQL: there a statement per row cost ~50 µs of the server's
# (each row's update also inserts into both of the table's indexes), the largest share of its work per event.
SETTLE_DONE_PG = (
    "UPDATE deliveries AS d SET delivered_seq = d.claimed_seq, delivered_quantity = v.quantity, claim_token = NULL,"
    " lease_until = NULL, attempts = 0, first_failure_at = NULL, last_error = NULL, next_attempt_at = ?1,"
    " pending_since = CASE WHEN d.want_seq > d.claimed_seq THEN ?1 END,"
    " state = CASE WHEN d.want_seq > d.claimed_seq THEN 'pending' ELSE 'delivered' END, updated_at = ?1"
    " FROM unnest(?2::text[], ?3::bigint[]) AS v(sku, quantity)"
    " WHERE d.site = ?4 AND d.channel = ?5 AND d.sku = v.sku AND d.claim_token = ?6"
)
SETTLE_PAUSED = (  # AUTH or HELD: the channel is paused; the claim is released, no attempt counted
    "UPDATE deliveries SET claim_token = NULL, lease_until = NULL, last_error = ?, updated_at = ?" + _OURS
)
SETTLE_RETRY = (  # TRANSIENT within the retry budget
    "UPDATE deliveries SET claim_token = NULL, lease_until = NULL, attempts = ?, first_failure_at = ?,"
    " next_attempt_at = ?, last_error = ?, updated_at = ?" + _OURS
)
SETTLE_DEAD = (  # PERMANENT, or TRANSIENT past the budget: dead, unless a newer value arrived meanwhile (its own try)
    "UPDATE deliveries SET claim_token = NULL, lease_until = NULL, last_error = ?, updated_at = ?,"
    " state = CASE WHEN want_seq > claimed_seq THEN 'pending' ELSE 'dead' END,"
    " pending_since = CASE WHEN want_seq > claimed_seq THEN pending_since END,"
    " attempts = 0, first_failure_at = NULL, next_attempt_at = ?" + _OURS
)
# Whether the channel has an open dead letter at all (one lookup in dead_letters_open): a healthy channel has none,
# and its settle then skips a RESOLVE_DEAD_LETTER per confirmed delivery that could only match nothing.
ANY_OPEN_DEAD_LETTER = "SELECT 1 FROM dead_letters WHERE site = ? AND channel = ? AND resolved_at IS NULL LIMIT 1"
INSERT_DEAD_LETTER = (
    "INSERT INTO dead_letters (site, channel, sku, event_seq, quantity, reason, created_at) VALUES (?,?,?,?,?,?,?)"
)


def settle(
    conn: Conn,
    site: str,
    channel: str,
    token: str,
    claimed: Sequence[Claimed],
    outcomes: Sequence[Outcome],
    policy: RetryPolicy,
    now: float,
    rand: random.Random,
    dead: list[tuple[str, str]] | None = None,
    fence: Fence | None = None,
) -> int:
    """Record each outcome (only where our claim, and ``fence``, still hold); returns how many rows were ours.

    A fixed number of statements per batch: which rows are still ours (STILL_OURS), then one executemany per kind of
    outcome, the dead letters' and the audit's. A row no longer ours is left alone and audited as ``lease_lost``.
    A SKU's second outcome in one batch finds the row settled by its first: ``lease_lost``, as it always did.
    ``dead``, when given, gets (SKU, reason) for each item that became a dead letter (for the worker's log line).
    """
    by_sku = {c.sku: c for c in claimed}
    skus = json.dumps([out.sku for out in outcomes])
    parameters: tuple[object, ...] = (site, channel, skus, token)
    statement = STILL_OURS
    if fence is not None:
        statement, parameters = STILL_OURS_FENCED, (*parameters, fence.holder, fence.token)
    ours = dict(conn.execute(statement + (LOCK_ORDER if is_postgres(conn) else ""), parameters).fetchall())
    done: list[tuple[object, ...]] = []
    paused: list[tuple[object, ...]] = []
    retried: list[tuple[object, ...]] = []
    buried: list[tuple[Outcome, str]] = []  # (outcome, reason) of each that becomes a dead letter, in order
    mine: list[bool] = []  # per outcome: its row is ours to settle
    settling: set[str] = set()
    for out in outcomes:
        key = (site, channel, out.sku, token)
        mine.append(out.sku in ours and out.sku not in settling)
        settling.add(out.sku)
        reason, retry = out.error, None
        if out.status == TRANSIENT:
            # As each row's own update did: a row no longer ours counts from now and still draws its jitter, so that
            # every later item of the batch gets the delay it always got from ``rand``.
            first_failure = ours.get(out.sku) if mine[-1] else None
            if first_failure is None:
                first_failure = now
            if now - first_failure > policy.give_up_after_seconds:
                hours = policy.give_up_after_seconds / 3600
                reason = f"still failing after {hours:g} h of retries; last error: {out.error}"
            else:
                attempts = by_sku[out.sku].attempts + 1
                delay = policy.delay(attempts, out.retry_after, rand)
                retry = (attempts, first_failure, now + delay, out.error, now, *key)
        if not mine[-1]:
            continue
        if out.status in (OK, SKIPPED):
            done.append((out.quantity, now, now, now, *key))
        elif out.status in (AUTH, HELD):
            paused.append((out.error, now, *key))
        elif retry is not None:
            retried.append(retry)
        else:
            buried.append((out, reason))
    # An empty group is skipped, not run: a batch of one pays for the statements it needs and no more.
    if done and is_postgres(conn):  # every row's SKU is distinct (``settling``): one statement updates each once
        conn.execute(SETTLE_DONE_PG, (now, [row[6] for row in done], [row[0] for row in done], site, channel, token))
        done_rows: list[tuple[object, ...]] = []
    else:
        done_rows = done
    for sql, rows in ((SETTLE_DONE, done_rows), (SETTLE_PAUSED, paused), (SETTLE_RETRY, retried)):
        if rows:
            conn.executemany(sql, rows)
    # A confirmed delivery resolves the SKU's open dead letter; a new one supersedes it (one open per delivery).
    confirmed = [str(row[6]) for row in done]
    if buried:
        conn.executemany(SETTLE_DEAD, [(reason, now, now, site, channel, out.sku, token) for out, reason in buried])
    resolved = confirmed + [out.sku for out, _ in buried]
    if resolved and conn.execute(ANY_OPEN_DEAD_LETTER, (site, channel)).fetchone():
        conn.executemany(RESOLVE_DEAD_LETTER, [(now, site, channel, sku) for sku in resolved])
    if buried:
        conn.executemany(
            INSERT_DEAD_LETTER,
            [(site, channel, out.sku, by_sku[out.sku].seq, out.quantity, reason, now) for out, reason in buried],
        )
    for sku in confirmed:
        if by_sku[sku].unapplied:
            _push_again_if_undersold(conn, site, channel, by_sku[sku], now)
    reasons = {out.sku: reason for out, reason in buried}
    logged: list[audit.Entry] = []
    for out, ours_to_settle in zip(outcomes, mine, strict=True):
        item = by_sku[out.sku]
        if not ours_to_settle:
            logged.append(_audit(now, site, channel, item, "lease_lost", out.quantity, None, None, {}))
            continue
        if out.sku in reasons:
            reason = reasons[out.sku]
            logged.append(_audit(now, site, channel, item, "dead_letter", out.quantity, None, None, {"reason": reason}))
        detail: dict[str, object] = {"outcome": out.status, "attempt": item.attempts + 1}
        note = unapplied_note(item, out.quantity) if out.quantity is not None else ""
        if note:
            detail["unapplied_sales"] = [key for key, _ in item.unapplied]
            detail["adjusted"] = note
        if out.error:
            detail["error"] = out.error
        if out.excerpt:
            detail["response"] = out.excerpt
        action = "skipped" if out.status == SKIPPED else "attempt"
        logged.append(_audit(now, site, channel, item, action, out.quantity, out.http_status, out.latency_ms, detail))
    audit.record(conn, logged)
    if dead is not None:
        dead += list(reasons.items())
    return len(ours)


def _audit(
    now: float,
    site: str,
    channel: str,
    item: Claimed,
    action: str,
    quantity: int | None,
    http_status: int | None,
    latency_ms: float | None,
    detail: dict[str, object],
) -> audit.Entry:
    return audit.entry(
        now, site, action, channel=channel, sku=item.sku, event_id=item.event_id, version=item.version,
        quantity=quantity, http_status=http_status, latency_ms=latency_ms, detail=detail,
    )  # fmt: skip


def release(conn: Conn, tokens: Sequence[str] | None = None) -> int:
    """Drop claims so their rows are due again: ours at shutdown, or every claim at start-up.

    At start-up the state directory's lock proves no other relay holds a claim, so waiting for the
    leases of a killed process to run out would only delay recovery.
    """
    if tokens is None:
        return conn.execute(
            "UPDATE deliveries SET claim_token = NULL, lease_until = NULL WHERE claim_token IS NOT NULL"
        ).rowcount
    return sum(
        conn.execute(
            "UPDATE deliveries SET claim_token = NULL, lease_until = NULL WHERE claim_token = ?", (token,)
        ).rowcount
        for token in tokens
    )
