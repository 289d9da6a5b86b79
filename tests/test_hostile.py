"""Hostile input against the real ``stock-relay serve``: schemathesis over relay/openapi.yaml, and hypothesis
properties over the ingest path (signatures, clock skew, replays, bodies, SKUs, numbers, duplicate keys).

Every property ends in the same three checks: no 5xx, the relay is still running, and a refused request stored
nothing. ``HOSTILE_EXAMPLES`` sets the examples per property (default 25 in the suite; ``HOSTILE_EXAMPLES=500``
for a long run) and the module prints how many inputs it tried.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay import signing
from relay.cli.client import new_event_id, new_msg_id
from relay.storage.location import Dsn

from . import backend
from .conftest import CHANNEL_SECRET, SITE_SECRET
from .procs import STARTED, RelayProcess

EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "25"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
SCHEMA = schemathesis.openapi.from_path(str(Path(__file__).resolve().parent.parent / "relay" / "openapi.yaml"))
TRIED: dict[str, int] = {}


class Relay:
    def __init__(self, process: RelayProcess, database: Path, store: Dsn | None) -> None:
        self.process = process
        self.url = process.url
        self.database = database
        self.store = store
        self.http = requests.Session()

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return backend.read_rows(self.database, sql, params, store=self.store)

    def events_stored(self) -> int:
        return int(self.rows("SELECT COUNT(*) FROM events")[0][0])

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
        return self.http.post(self.url + path, data=body, headers=headers, timeout=30)

    def signed(self, doc: Any, *, raw: bytes | None = None, msg_id: str | None = None, skew: int = 0) -> dict[str, str]:
        body = raw if raw is not None else json.dumps(doc).encode()
        headers = signing.signed_headers(SITE_SECRET, msg_id or new_msg_id(), int(time.time()) + skew, body)
        return headers | {"content-type": "application/json"}


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    tmp = tmp_path_factory.mktemp("hostile")
    doc = {
        "state_dir": str(tmp / "state"),
        "listen": {"host": "127.0.0.1", "port": 0},
        "sites": {
            "main": {
                "secret": "env:HOSTILE_SITE",
                "max_requests_per_second": 0,
                "channels": [
                    {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/", "secret": "env:HOSTILE_HOOK"}
                ],
            }
        },
    }
    env = {"HOSTILE_SITE": SITE_SECRET, "HOSTILE_HOOK": CHANNEL_SECRET}
    # Module-scoped, so it outlives each test's own schema (tests/backend.py): on PostgreSQL it gets one of its own.
    store, schema = backend.new_schema(backend.cluster()) if backend.ON_POSTGRES else (None, "")
    if store is not None:
        doc["store"] = "env:HOSTILE_STORE"
        env["HOSTILE_STORE"] = store.url
    (tmp / "relay.yaml").write_text(yaml.safe_dump(doc))
    process = RelayProcess(tmp / "relay.yaml", env, tmp / "relay.log")
    process.start()
    STARTED.remove(process.proc)  # module-scoped: conftest's per-test clean-up must not kill it; we stop it below
    yield Relay(process, tmp / "state" / "relay.sqlite3", store)
    assert process.terminate() == 0
    if store is not None:
        backend.drop_schema(backend.cluster(), schema)
    print(f"\nhostile inputs tried: {sum(TRIED.values())} {TRIED}")


def check(relay: Relay, response: requests.Response, stored_before: int, accepted: bool) -> None:
    """No 5xx, a readable error body for every refusal, the relay alive, and a refusal stored nothing."""
    assert response.status_code < 500, response.text[:500]
    if response.status_code == 400 and response.text.startswith("Invalid header"):
        pass  # refused by aiohttp's HTTP parser before the relay sees it (plain text; nothing reached our code)
    elif response.status_code >= 400:
        assert response.headers.get("content-type", "").startswith("application/json"), response.text[:300]
        error = response.json()["error"]
        assert error["code"] and error["message"] and "Traceback" not in response.text
    assert relay.process.proc is not None and relay.process.proc.poll() is None, "the relay died"
    if not accepted:
        assert relay.events_stored() == stored_before, "a refused request stored events"


def event(**fields: Any) -> dict[str, Any]:
    base = {
        "id": new_event_id(),
        "kind": "stock",
        "product_id": 1,
        "variation_id": None,
        "parent_id": None,
        "sku": "SKU-1",
        "manage_stock": True,
        "stock_quantity": 1,
        "stock_status": "instock",
        "backorders": "no",
        "version": 1,
        "occurred_at": "2026-11-22T10:00:00Z",
        "cause": {"kind": "order", "order_id": 1},
    }
    return base | fields


def batch(*events: dict[str, Any]) -> dict[str, Any]:
    return {"type": "stock.batch", "site": "main", "sent_at": "2026-11-22T10:00:00Z", "events": list(events)}


@pytest.mark.parametrize(
    "operation", [op.ok() for op in SCHEMA.get_all_operations()], ids=lambda op: f"{op.method} {op.path}"
)
def test_schemathesis_inputs_signed_for_a_real_site(relay: Relay, operation: Any) -> None:
    """Every operation of relay/openapi.yaml with generated bodies, signed so they reach past the signature check."""

    @SETTINGS
    @given(operation.as_strategy())
    def run(case: Any) -> None:
        TRIED["schemathesis"] = TRIED.get("schemathesis", 0) + 1
        if "site" in (case.path_parameters or {}):
            case.path_parameters["site"] = "main"
        path = case.formatted_path
        before = relay.events_stored()
        if case.method.upper() == "GET":
            response = relay.http.get(relay.url + path, timeout=30)
        else:
            raw = json.dumps(case.body).encode() if isinstance(case.body, (dict, list, str, int, float)) else b""
            response = relay.post(path, raw, relay.signed(None, raw=raw))
        check(relay, response, before, accepted=response.status_code == 202)

    run()


@SETTINGS
@given(signature=st.text(max_size=200), stamp=st.one_of(st.integers(), st.text(max_size=20)))
def test_bad_signatures_are_refused(relay: Relay, signature: str, stamp: int | str) -> None:
    TRIED["signatures"] = TRIED.get("signatures", 0) + 1
    body = json.dumps(batch(event())).encode()
    headers = {"webhook-id": new_msg_id(), "webhook-timestamp": str(stamp), "webhook-signature": signature}
    before = relay.events_stored()
    try:
        response = relay.post("/v1/sites/main/events", body, headers | {"content-type": "application/json"})
    except (ValueError, requests.exceptions.InvalidHeader):
        return  # not sendable as an HTTP header at all (a newline, say): nothing to test
    assert response.status_code in (400, 401), (response.status_code, response.text, signature, stamp)
    check(relay, response, before, accepted=False)


@SETTINGS
@given(skew=st.integers(min_value=-(10**6), max_value=10**6))
def test_clock_skew_beyond_tolerance_is_refused_with_the_relays_clock(relay: Relay, skew: int) -> None:
    TRIED["clock skew"] = TRIED.get("clock skew", 0) + 1
    doc = batch(event(product_id=10**6 + abs(skew), version=1))
    before = relay.events_stored()
    response = relay.post("/v1/sites/main/events", json.dumps(doc).encode(), relay.signed(doc, skew=skew))
    if abs(skew) > 305:
        assert response.status_code == 401 and response.json()["error"]["code"] == "timestamp_out_of_tolerance"
    elif abs(skew) < 295:
        assert response.status_code == 202, response.text
    check(relay, response, before, accepted=response.status_code == 202)


@SETTINGS
@given(sku=st.text(max_size=260), quantity=st.one_of(st.integers(), st.floats(), st.booleans(), st.none(), st.text()))
def test_any_sku_and_quantity_is_stored_exactly_or_rejected_by_name(relay: Relay, sku: str, quantity: Any) -> None:
    TRIED["sku and quantity"] = TRIED.get("sku and quantity", 0) + 1
    item = event(sku=sku, stock_quantity=quantity, product_id=2 * 10**6 + TRIED["sku and quantity"])
    doc = batch(item)
    raw = json.dumps(doc, allow_nan=True).encode()
    before = relay.events_stored()
    response = relay.post("/v1/sites/main/events", raw, relay.signed(doc, raw=raw))
    check(relay, response, before, accepted=response.status_code == 202 and response.json()["accepted"] == 1)
    if response.status_code == 202 and response.json()["accepted"] == 1:
        rows = relay.rows("SELECT sku, stock_quantity FROM events WHERE event_id = ?", (item["id"],))
        assert rows == [(sku, quantity)], "stored differently from what was sent"
        assert isinstance(quantity, int) and not isinstance(quantity, bool) and -(10**6) <= quantity <= 10**9
    elif response.status_code == 202:
        assert response.json()["rejected"][0]["id"] == item["id"]


@SETTINGS
@given(
    body=st.one_of(
        st.binary(max_size=2000),
        st.integers(min_value=1, max_value=200).map(
            lambda n: b'{"type": "stock.batch", "events": ' + b"[" * n + b"]" * n + b"}"
        ),
        st.just(b'{"type": "stock.batch", "type": "ping", "site": "main", "events": []}'),
        st.integers(min_value=0, max_value=400).map(lambda cut: json.dumps(batch(event())).encode()[:cut]),
        st.just(b'{"type": "stock.batch", "events": [' + b'{"id": "x"},' * 200_000 + b"{}]}"),
    ),
    content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]),
)
def test_malformed_truncated_huge_and_mistyped_bodies(relay: Relay, body: bytes, content_type: str) -> None:
    TRIED["bodies"] = TRIED.get("bodies", 0) + 1
    headers = relay.signed(None, raw=body) | {"content-type": content_type}
    before = relay.events_stored()
    response = relay.post("/v1/sites/main/events", body, headers)
    # a well-formed batch whose events are not objects (``"events": [[]]``) is a 202 that accepts nothing
    refused_whole = response.status_code in (400, 413, 415)
    assert refused_whole or (response.status_code == 202 and response.json()["accepted"] == 0), response.text[:300]
    check(relay, response, before, accepted=False)


def test_replayed_webhook_id_gets_the_first_answer_and_stores_nothing_new(relay: Relay) -> None:
    """The same request again gets the first answer; another request under the same id is refused (409), never
    answered 202 with its events dropped."""
    msg_id = new_msg_id()
    first = batch(event(product_id=3 * 10**6, version=1))
    second = batch(event(product_id=3 * 10**6 + 1, version=1))
    one = relay.post("/v1/sites/main/events", json.dumps(first).encode(), relay.signed(first, msg_id=msg_id))
    before = relay.events_stored()
    again = relay.post("/v1/sites/main/events", json.dumps(first).encode(), relay.signed(first, msg_id=msg_id))
    assert one.status_code == again.status_code == 202 and one.json() == again.json()
    two = relay.post("/v1/sites/main/events", json.dumps(second).encode(), relay.signed(second, msg_id=msg_id))
    assert two.status_code == 409 and two.json()["error"]["code"] == "webhook_id_reused"
    check(relay, two, before, accepted=False)
