"""``stock-relay demo``: a synthetic shop drives the real relay over real HTTP, and you watch it converge.

The relay runs on the embedded defaults (the ``demo`` site and the built-in ``sandbox`` channel) on
a free port on 127.0.0.1. A fake shop sells, restocks and edits products, posting signed batches
exactly as the WordPress plugin does. The screen shows events going in and the channel catching up;
at the end every SKU on the channel must equal the shop's quantity.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from . import config as config_module
from . import rules
from .client import SignedClient, stock_event
from .connectors.base import Connector
from .connectors.sandbox import SandboxConnector
from .runtime import Relay
from .server import make_app

COLOURS = ("RED", "BLUE", "GREEN", "BLACK", "WHITE", "GREY")
SIZES = ("S", "M", "L", "XL")
SETTLE_SECONDS = 30.0


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
    counts = {"sent": 0, "accepted": 0, "requests": 0}
    try:
        async with aiohttp.ClientSession() as session:
            client = SignedClient(f"http://127.0.0.1:{port}", site.id, site.secrets[0], session)
            await _post(client, shop.snapshot(), counts)
            started = time.monotonic()
            next_frame = 0.0
            while time.monotonic() - started < duration:
                batch = [shop.change() for _ in range(max(1, int(rate / 5)))]
                await _post(client, batch, counts)
                if time.monotonic() >= next_frame:
                    view.frame(_frame(shop, channels, site, counts, time.monotonic() - started, "shop is trading"))
                    next_frame = time.monotonic() + 0.5
                await asyncio.sleep(0.2)
            deadline = time.monotonic() + SETTLE_SECONDS
            while time.monotonic() < deadline and not _all_converged(shop, channels, site):
                view.frame(
                    _frame(
                        shop, channels, site, counts, time.monotonic() - started, "shop stopped; channels catching up"
                    )
                )
                await asyncio.sleep(0.25)
    except KeyboardInterrupt:
        pass
    finally:
        converged = _all_converged(shop, channels, site)
        view.frame(_frame(shop, channels, site, counts, 0, "done"))
        await runner.cleanup()
        await relay.stop()
    if converged:
        view.line(f"\nEvery channel shows the shop's quantity for all {products} SKUs.")
        if state_dir is None:  # the operator commands find this database on their defaults too
            sku = next(iter(shop.skus.values()))
            view.line(
                f"Look inside: `stock-relay status`, `stock-relay lineage {sku}`, `stock-relay audit --limit 20`."
            )
        view.line("Next: `stock-relay serve` runs the relay for real; see README.md.")
        return 0
    view.line("\nSome SKUs had not converged when the demo ended; see the table above.")
    return 1


async def _post(client: SignedClient, events: list[dict[str, Any]], counts: dict[str, int]) -> None:
    status, answer = await client.send_events(events)
    counts["requests"] += 1
    counts["sent"] += len(events)
    if status == 202:
        counts["accepted"] += answer["accepted"]


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


def _all_converged(shop: Shop, channels: Mapping[str, Connector], site: config_module.SiteConfig) -> bool:
    return all(_converged(shop, c, site, n) == len(shop.skus) for n, c in channels.items())


def _frame(
    shop: Shop,
    channels: Mapping[str, Connector],
    site: config_module.SiteConfig,
    counts: dict[str, int],
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
