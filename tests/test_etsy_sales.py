"""Etsy's own sales reach the shop exactly once (issue 15): the relay polls the fake Etsy's getShopReceipts since a
persisted cursor and applies each receipt's transactions to the fake shop through the plugin's adjust route, over
HTTP. The requests and the fake's answers are checked against Etsy's own OpenAPI file.

Polls are driven by state (``SalesSweeper.poll_once``) except where the running relay's loops are the point.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fakes.common import Bucket
from fakes.etsy import FakeEtsy
from fakes.shop import FakeShop
from relay.config import Config, RateLimit, ReconcileConfig
from relay.errors import AuthDeliveryError, TransientDeliveryError

from .conftest import SITE_SECRET, StartRelay, eventually
from .marketplaces import channel, marketplace_config, poll_orders, sales_cursor, send, settle, store_credentials
from .spec_files import spec_path
from .test_specs_shopify_ebay_etsy import openapi_validator

QUIET = ReconcileConfig(incremental_minutes=0, full_hour=None, readback_hours=0)
RECEIPTS = "/receipts"
SPEC = "etsy/etsy-v3-openapi.json"
RECEIPTS_PATH = "/v3/application/shops/{shop_id}/receipts"


@pytest.fixture
async def etsy() -> AsyncIterator[FakeEtsy]:
    fake = FakeEtsy()
    await fake.start()
    fake.add_listing({"ET-1": 10})
    yield fake
    await fake.stop()


@pytest.fixture
async def shop() -> AsyncIterator[FakeShop]:
    fake = await FakeShop("main", SITE_SECRET).start()
    fake.add(1, "TS-ET-1", 10)
    yield fake
    await fake.stop()


def config_for(tmp_path: Path, etsy: FakeEtsy, shop: FakeShop, **overrides: Any) -> Config:
    options: dict[str, Any] = {"sales_poll_seconds": 60.0} | overrides
    etsy_channel = channel("etsy", etsy.url, {"shop_id": str(etsy.shop_id)}, **options)
    etsy_channel = replace(etsy_channel, rules=replace(etsy_channel.rules, sku_map={"TS-ET-1": "ET-1"}))
    cfg = marketplace_config(tmp_path / "state", etsy_channel)
    cfg = replace(cfg, sites=(replace(cfg.sites[0], shop_url=shop.url, reconcile=QUIET),))
    creds = {"keystring": etsy.keystring, "shared_secret": etsy.shared_secret, "refresh_token": etsy.refresh_token}
    store_credentials(cfg, "main/etsy", creds)
    return cfg


poll = functools.partial(poll_orders, channel="etsy")


cursor = functools.partial(sales_cursor, channel="etsy")


def line_of(etsy: FakeEtsy, receipt: int, index: int = 0) -> int:
    return int(etsy.receipts[receipt]["transactions"][index]["transaction_id"])


async def test_a_sale_on_etsy_lowers_the_shop_once(
    tmp_path: Path, etsy: FakeEtsy, shop: FakeShop, start_relay: StartRelay
) -> None:
    """An Etsy receipt's transaction lowers the shop's stock once (the channel SKU mapped back to the shop's); polling
    again, and polling after a restart on the same database, finds it again and counts it no more; the cursor
    persists."""
    cfg = config_for(tmp_path, etsy, shop)
    r = await start_relay(cfg)
    receipt = etsy.sell("ET-1", 2)
    assert etsy.quantity("ET-1") == 8, "Etsy lowers its own quantity at checkout"
    assert await poll(r) == 1
    assert await r.relay.shop_workers["main"].drain() == 1
    assert shop.products[1].quantity == 8
    key = f"etsy:{receipt}:{line_of(etsy, receipt)}"
    assert shop.adjust_calls[0]["items"] == [{"key": key, "sku": "TS-ET-1", "delta": -2, "reason": "sale"}]
    rows = await r.relay.store.read("SELECT detail FROM audit WHERE event_id = ? AND action = 'sale_received'", (key,))
    assert '"source": "sweep"' in rows[0][0]
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
    assert len(shop.adjust_calls) == 1 and shop.products[1].quantity == 8
    assert await r.count("SELECT count(*) FROM sales") == 1
    since = {int(c.query["min_last_modified"]) for c in etsy.calls(RECEIPTS)}
    assert all(re.fullmatch(r"\d+", str(s)) for s in since), "epoch seconds, as the contract has it"


async def test_a_canceled_receipt_restocks_once(
    tmp_path: Path, etsy: FakeEtsy, shop: FakeShop, start_relay: StartRelay
) -> None:
    """A canceled receipt gives its transactions back to the shop once, under keys of their own; one bought and
    canceled between two polls is read as both, so the shop ends where it was."""
    r = await start_relay(config_for(tmp_path, etsy, shop))
    receipt = etsy.sell("ET-1", 3)
    assert await poll(r) == 1
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 7
    etsy.cancel(receipt)
    assert await poll(r) == 1
    assert await poll(r) == 0
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 10
    line = line_of(etsy, receipt)
    assert set(shop.adjusted) == {f"etsy:{receipt}:{line}", f"etsy:{receipt}:{line}:cancel"}

    brief = etsy.sell("ET-1", 4)
    etsy.cancel(brief)
    assert await poll(r) == 2
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 10
    assert {c.query["was_canceled"] for c in etsy.calls(RECEIPTS)} == {"true", "false"}


async def test_without_restock_on_cancel_a_canceled_receipt_is_still_a_sale(
    tmp_path: Path, etsy: FakeEtsy, shop: FakeShop, start_relay: StartRelay
) -> None:
    """restock_on_cancel off: a receipt canceled before the relay saw it still lowers the shop (it was sold) and
    gives nothing back."""
    r = await start_relay(config_for(tmp_path, etsy, shop, restock_on_cancel=False))
    etsy.cancel(etsy.sell("ET-1", 2))
    assert await poll(r) == 1
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 8
    assert [item["reason"] for call in shop.adjust_calls for item in call["items"]] == ["sale"]


async def test_a_transaction_without_sku_is_not_imported(
    tmp_path: Path, etsy: FakeEtsy, shop: FakeShop, start_relay: StartRelay, caplog: pytest.LogCaptureFixture
) -> None:
    """Etsy's fulfilment is always the seller's, so no line is filtered for that; a transaction without a SKU cannot
    be matched to a product: it is left out with a reason that says so, logged once however often it is read, and
    the receipt's other lines stand."""
    r = await start_relay(config_for(tmp_path, etsy, shop))
    nameless = etsy.sell(None, 1)
    etsy.sell("ET-1", 1)
    with caplog.at_level(logging.WARNING, logger="stock_relay.sweep"):
        assert await poll(r) == 1
        assert await poll(r) == 0
    said = [rec.getMessage() for rec in caplog.records if str(nameless) in rec.getMessage()]
    assert len(said) == 1, said
    assert "has no SKU" in said[0] and "cannot tell which product" in said[0]
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 9
    assert await r.count("SELECT count(*) FROM sales") == 1


async def test_every_page_of_receipts_is_read(
    tmp_path: Path, etsy: FakeEtsy, shop: FakeShop, start_relay: StartRelay
) -> None:
    """Receipts beyond the first page (here pages of 3) are read by offset until the answer's count is reached."""
    etsy.page_limit = 3
    r = await start_relay(config_for(tmp_path, etsy, shop))
    for _ in range(7):
        etsy.sell("ET-1", 1)
    assert await poll(r) == 7
    pages = [(c.query["was_canceled"], c.query["offset"]) for c in etsy.calls(RECEIPTS)]
    assert pages == [("false", "0"), ("false", "3"), ("false", "6"), ("true", "0")]
    assert all(c.query["limit"] == "100" for c in etsy.calls(RECEIPTS))
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 3


async def test_a_refused_poll_moves_no_cursor_and_loses_nothing(
    tmp_path: Path, etsy: FakeEtsy, shop: FakeShop, start_relay: StartRelay
) -> None:
    """Etsy answering 503 or 429 to getShopReceipts (on the second page too) records nothing and leaves the cursor;
    the next poll reads the same window and catches up."""
    etsy.page_limit = 1
    r = await start_relay(config_for(tmp_path, etsy, shop))
    assert await poll(r) == 0
    before = await cursor(r)
    etsy.sell("ET-1", 1)
    etsy.sell("ET-1", 1)
    etsy.page_failures[0] = 503
    with pytest.raises(TransientDeliveryError):
        await poll(r)
    etsy.page_failures[1] = 429  # the first page read, the second throttled
    with pytest.raises(TransientDeliveryError):
        await poll(r)
    assert await cursor(r) == before
    assert await r.count("SELECT count(*) FROM sales") == 0
    assert await poll(r) == 2
    assert await cursor(r) > before


async def test_a_missing_transactions_scope_stops_intake_not_pushes(
    tmp_path: Path, etsy: FakeEtsy, shop: FakeShop, start_relay: StartRelay
) -> None:
    """A seller who granted only the listing scopes: the poll fails naming transactions_r, and pushes still go out."""
    etsy.scopes.discard("transactions_r")
    r = await start_relay(config_for(tmp_path, etsy, shop))
    with pytest.raises(AuthDeliveryError, match="check the app.s transactions_r scope"):
        await poll(r)
    await send(r, [("TS-ET-1", 6)])
    await settle(r)
    assert etsy.quantity("ET-1") == 6, "the push went out despite intake's refusal"


async def test_intake_does_not_starve_pushes(
    tmp_path: Path, etsy: FakeEtsy, shop: FakeShop, start_relay: StartRelay
) -> None:
    """With the channel's call budget tight (10 calls/s, burst 4; Etsy's a little above it) and 30 pages of receipts
    to read, 40 one-SKU pushes (a read and a write each) go out unthrottled and nearly without intake calls between
    them: intake takes only spare calls."""
    etsy.second = Bucket(12, 6)  # a little above the relay's budget: arrivals bunch up on loopback
    etsy.page_limit = 1
    skus = [f"P{i:02d}" for i in range(40)]
    for sku in skus:
        etsy.add_listing({sku: 0})
    for _ in range(30):
        etsy.sell("ET-1", 1)
    cfg = config_for(tmp_path, etsy, shop, rate=RateLimit(10, 4), batch_size=1, sales_poll_seconds=5.0)
    r = await start_relay(cfg, run_workers=True)
    await send(r, [(sku, 5) for sku in skus])

    async def all_done() -> bool:
        pushed = all(etsy.quantity(sku) == 5 for sku in skus)
        return pushed and await r.count("SELECT count(*) FROM sales") == 30

    await eventually(all_done, seconds=60, what="every push and every sale")
    assert etsy.throttled == 0
    paths = [(c.method, c.path) for c in etsy.requests if "/oauth/" not in c.path]
    puts = [i for i, (method, _) in enumerate(paths) if method == "PUT"]
    between = [p for _, p in paths[puts[0] : puts[-1]] if p.endswith(RECEIPTS)]
    assert len(puts) == 40
    assert len(between) <= 10, f"{len(between)} intake calls among 40 listing writes (80 calls)"


# --- the contract, from Etsy's own OpenAPI file -----------------------------------------------------------------


def _typed(value: str, schema: dict[str, Any]) -> Any:
    """A query string value as the type its parameter declares (left as text when it is not one, so it fails)."""
    if schema.get("type") == "integer" and re.fullmatch(r"-?\d+", value):
        return int(value)
    if schema.get("type") == "boolean" and value in ("true", "false"):
        return value == "true"
    return value


def _check_request(spec: dict[str, Any], path: str, sent: dict[str, str]) -> list[str]:
    """What in one getShopReceipts request the spec does not allow (path parameter, names, types, bounds, enums)."""
    operation = spec["paths"][RECEIPTS_PATH]["get"]
    declared = {p["name"]: p for p in operation["parameters"]}
    problems: list[str] = []
    match = re.fullmatch(r"/v3/application/shops/([^/]+)/receipts", path)
    if match is None:
        return [f"path {path} is not {RECEIPTS_PATH}"]
    given = {**sent, "shop_id": match.group(1)}
    for name, value in given.items():
        parameter = declared.get(name)
        if parameter is None:
            problems.append(f"{name} is not a parameter of getShopReceipts")
            continue
        validator = openapi_validator(SPEC, parameter["schema"])
        problems += [f"{name}={value}: {e.message}" for e in validator.iter_errors(_typed(value, parameter["schema"]))]
    problems += [f"{n} is required" for n, p in declared.items() if p.get("required") and n not in given]
    return problems


def _undeclared(spec: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    """Fields the fake sends that the spec's ShopReceipt / ShopReceiptTransaction do not declare (its schemas
    allow extra fields, so the validator alone would not catch a misnamed one)."""
    schemas = spec["components"]["schemas"]
    receipt_fields, line_fields = (
        set(schemas["ShopReceipt"]["properties"]),
        set(schemas["ShopReceiptTransaction"]["properties"]),
    )
    extra = {f"receipt.{k}" for r in doc["results"] for k in r if k not in receipt_fields}
    extra |= {f"transaction.{k}" for r in doc["results"] for t in r["transactions"] for k in t if k not in line_fields}
    return sorted(extra)


async def test_receipts_requests_and_answers_match_the_openapi_spec(
    tmp_path: Path, etsy: FakeEtsy, shop: FakeShop, start_relay: StartRelay
) -> None:
    """Every getShopReceipts request the connector sends (path and query) is allowed by Etsy's OpenAPI file, and the
    fake's answers (a paid receipt, a canceled one, a transaction without SKU) validate against ShopReceipts."""
    spec = json.loads(spec_path(SPEC).read_text())
    answer = spec["paths"][RECEIPTS_PATH]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    validator = openapi_validator(SPEC, answer)
    etsy.page_limit = 1
    r = await start_relay(config_for(tmp_path, etsy, shop))
    etsy.sell("ET-1", 1, lines=2)
    etsy.cancel(etsy.sell("ET-1", 1))
    etsy.sell(None, 1)
    await poll(r)
    calls = etsy.calls(RECEIPTS)
    assert len(calls) == 3, "two non-canceled pages, one canceled"
    for call in calls:
        assert _check_request(spec, call.path, call.query) == []

    # The fake's answers, whole (the connector read them a receipt a page).
    token = etsy.tokens.grant("87654321.spec-check")
    headers = {"x-api-key": f"{etsy.keystring}:{etsy.shared_secret}", "Authorization": f"Bearer {token}"}
    etsy.page_limit = 100
    docs = []
    async with aiohttp.ClientSession() as session:
        for canceled in ("false", "true"):
            url = f"{etsy.url}/v3/application/shops/{etsy.shop_id}/receipts?was_canceled={canceled}"
            async with session.get(url, headers=headers) as resp:
                docs.append(await resp.json())
    assert [len(d["results"]) for d in docs] == [2, 1]
    assert any(t["sku"] is None for d in docs for rec in d["results"] for t in rec["transactions"])
    for doc in docs:
        errors = sorted(validator.iter_errors(doc), key=str)
        assert errors == [], [e.message for e in errors]
        assert _undeclared(spec, doc) == []

    # The checks can fail: a wrong type in an answer, a parameter out of bounds or unknown.
    bad = json.loads(json.dumps(docs[0]))
    bad["results"][0]["transactions"][0]["quantity"] = "1"
    assert list(validator.iter_errors(bad)), "the validator must refuse an answer of the wrong shape"
    path = f"/v3/application/shops/{etsy.shop_id}/receipts"
    assert _check_request(spec, path, {"limit": "200", "min_last_modified": "12", "was_canceled": "yes", "since": "1"})
