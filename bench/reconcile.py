"""Reconcile: a full pass over 50,000 SKUs against a stand-in of the plugin's snapshot route and the six fake marketplaces.

    .venv/bin/python bench/reconcile.py [--skus 50000] [--drift 500] [--factor 15]

The shop is fakes/shop.py, serving the same signed pages as the plugin's route (500 items a page, the
versions read before the state). The relay runs in this process on a fresh SQLite file with one channel
per fake marketplace (bench/drain.py's setup: real default limits times ``--factor``). Four phases:

1. fetch: every page read and parsed, nothing judged: the baseline, measured in the same run;
2. first pass: the relay has never heard of the shop, so every SKU is adopted (the first start of a relay
   with a shop_url): 50,000 events and 300,000 deliveries made due;
3. nightly pass, in sync: every delivery is marked delivered (a shortcut standing for "the channels
   already show this"; draining 300,000 deliveries at the marketplaces' limits would take hours), then a
   full pass that finds nothing: the cost of the nightly pass on a healthy shop;
4. drift: ``--drift`` SKUs edited behind the hooks, a full pass, then the workers run until every fake
   marketplace shows the new quantities: convergence against the bound its rate limit sets.

Reported: seconds and seconds per 1,000 SKUs for each pass, each pass ÷ the fetch baseline, and per
marketplace the convergence time for the drifted SKUs ÷ its rate-limit bound. The last line of stdout
is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from drain import MARKETPLACES, SKUS_PER_GROUP, bound_seconds, build, minimum_calls, relay_config

from fakes.shop import FakeShop
from relay import config as config_module
from relay.config import ReconcileConfig
from relay.repair import reconcile
from relay.runtime import Relay


def minimum_write_calls(name: str, indexes: list[int]) -> int:
    """Etsy and TikTok write one listing/product (5 SKUs here) per call: the drifted SKUs' distinct groups."""
    if name in ("etsy", "tiktok"):
        return len({i // SKUS_PER_GROUP for i in indexes})
    return minimum_calls(name, len(indexes))


def shop_quantity(index: int) -> int:
    return (index * 11) % 300 + 1  # drift adds 500: within Etsy's 999


async def timed_pass(relay: Relay, client: reconcile.ShopClient) -> tuple[float, reconcile.PassResult]:
    started = time.perf_counter()
    result = await reconcile.run_pass(relay.store.write, relay.config.sites[0], client, full=True)
    return time.perf_counter() - started, result


async def fetch_all(client: reconcile.ShopClient, page_size: int) -> tuple[float, int]:
    started, after, items = time.perf_counter(), 0, 0
    while True:
        page = await client.page(after, page_size)
        items += len(page.items)
        if page.next_after_id is None:
            return time.perf_counter() - started, items
        after = page.next_after_id


def mark_all_delivered(conn: Any) -> int:
    return int(
        conn.execute(
            "UPDATE deliveries SET state = 'delivered', delivered_seq = want_seq, pending_since = NULL,"
            " delivered_quantity = (SELECT max(0, stock_quantity) FROM events WHERE seq = want_seq)"
        ).rowcount
    )


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    k = args.factor
    skus = [f"SKU-{n:05}" for n in range(args.skus)]
    markets = build(k, skus)
    for market in markets.values():
        await market.fake.start()
    (workdir / "state").mkdir()
    config_path, secret = relay_config(workdir, markets, k)
    shop = FakeShop("bench", secret)
    for index, sku in enumerate(skus, start=1):
        shop.add(index, sku, shop_quantity(index))
        shop.bump(index)
    await shop.start()
    cfg = config_module.load(config_path)
    quiet = ReconcileConfig(incremental_minutes=0, full_hour=None, readback_hours=0)
    cfg = replace(cfg, sites=(replace(cfg.sites[0], shop_url=shop.url, reconcile=quiet),))
    relay = Relay(cfg)
    await relay.start(run_workers=False)
    figures: dict[str, Any] = {"skus": len(skus), "factor": k, "page_size": quiet.page_size}
    try:
        async with aiohttp.ClientSession() as session:
            client = reconcile.ShopClient(cfg.sites[0], session)
            fetch_s, items = await fetch_all(client, quiet.page_size)
            assert items == len(skus), f"the shop served {items} of {len(skus)} SKUs"
            print(f"fetch only: {fetch_s:.2f} s ({fetch_s / len(skus) * 1000:.3f} s per 1,000 SKUs)", file=sys.stderr)
            first_s, first = await timed_pass(relay, client)
            print(f"first pass: {first_s:.2f} s, {first.counts.missed:,} adopted", file=sys.stderr)
            marked = await relay.store.write(mark_all_delivered)
            nightly_s, nightly = await timed_pass(relay, client)
            print(f"in sync: {nightly_s:.2f} s, {nightly.counts.corrections} corrections", file=sys.stderr)
            drifted = {skus[i]: shop_quantity(i + 1) + 500 for i in range(0, len(skus), len(skus) // args.drift)}
            for index, sku in enumerate(skus, start=1):
                if sku in drifted:
                    shop.edit_behind_hooks(index, drifted[sku])
            drift_s, drift = await timed_pass(relay, client)
            print(f"drift: {drift_s:.2f} s, {drift.counts.behind_hooks} adopted", file=sys.stderr)
            converge = await converge_markets(relay, markets, drifted, args.timeout)
        for name, market in markets.items():
            seconds = converge.get(name)
            bound = bound_seconds(market, k)
            converge[name] = {  # type: ignore[assignment]
                "converge_s": None if seconds is None else round(seconds, 2),
                "rate_bound_s": round(bound, 2),
                "calls": len([r for r in market.fake.requests if "token" not in r.path]),
                "min_write_calls": minimum_write_calls(name, [skus.index(s) for s in drifted]),
                "throttled": market.fake.throttled,
                "ratio": None if seconds is None or bound == 0 else round(seconds / bound, 3),
            }
        per_k = 1000 / len(skus)
        figures.update(
            fetch_s=round(fetch_s, 3),
            fetch_s_per_1000=round(fetch_s * per_k, 4),
            first_pass={"s": round(first_s, 3), "s_per_1000": round(first_s * per_k, 4),
                        "ratio_to_fetch": round(first_s / fetch_s, 2), **first.as_dict()},
            delivered_marked=marked,
            in_sync_pass={"s": round(nightly_s, 3), "s_per_1000": round(nightly_s * per_k, 4),
                          "ratio_to_fetch": round(nightly_s / fetch_s, 2), **nightly.as_dict()},
            drift_pass={"s": round(drift_s, 3), "s_per_1000": round(drift_s * per_k, 4),
                        "ratio_to_fetch": round(drift_s / fetch_s, 2), "drifted": len(drifted), **drift.as_dict()},
            marketplaces=converge,
        )  # fmt: skip
    finally:
        await relay.stop()
        await shop.stop()
        for market in markets.values():
            await market.fake.stop()
    return figures


async def converge_markets(
    relay: Relay, markets: dict[str, Any], drifted: dict[str, int], timeout: float
) -> dict[str, float]:
    """Run the channel workers until every fake shows the drifted SKUs' new quantities."""
    for market in markets.values():
        market.fake.requests.clear()
    started = time.monotonic()
    tasks = [asyncio.create_task(w.run(relay.stopping)) for w in relay.workers.values()]
    converged: dict[str, float] = {}
    try:
        while len(converged) < len(markets) and time.monotonic() - started < timeout:
            await asyncio.sleep(0.5)
            for name, market in markets.items():
                if name not in converged:
                    shown = market.read()
                    if all(shown.get(sku) == q for sku, q in drifted.items()):
                        converged[name] = time.monotonic() - started
    finally:
        relay.stopping.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return converged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skus", type=int, default=50_000)
    parser.add_argument("--drift", type=int, default=500, help="SKUs edited behind the hooks before the last pass")
    parser.add_argument("--factor", type=float, default=15.0, help="every marketplace limit and clock scaled by this")
    parser.add_argument("--timeout", type=float, default=240.0, help="give up on convergence after this many s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as tmp:
        f = asyncio.run(run(args, Path(tmp)))
    print(f"{f['skus']:,} SKUs, pages of {f['page_size']}; marketplace limits x{f['factor']:g}")
    print(f"{'pass':14} {'s':>8} {'s/1000 SKUs':>12} {'÷ fetch':>8} {'corrections':>12}")
    print(f"{'fetch only':14} {f['fetch_s']:8} {f['fetch_s_per_1000']:12} {1.0:8} {'':>12}")
    for name in ("first_pass", "in_sync_pass", "drift_pass"):
        p = f[name]
        print(f"{name:14} {p['s']:8} {p['s_per_1000']:12} {p['ratio_to_fetch']:8} {p['corrections']:12,}")
    print(f"{'marketplace':12} {'converge s':>10} {'bound s':>8} {'ratio':>6} {'calls':>6} {'throttled':>9}")
    for name in MARKETPLACES:
        m = f["marketplaces"][name]
        print(
            f"{name:12} {m['converge_s']!s:>10} {m['rate_bound_s']:8} {m['ratio']!s:>6} {m['calls']:6} {m['throttled']:9}"
        )
    print(json.dumps(f))
    return 0


if __name__ == "__main__":
    sys.exit(main())
