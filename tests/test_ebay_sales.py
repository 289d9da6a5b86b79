"""eBay's own sales reach the shop exactly once (issue 15): the relay polls the fake eBay's getOrders since a
persisted cursor and applies each order line to the fake shop through the plugin's adjust route, over HTTP.

Polls are driven by state (``SalesSweeper.poll_once``) except where the running relay's loops are the point.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fakes.common import Bucket
from fakes.ebay import FakeEbay
from fakes.shop import FakeShop
from relay.cli.operator import format_status
from relay.config import Config, RateLimit, ReconcileConfig
from relay.errors import TransientDeliveryError

from .conftest import SITE_SECRET, StartRelay, eventually
from .marketplaces import channel, marketplace_config, poll_orders, sales_cursor, send, store_credentials

QUIET = ReconcileConfig(incremental_minutes=0, full_hour=None, readback_hours=0)


@pytest.fixture
async def ebay() -> AsyncIterator[FakeEbay]:
    fake = FakeEbay()
    await fake.start()
    fake.add_item("EB-1", 10)
    yield fake
    await fake.stop()


@pytest.fixture
async def shop() -> AsyncIterator[FakeShop]:
    fake = await FakeShop("main", SITE_SECRET).start()
    fake.add(1, "TS-EB-1", 10)
    yield fake
    await fake.stop()


def config_for(tmp_path: Path, ebay: FakeEbay, shop: FakeShop, **overrides: Any) -> Config:
    options: dict[str, Any] = {"sales_poll_seconds": 60.0} | overrides
    ebay_channel = channel("ebay", ebay.url, {}, **options)
    ebay_channel = replace(ebay_channel, rules=replace(ebay_channel.rules, sku_map={"TS-EB-1": "EB-1"}))
    cfg = marketplace_config(tmp_path / "state", ebay_channel)
    cfg = replace(cfg, sites=(replace(cfg.sites[0], shop_url=shop.url, reconcile=QUIET),))
    creds = {"client_id": ebay.client_id, "client_secret": ebay.client_secret, "refresh_token": ebay.refresh_token}
    store_credentials(cfg, "main/ebay", creds)
    return cfg


poll = functools.partial(poll_orders, channel="ebay")


cursor = functools.partial(sales_cursor, channel="ebay")


async def test_a_sale_on_ebay_lowers_the_shop_once(
    tmp_path: Path, ebay: FakeEbay, shop: FakeShop, start_relay: StartRelay
) -> None:
    """An eBay order line lowers the shop's stock once (the channel SKU mapped back to the shop's); polling again,
    and polling after a restart on the same database, finds it again and counts it no more; the cursor persists."""
    cfg = config_for(tmp_path, ebay, shop)
    r = await start_relay(cfg)
    order = ebay.sell("EB-1", 2)
    line = ebay.orders[order]["lineItems"][0]["lineItemId"]
    assert await poll(r) == 1
    assert await r.relay.shop_workers["main"].drain() == 1
    assert shop.products[1].quantity == 8
    key = f"ebay:{order}:{line}"
    assert shop.adjust_calls[0]["items"] == [{"key": key, "sku": "TS-EB-1", "delta": -2, "reason": "sale"}]
    rows = await r.relay.store.read("SELECT detail FROM audit WHERE event_id = ? AND action = 'sale_received'", (key,))
    assert '"source": "sweep"' in rows[0][0]
    first = await cursor(r)
    assert first is not None
    assert await poll(r) == 0
    assert await cursor(r) >= first

    await r.server.close()
    await r.relay.stop()
    r = await start_relay(cfg)
    assert await cursor(r) >= first, "the cursor survived the restart"
    assert await poll(r) == 0
    assert await r.relay.shop_workers["main"].drain() == 0
    assert len(shop.adjust_calls) == 1 and shop.products[1].quantity == 8
    assert await r.count("SELECT count(*) FROM sales") == 1


async def test_a_cancelled_order_restocks_once(
    tmp_path: Path, ebay: FakeEbay, shop: FakeShop, start_relay: StartRelay
) -> None:
    """A CANCELED order gives its lines back to the shop once, under keys of their own."""
    r = await start_relay(config_for(tmp_path, ebay, shop))
    order = ebay.sell("EB-1", 3)
    assert await poll(r) == 1
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 7
    ebay.cancel(order)
    assert await poll(r) == 1
    assert await poll(r) == 0
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 10
    line = ebay.orders[order]["lineItems"][0]["lineItemId"]
    assert set(shop.adjusted) == {f"ebay:{order}:{line}", f"ebay:{order}:{line}:cancel"}


async def test_every_page_of_orders_is_read(
    tmp_path: Path, ebay: FakeEbay, shop: FakeShop, start_relay: StartRelay
) -> None:
    """Orders beyond the first page (here pages of 3) are read by offset until eBay's answer has no next."""
    ebay.page_limit = 3
    r = await start_relay(config_for(tmp_path, ebay, shop))
    for _ in range(7):
        ebay.sell("EB-1", 1)
    assert await poll(r) == 7
    offsets = [c.query["offset"] for c in ebay.calls("/sell/fulfillment/v1/order")]
    assert offsets == ["0", "3", "6"]
    assert all(c.query["filter"].startswith("lastmodifieddate:[") for c in ebay.calls("/sell/fulfillment/v1/order"))
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 3


async def test_a_refused_poll_moves_no_cursor_and_loses_nothing(
    tmp_path: Path, ebay: FakeEbay, shop: FakeShop, start_relay: StartRelay
) -> None:
    """eBay answering 503 or 429 to getOrders (on the second page too) records nothing and leaves the cursor; the
    next poll reads the same window and catches up."""
    ebay.page_limit = 1
    r = await start_relay(config_for(tmp_path, ebay, shop))
    assert await poll(r) == 0
    before = await cursor(r)
    ebay.sell("EB-1", 1)
    ebay.sell("EB-1", 1)
    ebay.page_failures[0] = 503
    with pytest.raises(TransientDeliveryError):
        await poll(r)
    ebay.page_failures[1] = 429  # the first page read, the second throttled
    with pytest.raises(TransientDeliveryError):
        await poll(r)
    assert await cursor(r) == before
    assert await r.count("SELECT count(*) FROM sales") == 0
    assert await poll(r) == 2
    assert await cursor(r) > before


async def test_intake_does_not_starve_pushes(
    tmp_path: Path, ebay: FakeEbay, shop: FakeShop, start_relay: StartRelay
) -> None:
    """With the channel's call budget tight (10 calls/s, burst 4; eBay's a little above it) and 30 pages of orders to read,
    40 one-SKU pushes go out unthrottled and nearly without intake calls between them: intake takes only spare
    calls (queueing with the pushes would have taken about every second call)."""
    ebay.calls_bucket = Bucket(12, 6)  # a little above the relay's budget: arrivals bunch up on loopback
    ebay.page_limit = 1
    skus = [f"P{i:02d}" for i in range(40)]
    for sku in skus:
        ebay.add_item(sku, 0)
    for _ in range(30):
        ebay.sell("EB-1", 1)
    cfg = config_for(tmp_path, ebay, shop, rate=RateLimit(10, 4), batch_size=1, sales_poll_seconds=5.0)
    r = await start_relay(cfg, run_workers=True)
    await send(r, [(sku, 5) for sku in skus])

    async def all_done() -> bool:
        pushed = all(ebay.items[sku] == 5 for sku in skus)
        return pushed and await r.count("SELECT count(*) FROM sales") == 30

    await eventually(all_done, seconds=60, what="every push and every sale")
    assert ebay.throttled == 0
    paths = [c.path for c in ebay.requests if "oauth2" not in c.path]
    pushes = [i for i, p in enumerate(paths) if "bulk_update" in p]
    between = [p for p in paths[pushes[0] : pushes[-1]] if "fulfillment" in p]
    assert len(pushes) == 40
    assert len(between) <= 10, f"{len(between)} intake calls among 40 pushes"


async def test_a_stopped_order_poll_makes_the_relay_unready_and_status_says_when_orders_were_read(
    tmp_path: Path, ebay: FakeEbay, shop: FakeShop, start_relay: StartRelay
) -> None:
    """A poller whose loop ended (here: cancelled, as an unexpected error would end it) reads no more orders: sales
    would stop reaching the shop in silence, so /readyz names it. Failing polls are shown in status: when the orders
    were last read whole, why not since, and an orders_unread attention item (the relay stays ready: the
    marketplace is down, not the relay)."""
    r = await start_relay(config_for(tmp_path, ebay, shop), run_workers=True)
    sweeper = r.relay.sweepers[("main", "ebay")]
    await eventually(lambda: sweeper.last_read_at is not None, what="the first poll")
    ebay.page_failures[0] = 500
    sweeper.wake.set()
    await eventually(lambda: sweeper.last_error is not None, what="a failed poll to be remembered")
    assert "500" in str(sweeper.last_error)
    status, answer = await r.client.post("status", {"type": "status.query", "site": "main"})
    (row,) = [c for c in answer["channels"] if c["name"] == "ebay"]
    assert status == 200 and row["orders_read_at"] == pytest.approx(sweeper.last_read_at, abs=1)
    assert "500" in row["orders_error"]
    (item,) = [a for a in answer["attention"] if a["code"] == "orders_unread"]
    assert item["channel"] == "ebay" and item["level"] == "error" and "not reaching the shop" in item["message"]
    assert "ORDERS ebay: not read since" in format_status(answer, time.time())
    async with r.session.get(r.base_url + "/readyz") as answer:
        assert answer.status == 200, await answer.text()
    (task,) = [t for t in r.relay._tasks if t.get_name() == f"worker {sweeper.name}"]
    task.cancel()
    await eventually(task.done, what="the poll loop to end")
    async with r.session.get(r.base_url + "/readyz") as answer:
        body = await answer.json()
    assert answer.status == 503 and body["problems"] == {sweeper.name: "its loop has stopped (see the log)"}
