"""What ingest's cheaper paths write is exactly what they wrote before: the content digest of a batch (compared
with digests a previous release stored), the 'received' audit detail and the 202's body (the JSON encoder's text)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from relay import signing
from relay.intake import protocol

from .backend import read_rows
from .conftest import SITE_SECRET, make_config


def mixed_batch() -> dict[str, Any]:
    """Valid events (with and without variation_id, with an order id), a refused one, a non-object, a bad id."""
    return {
        "type": "stock.batch",
        "site": "main",
        "sent_at": "2026-12-03T10:00:00Z",
        "events": [
            {"id": "evt_1", "kind": "stock", "product_id": 11, "variation_id": None, "parent_id": None, "sku": "A-1",
             "manage_stock": True, "stock_quantity": 4, "stock_status": "instock", "backorders": "no", "version": 3,
             "occurred_at": "2026-12-03T09:59:59Z", "cause": {"kind": "order", "order_id": 77}},
            {"id": "evt_2", "kind": "deleted", "product_id": 12, "variation_id": 13, "sku": "B-2",
             "stock_quantity": None, "stock_status": "outofstock", "version": 1},
            {"id": "evt_3", "kind": "stock", "product_id": 14, "sku": "C-3", "stock_quantity": "many",
             "stock_status": "instock", "version": 2},
            ["not", "an", "object"],
            {"id": "bad id!"},
        ],
    }  # fmt: skip


# content_digest(mixed_batch()) as the relay computed it before check_batch existed: a resend arriving after an
# upgrade is compared with the digest the previous release stored, and must not be taken for a reused webhook-id.
STORED_BEFORE = "cf011c62f5514bfed3566074ba80e51d"


def test_batch_digest_is_the_content_digest_of_before() -> None:
    """check_batch's digest, read from the validated events, equals content_digest's and a previous release's."""
    doc = mixed_batch()
    checked = protocol.check_batch(doc, 500)
    assert [e.id for e in checked.valid] == ["evt_1", "evt_2"] and len(checked.rejected) == 3
    assert checked.digest == protocol.content_digest(doc) == STORED_BEFORE
    assert protocol.check_batch({**doc, "sent_at": "2026-12-04T00:00:00Z"}, 500).digest == STORED_BEFORE
    changed = mixed_batch()
    changed["events"][0]["stock_quantity"] = 5
    assert protocol.check_batch(changed, 500).digest != STORED_BEFORE


def event(n: int, kind: str, cause: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"evt_{n}", "kind": kind, "product_id": n, "sku": f"SKU-{n}", "stock_quantity": n,
            "stock_status": "instock", "version": 1, "cause": cause}  # fmt: skip


async def post(base_url: str, doc: dict[str, Any], msg_id: str) -> tuple[int, str]:
    body = json.dumps(doc).encode()
    headers = signing.signed_headers(SITE_SECRET, msg_id, int(time.time()), body)
    headers["content-type"] = "application/json"
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base_url}/v1/sites/main/events", data=body, headers=headers) as response,
    ):
        return response.status, await response.text()


async def test_received_detail_and_answer_are_the_json_encoders_text(start_relay, tmp_path: Path) -> None:
    """The 'received' rows' detail, the 202's body and the stored answer are json.dumps's text, byte for byte."""
    r = await start_relay(make_config(tmp_path / "state"))
    causes = [{"kind": "order", "order_id": 2**63 - 1}, {"kind": "refund", "order_id": 1}, {}, {"kind": "relay"}]
    events = [
        event(n + 1, kind, cause) for n, (kind, cause) in enumerate((k, c) for k in protocol.KINDS for c in causes)
    ]
    for msg_id, doc in (
        ("msg_clean", {"type": "stock.batch", "site": "main", "events": events}),
        ("msg_refused", {"type": "stock.batch", "site": "main", "events": [event(99, "stock", {}), {"id": "x y"}]}),
    ):
        status, text = await post(r.base_url, doc, msg_id)
        assert status == 202 and text == json.dumps(json.loads(text))
        assert read_rows(r.relay.config.database_path, "SELECT response FROM requests WHERE msg_id = ?", (msg_id,)) == [
            (text,)
        ]
        assert (await post(r.base_url, doc, msg_id)) == (202, text)  # a repeat is answered the same text
    rows = read_rows(
        r.relay.config.database_path, "SELECT event_id, detail FROM audit WHERE action = 'received' ORDER BY id"
    )
    expected = [
        (e["id"], json.dumps({"kind": e["kind"], "cause": e["cause"].get("kind", "other"),
                              "order_id": e["cause"].get("order_id")}))
        for e in [*events, event(99, "stock", {})]
    ]  # fmt: skip
    assert rows == expected
