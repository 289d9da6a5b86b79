"""Standard Webhooks signing against the shared vectors (copied into tests/vectors) and every negative case.

tests/vectors/signing.json is the repository's one copy: the plugin's SignerTest.php reads it too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest

from relay import signing
from relay.errors import SignatureError

from .spec_files import REQUIRED

VECTORS_FILE = Path(__file__).parent / "vectors" / "signing.json"
VECTORS = json.loads(VECTORS_FILE.read_text())
POSITIVE = {v["name"]: v for v in VECTORS["standard_webhooks_v1"]}


def _headers(vector: dict, signature: str | None = None) -> dict[str, str]:
    return {
        "webhook-id": vector["webhook_id"],
        "webhook-timestamp": str(vector["webhook_timestamp"]),
        "webhook-signature": signature or vector["signature"],
    }


@pytest.mark.parametrize("vector", VECTORS["standard_webhooks_v1"], ids=lambda v: v["name"])
def test_sign_reproduces_vector(vector: dict) -> None:
    """Our signer produces exactly the reference library's signature over the UTF-8 body bytes."""
    body = vector["body"].encode()
    assert (
        signing.sign(vector["secret"], vector["webhook_id"], vector["webhook_timestamp"], body) == vector["signature"]
    )


@pytest.mark.parametrize("vector", VECTORS["standard_webhooks_v1"], ids=lambda v: v["name"])
def test_verify_accepts_vector(vector: dict) -> None:
    """The verifier accepts every positive vector and returns its timestamp."""
    ts = vector["webhook_timestamp"]
    assert signing.verify([vector["secret"]], _headers(vector), vector["body"].encode(), now=ts) == ts


@pytest.mark.parametrize("case", VECTORS["negative"], ids=lambda c: c["name"])
def test_negative_vectors(case: dict) -> None:
    """Each negative vector gets the outcome the shared file expects."""
    base = POSITIVE[case["base"]]
    secret = case.get("secret", base["secret"])
    body = case.get("body", base["body"]).encode()
    now = base["webhook_timestamp"] + case.get("now_minus_timestamp", 0)
    headers = _headers(base, case.get("signature_header"))
    if case["expect"] == "valid":
        assert signing.verify([secret], headers, body, now=now) == base["webhook_timestamp"]
        return
    with pytest.raises(SignatureError) as info:
        signing.verify([secret], headers, body, now=now)
    expected = {"invalid": "signature_invalid", "expired": "timestamp_out_of_tolerance"}[case["expect"]]
    assert info.value.code == expected


def test_tolerance_edge_is_inclusive() -> None:
    """Exactly 300 s of skew either way is still accepted."""
    v = POSITIVE["simple stock batch"]
    for skew in (300, -300):
        signing.verify([v["secret"]], _headers(v), v["body"].encode(), now=v["webhook_timestamp"] + skew)


def test_rotation_accepts_any_active_secret() -> None:
    """With old and new secrets active, a request signed with either verifies."""
    v = POSITIVE["simple stock batch"]
    other = signing.new_secret()
    signing.verify([other, v["secret"]], _headers(v), v["body"].encode(), now=v["webhook_timestamp"])
    with pytest.raises(SignatureError):
        signing.verify([other], _headers(v), v["body"].encode(), now=v["webhook_timestamp"])


@pytest.mark.parametrize("size", [0, 1, 1_999, 2_000, 2_001, 4_000, 28_657, 1_000_000])
def test_large_bodies_verify_as_one_hmac_would(size: int) -> None:
    """The HMAC is fed in chunks (so it keeps the GIL); every chunk boundary must still give the one-shot digest:
    a body signed by the standard library's hmac over the whole content verifies, its last byte changed does not."""
    secret, msg_id, ts = signing.new_secret(), "msg_big", 1_780_000_000
    body = bytes((i * 7 + 3) % 251 for i in range(size))
    reference = hmac.new(signing.secret_key(secret), f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": "v1," + base64.b64encode(reference).decode(),
    }
    assert signing.verify([secret], headers, body, now=ts) == ts
    if size:
        with pytest.raises(SignatureError):
            signing.verify([secret], headers, body[:-1] + bytes([body[-1] ^ 1]), now=ts)
    woo = base64.b64encode(hmac.new(b"woo-secret", body, hashlib.sha256).digest()).decode()
    assert signing.verify_woocommerce("woo-secret", body, woo)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header(missing: str) -> None:
    """A request without one of the three headers is signature_missing."""
    v = POSITIVE["ping"]
    headers = _headers(v)
    del headers[missing]
    with pytest.raises(SignatureError) as info:
        signing.verify([v["secret"]], headers, v["body"].encode(), now=v["webhook_timestamp"])
    assert info.value.code == "signature_missing"


@pytest.mark.parametrize(
    "timestamp",
    ["abc", "1.5", "-1", "１７６３８０５６０１", "99999999999999999999"],
    ids=["text", "float", "negative", "fullwidth", "huge"],
)
def test_malformed_timestamp(timestamp: str) -> None:
    """A timestamp that is not whole ASCII Unix seconds is refused without crashing."""
    v = POSITIVE["ping"]
    headers = _headers(v) | {"webhook-timestamp": timestamp}
    with pytest.raises(SignatureError) as info:
        signing.verify([v["secret"]], headers, v["body"].encode(), now=v["webhook_timestamp"])
    assert info.value.code == "signature_invalid"


@pytest.mark.parametrize("header", ["", "v1", "v1,", "v1,!!!notbase64", "v2,AAAA", "v1," + "A" * 5000])
def test_garbage_signature_header(header: str) -> None:
    """Garbage in the signature list is refused as invalid or missing, never an exception of another kind."""
    v = POSITIVE["ping"]
    with pytest.raises(SignatureError):
        signing.verify(
            [v["secret"]], _headers(v) | {"webhook-signature": header}, v["body"].encode(), now=v["webhook_timestamp"]
        )


def test_signed_content_includes_id_and_timestamp() -> None:
    """Changing the id or the timestamp invalidates the signature (no replay under a new id)."""
    v = POSITIVE["ping"]
    body = v["body"].encode()
    for change in ({"webhook-id": "msg_other"}, {"webhook-timestamp": str(v["webhook_timestamp"] + 1)}):
        with pytest.raises(SignatureError) as info:
            signing.verify([v["secret"]], _headers(v) | change, body, now=v["webhook_timestamp"])
        assert info.value.code == "signature_invalid"


def test_new_secret_shape() -> None:
    """keygen secrets are whsec_ + base64 of 32 bytes, and differ each time."""
    a, b = signing.new_secret(), signing.new_secret()
    assert a != b and a.startswith("whsec_") and len(signing.secret_key(a)) == 32


@pytest.mark.parametrize("bad", ["nope", "whsec_", "whsec_***", "whsec_AAAA"])
def test_malformed_secret_rejected_without_echo(bad: str) -> None:
    """A malformed secret is refused with a message that does not repeat it."""
    with pytest.raises(ValueError) as info:
        signing.secret_key(bad)
    secret_part = bad.removeprefix("whsec_")
    assert not secret_part or secret_part not in str(info.value)


def test_ed25519_round_trip() -> None:
    """v1a signatures verify with the public key and fail when the body changes."""
    private, public = signing.new_ed25519_key()
    header = signing.sign_ed25519(private, "msg_1", 1763805600, b"{}")
    assert header.startswith("v1a,")
    assert signing.verify_ed25519(public, "msg_1", 1763805600, b"{}", header)
    assert not signing.verify_ed25519(public, "msg_1", 1763805600, b"{ }", header)


def test_woocommerce_native_vector() -> None:
    """X-WC-Webhook-Signature is base64(HMAC-SHA256(secret, raw body))."""
    v = VECTORS["woocommerce_native"][0]
    assert signing.verify_woocommerce(v["secret"], v["body"].encode(), v["signature"])
    assert not signing.verify_woocommerce(v["secret"], v["body"].encode() + b" ", v["signature"])


def test_the_vectors_are_one_copy_of_the_shared_ones() -> None:
    """The repository holds one copy of the signing vectors, equal to ../shared/vectors/signing.json when present."""
    root = VECTORS_FILE.parent.parent.parent
    copies = sorted(str(p.relative_to(root)) for p in root.glob("**/signing.json") if ".venv" not in p.parts)
    assert copies == ["tests/vectors/signing.json"], "the PHP suite reads tests/vectors/signing.json: keep no copy"
    shared = root.parent / "shared" / "vectors" / "signing.json"
    if not shared.is_file():
        reason = f"the shared vectors are not at {shared} (CI has ../shared beside the repository)"
        if REQUIRED:
            pytest.fail(f"STOCK_RELAY_REQUIRE_SPECS=1 and {reason}", pytrace=False)
        pytest.skip(reason)
    assert VECTORS_FILE.read_bytes() == shared.read_bytes(), f"tests/vectors/signing.json differs from {shared}"
