"""The relay wakes the shop's outbox drain when it starts: a signed call to the plugin's wake route.

A real relay (its start-up, its HTTP session) against the stand-in shop on 127.0.0.1 (fakes/shop.py); the
signature is checked with the relay's own verifier, the way the plugin checks it with its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fakes.shop import FakeShop
from relay import signing
from relay.config import ReconcileConfig

from .conftest import SITE_SECRET, Receiver, StartRelay, eventually, make_config, webhook_channel

QUIET = ReconcileConfig(incremental_minutes=0, full_hour=None, readback_hours=0)  # no pass: only the wake


@pytest.fixture
async def shop() -> AsyncIterator[FakeShop]:
    fake = await FakeShop("main", SITE_SECRET).start()
    yield fake
    await fake.stop()


def config_for(tmp_path: Path, receiver: Receiver, shop_url: str) -> Any:
    cfg = make_config(tmp_path / "state", (webhook_channel("a", receiver.url("/a")),))
    return replace(cfg, sites=(replace(cfg.sites[0], shop_url=shop_url, reconcile=QUIET),))


async def test_a_starting_relay_wakes_the_shop_with_a_signed_call(
    tmp_path: Path, shop: FakeShop, receiver: Receiver, start_relay: StartRelay
) -> None:
    """Once it listens, the relay posts a signed outbox.wake to the shop's wake route, once per start."""
    await start_relay(config_for(tmp_path, receiver, shop.url), run_workers=True)
    await eventually(lambda: shop.wakes, what="the wake call at the shop")
    headers, body = shop.wakes[0]
    timestamp = signing.verify([SITE_SECRET], headers, body, time.time())
    assert abs(timestamp - time.time()) < 60
    assert headers["webhook-id"].startswith("msg_")
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"type": "outbox.wake", "site": "main"}
    assert shop.refused == 0, "the stand-in's own HMAC check agrees"
    assert len(shop.wakes) == 1


async def test_a_relay_without_shop_url_wakes_nothing(
    tmp_path: Path, receiver: Receiver, start_relay: StartRelay
) -> None:
    running = await start_relay(config_for(tmp_path, receiver, ""), run_workers=True)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("wake ")]
    assert running.relay.serving.is_set()


async def test_a_slow_or_absent_shop_never_holds_up_start_up_and_is_one_warning(
    tmp_path: Path, shop: FakeShop, receiver: Receiver, start_relay: StartRelay, caplog: pytest.LogCaptureFixture
) -> None:
    """The call runs in the background: a shop that does not answer yet leaves the relay serving, and a shop
    that cannot be reached is one warning (never the secret), not a failed start."""
    shop.hold_wake = asyncio.Event()
    running = await start_relay(config_for(tmp_path, receiver, shop.url), run_workers=True)
    await eventually(lambda: shop.wakes, what="the wake call at the shop")
    status, _ = await running.client.post("status", {"type": "status.query", "site": "main"})
    assert status == 200, "the relay serves while the shop holds the wake call"
    shop.hold_wake.set()

    with caplog.at_level(logging.INFO, logger="stock_relay.shop_wake"):
        gone = await start_relay(config_for(tmp_path / "gone", receiver, "http://127.0.0.1:9"), run_workers=True)
        await eventually(lambda: [r for r in caplog.records if r.levelno == logging.WARNING], what="the warning")
        assert (await gone.client.post("status", {"type": "status.query", "site": "main"}))[0] == 200
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "could not wake the shop's outbox at http://127.0.0.1:9" in warnings[0], warnings
    assert SITE_SECRET[6:20] not in caplog.text


async def test_a_plugin_without_the_route_is_named_in_the_warning(
    tmp_path: Path, receiver: Receiver, start_relay: StartRelay, caplog: pytest.LogCaptureFixture
) -> None:
    """An older plugin answers 404 (WordPress's rest_no_route): the warning says to update it."""
    old = await FakeShop("main", SITE_SECRET).start()
    try:
        old.status_override = 404
        with caplog.at_level(logging.INFO, logger="stock_relay.shop_wake"):
            await start_relay(config_for(tmp_path, receiver, old.url), run_workers=True)
            await eventually(lambda: [r for r in caplog.records if r.levelno == logging.WARNING], what="the warning")
    finally:
        await old.stop()
    assert "HTTP 404 scripted" in caplog.text and "is the Stock Relay plugin up to date?" in caplog.text
