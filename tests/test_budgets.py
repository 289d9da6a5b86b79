"""Rate budgets, the circuit breaker and shared token refresh: the pieces marketplace connectors build on."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from relay import connectors
from relay.config import ChannelConfig, RateLimit
from relay.connectors.base import TokenAuth
from relay.delivery.circuit import CircuitBreaker
from relay.delivery.outbound import retry_after_seconds
from relay.delivery.ratelimit import RateBudget, TokenBucket
from relay.errors import AuthDeliveryError
from relay.runtime import prune_request_ids
from relay.storage.store import migrate


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_bucket_refills_at_its_rate_up_to_burst() -> None:
    """A bucket allows a burst, then exactly rate tokens per second."""
    clock = Clock()
    bucket = TokenBucket(rate=2, burst=3, now=clock)
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_time() == pytest.approx(0.5)
    clock.t += 0.5
    assert bucket.try_take() and not bucket.try_take()
    clock.t += 100
    assert sum(bucket.try_take() for _ in range(10)) == 3


def test_budget_halves_on_throttle_and_recovers() -> None:
    """A throttle answer halves the rate and blocks for Retry-After; successes win the rate back."""
    clock = Clock()
    budget = RateBudget(rate=10, burst=10, now=clock)
    budget.throttled(retry_after=2.0)
    assert budget.rate == 5 and budget.throttles == 1
    budget.throttled()
    budget.throttled()
    budget.throttled()
    assert budget.rate == pytest.approx(1.0)  # floor: a tenth of the published rate
    for _ in range(30):
        budget.succeeded()
    assert budget.rate == 10


async def test_budget_acquire_waits_out_retry_after() -> None:
    """After a throttle with Retry-After, acquire does not return before the pause is over."""
    budget = RateBudget(rate=1000, burst=1000)
    budget.throttled(retry_after=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await budget.acquire()
    assert loop.time() - started >= 0.19


def test_remaining_header_only_lowers() -> None:
    """A remaining-quota header can lower the tokens we think we have, never raise them."""
    clock = Clock()
    budget = RateBudget(rate=1, burst=10, now=clock)
    budget.observe_remaining(2)
    assert [budget.bucket.try_take() for _ in range(3)] == [True, True, False]
    budget.observe_remaining(50)
    assert not budget.bucket.try_take()


def test_circuit_opens_half_opens_and_backs_off() -> None:
    """Threshold failures open it; after the cool-down it half-opens; a failed probe doubles the cool-down."""
    clock = Clock()
    circuit = CircuitBreaker(threshold=3, open_seconds=10, max_open_seconds=25, now=clock)
    for _ in range(2):
        circuit.record_failure("503")
    assert circuit.state == "closed"
    circuit.record_failure("503")
    assert circuit.state == "open" and circuit.seconds_until_probe() == 10
    clock.t += 10
    assert circuit.state == "half_open"
    circuit.begin_probe()
    circuit.record_failure("503 again")
    assert circuit.state == "open" and circuit.open_for == 20 and circuit.reason == "503 again"
    clock.t += 20
    circuit.record_failure("still")
    assert circuit.open_for == 25  # capped
    clock.t += 25
    circuit.record_success()
    assert circuit.state == "closed" and circuit.failures == 0


async def test_token_refresh_is_shared_and_redone_after_401() -> None:
    """Concurrent callers trigger one refresh; invalidating the token (a 401) causes exactly one more."""
    issued: list[str] = []

    async def token_endpoint(request: web.Request) -> web.Response:
        await asyncio.sleep(0.05)
        issued.append(f"tok-{len(issued) + 1}")
        return web.json_response({"access_token": issued[-1], "expires_in": 900})

    app = web.Application()
    app.router.add_post("/token", token_endpoint)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()

    async with aiohttp.ClientSession() as session:

        async def fetch() -> tuple[str, float]:
            async with session.post(server.make_url("/token")) as response:
                doc = await response.json()
                return doc["access_token"], float(doc["expires_in"])

        auth = TokenAuth(fetch)
        tokens = await asyncio.gather(*(auth.token() for _ in range(20)))
        assert set(tokens) == {"tok-1"} and len(issued) == 1
        auth.invalidate("tok-1")
        auth.invalidate("tok-1")
        tokens = await asyncio.gather(*(auth.token() for _ in range(20)))
        assert set(tokens) == {"tok-2"} and len(issued) == 2
        auth.invalidate("tok-1")  # a late 401 for an old token does not throw away the new one
        assert await auth.token() == "tok-2" and len(issued) == 2
    await server.close()


async def test_token_refreshed_before_expiry() -> None:
    """A token within the margin of its expiry is replaced before use."""
    clock = Clock()
    count = 0

    async def fetch() -> tuple[str, float]:
        nonlocal count
        count += 1
        return f"t{count}", 100.0

    auth = TokenAuth(fetch, margin_seconds=10, now=clock)
    assert await auth.token() == "t1"
    clock.t += 85
    assert await auth.token() == "t1"
    clock.t += 6
    assert await auth.token() == "t2"


async def test_refused_credentials_surface_as_auth_error() -> None:
    """A token endpoint that refuses for good surfaces as AuthDeliveryError to the dispatcher."""

    async def fetch() -> tuple[str, float]:
        raise AuthDeliveryError("invalid_client: the app's credentials were revoked")

    with pytest.raises(AuthDeliveryError, match="revoked"):
        await TokenAuth(fetch).token()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), ("0", 0.0), (None, None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_retry_after_parsing(value: str | None, expected: float | None) -> None:
    """Retry-After is read as seconds or an HTTP date (a past date means now); nonsense is ignored."""
    assert retry_after_seconds(value) == expected


def test_old_request_ids_are_pruned(tmp_path: Path) -> None:
    """Remembered webhook-ids older than the cut-off are forgotten; newer ones are kept."""
    conn = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    migrate(conn)
    rows = [(f"m{i}", float(i)) for i in range(10)]
    conn.executemany("INSERT INTO requests (site, msg_id, response, received_at) VALUES ('s', ?, '{}', ?)", rows)
    assert prune_request_ids(conn, older_than=6.0) == (6, False)
    assert [r[0] for r in conn.execute("SELECT msg_id FROM requests ORDER BY received_at")] == ["m6", "m7", "m8", "m9"]


async def test_claims_grow_with_the_rate_they_are_sized_for() -> None:
    """Etsy's and TikTok's batch_size hold about 5 s of calls at the default rate: a budget 15 times faster claims 15
    times as many SKUs (at most 1,000), one slowed by a throttle no fewer than batch_size. Amazon and TikTok keep no
    more calls in flight than their burst."""

    def make(kind: str, batch: int, rate: float, burst: int, account: dict[str, str]) -> Any:
        config = ChannelConfig(name=kind, type=kind, batch_size=batch, rate=RateLimit(rate, burst), account=account)
        return connectors.build("main", config, session)

    async with aiohttp.ClientSession() as session:
        etsy = make("etsy", 25, 10.0, 10, {"shop_id": "1"})
        assert etsy.batch_size == 25
        etsy = make("etsy", 25, 150.0, 150, {"shop_id": "1"})
        assert etsy.batch_size == 375
        etsy.budget.throttled()
        assert etsy.batch_size == 187
        assert make("tiktok", 250, 10.0, 10, {}).batch_size == 250
        assert make("tiktok", 250, 30.0, 10, {}).batch_size == 750
        assert make("tiktok", 250, 150.0, 5, {}).batch_size == 1000
        assert make("tiktok", 250, 150.0, 5, {}).concurrency() == 5
        assert make("tiktok", 250, 10.0, 10, {}).concurrency() == 8
        amazon = {"seller_id": "A1", "marketplace_id": "M1"}
        assert make("amazon", 1000, 75.0, 2, amazon).single_concurrency() == 2
        assert make("amazon", 1000, 5.0, 50, amazon).single_concurrency() == 8
