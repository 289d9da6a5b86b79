"""``stock-relay demo``: a synthetic shop drives the real relay over real HTTP, and you watch it converge.

The relay runs on the embedded defaults (the ``demo`` site and the built-in ``sandbox`` channel) on
a free port on 127.0.0.1. A fake shop sells, restocks and edits products, posting signed batches
exactly as the WordPress plugin does. The screen shows events going in and the channel catching up;
at the end every SKU on the channel must equal the shop's quantity.
"""

from __future__ import annotations

import asyncio
import collections
import random
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from .. import config as config_module
from ..connectors.base import Connector
from ..connectors.sandbox import SandboxConnector
from ..delivery import rules
from ..http.server import make_app
from ..runtime import Relay
from ..storage.dbapi import Conn
from .client import SignedClient, stock_event

COLOURS = ("RED", "BLUE", "GREEN", "BLACK", "WHITE", "GREY")
SIZES = ("S", "M", "L", "XL")
# After the shop stops, the demo waits for the channels while they make progress: up to STALL_SECONDS without one
# more SKU in sync, and SETTLE_SECONDS in all.
STALL_SECONDS = 15.0
SETTLE_SECONDS = 120.0


class Shop:
    """The synthetic shop's truth: a quantity and a monotonic version per product."""

    def __init__(self, products: int, rand: random.Random) -> None:
        self.rand = rand
        self.skus = {
            pid: f"DEMO-{COLOURS[(pid - 1) % len(COLOURS)]}-{SIZES[((pid - 1) // len(COLOURS)) % len(SIZES)]}-{pid}"
            for pid in range(1, products + 1)
        }
        self.stock = {pid: rand.randint(3, 40) for pid in self.skus}
        # Versions start at the clock so a second demo run on the same database is never "stale".
        self.version = {pid: int(time.time() * 1000) for pid in self.skus}

    def change(self) -> dict[str, Any]:
        pid = self.rand.choice(list(self.skus))
        roll = self.rand.random()
        if roll < 0.7 and self.stock[pid] > 0:
            self.stock[pid] -= self.rand.randint(1, min(3, self.stock[pid]))
            cause = "order"
        elif roll < 0.85:
            self.stock[pid] += self.rand.randint(5, 20)
            cause = "admin"
        else:
            self.stock[pid] = self.rand.randint(0, 30)
            cause = "rest"
        self.version[pid] += 1
        return stock_event(pid, self.skus[pid], self.stock[pid], self.version[pid], cause=cause)

    def snapshot(self) -> list[dict[str, Any]]:
        out = []
        for pid in self.skus:
            self.version[pid] += 1
            out.append(stock_event(pid, self.skus[pid], self.stock[pid], self.version[pid], cause="admin"))
        return out


async def run_demo(state_dir: Path | None, duration: float, products: int, rate: float) -> int:
    cfg = replace(config_module.embedded_defaults(state_dir), port=0)
    site = cfg.sites[0]
    relay = Relay(cfg)
    await relay.start()
    runner = web.AppRunner(make_app(cfg, relay), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    shop = Shop(products, random.Random())
    channels = {name: w.connector for (sid, name), w in relay.workers.items() if sid == site.id}
    view = View(sys.stdout.isatty())
    view.line(f"stock-relay demo: relay on http://127.0.0.1:{port}, site '{site.id}', channels: {', '.join(channels)}")
    view.line(f"database: {cfg.database_path}  (Ctrl-C to stop early)\n")
    counts: collections.Counter[str] = collections.Counter()
    why = ""
    try:
        async with aiohttp.ClientSession() as session:
            client = SignedClient(f"http://127.0.0.1:{port}", site.id, site.secrets[0], session)
            # the plugin's way: at most max_batch_events per request (a bigger one is refused whole, 400)
            await _post(client, shop.snapshot(), counts, cfg.max_batch_events)
            started = time.monotonic()
            next_frame = 0.0
            while time.monotonic() - started < duration:
                batch = [shop.change() for _ in range(max(1, int(rate / 5)))]
                await _post(client, batch, counts, cfg.max_batch_events)
                if time.monotonic() >= next_frame:
                    view.frame(_frame(shop, channels, site, counts, time.monotonic() - started, "shop is trading"))
                    next_frame = time.monotonic() + 0.5
                await asyncio.sleep(0.2)
            stopped = last_progress = time.monotonic()
            in_sync = _in_sync(shop, channels, site)
            while not _all_converged(shop, channels, site):
                now = time.monotonic()
                if _in_sync(shop, channels, site) > in_sync:
                    in_sync, last_progress = _in_sync(shop, channels, site), now
                if now - last_progress > STALL_SECONDS or now - stopped > SETTLE_SECONDS:
                    break
                phase = f"shop stopped; channels catching up (waiting while they progress, {now - stopped:.0f} s)"
                view.frame(_frame(shop, channels, site, counts, now - started, phase))
                await asyncio.sleep(0.25)
            waited = time.monotonic() - stopped
    except KeyboardInterrupt:
        waited = 0.0
    finally:
        converged = _all_converged(shop, channels, site)
        view.frame(_frame(shop, channels, site, counts, 0, "done"))
        if not converged:
            why = await _why_not_converged(relay, shop, channels, site)
        await runner.cleanup()
        await relay.stop()
    for line in _explain_counts(counts):
        view.line(line)
    if converged:
        view.line(f"\nEvery channel shows the shop's quantity for all {products} SKUs.")
        if state_dir is None:  # the operator commands find this database on their defaults too
            sku = next(iter(shop.skus.values()))
            view.line(
                f"Look inside: `stock-relay status`, `stock-relay lineage {sku}`, `stock-relay audit --limit 20`."
            )
        view.line("Next: `stock-relay serve` runs the relay for real; see README.md.")
        return 0
    view.line(f"\nSome SKUs had not converged {waited:.0f} s after the shop stopped: {why}")
    return 1


async def _post(
    client: SignedClient, events: list[dict[str, Any]], counts: collections.Counter[str], max_batch: int
) -> None:
    """Send as the plugin does: batches of at most ``max_batch``; a 429 waits for its Retry-After and is resent."""
    for start in range(0, len(events), max_batch):
        chunk = events[start : start + max_batch]
        counts["sent"] += len(chunk)
        while True:
            status, answer = await client.send_events(chunk)
            counts["requests"] += 1
            if status != 429:
                break
            counts["429 requests"] += 1
            counts["429 events"] += len(chunk)
            await asyncio.sleep(1.0)  # the relay's Retry-After for a site over its request rate
        if status == 202:
            counts["accepted"] += answer["accepted"]
            counts["duplicates"] += answer.get("duplicates", 0)
            counts["stale"] += answer.get("stale", 0)
            counts["rejected"] += len(answer.get("rejected", []))
        else:
            code = answer.get("error", {}).get("code", "") if isinstance(answer, dict) else ""
            counts[f"refused {status} {code or 'error'}"] += len(chunk)


def _explain_counts(counts: collections.Counter[str]) -> list[str]:
    """Where every event sent went: accepted, or why not; and what was sent twice."""
    lines = [f"\nevents sent {counts['sent']:,}, accepted {counts['accepted']:,} in {counts['requests']:,} requests"]
    gap = {
        "duplicates (the same event id again)": counts["duplicates"],
        "stale (an older version than the relay had)": counts["stale"],
        "rejected one by one as invalid": counts["rejected"],
    }
    gap |= {
        f"refused whole ({key.removeprefix('refused ')})": n for key, n in counts.items() if key.startswith("refused")
    }
    for reason, n in gap.items():
        if n:
            lines.append(f"  {n:,} not accepted: {reason}")
    if counts["429 requests"]:
        lines.append(
            f"  {counts['429 requests']:,} requests ({counts['429 events']:,} events) were refused as 429 rate_limited"
            " (the site's max_requests_per_second) and resent after Retry-After: counted once above"
        )
    return lines


def _queue_summary(conn: Conn, site: str, channel: str) -> tuple[Any, ...]:
    """View: a channel's pending, retrying and dead deliveries, and its last error."""
    return tuple(
        conn.execute(
            "SELECT COUNT(*) FILTER (WHERE state = 'pending'), COUNT(*) FILTER (WHERE state = 'pending' AND attempts > 0),"
            " COUNT(*) FILTER (WHERE state = 'dead'),"
            " MAX(last_error) FROM deliveries WHERE site = ? AND channel = ?",
            (site, channel),
        ).fetchone()
    )


async def _why_not_converged(
    relay: Relay, shop: Shop, channels: Mapping[str, Connector], site: config_module.SiteConfig
) -> str:
    """Per channel: how many SKUs differ, and what the relay's queue says about them."""
    parts = []
    for name, connector in channels.items():
        differ = len(shop.skus) - _converged(shop, connector, site, name)
        if not differ:
            continue
        pending, retrying, dead, error = await relay.store.query(partial(_queue_summary, site=site.id, channel=name))
        never = sum(1 for sku in shop.skus.values() if sku not in getattr(connector, "listings", {}))
        text = f"{name}: {differ:,} SKUs differ; {pending or 0:,} deliveries still queued"
        text += f" ({retrying or 0:,} retrying, last error: {error})" if retrying else ""
        text += f", {dead or 0:,} dead letters" if dead else ""
        text += f", {never:,} SKUs never reached the channel" if never else ""
        if pending:
            text += f" (its rate limit: {connector.config.rate.per_second:g} calls/s; the queue drains after the demo)"
        parts.append(text)
    return "; ".join(parts) or "the channels caught up as the demo ended"


def _expected(shop: Shop, site: config_module.SiteConfig, name: str, pid: int) -> int | None:
    channel = next(c for c in site.channels if c.name == name)
    return rules.published_quantity(
        channel.rules,
        shop.skus[pid],
        "stock",
        True,
        shop.stock[pid],
        "instock" if shop.stock[pid] > 0 else "outofstock",
    )


def _converged(shop: Shop, connector: Connector, site: config_module.SiteConfig, name: str) -> int:
    if not isinstance(connector, SandboxConnector):
        return 0
    return sum(1 for pid, sku in shop.skus.items() if connector.listings.get(sku) == _expected(shop, site, name, pid))


def _in_sync(shop: Shop, channels: Mapping[str, Connector], site: config_module.SiteConfig) -> int:
    return sum(_converged(shop, c, site, n) for n, c in channels.items())


def _all_converged(shop: Shop, channels: Mapping[str, Connector], site: config_module.SiteConfig) -> bool:
    return all(_converged(shop, c, site, n) == len(shop.skus) for n, c in channels.items())


def _frame(
    shop: Shop,
    channels: Mapping[str, Connector],
    site: config_module.SiteConfig,
    counts: collections.Counter[str],
    elapsed: float,
    phase: str,
) -> list[str]:
    lines = [
        f"{phase}{f'  ({elapsed:4.1f} s)' if elapsed else ''}",
        f"events sent {counts['sent']:>6}   accepted {counts['accepted']:>6}   signed requests {counts['requests']:>5}",
        "",
        f"{'channel':<12}{'in sync':>12}{'API calls':>11}{'throttled':>11}{'failed (retried)':>18}",
    ]
    for name, connector in channels.items():
        if isinstance(connector, SandboxConnector):
            ok = _converged(shop, connector, site, name)
            lines.append(
                f"{name:<12}{f'{ok}/{len(shop.skus)}':>12}{connector.calls:>11}{connector.throttled_calls:>11}"
                f"{connector.failed_calls:>18}"
            )
    return lines


class View:
    """Redraws in place on a terminal; prints a plain line now and then when piped."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self._drawn = 0
        self._last_plain = 0.0

    def line(self, text: str) -> None:
        print(text, flush=True)
        self._drawn = 0

    def frame(self, lines: list[str]) -> None:
        if self.tty:
            if self._drawn:
                sys.stdout.write(f"\x1b[{self._drawn}F\x1b[J")
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()
            self._drawn = len(lines)
        elif time.monotonic() - self._last_plain >= 2.0 or lines[0] == "done":
            print(" | ".join(line.strip() for line in lines if line.strip()), flush=True)
            self._last_plain = time.monotonic()
