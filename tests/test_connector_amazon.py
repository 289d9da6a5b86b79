"""The Amazon SP-API connector against the fake seller account, through a real relay.

Bodies are checked against Amazon's own models in ../shared/refs/specs/amazon-sp-api/ (see spec_files).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fakes.amazon import FakeAmazon
from relay.config import RateLimit

from .marketplaces import audit_text, channel, dead_reasons, marketplace_config, send, settle, states, store_credentials
from .spec_files import schema_validator, swagger_validator

SPEC = "amazon-sp-api/"


@pytest.fixture
async def amazon() -> AsyncIterator[FakeAmazon]:
    fake = FakeAmazon(feed_seconds=0.0)
    await fake.start()
    yield fake
    await fake.stop()


async def start(start_relay, tmp_path: Path, amazon: FakeAmazon, refresh: str | None = None, **overrides: Any):
    account = {
        "seller_id": amazon.seller_id,
        "marketplace_id": amazon.marketplace_id,
        "lwa_url": f"{amazon.url}/auth/o2/token",
    }
    config = marketplace_config(tmp_path / "state", channel("amazon", amazon.url, account, **overrides))
    creds = {
        "client_id": amazon.client_id,
        "client_secret": amazon.client_secret,
        "refresh_token": refresh or amazon.refresh_token,
    }
    store_credentials(config, "main/amazon", creds)
    return await start_relay(config)


def feed_channel() -> dict[str, Any]:
    """A slow patch budget (0.1/s: 2 per push window, a feed above 12), so a backlog of 25 goes as a feed."""
    return {"rate": RateLimit(0.1, 100), "batch_size": 200}


async def test_patch_sets_fulfillment_availability_as_the_spec_says(start_relay, tmp_path: Path, amazon) -> None:
    """One PATCH per SKU, body valid against ListingsItemPatchRequest, SKU percent-encoded in the path."""
    amazon.add_listings({"MUG-1": 0, "A/B 2": 0})
    r = await start(start_relay, tmp_path, amazon)
    await send(r, [("MUG-1", 7), ("A/B 2", 3)])
    await settle(r)
    assert amazon.listings == {"MUG-1": 7, "A/B 2": 3}
    validator = swagger_validator(SPEC + "listingsItems_2021-08-01.json", "ListingsItemPatchRequest")
    calls = amazon.calls("/listings/2021-08-01/items/", method="PATCH")
    assert len(calls) == 2
    for call in calls:
        validator.validate(call.json)
        assert call.json["patches"][0]["path"] == "/attributes/fulfillment_availability"
        assert call.query == {"marketplaceIds": amazon.marketplace_id}
        assert call.headers["x-amz-access-token"].startswith("Atza|")
    assert {c.json["patches"][0]["value"][0]["quantity"] for c in calls} == {7, 3}
    assert amazon.ignored == []


async def test_backlog_goes_as_one_json_listings_feed(start_relay, tmp_path: Path, amazon) -> None:
    """30 SKUs at a 1/s patch budget: one feed, every document valid against Amazon's schemas, all applied."""
    skus = {f"SKU-{n:03}": 0 for n in range(30)}
    amazon.add_listings(skus)
    r = await start(start_relay, tmp_path, amazon, **feed_channel())
    await send(r, [(sku, n + 1) for n, sku in enumerate(skus)])
    await settle(r)
    assert amazon.listings == {sku: n + 1 for n, sku in enumerate(skus)}
    assert amazon.calls("/listings/", method="PATCH") == []
    assert len(amazon.feeds) == 1
    feeds_spec = SPEC + "feeds_2021-06-30.json"
    swagger_validator(feeds_spec, "CreateFeedDocumentSpecification").validate(
        amazon.calls("/feeds/2021-06-30/documents", method="POST")[0].json
    )
    swagger_validator(feeds_spec, "CreateFeedSpecification").validate(
        amazon.calls("/feeds/2021-06-30/feeds", method="POST")[0].json
    )
    upload = amazon.calls("/presigned/", method="PUT")[0]
    assert "x-amz-access-token" not in upload.headers  # the presigned URL is not given the seller's token
    document = json.loads(upload.body)
    schema_validator(SPEC + "listings-feed-schema-v2.json").validate(document)
    message_validator = schema_validator(SPEC + "listings-feed-message-schema-v2.json")
    for message in document["messages"]:
        message_validator.validate(message)
    assert document["header"]["sellerId"] == amazon.seller_id


async def test_fake_processing_report_follows_amazons_schema(start_relay, tmp_path: Path, amazon) -> None:
    """The fake's report (what the connector parses) is valid against the processing-report schema."""
    amazon.add_listings({f"R-{n}": 0 for n in range(25)})
    amazon.invalid["R-3"] = "The quantity is not valid for this listing."
    r = await start(start_relay, tmp_path, amazon, **feed_channel())
    await send(r, [(f"R-{n}", 5) for n in range(25)])
    await settle(r)
    (feed,) = amazon.feeds.values()
    report = json.loads(gzip.decompress(amazon.documents[feed["report_id"]] or b""))
    schema_validator(SPEC + "listings-feed-processing-report-schema-v2.json").validate(report)
    assert report["summary"]["messagesInvalid"] == 1


async def test_feed_error_dead_letters_only_that_sku(start_relay, tmp_path: Path, amazon) -> None:
    """An ERROR issue in the processing report dead-letters its SKU; the rest of the feed is delivered."""
    skus = [f"F-{n}" for n in range(25)]
    amazon.add_listings(dict.fromkeys(skus, 0))
    amazon.invalid["F-7"] = "fulfillment_availability is not allowed for this offer."
    r = await start(start_relay, tmp_path, amazon, **feed_channel())
    await send(r, [(sku, 9) for sku in skus])
    await settle(r)
    got = await states(r)
    assert got["F-7"] == "dead" and all(got[s] == "delivered" for s in skus if s != "F-7")
    reason = (await dead_reasons(r))["F-7"]
    assert reason.startswith("Amazon refused SKU F-7 in feed ") and "not allowed for this offer" in reason


async def test_fatal_feed_is_sent_again(start_relay, tmp_path: Path, amazon) -> None:
    """A FATAL feed applied "some, none or all": its SKUs are sent again, and end up delivered."""
    skus = [f"X-{n}" for n in range(25)]
    amazon.add_listings(dict.fromkeys(skus, 0))
    amazon.end_next_feed_with = "FATAL"
    r = await start(start_relay, tmp_path, amazon, **feed_channel())
    await send(r, [(sku, 4) for sku in skus])
    await settle(r)
    assert all(amazon.listings[s] == 4 for s in skus)
    resent = len(amazon.calls("/listings/", method="PATCH")) + 25 * (len(amazon.feeds) - 1)
    assert resent >= 25 and set((await states(r)).values()) == {"delivered"}


async def test_newer_quantity_waits_for_the_feed_in_flight(start_relay, tmp_path: Path) -> None:
    """A change for a SKU whose feed is still processing is held until that feed is done, then sent."""
    fake = FakeAmazon(feed_seconds=0.6)
    await fake.start()
    try:
        skus = [f"W-{n}" for n in range(25)]
        fake.add_listings(dict.fromkeys(skus, 0))
        r = await start(start_relay, tmp_path, fake, **feed_channel())
        await send(r, [(sku, 1) for sku in skus])
        await r.drain()
        assert len(fake.feeds) == 1 and fake.listings["W-0"] == 0  # submitted, not processed yet
        await send(r, [("W-0", 2)], version=2)
        await r.drain()
        assert fake.calls("/listings/", method="PATCH") == []  # held back behind its feed
        await settle(r)
        assert fake.listings["W-0"] == 2 and fake.listings["W-1"] == 1
    finally:
        await fake.stop()


async def test_invalid_patch_is_dead_lettered_with_amazons_reason(start_relay, tmp_path: Path, amazon) -> None:
    """status INVALID in a 200 is permanent: dead letter naming the SKU and Amazon's issue."""
    amazon.add_listings({"OK": 0, "BAD": 0})
    amazon.invalid["BAD"] = "Listing is suppressed."
    r = await start(start_relay, tmp_path, amazon)
    await send(r, [("OK", 2), ("BAD", 2)])
    await settle(r)
    assert await states(r) == {"OK": "delivered", "BAD": "dead"}
    assert (await dead_reasons(r))["BAD"] == "Amazon refused SKU BAD: 90220 Listing is suppressed."


async def test_throttle_is_retried_and_the_rate_header_is_learned(start_relay, tmp_path: Path) -> None:
    """A 429 slows the budget and is retried; x-amzn-RateLimit-Limit becomes the patch rate."""
    fake = FakeAmazon(speed=2.0, feed_seconds=0.0)
    await fake.start()
    try:
        fake.add_listings({"T": 0})
        r = await start(start_relay, tmp_path, fake, rate=RateLimit(5, 5))
        fake.fail_next(1, 429, body={"errors": [{"code": "QuotaExceeded", "message": "slow down"}]}, method="PATCH")
        await send(r, [("T", 6)])
        await settle(r)
        connector = r.relay.workers[("main", "amazon")].connector
        assert fake.listings["T"] == 6 and connector.budget.throttles == 1
        assert connector.budget.published_rate == 10.0  # learned from the header (the fake runs at 2x)
    finally:
        await fake.stop()


async def test_server_errors_retry_and_client_errors_dead_letter(start_relay, tmp_path: Path, amazon) -> None:
    """503 is retried; 400 is permanent."""
    amazon.add_listings({"S": 0, "C": 0})
    r = await start(start_relay, tmp_path, amazon)
    amazon.fail_next(1, 503, body={"errors": [{"code": "ServiceUnavailable", "message": "try later"}]}, path="/S")
    amazon.fail_next(1, 400, body={"errors": [{"code": "InvalidInput", "message": "bad sku"}]}, path="/C")
    await send(r, [("S", 1), ("C", 1)])
    await settle(r)
    assert await states(r) == {"S": "delivered", "C": "dead"}
    assert (await dead_reasons(r))["C"] == "Amazon refused the request (400: InvalidInput bad sku)"


async def test_expired_token_refreshes_once_and_revoked_grant_pauses(start_relay, tmp_path: Path, amazon) -> None:
    """403 for an expired token refreshes once (shared); a refused refresh pauses the channel, leaking nothing."""
    amazon.add_listings({"A": 0, "B": 0})
    r = await start(start_relay, tmp_path, amazon)
    await send(r, [("A", 1)])
    await settle(r)
    amazon.tokens.expire_all()
    await send(r, [("A", 2), ("B", 2)], version=2)
    await settle(r)
    assert amazon.listings == {"A": 2, "B": 2} and amazon.tokens.issued == 2
    amazon.tokens.expire_all()
    amazon.tokens.revoke_refresh_tokens()
    await send(r, [("A", 3)], version=3)
    await r.drain()
    worker = r.relay.workers[("main", "amazon")]
    assert worker.circuit.state != "closed" and "Amazon refused to issue an access token" in worker.circuit.reason
    text = await audit_text(r)
    for secret in (amazon.client_secret, amazon.refresh_token):
        assert secret not in text
