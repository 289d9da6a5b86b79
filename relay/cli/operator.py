"""``stock-relay status | audit | dead | lineage | replay | export | oversold | pause | resume``: the operator's commands.

Each runs against the local database (``-c CONFIG``, the relay running or not) or, with
``--remote URL``, against a relay over the signed API, with the site's secret taken from a
reference (``--secret env:NAME``, default ``env:STOCK_RELAY_SECRET``) so it never sits in shell
history. Both paths run the same queries (relay/storage/views.py) and print the same output: a readable
table, or ``--json``. Long operations show progress on a terminal and stay quiet when piped.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO, Any, TypeVar

import aiohttp
import yarl

from .. import config as config_module
from .. import secretref
from ..delivery import outbound
from ..errors import ConfigError, RelayError, TransientDeliveryError
from ..repair.replay import SCOPES, Chunk, replay_chunk
from ..storage import attention, views
from ..storage.dbapi import Conn
from ..storage.store import Reader, existing, open_store, read_view
from . import pausing
from .client import SignedClient

T = TypeVar("T")
COMMANDS = ("status", "audit", "dead", "lineage", "replay", "export", "oversold", *pausing.COMMANDS)
RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DEAD_SHOWN = 50
REMOTE_TIMEOUT_SECONDS = 300.0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help_text)
        parser.add_argument("-c", "--config", help="YAML config (default: $STOCK_RELAY_CONFIG, else embedded)")
        parser.add_argument("--site", help="site id (default: the only site)")
        parser.add_argument("--remote", metavar="URL", help="ask a relay over the signed API instead of the file")
        parser.add_argument(
            "--secret", default="env:STOCK_RELAY_SECRET", help="with --remote: the site secret's reference"
        )
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        return parser

    command("status", "each channel's queue, dead letters, circuit and last success")
    audit = command("audit", "the audit log, newest first")
    audit.add_argument("--sku")
    audit.add_argument("--channel")
    audit.add_argument("--event", dest="event_id", help="one event id")
    audit.add_argument("--since", help="e.g. 1h, 30m, 2d, or an ISO 8601 time")
    audit.add_argument("--limit", type=int, default=50, help="entries to show (default 50; read in pages of 500)")
    dead = command("dead", "open dead letters, with what failed, the channel's answer and what the shop has now")
    dead.add_argument("--channel")
    dead.add_argument("--sku")
    dead.add_argument(
        "--limit", type=int, help=f"newest letters to show (default {DEAD_SHOWN} in the table; every one with --json)"
    )
    lineage = command("lineage", "one SKU's chain: shop events, coalescing, each channel's requests and answers")
    lineage.add_argument("sku")
    replay = command("replay", "send the current quantity again: dead letters, chosen SKUs, or everything")
    scope = replay.add_mutually_exclusive_group(required=True)
    scope.add_argument("--dead", action="store_true", help="every open dead letter")
    scope.add_argument("--sku", nargs="+", dest="skus", metavar="SKU", help="these SKUs")
    scope.add_argument("--all", action="store_true", help="every SKU the relay knows")
    scope.add_argument(
        "--refused-sales", action="store_true", help="sales the shop refused: send them to the shop again (cause fixed)"
    )
    replay.add_argument("--channel", help="only this channel (default: every channel of the site)")
    export = command("export", "stream the published state per channel and SKU, or the audit log")
    export.add_argument("what", choices=views_kinds(), help="state: what each channel shows; audit: the log")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    export.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
    export.add_argument("--since", help="audit only: from this time (1h, 2d, ISO 8601)")
    oversold = command(
        "oversold", "sales that left the shop below zero (the last unit sold twice): SKU, channels, orders"
    )
    oversold.add_argument("--since", default=f"{views.OVERSOLD_DAYS}d", help="from this time (default 7d; or ISO 8601)")
    oversold.add_argument("--limit", type=int, default=500, help="incidents to show, newest first (default 500)")
    pausing.add_arguments(
        command("pause", "stop sending to a channel (changes keep queuing), with the reason; persisted and audited"),
        command("resume", "send to a paused channel again, from where it stopped"),
    )


def views_kinds() -> tuple[str, ...]:
    return ("state", "audit")


def parse_since(text: str | None, now: float) -> float | None:
    if text is None:
        return None
    match = RELATIVE.match(text.strip())
    if match:
        return now - float(match.group(1)) * UNITS[match.group(2)]
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError("--since", "use a duration such as 90s, 30m, 1h, 2d, or an ISO 8601 time") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


# --- backends: the file, or a relay over the signed API ------------------------------------------


class Local:
    """Reads the database file read-only; replay writes through a Store of its own, beside a running relay."""

    def __init__(self, cfg: config_module.Config, site: config_module.SiteConfig) -> None:
        self.cfg, self.site = cfg, site

    async def view(self, view: Callable[[Conn], T]) -> T:
        return read_view(self.cfg.store_location, view)

    async def status(self) -> dict[str, Any]:
        now = time.time()
        channels = await self.view(
            lambda conn: [views.channel_status(conn, self.site.id, c.name, now) for c in self.site.channels]
        )
        for row, channel in zip(channels, self.site.channels, strict=True):
            row.update(type=channel.type, circuit=None)
        last = await self.view(lambda conn: views.last_event_at(conn, self.site.id))
        reconcile = await self.view(lambda conn: views.reconcile_status(conn, self.site.id))
        sales = await self.view(lambda conn: views.sales_status(conn, self.site.id, now))
        oversold = await self.view(lambda conn: views.oversold_status(conn, self.site.id, now))
        status = views.with_iso(
            {
                "site": self.site.id,
                "server_time": now,
                "last_event_at": last,
                "channels": channels,
                "reconcile": reconcile,
                "sales": sales,
                "oversold": oversold,
            }
        )
        return {**status, "attention": views.with_iso(attention.attention(status))}

    async def audit_page(
        self, where: views.AuditFilter, limit: int, before: int | None
    ) -> tuple[list[dict[str, Any]], int | None]:
        return await self.view(lambda conn: views.audit_page(conn, self.site.id, where, limit, before))

    async def dead(self, channel: str | None, sku: str | None, limit: int | None) -> dict[str, Any]:
        def read(conn: Conn) -> dict[str, Any]:
            return {
                "total": views.count_dead_letters(conn, self.site.id, channel, sku),
                "dead_letters": views.dead_letters(conn, self.site.id, channel, sku, limit),
            }

        return await self.view(read)

    async def lineage(self, sku: str) -> dict[str, Any]:
        sold = [c.name for c in self.site.channels]
        return await self.view(lambda conn: views.lineage(conn, self.site.id, sku, channels_sold=sold))

    async def replay(self, scope: str, skus: Sequence[str], channel: str | None, progress: Progress) -> dict[str, Any]:
        location = existing(self.cfg.store_location)
        channels = [channel] if channel else [c.name for c in self.site.channels]
        store = open_store(location)  # the relay's writer code; the database serialises the two
        scheduled, unknown, after = 0, [], ""
        try:
            await store.open(check=False)
            while True:
                chunk = await store.write(partial(self._replay_chunk, channels, scope, after, skus))
                scheduled += chunk.scheduled
                unknown += chunk.unknown
                progress.show(f"scheduled {scheduled:,} deliveries")
                if chunk.next_after is None:
                    break
                after = chunk.next_after
        finally:
            await store.close()
        return {"scope": scope, "scheduled": scheduled, "unknown_skus": unknown}

    def _replay_chunk(self, channels: list[str], scope: str, after: str, skus: Sequence[str], conn: Conn) -> Chunk:
        """Write job: the API's replay job, run by this command's Store."""
        return replay_chunk(conn, self.site.id, channels, scope, time.time(), after, skus)

    async def export(self, what: str, where: views.AuditFilter) -> AsyncIterator[dict[str, Any] | int]:
        with Reader(self.cfg.store_location, keep=0) as reader, reader.connection() as conn:
            yield views.count_rows(conn, self.site.id, what, where)
            rows = (
                views.iter_state(conn, self.site.id) if what == "state" else views.iter_audit(conn, self.site.id, where)
            )
            for row in rows:
                yield row


class Remote:
    """The same questions over the signed API (docs/wire-protocol.md §2)."""

    def __init__(self, url: str, site: str, secret: str) -> None:
        self.url, self.site_id, self.secret = url, site, secret

    def endpoint(self, operation: str) -> yarl.URL:
        return yarl.URL(f"{self.url.rstrip('/')}/v1/sites/{self.site_id}/{operation}")

    async def call(self, operation: str, kind: str, **fields: Any) -> Any:
        async with aiohttp.ClientSession() as session:
            body, headers = SignedClient(self.url, self.site_id, self.secret, session).encode(
                {"type": kind, "site": self.site_id, **fields}
            )
            try:
                answer = await outbound.send(
                    session,
                    "POST",
                    self.endpoint(operation),
                    timeout=REMOTE_TIMEOUT_SECONDS,
                    what=self.url,
                    headers=headers,
                    data=body,
                    follow_redirects=True,
                )
            except TransientDeliveryError as exc:
                raise RelayError(exc.message) from None
        doc = answer.json()
        if answer.status >= 400:
            error = doc.get("error", {}) if isinstance(doc, dict) else {}
            raise RelayError(f"the relay answered {answer.status} {error.get('code', '')}: {error.get('message', '')}")
        return doc

    async def status(self) -> dict[str, Any]:
        return dict(await self.call("status", "status.query"))

    async def audit_page(
        self, where: views.AuditFilter, limit: int, before: int | None
    ) -> tuple[list[dict[str, Any]], int | None]:
        fields = {k: v for k, v in vars(where).items() if v is not None}
        if before is not None:
            fields["cursor"] = before
        answer = await self.call("audit", "audit.query", limit=limit, **fields)
        return list(answer["entries"]), answer.get("next_cursor")

    async def dead(self, channel: str | None, sku: str | None, limit: int | None) -> dict[str, Any]:
        fields = {k: v for k, v in (("channel", channel), ("sku", sku), ("limit", limit)) if v is not None}
        answer = await self.call("dead", "dead.query", **fields)
        letters = list(answer["dead_letters"])
        return {"total": answer.get("total", len(letters)), "dead_letters": letters}

    async def lineage(self, sku: str) -> dict[str, Any]:
        return dict(await self.call("lineage", "lineage.query", sku=sku))

    async def replay(self, scope: str, skus: Sequence[str], channel: str | None, progress: Progress) -> dict[str, Any]:
        fields: dict[str, Any] = {"scope": scope}
        if skus:
            fields["skus"] = list(skus)
        if channel:
            fields["channel"] = channel
        progress.show("asking the relay to schedule the replay")
        return dict(await self.call("replay", "replay.request", **fields))

    async def export(self, what: str, where: views.AuditFilter) -> AsyncIterator[dict[str, Any] | int]:
        fields = {k: v for k, v in vars(where).items() if v is not None}
        doc = {"type": "export.request", "site": self.site_id, "what": what, **fields}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=300)) as session:
            client = SignedClient(self.url, self.site_id, self.secret, session)
            body, headers = client.encode(doc)
            async with session.post(self.endpoint("export"), data=body, headers=headers) as response:
                if response.status >= 400:
                    error = (await response.json(content_type=None)).get("error", {})
                    raise RelayError(
                        f"the relay answered {response.status} {error.get('code', '')}: {error.get('message', '')}"
                    )
                header = json.loads(await response.content.readline())
                yield int(header["rows"])
                async for line in response.content:
                    if line.strip():
                        yield json.loads(line)


Backend = Local | Remote


async def audit_entries(
    backend: Backend, where: views.AuditFilter, limit: int, progress: Progress
) -> list[dict[str, Any]]:
    """The newest ``limit`` entries, read a page (at most views.MAX_PAGE) at a time, following the cursor."""
    entries: list[dict[str, Any]] = []
    before: int | None = None
    while len(entries) < limit:
        page, before = await backend.audit_page(where, min(limit - len(entries), views.MAX_PAGE), before)
        entries += page
        if before is None:
            break
        progress.show(f"read {len(entries):,} of {limit:,} entries")
    progress.done()
    return entries


class Progress:
    """One self-overwriting line on stderr when it is a terminal; nothing when piped."""

    def __init__(self, stream: IO[str] = sys.stderr) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self._last = 0.0

    def show(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if self.enabled and (force or now - self._last > 0.2):
            self._last = now
            self.stream.write(f"\r\033[K{text}")
            self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()


# --- the commands ---------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    backend = _backend(args)
    progress = Progress()
    now = time.time()
    out = sys.stdout
    if args.command == "status":
        status = await backend.status()
        print(json.dumps(status, indent=2) if args.json else format_status(status, now), file=out)
        stuck = [c for c in status["channels"] if c.get("dead_letters") or c.get("worker", "ok") != "ok"]
        return 0 if not stuck and not (status.get("sales") or {}).get("refused") else 3
    if args.command == "audit":
        where = views.AuditFilter(args.sku, args.channel, args.event_id, parse_since(args.since, now))
        entries = await audit_entries(backend, where, max(1, args.limit), progress)
        print(json.dumps(entries, indent=2, ensure_ascii=False) if args.json else format_audit(entries), file=out)
        return 0
    if args.command == "dead":
        limit = args.limit if args.limit is not None else (None if args.json else DEAD_SHOWN)
        dead = await backend.dead(args.channel, args.sku, None if limit is None else max(1, limit))
        letters = dead["dead_letters"]
        print(json.dumps(letters, indent=2, ensure_ascii=False) if args.json else format_dead(dead), file=out)
        return 0
    if args.command == "lineage":
        trace = await backend.lineage(args.sku)
        print(json.dumps(trace, indent=2, ensure_ascii=False) if args.json else format_lineage(trace), file=out)
        return 0 if trace["events"] or trace["channels"] else 4
    if args.command == "replay":
        scope = "dead" if args.dead else "skus" if args.skus else "refused_sales" if args.refused_sales else "all"
        assert scope in SCOPES
        result = await backend.replay(scope, args.skus or [], args.channel, progress)
        progress.done()
        if args.json:
            print(json.dumps(result), file=out)
        elif scope == "refused_sales":
            print(f"{result['scheduled']:,} refused sales will be sent to the shop again", file=out)
        else:
            print(f"scheduled {result['scheduled']:,} deliveries with the current quantity", file=out)
            if result["unknown_skus"]:
                print(f"never seen by this relay (nothing to send): {', '.join(result['unknown_skus'])}", file=out)
        return 0
    if args.command in pausing.COMMANDS:
        answer = await pausing.run(backend, args)
        print(
            json.dumps(answer, indent=2, ensure_ascii=False) if args.json else pausing.format_answer(answer), file=out
        )
        return 0
    if args.command == "oversold":
        where = views.AuditFilter(since=parse_since(args.since, now), action="oversold")
        incidents = [
            views.oversold_incident(e) for e in await audit_entries(backend, where, max(1, args.limit), progress)
        ]
        print(
            json.dumps(incidents, indent=2, ensure_ascii=False) if args.json else format_oversold(incidents), file=out
        )
        return 0
    return await _export(backend, args, now, progress)


async def _export(backend: Backend, args: argparse.Namespace, now: float, progress: Progress) -> int:
    where = views.AuditFilter(since=parse_since(args.since, now))
    handle = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        rows = backend.export(args.what, where)
        total = await anext(rows)
        assert isinstance(total, int)
        columns = views.EXPORT_COLUMNS[args.what]
        writer = csv.DictWriter(handle, fieldnames=columns) if args.format == "csv" else None
        if writer is not None:
            writer.writeheader()
        written = 0
        async for row in rows:
            assert isinstance(row, dict)
            if writer is not None:
                if row.get("detail") is not None:
                    row = {**row, "detail": json.dumps(row["detail"], ensure_ascii=False)}
                writer.writerow(row)
            else:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            written += 1
            if written % 1000 == 0:
                progress.show(f"exported {written:,} of {total:,} rows ({100 * written // max(total, 1)}%)")
        progress.done()
    finally:
        if args.output:
            handle.close()
    if args.output:
        print(f"exported {written:,} rows to {args.output}", file=sys.stderr)
    return 0


def _backend(args: argparse.Namespace) -> Backend:
    if args.remote:
        if not args.site:
            raise ConfigError("--site", "say which site to ask the remote relay about")
        try:
            secret = secretref.resolve(args.secret, os.environ, Path.cwd()).split()[0]
        except ValueError as exc:
            raise ConfigError("--secret", str(exc)) from None
        return Remote(args.remote, args.site, secret)
    # Only the database is read (or written, for replay): no secret is needed, so none is resolved.
    cfg = config_module.load(args.config, secrets=False)
    check_state_dir(cfg, args.config)
    if args.site:
        site = cfg.site(args.site)
        if site is None:
            raise ConfigError("--site", f"no site {args.site!r} in the config ({', '.join(s.id for s in cfg.sites)})")
    elif len(cfg.sites) == 1:
        site = cfg.sites[0]
    else:
        raise ConfigError("--site", f"the config has several sites; choose one: {', '.join(s.id for s in cfg.sites)}")
    return Local(cfg, site)


def check_state_dir(cfg: config_module.Config, config_path: str | None) -> None:
    """A missing database under a relative state_dir is almost always the service's state directory being missed:
    systemd sets ``$STATE_DIRECTORY`` for the service only, so an operator's shell looks in its working directory."""
    path = cfg.database_path
    if (
        cfg.store is not None
        or path.exists()
        or cfg.state_dir.is_absolute()
        or not (config_path or os.environ.get("STOCK_RELAY_CONFIG"))
    ):
        return
    raise RelayError(
        f"no database at {path.absolute()}: the config's state_dir is unset or relative, so it was looked for in"
        " the working directory ($STATE_DIRECTORY is set by systemd for the service only). Set state_dir to the"
        " service's state directory in the config, e.g. state_dir: /var/lib/stock-relay"
    )


# --- human output ---------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def ago(at: float | None, now: float) -> str:
    if at is None:
        return "never"
    return f"{duration(max(0.0, now - at))} ago"


def duration(seconds: float) -> str:
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def when(at: float | None) -> str:
    return "" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def format_status(status: dict[str, Any], now: float) -> str:
    rows = []
    for c in status["channels"]:
        circuit = c.get("circuit") or "n/a (local file)"
        if c.get("circuit_reason"):
            circuit += f": {c['circuit_reason']}"
        error = c.get("last_error") or {}
        rows.append(
            (
                c["name"], c.get("type", ""), c["pending"], c.get("in_flight", 0),
                "" if c["oldest_pending_age"] is None else duration(c["oldest_pending_age"]),
                c["dead_letters"], circuit, ago(c["last_success"], now), error.get("message", "")[:60],
            )
        )  # fmt: skip
    head = f"site {status['site']}: last event received {ago(status.get('last_event_at'), now)}"
    headers = ("channel", "type", "pending", "in flight", "oldest", "dead", "circuit", "last success", "last error")
    stalled = [f"{c['name']}: {c['worker']}" for c in status["channels"] if c.get("worker", "ok") != "ok"]
    paused = [
        f"PAUSED {c['name']} since {when(p['paused_at'])} UTC by {p['actor']}: {p['reason']} (stock-relay resume)"
        for c in status["channels"]
        if (p := c.get("paused"))  # an older relay's answer has no such field
    ]
    orders = [format_orders(c, now) for c in status["channels"] if c.get("orders_read_at") or c.get("orders_error")]
    lines = [head, table(headers, rows), *paused, *(f"STALLED {s}" for s in stalled), *orders, *format_sales(status)]
    return "\n".join([*lines, *format_oversold_status(status)])


def format_orders(c: dict[str, Any], now: float) -> str:
    """When a marketplace's orders were last read for sales, and why not since (the error: a running relay's answer)."""
    read = ago(c.get("orders_read_at"), now)
    if c.get("orders_error"):
        return f"ORDERS {c['name']}: not read since {read}: {c['orders_error']}"
    return f"orders {c['name']}: read {read}"


def format_oversold_status(status: dict[str, Any]) -> list[str]:
    """One line when sales left the shop below zero lately (an older relay's answer has no such field)."""
    oversold = status.get("oversold")
    if not oversold or not oversold["incidents"]:
        return []
    count, newest = oversold["incidents"], oversold["newest"]
    line = f"oversold: {count} incident{'s' if count != 1 else ''} in the last {oversold['days']} days"
    if newest:
        line += f", newest: SKU {newest['sku']} ({_sale_name(newest['channel'], newest['key'])},"
        line += f" shop now {newest['shop_quantity']}); stock-relay oversold"
    return [line]


def _sale_name(channel: str, key: str) -> str:
    """``ebay order 12-345`` from the sale's key ``ebay:12-345:1``."""
    order = key.split(":")[1] if key.count(":") >= 2 else key
    return f"{channel} order {order}"


def format_oversold(incidents: list[dict[str, Any]]) -> str:
    if not incidents:
        return "no oversold incidents in that time"
    rows = []
    for i in incidents:
        sales = ", ".join(f"{s['key']} ({s['delta']:+d} → {s['quantity']})" for s in i["sales"]) or i["key"]
        rows.append((when(i["at"]), i["sku"], i["shop_quantity"], ", ".join(i["channels"]), sales))
    text = table(("time (UTC)", "sku", "shop now", "channels", "sales (key, change → shop's stock after)"), rows)
    return f'{text}\n\nthe shop\'s stock is below zero: see docs/operations.md, "Oversold", to resolve'


def format_sales(status: dict[str, Any]) -> list[str]:
    """Sales other systems reported for the shop: counts, the newest error of one waiting, the refused ones."""
    sales = status.get("sales")
    if not sales or not (sales["pending"] or sales["applied"] or sales["refused"]):
        return []
    oldest = "" if sales["oldest_pending_age"] is None else f" (oldest {duration(sales['oldest_pending_age'])})"
    lines = [
        f"sales to the shop: {sales['pending']} pending{oldest}, {sales['applied']} applied, {sales['refused']} refused"
    ]
    if sales.get("last_error"):
        lines.append(f"  waiting: {sales['last_error']['key']}: {sales['last_error']['message'][:100]}")
    lines += [f"  REFUSED {r['key']} (SKU {r['sku']}): {r['reason'][:100]}" for r in sales.get("refused_examples", [])]
    return lines


def format_audit(entries: list[dict[str, Any]]) -> str:
    rows = []
    for e in entries:
        detail = e.get("detail") or {}
        note = detail.get("error") or detail.get("reason") or detail.get("response") or ""
        if not note and detail.get("cause"):
            note = f"{detail['cause']}" + (f" #{detail['order_id']}" if detail.get("order_id") else "")
        rows.append((when(e["at"]), e["action"], e.get("channel") or "", e.get("sku"), e.get("version"),
                     e.get("quantity"), e.get("http_status"), str(note)[:70]))  # fmt: skip
    if not rows:
        return "no audit entries match"
    return table(("time (UTC)", "action", "channel", "sku", "version", "qty", "http", "note"), rows)


def format_dead(dead: dict[str, Any]) -> str:
    letters, total = dead["dead_letters"], dead["total"]
    if not letters:
        return "no open dead letters"
    rows = [(when(d["created_at"]), d["channel"], d["sku"], d["quantity"], d["shop_quantity"], dead_reason(d)[:160])
            for d in letters]  # fmt: skip
    shown = f"{total:,} open dead letter{'s' if total != 1 else ''}"
    if len(letters) < total:
        shown += f", the newest {len(letters):,} shown (--limit N for more, --sku S or --channel C to narrow)"
    text = table(("time (UTC)", "channel", "sku", "failed qty", "shop qty now", "why (the channel's answer)"), rows)
    return f"{shown}\n{text}\n\nreplay sends the shop's current quantity: stock-relay replay --dead [--channel C]"


def dead_reason(letter: dict[str, Any]) -> str:
    """The relay's reason and, where the channel answered, its answer: "(422)" alone says nothing."""
    return views.dead_explanation(letter)


def format_lineage(trace: dict[str, Any]) -> str:
    lines = [f"SKU {trace['sku']} on site {trace['site']}", ""]
    if not trace["channels"] and not trace["events"]:
        return f"the relay has no record of SKU {trace['sku']} on site {trace['site']}"
    lines.append("now:")
    for c in trace["channels"]:
        source = c["delivered_event"]
        why = "never delivered"
        if source:
            why = f"from {source['event_id']} (v{source['version']}, {source['cause']}"
            why += f" #{source['order_id']})" if source.get("order_id") else ")"
        state = c["state"] + (f", {c['attempts']} failed tries: {c['last_error']}" if c.get("last_error") else "")
        lines.append(f"  {c['channel']:<16} shows {c['shows']!s:<6} {why}; {state}")
    if trace.get("sales"):  # an older relay's answer has none
        lines += ["", "sales on the channels (newest first):"]
        lines += [f"  {_sale_line(sale)}" for sale in trace["sales"]]
    lines += ["", "history (oldest first):"]
    for e in trace["events"]:
        cause = e["cause"] + (f" #{e['order_id']}" if e.get("order_id") else "")
        lines.append(
            f"  {when(e['received_at'])}  {e['event_id']}  v{e['version']}  qty {e['quantity']}  {cause}  [{e['outcome']}]"
        )
        for channel, steps in sorted(e["channels"].items()):
            for step in steps:
                lines.append(f"      → {channel:<14} {_step(step)}")
    return "\n".join(lines)


def _sale_line(sale: dict[str, Any]) -> str:
    """``ebay order 12-345 line 1: sale of 1 → shop 4 (2026-12-03 12:00:01) → carried out by evt_x``."""
    units = abs(sale["delta"])
    what = f"{sale['channel']} order {sale['order']} line {sale['line']}: {sale['reason']} of {units}"
    if sale["state"] == "pending":
        return f"{what} → waiting for the shop (since {when(sale['received_at'])})"
    if sale["state"] == "refused":
        return f"{what} → refused by the shop: {sale.get('refused')} (stock-relay replay --refused-sales)"
    text = f"{what} → shop {sale['shop_quantity']} ({when(sale['updated_at'])})"
    if sale.get("carried_by"):
        return f"{text} → to every channel with {sale['carried_by']}"
    return f"{text} → the shop's change not back yet"


def _step(step: dict[str, Any]) -> str:
    action = step["action"]
    if action == "coalesced":
        return f"coalesced into {step['into']} (only the newest value is sent)"
    if action == "waiting":
        return "waiting to be sent"
    if action == "attempt":
        answer = f"HTTP {step['http_status']}" if step.get("http_status") else "no HTTP answer"
        text = f"sent {step.get('quantity')} at {when(step['at'])}: {step.get('outcome')} ({answer})"
        if step.get("error"):
            text += f": {step['error']}"
        if step.get("response"):
            text += f"; answer: {str(step['response'])[:80]}"
        return text
    if action == "dead_letter":
        return f"dead-lettered: {step.get('reason')}"
    return f"{action} at {when(step.get('at'))}"
