"""Sales reported by other systems reach the shop exactly once (issue 15, DESIGN.md invariant 10).

A real relay (in process, or ``stock-relay serve`` killed with SIGKILL) takes a signed ``sales.report`` on a channel's
sales route and sends it to the stand-in shop's ``adjust`` route (fakes/shop.py) over HTTP; the shop applies each key
at most once. The shop worker is driven by state (``drain_once``) and a clock the test moves, never by sleeps.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from fakes.shop import FakeShop
from relay import config
from relay.cli.client import SignedClient
from relay.cli.operator import format_status
from relay.config import Config, ReconcileConfig
from relay.errors import ConfigError
from relay.ids import new_msg_id

from .backend import read_rows
from .conftest import SITE_SECRET, StartRelay, eventually, make_config, webhook_channel
from .procs import RelayProcess, run_cli

SALES_SECRET = "whsec_ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
OTHER_SECRET = "whsec_QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8="
QUIET = ReconcileConfig(incremental_minutes=0, full_hour=None, readback_hours=0)
SALES = "channels/pos/sales"


@pytest.fixture
async def shop() -> AsyncIterator[FakeShop]:
    fake = await FakeShop("main", SITE_SECRET).start()
    fake.add(1, "TS-RED-M", 5)
    yield fake
    await fake.stop()


def config_for(tmp_path: Path, shop_url: str) -> Config:
    pos = webhook_channel("pos", "http://127.0.0.1:9/pos", sales_secrets=(SALES_SECRET,))
    plain = webhook_channel("plain", "http://127.0.0.1:9/plain")
    cfg = make_config(tmp_path / "state", (pos, plain))
    return replace(cfg, sites=(replace(cfg.sites[0], shop_url=shop_url, reconcile=QUIET),))


def report(*items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "sales.report", "site": "main", "items": list(items)}


def sale(
    order: str = "A-1001", line: str = "1", sku: str = "TS-RED-M", quantity: int = 1, **extra: Any
) -> dict[str, Any]:
    return {"order": order, "line": line, "sku": sku, "quantity": quantity, "kind": "sale", **extra}


def reporter(running: Any, secret: str = SALES_SECRET) -> SignedClient:
    return SignedClient(running.base_url, "main", secret, running.session)


async def audit_actions(running: Any, key: str) -> list[str]:
    rows = await running.relay.store.read("SELECT action FROM audit WHERE event_id = ? ORDER BY id", (key,))
    return [row[0] for row in rows]


async def test_an_inbound_sale_reaches_the_shop_once(tmp_path: Path, shop: FakeShop, start_relay: StartRelay) -> None:
    """A reported sale lowers the shop's stock once; reported again it is a duplicate and nothing is sent twice."""
    r = await start_relay(config_for(tmp_path, shop.url))
    client = reporter(r)
    msg_id = new_msg_id()
    status, body = await client.post(SALES, report(sale()), msg_id)
    assert (status, body) == (202, {"accepted": 1, "duplicates": 0, "rejected": []})
    assert await r.relay.shop_workers["main"].drain() == 1
    assert shop.products[1].quantity == 4
    assert shop.adjust_calls[0]["items"] == [{"key": "pos:A-1001:1", "sku": "TS-RED-M", "delta": -1, "reason": "sale"}]
    assert await audit_actions(r, "pos:A-1001:1") == ["sale_received", "adjust_sent", "sale_applied"]
    assert await r.count("SELECT quantity FROM sales WHERE key = 'pos:A-1001:1' AND state = 'applied'") == 4

    status, body = await client.post(SALES, report(sale()))  # the same sale under a new webhook-id
    assert (status, body) == (202, {"accepted": 0, "duplicates": 1, "rejected": []})
    assert await r.relay.shop_workers["main"].drain() == 0
    assert len(shop.adjust_calls) == 1 and shop.products[1].quantity == 4

    status, body = await client.post(SALES, report(sale()), msg_id)  # a resend of the first request
    assert (status, body) == (202, {"accepted": 1, "duplicates": 0, "rejected": []}), "the original answer"
    status, body = await client.post(SALES, report(sale(line="2")), msg_id)  # other content, the same id
    assert status == 409 and body["error"]["code"] == "webhook_id_reused"
    assert await r.count("SELECT count(*) FROM sales") == 1


async def test_a_cancellation_and_a_refund_restock(tmp_path: Path, shop: FakeShop, start_relay: StartRelay) -> None:
    """cancel and refund add the quantity back, each under a key of its own; a refund needs its refund_id."""
    r = await start_relay(config_for(tmp_path, shop.url))
    client = reporter(r)
    assert (await client.post(SALES, report(sale(quantity=2))))[0] == 202
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 3
    status, body = await client.post(
        SALES,
        report(
            sale(quantity=1, kind="cancel"),
            sale(line="2", quantity=1, kind="refund", refund_id="R-7"),
            sale(line="3", kind="refund"),
        ),
    )
    assert status == 202 and body["accepted"] == 2
    assert [(x["index"], x["code"]) for x in body["rejected"]] == [(2, "invalid_refund_id")]
    await r.relay.shop_workers["main"].drain()
    assert shop.products[1].quantity == 5
    assert set(shop.adjusted) == {"pos:A-1001:1", "pos:A-1001:1:cancel", "pos:A-1001:2:refund:R-7"}


async def test_bad_items_are_rejected_by_name_and_the_rest_accepted(
    tmp_path: Path, shop: FakeShop, start_relay: StartRelay
) -> None:
    r = await start_relay(config_for(tmp_path, shop.url))
    status, body = await reporter(r).post(
        SALES,
        report(sale(order="has space"), sale(quantity=0), sale(kind="gift"), sale(sku=" x"), sale(line="9")),
    )
    assert status == 202 and body["accepted"] == 1
    codes = [(x["index"], x["code"]) for x in body["rejected"]]
    assert codes == [(0, "invalid_order"), (1, "invalid_quantity"), (2, "invalid_kind"), (3, "invalid_sku")]
    assert [row[0] for row in await r.relay.store.read("SELECT key FROM sales")] == ["pos:A-1001:9"]


async def test_a_failing_shop_gets_the_sale_once_after_backoff(
    tmp_path: Path, shop: FakeShop, start_relay: StartRelay
) -> None:
    """503 (with Retry-After), 503, then 200: the sale waits its persisted backoff each time and is applied once."""
    clock = [time.time()]
    r = await start_relay(config_for(tmp_path, shop.url), now=lambda: clock[0])
    worker = r.relay.shop_workers["main"]
    shop.adjust_script = [(503, {"Retry-After": "7"}), (503, {})]
    assert (await reporter(r).post(SALES, report(sale())))[0] == 202

    assert await worker.drain_once() == 1
    due = await r.count("SELECT next_attempt_at FROM sales")
    assert due >= clock[0] + 7, "Retry-After honoured, in the database"
    assert await worker.drain_once() == 0, "not due yet"
    clock[0] = due + 0.001
    assert await worker.drain_once() == 1
    assert await r.count("SELECT state FROM sales") == "pending" and shop.products[1].quantity == 5
    clock[0] = await r.count("SELECT next_attempt_at FROM sales") + 0.001
    assert await worker.drain_once() == 1
    assert shop.products[1].quantity == 4 and len(shop.adjust_calls) == 1 and not shop.adjust_script
    assert await r.count("SELECT attempts FROM sales") == 3
    rows = await r.relay.store.read("SELECT action, http_status FROM audit WHERE event_id = 'pos:A-1001:1' ORDER BY id")
    assert [tuple(row) for row in rows] == [
        ("sale_received", None),
        *[("adjust_sent", None), ("attempt", 503)] * 2,
        ("adjust_sent", None),
        ("sale_applied", 200),
    ]


async def test_a_refused_sale_is_a_dead_letter_shown_in_status(
    tmp_path: Path, shop: FakeShop, start_relay: StartRelay
) -> None:
    """An unknown SKU is refused by the shop: the sale is not retried, and status shows it with the shop's reason."""
    r = await start_relay(config_for(tmp_path, shop.url))
    assert (await reporter(r).post(SALES, report(sale(), sale(line="2", sku="NOPE"))))[0] == 202
    assert await r.relay.shop_workers["main"].drain() == 2
    assert await r.relay.shop_workers["main"].drain() == 0
    status, answer = await r.client.post("status", {"type": "status.query", "site": "main"})
    assert status == 200
    sales = answer["sales"]
    assert (sales["pending"], sales["applied"], sales["refused"]) == (0, 1, 1)
    assert sales["refused_examples"][0]["key"] == "pos:A-1001:2"
    assert sales["refused_examples"][0]["reason"].startswith("unknown_sku")
    assert "dead_letter" in await audit_actions(r, "pos:A-1001:2")
    text = format_status(answer, time.time())
    assert "sales to the shop: 0 pending, 1 applied, 1 refused" in text and "REFUSED pos:A-1001:2" in text


async def test_refused_sales_are_sent_again_once_their_cause_is_fixed(
    tmp_path: Path, shop: FakeShop, start_relay: StartRelay
) -> None:
    """Two sales refused (unknown SKUs); the shop owner adds one SKU; replay --refused-sales on the file (the CLI,
    a subprocess) makes both pending: one applies, the other is refused again. Over the API, after the second SKU
    is added too, it applies. Each key applies once; the audit names the replay and the refusal it had."""
    r = await start_relay(config_for(tmp_path, shop.url))
    worker = r.relay.shop_workers["main"]
    assert (await reporter(r).post(SALES, report(sale(line="2", sku="NEW-1"), sale(line="3", sku="NEW-2"))))[0] == 202
    assert await worker.drain() == 2
    assert await r.count("SELECT COUNT(*) FROM sales WHERE state = 'refused'") == 2
    shop.add(2, "NEW-1", 4)

    cfg_file = tmp_path / "relay.yaml"
    site = {
        "secret": "env:UNUSED",
        "channels": [{"name": "pos", "type": "sandbox"}, {"name": "plain", "type": "sandbox"}],
    }
    cfg_file.write_text(yaml.safe_dump({"state_dir": str(r.relay.config.state_dir), "sites": {"main": site}}))
    out = await asyncio.to_thread(run_cli, "replay", "--refused-sales", "-c", str(cfg_file))
    assert out.returncode == 0, out.stderr
    assert "2 refused sales will be sent to the shop again" in out.stdout
    assert await worker.drain() == 2
    assert shop.adjusted == {"pos:A-1001:2": 3}
    assert shop.products[2].quantity == 3
    assert await r.count("SELECT state FROM sales WHERE key = 'pos:A-1001:3'") == "refused"

    shop.add(3, "NEW-2", 9)
    status, answer = await r.client.post("replay", {"type": "replay.request", "site": "main", "scope": "refused_sales"})
    assert status == 200 and answer["scheduled"] == 1
    await eventually(lambda: worker.wake.is_set(), what="the shop worker to be woken")
    assert await worker.drain() == 1
    assert shop.adjusted == {"pos:A-1001:2": 3, "pos:A-1001:3": 8}
    assert await r.count("SELECT COUNT(*) FROM sales WHERE state = 'applied'") == 2
    assert await worker.drain() == 0, "nothing left: each key once"
    rows = await r.relay.store.read(
        "SELECT detail FROM audit WHERE action = 'replay' AND event_id = 'pos:A-1001:3'", ()
    )
    assert len(rows) == 2 and all('"refused_sales"' in row[0] and "unknown_sku" in row[0] for row in rows)


async def test_the_sales_route_takes_only_the_channels_own_secret(
    tmp_path: Path, shop: FakeShop, start_relay: StartRelay
) -> None:
    """Another secret or the site's is refused (401); a channel without sales_secret, or none at all, is 404."""
    r = await start_relay(config_for(tmp_path, shop.url))
    for secret in (OTHER_SECRET, SITE_SECRET):
        status, body = await reporter(r, secret).post(SALES, report(sale()))
        assert status == 401, body
    for path in ("channels/plain/sales", "channels/nope/sales"):
        status, body = await reporter(r).post(path, report(sale()))
        assert (status, body["error"]["code"]) == (404, "unknown_channel")
    assert await r.count("SELECT count(*) FROM sales") == 0
    status, _ = await reporter(r).post(SALES, {"type": "stock.batch", "site": "main", "items": [sale()]})
    assert status == 400


def test_a_sales_secret_needs_a_shop_url_and_is_never_the_site_secret() -> None:
    channel = {"name": "pos", "type": "sandbox", "sales_secret": "env:SALES"}
    site = {"secret": "env:SITE", "shop_url": "https://shop.example", "channels": [channel]}
    env = {"SITE": SITE_SECRET, "SALES": SALES_SECRET}
    assert config.parse({"sites": {"main": site}}, env).sites[0].channels[0].sales_secrets == (SALES_SECRET,)
    with pytest.raises(ConfigError, match="shop_url"):
        config.parse({"sites": {"main": {**site, "shop_url": ""}}}, env)
    with pytest.raises(ConfigError, match="site's secret"):
        config.parse({"sites": {"main": site}}, {**env, "SALES": SITE_SECRET})


# --- kill -9 between the shop applying and the relay settling --------------------------------------


def write_config(tmp_path: Path, shop_url: str) -> Path:
    doc = {
        "state_dir": str(tmp_path / "state"),
        "listen": {"host": "127.0.0.1", "port": 0},
        "dispatch": {"backoff_base_seconds": 0.05, "backoff_max_seconds": 0.5, "idle_poll_seconds": 0.1},
        "sites": {
            "main": {
                "secret": "env:SALES_TEST_SITE_SECRET",
                "shop_url": shop_url,
                "max_requests_per_second": 0,
                "reconcile": {"incremental_minutes": 0, "full_hour": None, "readback_hours": 0},
                "channels": [{"name": "pos", "type": "sandbox", "sales_secret": "env:SALES_TEST_POS_SECRET"}],
            }
        },
    }
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


async def test_a_relay_killed_before_settling_resends_and_the_shop_counts_once(tmp_path: Path, shop: FakeShop) -> None:
    """SIGKILL while the shop holds its answer (the sale applied, the relay not told): after the restart the resend is
    a duplicate, the shop's stock dropped once and the relay records the sale applied."""
    env = {"SALES_TEST_SITE_SECRET": SITE_SECRET, "SALES_TEST_POS_SECRET": SALES_SECRET}
    relay = RelayProcess(write_config(tmp_path, shop.url), env, tmp_path / "relay.log")
    shop.hold_adjust = asyncio.Event()
    relay.start()
    async with aiohttp.ClientSession() as session:
        status, _ = await SignedClient(relay.url, "main", SALES_SECRET, session).post(SALES, report(sale()))
        assert status == 202
        await eventually(lambda: shop.adjusted, what="the shop applying the sale")
        relay.kill()
        hold, shop.hold_adjust = shop.hold_adjust, None
        hold.set()
        relay.start()
        await eventually(lambda: len(shop.adjust_calls) == 2, what="the resend after the restart")

        def applied() -> bool:
            return read_rows(tmp_path / "state" / "relay.sqlite3", "SELECT state FROM sales") == [("applied",)]

        await eventually(applied, what="the relay settling the sale")
        relay.terminate()
    assert shop.products[1].quantity == 4, "applied once"
    assert shop.adjusted == {"pos:A-1001:1": 4}
    rows = read_rows(
        tmp_path / "state" / "relay.sqlite3",
        "SELECT action, detail FROM audit WHERE event_id = 'pos:A-1001:1' ORDER BY id",
    )
    actions = [row[0] for row in rows]
    assert actions == ["sale_received", "adjust_sent", "adjust_sent", "sale_applied"], actions
    assert json.loads(rows[-1][1])["result"] == "duplicate"
