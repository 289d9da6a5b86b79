"""Shopify's order webhooks reach the shop exactly once (issue 15, DESIGN.md invariant 10).

A real relay takes the ``orders/create``, ``orders/cancelled`` and ``refunds/create`` webhooks the fake Shopify
(fakes/shopify.py) delivers over HTTP, signed with the app's client secret, and its shop worker sends each sale to
the stand-in shop's ``adjust`` route (fakes/shop.py). Workers are driven by state (``drain``), never by sleeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fakes.shop import FakeShop
from fakes.shopify import FakeShopify
from relay import config
from relay.config import Config, ReconcileConfig, StockRules
from relay.errors import ConfigError

from .conftest import SITE_SECRET, Receiver, RunningRelay, StartRelay, make_config, webhook_channel
from .marketplaces import VAULT_KEY, channel, store_credentials

QUIET = ReconcileConfig(incremental_minutes=0, full_hour=None, readback_hours=0)
SHOP_SKU, CHANNEL_SKU = "TS-RED-M", "SH-RED-M"  # the channel's sku_map renames the shop's SKU on Shopify


@pytest.fixture
async def shop() -> AsyncIterator[FakeShop]:
    fake = await FakeShop("main", SITE_SECRET).start()
    fake.add(1, SHOP_SKU, 5)
    yield fake
    await fake.stop()


@pytest.fixture
async def shopify() -> AsyncIterator[FakeShopify]:
    fake = FakeShopify()
    await fake.start()
    fake.add_variant(CHANNEL_SKU, quantity=5)
    yield fake
    await fake.stop()


def config_for(tmp_path: Path, shop: FakeShop, shopify: FakeShopify, web_url: str, **channel_keys: Any) -> Config:
    keys = {"webhook_secrets": ("old-secret", shopify.client_secret), **channel_keys}  # two: a rotation
    shopify_channel = channel(
        "shopify",
        shopify.url,
        {"shop": "fake-store", "location_id": "1"},
        rules=StockRules(sku_map={SHOP_SKU: CHANNEL_SKU}),
        **keys,
    )
    cfg = make_config(tmp_path / "state", (shopify_channel, webhook_channel("web", web_url)), vault_keys=(VAULT_KEY,))
    cfg = replace(cfg, sites=(replace(cfg.sites[0], shop_url=shop.url, reconcile=QUIET),))
    store_credentials(cfg, "main/shopify", {"client_id": shopify.client_id, "client_secret": shopify.client_secret})
    return cfg


async def start(
    start_relay: StartRelay, tmp_path: Path, shop: FakeShop, shopify: FakeShopify, receiver: Receiver, **keys: Any
) -> RunningRelay:
    r: RunningRelay = await start_relay(config_for(tmp_path, shop, shopify, receiver.url("/web"), **keys))
    shopify.webhook_url = f"{r.base_url}/v1/sites/main/channels/shopify/shopify"
    return r


async def audit(r: RunningRelay, action: str) -> list[dict[str, Any]]:
    rows = await r.relay.store.read("SELECT event_id, detail FROM audit WHERE action = ? ORDER BY id", (action,))
    return [{"key": row[0], "detail": row[1]} for row in rows]


async def test_a_shopify_sale_lowers_the_shop_once_however_often_delivered(
    tmp_path: Path, shop: FakeShop, shopify: FakeShopify, receiver: Receiver, start_relay: StartRelay
) -> None:
    """orders/create → 200 after the commit → the shop's stock drops once, by the shop's SKU (sku_map reversed);
    a repeat of the event, and the same order under a new event, change nothing."""
    r = await start(start_relay, tmp_path, shop, shopify, receiver)
    order = await shopify.sell(CHANNEL_SKU, 2)
    assert [d[3] for d in shopify.deliveries] == [200]
    assert shopify.quantity(CHANNEL_SKU) == 3, "Shopify lowered its own stock"
    key = f"shopify:{order['id']}:{order['line_items'][0]['id']}"
    assert await r.count("SELECT count(*) FROM sales WHERE state = 'pending'") == 1, "recorded before the 200"
    assert await r.relay.shop_workers["main"].drain() == 1
    assert shop.products[1].quantity == 3
    assert shop.adjust_calls[0]["items"] == [{"key": key, "sku": SHOP_SKU, "delta": -2, "reason": "sale"}]
    actions = await r.relay.store.read("SELECT action FROM audit WHERE event_id = ? ORDER BY id", (key,))
    assert [row[0] for row in actions] == ["sale_received", "adjust_sent", "sale_applied"]
    assert await r.count("SELECT source FROM sales") == "webhook"

    event = shopify.deliveries[0][1]
    assert await shopify.deliver("orders/create", order, event_id=event) == [200]  # a new delivery of the event
    assert await shopify.deliver("orders/create", order) == [200]  # the same order as a new event
    assert shopify.deliveries[1][1] == event and shopify.deliveries[1][2] != shopify.deliveries[0][2]
    assert await r.relay.shop_workers["main"].drain() == 0
    assert await r.count("SELECT count(*) FROM sales") == 1
    assert len(shop.adjust_calls) == 1 and shop.products[1].quantity == 3
    assert [a["key"] for a in await audit(r, "sale_duplicate")] == [key], "the new event: its line is a duplicate"


@pytest.mark.parametrize("restock_on_refund", [False, True])
async def test_a_cancellation_restocks_and_a_refund_only_when_configured(
    tmp_path: Path,
    shop: FakeShop,
    shopify: FakeShopify,
    receiver: Receiver,
    start_relay: StartRelay,
    restock_on_refund: bool,
) -> None:
    """A cancelled order's lines come back (restock_on_cancel, on by default); a refund's lines restocked as a
    return come back only with restock_on_refund on, and a refund without restock never does."""
    r = await start(start_relay, tmp_path, shop, shopify, receiver, restock_on_refund=restock_on_refund)
    worker = r.relay.shop_workers["main"]
    cancelled = await shopify.sell(CHANNEL_SKU, 2)
    await shopify.cancel(cancelled["id"])
    await worker.drain()
    assert shop.products[1].quantity == 5
    assert set(shop.adjusted) == {
        f"shopify:{cancelled['id']}:{cancelled['line_items'][0]['id']}{s}" for s in ("", ":cancel")
    }

    refunded = await shopify.sell(CHANNEL_SKU, 3)
    returned = await shopify.refund(refunded["id"], 1, "return")
    await shopify.refund(refunded["id"], 1, "no_restock")
    assert [d[3] for d in shopify.deliveries] == [200] * 5
    await worker.drain()
    assert shop.products[1].quantity == (3 if restock_on_refund else 2)
    refund_key = f"shopify:{refunded['id']}:{refunded['line_items'][0]['id']}:refund:{returned['id']}"
    assert (refund_key in shop.adjusted) is restock_on_refund
    assert len([a for a in await audit(r, "sale_skipped") if '"not_restocked"' in a["detail"]]) == (
        1 if restock_on_refund else 2
    )


async def test_a_cancellations_own_refund_does_not_restock_twice(
    tmp_path: Path, shop: FakeShop, shopify: FakeShopify, receiver: Receiver, start_relay: StartRelay
) -> None:
    """Shopify records a cancellation's restock as a refund with restock_type "cancel": with restock_on_refund on
    too, the units come back once (by the cancellation's key), not twice."""
    r = await start(start_relay, tmp_path, shop, shopify, receiver, restock_on_refund=True)
    order = await shopify.sell(CHANNEL_SKU, 2)
    await shopify.cancel(order["id"])
    await shopify.refund(order["id"], 2, "cancel")
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 5, "sold 2, restocked 2: back where it was"
    line = order["line_items"][0]["id"]
    assert set(shop.adjusted) == {f"shopify:{order['id']}:{line}", f"shopify:{order['id']}:{line}:cancel"}
    assert any('"cancel_restock"' in a["detail"] for a in await audit(r, "sale_skipped"))


async def test_a_bad_signature_is_401_and_records_nothing(
    tmp_path: Path, shop: FakeShop, shopify: FakeShopify, receiver: Receiver, start_relay: StartRelay
) -> None:
    """A body signed with another secret is refused (and Shopify's retries with it too); nothing is recorded."""
    r = await start(start_relay, tmp_path, shop, shopify, receiver)
    order = {"id": 1, "line_items": [{"id": 2, "sku": CHANNEL_SKU, "quantity": 1, "fulfillment_service": "manual"}]}
    assert await shopify.deliver("orders/create", order, secret="not-the-secret", attempts=3) == [401, 401, 401]
    status, body, _ = await r.post_raw(shopify.webhook_url.removeprefix(r.base_url), b"{}", {"X-Shopify-Topic": "x"})
    assert (status, body["error"]["code"]) == (401, "signature_missing")
    assert await r.count("SELECT count(*) FROM sales") == 0
    assert await r.count("SELECT count(*) FROM audit WHERE action LIKE 'sale_%'") == 0


async def test_lines_another_service_fulfils_are_skipped_and_audited(
    tmp_path: Path, shop: FakeShop, shopify: FakeShopify, receiver: Receiver, start_relay: StartRelay
) -> None:
    """A line a fulfilment network ships (not 'manual') is not the shop's stock: skipped, audited, not applied."""
    r = await start(start_relay, tmp_path, shop, shopify, receiver)
    order = await shopify.sell(CHANNEL_SKU, 1, fulfillment_service="amazon")
    assert [d[3] for d in shopify.deliveries] == [200]
    assert await r.count("SELECT count(*) FROM sales") == 0
    assert await r.relay.shop_workers["main"].drain() == 0
    skipped = await audit(r, "sale_skipped")
    assert [a["key"] for a in skipped] == [f"shopify:{order['id']}:{order['line_items'][0]['id']}"]
    assert '"fulfillment_service"' in skipped[0]["detail"]
    assert shop.products[1].quantity == 5 and not shop.adjust_calls


async def test_the_shops_resulting_change_reaches_every_other_channel(
    tmp_path: Path, shop: FakeShop, shopify: FakeShopify, receiver: Receiver, start_relay: StartRelay
) -> None:
    """The chain: a Shopify sale → the shop's stock → the shop's own stock event (cause relay) → the other channel."""
    r = await start(start_relay, tmp_path, shop, shopify, receiver)
    await shopify.sell(CHANNEL_SKU, 1)
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 4
    event = shop.change(1, shop.products[1].quantity, "evt-after-sale")  # what the plugin captures and sends
    event["cause"] = {"kind": "relay"}
    status, _ = await r.client.send_events([event])
    assert status == 202
    await r.drain()
    assert receiver.quantities["/web"] == {SHOP_SKU: 4}
    assert shopify.quantity(CHANNEL_SKU) == 4


def test_webhook_secret_needs_a_shop_url_and_import_sales_turns_the_route_off() -> None:
    """Importing sales needs the shop's address; import_sales: false leaves the route off (404)."""
    shopify_channel = {"name": "s", "type": "shopify", "webhook_secret": "env:HOOK", "credentials": "main/s"}
    site = {"secret": "env:SITE", "shop_url": "https://shop.example", "channels": [shopify_channel]}
    env = {"SITE": SITE_SECRET, "HOOK": "a b"}
    parsed = config.parse({"sites": {"main": site}}, env).sites[0].channels[0]
    assert parsed.webhook_secrets == ("a", "b") and parsed.takes_sales_webhooks
    assert (parsed.restock_on_cancel, parsed.restock_on_refund, parsed.fulfillment_services) == (
        True,
        False,
        ("manual",),
    )
    with pytest.raises(ConfigError, match="shop_url"):
        config.parse({"sites": {"main": {**site, "shop_url": ""}}}, env)
    off = {**shopify_channel, "import_sales": False}
    assert (
        not config.parse({"sites": {"main": {**site, "shop_url": "", "channels": [off]}}}, env)
        .sites[0]
        .channels[0]
        .takes_sales_webhooks
    )
    with pytest.raises(ConfigError, match="true or false"):
        config.parse({"sites": {"main": {**site, "channels": [{**shopify_channel, "restock_on_refund": "yes"}]}}}, env)
