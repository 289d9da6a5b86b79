"""The eBay connector against the fake eBay account, through a real relay."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fakes.common import Bucket
from fakes.ebay import FakeEbay
from relay.cli.client import stock_event
from relay.config import RateLimit
from relay.connectors.ebay import RevisionBudget

from .marketplaces import audit_text, channel, dead_reasons, marketplace_config, send, settle, states, store_credentials


@pytest.fixture
async def ebay() -> AsyncIterator[FakeEbay]:
    fake = FakeEbay()
    await fake.start()
    yield fake
    await fake.stop()


async def start(start_relay, tmp_path: Path, ebay: FakeEbay, account: dict[str, str] | None = None, refresh=None):
    config = marketplace_config(tmp_path / "state", channel("ebay", ebay.url, account or {}))
    creds = {
        "client_id": ebay.client_id,
        "client_secret": ebay.client_secret,
        "refresh_token": refresh or ebay.refresh_token,
    }
    store_credentials(config, "main/ebay", creds)
    return await start_relay(config)


def bulk_calls(ebay: FakeEbay) -> list[dict]:
    return [r.json for r in ebay.calls("bulk_update_price_quantity")]


async def test_packs_25_skus_per_call(start_relay, tmp_path: Path, ebay: FakeEbay) -> None:
    """30 SKUs go out as 25 + 5 requests, each setting shipToLocationAvailability.quantity."""
    skus = [f"S{i:02d}" for i in range(30)]
    for sku in skus:
        ebay.add_item(sku, 1)
    r = await start(start_relay, tmp_path, ebay)
    await send(r, [(sku, i) for i, sku in enumerate(skus)])
    await settle(r)
    assert sorted(len(c["requests"]) for c in bulk_calls(ebay)) == [5, 25]
    assert all(ebay.items[sku] == i for i, sku in enumerate(skus))
    assert bulk_calls(ebay)[0]["requests"][0] == {"sku": "S00", "shipToLocationAvailability": {"quantity": 0}}
    assert ebay.calls("bulk_update")[0].headers["authorization"].startswith("Bearer ")


async def test_a_claim_holds_a_second_of_calls(start_relay, tmp_path: Path, ebay: FakeEbay) -> None:
    """A claim is a second of bulk calls at the budget's rate (at 2 calls/s, 50 SKUs), at most 40 calls (1,000
    SKUs), sent one after another; a call that fails (503) gives its SKUs and the rest of the claim back, uncalled."""
    skus = [f"S{i:04d}" for i in range(1200)]
    for sku in skus:
        ebay.add_item(sku, 1)
    ebay.calls_bucket = Bucket(1000, 1000)  # an account whose call quota was raised, beyond the budget below
    config = marketplace_config(tmp_path / "state", channel("ebay", ebay.url, {}, batch_size=25, rate=RateLimit(2, 25)))
    creds = {"client_id": ebay.client_id, "client_secret": ebay.client_secret, "refresh_token": ebay.refresh_token}
    store_credentials(config, "main/ebay", creds)
    r = await start_relay(config)
    worker = r.relay.workers[("main", "ebay")]
    assert worker.connector.batch_size == 50
    worker.connector.budget.adopt(8, 25)
    assert worker.connector.batch_size == 200
    worker.connector.budget.adopt(100, 25)
    assert worker.connector.batch_size == 1000
    for start in range(0, len(skus), 500):  # a signed batch holds at most 500 events
        events = [stock_event(i + 1, sku, i, 1) for i, sku in enumerate(skus[start : start + 500], start)]
        assert (await r.client.send_events(events))[0] == 202
    ebay.fail_next(1, 503, path="bulk_update", body={"errors": []})
    assert await worker.drain_once() == 1000
    assert [len(c["requests"]) for c in bulk_calls(ebay)] == [25]  # the first call failed: nothing more was sent
    assert await r.count("SELECT COUNT(*) FROM deliveries WHERE last_error LIKE 'eBay answered 503%'") == 1000
    await settle(r)
    assert all(ebay.items[sku] == i for i, sku in enumerate(skus))
    assert max(len(c["requests"]) for c in bulk_calls(ebay)) == 25


async def test_changes_within_coalesce_seconds_cost_one_revision(start_relay, tmp_path: Path, ebay) -> None:
    """With coalesce_seconds, a change is due that long after it arrived, and the SKU's later changes meanwhile go
    out with it: one call, one revision, the newest quantity. The wait runs from the first change (a SKU that keeps
    changing is not put off for ever), and a change after the push waits afresh."""
    for sku in ("A", "B"):
        ebay.add_item(sku)
    # The relay's clock moves only when the test moves it: on the wall clock, a machine slow enough to take the
    # 0.4 s left in A's window between two steps saw the change go out early.
    offset, started = [0.0], time.time()
    config = marketplace_config(tmp_path / "state", channel("ebay", ebay.url, {}, coalesce_seconds=1.0))
    creds = {"client_id": ebay.client_id, "client_secret": ebay.client_secret, "refresh_token": ebay.refresh_token}
    store_credentials(config, "main/ebay", creds)
    r = await start_relay(config, now=lambda: started + offset[0])
    await send(r, [("A", 1), ("B", 5)])
    assert await r.drain() == 0  # waiting for more changes
    offset[0] += 0.6
    await send(r, [("A", 2)], version=2)
    assert await r.drain() == 0  # still within A's first second: the wait does not restart
    offset[0] += 0.5
    assert await r.drain() == 2
    assert [
        sorted((x["sku"], x["shipToLocationAvailability"]["quantity"]) for x in c["requests"]) for c in bulk_calls(ebay)
    ] == [[("A", 2), ("B", 5)]]
    assert await r.count("SELECT revisions FROM revisions WHERE sku = 'A'") == 1
    await send(r, [("A", 3)], version=3)
    assert await r.drain() == 0
    offset[0] += 1.0
    assert await r.drain() == 1 and ebay.items["A"] == 3


async def test_207_retries_transient_items_and_dead_letters_permanent(start_relay, tmp_path: Path, ebay) -> None:
    """In a 207, a 25001 system error is retried alone and a refused SKU dead-lettered; the rest are done."""
    for sku in ("OK", "FLAKY"):
        ebay.add_item(sku)
    ebay.item_failures["FLAKY"] = (500, 25001)
    r = await start(start_relay, tmp_path, ebay)
    await send(r, [("OK", 3), ("FLAKY", 4), ("NOPE", 5)])
    # One claim and push, not a drain: FLAKY's retry is due within the test backoff (5-10 ms), so a drain on a
    # slow machine pushed it again before its failure was cleared, and the calls below counted one more.
    assert await r.relay.workers[("main", "ebay")].drain_once() == 3
    assert await states(r) == {"OK": "delivered", "FLAKY": "pending", "NOPE": "dead"}
    ebay.item_failures.clear()
    await settle(r)
    assert await states(r) == {"OK": "delivered", "FLAKY": "delivered", "NOPE": "dead"}
    assert "eBay refused NOPE" in (await dead_reasons(r))["NOPE"]
    assert [sorted(x["sku"] for x in c["requests"]) for c in bulk_calls(ebay)] == [["FLAKY", "NOPE", "OK"], ["FLAKY"]]
    assert ebay.items == {"OK": 3, "FLAKY": 4}


async def test_throttle_429_is_retried_and_slows_the_budget(start_relay, tmp_path: Path, ebay) -> None:
    """A 429 (errorId 2001) halves the budget and the batch is retried after the Retry-After."""
    ebay.add_item("A")
    r = await start(start_relay, tmp_path, ebay)
    ebay.fail_next(1, 429, {"Retry-After": "0"}, {"errors": [{"errorId": 2001}]}, path="bulk_update")
    await send(r, [("A", 8)])
    await settle(r)
    assert ebay.items["A"] == 8
    assert r.relay.workers[("main", "ebay")].connector.budget.throttles == 1


async def test_expired_user_token_is_refreshed_and_secrets_stay_out(start_relay, tmp_path: Path, ebay) -> None:
    """A 401 gets one refresh with the stored refresh token; neither token reaches the audit log."""
    ebay.add_item("A")
    r = await start(start_relay, tmp_path, ebay)
    await send(r, [("A", 1)])
    await settle(r)
    ebay.tokens.expire_all()
    await send(r, [("A", 2)], version=2)
    await settle(r)
    assert ebay.items["A"] == 2 and ebay.tokens.issued == 2
    refresh = ebay.calls("oauth2/token")[-1].form
    assert refresh["grant_type"] == "refresh_token" and "sell.inventory" in refresh["scope"]
    text = await audit_text(r)
    assert ebay.refresh_token not in text and ebay.client_secret not in text


async def test_revoked_consent_pauses_the_channel(start_relay, tmp_path: Path, ebay) -> None:
    """An invalid_grant from the token endpoint pauses the channel; nothing is dead-lettered."""
    ebay.add_item("A")
    r = await start(start_relay, tmp_path, ebay, refresh="v^1.1#revoked")
    await send(r, [("A", 1)])
    await r.drain()
    worker = r.relay.workers[("main", "ebay")]
    assert worker.circuit.state != "closed" and "invalid_grant" in worker.circuit.reason
    assert await states(r) == {"A": "pending"}


async def test_offers_are_updated_when_asked(start_relay, tmp_path: Path, ebay) -> None:
    """With update_offers, each published offer gets availableQuantity so the listing shows the new quantity."""
    ebay.add_item("A", 1, offer_quantity=1)
    r = await start(start_relay, tmp_path, ebay, {"update_offers": "yes"})
    await send(r, [("A", 9)])
    await settle(r)
    assert ebay.shown("A") == 9
    assert bulk_calls(ebay)[0]["requests"][0]["offers"][0]["availableQuantity"] == 9


def test_daily_revision_budget_resets_at_pacific_midnight() -> None:
    """250 revisions per SKU per day; the 251st waits until eBay's next day."""
    budget = RevisionBudget(limit=2)
    noon = dt.datetime(2026, 3, 2, 20, 0, tzinfo=dt.UTC)  # 12:00 in Los Angeles
    budget.spend("A", noon)
    assert not budget.exhausted("A", noon)
    budget.spend("A", noon)
    assert budget.exhausted("A", noon) and not budget.exhausted("B", noon)
    assert budget.seconds_to_midnight(noon) == pytest.approx(12 * 3600)
    assert not budget.exhausted("A", noon + dt.timedelta(hours=12, seconds=1))


async def test_sku_over_its_revisions_is_held_back(start_relay, tmp_path: Path, ebay) -> None:
    """A SKU that used its daily revisions is not sent (it would be refused); it waits, its neighbours go."""
    for sku in ("A", "B"):
        ebay.add_item(sku)
    r = await start(start_relay, tmp_path, ebay)
    connector = r.relay.workers[("main", "ebay")].connector
    now = dt.datetime.now(dt.UTC)
    for _ in range(250):
        connector.revisions.spend("A", now)
    await send(r, [("A", 5), ("B", 6)])
    await r.drain()
    assert [sorted(x["sku"] for x in c["requests"]) for c in bulk_calls(ebay)] == [["B"]]
    error = await r.count("SELECT last_error FROM deliveries WHERE sku = 'A'")
    assert "250 revisions" in error


async def test_revision_budget_survives_a_restart(start_relay, tmp_path: Path, ebay) -> None:
    """The day's revision counts are in SQLite: a relay started again on the same file still holds back a SKU
    that used its 250, while a SKU with revisions left goes out."""
    for sku in ("A", "B"):
        ebay.add_item(sku)
    r = await start(start_relay, tmp_path, ebay)
    connector = r.relay.workers[("main", "ebay")].connector
    now = dt.datetime.now(dt.UTC)
    # 249 revisions made earlier today, by an earlier relay (when, it does not know); the push makes the 250th
    connector.revisions.restore(connector.revisions.today(now), {"A": 249})
    await send(r, [("A", 5), ("B", 6)])
    await settle(r)
    assert ebay.items == {"A": 5, "B": 6}
    saved = await r.relay.store.read("SELECT sku, day, revisions FROM revisions ORDER BY sku", ())
    day = connector.revisions.today(now).isoformat()
    assert [tuple(row) for row in saved] == [("A", day, 250), ("B", day, 1)]
    await r.relay.stop()

    again = await start_relay(r.relay.config)  # a new relay, a new connector, the same SQLite file
    await send(again, [("A", 7), ("B", 8)], version=2)
    await again.drain()
    assert [sorted(x["sku"] for x in c["requests"]) for c in bulk_calls(ebay)][-1] == ["B"]
    assert ebay.items == {"A": 5, "B": 8}
    assert await states(again) == {"A": "pending", "B": "delivered"}
    assert "250 revisions" in await again.count("SELECT last_error FROM deliveries WHERE sku = 'A'")
    assert await again.count("SELECT revisions FROM revisions WHERE sku = 'B'") == 2


def test_revisions_past_half_are_paced_to_last_until_midnight() -> None:
    """The first half of a SKU's revisions go at once; after that each waits (time to midnight ÷ revisions left)
    from the last, so a SKU that keeps selling is still revised until midnight; other SKUs and the next day are
    not affected."""
    budget = RevisionBudget(limit=10)
    noon = dt.datetime(2026, 3, 2, 20, 0, tzinfo=dt.UTC)  # 12:00 in Los Angeles: 12 h to midnight
    for _ in range(4):
        budget.spend("A", noon)
    assert budget.pacing_wait("A", noon) == 0.0  # 4 of 10 used
    budget.spend("A", noon)
    assert budget.pacing_wait("A", noon) == pytest.approx(12 * 3600 / 5)  # 5 left for 12 h
    one_hour = noon + dt.timedelta(hours=1)
    assert budget.pacing_wait("A", one_hour) == pytest.approx(11 * 3600 / 5 - 3600)
    assert budget.pacing_wait("A", noon + dt.timedelta(hours=3)) == 0.0
    assert budget.pacing_wait("B", noon) == 0.0
    assert budget.pacing_wait("A", noon + dt.timedelta(hours=12, seconds=1)) == 0.0  # a new day


async def test_a_sku_past_half_its_revisions_waits_without_opening_the_circuit(start_relay, tmp_path, ebay) -> None:
    """A SKU paced to last until midnight is held back as pending (its retry due when the pacing says), its
    neighbours go at once, and the channel stays healthy however often it is held."""
    for sku in ("A", "B"):
        ebay.add_item(sku)
    r = await start(start_relay, tmp_path, ebay)
    worker = r.relay.workers[("main", "ebay")]
    connector = worker.connector
    connector.revisions = RevisionBudget(limit=40)  # B's 6 revisions stay under half of it
    now = dt.datetime.now(dt.UTC)
    for _ in range(20):  # half of 40 used, the last just now: A's next waits (time to midnight ÷ 20)
        connector.revisions.spend("A", now)
    wait = connector.revisions.pacing_wait("A", now)
    for version in range(1, 7):  # held again and again: never a failure of the channel
        events = [stock_event(version * 10 + n, sku, version, version) for n, sku in enumerate(("A", "B"))]
        assert (await r.client.send_events(events))[0] == 202
        await r.drain()
    assert [sorted(x["sku"] for x in c["requests"]) for c in bulk_calls(ebay)] == [["B"]] * 6
    assert ebay.items["B"] == 6 and await states(r) == {"A": "pending", "B": "delivered"}
    assert worker.circuit.state == "closed"
    error = await r.count("SELECT last_error FROM deliveries WHERE sku = 'A'")
    assert "over half of eBay's 250 revisions" in error and "midnight" in error
    due = await r.count("SELECT next_attempt_at FROM deliveries WHERE sku = 'A'")
    assert due == pytest.approx(now.timestamp() + wait, abs=30)


def test_revision_counts_of_an_earlier_day_are_not_restored() -> None:
    """Yesterday's counts in the database do not hold anything back today; a count made since loading stays."""
    budget = RevisionBudget(limit=2)
    noon = dt.datetime(2026, 3, 2, 20, 0, tzinfo=dt.UTC)
    budget.spend("A", noon)
    budget.restore(budget.today(noon), {"A": 0, "B": 2})
    assert not budget.exhausted("A", noon) and budget.exhausted("B", noon)
    assert budget.take_unsaved() == (budget.today(noon), {"A": 1}) and budget.take_unsaved() is None
    tomorrow = noon + dt.timedelta(days=1)
    assert not budget.exhausted("B", tomorrow)
    budget.restore(budget.today(noon), {"B": 2})  # a load for a day already over changes nothing
    assert not budget.exhausted("B", tomorrow)


async def test_a_backlog_costs_one_commit_per_batch(start_relay, tmp_path: Path, ebay: FakeEbay) -> None:
    """While there is more to send, the settle of one batch claims the next in the same commit: after the first
    batch, two more cost two settles and the claim that finds nothing (three commits, not five), and nothing is
    left claimed afterwards."""
    skus = [f"S{i:02d}" for i in range(15)]
    for sku in skus:
        ebay.add_item(sku)
    config = marketplace_config(tmp_path / "state", channel("ebay", ebay.url, {}, batch_size=5, rate=RateLimit(1, 3)))
    creds = {"client_id": ebay.client_id, "client_secret": ebay.client_secret, "refresh_token": ebay.refresh_token}
    store_credentials(config, "main/ebay", creds)
    r = await start_relay(config)
    await send(r, [(sku, i + 1) for i, sku in enumerate(skus)])
    worker = r.relay.workers[("main", "ebay")]
    await worker.drain_once()  # the first claim also reads the saved revision counts: not part of what is counted
    before = r.relay.store.groups_committed
    assert await worker.drain() == 10
    assert r.relay.store.groups_committed - before == 3  # two settles (each claiming the next) and an empty claim
    assert all(ebay.items[sku] == i + 1 for i, sku in enumerate(skus))
    assert await r.count("SELECT COUNT(*) FROM deliveries WHERE claim_token IS NOT NULL") == 0
