"""Reconciliation: compare the shop's truth with what the relay knows and what each channel was sent, and repair.

Webhooks get lost upstream of us too (a hook that never fired, a product edited in the database, a plugin
switched off for a day), so now and then the relay reads the shop's own snapshot (docs/wire-protocol.md §3, the
plugin's signed ``snapshot`` route, paged by post id) and judges every item against its records:

- the relay knows a newer version of the product → the snapshot is older than what we have: ignored;
- the relay never saw the SKU, or the snapshot's state differs from the newest event the relay holds for
  it → the snapshot is adopted as an event of cause ``reconcile`` and every channel is made due. This is
  safe because the plugin reads an item's version *before* its state, under its own row lock, so a
  snapshot item never carries a version newer than the state it shows; and an item whose version equals
  the relay's but whose state differs was changed behind the hooks after that version was given out;
- the state matches, but a channel never had the SKU (added later) or was last sent a quantity its rules
  no longer give (a buffer changed) → that channel alone is made due.

Corrections go through the ordinary deliveries, so coalescing, rate budgets, retries and the audit log
apply as to any change. Each page is applied in one write job; a page that cannot be read or parsed
changes nothing.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

import aiohttp
import yarl
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from .. import signing
from ..config import ChannelConfig, SiteConfig
from ..delivery import outbound, rules
from ..delivery.deliveries import make_due
from ..errors import ReconcileError, TransientDeliveryError
from ..ids import new_msg_id, ulid
from ..intake.protocol import Event, parse_json, validate_event
from ..storage import audit, views
from ..storage.dbapi import Conn

log = logging.getLogger("stock_relay.reconcile")
T = TypeVar("T")
Write = Callable[[Callable[[Conn], T]], Awaitable[T]]

SNAPSHOT_PATH = "/wp-json/stock-relay/v1/snapshot"
MAX_ANSWER_BYTES = 8 * 1024 * 1024
MAX_RETRY_AFTER = 30.0  # a shop asking for longer waits for the next pass instead
# post_modified_gmt has whole seconds and a request's writes commit after its clock was read: look back a
# little further than the previous pass's start so nothing falls between two incremental passes.
INCREMENTAL_OVERLAP_SECONDS = 300.0
FULL, INCREMENTAL = "full", "incremental"
UNVERSIONED_SETTLE_SECONDS = 60.0


# --- the shop's snapshot pages ---------------------------------------------------------------------


class Item(NamedTuple):
    """One snapshot item: the post it was read from and its absolute state, as an event would carry it."""

    item_id: int
    event: Event


class Page(NamedTuple):
    items: list[Item]
    next_after_id: int | None
    server_time: str


def parse_page(body: bytes, site: str) -> Page:
    """A snapshot answer, checked as strictly as ingest checks events; ReconcileError names what is wrong."""
    try:
        doc = parse_json(body)
    except Exception as exc:  # noqa: BLE001 - PayloadError: the shop's answer, not a request we judge
        raise ReconcileError(f"the shop's snapshot answer is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("type") != "snapshot.page":
        raise ReconcileError("the shop's answer is not a snapshot page (is the Stock Relay plugin up to date?)")
    if doc.get("site") != site:
        raise ReconcileError(f"the shop answered for site {str(doc.get('site'))[:64]!r}, not {site!r}")
    raw_items, after = doc.get("items"), doc.get("next_after_id")
    if not isinstance(raw_items, list):
        raise ReconcileError("the shop's snapshot page has no 'items' list")
    if after is not None and (isinstance(after, bool) or not isinstance(after, int) or after < 1):
        raise ReconcileError("the shop's snapshot page has a 'next_after_id' that is not a post id")
    items = [_item(raw, index) for index, raw in enumerate(raw_items)]
    server_time = doc.get("server_time")
    return Page(items, after, server_time if isinstance(server_time, str) else "")


def _item(raw: Any, index: int) -> Item:
    if not isinstance(raw, dict):
        raise ReconcileError(f"snapshot item {index} is not an object")
    item_id, version = raw.get("item_id"), raw.get("version")
    if isinstance(item_id, bool) or not isinstance(item_id, int) or item_id < 1:
        raise ReconcileError(f"snapshot item {index} has no valid 'item_id'")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ReconcileError(f"snapshot item {index} has no valid 'version'")
    # The same rules as a stock event: the snapshot has no id or cause of its own, and version 0 means
    # "never versioned by the plugin" (a product nobody changed since the plugin was installed).
    checked = validate_event({**raw, "id": f"rec_{ulid()}", "version": max(1, version), "cause": {"kind": "other"}})
    if not isinstance(checked, Event):
        raise ReconcileError(f"snapshot item {index} (post {item_id}): {checked.message}")
    return Item(item_id, checked._replace(version=version, cause_kind="reconcile"))


class ShopClient:
    """Reads snapshot pages from the plugin, signed with every active secret of the site."""

    def __init__(
        self,
        site: SiteConfig,
        session: aiohttp.ClientSession,
        now: Callable[[], float] = time.time,
        retry_wait: float = 1.0,
    ) -> None:
        if not site.shop_url:
            raise ReconcileError(f"site {site.id} has no shop_url: the relay does not know where the shop is")
        self.site = site
        self.session = session
        self.now = now
        self.url = site.shop_url + SNAPSHOT_PATH
        self.retry_wait = retry_wait

    async def page(self, after_id: int, limit: int, modified_after: float | None = None) -> Page:
        doc: dict[str, Any] = {"type": "snapshot.page", "site": self.site.id, "after_id": after_id, "limit": limit}
        if modified_after is not None:
            doc["modified_after"] = datetime.fromtimestamp(int(modified_after), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = json.dumps(doc, separators=(",", ":")).encode()
        try:
            # A short in-process retry for a blip (3 tries); a pass that still fails is retried later.
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(TransientDeliveryError),
                stop=stop_after_attempt(3),
                wait=self._wait,
                reraise=True,
            ):
                with attempt:
                    return parse_page(await self._post(body), self.site.id)
        except TransientDeliveryError as exc:
            raise ReconcileError(exc.message) from None
        raise AssertionError("unreachable")  # pragma: no cover - AsyncRetrying either returns or raises

    def _wait(self, state: RetryCallState) -> float:
        """The shop's Retry-After when it gave one, else ``retry_wait`` after the first try and three times it next."""
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, TransientDeliveryError) and error.retry_after is not None:
            return error.retry_after
        return self.retry_wait * (2 * state.attempt_number - 1)

    async def _post(self, body: bytes) -> bytes:
        headers = signing.shop_request_headers(self.site.secrets, new_msg_id(), int(self.now()), body)
        answer = await outbound.send(
            self.session,
            "POST",
            yarl.URL(self.url),
            timeout=self.site.reconcile.timeout_seconds,
            what=f"the shop at {self.url}",
            headers=headers,
            data=body,
            limit=MAX_ANSWER_BYTES,
            follow_redirects=True,
        )
        if not answer.complete:
            raise ReconcileError(f"the shop's snapshot page is larger than {MAX_ANSWER_BYTES} bytes")
        if answer.status == 200:
            return answer.body
        raise _refusal(answer, self.url)


def _refusal(answer: outbound.Answer, url: str) -> Exception:
    """The shop said no: a clear sentence for the operator (the answer's own code when it has one)."""
    try:
        error = json.loads(answer.body)["error"]
        code, message = str(error["code"])[:64], str(error["message"])[:300]
    except (ValueError, KeyError, TypeError):
        code, message = "", ""
    said = f" ({code}: {message})" if code else ""
    status = answer.status
    if status == 401:
        return ReconcileError(
            f"the shop refused the relay's signature{said}; the plugin and the relay must share the site's secret"
        )
    if status == 404 and not code:
        return ReconcileError(
            f"no snapshot route at {url} (HTTP 404): is the Stock Relay plugin active and up to date, and is the"
            " WordPress REST API reachable there?"
        )
    verdict = outbound.classify(answer)
    if verdict.kind in (outbound.Kind.THROTTLED, outbound.Kind.TRANSIENT):
        wait = None if verdict.retry_after is None else min(verdict.retry_after, MAX_RETRY_AFTER)
        return TransientDeliveryError(f"the shop answered HTTP {status}{said}", wait, http_status=status)
    return ReconcileError(f"the shop answered HTTP {status}{said}")


# --- judging a page ----------------------------------------------------------------------------------


@dataclass
class Counts:
    """What a page (or a whole pass) found."""

    items: int = 0
    missed: int = 0  # the shop has a newer version the relay never received
    behind_hooks: int = 0  # same version, other state: changed without the plugin's hooks
    relay_newer: int = 0  # the relay already has a newer version: the snapshot was ignored
    channel_fixes: int = 0  # a channel alone made due (never sent, or sent a value its rules no longer give)
    deliveries: int = 0  # (channel, SKU) deliveries made due in all

    def add(self, other: Counts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def corrections(self) -> int:
        return self.missed + self.behind_hooks + self.channel_fixes


_STATE = ("kind", "manage_stock", "stock_quantity", "stock_status", "backorders")
_INSERT_EVENT = (
    "INSERT INTO events (site, event_id, kind, product_id, variation_id, parent_id, sku, manage_stock, stock_quantity,"
    " stock_status, backorders, version, occurred_at, cause_kind, cause_order_id, received_at, outcome)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,NULL,?,'accepted') RETURNING seq"
)


def apply_page(conn: Conn, site: str, channels: Sequence[ChannelConfig], items: Sequence[Item], now: float) -> Counts:
    """Write job: judge every item of a snapshot page and make the corrections due (see the module docstring)."""
    counts = Counts()
    logged: list[audit.Entry] = []
    names = [c.name for c in channels]
    marks = ",".join("?" * len(names))
    for item in items:
        event = item.event
        if not event.sku:
            continue
        counts.items += 1
        rows = {
            r[0]: r[1:]
            for r in conn.execute(
                f"SELECT channel, want_seq, state, delivered_quantity FROM deliveries"
                f" WHERE site = ? AND sku = ? AND channel IN ({marks})",
                (site, event.sku, *names),
            )
        }
        newest = max((r[0] for r in rows.values()), default=None)
        known = conn.execute(
            "SELECT version FROM product_versions WHERE site = ? AND product_id = ?", (site, event.product_id)
        ).fetchone()
        held = None if newest is None else conn.execute(
            f"SELECT {', '.join(_STATE)}, received_at FROM events WHERE seq = ?", (newest,)
        ).fetchone()  # fmt: skip
        if known is not None and event.version < known[0] and not _unversioned_and_settled(event, held, now):
            counts.relay_newer += 1
            continue
        if held is None or _state(held[:-1]) != _state([getattr(event, name) for name in _STATE]):
            reason = "missed_event" if held is None or known is None or event.version > known[0] else "behind_hooks"
            if reason == "missed_event":
                counts.missed += 1
            else:
                counts.behind_hooks += 1
            seq = _adopt(conn, site, event, now, reason, logged)
            for channel in channels:
                last = rows.get(channel.name)
                _make_due(conn, site, channel, event, seq, last[2] if last else None, reason, now, logged)
                counts.deliveries += 1
            continue
        assert newest is not None
        for channel in channels:
            last = rows.get(channel.name)
            expected = _published(channel, event)
            if expected is None:
                continue
            if last is None:
                reason = "never_sent"
            elif last[1] == "delivered" and last[2] != expected:
                reason = "last_push_differs"
            else:
                continue
            _make_due(conn, site, channel, event, newest, last[2] if last else None, reason, now, logged)
            counts.channel_fixes += 1
            counts.deliveries += 1
    audit.record(conn, logged)
    return counts


def _apply_now(conn: Conn, site: SiteConfig, items: Sequence[Item], now: Callable[[], float]) -> Counts:
    return apply_page(conn, site.id, site.channels, items, now())


def _unversioned_and_settled(event: Event, held: Sequence[Any] | None, now: float) -> bool:
    """Version 0: the plugin has no version row for the product (never changed since it was installed, or
    reinstalled, which drops the table). Its state is then judged like an equal version, but only against
    an event older than UNVERSIONED_SETTLE_SECONDS: a first change racing the page would otherwise let the
    page's older read win until the next pass."""
    return event.version == 0 and held is not None and now - float(held[-1]) > UNVERSIONED_SETTLE_SECONDS


def _state(row: Sequence[Any]) -> tuple[Any, ...]:
    kind, manage, quantity, status, backorders = row
    return (kind == "deleted", bool(manage), quantity, status, backorders)


def _published(channel: ChannelConfig, event: Event) -> int | None:
    if rules.channel_sku(channel.rules, event.sku) is None:
        return None
    return rules.published_quantity(
        channel.rules, event.sku, event.kind, event.manage_stock, event.stock_quantity, event.stock_status
    )


def _adopt(conn: Conn, site: str, event: Event, now: float, reason: str, logged: list[audit.Entry]) -> int:
    """Record the snapshot's state as an accepted event of cause ``reconcile``; returns its seq."""
    (seq,) = conn.execute(
        _INSERT_EVENT,
        (
            site, event.id, event.kind, event.product_id, event.variation_id, event.parent_id, event.sku,
            int(event.manage_stock), event.stock_quantity, event.stock_status, event.backorders, event.version,
            datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "reconcile", now,
        ),
    ).fetchone()  # fmt: skip
    # The gate only ever moves up: a snapshot with the relay's own version leaves it where it is.
    conn.execute(
        "INSERT INTO product_versions (site, product_id, version) VALUES (?, ?, ?)"
        " ON CONFLICT (site, product_id) DO UPDATE SET version = excluded.version"
        " WHERE excluded.version > product_versions.version",
        (site, event.product_id, event.version),
    )
    detail = {"kind": event.kind, "cause": "reconcile", "reason": reason}
    logged.append(
        audit.entry(
            now, site, "received", sku=event.sku, event_id=event.id, version=event.version,
            quantity=event.stock_quantity, detail=detail,
        )
    )  # fmt: skip
    return int(seq)


def _make_due(
    conn: Conn,
    site: str,
    channel: ChannelConfig,
    event: Event,
    seq: int,
    last_sent: int | None,
    reason: str,
    now: float,
    logged: list[audit.Entry],
) -> None:
    make_due(conn, site, channel.name, event.sku, seq, now)
    expected = _published(channel, event)
    if expected is not None and expected != last_sent:
        record_drift(conn, site, channel.name, event.sku, expected, last_sent, reason, now)
    detail = {"cause": "reconcile", "reason": reason, "expected": expected, "last_sent": last_sent}
    logged.append(
        audit.entry(
            now, site, "reconcile", channel=channel.name, sku=event.sku, event_id=event.id, version=event.version,
            quantity=expected, detail=detail,
        )
    )  # fmt: skip


def record_drift(
    conn: Conn,
    site: str,
    channel: str,
    sku: str,
    expected: int | None,
    shown: int | None,
    reason: str,
    now: float,
) -> None:
    """Note that ``channel`` shows (or was last sent) ``shown`` where the shop says ``expected``.

    The row counts as drift until the delivery is next confirmed (see views.drift); it is never the
    source of what gets sent, only of the report.
    """
    conn.execute(
        "INSERT INTO drift (site, channel, sku, expected, shown, reason, found_at) VALUES (?,?,?,?,?,?,?)"
        " ON CONFLICT (site, channel, sku) DO UPDATE SET expected = excluded.expected, shown = excluded.shown,"
        " reason = excluded.reason, found_at = excluded.found_at",
        (site, channel, sku, expected, shown, reason, now),
    )


# --- a pass ------------------------------------------------------------------------------------------


@dataclass
class PassResult:
    kind: str
    pages: int = 0
    seconds: float = 0.0
    counts: Counts = field(default_factory=Counts)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "pages": self.pages,
            "seconds": round(self.seconds, 3),
            **{name: getattr(self.counts, name) for name in self.counts.__dataclass_fields__},
            "corrections": self.counts.corrections,
            "error": self.error,
        }


def _since(conn: Conn, site: str) -> float | None:
    """Where an incremental pass starts: the shop's clock at the start of the last successful pass."""
    row = conn.execute(
        "SELECT shop_time, started_at FROM reconcile_runs WHERE site = ? AND finished_at IS NOT NULL"
        " AND error IS NULL ORDER BY id DESC LIMIT 1",
        (site,),
    ).fetchone()
    if row is None:
        return None
    try:
        shop = datetime.fromisoformat(row[0].replace("Z", "+00:00")).timestamp() if row[0] else float(row[1])
    except ValueError:
        shop = float(row[1])
    return shop - INCREMENTAL_OVERLAP_SECONDS


async def run_pass(
    write: Write[Any],
    site: SiteConfig,
    client: ShopClient,
    full: bool,
    now: Callable[[], float] = time.time,
    progress: Callable[[PassResult], None] | None = None,
) -> PassResult:
    """One pass over the shop's snapshot: every item (full), or those changed since the last pass.

    An incremental pass with no successful pass before it is a full one. Raises ReconcileError when a
    page cannot be read; the pages before it stay applied (each was judged on its own), and the run is
    recorded with its error so the next incremental pass starts from the last good one.
    """
    since = None if full else await write(lambda conn: _since(conn, site.id))
    result = PassResult(FULL if since is None else INCREMENTAL)
    started = now()
    run_id = await write(
        lambda conn: conn.execute(
            "INSERT INTO reconcile_runs (site, kind, started_at) VALUES (?, ?, ?) RETURNING id",
            (site.id, result.kind, started),
        ).fetchone()[0]
    )
    clock = time.monotonic()
    shop_time, after = "", 0
    try:
        while True:
            page = await client.page(after, site.reconcile.page_size, since)
            shop_time = shop_time or page.server_time
            counts: Counts = await write(functools.partial(_apply_now, site=site, items=page.items, now=now))
            result.pages += 1
            result.counts.add(counts)
            result.seconds = time.monotonic() - clock
            if progress is not None:
                progress(result)
            if page.next_after_id is None:
                break
            if page.next_after_id <= after:
                raise ReconcileError("the shop's snapshot pages do not advance (next_after_id went backwards)")
            after = page.next_after_id
    except ReconcileError as exc:
        result.error = str(exc)
        raise
    finally:
        result.seconds = time.monotonic() - clock
        await write(
            lambda conn: conn.execute(
                "UPDATE reconcile_runs SET finished_at = ?, shop_time = ?, items = ?, corrections = ?, error = ?"
                " WHERE id = ?",
                (now(), shop_time, result.counts.items, result.counts.corrections, result.error, run_id),
            )
        )
    if result.counts.corrections:
        log.info("%s: %s reconcile made %d corrections", site.id, result.kind, result.counts.corrections)
    return result


def due_kind(conn: Conn, site: SiteConfig, now: float) -> str | None:
    """Which pass the schedule wants now for ``site``, if any."""
    settings = site.reconcile
    last_full, last_any = views.last_run(conn, site.id, FULL), views.last_run(conn, site.id)
    if last_any is None:
        return FULL if settings.full_hour is not None or settings.incremental_minutes else None
    nightly = settings.full_hour is not None and time.localtime(now).tm_hour == settings.full_hour
    if nightly and (last_full is None or now - last_full["started_at"] > 20 * 3600):
        return FULL
    if settings.incremental_minutes and now - last_any["started_at"] >= settings.incremental_minutes * 60:
        return INCREMENTAL
    return None
