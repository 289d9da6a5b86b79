"""The Shopify connector against the fake Shopify store, through a real relay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fakes.shopify import FakeShopify
from relay.vault import Vault

from .marketplaces import (
    audit_text,
    channel,
    dead_reasons,
    marketplace_config,
    send,
    settle,
    states,
    store_credentials,
)

ACCOUNT = {"shop": "demo-shop", "location_id": "1"}


@pytest.fixture
async def shop() -> AsyncIterator[FakeShopify]:
    fake = FakeShopify()
    await fake.start()
    yield fake
    await fake.stop()


async def start(start_relay, tmp_path: Path, shop: FakeShopify, creds: dict[str, str] | None = None, account=ACCOUNT):
    config = marketplace_config(tmp_path / "state", channel("shopify", shop.url, account))
    store_credentials(
        config, "main/shopify", creds or {"client_id": shop.client_id, "client_secret": shop.client_secret}
    )
    return await start_relay(config)


def mutations(shop: FakeShopify) -> list[dict]:
    return [r.json for r in shop.calls("graphql.json") if "inventorySetQuantities" in r.json["query"]]


async def test_sets_absolute_quantities_in_one_call(start_relay, tmp_path: Path, shop: FakeShopify) -> None:
    """Three SKUs: one bulk lookup, then one inventorySetQuantities with changeFromQuantity null and a key."""
    for sku in ("A", "B", "C"):
        shop.add_variant(sku, quantity=1)
    r = await start(start_relay, tmp_path, shop)
    await send(r, [("A", 5), ("B", 0), ("C", 12)])
    await settle(r)
    assert [shop.quantity(s) for s in ("A", "B", "C")] == [5, 0, 12]
    sent = mutations(shop)
    assert len(sent) == 1
    assert '@idempotent(key: "' in sent[0]["query"]
    entries = sent[0]["variables"]["input"]["quantities"]
    assert all(e["changeFromQuantity"] is None and e["locationId"] == "gid://shopify/Location/1" for e in entries)
    assert sent[0]["variables"]["input"]["name"] == "available"
    assert len([c for c in shop.calls("graphql.json") if "productVariants" in c.json["query"]]) == 1
    assert shop.calls("/admin/api/2026-04/")


async def test_unknown_sku_is_dead_lettered_with_a_readable_reason(start_relay, tmp_path: Path, shop) -> None:
    """A SKU the shop does not list fails alone, permanently; the others are set."""
    shop.add_variant("A")
    r = await start(start_relay, tmp_path, shop)
    await send(r, [("A", 3), ("GHOST", 4)])
    await settle(r)
    assert shop.quantity("A") == 3
    assert await states(r) == {"A": "delivered", "GHOST": "dead"}
    assert (await dead_reasons(r))["GHOST"] == "SKU GHOST is not listed on Shopify shop demo-shop.myshopify.com"


async def test_user_error_fails_one_item_and_retries_the_rest(start_relay, tmp_path: Path, shop) -> None:
    """The mutation is all-or-nothing: the refused entry is dead-lettered, its batch-mates retried and set."""
    shop.add_variant("A")
    shop.add_variant("B", stocked=False)
    shop.add_variant("C")
    r = await start(start_relay, tmp_path, shop)
    await send(r, [("A", 7), ("B", 8), ("C", 9)])
    await settle(r)
    assert await states(r) == {"A": "delivered", "B": "dead", "C": "delivered"}
    assert "ITEM_NOT_STOCKED_AT_LOCATION" in (await dead_reasons(r))["B"]
    assert (shop.quantity("A"), shop.quantity("C")) == (7, 9)
    # The first mutation carried all three; A and C were sent again, together or apart: each gets its own random
    # backoff, so whether one claim finds both due depends on the machine's pace.
    sizes = [len(m["variables"]["input"]["quantities"]) for m in mutations(shop)]
    assert sizes[0] == 3 and sum(sizes[1:]) == 2, sizes


async def test_throttled_is_retried_with_the_same_idempotency_key(start_relay, tmp_path: Path, shop) -> None:
    """A THROTTLED answer slows the budget; the retry of the same batch carries the same @idempotent key."""
    shop.add_variant("A")
    r = await start(start_relay, tmp_path, shop)
    shop.fail_next(
        1,
        200,
        body={"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]},
        path="graphql.json",
    )
    shop.add_variant("B")
    await send(r, [("A", 2)])
    await settle(r)
    assert shop.quantity("A") == 2
    connector = r.relay.workers[("main", "shopify")].connector
    assert connector.budget.throttles == 1
    # the lookup was throttled, then retried; one mutation applied
    assert len(shop.applied_keys) == 1


async def test_budget_adopts_the_shops_real_bucket(start_relay, tmp_path: Path) -> None:
    """throttleStatus in every answer replaces the configured rate with the shop's real restore rate."""
    fake = FakeShopify(restore_rate=200.0, bucket=4000.0)
    await fake.start()
    try:
        fake.add_variant("A")
        r = await start(start_relay, tmp_path, fake)
        await send(r, [("A", 1)])
        await settle(r)
        budget = r.relay.workers[("main", "shopify")].connector.budget
        assert (budget.published_rate, budget.bucket.burst) == (200.0, 4000.0)
    finally:
        await fake.stop()


async def test_expired_token_is_refreshed_once(start_relay, tmp_path: Path, shop) -> None:
    """A 401 on an expired client-credentials token gets one new token, then the call goes through."""
    shop.add_variant("A")
    r = await start(start_relay, tmp_path, shop)
    await send(r, [("A", 1)])
    await settle(r)
    issued = shop.tokens.issued
    shop.tokens.expire_all()
    await send(r, [("A", 2)], version=2)
    await settle(r)
    assert shop.quantity("A") == 2
    assert shop.tokens.issued == issued + 1


async def test_rotating_refresh_token_is_saved_encrypted(start_relay, tmp_path: Path, shop) -> None:
    """An expiring offline token's refresh token rotates on use: the new one is in the vault, not on disk in clear."""
    shop.add_variant("A")
    first = shop.tokens.new_refresh_token()
    creds = {"client_id": shop.client_id, "client_secret": shop.client_secret, "refresh_token": first}
    r = await start(start_relay, tmp_path, shop, creds)
    await send(r, [("A", 4)])
    await settle(r)
    assert shop.quantity("A") == 4
    config = r.relay.config
    saved = Vault(config.vault_dir, config.vault_keys).read("main/shopify")["refresh_token"]
    assert saved != first and saved in shop.tokens.refresh_tokens
    assert saved.encode() not in (config.vault_dir / "main.shopify.cred").read_bytes()


async def test_refused_refresh_pauses_the_channel_without_leaking(start_relay, tmp_path: Path, shop) -> None:
    """A revoked refresh token pauses the channel with a clear reason; no secret reaches the audit log."""
    shop.add_variant("A")
    creds = {"client_id": shop.client_id, "client_secret": shop.client_secret, "refresh_token": "revoked-refresh-token"}
    r = await start(start_relay, tmp_path, shop, creds)
    await send(r, [("A", 4)])
    await r.drain()
    worker = r.relay.workers[("main", "shopify")]
    assert worker.circuit.state != "closed"
    assert "refused to issue an access token" in (worker.circuit.reason or "")
    assert await states(r) == {"A": "pending"}
    text = await audit_text(r)
    assert "revoked-refresh-token" not in text and shop.client_secret not in text


async def test_legacy_static_token_and_pre_2026_version(start_relay, tmp_path: Path, shop) -> None:
    """A legacy shpat_ token is used as is; API 2025-10 gets ignoreCompareQuantity instead of the 2026 fields."""
    shop.add_variant("A")
    token = shop.tokens.grant("shpat_legacy_token_value")
    r = await start(
        start_relay,
        tmp_path,
        shop,
        {"access_token": token},
        account={**ACCOUNT, "api_version": "2025-10"},
    )
    await send(r, [("A", 6)])
    await settle(r)
    assert shop.quantity("A") == 6
    sent = mutations(shop)[0]
    assert "@idempotent" not in sent["query"]
    assert sent["variables"]["input"]["ignoreCompareQuantity"] is True
    assert "changeFromQuantity" not in sent["variables"]["input"]["quantities"][0]
    assert shop.tokens.issued == 0
