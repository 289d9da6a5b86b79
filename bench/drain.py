"""Drain: 10,000 SKUs, each changed 5 times in a burst, fanned out to all six fake marketplaces.

    .venv/bin/python bench/drain.py [--skus 10000] [--changes 5] [--factor 15] [--only amazon,walmart]

The relay (``stock-relay serve`` on a fresh SQLite file, credentials in its encrypted vault) runs in its
own process with one channel per marketplace, each pointing at a fake marketplace served from *this*
process (fakes/), so every fake's state is read on the same clock as the burst. Every fake enforces
its marketplace's real default limits, and every limit (rates) and clock (feed processing, backoff)
is scaled by the same ``--factor``; the relay's channels get the same scaled limits. The burst posts
the SKUs in windows of 2,000 (the relay's budgets keep part of each per-call marketplace's burst
as slack for arrival jitter: Amazon 2 of 5, TikTok 5 of 10, Walmart 10 of 200, eBay 15 of 25, since a claim
now holds several of its calls): each window's SKUs get their 5 changes one after another (500 events
per signed batch, 4 batches in flight), so a SKU's changes arrive within about a second of each other.

Per marketplace it reports:
- API calls that carried updates ("writes") and all calls (lookups, reads, tokens, feed polls) vs the
  minimum possible: distinct SKUs ÷ the largest batch the route takes (Shopify 250, eBay 25, Etsy one
  listing of 5 SKUs, TikTok one product of 5 SKUs, Amazon and Walmart one SKU per call: see below);
- throttle answers the fake sent (target 0);
- time to converge, from the first POST until the fake shows every SKU's final quantity (the arrival of the
  last write before the poll that saw it: polls are 0.5 s apart), vs the lower
  bound: the later of the burst's last acknowledgement and the time the marketplace's limit allows
  for the work the relay did ((units − burst) ÷ rate). Target ≤ 1.15×.

Amazon and Walmart use their single-call routes here: the relay's own time constants (the 5 s push
window, Amazon's 120 s feed turnaround, Walmart's 30 minutes) are not scaled by ``--factor``, so at
15× their feed thresholds lie beyond one claim (see docs/connectors.md); the feed routes are covered
by the tests. Nor is eBay's ``coalesce_seconds`` (1 s, its default): it is measured against how far
apart the shop's changes to one SKU arrive, and the burst is posted at full speed, unscaled. The last line of stdout is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from _common import ServerProcess

from fakes.amazon import FakeAmazon
from fakes.common import FakeMarketplace
from fakes.ebay import FakeEbay
from fakes.etsy import FakeEtsy
from fakes.shopify import MUTATION_COST, FakeShopify
from fakes.tiktok import FakeTikTok
from fakes.walmart import FakeWalmart
from relay import signing
from relay.cli.client import SignedClient, stock_event
from relay.vault import Vault, new_key

SKUS_PER_GROUP = 5  # SKUs per Etsy listing and per TikTok product (variations of one item)
WINDOW = 2000
EVENTS_PER_BATCH = 500
IN_FLIGHT = 4
MARKETPLACES = ("shopify", "ebay", "etsy", "amazon", "walmart", "tiktok")


def quantity(index: int, change: int) -> int:
    return (index * 7 + change * 13) % 400 + change  # differs from change to change, never the seeded 0


class Market:
    """One fake marketplace in the bench: how to seed it, read it, configure its channel and judge the run."""

    def __init__(self, name: str, fake: FakeMarketplace, channel: dict[str, Any], creds: dict[str, str]) -> None:
        self.name = name
        self.fake = fake
        self.channel = {"name": name, "type": name, **channel}
        self.creds = creds
        self.read: Callable[[], dict[str, int | None]] = dict
        self.converged_at: float | None = None

    def writes(self) -> int:
        return len(write_calls(self.name, self.fake))


def write_calls(name: str, fake: FakeMarketplace) -> list[Any]:
    if name == "shopify":
        return [r for r in fake.calls("/graphql.json") if b"inventorySetQuantities" in r.body]
    if name == "ebay":
        return fake.calls("bulk_update_price_quantity")
    if name == "etsy":
        return fake.calls("/inventory", method="PUT")
    if name == "amazon":
        return fake.calls("/listings/", method="PATCH") + fake.calls("/feeds/2021-06-30/feeds", method="POST")
    if name == "walmart":
        return fake.calls("/v3/inventory", method="PUT") + fake.calls("/v3/feeds", method="POST")
    return fake.calls("/inventory/update")


def build(k: float, skus: list[str]) -> dict[str, Market]:
    """The six fakes at their real default limits times ``k``, seeded with ``skus`` at quantity 0."""
    markets: dict[str, Market] = {}
    shop = FakeShopify(restore_rate=100.0 * k, bucket=1000.0)
    items = {sku: shop.add_variant(sku) for sku in skus}
    markets["shopify"] = Market(
        "shopify",
        shop,
        {"account": {"shop": "bench-shop", "location_id": "1"}, "rate": {"per_second": 100.0 * k, "burst": 1000}},
        {"client_id": shop.client_id, "client_secret": shop.client_secret},
    )
    markets["shopify"].read = lambda: {s: shop.levels.get((items[s], shop.location_id)) for s in skus}

    ebay = FakeEbay(rate=2_000_000 / 86400 * k, burst=25.0, day_seconds=86400.0 / k)
    for sku in skus:
        ebay.add_item(sku)
    markets["ebay"] = Market(
        "ebay",
        ebay,
        {"rate": {"per_second": 2_000_000 / 86400 * k, "burst": 15}},
        {"client_id": ebay.client_id, "client_secret": ebay.client_secret, "refresh_token": ebay.refresh_token},
    )
    markets["ebay"].read = lambda: dict(ebay.items)

    etsy = FakeEtsy(qps=10.0 * k, qpd=10_000, day_seconds=86400.0 / k)
    for start in range(0, len(skus), SKUS_PER_GROUP):
        etsy.add_listing(dict.fromkeys(skus[start : start + SKUS_PER_GROUP], 0))
    markets["etsy"] = Market(
        "etsy",
        etsy,
        {"account": {"shop_id": str(etsy.shop_id)}, "rate": {"per_second": 10.0 * k, "burst": int(10 * k)}},
        {"keystring": etsy.keystring, "shared_secret": etsy.shared_secret, "refresh_token": etsy.refresh_token},
    )

    def read_etsy() -> dict[str, int | None]:
        return {
            p["sku"]: int(p["offerings"][0]["quantity"])
            for inventory in etsy.inventories.values()
            for p in inventory["products"]
        }

    markets["etsy"].read = read_etsy

    amazon = FakeAmazon(speed=k)
    amazon.add_listings(dict.fromkeys(skus, 0))
    markets["amazon"] = Market(
        "amazon",
        amazon,
        {
            "account": {"seller_id": amazon.seller_id, "marketplace_id": amazon.marketplace_id, "lwa_url": ""},
            "rate": {"per_second": 5.0 * k, "burst": 2},
        },
        {"client_id": amazon.client_id, "client_secret": amazon.client_secret, "refresh_token": amazon.refresh_token},
    )
    markets["amazon"].read = lambda: dict(amazon.listings)

    walmart = FakeWalmart(speed=k)
    walmart.add_items(dict.fromkeys(skus, 0))
    markets["walmart"] = Market(
        "walmart",
        walmart,
        {"rate": {"per_second": 200 / 60 * k, "burst": 10}},
        {"client_id": walmart.client_id, "client_secret": walmart.client_secret},
    )
    markets["walmart"].read = lambda: dict(walmart.inventory)

    tiktok = FakeTikTok(speed=k)
    for start in range(0, len(skus), SKUS_PER_GROUP):
        tiktok.add_product({sku: {"7068517275539719942": 0} for sku in skus[start : start + SKUS_PER_GROUP]})
    stocks = {s["seller_sku"]: s["inventory"][0] for p in tiktok.products.values() for s in p["skus"]}
    markets["tiktok"] = Market(
        "tiktok",
        tiktok,
        {"account": {"shop_cipher": tiktok.shop_cipher}, "rate": {"per_second": 10.0 * k, "burst": 5}},
        {"app_key": tiktok.app_key, "app_secret": tiktok.app_secret, "refresh_token": tiktok.refresh_token},
    )
    markets["tiktok"].read = lambda: {s: stocks[s]["quantity"] for s in skus}
    return markets


def bound_seconds(market: Market, k: float) -> float:
    """What the marketplace's limit allows for the work the relay did: (units − burst) ÷ rate."""
    fake = market.fake
    if market.name == "shopify":
        points = 0.0
        for r in fake.calls("/graphql.json"):
            if b"inventorySetQuantities" in r.body:
                points += MUTATION_COST
            else:
                points += 2.0 + 2.0 * int((r.json or {}).get("variables", {}).get("first", 1))
        return max(0.0, (points - 1000.0) / (100.0 * k))
    api = [r for r in fake.requests if "token" not in r.path and "/presigned/" not in r.path]
    if market.name == "ebay":
        return max(0.0, (len(api) - 25) / (2_000_000 / 86400 * k))
    if market.name == "etsy":
        return max(0.0, (len(api) - 10 * k) / (10 * k))
    if market.name == "amazon":
        patches = len(fake.calls("/listings/", method="PATCH"))
        return max(0.0, (patches - 5) / (5 * k))
    if market.name == "walmart":
        return max(0.0, (len(fake.calls("/v3/inventory", method="PUT")) - 200) / (200 / 60 * k))
    return max(0.0, (len(api) - 10) / (10 * k))


def converged_at(market: Market, polled: float) -> float:
    """When the fake started showing every final quantity: the arrival of the last write before the poll that saw it.

    The poll itself runs every 0.5 s, so its time alone would be up to half a second late, a sixth of a
    burst's ingest time. A write changes the fake's state as it is handled, so the last one before the
    poll is when the state became final (or later, if no-op writes followed). Feeds change the state
    when they are processed, after their write: then the poll's time stands.
    """
    writes = write_calls(market.name, market.fake)
    if not writes or any("/feeds" in r.path for r in writes):
        return polled
    wall_offset = time.time() - time.monotonic()  # the fakes stamp requests with the monotonic clock
    return min(polled, max(r.at for r in writes) + wall_offset)


def minimum_calls(name: str, n: int) -> int:
    per_call = {"shopify": 250, "ebay": 25, "etsy": SKUS_PER_GROUP, "tiktok": SKUS_PER_GROUP}.get(name, 1)
    return math.ceil(n / per_call)


async def post_burst(client: SignedClient, skus: list[str], changes: int) -> None:
    batches: list[list[dict[str, Any]]] = []
    for start in range(0, len(skus), WINDOW):
        window = range(start, min(start + WINDOW, len(skus)))
        for change in range(1, changes + 1):
            events = [stock_event(i + 1, skus[i], quantity(i, change), change) for i in window]
            batches.extend(events[j : j + EVENTS_PER_BATCH] for j in range(0, len(events), EVENTS_PER_BATCH))
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def post(batch: list[dict[str, Any]]) -> None:
        async with gate:
            for _ in range(20):
                status, body = await client.send_events(batch)
                if status == 202:
                    return
                await asyncio.sleep(0.2)  # 429/503 from a busy ingest: the plugin would retry too
            raise RuntimeError(f"the relay refused a batch: {status} {body}")

    await asyncio.gather(*(post(b) for b in batches))


def relay_config(workdir: Path, markets: dict[str, Market], k: float) -> tuple[Path, str]:
    secret = signing.new_secret()
    (workdir / "site.secret").write_text(secret)
    key = new_key()
    (workdir / "vault.key").write_text(key)
    for path in (workdir / "site.secret", workdir / "vault.key"):
        path.chmod(0o600)
    vault = Vault(workdir / "state" / "credentials", (key,))
    channels = []
    for market in markets.values():
        channel = {**market.channel, "api_base": market.fake.url}
        account = dict(channel.get("account") or {})
        if market.name == "amazon":
            account["lwa_url"] = f"{market.fake.url}/auth/o2/token"
        if market.name == "tiktok":
            account["auth_base"] = market.fake.url
        if account:
            channel["account"] = account
        channels.append(channel)
        vault.write(f"bench/{market.name}", market.creds)
    doc = {
        "state_dir": str(workdir / "state"),
        "listen": {"host": "127.0.0.1", "port": 0},
        "vault_key": f"file:{workdir / 'vault.key'}",
        "dispatch": {
            "idle_poll_seconds": 0.05,
            "backoff_base_seconds": round(1.0 / k, 4),
            "backoff_max_seconds": round(900.0 / k, 3),
        },
        "sites": {
            "bench": {"secret": f"file:{workdir / 'site.secret'}", "max_requests_per_second": 0, "channels": channels}
        },
    }
    path = workdir / "relay.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path, secret


def burst_process(url: str, secret: str, skus: list[str], changes: int, report: Any) -> None:
    """The poster, in its own process: JSON and HMAC work for 50,000 events must not stall the fakes' loop."""

    async def main() -> tuple[float, float]:
        async with aiohttp.ClientSession() as session:
            client = SignedClient(url, "bench", secret, session)
            started = time.time()
            await post_burst(client, skus, changes)
            return started, time.time()

    report.put(asyncio.run(main()))


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    k = args.factor
    skus = [f"SKU-{n:05}" for n in range(args.skus)]
    chosen = args.only.split(",") if args.only else list(MARKETPLACES)
    markets = {name: m for name, m in build(k, skus).items() if name in chosen}
    final = {sku: quantity(i, args.changes) for i, sku in enumerate(skus)}
    for market in markets.values():
        await market.fake.start()
    (workdir / "state").mkdir()
    config_path, secret = relay_config(workdir, markets, k)
    relay = ServerProcess([sys.executable, "-m", "relay", "serve", "-c", str(config_path)], workdir / "relay.log")
    relay.start()
    context = multiprocessing.get_context("spawn")
    report = context.Queue()
    poster = context.Process(target=burst_process, args=(relay.url, secret, skus, args.changes, report))
    converged: dict[str, float] = {}
    try:
        poster.start()
        spawned = time.time()
        started = ended = None
        while time.time() - spawned < args.timeout:
            await asyncio.sleep(0.5)  # reading six fakes' state stalls their loop a little: not too often
            now = time.time()
            if ended is None and not report.empty():
                started, ended = report.get()
            elif ended is None and not poster.is_alive():
                raise RuntimeError("the burst poster died")
            for market in markets.values():
                if market.name not in converged:
                    shown = market.read()
                    if all(shown.get(s) == q for s, q in final.items()):
                        converged[market.name] = converged_at(market, now)
            if ended is not None and len(converged) == len(markets):
                break
    finally:
        if poster.is_alive():
            poster.kill()
        poster.join()
        relay.terminate()
        for market in markets.values():
            await market.fake.stop()
    if started is None or ended is None:
        raise RuntimeError("the burst did not finish in time")
    ingest_s = ended - started
    for name, at in converged.items():
        markets[name].converged_at = at - started
    figures: dict[str, Any] = {}
    for market in markets.values():
        rate_bound = bound_seconds(market, k)
        bound = max(rate_bound, ingest_s)
        converged = market.converged_at
        api_calls = [r for r in market.fake.requests if "/presigned/" not in r.path]
        figures[market.name] = {
            "write_calls": market.writes(),
            "all_calls": len(api_calls),
            "min_calls": minimum_calls(market.name, len(skus)),
            "throttled": market.fake.throttled,
            "converge_s": None if converged is None else round(converged, 2),
            "rate_bound_s": round(rate_bound, 2),
            "bound_s": round(bound, 2),
            "ratio": None if converged is None or bound == 0 else round(converged / bound, 3),
        }
    return {
        "factor": k,
        "skus": len(skus),
        "changes_per_sku": args.changes,
        "ingest_s": round(ingest_s, 2),
        "marketplaces": figures,
        "left_out": [m for m in MARKETPLACES if m not in markets],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=5)
    parser.add_argument("--factor", type=float, default=15.0, help="every limit and clock scaled by this")
    parser.add_argument("--timeout", type=float, default=270.0, help="give up on convergence after this many s")
    parser.add_argument("--only", default="", help="comma-separated marketplaces (default: all six)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp:
        f = asyncio.run(run(args, Path(tmp)))
    print(f"{f['skus']} SKUs x {f['changes_per_sku']} changes, limits and clocks x{f['factor']:g};")
    print(f"burst acknowledged after {f['ingest_s']} s")
    print(
        f"{'marketplace':12} {'writes':>7} {'all':>7} {'min':>6} {'throttled':>9} {'converge s':>10} {'bound s':>8} {'ratio':>6}"
    )
    for name, m in f["marketplaces"].items():
        print(
            f"{name:12} {m['write_calls']:7} {m['all_calls']:7} {m['min_calls']:6} {m['throttled']:9}"
            f" {m['converge_s']!s:>10} {m['bound_s']:8} {m['ratio']!s:>6}"
        )
    print(json.dumps(f))
    ok = all(m["throttled"] == 0 and m["ratio"] is not None and m["ratio"] <= 1.15 for m in f["marketplaces"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
