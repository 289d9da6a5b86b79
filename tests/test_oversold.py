"""Oversell is detected and shown, never hidden (issue 15, DESIGN.md invariant 11).

Two systems report the last unit sold through the sales route; the stand-in shop (fakes/shop.py) lets the stock go
below zero as WooCommerce's ``wc_update_product_stock()`` does and answers -1 for the second sale. The relay records
one ``oversold`` incident, counts it in ``/metrics``, shows it in ``status`` and lists it with ``stock-relay oversold``
(a subprocess, on the file and over the signed API); the shop keeps -1 and the channels get the usual push for it.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from fakes.shop import FakeShop
from relay.cli.client import SignedClient, stock_event
from relay.cli.operator import format_oversold, format_status
from relay.config import Config, ReconcileConfig

from .conftest import SITE_SECRET, Receiver, StartRelay, make_config, webhook_channel
from .procs import run_cli

POS_SECRET = "whsec_ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
MARKET_SECRET = "whsec_QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8="
QUIET = ReconcileConfig(incremental_minutes=0, full_hour=None, readback_hours=0)
SKU = "TS-RED-M"


@pytest.fixture
async def shop() -> Any:
    fake = await FakeShop("main", SITE_SECRET).start()
    fake.add(1, SKU, 1)  # the last unit
    yield fake
    await fake.stop()


def config_for(tmp_path: Path, shop_url: str, receiver: Receiver) -> Config:
    pos = webhook_channel("pos", receiver.url("/pos"), sales_secrets=(POS_SECRET,))
    market = webhook_channel("market", receiver.url("/market"), sales_secrets=(MARKET_SECRET,))
    cfg = make_config(tmp_path / "state", (pos, market))
    return replace(cfg, sites=(replace(cfg.sites[0], shop_url=shop_url, reconcile=QUIET),))


def sale(order: str, quantity: int = 1, kind: str = "sale") -> dict[str, Any]:
    return {"order": order, "line": "1", "sku": SKU, "quantity": quantity, "kind": kind}


async def report(running: Any, channel: str, secret: str, *items: dict[str, Any]) -> None:
    client = SignedClient(running.base_url, "main", secret, running.session)
    doc = {"type": "sales.report", "site": "main", "items": list(items)}
    status, body = await client.post(f"channels/{channel}/sales", doc)
    assert status == 202 and body["accepted"] == len(items), body


async def oversold_rows(running: Any) -> list[tuple[Any, ...]]:
    rows = await running.relay.store.read(
        "SELECT channel, sku, event_id, quantity, detail FROM audit WHERE action = 'oversold' ORDER BY id"
    )
    return [tuple(row) for row in rows]


def write_config(tmp_path: Path) -> Path:
    """The same site for the CLI reading the file (its secrets are not resolved for that)."""
    site = {
        "secret": "env:UNUSED",
        "channels": [{"name": "pos", "type": "sandbox"}, {"name": "market", "type": "sandbox"}],
    }
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state"), "sites": {"main": site}}))
    return path


async def test_the_last_unit_sold_twice_is_one_incident_shown_everywhere_and_not_clamped(
    tmp_path: Path, shop: FakeShop, start_relay: StartRelay, receiver: Receiver
) -> None:
    """pos sells the last unit, market sells it again: the shop answers 0 then -1; one incident names both sales."""
    r = await start_relay(config_for(tmp_path, shop.url, receiver))
    await report(r, "pos", POS_SECRET, sale("P-1"))
    await report(r, "market", MARKET_SECRET, sale("M-7"))
    assert await r.relay.shop_workers["main"].drain() == 2
    assert shop.adjusted == {"pos:P-1:1": 0, "market:M-7:1": -1}
    assert shop.products[1].quantity == -1, "the shop's stock is not clamped"

    (incident,) = await oversold_rows(r)
    channel, sku, key, quantity, detail = incident
    assert (channel, sku, key, quantity) == ("market", SKU, "market:M-7:1", -1)
    detail = json.loads(detail)
    assert detail["channels"] == ["market", "pos"] and detail["shop_quantity"] == -1
    assert [(s["key"], s["order"], s["delta"], s["quantity"]) for s in detail["sales"]] == [
        ("market:M-7:1", "M-7", -1, -1),
        ("pos:P-1:1", "P-1", -1, 0),
    ]

    async with r.session.get(r.base_url + "/metrics") as response:
        metrics = await response.text()
    assert 'stock_relay_oversold_total{channel="market",site="main"} 1.0' in metrics
    assert 'stock_relay_oversold_total{channel="pos"' not in metrics

    status, answer = await r.client.post("status", {"type": "status.query", "site": "main"})
    assert status == 200 and answer["oversold"]["incidents"] == 1
    assert answer["oversold"]["newest"]["key"] == "market:M-7:1"
    line = "oversold: 1 incident in the last 7 days, newest: SKU TS-RED-M (market order M-7, shop now -1)"
    assert line in format_status(answer, time.time())

    env = {"STOCK_RELAY_SECRET": SITE_SECRET}
    remote = await asyncio.to_thread(run_cli, "oversold", "--remote", r.base_url, "--site", "main", "--json", env=env)
    local = await asyncio.to_thread(run_cli, "oversold", "-c", str(write_config(tmp_path)), "--json")
    for out in (remote, local):
        assert out.returncode == 0, out.stderr
        (listed,) = json.loads(out.stdout)
        assert (listed["sku"], listed["shop_quantity"], listed["channels"]) == (SKU, -1, ["market", "pos"])
        assert [s["key"] for s in listed["sales"]] == ["market:M-7:1", "pos:P-1:1"]
    table = await asyncio.to_thread(run_cli, "oversold", "-c", str(write_config(tmp_path)))
    assert "TS-RED-M" in table.stdout and "market:M-7:1 (-1 → -1), pos:P-1:1 (-1 → 0)" in table.stdout
    assert format_oversold([]) == "no oversold incidents in that time"

    # The shop's change comes back as any stock change does: -1, out of stock, which channels are sent as 0.
    event = stock_event(1, SKU, shop.products[1].quantity, shop.bump(1), cause="relay")
    assert (await r.client.send_events([event]))[0] == 202
    await r.drain()
    sent = {
        path: [u["quantity"] for x in receiver.for_path(path) for u in x.doc["updates"]] for path in ("/pos", "/market")
    }
    assert sent == {"/pos": [0], "/market": [0]}
    assert await r.relay.shop_workers["main"].drain() == 0
    assert len(await oversold_rows(r)) == 1, "recorded once"


async def test_a_sale_that_leaves_zero_or_a_restock_is_no_incident(
    tmp_path: Path, shop: FakeShop, start_relay: StartRelay, receiver: Receiver
) -> None:
    """Selling the last unit once is no oversell; a cancellation from below zero is none either."""
    r = await start_relay(config_for(tmp_path, shop.url, receiver))
    await report(r, "pos", POS_SECRET, sale("P-1"))
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 0 and await oversold_rows(r) == []
    shop.products[1].quantity = -3  # oversold before, in the shop itself
    await report(r, "pos", POS_SECRET, sale("P-1", kind="cancel"))
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == -2 and await oversold_rows(r) == []
    status, answer = await r.client.post("status", {"type": "status.query", "site": "main"})
    assert answer["oversold"] == {"days": 7, "incidents": 0, "newest": None}
    assert "oversold" not in format_status(answer, time.time())
