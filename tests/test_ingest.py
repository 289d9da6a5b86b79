"""The ingest endpoint over real HTTP: every error row of docs/wire-protocol.md §2, partial acceptance, idempotency, durability."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import time
from dataclasses import replace
from pathlib import Path
from unittest.mock import ANY

import pytest

from relay import signing
from relay.cli.client import stock_event
from relay.config import SiteConfig

from .backend import read_rows
from .conftest import SITE_SECRET, make_config, webhook_channel


def signed(
    doc: object, secret: str = SITE_SECRET, msg_id: str = "msg_test", ts: int | None = None, raw: bytes | None = None
) -> tuple[bytes, dict[str, str]]:
    body = raw if raw is not None else json.dumps(doc).encode()
    headers = signing.signed_headers(secret, msg_id, ts if ts is not None else int(time.time()), body)
    headers["content-type"] = "application/json"
    return body, headers


def batch(*events: dict) -> dict:
    return {"type": "stock.batch", "site": "main", "events": list(events)}


async def test_accepts_and_commits_before_answering(start_relay, tmp_path: Path) -> None:
    """A 202 means the event is already committed to the store: a fresh connection sees it."""
    r = await start_relay()
    status, answer = await r.client.send_events([stock_event(1, "SKU-1", 7, 1)])
    assert status == 202 and answer == {"accepted": 1, "duplicates": 0, "stale": 0, "rejected": []}
    assert read_rows(r.relay.config.database_path, "SELECT sku, stock_quantity FROM events") == [("SKU-1", 7)]


async def test_ping_reports_version_time_and_channels(start_relay, tmp_path: Path, receiver) -> None:
    """ping answers the relay version, the server time and the site's channels."""
    r = await start_relay(make_config(tmp_path / "s", (webhook_channel("shop-hook", receiver.url("/a")),)))
    status, answer = await r.client.ping()
    assert status == 200
    assert answer["type"] == "pong" and answer["relay_version"] and answer["server_time"].endswith("Z")
    assert answer["channels"] == [{"name": "shop-hook", "type": "webhook"}]


@pytest.mark.parametrize(
    ("name", "make", "status", "code"),
    [
        ("malformed json", lambda: signed(None, raw=b'{"type": "stock.batch", '), 400, "malformed_json"),
        ("not utf-8", lambda: signed(None, raw=b'{"type": "\xff"}'), 400, "malformed_json"),
        (
            "duplicate keys",
            lambda: signed(None, raw=b'{"type": "stock.batch", "type": "ping", "events": []}'),
            400,
            "malformed_json",
        ),
        ("NaN", lambda: signed(None, raw=b'{"type": "stock.batch", "events": [NaN]}'), 400, "malformed_json"),
        (
            "deep nesting",
            lambda: signed(None, raw=b'{"type": "stock.batch", "events": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
            400,
            "malformed_json",
        ),
        (
            "huge integer",
            lambda: signed(None, raw=b'{"type": "stock.batch", "events": [' + b"9" * 5000 + b"]}"),
            400,
            "malformed_json",
        ),
        ("array body", lambda: signed([1, 2]), 400, "malformed_json"),
        ("type mismatch", lambda: signed({"type": "ping", "events": []}), 400, "type_mismatch"),
        ("site mismatch", lambda: signed({"type": "stock.batch", "site": "other", "events": []}), 400, "type_mismatch"),
        ("missing type", lambda: signed({"events": []}), 400, "missing_field"),
        ("missing events", lambda: signed({"type": "stock.batch"}), 400, "missing_field"),
        ("empty events", lambda: signed({"type": "stock.batch", "events": []}), 400, "missing_field"),
        (
            "batch too large",
            lambda: signed(batch(*[stock_event(i, f"S{i}", 1, 1) for i in range(1, 502)])),
            400,
            "batch_too_large",
        ),
        (
            "no signature",
            lambda: (json.dumps(batch()).encode(), {"content-type": "application/json"}),
            401,
            "signature_missing",
        ),
        ("wrong secret", lambda: signed(batch(), secret=signing.new_secret()), 401, "signature_invalid"),
        ("old timestamp", lambda: signed(batch(), ts=int(time.time()) - 301), 401, "timestamp_out_of_tolerance"),
        ("future timestamp", lambda: signed(batch(), ts=int(time.time()) + 301), 401, "timestamp_out_of_tolerance"),
        ("wrong content type", lambda: (b"{}", {"content-type": "text/plain"}), 415, "unsupported_media_type"),
        (
            "form body",
            lambda: (b"a=1", {"content-type": "application/x-www-form-urlencoded"}),
            415,
            "unsupported_media_type",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
async def test_error_rows(start_relay, name: str, make, status: int, code: str) -> None:
    """Each whole-request error has its docs/wire-protocol.md status and code, a readable message, and stores nothing."""
    r = await start_relay()
    body, headers = make()
    got, answer, _ = await r.post_raw("/v1/sites/main/events", body, headers)
    assert (got, answer["error"]["code"]) == (status, code)
    assert answer["error"]["message"] and "Traceback" not in answer["error"]["message"]
    assert SITE_SECRET not in json.dumps(answer)
    assert await r.count("SELECT COUNT(*) FROM events") == 0
    assert await r.count("SELECT COUNT(*) FROM requests") == 0


async def test_out_of_tolerance_says_server_clock(start_relay) -> None:
    """The 401 for clock skew tells the operator the relay's clock."""
    r = await start_relay()
    body, headers = signed(batch(), ts=int(time.time()) - 4000)
    _, answer, _ = await r.post_raw("/v1/sites/main/events", body, headers)
    assert answer["error"]["server_time"].endswith("Z")


async def test_unknown_site(start_relay) -> None:
    """A site the relay does not serve is 404 unknown_site."""
    r = await start_relay()
    body, headers = signed(batch())
    got, answer, _ = await r.post_raw("/v1/sites/nope/events", body, headers)
    assert (got, answer["error"]["code"]) == (404, "unknown_site")


@pytest.mark.parametrize("chunked", [False, True])
async def test_body_too_large(start_relay, chunked: bool) -> None:
    """Over 1 MiB is 413 body_too_large, whether declared up front or streamed without a length."""
    r = await start_relay()
    body = b'{"type": "stock.batch", "events": ["' + b"x" * (1024 * 1024) + b'"]}'
    _, headers = signed(None, raw=body)

    async def stream():
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    got, answer, _ = await r.post_raw("/v1/sites/main/events", stream() if chunked else io.BytesIO(body), headers)
    assert (got, answer["error"]["code"]) == (413, "body_too_large")


async def test_rate_limited_with_retry_after(start_relay, tmp_path: Path) -> None:
    """Past the site's request rate the relay answers 429 rate_limited with Retry-After."""
    cfg = make_config(tmp_path / "s")
    cfg = replace(cfg, sites=(replace(cfg.sites[0], max_requests_per_second=1),))
    r = await start_relay(cfg)
    statuses = []
    for i in range(4):
        body, headers = signed(batch(stock_event(i + 1, f"R{i}", 1, 1)), msg_id=f"msg_{i}")
        got, answer, response_headers = await r.post_raw("/v1/sites/main/events", body, headers)
        statuses.append(got)
    assert statuses[:2] == [202, 202] and statuses[-1] == 429
    assert answer["error"]["code"] == "rate_limited" and int(response_headers["Retry-After"]) >= 1


@pytest.mark.sqlite_only("fills the database by capping SQLite's page count")
async def test_storage_full_is_503_then_recovers(start_relay) -> None:
    """A full database answers 503 storage_unavailable with Retry-After, acknowledges nothing, and recovers by itself."""
    r = await start_relay()
    pages = await r.relay.store.write(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
    await r.relay.store.write(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))
    events = [stock_event(i, f"FULL-{i}-" + "x" * 150, 5, 1) for i in range(1, 400)]
    status, answer = await r.client.send_events(events, msg_id="msg_full")
    assert status == 503 and answer["error"]["code"] == "storage_unavailable"
    assert await r.count("SELECT COUNT(*) FROM events") == 0
    await r.relay.store.write(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
    status, answer = await r.client.send_events(events, msg_id="msg_full")
    assert status == 202 and answer["accepted"] == 399


async def test_shutting_down_is_503(start_relay) -> None:
    """Once shutdown begins, ingest refuses with 503 shutting_down and Retry-After."""
    r = await start_relay()
    r.relay.begin_shutdown()
    body, headers = signed(batch(stock_event(1, "A", 1, 1)))
    got, answer, response_headers = await r.post_raw("/v1/sites/main/events", body, headers)
    assert (got, answer["error"]["code"]) == (503, "shutting_down") and response_headers["Retry-After"]
    assert await r.count("SELECT COUNT(*) FROM events") == 0


async def test_partial_acceptance(start_relay) -> None:
    """Valid events of a batch are kept; each invalid one is listed with its id, code and message."""
    r = await start_relay()
    good = stock_event(1, "GOOD", 3, 1)
    bad = [
        stock_event(2, "Q", 1, 1) | {"stock_quantity": -1_000_001},
        stock_event(3, "T", 1, 1) | {"stock_quantity": True},
        stock_event(4, "S", 1, 1) | {"stock_status": "sold"},
        stock_event(5, "V", 1, 1) | {"version": 0},
        stock_event(6, "C\u0007TRL", 1, 1),
        stock_event(7, " padded", 1, 1),
        stock_event(8, "K", 1, 1) | {"kind": "moved"},
        {k: v for k, v in stock_event(9, "M", 1, 1).items() if k != "version"},
        "not an object",
        stock_event(10, "X" * 192, 1, 1),
        stock_event(11, "P", 1, 1) | {"product_id": 2**63},
        stock_event(12, "D", 1, 1) | {"occurred_at": "yesterday"},
        stock_event(13, "E", 1, 1) | {"cause": {"kind": "magic"}},
    ]
    status, answer = await r.client.send_events([good, *bad])
    assert status == 202 and answer["accepted"] == 1
    codes = [x["code"] for x in answer["rejected"]]
    assert codes == [
        "invalid_quantity", "invalid_quantity", "invalid_stock_status", "invalid_version", "invalid_sku", "invalid_sku",
        "invalid_kind", "missing_field", "invalid_event", "invalid_sku", "invalid_product_id", "invalid_timestamp",
        "invalid_cause",
    ]  # fmt: skip
    assert answer["rejected"][0]["id"] == bad[0]["id"]
    assert await r.count("SELECT COUNT(*) FROM events") == 1


async def test_unicode_sku_kept_exactly(start_relay) -> None:
    """Non-ASCII SKUs are stored byte for byte."""
    r = await start_relay()
    status, _ = await r.client.send_events([stock_event(1, "MÜTZE-Blau/XL-😀", 2, 1)])
    assert status == 202
    assert await r.count("SELECT sku FROM events") == "MÜTZE-Blau/XL-😀"


async def test_repeat_webhook_id_answers_original(start_relay) -> None:
    """A resent batch (same webhook-id) gets the original answer and does no work twice."""
    r = await start_relay()
    events = [stock_event(1, "A", 5, 1)]
    first = await r.client.send_events(events, msg_id="msg_same")
    body, headers = r.client.encode({"type": "stock.batch", "site": "main", "events": events}, "msg_same")
    got, answer, response_headers = await r.post_raw("/v1/sites/main/events", body, headers)
    assert (got, answer) == first
    assert response_headers.get("Idempotent-Replayed") == "true"
    assert await r.count("SELECT COUNT(*) FROM events") == 1
    assert await r.count("SELECT COUNT(*) FROM audit WHERE action = 'received'") == 1


async def test_duplicates_and_stale(start_relay) -> None:
    """A repeated event id counts as duplicate; an older version counts as stale and is audited."""
    r = await start_relay()
    newer = stock_event(1, "A", 5, 10)
    await r.client.send_events([newer])
    status, answer = await r.client.send_events([newer, stock_event(1, "A", 9, 9), stock_event(1, "A", 8, 10)])
    assert status == 202 and answer == {"accepted": 0, "duplicates": 1, "stale": 2, "rejected": []}
    assert await r.count("SELECT COUNT(*) FROM audit WHERE action = 'stale'") == 2
    assert await r.count("SELECT version FROM product_versions") == 10


async def test_sites_are_isolated(start_relay, tmp_path: Path, receiver) -> None:
    """Each site verifies with its own secret and fans out only to its own channels."""
    other_secret = signing.new_secret()
    cfg = make_config(tmp_path / "s", (webhook_channel("a", receiver.url("/a")),))
    other = SiteConfig(
        id="other",
        secrets=(other_secret,),
        channels=(webhook_channel("b", receiver.url("/b")),),
        max_requests_per_second=0,
    )
    r = await start_relay(replace(cfg, sites=(cfg.sites[0], other)))
    body, headers = signed(
        {"type": "stock.batch", "site": "other", "events": [stock_event(1, "A", 1, 1)]}, secret=SITE_SECRET
    )
    got, answer, _ = await r.post_raw("/v1/sites/other/events", body, headers)
    assert (got, answer["error"]["code"]) == (401, "signature_invalid")
    await r.client.send_events([stock_event(1, "A", 1, 1)])
    rows = await r.relay.store.read("SELECT site, channel FROM deliveries")
    assert [tuple(x) for x in rows] == [("main", "a")]


async def test_event_without_sku_is_kept_but_not_delivered(start_relay, tmp_path: Path, receiver) -> None:
    """A product without a SKU is accepted and audited as skipped; no channel is asked to change."""
    r = await start_relay(make_config(tmp_path / "s", (webhook_channel("a", receiver.url("/a")),)))
    status, answer = await r.client.send_events([stock_event(1, "", 5, 1)])
    assert status == 202 and answer["accepted"] == 1
    assert await r.count("SELECT COUNT(*) FROM deliveries") == 0
    assert await r.count("SELECT COUNT(*) FROM audit WHERE action = 'skipped'") == 1


async def test_method_and_path_errors_are_json(start_relay) -> None:
    """Wrong method or path still answers in the error envelope."""
    r = await start_relay()
    async with r.session.get(r.base_url + "/v1/sites/main/events") as response:
        assert response.status == 405 and (await response.json())["error"]["code"] == "method_not_allowed"
    async with r.session.post(r.base_url + "/nowhere") as response:
        assert response.status == 404 and (await response.json())["error"]["code"] == "not_found"


def _batch_jobs() -> list:
    """Concurrent batches that exercise every judgement: duplicates, stale, repeats, no SKU, two sites."""
    from relay.intake.ingest import BatchWrite
    from relay.intake.protocol import Rejection, validate_event

    def ev(n: int, product: int, version: int, sku: str) -> object:
        return validate_event(stock_event(product, sku, n, version, event_id=f"evt_{n}"))

    bad = Rejection("evt_bad", "invalid_quantity", "stock_quantity must be an integer")
    return [
        BatchWrite("main", ("a", "b"), "msg_1", (ev(1, 1, 2, "SKU-A"), ev(2, 2, 1, "")), (), 1000.0),
        BatchWrite("main", ("a", "b"), "msg_2", (ev(1, 1, 2, "SKU-A"), ev(3, 1, 1, "SKU-A"), ev(4, 1, 3, "SKU-A")), (), 1001.5),
        BatchWrite("main", ("a", "b"), "msg_1", (ev(9, 9, 9, "SKU-Z"),), (), 1002.25),
        BatchWrite("other", ("c",), "msg_1", (ev(1, 1, 1, "SKU-A"),), (), 1003.0),
        BatchWrite("main", ("a", "b"), "msg_3", (ev(5, 1, 3, "SKU-A"), ev(6, 3, 1, "SKU-B")), (bad,), 1004.125),
    ]  # fmt: skip


def _dump(path: Path) -> dict[str, list]:
    with sqlite3.connect(path) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3").fetchall()
            for table in ("events", "product_versions", "deliveries", "audit", "requests")
        }


async def test_batches_recorded_together_match_one_by_one(tmp_path: Path) -> None:
    """Batches the writer records in one run get the answers and rows they would get one after the other."""
    from relay.storage.store import Store

    results = {}
    for mode in ("together", "one_by_one"):
        store = Store(tmp_path / f"{mode}.sqlite3")
        await store.open()
        before = store.groups_committed
        if mode == "together":
            outcomes = await asyncio.gather(*(store.write(job) for job in _batch_jobs()))
            assert store.groups_committed - before == 1
        else:
            outcomes = [await store.write(job) for job in _batch_jobs()]
        await store.close()
        results[mode] = (outcomes, _dump(tmp_path / f"{mode}.sqlite3"))
    assert results["together"] == results["one_by_one"]
    outcomes, tables = results["together"]
    answers = [(o.response["accepted"], o.response["duplicates"], o.response["stale"], o.repeated) for o in outcomes]
    assert answers == [(2, 0, 0, False), (1, 1, 1, False), (2, 0, 0, True), (1, 0, 0, False), (1, 0, 1, False)]
    assert [o.accepted_skus for o in outcomes] == [2, 2, 0, 1, 2]
    assert outcomes[4].response["rejected"] == [{"id": "evt_bad", "code": "invalid_quantity", "message": ANY}]
    assert [(row[1], row[2], row[-1]) for row in tables["events"]] == [
        ("main", "evt_1", "accepted"), ("main", "evt_2", "accepted"), ("main", "evt_3", "stale"),
        ("main", "evt_4", "accepted"), ("other", "evt_1", "accepted"), ("main", "evt_5", "stale"),
        ("main", "evt_6", "accepted"),
    ]  # fmt: skip
    assert tables["product_versions"] == [("main", 1, 3), ("main", 2, 1), ("main", 3, 1), ("other", 1, 1)]
    assert {(d[0], d[1], d[2], d[3]) for d in tables["deliveries"]} == {
        ("main", "a", "SKU-A", 4), ("main", "b", "SKU-A", 4), ("main", "a", "SKU-B", 7), ("main", "b", "SKU-B", 7),
        ("other", "c", "SKU-A", 5),
    }  # fmt: skip
    since = {(d[0], d[1], d[2]): d[-1] for d in tables["deliveries"]}  # pending_since: the first change waiting
    assert since[("main", "a", "SKU-A")] == 1000.0 and since[("main", "a", "SKU-B")] == 1004.125
    assert [row[1] for row in tables["requests"]] == ["msg_1", "msg_2", "msg_3", "msg_1"]


async def test_failing_batch_in_a_run_fails_alone(tmp_path: Path) -> None:
    """When one batch of a run cannot be written, only its caller gets the error; the others commit."""
    from relay.intake.ingest import BatchWrite
    from relay.intake.protocol import Event
    from relay.storage.store import Store

    def job(n: int, product_id: int) -> BatchWrite:
        event = Event(
            f"evt_{n}", "stock", product_id, None, None, "SKU", True, 1, "instock", "no", 1, "", "other", None
        )
        return BatchWrite("main", ("a",), f"msg_{n}", (event,), (), 1000.0)

    store = Store(tmp_path / "db.sqlite3")
    await store.open()
    results = await asyncio.gather(
        store.write(job(1, 1)), store.write(job(2, 2**64)), store.write(job(3, 3)), return_exceptions=True
    )
    await store.close()
    assert isinstance(results[1], OverflowError)
    assert [r.response["accepted"] for r in (results[0], results[2])] == [1, 1]  # type: ignore[union-attr]
    assert [row[1] for row in _dump(tmp_path / "db.sqlite3")["requests"]] == ["msg_1", "msg_3"]


async def test_sku_that_is_not_text_is_rejected(start_relay) -> None:
    """A SKU holding a lone UTF-16 surrogate (legal in JSON, not storable as UTF-8) is refused as invalid_sku."""
    r = await start_relay()
    status, answer = await r.client.send_events([stock_event(1, "A\ud800", 5, 1), stock_event(2, "OK", 5, 1)])
    assert status == 202 and answer["accepted"] == 1
    assert [x["code"] for x in answer["rejected"]] == ["invalid_sku"]


async def test_a_reused_webhook_id_with_other_events_is_refused_and_a_genuine_resend_is_not(start_relay) -> None:
    """A 202 means committed: a request under a used webhook-id but with other events used to get the first answer
    while its own events were dropped. It is now refused with 409; the plugin's resend of the same events, with
    sent_at rendered anew, still gets the first answer."""
    r = await start_relay()
    first = {"type": "stock.batch", "site": "main", "sent_at": "2026-12-03T10:00:00Z"}
    event = stock_event(1, "A", 5, 1)
    status, answer = await r.client.post("events", {**first, "events": [event]}, "msg_used")
    assert status == 202 and answer["accepted"] == 1
    resend = {**first, "sent_at": "2026-12-03T10:05:00Z", "events": [dict(event)]}
    body, headers = r.client.encode(resend, "msg_used")
    got, again, response_headers = await r.post_raw("/v1/sites/main/events", body, headers)
    assert (got, again, response_headers.get("Idempotent-Replayed")) == (202, answer, "true")
    other = {**first, "events": [stock_event(2, "B", 7, 1)]}
    body, headers = r.client.encode(other, "msg_used")
    got, refused, _ = await r.post_raw("/v1/sites/main/events", body, headers)
    assert got == 409 and refused["error"]["code"] == "webhook_id_reused", refused
    assert await r.count("SELECT COUNT(*) FROM events WHERE sku = 'B'") == 0
    # A replay.request under the id of an events batch schedules nothing and says so.
    body, headers = r.client.encode({"type": "replay.request", "site": "main", "scope": "all"}, "msg_used")
    got, refused, _ = await r.post_raw("/v1/sites/main/replay", body, headers)
    assert got == 409 and refused["error"]["code"] == "webhook_id_reused", refused
    assert await r.count("SELECT COUNT(*) FROM audit WHERE action = 'replay'") == 0
