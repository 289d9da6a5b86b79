"""Sales: marketplace sales at a steady rate, to the shop once and back out to every other channel.

    .venv/bin/python bench/sales.py [--seconds 60] [--rate 2] [--shop-rate 10] [--factor 6]

The relay (``stock-relay serve`` on a fresh SQLite file, credentials in its encrypted vault) runs in its own
process with three channels: the fake Shopify (fakes/shopify.py, which delivers signed ``orders/create``
webhooks to the relay), the fake eBay (fakes/ebay.py, whose orders the relay polls with getOrders) and a
``webhook`` channel into a receiver in this process. The site's ``shop_url`` is a fake shop (fakes/shop.py)
with the plugin's ``adjust`` route. Everything but the relay runs in this process, on one clock
(time.perf_counter).

For ``--seconds``, each marketplace sells ``--rate`` units a second, one unit of a SKU of its own per sale
(every SKU starts at 50 everywhere), while the shop changes other SKUs ``--shop-rate`` times a second through
its hooks (cause ``admin``), posted to the relay as the plugin would. When the shop applies a sale (the
adjust route) its stock change comes back to the relay as the plugin sends it: an event signed with the
site secret, cause ``relay``, posted at once. Per sale:

- sale → shop: from the sale on the marketplace to the shop applying its key;
- sale → every other channel: until the last of the *other* channels (eBay and the webhook for a Shopify
  sale, Shopify and the webhook for an eBay sale) shows the shop's resulting quantity.

eBay must be polled: its ``sales_poll_seconds`` (60 by default) is divided by ``--factor`` (6: every 10 s;
the relay accepts 5 s at least), and its target scales with it: poll interval + 5 s. Nothing else is scaled:
the marketplaces' limits, eBay's 1 s ``coalesce_seconds`` and the relay's dispatch settings are defaults.
The API calls intake spends per hour at the default interval come from the fake's call counts (getOrders
over the run, times the factor) against the channel's budget (eBay: 2,000,000 calls a day, the budget the
relay's eBay channel spends pushes and intake from). Shopify's intake spends no calls: Shopify pushes.

Baseline, measured in the same run: a shop-side change → the last of the three channels showing it (the
push path alone, without a sale in front of it).

Targets (issue 15): p99 sale → every other channel ≤ 5 s where the marketplace pushes webhooks, ≤ poll
interval + 5 s where it must be polled; 0 sales lost or applied twice. Only Shopify and eBay take sales so
far: Etsy, Amazon, Walmart and TikTok's intake is not built. The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from _common import ServerProcess, summary_ms
from aiohttp import web

from fakes.ebay import FakeEbay
from fakes.shop import FakeShop
from fakes.shopify import FakeShopify
from relay import signing
from relay.cli.client import SignedClient
from relay.vault import Vault, new_key

START_QUANTITY = 50
BACKGROUND_SKUS = 100
DEFAULT_POLL_SECONDS = 60.0
EBAY_CALLS_PER_HOUR = 2_000_000 / 24
SHOPIFY_POINTS_PER_HOUR = 100.0 * 3600
NOT_BUILT = ("etsy", "amazon", "walmart", "tiktok")


@dataclass
class Probe:
    """One sale (or one shop-side change) followed until every channel it must reach shows ``expected``."""

    market: str  # shopify, ebay, or shop for a shop-side change
    sku: str
    expected: int
    watch: tuple[str, ...]  # the channels that must show ``expected``
    started: float
    key: str = ""
    shop_at: float | None = None
    seen: dict[str, float] = field(default_factory=dict)

    @property
    def done_at(self) -> float | None:
        return max(self.seen.values()) if len(self.seen) == len(self.watch) else None


class SalesShop(FakeShop):
    """The fake shop, which also hands each applied sale's stock change to the bench, as the plugin's hooks would."""

    def __init__(self, site: str, secret: str) -> None:
        super().__init__(site, secret)
        self.applied_at: dict[str, float] = {}
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.applied_results = 0

    def _apply(self, item: Any) -> dict[str, Any]:
        result = super()._apply(item)
        if result.get("result") == "applied":
            self.applied_results += 1
            self.applied_at.setdefault(result["key"], time.perf_counter())
            product = next(p for p in self.products.values() if p.sku == item["sku"])
            event = self.event(product, self.versions[product.owner], str(uuid.uuid4()))
            event["cause"] = {"kind": "relay"}
            self.outbox.put_nowait(event)
        return result


def relay_config(
    workdir: Path, secret: str, shop: FakeShop, shopify: FakeShopify, ebay: FakeEbay, hook: tuple[str, str], k: float
) -> Path:
    hook_url, hook_secret = hook
    key = new_key()
    files = {
        "site.secret": secret,
        "vault.key": key,
        "hook.secret": hook_secret,
        "shopify.secret": shopify.client_secret,
    }
    for name, text in files.items():
        (workdir / name).write_text(text)
        (workdir / name).chmod(0o600)
    vault = Vault(workdir / "state" / "credentials", (key,))
    vault.write("bench/shopify", {"client_id": shopify.client_id, "client_secret": shopify.client_secret})
    creds = {"client_id": ebay.client_id, "client_secret": ebay.client_secret, "refresh_token": ebay.refresh_token}
    vault.write("bench/ebay", creds)
    channels = [
        {
            "name": "shopify",
            "type": "shopify",
            "api_base": shopify.url,
            "account": {"shop": "bench-shop", "location_id": "1"},
            "webhook_secret": f"file:{workdir / 'shopify.secret'}",
        },
        {"name": "ebay", "type": "ebay", "api_base": ebay.url, "sales_poll_seconds": DEFAULT_POLL_SECONDS / k},
        {"name": "web", "type": "webhook", "url": hook_url, "secret": f"file:{workdir / 'hook.secret'}"},
    ]
    doc = {
        "state_dir": str(workdir / "state"),
        "listen": {"host": "127.0.0.1", "port": 0},
        "vault_key": f"file:{workdir / 'vault.key'}",
        "sites": {
            "bench": {
                "secret": f"file:{workdir / 'site.secret'}",
                "max_requests_per_second": 0,
                "shop_url": shop.url,
                "reconcile": {"incremental_minutes": 0, "full_hour": None, "readback_hours": 0},
                "channels": channels,
            }
        },
    }
    path = workdir / "relay.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    k = args.factor
    interval = DEFAULT_POLL_SECONDS / k
    per_market = math.ceil(args.seconds * args.rate)
    sale_skus = {m: [f"{m[:2].upper()}-{i:05d}" for i in range(per_market)] for m in ("shopify", "ebay")}
    background = [f"BG-{i:03d}" for i in range(BACKGROUND_SKUS)]
    every_sku = [*sale_skus["shopify"], *sale_skus["ebay"], *background]

    hook_secret = signing.new_secret()
    web_shown: dict[str, int] = {}
    web_seen: dict[tuple[str, int], float] = {}

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        now = time.perf_counter()
        signing.verify([hook_secret], request.headers, body, time.time())
        for update in json.loads(body).get("updates", []):
            web_shown[update["sku"]] = update["quantity"]
            web_seen.setdefault((update["sku"], update["quantity"]), now)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    hook_url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"

    shopify, ebay = FakeShopify(), FakeEbay()
    for sku in every_sku:
        shopify.add_variant(sku, START_QUANTITY)
        ebay.add_item(sku, START_QUANTITY)
    await shopify.start()
    await ebay.start()
    (workdir / "state").mkdir()
    probes: list[Probe] = []
    ebay_calls_before = 0
    relay: ServerProcess | None = None
    shop: SalesShop | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        secret = signing.new_secret()
        shop = SalesShop("bench", secret)
        await shop.start()
        config_path = relay_config(workdir, secret, shop, shopify, ebay, (hook_url, hook_secret), k)
        for n, sku in enumerate(every_sku, start=1):
            shop.add(n, sku, START_QUANTITY)
        product_of = {sku: n for n, sku in enumerate(every_sku, start=1)}
        relay = ServerProcess([sys.executable, "-m", "relay", "serve", "-c", str(config_path)], workdir / "relay.log")
        relay.start()
        shopify.webhook_url = f"{relay.url}/v1/sites/bench/channels/shopify/shopify"

        def shown(channel: str, sku: str) -> int | None:
            if channel == "shopify":
                return shopify.quantity(sku)
            if channel == "ebay":
                return ebay.items.get(sku)
            return web_shown.get(sku)

        def seen_at(channel: str, sku: str, quantity: int, now: float) -> float:
            return web_seen.get((sku, quantity), now) if channel == "web" else now

        await asyncio.sleep(2.0)
        ebay_calls_before = len(ebay.calls("/sell/fulfillment/v1/order"))
        intake_started = time.perf_counter()

        async with aiohttp.ClientSession() as session:
            client = SignedClient(relay.url, "bench", secret, session)

            async def post(events: list[dict[str, Any]]) -> None:
                for _ in range(20):
                    status, answer = await client.send_events(events)
                    if status == 202:
                        return
                    await asyncio.sleep(0.2)
                raise RuntimeError(f"the relay refused events: {status} {answer}")

            async def outbox() -> None:
                assert shop is not None
                while True:
                    events = [await shop.outbox.get()]
                    while not shop.outbox.empty():
                        events.append(shop.outbox.get_nowait())
                    await post(events)

            async def shop_changes() -> None:
                assert shop is not None
                for n in range(int(args.seconds * args.shop_rate)):
                    sku = background[n % len(background)]
                    quantity = START_QUANTITY + 1 + n // len(background)
                    probe = Probe("shop", sku, quantity, ("shopify", "ebay", "web"), time.perf_counter())
                    probes.append(probe)
                    await post([shop.change(product_of[sku], quantity, str(uuid.uuid4()))])
                    await asyncio.sleep(max(0.0, probe.started + 1 / args.shop_rate - time.perf_counter()))

            async def shopify_sale(sku: str) -> None:
                probe = Probe("shopify", sku, START_QUANTITY - 1, ("ebay", "web"), time.perf_counter())
                probes.append(probe)
                order = await shopify.sell(sku, 1)
                probe.key = f"shopify:{order['id']}:{order['line_items'][0]['id']}"

            async def sales() -> None:
                gap = 1 / args.rate
                started = time.perf_counter()
                sells: list[asyncio.Task[None]] = []
                for n in range(per_market):
                    await asyncio.sleep(max(0.0, started + n * gap - time.perf_counter()))
                    sells.append(asyncio.create_task(shopify_sale(sale_skus["shopify"][n])))
                    await asyncio.sleep(max(0.0, started + (n + 0.5) * gap - time.perf_counter()))
                    sku = sale_skus["ebay"][n]
                    probe = Probe("ebay", sku, START_QUANTITY - 1, ("shopify", "web"), time.perf_counter())
                    order = ebay.sell(sku, 1)
                    probe.key = f"ebay:{order}:{ebay.orders[order]['lineItems'][0]['lineItemId']}"
                    probes.append(probe)
                await asyncio.gather(*sells)

            async def watch() -> None:
                assert shop is not None
                while True:
                    now = time.perf_counter()
                    for probe in probes:
                        if probe.done_at is not None:
                            continue
                        if probe.market != "shop":
                            if probe.shop_at is None and probe.key in shop.applied_at:
                                probe.shop_at = shop.applied_at[probe.key]
                            if probe.shop_at is None:
                                continue
                        for channel in probe.watch:
                            if channel not in probe.seen and shown(channel, probe.sku) == probe.expected:
                                probe.seen[channel] = seen_at(channel, probe.sku, probe.expected, now)
                    await asyncio.sleep(0.02)

            tasks = [asyncio.create_task(t()) for t in (outbox, shop_changes, watch)]
            await sales()
            injected = time.perf_counter()
            deadline = injected + interval + args.timeout
            while time.perf_counter() < deadline and any(p.done_at is None for p in probes):
                await asyncio.sleep(0.1)
            intake_seconds = time.perf_counter() - intake_started
            await asyncio.sleep(1.0)  # let late duplicates, if any, land before counting
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for task in tasks:
            task.cancel()
        if relay is not None:
            relay.terminate()
        if shop is not None:
            await shop.stop()
        await shopify.stop()
        await ebay.stop()
        await runner.cleanup()

    assert shop is not None
    webhooks_refused = sum(1 for d in shopify.deliveries if d[3] != 200)
    sale_keys = {p.key for p in probes if p.market != "shop"}
    figures: dict[str, Any] = {}
    for market in ("shopify", "ebay"):
        mine = [p for p in probes if p.market == market]
        to_shop = [p.shop_at - p.started for p in mine if p.shop_at is not None]
        to_others = [d - p.started for p in mine if (d := p.done_at) is not None]
        lost = sum(1 for p in mine if p.key not in shop.adjusted)
        twice = sum(1 for p in mine if shop.products[product_of[p.sku]].quantity != START_QUANTITY - 1)
        target = 5.0 if market == "shopify" else interval + 5.0
        if market == "ebay":
            polls = len(ebay.calls("/sell/fulfillment/v1/order")) - ebay_calls_before
            per_hour = polls / intake_seconds * 3600 / k
            budget = EBAY_CALLS_PER_HOUR
        else:
            polls, per_hour, budget = 0, 0.0, SHOPIFY_POINTS_PER_HOUR
        shop_ms, other_ms = summary_ms(to_shop), summary_ms(to_others)
        figures[market] = {
            "intake": "webhooks" if market == "shopify" else f"getOrders every {interval:g} s (default 60 s / {k:g})",
            "sales": len(mine),
            "sale_to_shop_p50_s": round(shop_ms["p50_ms"] / 1000, 3),
            "sale_to_shop_p99_s": round(shop_ms["p99_ms"] / 1000, 3),
            "sale_to_others_p50_s": round(other_ms["p50_ms"] / 1000, 3),
            "sale_to_others_p99_s": round(other_ms["p99_ms"] / 1000, 3),
            "sale_to_others_max_s": round(other_ms["max_ms"] / 1000, 3),
            "incomplete": len(mine) - len(to_others),
            "target_s": target,
            "p99_over_target": round(other_ms["p99_ms"] / 1000 / target, 3),
            "lost": lost,
            "applied_twice": twice,
            "intake_calls_in_run": polls,
            "intake_calls_per_hour_at_default": round(per_hour, 1),
            "budget_per_hour": round(budget),
            "budget_unit": "points (100/s)" if market == "shopify" else "calls (2,000,000/day)",
            "intake_share_of_budget": round(per_hour / budget, 6),
        }
    base = [d - p.started for p in probes if p.market == "shop" and (d := p.done_at) is not None]
    base_ms = summary_ms(base)
    return {
        "bench": "sales",
        "date": time.strftime("%Y-%m-%d"),
        "factor": k,
        "seconds": args.seconds,
        "rate_per_marketplace": args.rate,
        "shop_changes_per_second": args.shop_rate,
        "ebay_poll_seconds": interval,
        "marketplaces": figures,
        "baseline_shop_change_to_all_p50_s": round(base_ms["p50_ms"] / 1000, 3),
        "baseline_shop_change_to_all_p99_s": round(base_ms["p99_ms"] / 1000, 3),
        "baseline_changes": sum(1 for p in probes if p.market == "shop"),
        "baseline_incomplete": sum(1 for p in probes if p.market == "shop" and p.done_at is None),
        "adjust_keys_not_from_a_sale": len(set(shop.adjusted) - sale_keys),
        "webhooks_refused": webhooks_refused,
        "not_built": list(NOT_BUILT),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long sales are injected (default 60)")
    parser.add_argument("--rate", type=float, default=2.0, help="sales a second per marketplace (default 2)")
    parser.add_argument("--shop-rate", type=float, default=10.0, help="shop-side changes a second (default 10)")
    parser.add_argument("--factor", type=float, default=6.0, help="eBay's sales_poll_seconds = 60 / factor (≤ 12)")
    parser.add_argument("--timeout", type=float, default=30.0, help="wait this long past one poll interval at the end")
    args = parser.parse_args()
    if not 1 <= args.factor <= 12:
        parser.error("--factor must be 1 to 12: the relay polls every 5 s at least")
    with tempfile.TemporaryDirectory(prefix="bench-sales-") as tmp:
        f = asyncio.run(run(args, Path(tmp)))
    print(
        f"{f['seconds']:g} s of sales, {f['rate_per_marketplace']:g}/s per marketplace, while the shop changes"
        f" {f['shop_changes_per_second']:g} other SKUs/s; eBay polled every {f['ebay_poll_seconds']:g} s"
        f" (its default 60 s / factor {f['factor']:g})"
    )
    print(
        f"{'marketplace':12} {'sales':>5} {'->shop p50':>10} {'p99':>7} {'->others p50':>12} {'p99':>7}"
        f" {'target':>7} {'ratio':>6} {'lost':>4} {'twice':>5} {'calls/h@default':>15} {'of budget':>9}"
    )
    for name, m in f["marketplaces"].items():
        print(
            f"{name:12} {m['sales']:5} {m['sale_to_shop_p50_s']:9.2f}s {m['sale_to_shop_p99_s']:6.2f}s"
            f" {m['sale_to_others_p50_s']:11.2f}s {m['sale_to_others_p99_s']:6.2f}s {m['target_s']:6.1f}s"
            f" {m['p99_over_target']:6.2f} {m['lost']:4} {m['applied_twice']:5}"
            f" {m['intake_calls_per_hour_at_default']:15.1f} {m['intake_share_of_budget']:9.2%}"
        )
    print(
        f"baseline, shop-side change -> all three channels: p50 {f['baseline_shop_change_to_all_p50_s']:.2f} s"
        f"   p99 {f['baseline_shop_change_to_all_p99_s']:.2f} s   ({f['baseline_changes']} changes,"
        f" {f['baseline_incomplete']} incomplete)"
    )
    print(f"intake not built (not measured): {', '.join(f['not_built'])}")
    print(json.dumps(f))
    ok = f["webhooks_refused"] == 0 and all(
        m["lost"] == 0 and m["applied_twice"] == 0 and m["incomplete"] == 0 for m in f["marketplaces"].values()
    )
    return 0 if ok else 1  # a missed latency target is in the figures, not the exit status (docs/performance.md)


if __name__ == "__main__":
    sys.exit(main())
