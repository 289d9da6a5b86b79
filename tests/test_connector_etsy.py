"""The Etsy connector against the fake Etsy shop, through a real relay."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from fakes.etsy import FakeEtsy
from relay.connectors.quota import QuotaGate
from relay.http.operator_api import site_status

from .conftest import eventually
from .marketplaces import audit_text, channel, dead_reasons, marketplace_config, send, settle, states, store_credentials


@pytest.fixture
async def etsy() -> AsyncIterator[FakeEtsy]:
    fake = FakeEtsy()
    await fake.start()
    yield fake
    await fake.stop()


async def start(start_relay, tmp_path: Path, etsy: FakeEtsy, refresh: str | None = None, now=time.time):
    config = marketplace_config(tmp_path / "state", channel("etsy", etsy.url, {"shop_id": str(etsy.shop_id)}))
    creds = {
        "keystring": etsy.keystring,
        "shared_secret": etsy.shared_secret,
        "refresh_token": refresh or etsy.refresh_token,
    }
    store_credentials(config, "main/etsy", creds)
    return await start_relay(config, now=now)


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


# --- the day's quota -------------------------------------------------------------------------------


def drained_as_the_clock_moves(r, clock: list[float]):
    """For ``eventually``: drain; nothing pending yet? move the test's ``clock`` 50 ms on (waiting out a quota hold)."""

    async def nothing_pending() -> bool:
        await r.drain()
        if await r.count("SELECT COUNT(*) FROM deliveries WHERE state = 'pending'") == 0:
            return True
        clock[0] += 0.05
        return False

    return nothing_pending


async def test_fake_etsy_counts_a_rolling_day() -> None:
    """The fake's contract: x-remaining-today on every success, down to 0; then 429 with the retry-after of the
    oldest call leaving the window; room again once it has."""
    clock = [0.0]  # the day is the test's: on the wall clock, four calls taking over a second found room again
    fake = FakeEtsy(qpd=3, day_seconds=1.0, clock=lambda: clock[0])
    listing = fake.add_listing({"A": 1})
    await fake.start()
    try:
        token, _ = fake.tokens.issue()
        headers = {"x-api-key": f"{fake.keystring}:{fake.shared_secret}", "Authorization": f"Bearer {token}"}
        url = f"{fake.url}/v3/application/listings/{listing}/inventory"
        async with aiohttp.ClientSession() as session:

            async def get() -> tuple[int, dict[str, str]]:
                async with session.get(url, headers=headers) as response:
                    return response.status, {k.lower(): v for k, v in response.headers.items()}

            answers = [await get() for _ in range(4)]
            assert [a[0] for a in answers] == [200, 200, 200, 429]
            assert [a[1]["x-remaining-today"] for a in answers[:3]] == ["2", "1", "0"]
            assert answers[3][1]["retry-after"] == "1" and "x-remaining-today" not in answers[3][1]
            clock[0] += 0.99
            assert (await get())[0] == 429, "the oldest call is still in the window"
            clock[0] += 0.02
            status, after = await get()
            assert status == 200 and after["x-remaining-today"] == "2"  # the refused call was not counted
    finally:
        await fake.stop()
    assert fake.day_refusals == 2


async def test_spent_daily_quota_holds_the_channel_and_it_resumes_by_itself(start_relay, tmp_path: Path) -> None:
    """x-remaining-today: 0 holds the channel: no call until the quota returns, the reason in status, the held
    items pending with no attempt counted; then it resumes alone and delivers everything, nothing dead-lettered."""
    # One clock, the test's, for Etsy's day, the connector's hold and the relay (circuit and queue): on the wall
    # clock, a machine that took 0.3 s between two steps found the hold over and a probe made "meanwhile".
    clock = [time.time()]  # starts at the real time: ingest checks signatures against it
    etsy = FakeEtsy(qpd=8, day_seconds=1.5, clock=lambda: clock[0])  # the scan (5) and A (2) leave B's read
    await etsy.start()
    try:
        for sku in ("A", "B", "C"):
            etsy.add_listing({sku: 1})
        r = await start(start_relay, tmp_path, etsy, now=lambda: clock[0])
        worker = r.relay.workers[("main", "etsy")]
        worker.connector.quota = QuotaGate(now=lambda: clock[0])
        worker.connector.quota_probe_seconds = 0.3  # a minute in production; the window here is 1.5 s
        await send(r, [("A", 4), ("B", 5), ("C", 6)])
        await r.drain()
        assert await states(r) == {"A": "delivered", "B": "pending", "C": "pending"}
        assert etsy.quantity("A") == 4 and etsy.quantity("B") == 1
        calls = len(etsy.requests)
        assert etsy.day_refusals == 0 and len(etsy.calls("/v3/application/")) == 8, "held before being refused"
        status = await site_status(r.relay, r.relay.config.sites[0])
        row = status["channels"][0]
        assert row["circuit"] == "open" and "daily quota" in row["circuit_reason"]
        assert row["circuit_retry_in"] is not None and row["circuit_retry_in"] > 0
        held = await r.relay.store.read("SELECT attempts, last_error FROM deliveries WHERE sku IN ('B', 'C')", ())
        assert all(attempts == 0 and "daily quota" in error for attempts, error in held)
        audited = await r.relay.store.read(
            "SELECT DISTINCT json_extract(detail, '$.outcome') FROM audit WHERE sku IN ('B', 'C') AND action = 'attempt'"
        )
        assert [row[0] for row in audited] == ["held"], "a spent quota is not an auth failure"
        clock[0] += 0.29
        await r.drain()
        assert len(etsy.requests) == calls, "no call while held"
        clock[0] += 1.5  # the hold is over, and the day's first calls have left the window
        await eventually(drained_as_the_clock_moves(r, clock), what="no delivery to be pending")
    finally:
        await etsy.stop()
    assert [etsy.quantity(s) for s in ("A", "B", "C")] == [4, 5, 6]
    assert await dead_reasons(r) == {}
    assert etsy.day_refusals <= 1, "at most the probe is refused; then the 429's retry-after is waited out"
    assert worker.circuit.state == "closed" and worker.connector.budget.throttles == 0


async def test_429_for_the_day_holds_for_its_retry_after(start_relay, tmp_path: Path) -> None:
    """Another app of the same key spent the day: the first call's 429 (retry-after 2 s) holds the channel that
    long, without halving its per-second budget or retrying item by item; then the update goes through."""
    # The test's clock for Etsy's day, the hold and the relay: on the wall clock, a relay slow to start saw a
    # retry-after of 1 s, and one slow to check saw less than a second of the hold left.
    clock = [time.time()]  # starts at the real time: ingest checks signatures against it
    etsy = FakeEtsy(qpd=8, day_seconds=2.0, clock=lambda: clock[0])  # room, later, for the scan (5), read, write
    await etsy.start()
    try:
        etsy.add_listing({"A": 1})
        for _ in range(8):
            etsy.day.take()
        r = await start(start_relay, tmp_path, etsy, now=lambda: clock[0])
        worker = r.relay.workers[("main", "etsy")]
        worker.connector.quota = QuotaGate(now=lambda: clock[0])
        await send(r, [("A", 7)])
        await r.drain()
        assert etsy.day_refusals == 1 and await states(r) == {"A": "pending"}
        assert "retry-after 2 s" in worker.circuit.reason and worker.circuit.seconds_until_probe() == 2.0
        assert worker.connector.budget.throttles == 0 and worker.connector.budget.rate == worker.channel.rate.per_second
        clock[0] += 1.99
        await r.drain()
        assert etsy.day_refusals == 1 and await states(r) == {"A": "pending"}, "held for the whole retry-after"
        clock[0] += 0.02
        await eventually(drained_as_the_clock_moves(r, clock), what="no delivery to be pending")
    finally:
        await etsy.stop()
    assert etsy.quantity("A") == 7 and etsy.day_refusals == 1
    assert await dead_reasons(r) == {}
