"""The Walmart connector against the fake Walmart seller, through a real relay.

Walmart publishes no machine-readable spec we hold, so the expected shapes below are written from
the contract notes, shared/refs/marketplaces.md section 5 ("Walmart Marketplace (US)"), which cite
developer.walmart.com: update-single-item-inventory, bulk-inventory, get-an-access-token.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from fakes.walmart import FakeWalmart
from relay.config import RateLimit

from .marketplaces import audit_text, channel, dead_reasons, marketplace_config, send, settle, states, store_credentials

# marketplaces.md §5 "Absolute set, one SKU": {"sku", "quantity": {"unit": "EACH", "amount"}}
QUANTITY = {
    "type": "object",
    "required": ["unit", "amount"],
    "additionalProperties": False,
    "properties": {"unit": {"const": "EACH"}, "amount": {"type": "integer", "minimum": 0}},
}
INVENTORY_ITEM = {
    "type": "object",
    "required": ["sku", "quantity"],
    "additionalProperties": False,
    "properties": {"sku": {"type": "string", "minLength": 1}, "quantity": QUANTITY},
}
# marketplaces.md §5 "Many SKUs": {"InventoryHeader": {"version": "1.4"}, "Inventory": [item, ...]}
INVENTORY_FEED = {
    "type": "object",
    "required": ["InventoryHeader", "Inventory"],
    "additionalProperties": False,
    "properties": {
        "InventoryHeader": {
            "type": "object",
            "required": ["version"],
            "properties": {"version": {"const": "1.4"}},
        },
        "Inventory": {"type": "array", "minItems": 1, "items": INVENTORY_ITEM},
    },
}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture
async def walmart() -> AsyncIterator[FakeWalmart]:
    fake = FakeWalmart(feed_seconds=0.0)
    await fake.start()
    yield fake
    await fake.stop()


async def start(start_relay, tmp_path: Path, walmart: FakeWalmart, secret: str | None = None, **overrides: Any):
    config = marketplace_config(tmp_path / "state", channel("walmart", walmart.url, {}, **overrides))
    creds = {"client_id": walmart.client_id, "client_secret": secret or walmart.client_secret}
    store_credentials(config, "main/walmart", creds)
    return await start_relay(config)


def feed_channel() -> dict[str, Any]:
    """A single-update rate so low (0.01/s) that a feed is quicker beyond 18 SKUs."""
    return {"rate": RateLimit(0.01, 100), "batch_size": 200}


async def test_single_updates_follow_the_contract(start_relay, tmp_path: Path, walmart) -> None:
    """PUT /v3/inventory?sku= with {sku, quantity{unit, amount}} and Walmart's headers; token by client credentials."""
    walmart.add_items({"TOY-1": 0, "TOY-2": 0})
    r = await start(start_relay, tmp_path, walmart)
    await send(r, [("TOY-1", 12), ("TOY-2", 0)])
    await settle(r)
    assert walmart.inventory == {"TOY-1": 12, "TOY-2": 0}
    puts = walmart.calls("/v3/inventory", method="PUT")
    assert len(puts) == 2
    for call in puts:
        jsonschema.validate(call.json, INVENTORY_ITEM)
        assert call.query == {"sku": call.json["sku"]}
        assert call.headers["wm_svc.name"] == "Walmart Marketplace" and UUID.match(
            call.headers["wm_qos.correlation_id"]
        )
        assert walmart.tokens.valid(call.headers["wm_sec.access_token"])
    assert puts[0].headers["wm_qos.correlation_id"] != puts[1].headers["wm_qos.correlation_id"]
    (grant,) = walmart.calls("/v3/token")
    assert grant.form == {"grant_type": "client_credentials"}
    expected = base64.b64encode(f"{walmart.client_id}:{walmart.client_secret}".encode()).decode()
    assert grant.headers["authorization"] == f"Basic {expected}"


async def test_unknown_sku_is_dead_lettered_readably(start_relay, tmp_path: Path, walmart) -> None:
    """A 404 for the SKU is permanent and says so in words."""
    walmart.add_items({"HAVE": 0})
    r = await start(start_relay, tmp_path, walmart)
    await send(r, [("HAVE", 1), ("NOPE", 1)])
    await settle(r)
    assert await states(r) == {"HAVE": "delivered", "NOPE": "dead"}
    assert (await dead_reasons(r))["NOPE"] == "SKU NOPE is not listed on Walmart"


async def test_backlog_goes_as_one_inventory_feed(start_relay, tmp_path: Path, walmart) -> None:
    """25 SKUs at 0.01 updates/s: one multipart inventory feed, per-item results, one DATA_ERROR dead-lettered."""
    skus = [f"B-{n}" for n in range(25)]
    walmart.add_items(dict.fromkeys(skus, 0))
    walmart.invalid["B-4"] = "Inventory cannot be updated for a retired item"
    r = await start(start_relay, tmp_path, walmart, **feed_channel())
    await send(r, [(sku, 3) for sku in skus])
    await settle(r)
    assert walmart.calls("/v3/inventory", method="PUT") == []
    (post,) = walmart.calls("/v3/feeds", method="POST")
    assert post.query == {"feedType": "inventory"} and post.headers["content-type"].startswith("multipart/form-data")
    document = json.loads(post.body.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0])
    jsonschema.validate(document, INVENTORY_FEED)
    got = await states(r)
    assert got["B-4"] == "dead" and all(got[s] == "delivered" for s in skus if s != "B-4")
    assert all(walmart.inventory[s] == 3 for s in skus if s != "B-4")
    reason = (await dead_reasons(r))["B-4"]
    assert reason.startswith("Walmart refused SKU B-4 in feed ") and "retired item" in reason
    status_calls = walmart.calls("/v3/feeds/", method="GET")
    assert status_calls and status_calls[-1].query["includeDetails"] == "true"


async def test_failed_feed_is_sent_again(start_relay, tmp_path: Path, walmart) -> None:
    """A feed that ends in ERROR processed nothing: its SKUs are sent again and delivered."""
    skus = [f"E-{n}" for n in range(25)]
    walmart.add_items(dict.fromkeys(skus, 0))
    walmart.end_next_feed_with = "ERROR"
    r = await start(start_relay, tmp_path, walmart, **feed_channel())
    await send(r, [(sku, 8) for sku in skus])
    await settle(r)
    resent = len(walmart.calls("/v3/inventory", method="PUT")) + 25 * (len(walmart.feeds) - 1)
    assert all(walmart.inventory[s] == 8 for s in skus) and resent >= 25


async def test_throttle_waits_and_token_count_lowers_the_budget(start_relay, tmp_path: Path, walmart) -> None:
    """429 is retried after Retry-After; x-current-token-count is believed when it says less."""
    walmart.add_items({"T": 0})
    r = await start(start_relay, tmp_path, walmart)
    walmart.fail_next(1, 429, {"Retry-After": "0", "x-current-token-count": "0"}, {"errors": []}, method="PUT")
    await send(r, [("T", 5)])
    await settle(r)
    connector = r.relay.workers[("main", "walmart")].connector
    assert walmart.inventory["T"] == 5 and connector.budget.throttles == 1


async def test_token_count_header_lowers_the_budget(start_relay, tmp_path: Path, walmart) -> None:
    """x-current-token-count is believed when it says fewer calls are left than the relay thought."""
    walmart.add_items({"T": 0})
    walmart.single = type(walmart.single)(0.001, 3)  # Walmart's bucket for this seller holds 3
    r = await start(start_relay, tmp_path, walmart, rate=RateLimit(0.001, 10))
    await send(r, [("T", 6)])
    await settle(r)
    budget = r.relay.workers[("main", "walmart")].connector.budget
    assert walmart.inventory["T"] == 6 and budget.bucket._tokens < 2.1  # 10 - 1 spent, lowered to the 2 Walmart has


async def test_expired_token_is_replaced_and_bad_credentials_pause(start_relay, tmp_path: Path, walmart) -> None:
    """A 401 after 15 minutes gets a new token (once); refused client credentials pause without leaking."""
    walmart.add_items({"A": 0})
    r = await start(start_relay, tmp_path, walmart)
    await send(r, [("A", 1)])
    await settle(r)
    walmart.tokens.expire_all()
    await send(r, [("A", 2)], version=2)
    await settle(r)
    assert walmart.inventory["A"] == 2 and walmart.tokens.issued == 2
    walmart.client_secret = "rotated-by-the-seller-0002"
    walmart.tokens.expire_all()
    await send(r, [("A", 3)], version=3)
    await r.drain()
    worker = r.relay.workers[("main", "walmart")]
    assert worker.circuit.state != "closed" and "Walmart refused to issue an access token (401" in worker.circuit.reason
    text = await audit_text(r)
    assert "walmart-client-secret-0001" not in text


async def test_without_a_feed_in_reach_claims_are_what_one_push_sends(start_relay, tmp_path: Path, walmart) -> None:
    """At a rate where no claim could go as a feed, the worker claims 5 s of single updates: none waits a round."""
    skus = [f"C-{n}" for n in range(12)]
    walmart.add_items(dict.fromkeys(skus, 0))
    r = await start(start_relay, tmp_path, walmart, rate=RateLimit(2, 20), batch_size=200)
    await send(r, [(sku, 1) for sku in skus])
    await settle(r)
    assert all(walmart.inventory[s] == 1 for s in skus) and walmart.feeds == {}
    assert "not sent yet" not in await audit_text(r)
