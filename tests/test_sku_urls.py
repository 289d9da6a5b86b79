"""SKUs in URLs: every connector that puts a SKU in a query string or a path sends it percent-encoded as the
API documents, and the fake marketplaces decode it strictly (RFC 3986: ``%XX`` only, a ``+`` is a plus), as
the real servers do, so ``A B`` and ``A+B`` stay two SKUs.

- Walmart ``PUT``/``GET /v3/inventory?sku=``: "reserved characters percent-encoded, a space as %20"
  (developer.walmart.com update-single-item-inventory; marketplaces.md section 5).
- eBay ``GET /offer?sku=`` (getOffers, a query parameter in sell_inventory_v1_oas3.json).
- Amazon ``/listings/2021-08-01/items/{sellerId}/{sku}``: "the SKU must be URL-encoded" (marketplaces.md
  section 3), one path segment, so a ``/`` in it is ``%2F``.

Etsy and TikTok put only their own numeric ids in paths, and Shopify sends SKUs in a GraphQL body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yarl

from fakes.amazon import FakeAmazon
from fakes.common import strict_query
from fakes.ebay import FakeEbay
from fakes.walmart import FakeWalmart
from relay.delivery.outbound import request_url

from .marketplaces import channel, marketplace_config, send, settle, states, store_credentials

SKUS = ["A/B 1+2", "A B", "A+B", "x:y&z=1", "#5 100%", "Größe ü"]
QUANTITIES = {sku: n + 3 for n, sku in enumerate(SKUS)}
UNRESERVED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%")


def encoded_sku(raw_path: str) -> str:
    """The ``sku=`` value of a request line's query, as it came over the wire."""
    raw_query = raw_path.partition("?")[2]
    (value,) = [part[4:] for part in raw_query.split("&") if part.startswith("sku=")]
    return value


@pytest.fixture
async def walmart() -> AsyncIterator[FakeWalmart]:
    fake = FakeWalmart(feed_seconds=0.0)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def ebay() -> AsyncIterator[FakeEbay]:
    fake = FakeEbay()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def amazon() -> AsyncIterator[FakeAmazon]:
    fake = FakeAmazon(feed_seconds=0.0)
    await fake.start()
    yield fake
    await fake.stop()


def test_query_values_are_percent_encoded_as_rfc_3986_has_it() -> None:
    """A space is %20 and a + is %2B, every reserved character is escaped, and yarl keeps it as built."""
    url = request_url("http://h/v3/inventory", {"sku": "A/B 1+2", "shipNode": "n:1"})
    assert url.raw_query_string == "sku=A%2FB%201%2B2&shipNode=n%3A1"
    assert str(url) == "http://h/v3/inventory?sku=A%2FB%201%2B2&shipNode=n%3A1"
    assert request_url("http://h/x?a=1", {"b": "ü#%"}).raw_query_string == "a=1&b=%C3%BC%23%25"
    assert request_url("http://h/items/A%2FB").raw_path == "/items/A%2FB"  # a quoted path is not re-encoded
    for sku in SKUS:
        assert strict_query(request_url("http://h/", {"sku": sku}).raw_query_string) == {"sku": sku}


async def test_fakes_decode_a_plus_as_a_plus_and_refuse_a_bad_escape(walmart: FakeWalmart) -> None:
    """The fakes read queries as Walmart's server does: ``+`` is not a space, ``%zz`` is a 400."""
    walmart.add_items({"A+B": 1, "A B": 2})
    token, _ = walmart.tokens.issue()
    headers = {"WM_SEC.ACCESS_TOKEN": token, "WM_SVC.NAME": "Walmart Marketplace", "WM_QOS.CORRELATION_ID": "c"}
    async with aiohttp.ClientSession() as session:
        for raw, amount in (("A+B", 1), ("A%2BB", 1), ("A%20B", 2)):
            url = yarl.URL(f"{walmart.url}/v3/inventory?sku={raw}", encoded=True)
            async with session.get(url, headers=headers) as response:
                assert response.status == 200
                assert (await response.json())["quantity"]["amount"] == amount
        async with session.get(yarl.URL(f"{walmart.url}/v3/inventory?sku=A%zzB", encoded=True)) as response:
            assert response.status == 400


async def test_walmart_gets_skus_percent_encoded(start_relay, tmp_path: Path, walmart: FakeWalmart) -> None:
    """PUT and read-back GET /v3/inventory?sku= carry each SKU with %20 for a space and %2B for a +."""
    walmart.add_items(dict.fromkeys(SKUS, 0))
    config = marketplace_config(tmp_path / "state", channel("walmart", walmart.url, {"ship_node": "node 1"}))
    store_credentials(config, "main/walmart", {"client_id": walmart.client_id, "client_secret": walmart.client_secret})
    r = await start_relay(config)
    await send(r, list(QUANTITIES.items()))
    await settle(r)
    assert await states(r) == dict.fromkeys(SKUS, "delivered")
    assert walmart.inventory == QUANTITIES
    puts = walmart.calls("/v3/inventory", method="PUT")
    assert sorted(call.query["sku"] for call in puts) == sorted(SKUS)
    for call in puts:
        assert call.query == {"sku": call.json["sku"], "shipNode": "node 1"}
        assert set(encoded_sku(call.raw_path)) <= UNRESERVED, call.raw_path
    assert encoded_sku(next(c.raw_path for c in puts if c.json["sku"] == "A/B 1+2")) == "A%2FB%201%2B2"
    assert "shipNode=node%201" in puts[0].raw_path

    shown = await r.relay.workers[("main", "walmart")].connector.read([*SKUS, "A  B"])
    assert shown == {**QUANTITIES, "A  B": None}
    gets = walmart.calls("/v3/inventory", method="GET")
    assert sorted(call.query["sku"] for call in gets) == sorted([*SKUS, "A  B"])


async def test_ebay_offer_lookup_gets_skus_percent_encoded(start_relay, tmp_path: Path, ebay: FakeEbay) -> None:
    """GET /offer?sku= finds each SKU's offer, so its availableQuantity is set with the item's."""
    for sku in SKUS:
        ebay.add_item(sku, 1, offer_quantity=1)
    config = marketplace_config(tmp_path / "state", channel("ebay", ebay.url, {"update_offers": "yes"}))
    creds = {"client_id": ebay.client_id, "client_secret": ebay.client_secret, "refresh_token": ebay.refresh_token}
    store_credentials(config, "main/ebay", creds)
    r = await start_relay(config)
    await send(r, list(QUANTITIES.items()))
    await settle(r)
    assert {sku: ebay.shown(sku) for sku in SKUS} == QUANTITIES  # the offer's share moved too
    lookups = ebay.calls("/sell/inventory/v1/offer", method="GET")
    assert sorted(call.query["sku"] for call in lookups) == sorted(SKUS)
    for call in lookups:
        assert set(encoded_sku(call.raw_path)) <= UNRESERVED, call.raw_path


async def test_amazon_gets_each_sku_as_one_path_segment(start_relay, tmp_path: Path, amazon: FakeAmazon) -> None:
    """PATCH and GET /listings/2021-08-01/items/{sellerId}/{sku}: the SKU is one segment, every reserved
    character escaped (a + too: it is a literal + in a path, but Amazon's SDKs escape it)."""
    amazon.add_listings(dict.fromkeys(SKUS, 0))
    account = {
        "seller_id": amazon.seller_id,
        "marketplace_id": amazon.marketplace_id,
        "lwa_url": f"{amazon.url}/auth/o2/token",
    }
    config = marketplace_config(tmp_path / "state", channel("amazon", amazon.url, account))
    creds = {
        "client_id": amazon.client_id,
        "client_secret": amazon.client_secret,
        "refresh_token": amazon.refresh_token,
    }
    store_credentials(config, "main/amazon", creds)
    r = await start_relay(config)
    await send(r, list(QUANTITIES.items()))
    await settle(r)
    assert amazon.listings == QUANTITIES
    prefix = f"/listings/2021-08-01/items/{amazon.seller_id}/"
    patches = amazon.calls(prefix, method="PATCH")  # a throttled call is sent again: count SKUs, not calls
    assert {call.path.removeprefix(prefix) for call in patches} == set(SKUS)
    for call in patches:
        segment = call.raw_path.partition("?")[0].removeprefix(prefix)
        assert set(segment) <= UNRESERVED, call.raw_path
    assert any(c.raw_path.startswith(f"{prefix}A%2FB%201%2B2?") for c in patches)
    assert await r.relay.workers[("main", "amazon")].connector.read(SKUS) == QUANTITIES
