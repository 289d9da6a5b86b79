"""What the WordPress console asks the relay (issue 17): per-product status, dead letters per channel with per-item
retry, pause and resume, and the alert data in status. A real relay, real SQLite, real HTTP, signed requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from relay.cli.client import stock_event
from relay.storage.products import PRODUCTS_SQL

from .conftest import Reply, fast_dispatch, make_config, webhook_channel

REFUSED = Reply(422, {"error": "listing TS-9 is closed"})


async def ask(r: Any, operation: str, kind: str, **fields: Any) -> tuple[int, Any]:
    return await r.client.post(operation, {"type": kind, "site": "main", **fields})


def two_channels(receiver: Any) -> tuple[Any, ...]:
    return (webhook_channel("amazon", receiver.url("/amazon")), webhook_channel("ebay", receiver.url("/ebay")))


SLOW_RETRY = fast_dispatch(backoff_base_seconds=3600.0, backoff_max_seconds=3600.0)  # a failure waits, drained or not


async def test_product_query_answers_each_sku_on_each_channel(start_relay, tmp_path: Path, receiver) -> None:
    """Confirmed quantity and when, what waits and its error, the dead letter in the channel's words, the event ids
    lineage starts from; a SKU never seen is named apart; the order asked is kept."""
    receiver.on("/ebay", REFUSED)  # A: dead on ebay
    r = await start_relay(make_config(tmp_path / "s", two_channels(receiver), dispatch=SLOW_RETRY))
    await r.client.send_events([stock_event(1, "A", 5, 1)])
    await r.drain()
    receiver.on("/amazon", Reply(503))  # B: waits on amazon after a failure
    await r.client.send_events([stock_event(2, "B", 7, 1)])
    await r.drain()
    status, answer = await ask(r, "products", "product.query", skus=["B", "NOPE", "A", "B"])
    assert status == 200, answer
    assert [p["sku"] for p in answer["products"]] == ["B", "A"] and answer["unknown_skus"] == ["NOPE"]
    b, a = ({c["channel"]: c for c in p["channels"]} for p in answer["products"])
    amazon_a = a["amazon"]
    assert (amazon_a["state"], amazon_a["confirmed_quantity"], amazon_a["dead_letter"]) == ("delivered", 5, None)
    assert amazon_a["confirmed_at"] is not None and amazon_a["confirmed_at_iso"].endswith("Z")
    assert (
        amazon_a["confirmed_event_id"]
        == amazon_a["newest_event_id"]
        == answer["products"][1]["newest_event"]["event_id"]
    )
    ebay_a = a["ebay"]
    assert (ebay_a["state"], ebay_a["confirmed_quantity"], ebay_a["confirmed_at"]) == ("dead", None, None)
    assert ebay_a["dead_letter"]["http_status"] == 422 and "listing TS-9 is closed" in ebay_a["dead_letter"]["message"]
    assert ebay_a["dead_letter"]["since"] is not None
    amazon_b = b["amazon"]
    assert (amazon_b["state"], amazon_b["pending_quantity"], amazon_b["attempts"]) == ("pending", 7, 1)
    assert amazon_b["failing_since"] is not None and "503" in amazon_b["last_error"]
    assert b["ebay"]["confirmed_quantity"] == 7 and answer["products"][0]["newest_event"]["product_id"] == 2


async def test_product_query_confirmation_time_survives_a_newer_value_waiting(
    start_relay, tmp_path: Path, receiver
) -> None:
    """While a newer value waits, the answer still says what was confirmed last and when (from the audit log)."""
    r = await start_relay(make_config(tmp_path / "s", (webhook_channel("amazon", receiver.url("/amazon")),)))
    await r.client.send_events([stock_event(1, "A", 5, 1)])
    await r.drain()
    await r.client.send_events([stock_event(1, "A", 4, 2)])  # not drained: waits
    _, answer = await ask(r, "products", "product.query", skus=["A"])
    (channel,) = answer["products"][0]["channels"]
    assert (channel["state"], channel["confirmed_quantity"], channel["pending_quantity"]) == ("pending", 5, 4)
    assert channel["confirmed_at"] is not None and channel["confirmed_version"] == 1


@pytest.mark.sqlite_only("reads SQLite's EXPLAIN QUERY PLAN")
async def test_product_query_is_served_from_indexes(start_relay, tmp_path: Path, receiver) -> None:
    """EXPLAIN QUERY PLAN: every table is searched by key or index; only the request's own lists are scanned."""
    r = await start_relay(make_config(tmp_path / "s", two_channels(receiver)))
    rows = await r.relay.store.read("EXPLAIN QUERY PLAN " + PRODUCTS_SQL, ("main", '["A"]', '["amazon"]'))
    plan = [row[3] for row in rows]
    scans = [step for step in plan if step.startswith("SCAN")]
    assert scans and all(s in ("SCAN w", "SCAN c") or "json_each" in s for s in scans), plan
    for table in (
        "SEARCH d USING PRIMARY KEY (site=? AND channel=? AND sku=?)",
        "SEARCH l USING INDEX dead_letters_open_sku (site=? AND sku=? AND channel=?)",
        "SEARCH t USING INDEX audit_sku (site=? AND sku=?)",
    ):
        assert any(table in step for step in plan), (table, plan)


async def test_product_query_refuses_more_than_a_page_of_skus(start_relay, tmp_path: Path) -> None:
    """101 SKUs, an empty list or a non-text SKU: 400 naming the field."""
    r = await start_relay(make_config(tmp_path / "s"))
    for skus in ([f"S{i}" for i in range(101)], [], [7], None):
        status, refused = await ask(r, "products", "product.query", skus=skus)
        assert status == 400 and refused["error"]["code"] == "invalid_field", refused


async def test_dead_letters_page_per_channel_and_retry_chosen_items(start_relay, tmp_path: Path, receiver) -> None:
    """Pages of one channel's letters follow the cursor; a retry of (ebay, S2) resends only that, with the shop's
    current quantity; an item no longer dead is answered not_dead; a resent request gets the first answer."""
    for _ in range(4):
        receiver.on("/ebay", REFUSED)
        receiver.on("/amazon", REFUSED)
    r = await start_relay(make_config(tmp_path / "s", two_channels(receiver)))
    await r.client.send_events([stock_event(i, f"S{i}", i, 1) for i in range(1, 5)])
    await r.drain()
    seen: list[str] = []
    cursor = None
    for _ in range(4):  # a cursor not followed would page forever
        status, page = await ask(
            r, "dead", "dead.query", channel="ebay", limit=3, **({"cursor": cursor} if cursor else {})
        )
        assert status == 200 and page["total"] == 4 and {d["channel"] for d in page["dead_letters"]} == {"ebay"}
        seen += [d["sku"] for d in page["dead_letters"]]
        assert all("listing TS-9 is closed" in d["message"] and d["product_id"] for d in page["dead_letters"])
        if (cursor := page["next_cursor"]) is None:
            break
    assert seen == ["S4", "S3", "S2", "S1"]
    receiver.on("/ebay", REFUSED)  # the shop changed since, refused too: the retry sends 9
    await r.client.send_events([stock_event(2, "S2", 9, 2)])
    await r.drain()
    receiver.received.clear()
    items = [{"channel": "ebay", "sku": "S2"}, {"channel": "ebay", "sku": "S2"}, {"channel": "amazon", "sku": "S2"}]
    body, headers = r.client.encode({"type": "dead.retry", "site": "main", "items": items, "actor": "alice"})
    status, answer, _ = await r.post_raw("/v1/sites/main/dead/retry", body, headers)
    assert status == 200 and answer["scheduled"] == 1, answer
    assert [i["result"] for i in answer["items"]] == ["scheduled", "not_dead"]
    status, again, replayed = await r.post_raw("/v1/sites/main/dead/retry", body, headers)
    assert (status, again, replayed.get("Idempotent-Replayed")) == (200, answer, "true")
    await r.drain()
    assert [(x.path, x.doc["updates"][0]["sku"], x.doc["updates"][0]["quantity"]) for x in receiver.received] == [
        ("/ebay", "S2", 9)
    ]
    _, left = await ask(r, "dead", "dead.query", channel="ebay")
    assert sorted(d["sku"] for d in left["dead_letters"]) == ["S1", "S3", "S4"]
    _, audit = await ask(r, "audit", "audit.query", sku="S2", action="replay")
    assert [e["detail"] for e in audit["entries"]] == [{"scope": "retry", "actor": "alice"}]


async def test_dead_retry_refuses_unknown_channels_and_bad_items(start_relay, tmp_path: Path, receiver) -> None:
    r = await start_relay(make_config(tmp_path / "s", two_channels(receiver)))
    for items in ([{"channel": "etsy", "sku": "A"}], [{"channel": "ebay"}], ["A"], [], None):
        status, refused = await ask(r, "dead/retry", "dead.retry", items=items)
        assert status == 400 and refused["error"]["code"] == "invalid_field", (items, refused)


async def test_a_paused_channel_takes_nothing_queues_everything_and_resumes_with_the_newest(
    start_relay, tmp_path: Path, receiver
) -> None:
    """Paused with a reason and who: nothing is sent to it (the other channel goes on), status and the audit say so,
    the pause outlives a restart; resumed, each SKU's newest quantity is sent once, and nothing became a dead letter."""
    state = tmp_path / "s"
    r = await start_relay(make_config(state, two_channels(receiver)))
    status, paused = await ask(
        r, "pause", "channel.pause", channel="amazon", reason="Listings being fixed", actor="alice"
    )
    assert status == 200 and [(p["channel"], p["actor"]) for p in paused["paused"]] == [("amazon", "alice")]
    await r.client.send_events([stock_event(1, "A", 5, 1), stock_event(2, "B", 3, 1)])
    await r.drain()
    await r.client.send_events([stock_event(1, "A", 4, 2)])
    await r.drain()
    assert receiver.for_path("/amazon") == [] and receiver.quantities["/ebay"] == {"A": 4, "B": 3}
    _, body = await ask(r, "status", "status.query")
    amazon = next(c for c in body["channels"] if c["name"] == "amazon")
    assert amazon["paused"]["reason"] == "Listings being fixed" and amazon["paused"]["actor"] == "alice"
    assert amazon["pending"] == 2 and amazon["dead_letters"] == 0
    assert [(a["code"], a["channel"]) for a in body["attention"]] == [("paused", "amazon")]
    await r.relay.stop()
    r = await start_relay(make_config(state, two_channels(receiver)))
    await r.drain()
    assert receiver.for_path("/amazon") == []
    status, again = await ask(r, "pause", "channel.pause", channel="amazon", reason="other", actor="bob")
    assert again["paused"] == [] and again["already_paused"][0]["actor"] == "alice"
    status, resumed = await ask(r, "resume", "channel.resume", channel="amazon", actor="bob")
    assert status == 200 and [p["channel"] for p in resumed["resumed"]] == ["amazon"]
    await r.drain()
    sent = sorted((x.doc["updates"][0]["sku"], x.doc["updates"][0]["quantity"]) for x in receiver.for_path("/amazon"))
    assert sent == [("A", 4), ("B", 3)]
    _, audit = await ask(r, "audit", "audit.query", channel="amazon")
    actions = [(e["action"], (e["detail"] or {}).get("actor")) for e in reversed(audit["entries"])]
    assert ("paused", "alice") in actions and ("resumed", "bob") in actions
    assert await r.count("SELECT COUNT(*) FROM dead_letters") == 0


async def test_pause_and_resume_every_channel_of_the_site(start_relay, tmp_path: Path, receiver) -> None:
    r = await start_relay(make_config(tmp_path / "s", two_channels(receiver)))
    status, paused = await ask(r, "pause", "channel.pause", reason="stocktake", actor="alice")
    assert status == 200 and sorted(p["channel"] for p in paused["paused"]) == ["amazon", "ebay"]
    await r.client.send_events([stock_event(1, "A", 5, 1)])
    await r.drain()
    assert receiver.received == []
    _, resumed = await ask(r, "resume", "channel.resume", actor="alice")
    assert sorted(p["channel"] for p in resumed["resumed"]) == ["amazon", "ebay"]
    await r.drain()
    assert receiver.quantities == {"/amazon": {"A": 5}, "/ebay": {"A": 5}}


async def test_a_pause_gives_back_batches_claimed_ahead(start_relay, tmp_path: Path, receiver) -> None:
    """A worker that claimed its next batch before the pause committed gives it back unsent."""
    r = await start_relay(make_config(tmp_path / "s", (webhook_channel("amazon", receiver.url("/amazon")),)))
    await r.client.send_events([stock_event(1, "A", 1, 1), stock_event(2, "B", 2, 1)])
    worker = r.relay.workers[("main", "amazon")]
    assert await worker.drain_once(overlap=True) == 1  # pushed one batch, claimed the next ahead
    await ask(r, "pause", "channel.pause", channel="amazon", reason="stop", actor="alice")
    assert await worker.drain_once(overlap=True) == 0
    assert len(receiver.for_path("/amazon")) == 1
    assert await r.count("SELECT COUNT(*) FROM deliveries WHERE claim_token IS NOT NULL") == 0


async def test_a_long_pause_does_not_use_up_the_retry_budget(start_relay, tmp_path: Path, receiver) -> None:
    """A delivery failing before a pause longer than give_up_after_hours is retried after the resume, not dead-lettered:
    the pause's time is given back to it."""
    clock = [1_800_000_000.0]
    receiver.on("/amazon", Reply(503), Reply(503))
    cfg = make_config(
        tmp_path / "s",
        (webhook_channel("amazon", receiver.url("/amazon")),),
        dispatch=fast_dispatch(give_up_after_hours=1.0, backoff_base_seconds=1.0, backoff_max_seconds=1.0),
    )
    r = await start_relay(cfg, now=lambda: clock[0])

    async def at_clock(operation: str, doc: dict[str, Any]) -> None:  # signed at the relay's (simulated) time
        body, headers = r.client.encode({"site": "main", **doc}, timestamp=int(clock[0]))
        status, answer, _ = await r.post_raw(f"/v1/sites/main/{operation}", body, headers)
        assert status in (200, 202), answer

    await at_clock("events", {"type": "stock.batch", "events": [stock_event(1, "A", 5, 1)]})
    await r.drain()  # first 503: waits for its retry
    await at_clock("pause", {"type": "channel.pause", "channel": "amazon", "reason": "holiday", "actor": "alice"})
    clock[0] += 3 * 3600
    await at_clock("resume", {"type": "channel.resume", "channel": "amazon", "actor": "alice"})
    await r.drain()  # second 503: one more retry, not a dead letter
    assert await r.count("SELECT COUNT(*) FROM dead_letters") == 0
    clock[0] += 2
    await r.drain()
    assert receiver.quantities["/amazon"] == {"A": 5}


async def test_pause_refuses_missing_or_odd_words_and_unknown_channels(start_relay, tmp_path: Path, receiver) -> None:
    """No reason or actor, whitespace only, a control character, too long, or a channel the site lacks: 400, and
    nothing is paused."""
    r = await start_relay(make_config(tmp_path / "s", two_channels(receiver)))
    cases: list[dict[str, Any]] = [
        {"actor": "alice"},
        {"reason": "x"},
        {"reason": "   ", "actor": "alice"},
        {"reason": "a\nb", "actor": "alice"},
        {"reason": "x" * 501, "actor": "alice"},
        {"reason": "x", "actor": "alice", "channel": "etsy"},
    ]
    for fields in cases:
        status, refused = await ask(r, "pause", "channel.pause", **fields)
        assert status == 400 and refused["error"]["code"] in ("missing_field", "invalid_field"), (fields, refused)
    status, refused = await ask(r, "resume", "channel.resume")
    assert status == 400 and refused["error"]["code"] == "missing_field"
    assert await r.count("SELECT COUNT(*) FROM channel_pauses") == 0


async def test_status_raises_failing_deliveries_and_dead_letters_in_plain_words(
    start_relay, tmp_path: Path, receiver
) -> None:
    """Per channel: failing items and since when, the newest dead letter; the attention list has errors first, each
    with a code, the channel and since when."""
    receiver.on("/amazon", Reply(503))
    receiver.on("/ebay", REFUSED)
    r = await start_relay(make_config(tmp_path / "s", two_channels(receiver), dispatch=SLOW_RETRY))
    await r.client.send_events([stock_event(1, "A", 5, 1)])
    await r.drain()
    _, body = await ask(r, "status", "status.query")
    amazon, ebay = body["channels"]
    assert amazon["failing"]["items"] == 1 and amazon["failing"]["since_iso"].endswith("Z")
    assert ebay["failing"]["items"] == 0 and ebay["newest_dead_letter"]["sku"] == "A"
    items = {(a["code"], a["channel"]): a for a in body["attention"]}
    assert set(items) == {("deliveries_failing", "amazon"), ("dead_letters", "ebay")}
    assert all(a["level"] == "error" and a["since"] is not None for a in items.values())
    assert "503" in items[("deliveries_failing", "amazon")]["message"]
    assert "(422)" in items[("dead_letters", "ebay")]["message"]


async def test_console_endpoints_are_signed(start_relay, tmp_path: Path) -> None:
    r = await start_relay(make_config(tmp_path / "s"))
    for operation in ("products", "dead/retry", "pause", "resume"):
        status, body, _ = await r.post_raw(
            f"/v1/sites/main/{operation}", b'{"type":"channel.pause"}', {"Content-Type": "application/json"}
        )
        assert status == 401 and body["error"]["code"] == "signature_missing", operation
