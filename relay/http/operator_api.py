"""The operator's endpoints: signed status, products, audit, dead letters and their retry, lineage, replay, pause and
resume, and export (docs/wire-protocol.md §2), plus the unsigned probes ``/readyz`` and ``/metrics`` and the OpenAPI
document.

Reads run the same ``views`` functions the CLI runs on the file; replay runs ``replay_chunk`` write
jobs. Request fields are checked here with errors that say what to send (400 ``invalid_field``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from ..config import SiteConfig
from ..errors import PayloadError
from ..intake import protocol
from ..repair.replay import SCOPES, replay_chunk
from ..runtime import Relay
from ..storage import attention, dead_retry, pauses, products, views
from ..storage.dbapi import Conn
from . import metrics

MAX_REPLAY_SKUS = 10_000
MAX_DEAD_PAGE = 100_000
MAX_UNIX_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second an ISO 8601 time can name
EXPORT_KINDS = ("state", "audit")
RELAY = web.AppKey("relay", Relay)
OPENAPI_PATH = (
    Path(__file__).resolve().parent.parent / "openapi.yaml"
)  # package data (pyproject.toml): in the wheel too


def _text(doc: dict[str, Any], name: str, max_length: int = 191) -> str | None:
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= max_length:
        raise PayloadError("invalid_field", f"'{name}' must be text of 1 to {max_length} characters.")
    return value


def _time(doc: dict[str, Any], name: str) -> float | None:
    """A Unix time in seconds, or an ISO 8601 date-time with its offset."""
    value = doc.get(name)
    if value is None:
        return None
    # Compared before any conversion: float(10**400) raises, and NaN or infinity fail the comparison.
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= MAX_UNIX_TIME:
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed.timestamp()
    raise PayloadError(
        "invalid_field",
        f"'{name}' must be Unix seconds (0 to {MAX_UNIX_TIME}) or an ISO 8601 time with its offset.",
    )


def _int(doc: dict[str, Any], name: str, default: int | None, low: int, high: int) -> int | None:
    value = doc.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PayloadError("invalid_field", f"'{name}' must be a whole number from {low} to {high}.")
    return value


def _words(doc: dict[str, Any], name: str, max_length: int) -> str:
    """Required free text a person wrote (a reason, a login): shown in WordPress and in a terminal, so one line of
    printable characters, surrounding spaces dropped."""
    value = doc.get(name)
    if value is None:
        raise PayloadError("missing_field", f"Say '{name}' (text of 1 to {max_length} characters).")
    if not isinstance(value, str) or not 0 < len(value.strip()) <= max_length:
        raise PayloadError("invalid_field", f"'{name}' must be text of 1 to {max_length} characters.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise PayloadError("invalid_field", f"'{name}' must be one line without control characters.")
    return value.strip()


def _text_list(doc: dict[str, Any], name: str, most: int) -> list[str]:
    raw = doc.get(name)
    if not isinstance(raw, list) or not 0 < len(raw) <= most:
        raise PayloadError("invalid_field", f"'{name}' must list 1 to {most} SKUs.")
    if not all(isinstance(s, str) and 0 < len(s) <= 191 for s in raw):
        raise PayloadError("invalid_field", "Each SKU must be text of 1 to 191 characters.")
    return raw


def _channel(site: SiteConfig, doc: dict[str, Any]) -> str | None:
    name = _text(doc, "channel", 64)
    if name is not None and name not in {c.name for c in site.channels}:
        raise PayloadError("invalid_field", f"This site has no channel {name!r}.")
    return name


def audit_filter(doc: dict[str, Any], site: SiteConfig) -> views.AuditFilter:
    return views.AuditFilter(
        sku=_text(doc, "sku"),
        channel=_channel(site, doc),
        event_id=_text(doc, "event_id", 128),
        since=_time(doc, "since"),
        until=_time(doc, "until"),
        action=_text(doc, "action", 64),
    )


async def site_status(relay: Relay, site: SiteConfig) -> dict[str, Any]:
    """The database's view of each channel plus what only the running relay knows: circuit and worker health."""
    now = relay.now()
    workers = [relay.workers.get((site.id, c.name)) for c in site.channels]
    known = [w.last_success if w is not None else None for w in workers]
    # Read-back rounds live in memory only: a channel checked that way since start-up says so.
    read_back = [w.readback.last_round_at if w is not None and w.readback is not None else None for w in workers]

    def read(conn: Conn) -> dict[str, Any]:
        return {
            "channels": [
                views.channel_status(conn, site.id, c.name, now, seen, read_at)
                for c, seen, read_at in zip(site.channels, known, read_back, strict=True)
            ],
            "last_event_at": views.last_event_at(conn, site.id),
            "reconcile": views.reconcile_status(conn, site.id),
            "sales": views.sales_status(conn, site.id, now),
        }

    snapshot = await relay.store.query(read)
    stalled = relay.stalled_workers()
    for row, channel in zip(snapshot["channels"], site.channels, strict=True):
        worker = relay.workers.get((site.id, channel.name))
        row.update(site=site.id, type=channel.type, queue_depth=row["pending"])
        row["worker"] = stalled.get(f"{site.id}/{channel.name}", "ok")
        sweeper = relay.sweepers.get((site.id, channel.name))
        row["orders_error"] = None if sweeper is None else sweeper.last_error  # why polls since orders_read_at failed
        if worker is not None:
            row["circuit"] = worker.circuit.state
            row["circuit_reason"] = worker.circuit.reason or None
            row["circuit_retry_in"] = round(worker.circuit.seconds_until_probe(), 1) or None
    return views.with_iso({"type": "status", "site": site.id, "server_time": now, **snapshot})


async def handle_status(request: web.Request, site: SiteConfig, doc: dict[str, Any]) -> web.StreamResponse:
    relay = request.app[RELAY]
    status = await site_status(relay, site)
    # Here, not in site_status: /metrics calls that on every scrape, and this reads a week of the audit log.
    now = relay.now()
    status["oversold"] = await relay.store.query(lambda conn: views.oversold_status(conn, site.id, now))
    status["attention"] = views.with_iso(attention.attention(status))
    return web.json_response(status)


async def handle_products(request: web.Request, site: SiteConfig, doc: dict[str, Any]) -> web.StreamResponse:
    """Where a page of SKUs stands on every channel, in one indexed query (relay/storage/products.py)."""
    relay = request.app[RELAY]
    skus = _text_list(doc, "skus", products.MAX_SKUS)
    channels = [c.name for c in site.channels]

    def read(conn: Conn) -> dict[str, Any]:
        return products.products(conn, site.id, channels, skus, list(pauses.pauses(conn, site.id)))

    answer = await relay.store.query(read)
    return web.json_response(
        views.with_iso({"type": "products", "site": site.id, "server_time": relay.now(), **answer})
    )


async def handle_audit(request: web.Request, site: SiteConfig, doc: dict[str, Any]) -> web.StreamResponse:
    where = audit_filter(doc, site)
    limit = _int(doc, "limit", 100, 1, views.MAX_PAGE) or 100
    cursor = _int(doc, "cursor", None, 1, 2**63 - 1)
    entries, next_cursor = await request.app[RELAY].store.query(
        lambda conn: views.audit_page(conn, site.id, where, limit, cursor)
    )
    return web.json_response({"type": "audit", "entries": entries, "next_cursor": next_cursor})


async def handle_dead(request: web.Request, site: SiteConfig, doc: dict[str, Any]) -> web.StreamResponse:
    """Open dead letters, newest first; with ``limit``, a page, and ``next_cursor`` for the one after (null at the end)."""
    channel, sku = _channel(site, doc), _text(doc, "sku")
    limit = _int(doc, "limit", None, 1, MAX_DEAD_PAGE)
    cursor = _int(doc, "cursor", None, 1, 2**63 - 1)

    def read(conn: Conn) -> dict[str, Any]:
        letters = views.dead_letters(conn, site.id, channel, sku, None if limit is None else limit + 1, cursor)
        more = limit is not None and len(letters) > limit
        letters = letters[:limit] if more else letters
        return {
            "total": views.count_dead_letters(conn, site.id, channel, sku),
            "dead_letters": letters,
            "next_cursor": letters[-1]["id"] if more else None,
        }

    return web.json_response({"type": "dead_letters", **await request.app[RELAY].store.query(read)})


async def handle_dead_retry(request: web.Request, site: SiteConfig, doc: dict[str, Any]) -> web.StreamResponse:
    """Retry chosen dead letters, each a channel and a SKU (relay/storage/dead_retry.py); a resent request gets the
    first answer."""
    relay = request.app[RELAY]
    raw = doc.get("items")
    if not isinstance(raw, list) or not 0 < len(raw) <= dead_retry.MAX_ITEMS:
        raise PayloadError("invalid_field", f"'items' must list 1 to {dead_retry.MAX_ITEMS} {{channel, sku}} objects.")
    names = {c.name for c in site.channels}
    items: list[tuple[str, str]] = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("sku"), str) or not 0 < len(item["sku"]) <= 191:
            raise PayloadError(
                "invalid_field", 'Each item must be {"channel": ..., "sku": text of 1 to 191 characters}.'
            )
        if item.get("channel") not in names:
            raise PayloadError("invalid_field", f"This site has no channel {str(item.get('channel'))[:64]!r}.")
        items.append((item["channel"], item["sku"]))
    actor = _words(doc, "actor", pauses.MAX_ACTOR) if doc.get("actor") is not None else None
    if (seen := await _answered(relay, site, request, doc)) is not None:
        return seen
    results = await relay.store.write(lambda conn: dead_retry.retry_dead(conn, site.id, items, actor, relay.now()))
    relay.wake(site.id)
    answer = {"type": "dead_retry", "scheduled": sum(r["result"] == "scheduled" for r in results), "items": results}
    await _remember(relay, site, request, doc, answer)
    return web.json_response(answer)


async def handle_pause(request: web.Request, site: SiteConfig, doc: dict[str, Any]) -> web.StreamResponse:
    """Pause one channel (``channel``) or every channel of the site, with the reason and who (relay/storage/pauses.py)."""
    relay = request.app[RELAY]
    channel = _channel(site, doc)
    reason, actor = _words(doc, "reason", pauses.MAX_REASON), _words(doc, "actor", pauses.MAX_ACTOR)
    channels = [channel] if channel else [c.name for c in site.channels]
    done, already = await relay.store.write(
        lambda conn: pauses.pause(conn, site.id, channels, reason, actor, relay.now())
    )
    for found in done + already:  # at once, not at its next claim: batches it claimed ahead are given back unsent
        if (worker := relay.workers.get((site.id, found.channel))) is not None:
            worker.paused = found
    answer = {
        "type": "paused",
        "paused": [{"channel": p.channel, **p.as_dict()} for p in done],
        "already_paused": [{"channel": p.channel, **p.as_dict()} for p in already],
    }
    return web.json_response(views.with_iso(answer))


async def handle_resume(request: web.Request, site: SiteConfig, doc: dict[str, Any]) -> web.StreamResponse:
    """Resume one channel (``channel``) or every paused channel of the site; its queue is sent from where it stopped."""
    relay = request.app[RELAY]
    channel = _channel(site, doc)
    actor = _words(doc, "actor", pauses.MAX_ACTOR)
    channels = [channel] if channel else [c.name for c in site.channels]
    lifted = await relay.store.write(lambda conn: pauses.resume(conn, site.id, channels, actor, relay.now()))
    for found in lifted:
        if (worker := relay.workers.get((site.id, found.channel))) is not None:
            worker.paused = None
    relay.wake(site.id)
    answer = {"type": "resumed", "resumed": [{"channel": p.channel, **p.as_dict()} for p in lifted]}
    return web.json_response(views.with_iso(answer))


async def _answered(relay: Relay, site: SiteConfig, request: web.Request, doc: dict[str, Any]) -> web.Response | None:
    """The first answer to this webhook-id, when it was seen (409 when it carried other content), else None."""
    msg_id, digest = request.headers["webhook-id"], protocol.content_digest(doc)
    seen = await relay.store.query(
        lambda conn: conn.execute(
            "SELECT response, digest FROM requests WHERE site = ? AND msg_id = ?", (site.id, msg_id)
        ).fetchone()
    )
    if seen is not None and protocol.is_reuse(seen[1], digest):
        raise PayloadError(
            "webhook_id_reused",
            "This webhook-id was already used for a request with other content; nothing was scheduled.",
            status=409,
        )
    if seen is not None:  # a resent request gets the original answer, and nothing is scheduled twice
        return web.json_response(json.loads(seen[0]), headers={"Idempotent-Replayed": "true"})
    return None


async def _remember(
    relay: Relay, site: SiteConfig, request: web.Request, doc: dict[str, Any], answer: dict[str, Any]
) -> None:
    msg_id, digest = request.headers["webhook-id"], protocol.content_digest(doc)
    await relay.store.write(
        lambda conn: conn.execute(
            "INSERT INTO requests (site, msg_id, response, received_at, digest) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (site.id, msg_id, json.dumps(answer), relay.now(), digest),
        )
    )


async def handle_lineage(request: web.Request, site: SiteConfig, doc: dict[str, Any]) -> web.StreamResponse:
    sku = _text(doc, "sku")
    if sku is None:
        raise PayloadError("missing_field", "Say which 'sku' to trace.")
    sold = [c.name for c in site.channels]
    trace = await request.app[RELAY].store.query(lambda conn: views.lineage(conn, site.id, sku, channels_sold=sold))
    return web.json_response({"type": "lineage", **trace})


async def handle_replay(request: web.Request, site: SiteConfig, doc: dict[str, Any]) -> web.StreamResponse:
    relay = request.app[RELAY]
    scope = doc.get("scope")
    if scope not in SCOPES:
        raise PayloadError("invalid_field", "'scope' must be 'dead', 'skus', 'all' or 'refused_sales'.")
    skus = _text_list(doc, "skus", MAX_REPLAY_SKUS) if scope == "skus" else []
    channel = _channel(site, doc)
    channels = [channel] if channel else [c.name for c in site.channels]
    if (seen := await _answered(relay, site, request, doc)) is not None:
        return seen
    scheduled, unknown, after = 0, [], ""
    while True:
        chunk = await relay.store.write(
            lambda conn, after=after: replay_chunk(conn, site.id, channels, scope, relay.now(), after, skus)  # type: ignore[misc]
        )
        scheduled += chunk.scheduled
        unknown += chunk.unknown
        if scope == "refused_sales":
            relay.wake_shop(site.id)
        else:
            relay.wake(site.id)
        if chunk.next_after is None:
            break
        after = chunk.next_after
    answer = {"type": "replay", "scope": scope, "scheduled": scheduled, "unknown_skus": unknown}
    await _remember(relay, site, request, doc, answer)
    return web.json_response(answer)


async def handle_export(request: web.Request, site: SiteConfig, doc: dict[str, Any]) -> web.StreamResponse:
    """JSON Lines, streamed from a cursor: the first line says how many rows follow."""
    relay = request.app[RELAY]
    what = doc.get("what", "state")
    if what not in EXPORT_KINDS:
        raise PayloadError("invalid_field", "'what' must be 'state' or 'audit'.")
    where = audit_filter(doc, site)
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    total = await relay.store.query(lambda conn: views.count_rows(conn, site.id, what, where))
    await response.write(json.dumps({"type": "export", "what": what, "rows": total}).encode() + b"\n")

    def rows(conn: Conn) -> Iterator[dict[str, Any]]:
        return views.iter_state(conn, site.id) if what == "state" else views.iter_audit(conn, site.id, where)

    # The cursor is walked on a reader thread, a thousand rows at a time, so the event loop (and ingest)
    # never waits behind the export, and memory holds one chunk, however big the table.
    async with contextlib.aclosing(relay.store.stream(rows, 1000)) as chunks:
        async for chunk in chunks:
            await response.write(b"".join(json.dumps(row, ensure_ascii=False).encode() + b"\n" for row in chunk))
    await response.write_eof()
    return response


async def handle_readyz(request: web.Request) -> web.StreamResponse:
    """Ready: the database takes a write, and every channel's dispatcher is ticking."""
    relay = request.app[RELAY]
    problems: dict[str, str] = {}
    if relay.shutting_down:
        problems["relay"] = "shutting down"
    database = await relay.database_writable()
    if database is not None:
        problems["database"] = database
    problems.update(relay.stalled_workers())
    body = {"status": "ready" if not problems else "unready", "problems": problems}
    return web.json_response(body, status=200 if not problems else 503)


async def handle_metrics(request: web.Request) -> web.StreamResponse:
    relay = request.app[RELAY]
    rows = []
    for site in relay.config.sites:
        rows += (await site_status(relay, site))["channels"]
    relay.metrics.set_queues(rows)
    return web.Response(body=relay.metrics.render(), headers={"Content-Type": metrics.CONTENT_TYPE})


async def handle_openapi(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(OPENAPI_PATH, headers={"Content-Type": "application/yaml"})
