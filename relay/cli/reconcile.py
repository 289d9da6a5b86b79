"""``stock-relay reconcile`` and ``stock-relay drift``: a pass on demand, and what it found.

Both work on the relay's database file, with or without the relay running: reconcile writes each page's
corrections in a short transaction of its own, through a Store of its own (as replay does), and a running
relay's workers pick the due deliveries up at their next poll.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import aiohttp

from .. import __version__
from .. import config as config_module
from ..errors import ConfigError, RelayError
from ..repair.reconcile import PassResult, ShopClient, run_pass
from ..storage import views
from ..storage.dbapi import Conn
from ..storage.store import existing, open_store, read_view
from .operator import Progress, ago, check_state_dir, table

COMMANDS = ("reconcile", "drift")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, help_text in (
        ("reconcile", "compare the shop's snapshot with what each channel was sent, and repair the differences"),
        ("drift", "how many SKUs each channel is known to show wrongly, worst first"),
    ):
        parser = commands.add_parser(name, help=help_text)
        parser.add_argument("-c", "--config", help="YAML config (default: $STOCK_RELAY_CONFIG, else embedded)")
        parser.add_argument("--site", help="site id (default: every site with a shop_url / the only site)")
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "reconcile":
            parser.add_argument("--full", action="store_true", help="every product, not only those changed since")
        else:
            parser.add_argument("--limit", type=int, default=10, help="examples per channel (default 10)")


def run(args: argparse.Namespace) -> int:
    # drift only reads the database; reconcile signs its requests to the shop with the site's secret
    cfg = config_module.load(args.config, secrets=args.command != "drift")
    check_state_dir(cfg, args.config)
    existing(cfg.store_location)
    if args.command == "drift":
        return _drift(cfg, _sites(cfg, args.site, need_shop=False), args)
    return asyncio.run(_reconcile(cfg, _sites(cfg, args.site, need_shop=True), args))


def _sites(cfg: config_module.Config, chosen: str | None, need_shop: bool) -> list[config_module.SiteConfig]:
    if chosen:
        site = cfg.site(chosen)
        if site is None:
            raise ConfigError("--site", f"no site {chosen!r} in the config ({', '.join(s.id for s in cfg.sites)})")
        if need_shop and not site.shop_url:
            raise ConfigError(f"sites.{site.id}.shop_url", "set the shop's address to reconcile against it")
        return [site]
    sites = [s for s in cfg.sites if s.shop_url or not need_shop]
    if not sites:
        raise ConfigError("sites", "no site has a shop_url: set sites.<id>.shop_url to reconcile against the shop")
    return sites


async def _reconcile(cfg: config_module.Config, sites: list[config_module.SiteConfig], args: argparse.Namespace) -> int:
    store = open_store(cfg.store_location)  # the relay's writer code; the database serialises the two
    progress = Progress()
    results: list[dict[str, Any]] = []
    failed = False
    try:
        await store.open(check=False)
        async with aiohttp.ClientSession(headers={"user-agent": f"stock-relay/{__version__}"}) as session:
            for site in sites:

                def show(result: PassResult, site_id: str = site.id) -> None:
                    c = result.counts
                    progress.show(
                        f"{site_id}: {result.kind} pass, {result.pages} pages, {c.items:,} SKUs checked,"
                        f" {c.corrections:,} corrections ({c.items / max(result.seconds, 1e-9):,.0f} SKUs/s)"
                    )

                try:
                    result = await run_pass(store.write, site, ShopClient(site, session), args.full, progress=show)
                except RelayError as exc:
                    progress.done()
                    print(f"stock-relay: {site.id}: {exc}", file=sys.stderr)
                    failed = True
                    continue
                progress.done()
                results.append({"site": site.id, **result.as_dict()})
    finally:
        await store.close()
    for row in results:
        print(json.dumps(row) if args.json else _summary(row))
    return 1 if failed else 0


def _summary(row: dict[str, Any]) -> str:
    pages = f"{row['pages']} page{'s' if row['pages'] != 1 else ''}"
    return (
        f"{row['site']}: {row['kind']} reconcile checked {row['items']:,} SKUs in {pages} ({row['seconds']:.1f} s):"
        f" {row['missed']:,} missed events, {row['behind_hooks']:,} changed behind the hooks,"
        f" {row['channel_fixes']:,} channel fixes; {row['deliveries']:,} deliveries made due"
        f" ({row['relay_newer']:,} skipped: the relay already had a newer version)"
    )


def _drift(cfg: config_module.Config, sites: list[config_module.SiteConfig], args: argparse.Namespace) -> int:
    def read(conn: Conn) -> list[dict[str, Any]]:
        return [
            {
                "site": site.id,
                "reconcile": views.reconcile_status(conn, site.id),
                "channels": [
                    {"name": c.name, **views.drift(conn, site.id, c.name, max(1, min(args.limit, 500)))}
                    for c in site.channels
                ],
            }
            for site in sites
        ]

    report = read_view(cfg.store_location, read)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print("\n\n".join(_format_drift(site, time.time()) for site in report))
    return 3 if any(c["differ"] for site in report for c in site["channels"]) else 0


def _format_drift(site: dict[str, Any], now: float) -> str:
    last = site["reconcile"]["last"]
    when = "never reconciled" if last is None else f"last {last['kind']} reconcile {ago(last['finished_at'], now)}"
    if last is not None and last["error"]:
        when += f" (failed: {last['error']})"
    lines = [f"site {site['site']}: {when}"]
    for channel in site["channels"]:
        lines.append(f"{channel['name']}: {channel['differ']:,} SKUs differ")
        if channel["examples"]:
            rows = [
                (e["sku"], e["expected"], e["shown"], e["reason"], ago(e["found_at"], now)) for e in channel["examples"]
            ]
            lines.append(table(("sku", "shop says", "channel shows / was sent", "found by", "found"), rows))
    return "\n".join(lines)
