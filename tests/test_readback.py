"""Read-back (reconciliation): each marketplace connector's ``read`` against its fake, on 127.0.0.1.

Each read is made as the reconciler makes it: the rate budget is charged with ``read_cost`` first,
then ``read`` runs; the fakes count what the read really spent, which must not exceed that.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fakes.amazon import FakeAmazon
from fakes.ebay import FakeEbay
from fakes.etsy import FakeEtsy
from fakes.shop import FakeShop
from fakes.shopify import FakeShopify
from fakes.tiktok import FakeTikTok
from fakes.walmart import FakeWalmart
from relay.cli.client import SignedClient, stock_event
from relay.config import ChannelConfig, RateLimit, ReconcileConfig
from relay.connectors import build
from relay.connectors.amazon import AmazonConnector
from relay.connectors.base import Connector, Update
from relay.connectors.sandbox import SandboxConnector
from relay.errors import QuotaHold, TransientDeliveryError
from relay.repair.readback import UNREPORTED_GRACE_SECONDS
from relay.storage import views
from relay.vault import Vault

from .conftest import SITE_SECRET, RunningRelay, StartRelay
from .marketplaces import channel, marketplace_config, settle, store_credentials
from .spec_files import load, spec_path, swagger_validator
from .test_specs_shopify_ebay_etsy import check_graphql, openapi_validator, request_schema

VAULT_KEY = "bXl0ZXN0dmF1bHRrZXlteXRlc3R2YXVsdGtleTAxMjM="

Make = Callable[..., Connector]


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Make]:
    """Build a real connector for a fake marketplace, its credentials in a real vault."""
    session = aiohttp.ClientSession()
    vault = Vault(tmp_path / "vault", [VAULT_KEY])

    def run(kind: str, url: str, account: dict[str, str], creds: dict[str, str]) -> Connector:
        vault.write(f"main/{kind}", creds)
        config = ChannelConfig(name=kind, type=kind, api_base=url, account=account, rate=RateLimit(1000, 1000))
        return build("main", config, session, vault)

    yield run
    await session.close()


def updates(*items: tuple[str, int]) -> list[Update]:
    return [Update(sku, sku, qty, f"evt-{sku}-{qty}", 1, 1, f"key-{sku}-{qty}") for sku, qty in items]


async def read(connector: Connector, skus: Sequence[str]) -> Mapping[str, int | None]:
    """What the reconciler does: charge ``read_cost``, then read."""
    assert 0 < len(skus) <= connector.read_batch_size
    await connector.read_budget.acquire(connector.read_cost(skus))
    return await connector.read(skus)


async def push(connector: Connector, *items: tuple[str, int]) -> None:
    results = await connector.push(updates(*items))
    assert all(r.error is None for r in results.values()), results


def graphql_bodies(shop: FakeShopify, field: str) -> list[dict[str, Any]]:
    return [r.json for r in shop.calls("graphql.json") if field in r.json["query"]]


# --- Shopify ------------------------------------------------------------------------------------------


@pytest.fixture
async def shop() -> AsyncIterator[FakeShopify]:
    fake = FakeShopify()
    await fake.start()
    yield fake
    await fake.stop()


def shopify(make: Make, shop: FakeShopify) -> Connector:
    creds = {"client_id": shop.client_id, "client_secret": shop.client_secret}
    return make("shopify", shop.url, {"shop": "demo", "location_id": "1"}, creds)


async def test_shopify_reads_what_it_pushed_and_an_edit_behind_its_back(make: Make, shop: FakeShopify) -> None:
    """After a push the read shows the pushed levels; after an admin edit, the edited one; an unknown SKU is None."""
    for sku in ("A", "B"):
        shop.add_variant(sku, quantity=1)
    connector = shopify(make, shop)
    await push(connector, ("A", 5), ("B", 7))
    lookups = len(graphql_bodies(shop, "productVariants"))
    assert await read(connector, ["A", "B"]) == {"A": 5, "B": 7}
    assert len(graphql_bodies(shop, "productVariants")) == lookups, "the push's SKU → item cache is reused"
    shop.set_quantity("B", 2)
    assert await read(connector, ["A", "B", "GHOST"]) == {"A": 5, "B": 2, "GHOST": None}
    assert len(graphql_bodies(shop, "nodes(")) == 2


async def test_shopify_read_spends_no_more_points_than_read_cost(make: Make, shop: FakeShopify) -> None:
    """A cold read (lookup + level query) and a warm one (level query only) each stay within read_cost."""
    for sku in ("A", "B", "C"):
        shop.add_variant(sku, quantity=3)
    connector = shopify(make, shop)
    for skus in (["A", "B", "C", "X"], ["A", "B", "C"]):
        cost, before = connector.read_cost(skus), shop.spent
        await read(connector, skus)
        assert 0 < shop.spent - before <= cost
    assert connector.read_cost(["A", "B", "C"]) < connector.read_cost(["A", "B", "C", "X"])


async def test_shopify_not_stocked_at_the_location_is_none(make: Make, shop: FakeShopify) -> None:
    """An item with no level at the configured location shows nothing there: None."""
    shop.add_variant("A", quantity=4, stocked=False)
    shop.add_variant("B", quantity=4)
    assert await read(shopify(make, shop), ["A", "B"]) == {"A": None, "B": 4}


async def test_shopify_read_throttled(make: Make, shop: FakeShopify) -> None:
    """A 429 with Retry-After and a THROTTLED answer are both transient, with a wait, and slow the budget."""
    shop.add_variant("A", quantity=1)
    connector = shopify(make, shop)
    await read(connector, ["A"])  # warm the cache: the next calls are the level query itself
    shop.fail_next(1, 429, headers={"Retry-After": "3"}, path="graphql.json")
    with pytest.raises(TransientDeliveryError) as caught:
        await connector.read(["A"])
    assert caught.value.retry_after == 3.0
    throttled = {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}
    shop.fail_next(1, 200, body=throttled, path="graphql.json")
    with pytest.raises(TransientDeliveryError):
        await connector.read(["A"])
    assert connector.budget.throttles == 2


async def test_shopify_read_refreshes_an_expired_token_once(make: Make, shop: FakeShopify) -> None:
    """A 401 on an expired token: one new token, then the read succeeds."""
    shop.add_variant("A", quantity=6)
    connector = shopify(make, shop)
    assert await read(connector, ["A"]) == {"A": 6}
    issued = shop.tokens.issued
    shop.tokens.expire_all()
    assert await read(connector, ["A"]) == {"A": 6}
    assert shop.tokens.issued == issued + 1


async def test_shopify_read_query_matches_the_admin_schema(make: Make, shop: FakeShopify) -> None:
    """The level query validates against Shopify's SDL, with its variables, as sent."""
    shop.add_variant("A")
    await read(shopify(make, shop), ["A"])
    bodies = graphql_bodies(shop, "nodes(")
    assert len(bodies) == 1
    check_graphql(bodies[0]["query"], bodies[0]["variables"])
    with pytest.raises(AssertionError):
        check_graphql(bodies[0]["query"].replace("quantities(", "quantity("), bodies[0]["variables"])


# --- eBay ---------------------------------------------------------------------------------------------


@pytest.fixture
async def ebay() -> AsyncIterator[FakeEbay]:
    fake = FakeEbay()
    await fake.start()
    yield fake
    await fake.stop()


def ebay_connector(make: Make, ebay: FakeEbay) -> Connector:
    creds = {"client_id": ebay.client_id, "client_secret": ebay.client_secret, "refresh_token": ebay.refresh_token}
    return make("ebay", ebay.url, {}, creds)


async def test_ebay_reads_what_it_pushed_and_an_edit_behind_its_back(make: Make, ebay: FakeEbay) -> None:
    """bulk_get_inventory_item shows the pushed quantities, then a seller's edit; a SKU eBay lacks is None."""
    ebay.add_item("A", 1)
    ebay.add_item("B", 1)
    connector = ebay_connector(make, ebay)
    await push(connector, ("A", 4), ("B", 9))
    assert await read(connector, ["A", "B"]) == {"A": 4, "B": 9}
    ebay.items["A"] = 0  # edited in Seller Hub
    assert await read(connector, ["A", "B", "GHOST"]) == {"A": 0, "B": 9, "GHOST": None}
    assert [len(r.json["requests"]) for r in ebay.calls("bulk_get_inventory_item")] == [2, 3]


async def test_ebay_read_makes_one_call_per_25_skus(make: Make, ebay: FakeEbay) -> None:
    """25 SKUs are one call, as read_cost says; a system error on one SKU makes the read transient."""
    skus = [f"S{i}" for i in range(25)]
    for sku in skus:
        ebay.add_item(sku, 2)
    connector = ebay_connector(make, ebay)
    assert connector.read_batch_size == 25 and connector.read_cost(skus) == 1.0
    assert set((await read(connector, skus)).values()) == {2}
    assert len(ebay.calls("bulk_get_inventory_item")) == 1
    ebay.item_failures["S3"] = (500, 25001)
    with pytest.raises(TransientDeliveryError):
        await read(connector, skus)


async def test_ebay_read_throttled(make: Make, ebay: FakeEbay) -> None:
    """A 429 (errorId 2001) is transient, with Retry-After when eBay sends one and eBay's usual pause otherwise."""
    ebay.add_item("A", 1)
    connector = ebay_connector(make, ebay)
    ebay.fail_next(1, 429, headers={"Retry-After": "7"}, body={"errors": [{"errorId": 2001}]}, path="bulk_get")
    with pytest.raises(TransientDeliveryError) as caught:
        await connector.read(["A"])
    assert caught.value.retry_after == 7.0
    ebay.fail_next(1, 429, body={"errors": [{"errorId": 2001}]}, path="bulk_get")
    with pytest.raises(TransientDeliveryError) as caught:
        await connector.read(["A"])
    assert caught.value.retry_after == 60.0
    assert connector.budget.throttles == 2


async def test_ebay_read_refreshes_an_expired_token_once(make: Make, ebay: FakeEbay) -> None:
    """An expired user token: one refresh grant, then the read succeeds."""
    ebay.add_item("A", 3)
    connector = ebay_connector(make, ebay)
    assert await read(connector, ["A"]) == {"A": 3}
    ebay.tokens.expire_all()
    assert await read(connector, ["A"]) == {"A": 3}
    assert len(ebay.calls("/oauth2/token")) == 2


async def test_ebay_read_matches_the_openapi_schema(make: Make, ebay: FakeEbay) -> None:
    """The request validates against BulkGetInventoryItem, the fake's answer against BulkGetInventoryItemResponse."""
    relative = "ebay/sell_inventory_v1_oas3.json"
    spec = json.loads(spec_path(relative).read_text())
    request_validator = openapi_validator(relative, request_schema(spec, "/bulk_get_inventory_item", "post"))
    answer_validator = openapi_validator(relative, {"$ref": "#/components/schemas/BulkGetInventoryItemResponse"})
    ebay.add_item("A", 5)
    await read(ebay_connector(make, ebay), ["A", "GHOST"])
    body = ebay.calls("bulk_get_inventory_item")[0].json
    token, _ = ebay.tokens.issue()
    url, headers = f"{ebay.url}/sell/inventory/v1/bulk_get_inventory_item", {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session, session.post(url, json=body, headers=headers) as response:
        answer = await response.json()
    assert list(request_validator.iter_errors(body)) == []
    assert list(answer_validator.iter_errors(answer)) == []
    assert list(request_validator.iter_errors({"requests": [{"sku": 5}]})), "the validator must be able to refuse"


# --- Amazon -------------------------------------------------------------------------------------------


@pytest.fixture
async def amazon() -> AsyncIterator[FakeAmazon]:
    fake = FakeAmazon()
    await fake.start()
    yield fake
    await fake.stop()


def amazon_connector(make: Make, amazon: FakeAmazon) -> Connector:
    account = {
        "seller_id": amazon.seller_id,
        "marketplace_id": amazon.marketplace_id,
        "lwa_url": f"{amazon.url}/auth/o2/token",
    }
    creds = {
        "client_id": amazon.client_id,
        "client_secret": amazon.client_secret,
        "refresh_token": amazon.refresh_token,
    }
    return make("amazon", amazon.url, account, creds)


def item_reads(amazon: FakeAmazon) -> list[Any]:
    return amazon.calls("/listings/2021-08-01/items/", method="GET")


async def test_amazon_reads_what_it_pushed_and_an_edit_behind_its_back(make: Make, amazon: FakeAmazon) -> None:
    """getListingsItem shows the patched quantity, then a Seller Central edit; an unlisted SKU (404) is None."""
    amazon.add_listings({"A": 1, "B/1": 1})
    connector = amazon_connector(make, amazon)
    await push(connector, ("A", 6), ("B/1", 2))
    assert await read(connector, ["A", "B/1"]) == {"A": 6, "B/1": 2}
    amazon.listings["A"] = 11
    assert await read(connector, ["A", "B/1", "GHOST"]) == {"A": 11, "B/1": 2, "GHOST": None}
    calls = item_reads(amazon)
    assert len(calls) == 5 and {c.query["includedData"] for c in calls} == {"fulfillmentAvailability"}
    assert "/B%2F1" in str(connector.item_path("B/1"))


async def test_amazon_read_is_one_call_per_sku_on_its_own_budget(make: Make, amazon: FakeAmazon) -> None:
    """read_cost is the number of SKUs, the read makes exactly that many calls, on getListingsItem's budget."""
    skus = [f"S{i}" for i in range(10)]
    amazon.add_listings(dict.fromkeys(skus, 3))
    connector = amazon_connector(make, amazon)
    assert connector.read_batch_size == 10 and connector.read_cost(skus) == 10.0
    assert set((await read(connector, skus)).values()) == {3}
    assert len(item_reads(amazon)) == 10
    assert isinstance(connector, AmazonConnector)
    assert connector.listing_budget.bucket.wait_time(1.0) > 0, "the 10 calls were charged to getListingsItem's budget"
    assert connector.budget.bucket.wait_time(1.0) == 0, "and none to the patches' budget"


async def test_amazon_read_throttled(make: Make, amazon: FakeAmazon) -> None:
    """A 429 QuotaExceeded (no Retry-After) is transient, with a wait, and slows getListingsItem's budget."""
    amazon.add_listings({"A": 1})
    connector = amazon_connector(make, amazon)
    body = {"errors": [{"code": "QuotaExceeded", "message": "You exceeded your quota for the requested resource."}]}
    amazon.fail_next(1, 429, body=body, path="/listings/", method="GET")
    with pytest.raises(TransientDeliveryError) as caught:
        await connector.read(["A"])
    assert caught.value.retry_after is not None and caught.value.retry_after > 0
    assert isinstance(connector, AmazonConnector) and connector.listing_budget.throttles == 1


async def test_amazon_read_refreshes_an_expired_token_once(make: Make, amazon: FakeAmazon) -> None:
    """Amazon's 403 for an expired token: one LWA refresh, then the read succeeds."""
    amazon.add_listings({"A": 8})
    connector = amazon_connector(make, amazon)
    assert await read(connector, ["A"]) == {"A": 8}
    amazon.tokens.expire_all()
    assert await read(connector, ["A"]) == {"A": 8}
    assert len(amazon.calls("/auth/o2/token")) == 2


async def test_amazon_read_matches_the_listings_items_model(make: Make, amazon: FakeAmazon) -> None:
    """The query parameters are getListingsItem's (includedData from its enum); the fake's answer is an Item."""
    amazon.add_listings({"A": 4})
    await read(amazon_connector(make, amazon), ["A"])
    call = item_reads(amazon)[0]
    operation = load("amazon-sp-api/listingsItems_2021-08-01.json")["paths"][
        "/listings/2021-08-01/items/{sellerId}/{sku}"
    ]["get"]
    parameters = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
    assert set(call.query) <= set(parameters)
    assert all(call.query.get(name) for name, p in parameters.items() if p.get("required"))
    assert set(call.query["includedData"].split(",")) <= set(parameters["includedData"]["items"]["enum"])
    token, _ = amazon.tokens.issue()
    url = f"{amazon.url}{call.path}"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, params=call.query, headers={"x-amz-access-token": token}) as response,
    ):
        answer = await response.json()
    validator = swagger_validator("amazon-sp-api/listingsItems_2021-08-01.json", "Item")
    assert list(validator.iter_errors(answer)) == [] and answer["fulfillmentAvailability"][0]["quantity"] == 4
    assert list(validator.iter_errors({"fulfillmentAvailability": [{"quantity": 1}]})), "must be able to refuse"


# --- Walmart ------------------------------------------------------------------------------------------


@pytest.fixture
async def walmart() -> AsyncIterator[FakeWalmart]:
    fake = FakeWalmart()
    await fake.start()
    yield fake
    await fake.stop()


def walmart_connector(make: Make, walmart: FakeWalmart, account: dict[str, str] | None = None) -> Connector:
    creds = {"client_id": walmart.client_id, "client_secret": walmart.client_secret}
    return make("walmart", walmart.url, account or {}, creds)


def inventory_reads(walmart: FakeWalmart) -> list[Any]:
    return walmart.calls("/v3/inventory", method="GET")


async def test_walmart_reads_what_it_pushed_and_an_edit_behind_its_back(make: Make, walmart: FakeWalmart) -> None:
    """GET /v3/inventory shows the pushed amount, then a Seller Center edit; an unlisted SKU (404) is None."""
    walmart.add_items({"TOY-1": 0, "TOY-2": 0})
    connector = walmart_connector(make, walmart, {"ship_node": "10001"})
    await push(connector, ("TOY-1", 12), ("TOY-2", 3))
    assert await read(connector, ["TOY-1", "TOY-2"]) == {"TOY-1": 12, "TOY-2": 3}
    walmart.inventory["TOY-2"] = 40
    assert await read(connector, ["TOY-1", "TOY-2", "GHOST"]) == {"TOY-1": 12, "TOY-2": 40, "GHOST": None}
    calls = inventory_reads(walmart)
    assert len(calls) == 5 == 2 + connector.read_cost(["TOY-1", "TOY-2", "GHOST"])
    assert all(c.query.get("shipNode") == "10001" and c.headers.get("wm_sec.access_token") for c in calls)
    assert len({c.headers["wm_qos.correlation_id"] for c in calls}) == 5


async def test_walmart_read_throttled(make: Make, walmart: FakeWalmart) -> None:
    """A 429 with Retry-After is transient with that wait and slows the budget."""
    walmart.add_items({"A": 1})
    connector = walmart_connector(make, walmart)
    walmart.fail_next(1, 429, headers={"Retry-After": "4"}, path="/v3/inventory", method="GET")
    with pytest.raises(TransientDeliveryError) as caught:
        await connector.read(["A"])
    assert caught.value.retry_after == 4.0 and connector.budget.throttles == 1


async def test_walmart_read_gets_a_new_token_once_when_it_expired(make: Make, walmart: FakeWalmart) -> None:
    """A 401 on an expired 15-minute token: one new client-credentials token, then the read succeeds."""
    walmart.add_items({"A": 5})
    connector = walmart_connector(make, walmart)
    assert await read(connector, ["A"]) == {"A": 5}
    walmart.tokens.expire_all()
    assert await read(connector, ["A"]) == {"A": 5}
    assert len(walmart.calls("/v3/token")) == 2


# --- Etsy ---------------------------------------------------------------------------------------------


@pytest.fixture
async def etsy() -> AsyncIterator[FakeEtsy]:
    fake = FakeEtsy(qps=100.0)  # the channel is configured far faster than 10/s: the fake must not be the limit
    await fake.start()
    yield fake
    await fake.stop()


def etsy_connector(make: Make, etsy: FakeEtsy) -> Connector:
    creds = {"keystring": etsy.keystring, "shared_secret": etsy.shared_secret, "refresh_token": etsy.refresh_token}
    return make("etsy", etsy.url, {"shop_id": str(etsy.shop_id)}, creds)


def batch_reads(etsy: FakeEtsy) -> list[Any]:
    return etsy.calls("/listings/batch/inventory")


async def test_etsy_reads_what_it_pushed_and_an_edit_behind_its_back(make: Make, etsy: FakeEtsy) -> None:
    """One batch read covers both listings and shows the pushed quantities, then a seller's edit; unknown is None."""
    etsy.add_listing({"S": 1, "M": 2})
    etsy.add_listing({"MUG": 5})
    connector = etsy_connector(make, etsy)
    await push(connector, ("M", 9), ("MUG", 3))
    scans = len(etsy.calls("/shops/"))
    assert await read(connector, ["S", "M", "MUG"]) == {"S": 1, "M": 9, "MUG": 3}
    etsy.set_quantity("S", 0)
    assert await read(connector, ["S", "M", "MUG", "GHOST"]) == {"S": 0, "M": 9, "MUG": 3, "GHOST": None}
    assert len(etsy.calls("/shops/")) == scans, "the push's SKU → listing map is reused (no rescan within 5 min)"
    assert [len(c.query["listing_ids"].split(",")) for c in batch_reads(etsy)] == [2, 2]


async def test_etsy_cold_read_stays_within_read_cost(make: Make, etsy: FakeEtsy) -> None:
    """A first read scans the shop (one page per state) and reads once: no more calls than read_cost said."""
    etsy.add_listing({"A": 4})
    connector = etsy_connector(make, etsy)
    cost = connector.read_cost(["A", "GHOST"])
    assert await read(connector, ["A", "GHOST"]) == {"A": 4, "GHOST": None}
    made = len(etsy.calls("/v3/application/"))  # the token grant is on /v3/public/
    assert made == cost == 6.0
    assert connector.read_cost(["A"]) == 1.0


async def test_etsy_listing_gone_fails_the_read_once_then_it_is_none(make: Make, etsy: FakeEtsy) -> None:
    """A deleted listing makes Etsy 404 the whole batch: transient; the next read rescans and answers None."""
    gone = etsy.add_listing({"OLD": 1})
    etsy.add_listing({"KEEP": 2})
    connector = etsy_connector(make, etsy)
    assert await read(connector, ["OLD", "KEEP"]) == {"OLD": 1, "KEEP": 2}
    del etsy.inventories[gone], etsy.states[gone]
    with pytest.raises(TransientDeliveryError):
        await read(connector, ["OLD", "KEEP"])
    assert await read(connector, ["OLD", "KEEP"]) == {"OLD": None, "KEEP": 2}


async def test_etsy_read_throttled(make: Make, etsy: FakeEtsy) -> None:
    """A 429 for the second (retry-after 1) is transient with that wait and slows the budget; one for the day
    (retry-after an hour) holds the connector instead: the budget keeps its rate, and nothing is called meanwhile."""
    etsy.add_listing({"A": 4})
    connector = etsy_connector(make, etsy)
    await read(connector, ["A"])
    etsy.fail_next(1, 429, headers={"retry-after": "1"}, body={"error": "quota"}, path="/batch/inventory")
    with pytest.raises(TransientDeliveryError) as caught:
        await connector.read(["A"])
    assert caught.value.retry_after == 1.0 and connector.budget.throttles == 1
    assert connector.hold() is None
    etsy.fail_next(1, 429, headers={"retry-after": "3600"}, body={"error": "daily quota"}, path="/batch/inventory")
    with pytest.raises(QuotaHold) as held:
        await connector.read(["A"])
    assert 3590 < (held.value.retry_after or 0) <= 3600 and connector.budget.throttles == 1
    calls = len(etsy.requests)
    with pytest.raises(QuotaHold):
        await connector.read(["A"])
    assert len(etsy.requests) == calls and connector.hold() is not None


async def test_etsy_read_refreshes_an_expired_token_once(make: Make, etsy: FakeEtsy) -> None:
    """A 401 on an expired token: one refresh grant, then the read succeeds."""
    etsy.add_listing({"A": 4})
    connector = etsy_connector(make, etsy)
    assert await read(connector, ["A"]) == {"A": 4}
    etsy.tokens.expire_all()
    assert await read(connector, ["A"]) == {"A": 4}
    assert len(etsy.calls("/oauth/token")) == 2


async def test_etsy_batch_answer_matches_the_openapi_inventory_schema(make: Make, etsy: FakeEtsy) -> None:
    """The copied spec predates the batch read; each listing's inventory in the answer is a ListingInventory."""
    relative = "etsy/etsy-v3-openapi.json"
    spec = json.loads(spec_path(relative).read_text())
    assert "/v3/application/listings/batch/inventory" not in spec["paths"], (
        "the spec now has the batch inventory read: check the request's parameters and answer against it"
    )
    validator = openapi_validator(relative, {"$ref": "#/components/schemas/ListingInventory"})
    etsy.add_listing({"S": 1, "M": 2})
    connector = etsy_connector(make, etsy)
    await read(connector, ["S"])
    listing_ids = batch_reads(etsy)[0].query["listing_ids"]
    token, _ = etsy.tokens.issue()
    headers = {"x-api-key": f"{etsy.keystring}:{etsy.shared_secret}", "Authorization": f"Bearer {token}"}
    url = f"{etsy.url}/v3/application/listings/batch/inventory"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, params={"listing_ids": listing_ids}, headers=headers) as response,
    ):
        answer = await response.json()
    for result in answer["results"]:
        assert list(validator.iter_errors(result["inventory"])) == []
    assert list(validator.iter_errors({"products": [{"offerings": "x"}]})), "the validator must be able to refuse"


# --- TikTok Shop --------------------------------------------------------------------------------------


@pytest.fixture
async def tiktok() -> AsyncIterator[FakeTikTok]:
    fake = FakeTikTok(rate=1000.0)
    await fake.start()
    yield fake
    await fake.stop()


def tiktok_connector(make: Make, tiktok: FakeTikTok, **account: str) -> Connector:
    creds = {"app_key": tiktok.app_key, "app_secret": tiktok.app_secret, "refresh_token": tiktok.refresh_token}
    base = {"shop_cipher": tiktok.shop_cipher, "auth_base": tiktok.url}
    return make("tiktok", tiktok.url, {**base, **account}, creds)


def product_reads(tiktok: FakeTikTok) -> list[Any]:
    return tiktok.calls("/product/202309/products/", method="GET")


async def test_tiktok_reads_what_it_pushed_and_an_edit_behind_its_back(make: Make, tiktok: FakeTikTok) -> None:
    """Get Product shows the pushed quantity in the warehouse the push writes, then a Seller Center edit; unknown: None."""
    tiktok.add_product({"TEE-S": {"W1": 0}, "TEE-M": {"W1": 0, "W2": 5}})
    tiktok.add_product({"MUG": {"W1": 1}})
    connector = tiktok_connector(make, tiktok, warehouse_id="W1")
    await push(connector, ("TEE-S", 4), ("TEE-M", 6), ("MUG", 2))
    searches = len(tiktok.calls("/products/search"))
    assert await read(connector, ["TEE-S", "TEE-M", "MUG"]) == {"TEE-S": 4, "TEE-M": 6, "MUG": 2}
    tiktok.set_stock("TEE-M", "W1", 1)
    tiktok.set_stock("TEE-M", "W2", 50)  # another warehouse's stock is not the shop's
    assert await read(connector, ["TEE-S", "TEE-M", "GHOST"]) == {"TEE-S": 4, "TEE-M": 1, "GHOST": None}
    assert len(tiktok.calls("/products/search")) == searches, "the push's SKU → product mapping is reused"
    assert len(product_reads(tiktok)) == 1 + 2 + 1  # the push's own read, then one Get Product per product and read
    assert tiktok.bad_signatures == 0


async def test_tiktok_read_calls_stay_within_read_cost(make: Make, tiktok: FakeTikTok) -> None:
    """Cold (cipher lookup + product search, no Get Product) and warm (one Get Product per product) reads."""
    tiktok.add_product({"A": {"W1": 3}, "B": {"W1": 4}})
    tiktok.add_product({"C": {"W1": 5}})
    connector = tiktok_connector(make, tiktok, shop_cipher="")
    skus = ["A", "B", "C"]
    for expected in (2.0, 2.0):
        cost, before = connector.read_cost(skus), len(tiktok.calls("/20230"))
        assert cost == expected
        assert await read(connector, skus) == {"A": 3, "B": 4, "C": 5}
        assert len(tiktok.calls("/20230")) - before == cost
    assert len(tiktok.calls("/products/search")) == 1 and len(product_reads(tiktok)) == 2


async def test_tiktok_several_warehouses_without_warehouse_id_read_as_their_sum(make: Make, tiktok: FakeTikTok) -> None:
    """A SKU in two warehouses with no account.warehouse_id (a push refuses it) reads as the total."""
    tiktok.add_product({"MUG": {"W1": 2, "W2": 3}})
    assert await read(tiktok_connector(make, tiktok), ["MUG"]) == {"MUG": 5}


async def test_tiktok_product_gone_fails_the_read_once_then_it_is_none(make: Make, tiktok: FakeTikTok) -> None:
    """A deleted product (12052048): transient; the next read rescans and answers None for its SKU."""
    gone = tiktok.add_product({"OLD": {"W1": 1}})
    tiktok.add_product({"KEEP": {"W1": 2}})
    connector = tiktok_connector(make, tiktok)
    assert await read(connector, ["OLD", "KEEP"]) == {"OLD": 1, "KEEP": 2}
    assert await read(connector, ["OLD", "KEEP"]) == {"OLD": 1, "KEEP": 2}  # warm: Get Product
    del tiktok.products[gone]
    with pytest.raises(TransientDeliveryError):
        await read(connector, ["OLD", "KEEP"])
    assert await read(connector, ["OLD", "KEEP"]) == {"OLD": None, "KEEP": 2}


async def test_tiktok_read_throttled(make: Make, tiktok: FakeTikTok) -> None:
    """An HTTP 429 is transient, with Retry-After when sent and a pause otherwise, and slows the budget."""
    tiktok.add_product({"A": {"W1": 1}})
    connector = tiktok_connector(make, tiktok)
    await read(connector, ["A"])
    body = {"code": 36009003, "message": "Too many requests.", "request_id": "X", "data": None}
    tiktok.fail_next(1, 429, headers={"Retry-After": "2"}, body=body, path="/products/", method="GET")
    with pytest.raises(TransientDeliveryError) as caught:
        await connector.read(["A"])
    assert caught.value.retry_after == 2.0
    tiktok.fail_next(1, 429, body=body, path="/products/", method="GET")
    with pytest.raises(TransientDeliveryError) as caught:
        await connector.read(["A"])
    assert caught.value.retry_after is not None and caught.value.retry_after >= 1.0
    assert connector.budget.throttles == 2


async def test_tiktok_read_refreshes_an_expired_token_once(make: Make, tiktok: FakeTikTok) -> None:
    """HTTP 401 code 105002 (expired token): one refresh, then the signed read succeeds."""
    tiktok.add_product({"A": {"W1": 7}})
    connector = tiktok_connector(make, tiktok)
    assert await read(connector, ["A"]) == {"A": 7}
    tiktok.tokens.expire_all()
    assert await read(connector, ["A"]) == {"A": 7}
    assert len(tiktok.calls("/api/v2/token/refresh")) == 2 and tiktok.bad_signatures == 0


# --- read-back never undoes a sale (issue 15, invariant 11) ------------------------------------------

SKU = "TS-RED-M"
EBAY_SALES_SECRET = "whsec_ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="


async def ebay_relay(
    tmp_path: Path,
    start_relay: StartRelay,
    ebay: FakeEbay,
    shop: FakeShop,
    sells: bool,
    clock: list[float],
    shop_url: bool = True,
) -> RunningRelay:
    """A relay with the fake eBay (read-back on, driven by hand) and a sandbox beside it; eBay's sales reach the
    relay through the sales route when ``sells``."""
    ebay.add_item(SKU, 0)
    extra = {"sales_secrets": (EBAY_SALES_SECRET,)} if sells else {}
    sandbox = ChannelConfig(name="sandbox", type="sandbox", batch_size=20, rate=RateLimit(200, 200))
    cfg = marketplace_config(tmp_path / "state", channel("ebay", ebay.url, {}, **extra))
    readback = ReconcileConfig(incremental_minutes=0, full_hour=None, readback_hours=1, readback_share=1.0)
    site = replace(
        cfg.sites[0],
        channels=(*cfg.sites[0].channels, sandbox),
        shop_url=shop.url if shop_url else "",
        reconcile=readback,
    )
    cfg = replace(cfg, sites=(site,))
    creds = {"client_id": ebay.client_id, "client_secret": ebay.client_secret, "refresh_token": ebay.refresh_token}
    store_credentials(cfg, "main/ebay", creds)
    r: RunningRelay = await start_relay(cfg, now=lambda: clock[0])
    assert (await r.client.send_events([stock_event(1, SKU, 5, shop.bump(1))]))[0] == 202
    await settle(r)
    assert ebay.items[SKU] == 5
    clock[0] += 1  # read-back finds its differences after the push
    return r


async def read_round(r: RunningRelay, name: str = "ebay") -> int:
    """One whole read-back round of a channel, as its worker runs it when nothing is due; returns how many differed."""
    readback = r.relay.workers[("main", name)].readback
    assert readback is not None
    differed = await readback.step()
    await readback.step()  # the end of the round
    return differed


async def readback_audit(r: RunningRelay) -> list[tuple[Any, ...]]:
    """Each read-back entry's reason, what the channel showed and the sales that explained it (JSON read here:
    json_extract's numbers are text on PostgreSQL)."""
    rows = await r.relay.store.read(
        "SELECT detail FROM audit WHERE action = 'reconcile' AND channel = 'ebay' ORDER BY id"
    )
    details = [json.loads(detail) for (detail,) in rows]
    return [(d.get("reason"), d.get("shown"), d.get("sales")) for d in details]


@pytest.fixture
async def wc_shop() -> AsyncIterator[FakeShop]:
    fake = await FakeShop("main", SITE_SECRET).start()
    fake.add(1, SKU, 5)
    yield fake
    await fake.stop()


async def test_readback_before_the_sale_is_applied_does_not_raise_ebay(
    tmp_path: Path, start_relay: StartRelay, ebay: FakeEbay, wc_shop: FakeShop
) -> None:
    """eBay sells one (shows 4, was sent 5): read before the sale reaches the shop, and again after the shop applied it
    but before its change came back, it is explained by the sale, not raised; then the shop's 4 reaches every channel."""
    clock = [time.time()]
    r = await ebay_relay(tmp_path, start_relay, ebay, wc_shop, True, clock)
    ebay.items[SKU] = 4  # the sale, on eBay
    client = SignedClient(r.base_url, "main", EBAY_SALES_SECRET, r.session)
    sale = {"order": "12-345", "line": "1", "sku": SKU, "quantity": 1, "kind": "sale"}
    assert (await client.post("channels/ebay/sales", {"type": "sales.report", "site": "main", "items": [sale]}))[
        0
    ] == 202

    assert await read_round(r) == 1
    await settle(r)
    assert ebay.items[SKU] == 4, "not raised while the sale is pending"
    await r.relay.shop_workers["main"].drain()
    assert wc_shop.products[1].quantity == 4
    assert await read_round(r) == 1
    await settle(r)
    assert ebay.items[SKU] == 4, "not raised while the shop's change is on its way back"
    assert await readback_audit(r) == [("explained_by_sales", 4, ["ebay:12-345:1"])] * 2
    assert await r.count("SELECT count(*) FROM drift") == 0

    clock[0] += 1  # the shop's change arrives after the sale was applied (at the same instant it would still count)
    back = stock_event(1, SKU, 4, wc_shop.bump(1), cause="relay")  # the shop's change
    assert (await r.client.send_events([back]))[0] == 202
    await settle(r)
    sandbox = r.relay.workers[("main", "sandbox")].connector
    assert isinstance(sandbox, SandboxConnector)
    assert (wc_shop.products[1].quantity, ebay.items[SKU], sandbox.listings[SKU]) == (4, 4, 4)
    assert await read_round(r) == 0


async def test_a_lower_count_no_sale_explains_is_repaired(
    tmp_path: Path, start_relay: StartRelay, ebay: FakeEbay, wc_shop: FakeShop
) -> None:
    """On a channel that reports no sales (the sandbox), a lower count is raised at once, as before; on one that does
    (eBay), a higher count is raised at once too."""
    clock = [time.time()]
    r = await ebay_relay(tmp_path, start_relay, ebay, wc_shop, True, clock)
    sandbox = r.relay.workers[("main", "sandbox")].connector
    assert isinstance(sandbox, SandboxConnector)
    sandbox.listings[SKU] = 2
    assert await read_round(r, "sandbox") == 1
    await settle(r)
    assert sandbox.listings[SKU] == 5
    ebay.items[SKU] = 9
    assert await read_round(r) == 1
    await settle(r)
    assert ebay.items[SKU] == 5
    assert [row[:2] for row in await readback_audit(r)] == [("channel_shows", 9)]


async def test_a_channel_that_reports_sales_is_trusted_lower_for_a_while(
    tmp_path: Path, start_relay: StartRelay, ebay: FakeEbay, wc_shop: FakeShop
) -> None:
    """eBay reports its sales, shows 3 with none recorded: held as drift (a sale may not be reported yet), then raised
    by a read UNREPORTED_GRACE_SECONDS later that still finds it lower with no sale."""
    clock = [time.time()]
    r = await ebay_relay(tmp_path, start_relay, ebay, wc_shop, True, clock)
    ebay.items[SKU] = 3
    assert await read_round(r) == 1
    await settle(r)
    assert ebay.items[SKU] == 3
    drift = await r.relay.store.query(lambda conn: views.drift(conn, "main", "ebay"))
    assert [(e["reason"], e["expected"], e["shown"]) for e in drift["examples"]] == [("lower_unreported", 5, 3)]
    clock[0] += UNREPORTED_GRACE_SECONDS - 60
    assert await read_round(r) == 1
    await settle(r)
    assert ebay.items[SKU] == 3, "still within the grace"
    clock[0] += 61
    assert await read_round(r) == 1
    await settle(r)
    assert ebay.items[SKU] == 5
    reasons = [row[0] for row in await readback_audit(r)]
    assert reasons == ["lower_unreported", "lower_unreported", "channel_shows"]


async def test_on_a_site_without_shop_url_no_sale_is_imported_so_none_explains_a_lower_count(
    tmp_path: Path, start_relay: StartRelay, ebay: FakeEbay, wc_shop: FakeShop
) -> None:
    """import_sales is on by default, but without the site's shop_url no order is read: a lower count is repaired at
    once, not held for an hour waiting for a sale that can never be reported."""
    clock = [time.time()]
    r = await ebay_relay(tmp_path, start_relay, ebay, wc_shop, False, clock, shop_url=False)
    assert r.relay.sweepers == {}
    ebay.items[SKU] = 3
    assert await read_round(r) == 1
    await settle(r)
    assert ebay.items[SKU] == 5
    assert [row[0] for row in await readback_audit(r)] == ["channel_shows"]
