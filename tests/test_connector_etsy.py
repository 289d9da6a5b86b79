"""The Etsy connector against the fake Etsy shop, through a real relay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fakes.etsy import FakeEtsy

from .marketplaces import audit_text, channel, dead_reasons, marketplace_config, send, settle, states, store_credentials


@pytest.fixture
async def etsy() -> AsyncIterator[FakeEtsy]:
    fake = FakeEtsy()
    await fake.start()
    yield fake
    await fake.stop()


async def start(start_relay, tmp_path: Path, etsy: FakeEtsy, refresh: str | None = None):
    config = marketplace_config(tmp_path / "state", channel("etsy", etsy.url, {"shop_id": str(etsy.shop_id)}))
    creds = {
        "keystring": etsy.keystring,
        "shared_secret": etsy.shared_secret,
        "refresh_token": refresh or etsy.refresh_token,
    }
    store_credentials(config, "main/etsy", creds)
    return await start_relay(config)


def puts(etsy: FakeEtsy) -> list[dict]:
    return [r.json for r in etsy.calls("/inventory", method="PUT")]


async def test_sets_one_variation_without_clobbering_the_others(start_relay, tmp_path: Path, etsy: FakeEtsy) -> None:
    """Only the asked SKU's quantity changes; its siblings keep quantity, price and properties."""
    etsy.add_listing({"TEE-S": 4, "TEE-M": 6, "TEE-L": 8})
    before = {sku: etsy.product(sku) for sku in ("TEE-S", "TEE-L")}
    r = await start(start_relay, tmp_path, etsy)
    await send(r, [("TEE-M", 2)])
    await settle(r)
    assert [etsy.quantity(s) for s in ("TEE-S", "TEE-M", "TEE-L")] == [4, 2, 8]
    for sku, product in before.items():
        after = etsy.product(sku)
        assert after["offerings"][0]["price"] == product["offerings"][0]["price"]
        assert after["property_values"][0]["value_ids"] == product["property_values"][0]["value_ids"]
    assert len(etsy.calls("/inventory", method="GET")) == 1 and len(puts(etsy)) == 1
    headers = etsy.calls("/inventory", method="PUT")[0].headers
    assert headers["x-api-key"] == f"{etsy.keystring}:{etsy.shared_secret}"


async def test_skus_of_one_listing_share_one_read_and_write(start_relay, tmp_path: Path, etsy) -> None:
    """Two SKUs of the same listing and one of another: two reads, two writes."""
    etsy.add_listing({"A-1": 1, "A-2": 1})
    etsy.add_listing({"B": 1})
    r = await start(start_relay, tmp_path, etsy)
    await send(r, [("A-1", 5), ("A-2", 7), ("B", 9)])
    await settle(r)
    assert [etsy.quantity(s) for s in ("A-1", "A-2", "B")] == [5, 7, 9]
    assert len(puts(etsy)) == 2


async def test_sold_out_listing_is_found_and_restocked(start_relay, tmp_path: Path, etsy) -> None:
    """The SKU scan covers sold-out listings too: restocking them is the point."""
    etsy.add_listing({"GONE": 0}, state="sold_out")
    r = await start(start_relay, tmp_path, etsy)
    await send(r, [("GONE", 3)])
    await settle(r)
    assert etsy.quantity("GONE") == 3


async def test_unknown_sku_and_shared_quantity_are_dead_lettered(start_relay, tmp_path: Path, etsy) -> None:
    """An unlisted SKU and a variation whose listing has one quantity for all fail permanently, readably."""
    etsy.add_listing({"X-1": 2, "X-2": 2}, quantity_varies=False)
    etsy.add_listing({"OK": 1})
    r = await start(start_relay, tmp_path, etsy)
    await send(r, [("X-1", 5), ("NOPE", 1), ("OK", 4)])
    await settle(r)
    assert await states(r) == {"X-1": "dead", "NOPE": "dead", "OK": "delivered"}
    reasons = await dead_reasons(r)
    assert reasons["NOPE"] == f"SKU NOPE is not listed on Etsy shop {etsy.shop_id}"
    assert "one quantity for all its variations" in reasons["X-1"]
    assert etsy.quantity("X-1") == 2 and etsy.quantity("OK") == 4


async def test_429_honours_retry_after_and_remaining_headers(start_relay, tmp_path: Path, etsy) -> None:
    """A 429 is retried after its retry-after; the budget records the throttle."""
    etsy.add_listing({"A": 1})
    r = await start(start_relay, tmp_path, etsy)
    etsy.fail_next(1, 429, {"retry-after": "0", "x-remaining-this-second": "0"}, {"error": "quota"}, method="PUT")
    await send(r, [("A", 6)])
    await settle(r)
    assert etsy.quantity("A") == 6
    assert r.relay.workers[("main", "etsy")].connector.budget.throttles == 1


async def test_expired_token_refresh_and_refused_refresh(start_relay, tmp_path: Path, etsy) -> None:
    """A 401 refreshes once; a refused refresh token pauses the channel and leaks nothing."""
    etsy.add_listing({"A": 1})
    r = await start(start_relay, tmp_path, etsy)
    await send(r, [("A", 2)])
    await settle(r)
    etsy.tokens.expire_all()
    etsy.tokens.revoke_refresh_tokens()
    await send(r, [("A", 3)], version=2)
    await r.drain()
    worker = r.relay.workers[("main", "etsy")]
    assert worker.circuit.state != "closed" and "Etsy refused to issue an access token" in worker.circuit.reason
    assert etsy.quantity("A") == 2
    text = await audit_text(r)
    assert etsy.refresh_token not in text and etsy.shared_secret not in text


async def test_expired_token_is_refreshed_and_the_retry_succeeds(start_relay, tmp_path: Path, etsy) -> None:
    """An access token that expired between two pushes: the 401 gets one new token and the same update goes through."""
    etsy.add_listing({"A": 1})
    r = await start(start_relay, tmp_path, etsy)
    await send(r, [("A", 2)])
    await settle(r)
    issued = etsy.tokens.issued
    etsy.tokens.expire_all()
    await send(r, [("A", 5)], version=2)
    await settle(r)
    assert etsy.quantity("A") == 5
    assert etsy.tokens.issued == issued + 1, "exactly one refresh"
    assert await states(r) == {"A": "delivered"}
    assert r.relay.workers[("main", "etsy")].circuit.state == "closed"
