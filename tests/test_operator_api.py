"""The operator's signed endpoints and probes, against a real relay and real fake receivers."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import yaml

from relay.cli.client import stock_event

from .conftest import Reply, eventually, fast_dispatch, make_config, webhook_channel

ROOT = Path(__file__).resolve().parent.parent


def order_event(product_id: int, sku: str, qty: int, version: int, order_id: int) -> dict[str, Any]:
    event = stock_event(product_id, sku, qty, version)
    event["cause"] = {"kind": "order", "order_id": order_id}
    return event


async def ask(r: Any, operation: str, kind: str, **fields: Any) -> tuple[int, Any]:
    return await r.client.post(operation, {"type": kind, "site": "main", **fields})


async def test_replay_sends_the_current_quantity_not_the_dead_payload(start_relay, tmp_path: Path, receiver) -> None:
    """A dead letter for 5, then the shop changes to 9 (also refused): replaying sends 9, once."""
    receiver.on("/a", Reply(422, {"error": "unknown sku"}), Reply(422, {"error": "unknown sku"}))
    r = await start_relay(make_config(tmp_path / "s", (webhook_channel("a", receiver.url("/a")),)))
    await r.client.send_events([stock_event(1, "SKU-1", 5, 1)])
    await r.drain()
    await r.client.send_events([stock_event(1, "SKU-1", 9, 2)])
    await r.drain()
    status, dead = await ask(r, "dead", "dead.query")
    assert status == 200 and [(d["sku"], d["quantity"], d["shop_quantity"]) for d in dead["dead_letters"]] == [
        ("SKU-1", 9, 9)
    ]
    body, headers = r.client.encode({"type": "replay.request", "site": "main", "scope": "dead"}, msg_id="msg_replay1")
    status, answer, _ = await r.post_raw("/v1/sites/main/replay", body, headers)
    assert status == 200 and answer["scheduled"] == 1
    status, again, replayed = await r.post_raw("/v1/sites/main/replay", body, headers)
    assert (status, again, replayed.get("Idempotent-Replayed")) == (200, answer, "true")
    await r.drain()
    sent = [x.doc["updates"][0]["quantity"] for x in receiver.for_path("/a")]
    assert sent == [5, 9, 9] and receiver.quantities["/a"] == {"SKU-1": 9}
    _, dead = await ask(r, "dead", "dead.query")
    assert dead["dead_letters"] == []


async def test_replay_skus_reaches_a_channel_added_later_and_names_unknown_skus(
    start_relay, tmp_path: Path, receiver
) -> None:
    """--sku on a channel that never had the SKU creates its delivery; a SKU never seen is reported, not invented."""
    state = tmp_path / "s"
    r = await start_relay(make_config(state, (webhook_channel("a", receiver.url("/a")),)))
    await r.client.send_events([stock_event(1, "SKU-1", 4, 1)])
    await r.drain()
    await r.relay.stop()
    both = (webhook_channel("a", receiver.url("/a")), webhook_channel("b", receiver.url("/b")))
    r = await start_relay(make_config(state, both))
    status, answer = await ask(r, "replay", "replay.request", scope="skus", skus=["SKU-1", "NOPE"], channel="b")
    assert status == 200 and answer["scheduled"] == 1 and answer["unknown_skus"] == ["NOPE"]
    await r.drain()
    assert receiver.quantities["/b"] == {"SKU-1": 4}
    status, bad = await ask(r, "replay", "replay.request", scope="everything")
    assert status == 400 and bad["error"]["code"] == "invalid_field"


async def test_status_reports_queue_dead_letters_and_last_success(start_relay, tmp_path: Path, receiver) -> None:
    """Per channel: pending and its age, dead letters, circuit, last success and error; per site: last event."""
    receiver.on("/bad", Reply(400, {"error": "no such listing"}))
    channels = (webhook_channel("good", receiver.url("/good")), webhook_channel("bad", receiver.url("/bad")))
    r = await start_relay(make_config(tmp_path / "s", channels))
    await r.client.send_events([stock_event(1, "A", 1, 1)])
    await r.drain()
    await r.client.send_events([stock_event(2, "B", 2, 1)])
    await asyncio.sleep(0.05)
    status, body = await ask(r, "status", "status.query")
    assert status == 200 and body["last_event_at"] is not None
    by_name = {c["name"]: c for c in body["channels"]}
    good, bad = by_name["good"], by_name["bad"]
    assert (good["pending"], good["dead_letters"], good["circuit"], good["worker"]) == (1, 0, "closed", "ok")
    assert good["oldest_pending_age"] >= 0.05 and good["last_success"] is not None
    assert (bad["pending"], bad["dead_letters"], bad["last_success"]) == (1, 1, None)
    assert "400" in bad["last_error"]["message"] and bad["last_error"]["sku"] == "A"


async def test_audit_filters_and_pages_newest_first(start_relay, tmp_path: Path, receiver) -> None:
    """Filter by SKU and channel; pages of `limit` follow the cursor without gaps or overlap; >500 is refused."""
    r = await start_relay(make_config(tmp_path / "s", (webhook_channel("a", receiver.url("/a")),)))
    for version in range(1, 13):
        await r.client.send_events([stock_event(1, "A", version, version), stock_event(2, "B", version, version)])
        await r.drain()
    seen: list[int] = []
    cursor = None
    while True:
        fields = {"sku": "A", "limit": 5, **({"cursor": cursor} if cursor else {})}
        status, page = await ask(r, "audit", "audit.query", **fields)
        assert status == 200 and {e["sku"] for e in page["entries"]} == {"A"}
        seen += [e["id"] for e in page["entries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) == 24  # 12 received + 12 attempts
    _, attempts = await ask(r, "audit", "audit.query", sku="B", channel="a")
    assert len(attempts["entries"]) == 12 and all(e["action"] == "attempt" for e in attempts["entries"])
    status, refused = await ask(r, "audit", "audit.query", limit=501)
    assert status == 400 and refused["error"]["code"] == "invalid_field"
    status, refused = await ask(r, "audit", "audit.query", since="yesterday")
    assert status == 400 and "ISO 8601" in refused["error"]["message"]


async def test_lineage_explains_what_a_channel_shows(start_relay, tmp_path: Path, receiver) -> None:
    """Order 1001 set 3; an earlier change was coalesced into it; the channel shows 3 because of order 1001."""
    r = await start_relay(make_config(tmp_path / "s", (webhook_channel("amazon", receiver.url("/amz")),)))
    await r.client.send_events([order_event(7, "TS-RED-M", 5, 1, 1000), order_event(7, "TS-RED-M", 3, 2, 1001)])
    await r.drain()
    status, trace = await ask(r, "lineage", "lineage.query", sku="TS-RED-M")
    assert status == 200
    (channel,) = trace["channels"]
    assert channel["shows"] == 3 and channel["delivered_event"]["order_id"] == 1001
    first, second = trace["events"]
    assert first["channels"]["amazon"] == [{"action": "coalesced", "into": second["event_id"]}]
    (attempt,) = second["channels"]["amazon"]
    assert (attempt["action"], attempt["quantity"], attempt["http_status"], attempt["outcome"]) == (
        "attempt", 3, 200, "ok"
    )  # fmt: skip


async def test_readyz_fails_while_a_dispatcher_is_stuck(start_relay, tmp_path: Path, receiver) -> None:
    """A worker stuck in a channel call beyond stall_seconds makes /readyz 503, naming it; it recovers after."""
    answer = asyncio.Event()  # the call hangs until /readyz has said so: a 2.5 s delay left a window to miss it
    receiver.on("/slow", Reply(release=answer))
    cfg = make_config(
        tmp_path / "s",
        (webhook_channel("slow", receiver.url("/slow"), timeout_seconds=60),),
        dispatch=fast_dispatch(lease_seconds=120, stall_seconds=0.5),
    )
    r = await start_relay(cfg, run_workers=True)
    async with r.session.get(r.base_url + "/readyz") as response:
        assert response.status == 200
    await r.client.send_events([stock_event(1, "A", 1, 1)])
    body: dict[str, Any] = {}

    async def readyz(want: int) -> bool:
        async with r.session.get(r.base_url + "/readyz") as response:
            body.clear()
            body.update(await response.json())
            return response.status == want

    try:
        await eventually(lambda: readyz(503), what="/readyz to report the stuck worker")
        assert body["status"] == "unready" and "calling the channel" in body["problems"]["main/slow"]
    finally:
        answer.set()
    await eventually(lambda: readyz(200), what="/readyz to recover")
    assert receiver.quantities["/slow"] == {"A": 1}


async def test_readyz_fails_when_a_worker_loop_has_died(start_relay, tmp_path: Path, receiver) -> None:
    """A worker task that ended (a bug, say) is reported, not silently ignored."""
    r = await start_relay(make_config(tmp_path / "s", (webhook_channel("a", receiver.url("/a")),)), run_workers=True)
    (task,) = [t for t in r.relay._tasks if t.get_name() == "worker main/a"]
    task.cancel()
    await eventually(task.done, what="the worker task to end")
    async with r.session.get(r.base_url + "/readyz") as response:
        body = await response.json()
    assert response.status == 503 and "stopped" in body["problems"]["main/a"]


async def test_metrics_count_what_happened_without_skus(start_relay, tmp_path: Path, receiver) -> None:
    """Prometheus text: events by result, errors by code, deliveries, attempts, latency, queue gauges; no SKU."""
    receiver.on("/a", Reply(503))
    r = await start_relay(make_config(tmp_path / "s", (webhook_channel("a", receiver.url("/a")),)))
    await r.client.send_events([stock_event(1, "SECRET-SKU-1", 1, 2), stock_event(1, "SECRET-SKU-1", 1, 1)])
    await r.client.post("events", {"type": "ping"})  # type_mismatch

    async def delivered() -> bool:  # the 503 is retried once its backoff (50 ms) is over
        await r.drain()
        return bool(await r.count("SELECT COUNT(*) FROM deliveries WHERE state = 'delivered'") == 1)

    await eventually(delivered, what="the retry to be delivered")
    async with r.session.get(r.base_url + "/metrics") as response:
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    expected = [
        'stock_relay_events_total{result="accepted",site="main"} 1.0',
        'stock_relay_events_total{result="stale",site="main"} 1.0',
        'stock_relay_request_errors_total{code="type_mismatch"} 1.0',
        'stock_relay_deliveries_total{channel="a",outcome="transient",site="main"} 1.0',
        'stock_relay_deliveries_total{channel="a",outcome="ok",site="main"} 1.0',
        'stock_relay_attempts_total{channel="a",site="main",status_class="5xx"} 1.0',
        'stock_relay_ingest_to_delivered_seconds_count{channel="a",site="main"} 1.0',
        'stock_relay_queue_depth{channel="a",site="main"} 0.0',
        'stock_relay_circuit_state{channel="a",site="main",state="closed"} 1.0',
    ]
    for line in expected:
        assert line in text, line
    assert "SECRET-SKU" not in text


async def test_openapi_document_matches_the_routes(start_relay, tmp_path: Path) -> None:
    """relay/openapi.yaml describes exactly the routes the app registers, and the relay serves it."""
    r = await start_relay(make_config(tmp_path / "s"))
    doc = yaml.safe_load((ROOT / "relay" / "openapi.yaml").read_text())
    assert doc["openapi"].startswith("3.")
    documented = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    registered = {
        (route.method, re.sub(r"\{(\w+)\}", r"{\1}", route.resource.canonical))
        for route in r.server.app.router.routes()
        if route.method != "HEAD"
    }
    assert documented == registered
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            assert operation.get("summary") and operation.get("responses"), f"{method} {path} is undocumented"
    async with r.session.get(r.base_url + "/openapi.yaml") as response:
        assert response.status == 200 and yaml.safe_load(await response.text()) == doc


async def test_export_endpoint_streams_state_as_json_lines(start_relay, tmp_path: Path, receiver) -> None:
    """The first line counts the rows; each following line is one (channel, SKU) with what it shows."""
    r = await start_relay(make_config(tmp_path / "s", (webhook_channel("a", receiver.url("/a")),)))
    await r.client.send_events([stock_event(i, f"S{i}", i, 1) for i in range(1, 6)])
    await r.drain()
    body, headers = r.client.encode({"type": "export.request", "site": "main", "what": "state"})
    async with r.session.post(r.base_url + "/v1/sites/main/export", data=body, headers=headers) as response:
        lines = [json.loads(line) for line in (await response.text()).splitlines()]
    assert lines[0] == {"type": "export", "what": "state", "rows": 5}
    assert sorted((x["sku"], x["shows"], x["state"]) for x in lines[1:]) == [
        (f"S{i}", i, "delivered") for i in range(1, 6)
    ]


async def test_operator_endpoints_are_signed(start_relay, tmp_path: Path) -> None:
    """No signature, no answer: status, audit, replay and export refuse an unsigned request with 401."""
    r = await start_relay(make_config(tmp_path / "s"))
    for operation in ("status", "audit", "dead", "lineage", "replay", "export"):
        status, body, _ = await r.post_raw(
            f"/v1/sites/main/{operation}", b'{"type":"status.query"}', {"Content-Type": "application/json"}
        )
        assert status == 401 and body["error"]["code"] == "signature_missing", operation


async def test_huge_or_odd_numbers_in_filters_are_refused_by_name(start_relay, tmp_path: Path) -> None:
    """A time past any date (10**400 overflowed a float and answered 500), NaN-like text and negatives: 400 naming
    the field, for the audit query and the export alike."""
    r = await start_relay(make_config(tmp_path / "s"))
    for since in (10**400, -1, 10**12 * 300, "1e999"):
        status, refused = await ask(r, "audit", "audit.query", since=since)
        assert status == 400 and refused["error"]["code"] == "invalid_field", (since, refused)
        assert "'since'" in refused["error"]["message"]
        body, headers = r.client.encode({"type": "export.request", "site": "main", "what": "audit", "since": since})
        status, refused, _ = await r.post_raw("/v1/sites/main/export", body, headers)
        assert status == 400 and "'since'" in refused["error"]["message"], (since, refused)
    status, page = await ask(r, "audit", "audit.query", since=1_700_000_000)
    assert status == 200, page
