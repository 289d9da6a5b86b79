"""Walmart's own sales reach the shop exactly once (issue 15): the relay polls the fake Walmart's "Get all orders"
(``GET /v3/orders``) since a persisted cursor and applies each order line, and each cancelled unit, to the fake shop
through the plugin's adjust route, over HTTP.

Polls are driven by state (``SalesSweeper.poll_once``) except where the running relay's loops are the point.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest

from fakes.common import Bucket
from fakes.shop import FakeShop
from fakes.walmart import FakeWalmart
from relay.config import Config, RateLimit, ReconcileConfig
from relay.errors import PermanentDeliveryError, TransientDeliveryError

from .conftest import SITE_SECRET, StartRelay, eventually
from .marketplaces import channel, marketplace_config, poll_orders, sales_cursor, send, store_credentials
from .spec_files import spec_path

QUIET = ReconcileConfig(incremental_minutes=0, full_hour=None, readback_hours=0)
ORDERS = "/v3/orders"
SPEC = "walmart/orders_us_mp.json"  # scripts/fetch-specs --extra


@pytest.fixture
async def walmart() -> AsyncIterator[FakeWalmart]:
    fake = FakeWalmart()
    await fake.start()
    fake.add_items({"WM-1": 10})
    yield fake
    await fake.stop()


@pytest.fixture
async def shop() -> AsyncIterator[FakeShop]:
    fake = await FakeShop("main", SITE_SECRET).start()
    fake.add(1, "TS-WM-1", 10)
    yield fake
    await fake.stop()


def config_for(tmp_path: Path, walmart: FakeWalmart, shop: FakeShop, **overrides: Any) -> Config:
    # A ChannelConfig built in code keeps the field's own default; the YAML reader gives walmart [SellerFulfilled].
    options: dict[str, Any] = {"sales_poll_seconds": 60.0, "fulfillment_services": ("SellerFulfilled",)} | overrides
    wm_channel = channel("walmart", walmart.url, {}, **options)
    wm_channel = replace(wm_channel, rules=replace(wm_channel.rules, sku_map={"TS-WM-1": "WM-1"}))
    cfg = marketplace_config(tmp_path / "state", wm_channel)
    cfg = replace(cfg, sites=(replace(cfg.sites[0], shop_url=shop.url, reconcile=QUIET),))
    store_credentials(cfg, "main/walmart", {"client_id": walmart.client_id, "client_secret": walmart.client_secret})
    return cfg


poll = functools.partial(poll_orders, channel="walmart")


cursor = functools.partial(sales_cursor, channel="walmart")


async def keys(r: Any) -> dict[str, int]:
    return {key: delta for key, delta in await r.relay.store.read("SELECT key, delta FROM sales", ())}


async def test_a_sale_on_walmart_lowers_the_shop_once(
    tmp_path: Path, walmart: FakeWalmart, shop: FakeShop, start_relay: StartRelay
) -> None:
    """A Walmart order line lowers the shop's stock once (the channel SKU mapped back to the shop's); polling again,
    and polling after a restart on the same database, finds it again and counts it no more; the cursor persists.
    The search is Walmart's: the window by last modification, created within 30 days of it, seller-fulfilled,
    200 a page, with the headers every Walmart call carries."""
    cfg = config_for(tmp_path, walmart, shop)
    r = await start_relay(cfg)
    po = walmart.sell("WM-1", 2)
    assert walmart.inventory["WM-1"] == 8, "Walmart lowers its own count"
    assert await poll(r) == 1
    assert await r.relay.shop_workers["main"].drain() == 1
    assert shop.products[1].quantity == 8
    key = f"walmart:{po}:1"
    assert shop.adjust_calls[0]["items"] == [{"key": key, "sku": "TS-WM-1", "delta": -2, "reason": "sale"}]
    rows = await r.relay.store.read("SELECT detail FROM audit WHERE event_id = ? AND action = 'sale_received'", (key,))
    assert '"source": "sweep"' in rows[0][0]
    (search,) = walmart.calls(ORDERS)
    assert set(search.query) == {"lastModifiedStartDate", "createdStartDate", "shipNodeType", "limit"}
    assert search.query["shipNodeType"] == "SellerFulfilled" and search.query["limit"] == "200"
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
    assert stamp.match(search.query["lastModifiedStartDate"]) and stamp.match(search.query["createdStartDate"])
    assert search.query["createdStartDate"] < search.query["lastModifiedStartDate"]
    assert walmart.tokens.valid(search.headers["wm_sec.access_token"])
    assert search.headers["wm_svc.name"] == "Walmart Marketplace" and search.headers["wm_qos.correlation_id"]
    assert search.headers["accept"] == "application/json"
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


async def test_each_cancelled_unit_restocks_once(
    tmp_path: Path, walmart: FakeWalmart, shop: FakeShop, start_relay: StartRelay
) -> None:
    """A line of 3 cancelled one unit at a time, then the rest: each cancelled unit gives one back to the shop under
    a key of its own (``<line>-<n>:cancel``), so a growing Cancelled quantity adds only the new units, however
    often it is read."""
    r = await start_relay(config_for(tmp_path, walmart, shop))
    po = walmart.sell("WM-1", 3)
    assert await poll(r) == 1
    walmart.cancel(po, "1", 1)
    assert await poll(r) == 1
    assert await poll(r) == 0
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 8
    walmart.cancel(po, "1", 1)
    assert await poll(r) == 1, "only the second unit is new"
    walmart.cancel(po, "1")
    assert await poll(r) == 1
    assert await poll(r) == 0
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 10 and walmart.inventory["WM-1"] == 10
    expected = {f"walmart:{po}:1": -3} | {f"walmart:{po}:1-{n}:cancel": 1 for n in (1, 2, 3)}
    assert await keys(r) == expected
    assert set(shop.adjusted) == set(expected)


async def test_cancellations_are_not_restocked_without_restock_on_cancel(
    tmp_path: Path, walmart: FakeWalmart, shop: FakeShop, start_relay: StartRelay
) -> None:
    r = await start_relay(config_for(tmp_path, walmart, shop, restock_on_cancel=False))
    po = walmart.sell("WM-1", 2)
    walmart.cancel(po)
    assert await poll(r) == 1
    assert await keys(r) == {f"walmart:{po}:1": -2}


async def test_an_old_orders_cancellation_is_read(
    tmp_path: Path, walmart: FakeWalmart, shop: FakeShop, start_relay: StartRelay
) -> None:
    """Without createdStartDate Walmart searches only orders created in the last 7 days: the cancellation of a
    10-day-old order, modified now, is found because the search names its own creation window."""
    r = await start_relay(config_for(tmp_path, walmart, shop))
    po = walmart.sell("WM-1", 1, age=10 * 86400)
    walmart.cancel(po)
    assert await poll(r) == 2
    assert set(await keys(r)) == {f"walmart:{po}:1", f"walmart:{po}:1-1:cancel"}


async def test_only_seller_fulfilled_lines_are_sales(
    tmp_path: Path, walmart: FakeWalmart, shop: FakeShop, start_relay: StartRelay, caplog: pytest.LogCaptureFixture
) -> None:
    """WFS ships Walmart's stock: with the default fulfillment_services only seller-fulfilled orders are searched,
    and a WFS order listed anyway is skipped (logged once), never applied to the shop. Naming 3PLFulfilled too
    searches those as a second type."""
    r = await start_relay(config_for(tmp_path, walmart, shop))
    wfs = walmart.sell("WM-1", 4, ship_node_type="WFSFulfilled")
    own = walmart.sell("WM-1", 1)
    assert walmart.inventory["WM-1"] == 9, "a WFS sale leaves the seller's node alone"
    assert await poll(r) == 1
    assert {c.query["shipNodeType"] for c in walmart.calls(ORDERS)} == {"SellerFulfilled"}
    walmart.ignores_ship_node_type = True
    with caplog.at_level(logging.WARNING, logger="stock_relay.sweep"):
        assert await poll(r) == 0
        assert await poll(r) == 0
    skipped = [m for m in caplog.messages if f"order {wfs} line 1 is not imported" in m]
    assert len(skipped) == 1 and "WFSFulfilled" in skipped[0]
    assert set(await keys(r)) == {f"walmart:{own}:1"}

    walmart.ignores_ship_node_type = False
    await r.server.close()
    await r.relay.stop()
    r = await start_relay(config_for(tmp_path, walmart, shop, fulfillment_services=("SellerFulfilled", "3PLFulfilled")))
    third = walmart.sell("WM-1", 2, ship_node_type="3PLFulfilled")
    before = len(walmart.calls(ORDERS))
    assert await poll(r) == 1
    assert [c.query["shipNodeType"] for c in walmart.calls(ORDERS)[before:]] == ["SellerFulfilled", "3PLFulfilled"]
    assert set(await keys(r)) == {f"walmart:{own}:1", f"walmart:{third}:1"}


async def test_every_page_of_orders_is_read(
    tmp_path: Path, walmart: FakeWalmart, shop: FakeShop, start_relay: StartRelay
) -> None:
    """Orders beyond the first page (here pages of 3) are read by asking for ``/v3/orders{nextCursor}`` as Walmart
    gave it, until an answer has no nextCursor."""
    walmart.page_limit = 3
    r = await start_relay(config_for(tmp_path, walmart, shop))
    for _ in range(7):
        walmart.sell("WM-1", 1)
    assert await poll(r) == 7
    searches = walmart.calls(ORDERS)
    assert [c.query.get("poIndex") for c in searches] == [None, "3", "6"]
    assert all(c.query.get("hasMoreElements") == "true" for c in searches[1:])
    assert searches[1].query["lastModifiedStartDate"] == searches[0].query["lastModifiedStartDate"]
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 3


async def test_a_refused_poll_moves_no_cursor_and_loses_nothing(
    tmp_path: Path, walmart: FakeWalmart, shop: FakeShop, start_relay: StartRelay
) -> None:
    """No orders at all is Walmart's 404 CONTENT_NOT_FOUND, a poll that found nothing. Walmart answering 503 or
    429 (on the second page too) or 400 records nothing and leaves the cursor; the next poll reads the same
    window and catches up. The errors name no secret."""
    walmart.page_limit = 1
    r = await start_relay(config_for(tmp_path, walmart, shop))
    assert await poll(r) == 0
    before = await cursor(r)
    walmart.sell("WM-1", 1)
    walmart.sell("WM-1", 1)
    walmart.page_failures[0] = 503
    with pytest.raises(TransientDeliveryError):
        await poll(r)
    walmart.page_failures[1] = 429  # the first page read, the second throttled
    with pytest.raises(TransientDeliveryError):
        await poll(r)
    walmart.fail_next(
        1, 400, body={"errors": {"error": [{"code": "INVALID_REQUEST_PARAM.GMP_ORDER_API"}]}}, path=ORDERS
    )
    with pytest.raises(PermanentDeliveryError) as refused:
        await poll(r)
    assert "INVALID_REQUEST_PARAM" in str(refused.value)
    for secret in (walmart.client_secret, *walmart.tokens._access):
        assert secret not in str(refused.value) and secret not in refused.value.excerpt
    assert await cursor(r) == before
    assert await r.count("SELECT count(*) FROM sales") == 0
    assert await poll(r) == 2
    assert await cursor(r) > before


async def test_intake_does_not_starve_pushes(
    tmp_path: Path, walmart: FakeWalmart, shop: FakeShop, start_relay: StartRelay
) -> None:
    """With the channel's call budget tight (10 calls/s, burst 4; Walmart's a little above it) and 30 pages of orders
    to read, 40 one-SKU updates go out unthrottled and nearly without intake calls between them: intake takes only
    spare calls (queueing with the pushes would have taken about every second call)."""
    walmart.single = Bucket(12, 6)  # a little above the relay's budget: arrivals bunch up on loopback
    walmart.page_limit = 1
    skus = [f"P{i:02d}" for i in range(40)]
    walmart.add_items(dict.fromkeys(skus, 0))
    for _ in range(30):
        walmart.sell("WM-1", 1)
    cfg = config_for(tmp_path, walmart, shop, rate=RateLimit(10, 4), batch_size=1, sales_poll_seconds=5.0)
    r = await start_relay(cfg, run_workers=True)
    await send(r, [(sku, 5) for sku in skus])

    async def all_done() -> bool:
        pushed = all(walmart.inventory[sku] == 5 for sku in skus)
        return pushed and await r.count("SELECT count(*) FROM sales") == 30

    await eventually(all_done, seconds=60, what="every push and every sale")
    assert walmart.throttled == 0
    paths = [c.path for c in walmart.requests if c.path != "/v3/token"]
    pushes = [i for i, p in enumerate(paths) if p == "/v3/inventory"]
    between = [p for p in paths[pushes[0] : pushes[-1]] if p == ORDERS]
    assert len(pushes) == 40
    assert len(between) <= 10, f"{len(between)} intake calls among 40 pushes"


async def test_orders_searches_and_answers_match_walmarts_openapi(
    tmp_path: Path, walmart: FakeWalmart, shop: FakeShop, start_relay: StartRelay
) -> None:
    """The search the connector sends uses the Orders API's own query parameters, in the forms its descriptions
    give; each page the fake answers (sent again, as the connector asked for it) is the spec's 200 answer."""
    path = spec_path(SPEC, in_ci=False)
    spec = json.loads(path.read_text())
    operation = spec["paths"][ORDERS]["get"]
    described = {p["name"]: p.get("description", "") for p in operation["parameters"] if p["in"] == "query"}
    validator = jsonschema.Draft4Validator(operation["responses"]["200"]["content"]["application/json"]["schema"])

    walmart.page_limit = 1
    r = await start_relay(config_for(tmp_path, walmart, shop))
    po = walmart.sell("WM-1", 3, lines=2)
    walmart.sell("WM-1", 1)
    walmart.cancel(po, "2", 1)
    assert await poll(r) == 4
    first, *pages = walmart.calls(ORDERS)
    assert pages, "a second page was read by its cursor"
    assert set(first.query) <= set(described), set(first.query) - set(described)
    assert "yyyy-MM-dd'T'HH:mm:ssZ" in described["lastModifiedStartDate"]
    assert int(first.query["limit"]) <= 200 and "Cannot be larger than 200" in described["limit"]
    assert first.query["shipNodeType"] in re.findall(r"\w+Fulfilled", described["shipNodeType"])
    async with aiohttp.ClientSession() as session:
        for call in (first, *pages):
            headers = {k: v for k, v in call.headers.items() if k.startswith("wm_") or k == "accept"}
            async with session.get(f"{walmart.url}{call.raw_path}", headers=headers) as answer:
                assert answer.status == 200
                validator.validate(await answer.json())
