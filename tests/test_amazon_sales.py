"""Amazon's own sales reach the shop exactly once (issue 15): the relay polls the fake seller account's Orders v0
(getOrders since a persisted cursor, getOrderItems per order) and applies each seller-fulfilled line to the fake
shop through the plugin's adjust route, over HTTP.

Polls are driven by state (``SalesSweeper.poll_once``). The model check needs Amazon's ordersV0.json, which CI's
copies of the specs lack (``scripts/fetch-specs --extra``): without it that test skips and says so.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fakes.amazon import FakeAmazon
from fakes.shop import FakeShop
from relay.config import FULFILMENT_DEFAULTS, Config, RateLimit, ReconcileConfig
from relay.errors import TransientDeliveryError

from .conftest import SITE_SECRET, StartRelay
from .marketplaces import channel, marketplace_config, poll_orders, sales_cursor, store_credentials
from .spec_files import load, swagger_validator

QUIET = ReconcileConfig(incremental_minutes=0, full_hour=None, readback_hours=0)
ORDERS = "/orders/v0/orders"
MODEL = "amazon-sp-api/ordersV0.json"


@pytest.fixture
async def amazon() -> AsyncIterator[FakeAmazon]:
    fake = FakeAmazon()
    await fake.start()
    fake.add_listings({"AM-1": 10})
    yield fake
    await fake.stop()


@pytest.fixture
async def shop() -> AsyncIterator[FakeShop]:
    fake = await FakeShop("main", SITE_SECRET).start()
    fake.add(1, "TS-AM-1", 10)
    yield fake
    await fake.stop()


def config_for(tmp_path: Path, amazon: FakeAmazon, shop: FakeShop, **overrides: Any) -> Config:
    account = {
        "seller_id": amazon.seller_id,
        "marketplace_id": amazon.marketplace_id,
        "lwa_url": f"{amazon.url}/auth/o2/token",
    }
    # the defaults a YAML config gets for an amazon channel ("MFN"; a ChannelConfig built here has Shopify's)
    options: dict[str, Any] = {"sales_poll_seconds": 60.0, "fulfillment_services": FULFILMENT_DEFAULTS["amazon"]}
    options |= overrides
    amazon_channel = channel("amazon", amazon.url, account, **options)
    amazon_channel = replace(amazon_channel, rules=replace(amazon_channel.rules, sku_map={"TS-AM-1": "AM-1"}))
    cfg = marketplace_config(tmp_path / "state", amazon_channel)
    cfg = replace(cfg, sites=(replace(cfg.sites[0], shop_url=shop.url, reconcile=QUIET),))
    creds = {
        "client_id": amazon.client_id,
        "client_secret": amazon.client_secret,
        "refresh_token": amazon.refresh_token,
    }
    store_credentials(cfg, "main/amazon", creds)
    return cfg


poll = functools.partial(poll_orders, channel="amazon")


cursor = functools.partial(sales_cursor, channel="amazon")


def line_of(amazon: FakeAmazon, order: str, index: int = 0) -> str:
    return str(amazon.order_items[order][index]["OrderItemId"])


async def test_a_sale_on_amazon_lowers_the_shop_once(
    tmp_path: Path, amazon: FakeAmazon, shop: FakeShop, start_relay: StartRelay
) -> None:
    """A Pending MFN order's line lowers the shop's stock once (the seller SKU mapped back to the shop's); its status
    moving on, polling again and polling after a restart on the same database count it no more; the cursor
    persists."""
    cfg = config_for(tmp_path, amazon, shop)
    r = await start_relay(cfg)
    order = amazon.sell("AM-1", 2)
    assert amazon.listings["AM-1"] == 8, "Amazon takes a Pending order's units from the listing itself"
    assert await poll(r) == 1
    assert await r.relay.shop_workers["main"].drain() == 1
    assert shop.products[1].quantity == 8
    key = f"amazon:{order}:{line_of(amazon, order)}"
    assert shop.adjust_calls[0]["items"] == [{"key": key, "sku": "TS-AM-1", "delta": -2, "reason": "sale"}]
    rows = await r.relay.store.read("SELECT detail FROM audit WHERE event_id = ? AND action = 'sale_received'", (key,))
    assert '"source": "sweep"' in rows[0][0]
    first = await cursor(r)
    assert first is not None
    amazon.set_status(order, "Unshipped")
    assert await poll(r) == 0
    amazon.set_status(order, "Shipped")
    assert await poll(r) == 0
    assert await cursor(r) >= first
    assert len(amazon.calls("/orderItems")) == 1, "an order's lines are read once while it is not cancelled"

    await r.server.close()
    await r.relay.stop()
    r = await start_relay(cfg)
    assert await cursor(r) >= first, "the cursor survived the restart"
    assert await poll(r) == 0
    assert await r.relay.shop_workers["main"].drain() == 0
    assert len(shop.adjust_calls) == 1 and shop.products[1].quantity == 8
    assert await r.count("SELECT count(*) FROM sales") == 1


async def test_a_cancelled_order_restocks_once(
    tmp_path: Path, amazon: FakeAmazon, shop: FakeShop, start_relay: StartRelay
) -> None:
    """A Canceled order gives its lines back to the shop once, under keys of their own, also when Amazon shows the
    cancelled lines with QuantityOrdered 0 (the quantity read before the cancellation is given back)."""
    r = await start_relay(config_for(tmp_path, amazon, shop))
    order = amazon.sell("AM-1", 3)
    other = amazon.sell("AM-1", 1)
    assert await poll(r) == 2
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 6
    amazon.cancel(order)
    amazon.cancel_zeroes_quantity = True
    amazon.cancel(other)
    assert amazon.listings["AM-1"] == 10
    assert await poll(r) == 2
    assert await poll(r) == 0
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 10
    keys = {f"amazon:{o}:{line_of(amazon, o)}{end}" for o in (order, other) for end in ("", ":cancel")}
    assert set(shop.adjusted) == keys


async def test_no_restock_without_restock_on_cancel(
    tmp_path: Path, amazon: FakeAmazon, shop: FakeShop, start_relay: StartRelay
) -> None:
    """With restock_on_cancel off, a cancelled order's units stay out of the shop (the seller restocks by hand)."""
    r = await start_relay(config_for(tmp_path, amazon, shop, restock_on_cancel=False))
    order = amazon.sell("AM-1", 3)
    amazon.cancel(order)
    assert await poll(r) == 1
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 7


async def test_orders_amazon_ships_are_skipped(
    tmp_path: Path, amazon: FakeAmazon, shop: FakeShop, start_relay: StartRelay, caplog: pytest.LogCaptureFixture
) -> None:
    """An AFN (FBA) order ships from Amazon's own stock: it is not a sale of the shop's, its items are not even read,
    and the sweeper says so once; an MFN order in the same poll is imported. A seller who lists AFN in
    fulfillment_services imports both."""
    r = await start_relay(config_for(tmp_path, amazon, shop))
    fba = amazon.sell("AM-1", 4, fulfillment="AFN")
    mine = amazon.sell("AM-1", 1)
    with caplog.at_level(logging.WARNING, logger="stock_relay.sweep"):
        assert await poll(r) == 1
        assert await poll(r) == 0
    said = [m.getMessage() for m in caplog.records if fba in m.getMessage()]
    assert len(said) == 1 and "'AFN'" in said[0] and "its own stock" in said[0]
    assert [c.path for c in amazon.calls("/orderItems")] == [f"{ORDERS}/{mine}/orderItems"]
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 9
    await r.server.close()
    await r.relay.stop()

    r = await start_relay(config_for(tmp_path, amazon, shop, fulfillment_services=("MFN", "AFN")))
    assert await poll(r) == 1
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 5


async def test_every_page_of_orders_and_items_is_read(
    tmp_path: Path, amazon: FakeAmazon, shop: FakeShop, start_relay: StartRelay
) -> None:
    """Orders beyond the first page (here pages of 3) are read by NextToken, each page with the same filters, until
    an answer has none; an order's lines beyond their first page too."""
    amazon.page_limit = 3
    amazon.items_page_limit = 2
    r = await start_relay(config_for(tmp_path, amazon, shop))
    for _ in range(6):
        amazon.sell("AM-1", 1)
    big = amazon.sell("AM-1", 1, lines=3)
    assert await poll(r) == 9
    calls = amazon.calls(ORDERS, method="GET")
    pages = [c.query for c in calls if c.path == ORDERS]
    assert len(pages) == 3
    assert "NextToken" not in pages[0] and all("NextToken" in p for p in pages[1:])
    filters = {(p["MarketplaceIds"], p["LastUpdatedAfter"], p["MaxResultsPerPage"]) for p in pages}
    assert filters == {(amazon.marketplace_id, pages[0]["LastUpdatedAfter"], "100")}
    assert len([c for c in calls if c.path == f"{ORDERS}/{big}/orderItems"]) == 2
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 1


async def test_a_refused_poll_moves_no_cursor_and_loses_nothing(
    tmp_path: Path, shop: FakeShop, start_relay: StartRelay
) -> None:
    """Amazon answering 503 or 429 to getOrders (on the second page too), or 500 to getOrderItems, records nothing
    and leaves the cursor; the next poll reads the same window and catches up. (The account's limits are 100 times
    the published ones, so the pause after the 429, one call's worth, is short.)"""
    amazon = FakeAmazon(speed=100)
    await amazon.start()
    amazon.add_listings({"AM-1": 10})
    amazon.page_limit = 1
    r = await start_relay(config_for(tmp_path, amazon, shop))
    assert await poll(r) == 0
    before = await cursor(r)
    amazon.sell("AM-1", 1)
    amazon.sell("AM-1", 1)
    amazon.page_failures[0] = 503
    with pytest.raises(TransientDeliveryError):
        await poll(r)
    amazon.page_failures[1] = 429  # the first page read, the second throttled
    with pytest.raises(TransientDeliveryError, match="429"):
        await poll(r)
    amazon.fail_next(1, 500, path="/orderItems")
    with pytest.raises(TransientDeliveryError):
        await poll(r)
    assert await cursor(r) == before
    assert await r.count("SELECT count(*) FROM sales") == 0
    assert await poll(r) == 2
    assert await cursor(r) > before
    await amazon.stop()


async def test_intake_keeps_to_amazons_orders_limits_and_off_the_push_budget(
    tmp_path: Path, shop: FakeShop, start_relay: StartRelay
) -> None:
    """More orders than getOrders' and getOrderItems' bursts (20 pages, 30 calls) are read without one 429: each
    operation is paced on a budget of its own at Amazon's limit (here 100 times the published one, which the fake's
    x-amzn-RateLimit-Limit tells the connector). Not one call is taken from the push budget: with it spent and
    refilling once a day, the poll still completes, and leaves it as it was."""
    amazon = FakeAmazon(speed=100)
    await amazon.start()
    try:
        amazon.add_listings({"AM-1": 100})
        amazon.page_limit = 2
        for _ in range(45):
            amazon.sell("AM-1", 1)
        r = await start_relay(config_for(tmp_path, amazon, shop, rate=RateLimit(1 / 86_400, 1)))
        connector = r.relay.workers[("main", "amazon")].connector
        connector.budget.bucket._tokens = 0.0
        assert await poll(r) == 45
        assert amazon.throttled == 0
        assert len([c for c in amazon.calls(ORDERS) if c.path == ORDERS]) == 23
        assert len(amazon.calls("/orderItems")) == 45
        assert connector.budget.bucket._tokens < 1.0 and connector.budget.throttles == 0
    finally:
        await amazon.stop()


async def test_requests_and_answers_follow_amazons_orders_model(
    tmp_path: Path, amazon: FakeAmazon, shop: FakeShop, start_relay: StartRelay
) -> None:
    """What the connector sends is what ordersV0.json defines for getOrders and getOrderItems (names, required ones,
    MaxResultsPerPage's range, ISO 8601 times), and the fake's answers validate against GetOrdersResponse and
    GetOrderItemsResponse, so the connector is tested against answers shaped as Amazon's."""
    spec = load(MODEL, in_ci=False)
    amazon.page_limit = 1
    amazon.items_page_limit = 1
    r = await start_relay(config_for(tmp_path, amazon, shop))
    amazon.sell("AM-1", 1, lines=2)
    cancelled = amazon.sell("AM-1", 1)
    amazon.cancel(cancelled)
    amazon.sell("AM-1", 1, fulfillment="AFN")
    assert await poll(r) == 4  # two lines; the cancelled order's sale and cancellation

    operations = {
        ORDERS: (spec["paths"][ORDERS]["get"], "GetOrdersResponse"),
        "items": (spec["paths"][ORDERS + "/{orderId}/orderItems"]["get"], "GetOrderItemsResponse"),
    }
    validators = {
        name: swagger_validator(MODEL, definition, in_ci=False) for name, (_, definition) in operations.items()
    }
    calls = amazon.calls(ORDERS, method="GET")
    assert {c.path == ORDERS for c in calls} == {True, False}
    for call in calls:
        name = ORDERS if call.path == ORDERS else "items"
        operation = operations[name][0]
        params = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
        assert set(call.query) <= set(params), f"{call.path}: {set(call.query) - set(params)} not in the model"
        assert {n for n, p in params.items() if p.get("required")} <= set(call.query)
        if name == ORDERS:
            assert 1 <= int(call.query["MaxResultsPerPage"]) <= 100
            assert call.query["MarketplaceIds"] == amazon.marketplace_id
            assert dt.datetime.fromisoformat(call.query["LastUpdatedAfter"].replace("Z", "+00:00")).tzinfo is not None
        else:
            assert call.path.endswith("/orderItems") and call.path.split("/")[4] in amazon.orders

    async with aiohttp.ClientSession() as session:
        headers = {"x-amz-access-token": amazon.tokens.issue()[0]}
        for name, path, args in (
            (ORDERS, ORDERS, {"MarketplaceIds": amazon.marketplace_id, "LastUpdatedAfter": "2020-01-01T00:00:00Z"}),
            ("items", f"{ORDERS}/{cancelled}/orderItems", {}),
            (ORDERS, ORDERS, {"LastUpdatedAfter": "2020-01-01T00:00:00Z"}),  # a 400's errors
            ("items", f"{ORDERS}/902-0000000-0000000/orderItems", {}),  # a 404's errors
        ):
            async with session.get(f"{amazon.url}{path}", params=args, headers=headers) as answer:
                doc = await answer.json()
            errors = sorted(validators[name].iter_errors(doc), key=str)
            assert not errors, f"{path} ({answer.status}): {errors[0].message}"
