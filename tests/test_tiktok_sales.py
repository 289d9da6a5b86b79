"""TikTok Shop's own sales reach the shop exactly once (issue 15): the relay polls the fake TikTok's Get Order List
since a persisted cursor, and takes its signed order-status webhooks (reading each order with Get Order Detail),
and applies each line item to the fake shop through the plugin's adjust route, over HTTP.

Polls are driven by state (``SalesSweeper.poll_once``) except where the running relay's loops are the point.
TikTok publishes no machine-readable spec of its order API; the request and answer shapes checked below are written
from the field names of TikTok's generated SDK (Order202309GetOrderListRequestBody and ...ResponseDataOrders, as
vendored in tiananugerah/titktok-shop ``tiktok_sdk/model/order/V202309``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from fakes.common import Bucket
from fakes.shop import FakeShop
from fakes.tiktok import FakeTikTok
from relay.config import FULFILMENT_DEFAULTS, Config, RateLimit, ReconcileConfig, StockRules
from relay.errors import TransientDeliveryError

from .conftest import SITE_SECRET, RunningRelay, StartRelay, eventually
from .marketplaces import channel, marketplace_config, poll_orders, sales_cursor, send, store_credentials

QUIET = ReconcileConfig(incremental_minutes=0, full_hour=None, readback_hours=0)
SEARCH = "/order/202309/orders/search"
DETAIL = "/order/202309/orders"
HOOK = "/v1/sites/main/channels/tiktok/tiktok"

# Get Order List's body as the connector may send it (Order202309GetOrderListRequestBody: Unix-second bounds)
SEARCH_BODY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["update_time_ge", "update_time_lt"],
    "properties": {
        "update_time_ge": {"type": "integer", "minimum": 0},
        "update_time_lt": {"type": "integer", "minimum": 0},
    },
}
# what the connector reads of an order (Order202309GetOrderListResponseDataOrders / ...LineItems): no quantity
ORDER = {
    "type": "object",
    "required": ["id", "status", "update_time", "line_items"],
    "properties": {
        "id": {"type": "string"},
        "status": {
            "enum": [
                "UNPAID",
                "ON_HOLD",
                "AWAITING_SHIPMENT",
                "PARTIALLY_SHIPPING",
                "AWAITING_COLLECTION",
                "IN_TRANSIT",
                "DELIVERED",
                "COMPLETED",
                "CANCELLED",
            ]
        },  # fmt: skip
        "fulfillment_type": {"enum": ["FULFILLMENT_BY_SELLER", "FULFILLMENT_BY_TIKTOK"]},
        "update_time": {"type": "integer"},
        "line_items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "sku_id", "seller_sku", "display_status"],
                "not": {"required": ["quantity"]},
                "properties": {
                    "id": {"type": "string"},
                    "sku_id": {"type": "string"},
                    "seller_sku": {"type": "string"},
                },
            },
        },
    },
}


@pytest.fixture
async def tiktok() -> AsyncIterator[FakeTikTok]:
    fake = FakeTikTok()
    await fake.start()
    fake.add_product({"TT-1": {"WH1": 10}})
    yield fake
    await fake.stop()


@pytest.fixture
async def shop() -> AsyncIterator[FakeShop]:
    fake = await FakeShop("main", SITE_SECRET).start()
    fake.add(1, "TS-TT-1", 10)
    yield fake
    await fake.stop()


def config_for(tmp_path: Path, tiktok: FakeTikTok, shop: FakeShop, **overrides: Any) -> Config:
    options: dict[str, Any] = {
        "sales_poll_seconds": 60.0,
        "rules": StockRules(sku_map={"TS-TT-1": "TT-1"}),
        "fulfillment_services": FULFILMENT_DEFAULTS["tiktok"],  # what parsing a tiktok channel gives
    }
    account = {"shop_cipher": tiktok.shop_cipher, "auth_base": tiktok.url, "shop_id": tiktok.shop_id}
    cfg = marketplace_config(tmp_path / "state", channel("tiktok", tiktok.url, account, **(options | overrides)))
    cfg = replace(cfg, sites=(replace(cfg.sites[0], shop_url=shop.url, reconcile=QUIET),))
    creds = {"app_key": tiktok.app_key, "app_secret": tiktok.app_secret, "refresh_token": tiktok.refresh_token}
    store_credentials(cfg, "main/tiktok", creds)
    return cfg


async def start(start_relay: StartRelay, tmp_path: Path, tiktok: FakeTikTok, shop: FakeShop, **kw: Any) -> Any:
    r = await start_relay(config_for(tmp_path, tiktok, shop, **kw))
    tiktok.webhook_url = r.base_url + HOOK
    return r


poll = functools.partial(poll_orders, channel="tiktok")


cursor = functools.partial(sales_cursor, channel="tiktok")


def keys(tiktok: FakeTikTok, order: str, suffix: str = "") -> set[str]:
    return {f"tiktok:{order}:{line['id']}{suffix}" for line in tiktok.orders[order]["line_items"]}


# --- polling -------------------------------------------------------------------------------------------------------


async def test_a_sale_on_tiktok_lowers_the_shop_once(
    tmp_path: Path, tiktok: FakeTikTok, shop: FakeShop, start_relay: StartRelay
) -> None:
    """An order of 2 is two line items of one unit each: the shop drops by 2 once, by its own SKU (sku_map
    reversed); polling again, and after a restart on the same database, counts nothing more; the cursor persists.
    The calls are signed as TikTok checks them, with Get Order List's parameters and body."""
    cfg = config_for(tmp_path, tiktok, shop)
    r = await start_relay(cfg)
    order = tiktok.sell("TT-1", 2)
    assert tiktok.stock("TT-1") == {"WH1": 8}, "TikTok reserved its own stock"
    assert await poll(r) == 2
    assert await r.relay.shop_workers["main"].drain() == 2
    assert shop.products[1].quantity == 8
    assert set(shop.adjusted) == keys(tiktok, order)
    assert {i["sku"] for c in shop.adjust_calls for i in c["items"]} == {"TS-TT-1"}
    assert all(i["delta"] == -1 for c in shop.adjust_calls for i in c["items"])
    rows = await r.relay.store.read("SELECT detail FROM audit WHERE action = 'sale_received'", ())
    assert all('"source": "sweep"' in row[0] for row in rows) and len(rows) == 2
    call = tiktok.calls(SEARCH, method="POST")[0]
    assert (call.query["page_size"], call.query["sort_field"], call.query["shop_cipher"]) == (
        "100",
        "update_time",
        tiktok.shop_cipher,
    )
    assert "page_token" not in call.query and tiktok.bad_signatures == 0
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
    assert shop.products[1].quantity == 8
    assert await r.count("SELECT count(*) FROM sales") == 2


@pytest.mark.parametrize("status", ["AWAITING_SHIPMENT", "UNPAID"])
async def test_a_cancelled_order_restocks_once(
    tmp_path: Path, tiktok: FakeTikTok, shop: FakeShop, start_relay: StartRelay, status: str
) -> None:
    """A CANCELLED order gives its lines back once, under keys of their own; an UNPAID order is a sale (TikTok has
    already reserved the stock) and its cancellation, when the buyer never pays, restocks it."""
    r = await start_relay(config_for(tmp_path, tiktok, shop))
    order = tiktok.sell("TT-1", 3, status=status)
    assert await poll(r) == 3
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 7
    tiktok.cancel(order)
    assert tiktok.stock("TT-1") == {"WH1": 10}
    assert await poll(r) == 3
    assert await poll(r) == 0
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 10
    assert set(shop.adjusted) == keys(tiktok, order) | keys(tiktok, order, ":cancel")


async def test_a_line_cancelled_alone_restocks_and_restock_on_cancel_off_keeps_it(
    tmp_path: Path, tiktok: FakeTikTok, shop: FakeShop, start_relay: StartRelay
) -> None:
    """A line cancelled in a live order (display_status CANCELLED, a partial cancellation) restocks that line only;
    with restock_on_cancel off nothing comes back."""
    r = await start_relay(config_for(tmp_path, tiktok, shop))
    order = tiktok.sell("TT-1", 2)
    tiktok.orders[order]["line_items"][0]["display_status"] = "CANCELLED"
    assert await poll(r) == 3
    line = tiktok.orders[order]["line_items"][0]["id"]
    assert await r.count("SELECT count(*) FROM sales WHERE reason = 'cancel' AND line_id = ?", (line,)) == 1

    other = await start_relay(config_for(tmp_path / "off", tiktok, shop, restock_on_cancel=False))
    tiktok.cancel(order)
    assert await poll(other) == 2
    assert await other.count("SELECT count(*) FROM sales WHERE reason = 'cancel'") == 0


async def test_lines_fulfilled_by_tiktok_are_skipped_and_logged_once(
    tmp_path: Path, tiktok: FakeTikTok, shop: FakeShop, start_relay: StartRelay, caplog: pytest.LogCaptureFixture
) -> None:
    """Fulfilled by TikTok ships TikTok's own stock: its lines are no sale of the shop's (fulfillment_services,
    default FULFILLMENT_BY_SELLER), said once however often they are polled; listing it imports them."""
    r = await start_relay(config_for(tmp_path, tiktok, shop))
    order = tiktok.sell("TT-1", 1, fulfillment_type="FULFILLMENT_BY_TIKTOK")
    with caplog.at_level(logging.WARNING, logger="stock_relay.sweep"):
        assert await poll(r) == 0
        assert await poll(r) == 0
    said = [m for m in caplog.messages if order in m]
    assert len(said) == 1 and "FULFILLMENT_BY_TIKTOK" in said[0]
    assert await r.count("SELECT count(*) FROM sales") == 0

    both = ("FULFILLMENT_BY_SELLER", "FULFILLMENT_BY_TIKTOK")
    other = await start_relay(config_for(tmp_path / "both", tiktok, shop, fulfillment_services=both))
    assert await poll(other) == 1


async def test_every_page_of_orders_is_read(
    tmp_path: Path, tiktok: FakeTikTok, shop: FakeShop, start_relay: StartRelay
) -> None:
    """Orders beyond the first page (here pages of 3) are read by page_token until the answer has none; every
    request carries the same body, as the contract's shapes have it, and the fake's orders have the contract's."""
    tiktok.order_page_limit = 3
    r = await start_relay(config_for(tmp_path, tiktok, shop))
    for _ in range(7):
        tiktok.sell("TT-1", 1)
    assert await poll(r) == 7
    calls = tiktok.calls(SEARCH, method="POST")
    assert len(calls) == 3
    assert ["page_token" in c.query for c in calls] == [False, True, True]
    assert len({c.body for c in calls}) == 1
    jsonschema.validate(calls[0].json, SEARCH_BODY)
    for order in tiktok.orders.values():
        jsonschema.validate(order, ORDER)
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 3


async def test_a_refused_poll_moves_no_cursor_and_loses_nothing(
    tmp_path: Path, tiktok: FakeTikTok, shop: FakeShop, start_relay: StartRelay
) -> None:
    """TikTok answering 503 or 429 to Get Order List (on the second page too) records nothing and leaves the cursor;
    the next poll reads the same window and catches up."""
    tiktok.order_page_limit = 1
    r = await start_relay(config_for(tmp_path, tiktok, shop))
    assert await poll(r) == 0
    before = await cursor(r)
    tiktok.sell("TT-1", 1)
    tiktok.sell("TT-1", 1)
    tiktok.order_page_failures[0] = 503
    with pytest.raises(TransientDeliveryError):
        await poll(r)
    tiktok.order_page_failures[1] = 429  # the first page read, the second throttled
    with pytest.raises(TransientDeliveryError):
        await poll(r)
    assert await cursor(r) == before
    assert await r.count("SELECT count(*) FROM sales") == 0
    assert await poll(r) == 2
    assert await cursor(r) > before


async def test_intake_does_not_starve_pushes(
    tmp_path: Path, tiktok: FakeTikTok, shop: FakeShop, start_relay: StartRelay
) -> None:
    """With the channel's budget tight (10 calls/s, burst 4; TikTok's a little above it) and 30 pages of orders to
    read, 40 one-product pushes go out unthrottled and nearly without intake calls between them: intake takes only
    spare calls."""
    tiktok.limit = Bucket(12, 6)
    tiktok.order_page_limit = 1
    skus = [f"P{i:02d}" for i in range(40)]
    for sku in skus:
        tiktok.add_product({sku: {"WH1": 0}})
    for _ in range(30):
        tiktok.sell("TT-1", 1)
    cfg = config_for(tmp_path, tiktok, shop, rate=RateLimit(10, 4), batch_size=1, sales_poll_seconds=5.0)
    r = await start_relay(cfg, run_workers=True)
    await send(r, [(sku, 5) for sku in skus])

    async def all_done() -> bool:
        pushed = all(tiktok.stock(sku) == {"WH1": 5} for sku in skus)
        return pushed and await r.count("SELECT count(*) FROM sales") == 30

    await eventually(all_done, seconds=60, what="every push and every sale")
    assert tiktok.throttled == 0
    paths = [c.path for c in tiktok.requests if "/api/v2/token" not in c.path]
    pushes = [i for i, p in enumerate(paths) if p.endswith("/inventory/update")]
    between = [p for p in paths[pushes[0] : pushes[-1]] if p == SEARCH]
    assert len(pushes) == 40
    assert len(between) <= 10, f"{len(between)} intake calls among 40 pushes"


# --- webhooks ------------------------------------------------------------------------------------------------------


async def test_a_signed_order_webhook_applies_the_order_once(
    tmp_path: Path, tiktok: FakeTikTok, shop: FakeShop, start_relay: StartRelay
) -> None:
    """An ORDER_STATUS_CHANGE → the order read with Get Order Detail → 200 after the commit → the shop drops once;
    a repeat of the notification records nothing (its first answer), nor does a new one about the same order, nor
    one after a restart."""
    cfg = config_for(tmp_path, tiktok, shop)
    r = await start_relay(cfg)
    tiktok.webhook_url = r.base_url + HOOK
    order = tiktok.sell("TT-1", 2)
    assert await tiktok.notify(order) == 200
    assert await r.count("SELECT count(*) FROM sales WHERE state = 'pending' AND source = 'webhook'") == 2
    detail = tiktok.calls(DETAIL, method="GET")
    assert [c.query["ids"] for c in detail] == [order] and tiktok.bad_signatures == 0
    assert await r.relay.shop_workers["main"].drain() == 2
    assert shop.products[1].quantity == 8 and set(shop.adjusted) == keys(tiktok, order)

    note = tiktok.notifications[0][0]
    status, body, headers = await post(r, tiktok, order, note)
    assert (status, headers.get("Idempotent-Replayed")) == (200, "true")
    assert body["accepted"] == 2, "the first answer, as it was"
    assert await tiktok.notify(order) == 200
    await r.server.close()
    await r.relay.stop()
    r = await start_relay(cfg)
    tiktok.webhook_url = r.base_url + HOOK
    assert await tiktok.notify(order) == 200
    assert await r.relay.shop_workers["main"].drain() == 0
    assert await r.count("SELECT count(*) FROM sales") == 2 and shop.products[1].quantity == 8


async def test_a_webhook_and_a_poll_of_the_same_order_apply_it_once(
    tmp_path: Path, tiktok: FakeTikTok, shop: FakeShop, start_relay: StartRelay
) -> None:
    """The webhook and the poll make the same keys: whichever comes second is a duplicate, for the sale and for
    its cancellation."""
    r = await start(start_relay, tmp_path, tiktok, shop)
    order = tiktok.sell("TT-1", 1)
    assert await tiktok.notify(order) == 200
    assert await poll(r) == 0
    tiktok.cancel(order)
    assert await poll(r) == 1
    status, body, _ = await post(r, tiktok, order)
    assert (status, body["accepted"], body["duplicates"]) == (200, 0, 2)
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 10
    assert set(shop.adjusted) == keys(tiktok, order) | keys(tiktok, order, ":cancel")


async def test_a_bad_signature_is_401_and_records_nothing(
    tmp_path: Path, tiktok: FakeTikTok, shop: FakeShop, start_relay: StartRelay
) -> None:
    """A notification signed with another secret, or not signed, is refused before TikTok is asked for the order;
    the secret never shows in the answer."""
    r = await start(start_relay, tmp_path, tiktok, shop)
    order = tiktok.sell("TT-1", 1)
    assert await tiktok.notify(order, secret="not-the-app-secret") == 401
    status, body, _ = await r.post_raw(HOOK, b'{"type": 1, "data": {}}', {"Content-Type": "application/json"})
    assert (status, body["error"]["code"]) == (401, "signature_missing")
    assert not tiktok.calls(DETAIL, method="GET")
    assert await r.count("SELECT count(*) FROM sales") == 0
    assert await r.count("SELECT count(*) FROM audit WHERE action LIKE 'sale_%'") == 0
    assert tiktok.app_secret not in str(body)


async def test_other_notifications_are_200_and_ignored_and_an_unreadable_order_is_503(
    tmp_path: Path, tiktok: FakeTikTok, shop: FakeShop, start_relay: StartRelay
) -> None:
    """Another type (here 2, a reverse order) is answered 200 and ignored, so TikTok does not retry it; an order
    TikTok cannot serve now is a 503 that records nothing, and TikTok's retry records it."""
    r = await start(start_relay, tmp_path, tiktok, shop)
    order = tiktok.sell("TT-1", 1)
    assert await tiktok.notify(order, kind=2) == 200
    assert not tiktok.calls(DETAIL, method="GET")
    tiktok.fail_next(1, 503, body={"code": 36009001, "message": "busy"}, path=DETAIL, method="GET")
    assert await tiktok.notify(order, notification_id="n-1") == 503
    assert await r.count("SELECT count(*) FROM sales") == 0
    assert await tiktok.notify(order, notification_id="n-1") == 200
    assert await r.count("SELECT count(*) FROM sales") == 1


async def test_the_route_is_404_without_sales_intake(
    tmp_path: Path, tiktok: FakeTikTok, shop: FakeShop, start_relay: StartRelay
) -> None:
    """import_sales off: the route does not exist for the channel (and the poll does not run)."""
    r = await start(start_relay, tmp_path, tiktok, shop, import_sales=False)
    status, body, _ = await r.post_raw(HOOK, b"{}", {"Content-Type": "application/json"})
    assert (status, body["error"]["code"]) == (404, "unknown_channel")
    assert ("main", "tiktok") not in r.relay.sweepers


async def post(r: RunningRelay, tiktok: FakeTikTok, order: str, note: str = "") -> tuple[int, Any, dict[str, str]]:
    """A notification about ``order`` as TikTok signs it, read back with its answer (``note``: its id)."""
    data = {"order_id": order, "order_status": tiktok.orders[order]["status"], "update_time": 1}
    raw = json.dumps({"type": 1, "tts_notification_id": note or "x" + order, "shop_id": tiktok.shop_id,
                      "timestamp": 1, "data": data}).encode()  # fmt: skip
    sign = hmac.new(tiktok.app_secret.encode(), tiktok.app_key.encode() + raw, hashlib.sha256).hexdigest()
    return await r.post_raw(HOOK, raw, {"Authorization": sign, "Content-Type": "application/json"})
