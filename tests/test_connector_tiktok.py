"""The TikTok Shop connector against the fake TikTok shop, through a real relay; and its request signature.

TikTok publishes no machine-readable spec we hold: the expected body below is written from the contract
notes, shared/refs/marketplaces.md section 6 ("TikTok Shop (Partner API, version 202309)").
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from fakes.tiktok import FakeTikTok
from relay.connectors.tiktok_sign import sign, string_to_sign

from .marketplaces import audit_text, channel, dead_reasons, marketplace_config, send, settle, states, store_credentials

# marketplaces.md §6 "Absolute set": {"skus": [{"id", "inventory": [{"warehouse_id", "quantity" 0..99999}]}]}
INVENTORY_UPDATE = {
    "type": "object",
    "required": ["skus"],
    "additionalProperties": False,
    "properties": {
        "skus": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "inventory"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string", "minLength": 1},
                    "inventory": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["quantity"],
                            "additionalProperties": False,
                            "properties": {
                                "warehouse_id": {"type": "string"},
                                "quantity": {"type": "integer", "minimum": 0, "maximum": 99999},
                            },
                        },
                    },
                },
            },
        }
    },
}


def test_sign_matches_tiktoks_published_example() -> None:
    """The worked example of TikTok's "Sign your API request" guide (app secret e59af819cc) gives its hash."""
    params = {"app_key": "29a39d", "timestamp": "1623812664", "sign": "ignored", "access_token": "ignored"}
    assert sign("e59af819cc", "/authorization/202309/shops", params) == (
        "b596b73e0cc6de07ac26f036364178ab16b0a907af13d43f0a0cd2345f582dc8"
    )


def test_sign_with_a_body_matches_an_independent_computation() -> None:
    """Query sorted as key+value, path first, body appended as sent, secret on both sides, HMAC-SHA256."""
    body = b'{"address":"https://partner.tiktokshop.com","event_type":"PACKAGE_UPDATE"}'
    params = {"timestamp": "1696909648", "shop_cipher": "ROW_xkMbgAAAeVAQra0eZWebFQq5aIK", "app_key": "68xu9ks5p4i8"}
    text = (
        b"/event/202309/webhooksapp_key68xu9ks5p4i8shop_cipherROW_xkMbgAAAeVAQra0eZWebFQq5aIKtimestamp1696909648"
    ) + body
    assert string_to_sign("/event/202309/webhooks", params, body) == text
    wrapped = b"e59af819cc" + text + b"e59af819cc"
    assert sign("e59af819cc", "/event/202309/webhooks", params, body) == (
        hmac.new(b"e59af819cc", wrapped, hashlib.sha256).hexdigest()
    )
    assert sign("e59af819cc", "/p", params, body, multipart=True) == sign("e59af819cc", "/p", params)


@pytest.fixture
async def tiktok() -> AsyncIterator[FakeTikTok]:
    fake = FakeTikTok()
    await fake.start()
    yield fake
    await fake.stop()


async def start(
    start_relay, tmp_path: Path, tiktok: FakeTikTok, account: dict[str, str] | None = None, **creds_override: str
):
    base_account = {"shop_cipher": tiktok.shop_cipher, "auth_base": tiktok.url}
    config = marketplace_config(tmp_path / "state", channel("tiktok", tiktok.url, {**base_account, **(account or {})}))
    creds = {"app_key": tiktok.app_key, "app_secret": tiktok.app_secret, "refresh_token": tiktok.refresh_token}
    store_credentials(config, "main/tiktok", {**creds, **creds_override})
    return await start_relay(config)


def updates(tiktok: FakeTikTok) -> list[Any]:
    return [c for c in tiktok.calls("/inventory/update", method="POST")]


async def test_skus_of_one_product_share_one_signed_call(start_relay, tmp_path: Path, tiktok) -> None:
    """Two SKUs of one product: one call, a body as the contract says, signed as TikTok checks it."""
    product = tiktok.add_product({"TEE-S": {"WH1": 1}, "TEE-M": {"WH1": 1}, "TEE-L": {"WH1": 1}})
    other = tiktok.add_product({"CAP": {"WH1": 0}})
    r = await start(start_relay, tmp_path, tiktok)
    await send(r, [("TEE-S", 4), ("TEE-L", 9), ("CAP", 2)])
    await settle(r)
    assert [tiktok.stock(s) for s in ("TEE-S", "TEE-M", "TEE-L", "CAP")] == [
        {"WH1": 4},
        {"WH1": 1},
        {"WH1": 9},
        {"WH1": 2},
    ]
    calls = updates(tiktok)
    assert sorted(c.path for c in calls) == sorted(
        f"/product/202309/products/{p}/inventory/update" for p in (product, other)
    )
    for call in calls:
        jsonschema.validate(call.json, INVENTORY_UPDATE)
        assert {"app_key", "timestamp", "shop_cipher", "sign"} <= set(call.query)
        assert abs(int(call.query["timestamp"]) - time.time()) < 60
        pairs = "".join(k + call.query[k] for k in sorted(call.query) if k != "sign")
        wrapped = (tiktok.app_secret + call.path + pairs).encode() + call.body + tiktok.app_secret.encode()
        assert call.query["sign"] == hmac.new(tiktok.app_secret.encode(), wrapped, hashlib.sha256).hexdigest()
        assert tiktok.tokens.valid(call.headers["x-tts-access-token"])
    tee = next(c for c in calls if product in c.path)
    assert {s["id"] for s in tee.json["skus"]} == {tiktok.sku_id("TEE-S"), tiktok.sku_id("TEE-L")}
    assert tiktok.bad_signatures == 0


async def test_every_warehouse_of_the_sku_is_sent(start_relay, tmp_path: Path, tiktok) -> None:
    """A SKU in two warehouses: the configured one gets the quantity, the other keeps TikTok's current one."""
    tiktok.add_product({"MUG": {"WH-MAIN": 3, "WH-FBT": 40}})
    r = await start(start_relay, tmp_path, tiktok, {"warehouse_id": "WH-MAIN"})
    await send(r, [("MUG", 7)])
    await settle(r)
    assert tiktok.stock("MUG") == {"WH-MAIN": 7, "WH-FBT": 40}
    (call,) = updates(tiktok)
    jsonschema.validate(call.json, INVENTORY_UPDATE)


async def test_many_warehouses_without_a_choice_is_a_readable_dead_letter(start_relay, tmp_path: Path, tiktok) -> None:
    """Without account.warehouse_id the relay cannot know which warehouse is the shop's: it says so."""
    tiktok.add_product({"MUG": {"WH-A": 3, "WH-B": 4}})
    r = await start(start_relay, tmp_path, tiktok)
    await send(r, [("MUG", 7)])
    await settle(r)
    assert await states(r) == {"MUG": "dead"} and updates(tiktok) == []
    assert "stocked in 2 TikTok warehouses; set account.warehouse_id" in (await dead_reasons(r))["MUG"]


async def test_unknown_sku_and_per_sku_errors_are_dead_lettered(start_relay, tmp_path: Path, tiktok) -> None:
    """An unlisted SKU fails permanently by name; a per-SKU error in data.errors fails only that SKU."""
    tiktok.add_product({"A": {"WH1": 0}, "B": {"WH1": 0}})
    tiktok.sku_errors[tiktok.sku_id("B")] = (12052800, "The SKU is frozen.")
    r = await start(start_relay, tmp_path, tiktok)
    await send(r, [("A", 5), ("B", 5), ("GHOST", 5)])
    await settle(r)
    assert await states(r) == {"A": "delivered", "B": "dead", "GHOST": "dead"}
    reasons = await dead_reasons(r)
    assert reasons["GHOST"] == f"SKU GHOST is not listed on TikTok Shop {tiktok.shop_cipher}"
    assert reasons["B"] == "TikTok Shop refused SKU B: 12052800: The SKU is frozen."
    assert tiktok.stock("A") == {"WH1": 5} and tiktok.stock("B") == {"WH1": 0}


async def test_shop_cipher_is_found_when_not_configured(start_relay, tmp_path: Path, tiktok) -> None:
    """With no account.shop_cipher the connector asks /authorization/202309/shops for it."""
    tiktok.add_product({"A": {"WH1": 0}})
    r = await start(start_relay, tmp_path, tiktok, {"shop_cipher": ""})
    await send(r, [("A", 2)])
    await settle(r)
    assert tiktok.stock("A") == {"WH1": 2} and len(tiktok.calls("/authorization/202309/shops")) == 1


async def test_throttle_is_retried(start_relay, tmp_path: Path, tiktok) -> None:
    """HTTP 429 is transient: retried, and the budget slows down."""
    tiktok.add_product({"A": {"WH1": 0}})
    r = await start(start_relay, tmp_path, tiktok)
    tiktok.fail_next(1, 429, body={"code": 36009003, "message": "Too many requests.", "data": None}, path="/inventory")
    await send(r, [("A", 3)])
    await settle(r)
    assert tiktok.stock("A") == {"WH1": 3}
    assert r.relay.workers[("main", "tiktok")].connector.budget.throttles == 1


async def test_token_expiry_is_a_unix_timestamp_and_401_refreshes_once(start_relay, tmp_path: Path, tiktok) -> None:
    """The refresh answer's expiry is read as a timestamp (7 days ahead); an expired token is refreshed once."""
    tiktok.add_product({"A": {"WH1": 0}})
    r = await start(start_relay, tmp_path, tiktok)
    await send(r, [("A", 1)])
    await settle(r)
    auth = r.relay.workers[("main", "tiktok")].connector.auth
    assert 6.9 * 86400 < auth._expires - time.monotonic() <= 7 * 86400
    tiktok.tokens.expire_all()
    await send(r, [("A", 2)], version=2)
    await settle(r)
    assert tiktok.stock("A") == {"WH1": 2} and tiktok.tokens.issued == 2
    (refresh, *_) = tiktok.calls("/api/v2/token/refresh")
    assert refresh.query["grant_type"] == "refresh_token"


async def test_revoked_refresh_and_bad_secret_pause_without_leaking(start_relay, tmp_path: Path, tiktok) -> None:
    """A refused refresh pauses with TikTok's reason; a wrong app secret (code 106001) pauses at once."""
    tiktok.add_product({"A": {"WH1": 0}})
    tiktok.tokens.revoke_refresh_tokens()
    r = await start(start_relay, tmp_path, tiktok)
    await send(r, [("A", 1)])
    await r.drain()
    worker = r.relay.workers[("main", "tiktok")]
    assert (
        worker.circuit.state != "closed" and "TikTok Shop refused to refresh the access token" in worker.circuit.reason
    )
    assert tiktok.app_secret not in await audit_text(r)


async def test_wrong_app_secret_pauses_with_a_signature_reason(start_relay, tmp_path: Path, tiktok) -> None:
    """TikTok checks the signature before the token: 106001 pauses the channel naming secret and clock."""
    tiktok.add_product({"A": {"WH1": 0}})
    r = await start(start_relay, tmp_path, tiktok)
    await send(r, [("A", 1)])
    await settle(r)
    tiktok.app_secret = "rotated-on-tiktok-00000000000"  # the relay still signs with the old one
    await send(r, [("A", 2)], version=2)
    await r.drain()
    worker = r.relay.workers[("main", "tiktok")]
    assert "code 106001" in worker.circuit.reason and "check the app secret" in worker.circuit.reason
    assert tiktok.stock("A") == {"WH1": 1}


@pytest.mark.parametrize("old_product", ["deleted", "kept"])
async def test_a_sku_moved_to_another_product_is_looked_up_again(
    start_relay, tmp_path: Path, tiktok, old_product
) -> None:
    """The seller re-lists a SKU under a new product: the cached mapping is dropped, not the update."""
    first = tiktok.add_product({"MUG": {"WH1": 1}, "BOWL": {"WH1": 1}})
    r = await start(start_relay, tmp_path, tiktok)
    await send(r, [("MUG", 2)])
    await settle(r)
    if old_product == "deleted":
        del tiktok.products[first]
    else:
        tiktok.products[first]["skus"] = [s for s in tiktok.products[first]["skus"] if s["seller_sku"] != "MUG"]
    second = tiktok.add_product({"MUG": {"WH1": 0}})
    await send(r, [("MUG", 7)], version=2)
    await settle(r)
    assert tiktok.stock("MUG") == {"WH1": 7}
    assert any(second in c.path for c in updates(tiktok))
    assert await states(r) == {"MUG": "delivered"}
    assert await dead_reasons(r) == {}


async def test_a_sku_refused_again_after_the_lookup_is_dead_lettered(start_relay, tmp_path: Path, tiktok) -> None:
    """Looking it up again happens once: a SKU TikTok still says is not in its product becomes a dead letter."""
    product = tiktok.add_product({"PLATE": {"WH1": 1}})
    r = await start(start_relay, tmp_path, tiktok)
    await send(r, [("PLATE", 2)])
    await settle(r)
    refusal = (12052230, "The SKU does not belong to this product.")
    tiktok.sku_errors[tiktok.sku_id("PLATE")] = refusal  # the fake answers it to the next update only
    await send(r, [("PLATE", 3)], version=2)
    assert await r.relay.workers[("main", "tiktok")].drain_once() == 1  # refused once: looked up again, retried
    assert await states(r) == {"PLATE": "pending"}
    tiktok.sku_errors[tiktok.sku_id("PLATE")] = refusal
    await settle(r)
    assert product in tiktok.products
    assert "does not belong to this product" in (await dead_reasons(r))["PLATE"]
