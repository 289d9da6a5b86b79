"""Oversold incidents reach the site's alert URL, signed, at least once and in order (issue 15 §5).

A real relay, the stand-in shop (fakes/shop.py) and a receiver in this process as the alert URL. Two systems sell
the last unit through the sales route; the shop answers -1 for the second, the relay records the incident and posts
it as ``alert.oversold``. The sender is driven by state (``send_due``), except where the running relay's own loop
is the point.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fakes.shop import FakeShop
from relay import signing
from relay.cli.client import SignedClient
from relay.config import Config, ReconcileConfig
from relay.delivery import alerts as alerts_module
from relay.errors import DeliveryError

from .conftest import SITE_SECRET, Receiver, Reply, StartRelay, eventually, make_config, webhook_channel

POS_SECRET = "whsec_ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
MARKET_SECRET = "whsec_QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8="
ALERT_SECRET = signing.new_secret()
QUIET = ReconcileConfig(incremental_minutes=0, full_hour=None, readback_hours=0)
SKU = "TS-LAST-1"


@pytest.fixture
async def shop() -> Any:
    fake = await FakeShop("main", SITE_SECRET).start()
    fake.add(1, SKU, 1)
    yield fake
    await fake.stop()


def config_for(tmp_path: Path, shop: FakeShop, receiver: Receiver, alerts: bool = True) -> Config:
    pos = webhook_channel("pos", receiver.url("/pos"), sales_secrets=(POS_SECRET,))
    market = webhook_channel("market", receiver.url("/market"), sales_secrets=(MARKET_SECRET,))
    cfg = make_config(tmp_path / "state", (pos, market))
    extra = {"alert_url": receiver.url("/alerts"), "alert_secrets": (ALERT_SECRET,)} if alerts else {}
    return replace(cfg, sites=(replace(cfg.sites[0], shop_url=shop.url, reconcile=QUIET, **extra),))


async def sell_the_last_unit_twice(r: Any, orders: tuple[str, str]) -> None:
    for channel, secret, order in (("pos", POS_SECRET, orders[0]), ("market", MARKET_SECRET, orders[1])):
        item = {"order": order, "line": "1", "sku": SKU, "quantity": 1, "kind": "sale"}
        doc = {"type": "sales.report", "site": "main", "items": [item]}
        status, _ = await SignedClient(r.base_url, "main", secret, r.session).post(f"channels/{channel}/sales", doc)
        assert status == 202
    assert await r.relay.shop_workers["main"].drain() == 2


def alerts(receiver: Receiver) -> list[dict[str, Any]]:
    """Each alert received, after checking its signature with the alert secret."""
    found = []
    for received in receiver.for_path("/alerts"):
        signing.verify([ALERT_SECRET], received.headers, received.body, time.time())
        found.append({"id": received.headers["webhook-id"], **json.loads(received.body)})
    return found


async def test_an_oversold_incident_is_posted_signed_once_and_a_failed_post_is_retried(
    tmp_path: Path, shop: FakeShop, receiver: Receiver, start_relay: StartRelay
) -> None:
    r = await start_relay(config_for(tmp_path, shop, receiver))
    sender = r.relay.alert_senders["main"]
    assert await sender.send_due() == 0, "nothing yet: the cursor starts at the newest incident (none)"
    receiver.on("/alerts", Reply(status=503))
    await sell_the_last_unit_twice(r, ("P-1", "M-7"))
    with pytest.raises(DeliveryError, match="503"):
        await sender.send_due()
    assert await sender.send_due() == 1, "sent again after the failure"
    first, second = alerts(receiver)
    assert first["id"] == second["id"], "the same incident keeps its webhook-id, so a resend can be told apart"
    assert second["type"] == "alert.oversold" and second["site"] == "main"
    incident = second["incident"]
    assert (incident["sku"], incident["shop_quantity"], incident["key"]) == (SKU, -1, "market:M-7:1")
    assert incident["channels"] == ["market", "pos"]
    assert await sender.send_due() == 0, "once accepted, not again"


async def test_the_cursor_survives_a_restart_and_starts_at_the_newest_incident(
    tmp_path: Path, shop: FakeShop, receiver: Receiver, start_relay: StartRelay
) -> None:
    """An incident from before the alert URL was configured is not posted; one after is, once, across a restart."""
    r = await start_relay(config_for(tmp_path, shop, receiver, alerts=False))
    await sell_the_last_unit_twice(r, ("P-1", "M-7"))
    await r.relay.stop()
    cfg = config_for(tmp_path, shop, receiver)
    r = await start_relay(cfg)
    assert await r.relay.alert_senders["main"].send_due() == 0
    shop.products[1].quantity = 0
    await sell_the_last_unit_twice(r, ("P-2", "M-8"))  # 0 → -1 → -2: one more incident each
    assert await r.relay.alert_senders["main"].send_due() == 2
    await r.relay.stop()
    r = await start_relay(cfg)
    assert await r.relay.alert_senders["main"].send_due() == 0
    assert [a["incident"]["key"] for a in alerts(receiver)] == ["pos:P-2:1", "market:M-8:1"]


async def test_the_running_relay_posts_an_incident_as_it_is_recorded(
    tmp_path: Path, shop: FakeShop, receiver: Receiver, start_relay: StartRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shop worker wakes the sender when it records an incident (the sender's own idle poll made an hour here,
    so only the wake-up can deliver it)."""
    monkeypatch.setattr(alerts_module, "IDLE_SECONDS", 3600.0)
    r = await start_relay(config_for(tmp_path, shop, receiver), run_workers=True)
    await eventually(lambda: r.relay.alert_senders["main"].cursor is not None, what="the sender to start")
    for channel, secret, order in (("pos", POS_SECRET, "P-1"), ("market", MARKET_SECRET, "M-7")):
        item = {"order": order, "line": "1", "sku": SKU, "quantity": 1, "kind": "sale"}
        doc = {"type": "sales.report", "site": "main", "items": [item]}
        assert (await SignedClient(r.base_url, "main", secret, r.session).post(f"channels/{channel}/sales", doc))[
            0
        ] == 202
    await eventually(lambda: len(receiver.for_path("/alerts")) == 1, what="the alert to be posted")
    assert alerts(receiver)[0]["incident"]["shop_quantity"] == -1
