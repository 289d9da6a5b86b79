"""Shopify's orders sweep catches the sales its webhooks missed, under the webhooks' own keys (issue 15).

A real relay polls the fake Shopify's GraphQL ``orders`` query (fakes/shopify.py) since a persisted cursor and its
shop worker applies each line to the stand-in shop (fakes/shop.py) over HTTP. A webhook Shopify gave up on is a
fake with no ``webhook_url``. Polls are driven by state (``SalesSweeper.poll_once``), never by sleeps. The queries
the connector sends, and the fake's answers to them, are checked against Shopify's Admin SDL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import graphql
import pytest
from graphql.execution.values import get_variable_values

from fakes.shop import FakeShop
from fakes.shopify import FakeShopify
from relay.config import Config, ReconcileConfig, StockRules
from relay.connectors import shopify_orders
from relay.connectors.shopify_orders import LINES_COST, REFUND_LINES_COST, REFUNDS_COST, orders_cost
from relay.errors import TransientDeliveryError
from relay.intake.sweep import _Stopped

from .conftest import SITE_SECRET, RunningRelay, StartRelay, make_config
from .marketplaces import VAULT_KEY, channel, store_credentials
from .spec_files import spec_path

QUIET = ReconcileConfig(incremental_minutes=0, full_hour=None, readback_hours=0)
SHOP_SKU, CHANNEL_SKU = "TS-RED-M", "SH-RED-M"  # the channel's sku_map renames the shop's SKU on Shopify


@pytest.fixture
async def shop() -> AsyncIterator[FakeShop]:
    fake = await FakeShop("main", SITE_SECRET).start()
    fake.add(1, SHOP_SKU, 50)
    yield fake
    await fake.stop()


@pytest.fixture
async def shopify() -> AsyncIterator[FakeShopify]:
    # A fast restore: this fake charges each query's requested cost and, unlike Shopify, never refunds the part the
    # answer did not use, so polls in a row would otherwise wait seconds for spare points (state-driven, but slow).
    fake = FakeShopify(restore_rate=10_000.0, bucket=2_000.0)
    await fake.start()
    fake.add_variant(CHANNEL_SKU, quantity=50)
    yield fake
    await fake.stop()


def config_for(tmp_path: Path, shop: FakeShop, shopify: FakeShopify, **keys: Any) -> Config:
    shopify_channel = channel(
        "shopify",
        shopify.url,
        {"shop": "fake-store", "location_id": "1"},
        rules=StockRules(sku_map={SHOP_SKU: CHANNEL_SKU}),
        **{"webhook_secrets": (shopify.client_secret,), **keys},
    )
    cfg = make_config(tmp_path / "state", (shopify_channel,), vault_keys=(VAULT_KEY,))
    cfg = replace(cfg, sites=(replace(cfg.sites[0], shop_url=shop.url, reconcile=QUIET),))
    store_credentials(cfg, "main/shopify", {"client_id": shopify.client_id, "client_secret": shopify.client_secret})
    return cfg


async def start(start_relay: StartRelay, cfg: Config, shopify: FakeShopify, webhooks: bool) -> RunningRelay:
    """A relay; with ``webhooks`` Shopify delivers to it, without them every event is lost."""
    r: RunningRelay = await start_relay(cfg)
    shopify.webhook_url = f"{r.base_url}/v1/sites/main/channels/shopify/shopify" if webhooks else ""
    return r


async def poll(r: RunningRelay) -> int:
    return int(await r.relay.sweepers[("main", "shopify")].poll_once())


async def cursor(r: RunningRelay) -> str | None:
    rows = await r.relay.store.read("SELECT cursor FROM sales_cursors WHERE channel = 'shopify'", ())
    return rows[0][0] if rows else None


async def keys(r: RunningRelay) -> dict[str, str]:
    """Each recorded sale's key and who found it (webhook or sweep)."""
    return {row[0]: row[1] for row in await r.relay.store.read("SELECT key, source FROM sales", ())}


async def swept(r: RunningRelay) -> tuple[set[str], list[Any]]:
    """The keys one sweep of the last hour finds, and the lines it skips, straight from the connector."""

    async def free(cost: float = 1.0) -> None:
        return None

    connector = r.relay.sweepers[("main", "shopify")].connector
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    sales, skipped = await connector.sales_since(since, free)
    return {s.key for s in sales}, skipped


def queries(shopify: FakeShopify) -> list[str]:
    """The operation names of the GraphQL queries the fake answered, in order."""
    return [c.json["query"].split("(")[0].removeprefix("query ") for c in shopify.calls("graphql.json")]


async def test_a_sale_the_webhooks_missed_is_swept_and_applied_once(
    tmp_path: Path, shop: FakeShop, shopify: FakeShopify, start_relay: StartRelay
) -> None:
    """An order whose webhook was lost is found by the sweep, under the key the webhook would have given, and
    lowers the shop once (the channel SKU mapped back); polling again and after a restart finds it and counts it
    no more; the cursor persists."""
    cfg = config_for(tmp_path, shop, shopify)
    r = await start(start_relay, cfg, shopify, webhooks=False)
    order = await shopify.sell(CHANNEL_SKU, 2)
    assert shopify.deliveries == [], "the webhook was lost"
    assert await poll(r) == 1
    assert await r.relay.shop_workers["main"].drain() == 1
    key = f"shopify:{order['id']}:{order['line_items'][0]['id']}"
    assert shop.adjust_calls[0]["items"] == [{"key": key, "sku": SHOP_SKU, "delta": -2, "reason": "sale"}]
    assert shop.products[1].quantity == 48
    assert await keys(r) == {key: "sweep"}
    sent = shopify.calls("graphql.json")[-1].json
    assert sent["variables"]["query"].startswith("updated_at:>='") and "sortKey: UPDATED_AT" in sent["query"]
    first = await cursor(r)
    assert first is not None
    assert await poll(r) == 0

    await r.server.close()
    await r.relay.stop()
    r = await start(start_relay, cfg, shopify, webhooks=False)
    assert await cursor(r) >= first, "the cursor survived the restart"
    assert await poll(r) == 0
    assert await r.relay.shop_workers["main"].drain() == 0
    assert len(shop.adjust_calls) == 1 and shop.products[1].quantity == 48
    assert await r.count("SELECT count(*) FROM sales") == 1


async def test_webhooks_and_sweep_give_the_same_keys_so_each_change_counts_once(
    tmp_path: Path, shop: FakeShop, shopify: FakeShopify, start_relay: StartRelay
) -> None:
    """A sale, its cancellation and a restocked refund arrive by webhook; the sweep then finds exactly the keys the
    webhooks recorded (a refund without restock is skipped by both) and records nothing new: each change is
    applied to the shop once."""
    r = await start(start_relay, config_for(tmp_path, shop, shopify, restock_on_refund=True), shopify, webhooks=True)
    cancelled = await shopify.sell(CHANNEL_SKU, 2)
    await shopify.cancel(cancelled["id"])
    refunded = await shopify.sell(CHANNEL_SKU, 3)
    returned = await shopify.refund(refunded["id"], 1, "return")
    await shopify.refund(refunded["id"], 1, "no_restock")
    assert [d[3] for d in shopify.deliveries] == [200] * 5
    by_webhook = await keys(r)
    line, other = cancelled["line_items"][0]["id"], refunded["line_items"][0]["id"]
    assert set(by_webhook) == {
        f"shopify:{cancelled['id']}:{line}",
        f"shopify:{cancelled['id']}:{line}:cancel",
        f"shopify:{refunded['id']}:{other}",
        f"shopify:{refunded['id']}:{other}:refund:{returned['id']}",
    }
    found, skipped = await swept(r)
    assert found == set(by_webhook)
    assert [s.code for s in skipped] == ["not_restocked"]
    assert await poll(r) == 0
    assert await keys(r) == dict.fromkeys(by_webhook, "webhook")
    assert await r.count("SELECT count(*) FROM audit WHERE action = 'sale_duplicate'") == 4
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 50 - 3 + 1


async def test_a_missed_cancellation_and_refund_are_swept_and_a_late_webhook_adds_nothing(
    tmp_path: Path, shop: FakeShop, shopify: FakeShopify, start_relay: StartRelay
) -> None:
    """With every webhook lost the sweep finds the sale, then the cancellation, then a restocked refund of another
    order, each once; the webhooks Shopify delivers late (a resend) are duplicates and change nothing."""
    r = await start(start_relay, config_for(tmp_path, shop, shopify, restock_on_refund=True), shopify, webhooks=False)
    worker = r.relay.shop_workers["main"]
    cancelled = await shopify.sell(CHANNEL_SKU, 2)
    assert await poll(r) == 1
    await shopify.cancel(cancelled["id"])
    assert await poll(r) == 1
    refunded = await shopify.sell(CHANNEL_SKU, 3)
    assert await poll(r) == 1
    returned = await shopify.refund(refunded["id"], 2, "return")
    assert await poll(r) == 1
    assert await poll(r) == 0
    await worker.drain()
    assert shop.products[1].quantity == 50 - 3 + 2
    line = refunded["line_items"][0]["id"]
    assert f"shopify:{refunded['id']}:{line}:refund:{returned['id']}" in shop.adjusted

    shopify.webhook_url = f"{r.base_url}/v1/sites/main/channels/shopify/shopify"
    assert await shopify.deliver("orders/create", cancelled) == [200]
    assert await shopify.deliver("orders/cancelled", cancelled) == [200]
    assert await shopify.deliver("refunds/create", returned) == [200]
    assert await worker.drain() == 0
    assert set((await keys(r)).values()) == {"sweep"} and len(await keys(r)) == 4
    assert shop.products[1].quantity == 49


async def test_lines_another_service_fulfils_are_skipped(
    tmp_path: Path, shop: FakeShop, shopify: FakeShopify, start_relay: StartRelay
) -> None:
    """A line a fulfilment network ships (its handle is not 'manual') is not the shop's stock, as on the webhook
    path: the sweep records nothing for it and says why."""
    r = await start(start_relay, config_for(tmp_path, shop, shopify), shopify, webhooks=False)
    order = await shopify.sell(CHANNEL_SKU, 1, fulfillment_service="amazon")
    assert await poll(r) == 0
    _, skipped = await swept(r)
    assert [(s.order, s.line, s.code) for s in skipped] == [
        (str(order["id"]), str(order["line_items"][0]["id"]), "fulfillment_service")
    ]
    assert await r.count("SELECT count(*) FROM sales") == 0 and not shop.adjust_calls


async def test_every_page_and_every_line_of_a_long_order_is_read(
    tmp_path: Path, shop: FakeShop, shopify: FakeShopify, start_relay: StartRelay
) -> None:
    """Eleven orders take two pages (10 a page, paged by the cursor); an order of 13 lines, more than the page's
    query selects, is completed with a query of its own, as is an order with more refunds than the page lists."""
    r = await start(start_relay, config_for(tmp_path, shop, shopify, restock_on_refund=True), shopify, webhooks=False)
    for _ in range(10):
        await shopify.sell(CHANNEL_SKU, 1)
    long = await shopify.sell(CHANNEL_SKU, 1, lines=13)
    for _ in range(6):
        await shopify.refund(long["id"], 1, "return")
    assert await poll(r) == 10 + 13 + 6
    assert queries(shopify) == [
        "StockRelayOrders",
        "StockRelayOrders",
        "StockRelayOrderLines",
        "StockRelayOrderRefunds",
        *["StockRelayRefundLines"] * 6,
    ]
    pages = [c.json["variables"]["after"] for c in shopify.calls("graphql.json") if "orders(" in c.json["query"]]
    assert pages[0] is None and pages[1]
    assert shopify.throttled == 0
    expected = 2 * orders_cost(True) + LINES_COST + REFUNDS_COST + 6 * REFUND_LINES_COST
    assert shopify.spent == expected, "each query is charged what the connector gated"
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 50 - 23 + 6


async def test_a_failed_page_records_nothing_and_the_next_poll_reads_the_same_window(
    tmp_path: Path, shop: FakeShop, shopify: FakeShopify, start_relay: StartRelay
) -> None:
    """Shopify answering 503, or THROTTLED on the second page, fails the poll: nothing recorded, the cursor
    unmoved; the next poll reads the same window and catches up."""
    r = await start(start_relay, config_for(tmp_path, shop, shopify), shopify, webhooks=False)
    assert await poll(r) == 0
    before = await cursor(r)
    for _ in range(12):
        await shopify.sell(CHANNEL_SKU, 1)
    shopify.page_failures[0] = 503
    with pytest.raises(TransientDeliveryError):
        await poll(r)
    shopify.page_failures[10] = 429  # the first page read, the second throttled
    with pytest.raises(TransientDeliveryError):
        await poll(r)
    assert await cursor(r) == before
    assert await r.count("SELECT count(*) FROM sales") == 0
    assert await poll(r) == 12
    assert await cursor(r) > before


async def test_a_poll_is_cheap_and_its_cost_comes_from_spare_budget(
    tmp_path: Path, shop: FakeShop, shopify: FakeShopify, start_relay: StartRelay
) -> None:
    """A page's requested cost (232 points; 282 with refunds) is under half the Standard bucket, so it can be spare;
    the sweeper takes that cost, not one unit, from the channel's budget before the call: while less than that is
    spare (the relay stopping meanwhile) no query is sent."""
    assert (orders_cost(False), orders_cost(True)) == (232.0, 282.0)
    r = await start(start_relay, config_for(tmp_path, shop, shopify), shopify, webhooks=False)
    sweeper = r.relay.sweepers[("main", "shopify")]
    bucket = sweeper.connector.budget.bucket
    bucket.rate = 1e-9  # nothing refills while the test looks
    bucket._tokens = bucket.burst
    assert await poll(r) == 0
    assert shopify.spent == orders_cost(False)
    assert bucket._tokens <= bucket.burst - orders_cost(False), "the gate took the page's cost"

    bucket.rate = 1e-9  # again: the answer's throttleStatus was adopted
    bucket._tokens = bucket.burst * 0.5 + orders_cost(False) - 1  # one call is spare, a page is not
    sweeper.interval = 3600.0  # and the last call was just now: the gate would wait for spare budget
    sweeper.stopping = asyncio.Event()
    sweeper.stopping.set()  # so that the wait ends at once, with the poll abandoned
    with pytest.raises(_Stopped):
        await poll(r)
    assert shopify.spent == orders_cost(False), "no query while its cost is not spare"
    sweeper.stopping = asyncio.Event()
    bucket._tokens = bucket.burst
    assert await poll(r) == 0
    assert shopify.spent == 2 * orders_cost(False)


@functools.cache
def shopify_schema() -> graphql.GraphQLSchema:
    # assume_valid: Shopify's SDL breaks a newer spec rule that is about the schema, not the documents checked.
    return graphql.build_schema(spec_path("shopify/admin_schema.graphql").read_text(), assume_valid=True)


async def test_the_orders_queries_and_the_fakes_answers_match_the_admin_schema(
    tmp_path: Path, shop: FakeShop, shopify: FakeShopify, start_relay: StartRelay
) -> None:
    """Every query the sweep sends (orders page, an order's further lines, its refunds, a refund's lines) is valid
    against Shopify's Admin SDL with its variables as sent, and the fake's answer is what the SDL's types give
    when executed over it (no missing non-null field, no wrong scalar or enum)."""
    schema = shopify_schema()
    r = await start(start_relay, config_for(tmp_path, shop, shopify, restock_on_refund=True), shopify, webhooks=False)
    long = await shopify.sell(CHANNEL_SKU, 1, lines=12)
    for kind in ("return", "no_restock", "cancel", "return", "return"):
        await shopify.refund(long["id"], 1, kind)
    await shopify.cancel(long["id"])
    await poll(r)
    sent = shopify.calls("graphql.json")
    assert {name for name in queries(shopify)} == {
        "StockRelayOrders",
        "StockRelayOrderLines",
        "StockRelayOrderRefunds",
        "StockRelayRefundLines",
    }
    for call in sent:
        document = graphql.parse(call.json["query"])
        assert graphql.validate(schema, document) == [], call.json["query"]
        operation = next(d for d in document.definitions if isinstance(d, graphql.OperationDefinitionNode))
        coerced = get_variable_values(schema, operation.variable_definitions or [], call.json["variables"])
        assert not isinstance(coerced, list), [str(e) for e in coerced]
        data = await _answer(shopify, call.json)
        result = graphql.execute_sync(schema, document, root_value=data, variable_values=call.json["variables"])
        assert result.errors is None, [str(e) for e in result.errors or []]
        assert result.data == data
    bad = graphql.parse("query { orders(first: 1) { nodes { lineItems(first: 1) { nodes { legacyResourceId } } } } }")
    assert graphql.validate(schema, bad), "the schema must refuse a field LineItem does not have"
    assert shopify_orders.LINE_FIELDS in sent[0].json["query"]


async def _answer(shopify: FakeShopify, body: dict[str, Any]) -> Any:
    """The fake's data for ``body``, asked again (the request log keeps requests, not answers)."""
    token = shopify.tokens.grant("shpat_schema_check")
    async with aiohttp.ClientSession() as session:
        url = f"{shopify.url}/admin/api/2026-04/graphql.json"
        async with session.post(url, json=body, headers={"X-Shopify-Access-Token": token}) as response:
            doc = await response.json()
    assert "errors" not in doc, doc
    return doc["data"]
