"""Standard Webhooks signing and verification (docs/wire-protocol.md §1).

Signed content is ``f"{webhook_id}.{webhook_timestamp}.".encode() + raw_body``. ``v1`` is
HMAC-SHA256 keyed by the base64-decoded part of a ``whsec_`` secret; ``v1a`` is ed25519 with a
``whsk_`` private key (outbound webhooks only). Verification walks every listed signature
against every active secret so that secrets can rotate, compares in constant time, and ignores
signature versions it does not know.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
from collections.abc import Iterable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import SignatureError

TOLERANCE_SECONDS = 300
SECRET_PREFIX = "whsec_"
PRIVATE_KEY_PREFIX = "whsk_"
PUBLIC_KEY_PREFIX = "whpk_"
MAX_SIGNATURE_HEADER = 4096


def new_secret() -> str:
    """A fresh shared secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode()


def new_ed25519_key() -> tuple[str, str]:
    """A fresh ``(whsk_ private, whpk_ public)`` key pair for v1a outbound signing."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes_raw()
    public = key.public_key().public_bytes_raw()
    return (
        PRIVATE_KEY_PREFIX + base64.b64encode(private).decode(),
        PUBLIC_KEY_PREFIX + base64.b64encode(public).decode(),
    )


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret. Raises ValueError (without echoing the secret) if malformed."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("secret must start with 'whsec_'")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("secret is not valid base64 after 'whsec_'") from None
    if len(key) < 24:
        raise ValueError("secret must decode to at least 24 bytes")
    return key


_HMAC_CHUNK = 2000  # under hashlib's 2048 bytes, above which an update releases the GIL


def _hmac_sha256(key: bytes, content: bytes) -> bytes:
    """HMAC-SHA256 of ``content``, fed in chunks that keep the GIL.

    One update of a whole 28 kB batch releases the GIL; the ingest writer thread takes it and the event loop then
    waits up to the interpreter's switch interval (5 ms) to get it back: measured 1.65 ms per 100-event request
    where the hash itself takes ~30 µs (docs/performance.md). Same digest, as hmac.new(key, content, sha256).
    """
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for at in range(0, len(content), _HMAC_CHUNK):
        mac.update(content[at : at + _HMAC_CHUNK])
    return mac.digest()


def _signed_content(msg_id: str, timestamp: int | str, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value (``v1,<base64>``) for one secret."""
    digest = hmac.new(secret_key(secret), _signed_content(msg_id, timestamp, body), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign_ed25519(private_key: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value (``v1a,<base64>``) for a ``whsk_`` private key."""
    raw = base64.b64decode(private_key.removeprefix(PRIVATE_KEY_PREFIX))
    signature = Ed25519PrivateKey.from_private_bytes(raw).sign(_signed_content(msg_id, timestamp, body))
    return "v1a," + base64.b64encode(signature).decode()


def verify_ed25519(public_key: str, msg_id: str, timestamp: int, body: bytes, signature_header: str) -> bool:
    """True if any ``v1a`` signature in the header verifies with the ``whpk_`` public key."""
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key.removeprefix(PUBLIC_KEY_PREFIX)))
    content = _signed_content(msg_id, timestamp, body)
    for version, value in _parse_signatures(signature_header):
        if version != "v1a":
            continue
        try:
            key.verify(value, content)
            return True
        except InvalidSignature:
            continue
    return False


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for an outgoing request."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def shop_request_headers(secrets: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of a signed JSON call to the shop's plugin (snapshot, wake, adjust): signed with every active
    secret of the site, since mid-rotation the plugin may hold the old one or the new one."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets),
    }


def _parse_signatures(header: str) -> list[tuple[str, bytes]]:
    found = []
    for part in header.split(" "):
        version, sep, value = part.partition(",")
        if not sep:
            continue
        try:
            found.append((version, base64.b64decode(value, validate=True)))
        except (binascii.Error, ValueError):
            continue
    return found


def verify(
    secrets: Iterable[str],
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance: int = TOLERANCE_SECONDS,
) -> int:
    """Verify a request signed with any of ``secrets``; return its timestamp.

    Raises SignatureError with the docs/wire-protocol.md code: ``signature_missing``,
    ``timestamp_out_of_tolerance`` or ``signature_invalid``.
    """
    msg_id = headers.get("webhook-id", "")
    raw_ts = headers.get("webhook-timestamp", "")
    header = headers.get("webhook-signature", "")
    if not msg_id or not raw_ts or not header:
        raise SignatureError(
            "signature_missing",
            "The request lacks the webhook-id, webhook-timestamp or webhook-signature header.",
        )
    if len(header) > MAX_SIGNATURE_HEADER or len(msg_id) > 256:
        raise SignatureError("signature_invalid", "The signature headers are too long.")
    if not raw_ts.isascii() or not raw_ts.isdigit() or len(raw_ts) > 12:
        raise SignatureError("signature_invalid", "webhook-timestamp must be whole Unix seconds.")
    timestamp = int(raw_ts)
    if abs(now - timestamp) > tolerance:
        raise SignatureError(
            "timestamp_out_of_tolerance",
            f"The request timestamp {timestamp} is more than {tolerance} s away from the relay's clock "
            f"({int(now)}); check the clock of the shop's server.",
        )
    content = _signed_content(msg_id, raw_ts, body)
    candidates = [value for version, value in _parse_signatures(header) if version == "v1"]
    matched = False
    for secret in secrets:
        expected = _hmac_sha256(secret_key(secret), content)
        for value in candidates:
            # Keep comparing after a match so timing does not reveal which secret matched.
            matched |= hmac.compare_digest(expected, value)
    if not matched:
        raise SignatureError(
            "signature_invalid",
            "The signature does not match any active secret of this site; check the secret in the plugin settings.",
        )
    return timestamp


def verify_woocommerce(secret: str, body: bytes, signature: str) -> bool:
    """WooCommerce native webhooks: ``X-WC-Webhook-Signature`` = base64(HMAC-SHA256(secret, body))."""
    expected = base64.b64encode(_hmac_sha256(secret.encode(), body)).decode()
    return hmac.compare_digest(expected.encode(), signature.encode())
