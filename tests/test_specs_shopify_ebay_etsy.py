"""What the Shopify, eBay and Etsy connectors send, checked against the marketplaces' own spec files.

The specs live in ../shared/refs/specs/ (never copied into this repo); spec_files finds them, and without
them these tests skip and say where they looked (or fail, with STOCK_RELAY_REQUIRE_SPECS=1, as in CI).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import graphql
import jsonschema
import pytest
from graphql.execution.values import get_variable_values

from fakes.ebay import FakeEbay
from fakes.etsy import FakeEtsy
from fakes.shopify import FakeShopify
from relay.config import ChannelConfig, RateLimit
from relay.connectors import build
from relay.connectors.base import Update
from relay.vault import Vault

from .spec_files import oas3_validator, spec_path

VAULT_KEY = "bXl0ZXN0dmF1bHRrZXlteXRlc3R2YXVsdGtleTAxMjM="


@functools.cache
def shopify_schema() -> graphql.GraphQLSchema:
    # assume_valid: Shopify's SDL breaks a newer spec rule (deprecated fields implementing an interface's
    # non-deprecated ones); that is about the schema, not about the documents we check against it.
    return graphql.build_schema(spec_path("shopify/admin_schema.graphql").read_text(), assume_valid=True)


def openapi_validator(relative: str, schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """A validator for an OpenAPI 3.0 schema fragment whose $refs point into the spec file."""
    return oas3_validator(json.loads(spec_path(relative).read_text()), schema)


def request_schema(spec: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    body = spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    return copy.deepcopy(body)


def updates(*items: tuple[str, int]) -> list[Update]:
    return [Update(sku, sku, qty, f"evt-{sku}", 1, 1, f"key-{sku}") for sku, qty in items]


Push = Callable[..., Any]


@pytest.fixture
async def push(tmp_path: Path) -> AsyncIterator[Push]:
    """Build a real connector for a fake marketplace and push one batch through it."""
    session = aiohttp.ClientSession()
    vault = Vault(tmp_path / "vault", [VAULT_KEY])

    async def run(kind: str, url: str, account: dict[str, str], creds: dict[str, str], batch: list[Update]) -> Any:
        vault.write(f"main/{kind}", creds)
        config = ChannelConfig(name=kind, type=kind, api_base=url, account=account, rate=RateLimit(1000, 1000))
        connector = build("main", config, session, vault)
        return await connector.push(batch)

    yield run
    await session.close()


def check_graphql(query: str, variables: dict[str, Any]) -> None:
    schema = shopify_schema()
    document = graphql.parse(query)
    assert graphql.validate(schema, document) == []
    operation = next(d for d in document.definitions if isinstance(d, graphql.OperationDefinitionNode))
    coerced = get_variable_values(schema, operation.variable_definitions or [], variables)
    assert not isinstance(coerced, list), [str(e) for e in coerced]


async def test_shopify_requests_match_the_admin_schema(push: Push) -> None:
    """The lookup query and the 2025-10 set mutation validate against Shopify's SDL as sent."""
    async with FakeShopify() as shop:
        assert isinstance(shop, FakeShopify)
        shop.add_variant("A")
        shop.add_variant("B")
        account = {"shop": "s", "location_id": "1", "api_version": "2025-10"}
        token = shop.tokens.grant("shpat_spec_check")
        results = await push("shopify", shop.url, account, {"access_token": token}, updates(("A", 1), ("B", 2)))
        assert all(r.error is None for r in results.values())
        sent = [r.json for r in shop.calls("graphql.json")]
    assert [("productVariants" in s["query"], "inventorySetQuantities" in s["query"]) for s in sent] == [
        (True, False),
        (False, True),
    ]
    for body in sent:
        check_graphql(body["query"], body["variables"])


async def test_shopify_2026_request_is_the_schema_plus_the_documented_2026_fields(push: Push) -> None:
    """The 2026-04 mutation is the SDL-valid mutation plus exactly @idempotent(key) and changeFromQuantity: null.

    The SDL copy predates 2026-01, so those two additions are checked against the changelog's shape.
    """
    async with FakeShopify() as shop:
        assert isinstance(shop, FakeShopify)
        shop.add_variant("A")
        token = shop.tokens.grant("shpat_spec_check")
        await push("shopify", shop.url, {"shop": "s", "location_id": "1"}, {"access_token": token}, updates(("A", 3)))
        body = [r.json for r in shop.calls("graphql.json") if "inventorySetQuantities" in r.json["query"]][0]
    query, variables = body["query"], copy.deepcopy(body["variables"])
    key = re.search(r'@idempotent\(key: "([0-9a-f-]{36})"\)', query)
    assert key is not None
    for entry in variables["input"]["quantities"]:
        assert "changeFromQuantity" in entry and entry.pop("changeFromQuantity") is None
    check_graphql(query.replace(key.group(0), ""), variables)


async def test_ebay_bulk_update_matches_the_openapi_schema(push: Push) -> None:
    """bulk_update_price_quantity bodies (with and without offers) validate against BulkPriceQuantity."""
    spec = json.loads(spec_path("ebay/sell_inventory_v1_oas3.json").read_text())
    validator = openapi_validator(
        "ebay/sell_inventory_v1_oas3.json", request_schema(spec, "/bulk_update_price_quantity", "post")
    )
    async with FakeEbay() as ebay:
        assert isinstance(ebay, FakeEbay)
        ebay.add_item("A", offer_quantity=1)
        ebay.add_item("B")
        creds = {"client_id": ebay.client_id, "client_secret": ebay.client_secret, "refresh_token": ebay.refresh_token}
        await push("ebay", ebay.url, {"update_offers": "yes"}, creds, updates(("A", 4), ("B", 5)))
        bodies = [r.json for r in ebay.calls("bulk_update_price_quantity")]
    assert bodies and bodies[0]["requests"][0]["offers"]
    for body in bodies:
        errors = sorted(validator.iter_errors(body), key=str)
        assert errors == [], [e.message for e in errors]
    bad = {"requests": [{"sku": "A", "shipToLocationAvailability": {"quantity": "7"}}]}
    assert list(validator.iter_errors(bad)), "the validator must be able to refuse a body"


async def test_etsy_inventory_put_matches_the_openapi_schema(push: Push) -> None:
    """The read-modify-write PUT body validates against updateListingInventory's requestBody."""
    spec = json.loads(spec_path("etsy/etsy-v3-openapi.json").read_text())
    schema = request_schema(spec, "/v3/application/listings/{listing_id}/inventory", "put")
    validator = openapi_validator("etsy/etsy-v3-openapi.json", schema)
    async with FakeEtsy() as etsy:
        assert isinstance(etsy, FakeEtsy)
        etsy.add_listing({"S": 1, "M": 2})
        creds = {"keystring": etsy.keystring, "shared_secret": etsy.shared_secret, "refresh_token": etsy.refresh_token}
        await push("etsy", etsy.url, {"shop_id": str(etsy.shop_id)}, creds, updates(("M", 9)))
        bodies = [r.json for r in etsy.calls("/inventory", method="PUT")]
    assert len(bodies) == 1
    errors = sorted(validator.iter_errors(bodies[0]), key=str)
    assert errors == [], [e.message for e in errors]
    assert list(validator.iter_errors({"products": [{"offerings": [{"price": 1.0}]}]})), "must refuse a bad body"
