"""Fault injection: a channel that misbehaves in every transient way converges with nothing dead-lettered; only
permanent faults dead-letter, with a reason a person can read.

The channel is a real HTTP server on 127.0.0.1 (a webhook receiver, or the fake Shopify for tokens) whose next
answers are scripted: 5xx, a timeout, a reset connection, a body that trickles in past the timeout, 429 storms
with and without Retry-After, malformed bodies. "Down for an hour" runs on a simulated clock that drives the
queue's backoff and the circuit breaker, so it takes a second, not an hour.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fakes.shopify import FakeShopify
from relay.cli.client import stock_event
from relay.config import ChannelConfig, DispatchConfig, RateLimit

from .conftest import CHANNEL_SECRET, eventually, make_config
from .marketplaces import channel as marketplace_channel
from .marketplaces import marketplace_config, settle, store_credentials

Fault = Callable[[web.Request], "asyncio.Future[web.StreamResponse] | web.StreamResponse"]


class FlakyChannel:
    """Answers each request with the next scripted fault, then 200; remembers what it accepted per SKU."""

    def __init__(self) -> None:
        self.script: list[str] = []
        self.shown: dict[str, int] = {}
        self.requests = 0
        self.down: Callable[[], bool] = lambda: False
        self.server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/hook"))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        body = await request.read()
        fault = self.script.pop(0) if self.script else ("503" if self.down() else "ok")
        if fault == "ok":
            for update in json.loads(body)["updates"]:
                self.shown[update["sku"]] = update["quantity"]
            return web.json_response({"ok": True})
        if fault.isdigit():
            return web.json_response({"error": "scripted"}, status=int(fault))
        if fault == "429-retry-after":
            return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "1"})
        if fault == "timeout":
            await asyncio.sleep(3)  # the channel's timeout is 0.5 s
            return web.json_response({"ok": True})
        if fault == "reset":
            assert request.transport is not None
            request.transport.abort()  # RST, no answer at all
            return web.Response()
        if fault == "slow-body":
            response = web.StreamResponse(status=200, headers={"content-type": "application/json"})
            await response.prepare(request)
            for _ in range(30):  # a byte every 0.1 s: the headers came quickly, the body never finishes in time
                await response.write(b" ")
                await asyncio.sleep(0.1)
            return response
        if fault == "malformed":
            return web.Response(status=502, text="<html><body>Bad gateway</body></html>", content_type="text/html")
        if fault == "garbage-200":
            return web.Response(status=200, text="\x00\x01not json{{{", content_type="application/json")
        raise AssertionError(f"unknown fault {fault}")


@pytest.fixture
async def flaky() -> AsyncIterator[FlakyChannel]:
    fake = FlakyChannel()
    app = web.Application()
    app.router.add_post("/hook", fake.handle)
    fake.server = TestServer(app, host="127.0.0.1")
    await fake.server.start_server()
    yield fake
    await fake.server.close()


def hook(url: str) -> ChannelConfig:
    return ChannelConfig(
        name="hook", type="webhook", url=url, secret=CHANNEL_SECRET, batch_size=10, rate=RateLimit(1000, 1000),
        timeout_seconds=0.5,
    )  # fmt: skip


@pytest.mark.parametrize(
    "faults",
    [
        ["500", "502", "503", "504"],
        ["timeout", "timeout"],
        ["reset", "reset", "reset"],
        ["slow-body", "slow-body"],
        ["429"] * 12,
        ["429-retry-after"] * 3,
        ["malformed", "malformed"],
        ["reset", "500", "timeout", "429", "malformed", "slow-body", "503"],
    ],
    ids=["5xx", "timeouts", "resets", "slow-bodies", "429-storm", "429-retry-after", "malformed", "mixed"],
)
async def test_transient_faults_converge_and_dead_letter_nothing(start_relay, tmp_path: Path, flaky, faults) -> None:
    r = await start_relay(make_config(tmp_path / "state", (hook(flaky.url),)))
    flaky.script = list(faults)
    truth = {f"T-{n}": n for n in range(1, 26)}
    status, _ = await r.client.send_events([stock_event(n, sku, q, 1) for n, (sku, q) in enumerate(truth.items(), 1)])
    assert status == 202
    await settle(r)
    assert flaky.shown == truth
    assert await r.count("SELECT COUNT(*) FROM dead_letters") == 0
    assert flaky.script == [], "every scripted fault must have been met"


@pytest.mark.parametrize(
    ("status", "reason"),
    [("400", "the webhook rejected the update (400)"), ("422", "the webhook rejected the update (422)")],
)
async def test_permanent_faults_dead_letter_with_a_readable_reason(
    start_relay, tmp_path: Path, flaky, status, reason
) -> None:
    r = await start_relay(make_config(tmp_path / "state", (hook(flaky.url),)))
    flaky.script = [status]
    assert (await r.client.send_events([stock_event(1, "P-1", 4, 1)]))[0] == 202
    await settle(r)
    rows = await r.relay.store.read("SELECT sku, reason FROM dead_letters", ())
    assert [row[0] for row in rows] == ["P-1"]
    assert reason in rows[0][1], rows[0][1]


async def test_a_channel_down_for_an_hour_of_simulated_time_converges(start_relay, tmp_path: Path, flaky) -> None:
    clock = [time.time()]  # starts at the real time: ingest checks signatures against it
    hour_ends = clock[0] + 3600
    flaky.down = lambda: clock[0] < hour_ends
    dispatch = DispatchConfig(backoff_base_seconds=1.0, backoff_max_seconds=900.0, idle_poll_seconds=0.05)
    config = replace(make_config(tmp_path / "state", (hook(flaky.url),)), dispatch=dispatch)
    r = await start_relay(config, now=lambda: clock[0])
    truth = {f"H-{n}": n for n in range(1, 11)}
    assert (await r.client.send_events([stock_event(n, s, q, 1) for n, (s, q) in enumerate(truth.items(), 1)]))[
        0
    ] == 202
    rounds = 0
    while await r.count("SELECT COUNT(*) FROM deliveries WHERE state <> 'delivered'") and rounds < 500:
        rounds += 1
        await r.drain()
        due = await r.count("SELECT MIN(next_attempt_at) FROM deliveries WHERE state = 'pending'")
        worker = r.relay.workers[("main", "hook")]
        clock[0] = max(clock[0] + 1, due or 0, clock[0] + worker.circuit.seconds_until_probe())
    assert flaky.shown == truth
    assert clock[0] >= hour_ends, "the channel must have been down for the whole simulated hour"
    assert clock[0] - hour_ends < 900 + 60, "after the hour, the next attempt comes within the maximum backoff"
    assert await r.count("SELECT COUNT(*) FROM dead_letters") == 0
    assert flaky.requests < 200, f"{flaky.requests} requests in an hour: backoff and the circuit must hold back"


@pytest.fixture
async def shop() -> AsyncIterator[FakeShopify]:
    fake = FakeShopify(token_lifetime=3600)
    await fake.start()
    yield fake
    await fake.stop()


async def test_tokens_expiring_mid_burst_are_refreshed_and_nothing_is_lost(start_relay, tmp_path: Path, shop) -> None:
    skus = [f"S-{n}" for n in range(1, 61)]
    for sku in skus:
        shop.add_variant(sku)
    config = marketplace_config(
        tmp_path / "state", marketplace_channel("shopify", shop.url, {"shop": "s", "location_id": "1"}, batch_size=5)
    )
    store_credentials(config, "main/shopify", {"client_id": shop.client_id, "client_secret": shop.client_secret})
    r = await start_relay(config)
    assert (await r.client.send_events([stock_event(n, s, n, 1) for n, s in enumerate(skus, 1)]))[0] == 202
    worker = r.relay.workers[("main", "shopify")]
    rounds = 0

    async def all_delivered() -> bool:
        nonlocal rounds
        if rounds in (2, 5, 8):
            shop.tokens.expire_all()  # mid-burst: the token in hand stops working between two batches
        rounds += 1
        await worker.drain_once()
        return bool(await r.count("SELECT COUNT(*) FROM deliveries WHERE state <> 'delivered'") == 0)

    await eventually(all_delivered, what="every update to be delivered")
    assert {sku: shop.quantity(sku) for sku in skus} == {sku: n for n, sku in enumerate(skus, 1)}
    assert await r.count("SELECT COUNT(*) FROM dead_letters") == 0
    assert shop.tokens.issued >= 4
