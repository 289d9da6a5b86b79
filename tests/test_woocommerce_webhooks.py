"""WooCommerce's own webhooks (docs/wire-protocol.md §4): ping, signature, product topics, variations, deletes, repeats."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from .conftest import SITE_SECRET, make_config, webhook_channel

PATH = "/v1/sites/main/woocommerce"


def product(item_id: int, sku: str, qty: int | None, **extra: Any) -> dict[str, Any]:
    """The fields of a REST v3 product resource the relay reads (WooCommerce sends the whole resource)."""
    return {
        "id": item_id, "name": "Tee", "type": "simple", "parent_id": 0, "sku": sku, "manage_stock": qty is not None,
        "stock_quantity": qty, "stock_status": "instock" if (qty or 0) > 0 else "outofstock", "backorders": "no",
        "date_modified_gmt": "2026-11-22T10:00:00", **extra,
    }  # fmt: skip


def wc_headers(body: bytes, topic: str, delivery: str, secret: str = SITE_SECRET) -> dict[str, str]:
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {
        "Content-Type": "application/json",
        "X-WC-Webhook-Source": "https://shop.example.com/",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": "product",
        "X-WC-Webhook-Event": topic.split(".")[1],
        "X-WC-Webhook-Signature": signature,
        "X-WC-Webhook-ID": "7",
        "X-WC-Webhook-Delivery-ID": delivery,
        "User-Agent": "WooCommerce/9.4.3 Hookshot (WordPress/6.5.5)",
    }


async def deliver(r: Any, doc: dict[str, Any], topic: str, delivery: str, **kw: Any) -> tuple[int, Any]:
    body = json.dumps(doc).encode()
    status, answer, _ = await r.post_raw(PATH, body, wc_headers(body, topic, delivery, **kw))
    return status, answer


async def test_ping_gets_200_and_stores_nothing(start_relay, tmp_path: Path) -> None:
    """The form-encoded ping WooCommerce sends when a webhook is saved must get 200 or WooCommerce refuses it."""
    r = await start_relay(make_config(tmp_path / "s"))
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, body, _ = await r.post_raw(PATH, b"webhook_id=7", headers)
    assert status == 200 and body["ok"] is True
    assert await r.count("SELECT COUNT(*) FROM events") == 0
    status, body, _ = await r.post_raw(PATH, b"webhook_id=7&x=1", headers)
    assert status == 415


async def test_product_updated_reaches_the_channel(start_relay, tmp_path: Path, receiver) -> None:
    """A signed product.updated becomes an accepted event and the channel gets its quantity."""
    r = await start_relay(make_config(tmp_path / "s", (webhook_channel("a", receiver.url("/a")),)))
    status, answer = await deliver(r, product(42, "TS-RED-M", 7), "product.updated", "0a1b2c")
    assert status == 202 and answer["accepted"] == 1
    await r.drain()
    assert receiver.quantities["/a"] == {"TS-RED-M": 7}


async def test_bad_or_missing_signature_is_refused_and_nothing_stored(start_relay, tmp_path: Path) -> None:
    r = await start_relay(make_config(tmp_path / "s"))
    body = json.dumps(product(42, "A", 1)).encode()
    forged = wc_headers(body, "product.updated", "d1", secret="another-secret")
    status, answer, _ = await r.post_raw(PATH, body, forged)
    assert status == 401 and answer["error"]["code"] == "signature_invalid"
    unsigned = {k: v for k, v in forged.items() if k != "X-WC-Webhook-Signature"}
    status, answer, _ = await r.post_raw(PATH, body, unsigned)
    assert status == 401 and answer["error"]["code"] == "signature_missing"
    assert await r.count("SELECT COUNT(*) FROM events") == 0


async def test_repeated_delivery_is_not_counted_twice(start_relay, tmp_path: Path) -> None:
    """The same delivery id gets the same answer and adds nothing."""
    r = await start_relay(make_config(tmp_path / "s"))
    first = await deliver(r, product(42, "A", 1), "product.updated", "same")
    again = await deliver(r, product(42, "A", 1), "product.updated", "same")
    assert first == again and first[1]["accepted"] == 1
    assert await r.count("SELECT COUNT(*) FROM events") == 1


async def test_parent_managed_variation_reports_the_parent_stock_row(start_relay, tmp_path: Path) -> None:
    """A variation with manage_stock "parent" is recorded against its parent's stock row (product_id)."""
    r = await start_relay(make_config(tmp_path / "s"))
    doc = product(43, "TEE-RED", 5, type="variation", parent_id=40, manage_stock="parent")
    status, _ = await deliver(r, doc, "product.updated", "v1")
    assert status == 202
    rows = await r.relay.store.read("SELECT product_id, variation_id, parent_id, manage_stock FROM events")
    assert [tuple(row) for row in rows] == [(40, 43, 40, 1)]


async def test_deleted_product_goes_to_zero_under_its_last_known_sku(start_relay, tmp_path: Path, receiver) -> None:
    """product.deleted carries only the id: the relay uses the SKU it last saw and tells channels 0."""
    r = await start_relay(make_config(tmp_path / "s", (webhook_channel("a", receiver.url("/a")),)))
    await deliver(r, product(42, "GONE-1", 9), "product.updated", "u1")
    await r.drain()
    status, answer = await deliver(r, {"id": 42}, "product.deleted", "d1")
    assert status == 202 and answer["accepted"] == 1
    await r.drain()
    assert receiver.quantities["/a"] == {"GONE-1": 0}


async def test_other_topics_and_bad_bodies_get_clear_errors(start_relay, tmp_path: Path) -> None:
    r = await start_relay(make_config(tmp_path / "s"))
    status, answer = await deliver(r, {"id": 1}, "order.created", "o1")
    assert status == 400 and answer["error"]["code"] == "unsupported_topic"
    status, answer = await deliver(r, product(42, "A", 10**12), "product.updated", "q1")
    assert status == 400 and answer["error"]["code"] == "invalid_quantity"
    status, answer = await deliver(r, {"name": "no id"}, "product.updated", "n1")
    assert status == 400 and answer["error"]["code"] == "malformed_json"
    assert await r.count("SELECT COUNT(*) FROM events") == 0


async def test_channel_coalesce_seconds_applies_to_woocommerce_webhooks(start_relay, tmp_path: Path, receiver) -> None:
    """A change that arrives by WooCommerce's webhook waits its channel's coalesce_seconds like a plugin batch."""
    channels = (webhook_channel("a", receiver.url("/a")), webhook_channel("b", receiver.url("/b"), coalesce_seconds=30))
    r = await start_relay(make_config(tmp_path / "s", channels))
    status, _ = await deliver(r, product(11, "TEE-1", 4), "product.updated", "d-1")
    assert status == 202
    await r.drain()
    assert receiver.quantities == {"/a": {"TEE-1": 4}}  # "b" waits: due 30 s after the change arrived
    due = await r.count("SELECT next_attempt_at - pending_since FROM deliveries WHERE channel = 'b'")
    assert due == pytest.approx(30)


async def test_unsigned_flood_does_not_spend_the_sites_rate_budget(start_relay, tmp_path: Path) -> None:
    """Only a request that proves it comes from the shop may take from the site's request budget: forged ones used
    to empty it here, and the shop's genuine webhook got 429. A budget of one request (and a slow refill) makes any
    token a forged request takes show."""
    cfg = make_config(tmp_path / "s")
    r = await start_relay(replace(cfg, sites=(replace(cfg.sites[0], max_requests_per_second=0.01),)))
    body = json.dumps(product(42, "A", 1)).encode()
    for i in range(5):
        forged = wc_headers(body, "product.updated", f"forged{i}", secret="another-secret")
        status, _, _ = await r.post_raw(PATH, body, forged)
        assert status == 401
    status, answer = await deliver(r, product(42, "A", 1), "product.updated", "genuine")
    assert status == 202, answer
    status, answer = await deliver(r, product(42, "A", 2), "product.updated", "genuine2")
    assert status == 429 and answer["error"]["code"] == "rate_limited", "the budget of one must hold for signed ones"
