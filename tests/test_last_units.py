"""Three channels sell the last two units of one SKU at once (issue 15 §7, DESIGN.md invariant 11).

Each sale comes in by its own real path: Shopify by its signed order webhook (fakes/shopify.py), eBay by the
relay's getOrders poll (fakes/ebay.py), a POS by the signed sales route. All three are recorded before the shop
worker runs, so they reach the shop's ``adjust`` route in one batch, as they would in a burst: the stand-in shop
(fakes/shop.py) applies them in turn as WooCommerce does, 2 → 1 → 0 → -1. Exactly one oversold incident follows,
naming the sale that went below zero and the one that took the last unit; the shop keeps -1 (nothing clamped), and
its change then reaches every channel as 0, the selling channels included.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from fakes.ebay import FakeEbay
from fakes.shop import FakeShop
from fakes.shopify import FakeShopify
from relay.cli.client import SignedClient, stock_event
from relay.cli.operator import format_lineage
from relay.config import Config, ReconcileConfig

from .conftest import SITE_SECRET, Receiver, StartRelay, make_config, webhook_channel
from .marketplaces import VAULT_KEY, channel, settle, store_credentials

SKU = "TS-LAST"
POS_SECRET = "whsec_ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
QUIET = ReconcileConfig(incremental_minutes=0, full_hour=None, readback_hours=0)


@pytest.fixture
async def shop() -> AsyncIterator[FakeShop]:
    fake = await FakeShop("main", SITE_SECRET).start()
    fake.add(1, SKU, 2)  # the last two units
    yield fake
    await fake.stop()


@pytest.fixture
async def shopify() -> AsyncIterator[FakeShopify]:
    fake = FakeShopify()
    await fake.start()
    fake.add_variant(SKU, quantity=2)
    yield fake
    await fake.stop()


@pytest.fixture
async def ebay() -> AsyncIterator[FakeEbay]:
    fake = FakeEbay()
    await fake.start()
    fake.add_item(SKU, 2)
    yield fake
    await fake.stop()


def config_for(tmp_path: Path, shop: FakeShop, shopify: FakeShopify, ebay: FakeEbay, pos_url: str) -> Config:
    channels = (
        channel(
            "shopify", shopify.url, {"shop": "fake-store", "location_id": "1"}, webhook_secrets=(shopify.client_secret,)
        ),
        channel("ebay", ebay.url, {}),
        webhook_channel("pos", pos_url, sales_secrets=(POS_SECRET,)),
    )
    cfg = make_config(tmp_path / "state", channels, vault_keys=(VAULT_KEY,))
    cfg = replace(cfg, sites=(replace(cfg.sites[0], shop_url=shop.url, reconcile=QUIET),))
    store_credentials(cfg, "main/shopify", {"client_id": shopify.client_id, "client_secret": shopify.client_secret})
    ebay_creds = {"client_id": ebay.client_id, "client_secret": ebay.client_secret, "refresh_token": ebay.refresh_token}
    store_credentials(cfg, "main/ebay", ebay_creds)
    return cfg


async def test_three_channels_selling_the_last_two_units_make_one_incident_naming_the_orders(
    tmp_path: Path,
    shop: FakeShop,
    shopify: FakeShopify,
    ebay: FakeEbay,
    receiver: Receiver,
    start_relay: StartRelay,
) -> None:
    r = await start_relay(config_for(tmp_path, shop, shopify, ebay, receiver.url("/pos")))
    shopify.webhook_url = f"{r.base_url}/v1/sites/main/channels/shopify/shopify"

    shopify_order = await shopify.sell(SKU, 1)
    ebay_order = ebay.sell(SKU, 1)
    pos = SignedClient(r.base_url, "main", POS_SECRET, r.session)
    item = {"order": "P-9", "line": "1", "sku": SKU, "quantity": 1, "kind": "sale"}
    doc = {"type": "sales.report", "site": "main", "items": [item]}
    assert (await pos.post("channels/pos/sales", doc))[0] == 202
    assert await r.relay.sweepers[("main", "ebay")].poll_once() == 1
    assert await r.count("SELECT COUNT(*) FROM sales WHERE state = 'pending'") == 3, "all three before the shop hears"

    assert await r.relay.shop_workers["main"].drain() == 3
    assert len(shop.adjust_calls) == 1, "one batch: the three sales reach the shop together"
    assert shop.products[1].quantity == -1, "the shop's stock is not clamped"
    answers = sorted(shop.adjusted.items(), key=lambda kv: kv[1], reverse=True)
    assert [quantity for _, quantity in answers] == [1, 0, -1]
    keys = {
        f"shopify:{shopify_order['id']}:{shopify_order['line_items'][0]['id']}",
        f"ebay:{ebay_order}:{ebay.orders[ebay_order]['lineItems'][0]['lineItemId']}",
        "pos:P-9:1",
    }
    assert set(shop.adjusted) == keys

    rows = await r.relay.store.read("SELECT channel, sku, event_id, quantity, detail FROM audit WHERE action = ?",
                                    ("oversold",))  # fmt: skip
    assert len(rows) == 1, "exactly one incident: one unit was sold that the shop did not have"
    channel_name, sku, key, quantity, detail = rows[0]
    (last_key, _), (below_key, _) = answers[1], answers[2]
    assert (sku, key, quantity) == (SKU, below_key, -1) and below_key.startswith(channel_name + ":")
    named = json.loads(detail)
    assert [s["key"] for s in named["sales"]] == [below_key, last_key], "the sale below zero and the last unit's"
    assert named["channels"] == sorted({below_key.split(":")[0], last_key.split(":")[0]})
    assert all(s["order"] in (k.split(":")[1] for k in keys) for s in named["sales"])

    # The shop's change reaches every channel as 0, the channels that sold included.
    event = stock_event(1, SKU, shop.products[1].quantity, shop.bump(1), cause="relay")
    assert (await r.client.send_events([event]))[0] == 202
    await settle(r)
    assert shopify.quantity(SKU) == 0 and ebay.items[SKU] == 0
    assert [u["quantity"] for x in receiver.for_path("/pos") for u in x.doc["updates"]] == [0]
    assert await r.relay.shop_workers["main"].drain() == 0
    assert len(await r.relay.store.read("SELECT id FROM audit WHERE action = 'oversold'", ())) == 1, "recorded once"

    # The whole chain for the SKU: each sale, the shop's quantity after it, and the shop event that carried it out.
    status, trace = await r.client.post("lineage", {"type": "lineage.query", "site": "main", "sku": SKU})
    assert status == 200
    assert {sale["key"]: sale["shop_quantity"] for sale in trace["sales"]} == dict(answers)
    assert {sale["carried_by"] for sale in trace["sales"]} == {event["id"]}
    text = format_lineage(trace)
    assert f"pos order P-9 line 1: sale of 1 → shop {shop.adjusted['pos:P-9:1']}" in text
    assert f"→ to every channel with {event['id']}" in text
