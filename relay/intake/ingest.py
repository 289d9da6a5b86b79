"""A `stock.batch`'s write job: record its valid events in one group-committed transaction.

The events were parsed and validated by protocol.py. ``record_batch`` stores them together with their
deliveries, the audit entries and the request's webhook-id, so the 202 can only follow a commit.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..delivery import deliveries
from ..storage import audit
from ..storage.dbapi import Conn, is_postgres, notify, writes_at_once
from ..storage.store import MergeableJob
from .protocol import CAUSES, KINDS, Event, Rejection, is_reuse


class BatchOutcome(NamedTuple):
    response: dict[str, Any]
    repeated: bool  # the webhook-id was seen before: this is the original answer, nothing was redone
    accepted_skus: int  # deliveries made due by this batch (0 → no dispatcher needs waking)
    body: str = ""  # ``response`` as JSON, as stored for repeats: the 202's body without encoding it again
    reused: bool = False  # the webhook-id was seen before with other content: refused, nothing was recorded


def record_batch(
    conn: Conn,
    site: str,
    channels: Sequence[str],
    msg_id: str,
    events: Sequence[Event],
    rejected: Sequence[Rejection],
    now: float,
    coalesce: Mapping[str, float] | None = None,
) -> BatchOutcome:
    """Write job: store the batch's events, version-gate them, make their deliveries due, remember msg_id.

    ``coalesce``: seconds by channel that a change waits before it is due (``coalesce_seconds``), so that the
    same SKU's further changes meanwhile go out with it as one update; channels not named: due at once.
    """
    return _record(conn, [BatchWrite(site, channels, msg_id, events, rejected, now, coalesce or {})])[0]


@dataclass(slots=True, eq=False)
class BatchWrite(MergeableJob):
    """``record_batch`` as a job object, so the writer can record the batches of many requests at once."""

    site: str
    channels: Sequence[str]
    msg_id: str
    events: Sequence[Event]
    rejected: Sequence[Rejection]
    now: float
    coalesce: Mapping[str, float] = field(default_factory=dict)  # as for record_batch
    digest: str = ""  # content_digest of the request; "" (WooCommerce's webhooks): a repeat is never compared

    @classmethod
    def run_many(cls, conn: Conn, jobs: Sequence[BatchWrite]) -> list[BatchOutcome]:
        return _record(conn, jobs)


# What one site's database already knows of a group's webhook-ids, event ids and products: one row.
_LOOKUP = (
    "SELECT"
    " (SELECT json_group_array(json_array(msg_id, response, digest)) FROM requests"
    "    WHERE site = ?1 AND msg_id IN (SELECT value FROM json_each(?2))),"
    " (SELECT json_group_array(event_id) FROM events"
    "    WHERE site = ?1 AND event_id IN (SELECT value FROM json_each(?3))),"
    " (SELECT json_group_array(json_array(product_id, version)) FROM product_versions"
    "    WHERE site = ?1 AND product_id IN (SELECT value FROM json_each(?4))),"
    " (SELECT max(seq) FROM events)"
)
# The same on PostgreSQL, where events.seq comes from its identity sequence (``_seqs``), not from max(seq): several
# relays assign at once there.
_LOOKUP_PG = (
    "SELECT"
    " (SELECT COALESCE(json_agg(json_build_array(msg_id, response, digest)), '[]')::text FROM requests"
    "    WHERE site = ?1 AND msg_id = ANY(ARRAY(SELECT json_array_elements_text(?2::json)))),"
    " (SELECT COALESCE(json_agg(event_id), '[]')::text FROM events"
    "    WHERE site = ?1 AND event_id = ANY(ARRAY(SELECT json_array_elements_text(?3::json)))),"
    " (SELECT COALESCE(json_agg(json_build_array(product_id, version)), '[]')::text FROM product_versions"
    "    WHERE site = ?1 AND product_id = ANY(ARRAY(SELECT json_array_elements_text(?4::json)::bigint))),"
    " NULL"
)
_NEXT_SEQS = "SELECT nextval(pg_get_serial_sequence('events', 'seq')) FROM generate_series(1, ?)"
_INSERT_EVENTS = (
    "INSERT INTO events (seq, site, event_id, kind, product_id, variation_id, parent_id, sku, manage_stock,"
    " stock_quantity, stock_status, backorders, version, occurred_at, cause_kind, cause_order_id, received_at,"
    " outcome) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
# The version gate: a row only ever moves to a larger version.
_INSERT_VERSIONS = (
    "INSERT INTO product_versions (site, product_id, version) VALUES (?, ?, ?)"
    " ON CONFLICT (site, product_id) DO UPDATE SET version = excluded.version"
    " WHERE excluded.version > product_versions.version"
)
_INSERT_REQUESTS = "INSERT INTO requests (site, msg_id, response, received_at, digest) VALUES (?, ?, ?, ?, ?)"
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode


# The 'received' audit row's detail, exactly as json.dumps({"kind", "cause", "order_id"}) writes it (readers parse
# it, exports copy it), built from these prefixes: json.dumps per event was ~10 % of the relay's CPU at 100 events
# per request. Validated events only ever hold these kinds and causes; anything else goes through json.dumps.
_RECEIVED_PREFIX = {
    (kind, cause): json.dumps({"kind": kind, "cause": cause, "order_id": None})[: -len("null}")]
    for kind in KINDS
    for cause in CAUSES
}


def _received_detail(kind: str, cause: str, order_id: int | None) -> str:
    prefix = _RECEIVED_PREFIX.get((kind, cause))
    if prefix is None or not (order_id is None or type(order_id) is int):
        return json.dumps({"kind": kind, "cause": cause, "order_id": order_id})
    return prefix + ("null}" if order_id is None else f"{order_id}}}")


def _answer_text(response: dict[str, Any], accepted: int, duplicates: int, stale: int, rejected: object) -> str:
    """``json.dumps(response)``, written out when nothing was rejected (the usual batch): the same text, the 202's
    body and what a repeat is answered, without an encoder per request (a third of the write job's Python at one
    event per request)."""
    if rejected:
        return json.dumps(response)
    return f'{{"accepted": {accepted}, "duplicates": {duplicates}, "stale": {stale}, "rejected": []}}'


def _seqs(conn: Conn, count: int) -> Iterator[int]:
    """PostgreSQL: ``count`` numbers from events' identity sequence (unused ones are only gaps)."""
    return iter([row[0] for row in conn.execute(_NEXT_SEQS, (count,))] if count else [])


def _record(conn: Conn, jobs: Sequence[BatchWrite]) -> list[BatchOutcome]:
    """Record the batches of ``jobs`` in order, exactly as one ``record_batch`` after the other would.

    One read per site fetches what the database already knows (webhook-ids, event ids, product
    versions); duplicates, stale versions and repeated webhook-ids are then judged here, in order,
    against that and against the batches before in the run; and one executemany per table writes
    the lot (the deliveries upsert still coalesces row by row, in order).
    """
    answered: dict[tuple[str, str], tuple[str, str | None]] = {}  # webhook-id -> (answer, content digest)
    stored: set[tuple[str, str]] = set()
    versions: dict[tuple[str, int], int] = {}
    seq = 0  # events.seq is assigned here, as SQLite would (max + 1), to point deliveries at it
    on_postgres = is_postgres(conn)
    for site in {job.site for job in jobs}:
        mine = [job for job in jobs if job.site == site]
        known = conn.execute(
            _LOOKUP_PG if on_postgres else _LOOKUP,
            (
                site,
                _dumps([job.msg_id for job in mine]),
                _dumps([event.id for job in mine for event in job.events]),
                _dumps([event.product_id for job in mine for event in job.events]),
            ),
        ).fetchone()
        answered.update(((site, m), (text, digest)) for m, text, digest in json.loads(known[0]))
        stored.update((site, e) for e in json.loads(known[1]))
        versions.update(((site, p), v) for p, v in json.loads(known[2]))
        seq = known[3] or 0
    seqs = _seqs(conn, sum(len(job.events) for job in jobs)) if on_postgres else itertools.count(seq + 1)
    events: list[tuple[Any, ...]] = []
    gated: dict[tuple[str, int], int] = {}
    due: list[deliveries.Due] = []
    logged: list[audit.Entry] = []
    requests: list[tuple[Any, ...]] = []
    outcomes: list[BatchOutcome] = []
    for job in jobs:
        site, now = job.site, job.now
        seen = answered.get((site, job.msg_id))
        if seen is not None:  # this webhook-id was answered before (maybe earlier in this very group)
            text, digest = seen
            if is_reuse(digest, job.digest):  # another request under a used id: its events would be lost
                outcomes.append(BatchOutcome({}, repeated=True, accepted_skus=0, reused=True))
            else:
                outcomes.append(BatchOutcome(json.loads(text), repeated=True, accepted_skus=0, body=text))
            continue
        accepted = duplicates = stale = made_due = 0
        # When each channel's delivery falls due: the same for every event of the request, so worked out once.
        waits = [(channel, now + job.coalesce.get(channel, 0.0)) for channel in job.channels]
        for event in job.events:
            # One unpacking instead of some twenty attribute reads per event (the loop runs per event of the group).
            (event_id, kind, product_id, variation_id, parent_id, sku, manage_stock, quantity, status, backorders,
             version, occurred_at, cause_kind, order_id) = event  # fmt: skip
            if (site, event_id) in stored:
                duplicates += 1
                logged.append((now, site, None, sku, event_id, version, "duplicate", None, None, None, None))
                continue
            stored.add((site, event_id))
            seq = next(seqs)
            product = (site, product_id)
            known = versions.get(product)
            fresh = known is None or version > known
            events.append((
                seq, site, event_id, kind, product_id, variation_id, parent_id, sku, int(manage_stock), quantity,
                status, backorders, version, occurred_at, cause_kind, order_id, now, "accepted" if fresh else "stale",
            ))  # fmt: skip
            if not fresh:
                stale += 1
                detail = json.dumps({"newest_version": known})
                logged.append((now, site, None, sku, event_id, version, "stale", None, None, None, detail))
                continue
            versions[product] = gated[product] = version
            accepted += 1
            detail = _received_detail(kind, cause_kind, order_id)
            logged.append((now, site, None, sku, event_id, version, "received", quantity, None, None, detail))
            if not sku:
                note = json.dumps({"reason": "the product has no SKU, so no channel can be told"})
                logged.append((now, site, None, "", event_id, version, "skipped", None, None, None, note))
                continue
            for channel, due_at in waits:
                due.append((site, channel, sku, seq, due_at, now))
            made_due += len(waits)
        response = {
            "accepted": accepted,
            "duplicates": duplicates,
            "stale": stale,
            "rejected": [r.as_dict() for r in job.rejected],
        }
        text = _answer_text(response, accepted, duplicates, stale, job.rejected)
        answered[(site, job.msg_id)] = (text, job.digest or None)
        requests.append((site, job.msg_id, text, now, job.digest or None))
        outcomes.append(BatchOutcome(response, repeated=False, accepted_skus=made_due, body=text))
    with writes_at_once(conn):
        conn.executemany(_INSERT_EVENTS, events)
        # in key order, as make_due_many's rows (PostgreSQL: every writer locks rows in one order)
        conn.executemany(_INSERT_VERSIONS, [(s, p, v) for (s, p), v in sorted(gated.items())])
        deliveries.make_due_many(conn, due)
        audit.record(conn, logged)
        conn.executemany(_INSERT_REQUESTS, requests)
        for site in {row[0] for row in due}:
            notify(conn, site)  # the relay working a channel of the site may be another
    return outcomes
