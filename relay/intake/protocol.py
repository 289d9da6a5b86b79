"""The wire protocol's checks (docs/wire-protocol.md §2): strict JSON, the envelope of every signed request, a batch's events.

Everything here is pure: it judges what a request says and never touches the database. Parsing refuses hostile
JSON (duplicate keys, NaN, deep nesting, giant numbers). Each event is validated on its own, so a batch is
accepted partially; ``content_digest`` and ``is_reuse`` say whether a resent webhook-id carries the same request.
The valid events are recorded by ingest.py.
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from ..errors import PayloadError

KINDS = ("stock", "deleted", "restored")
STATUSES = ("instock", "outofstock", "onbackorder")
BACKORDERS = ("no", "notify", "yes")
CAUSES = ("order", "refund", "admin", "rest", "import", "bulk_edit", "relay", "other")
MIN_QUANTITY = -1_000_000
MAX_QUANTITY = 1_000_000_000
MAX_ID = 2**63 - 1
MAX_SKU_LENGTH = 191  # WooCommerce's own column width
EVENT_ID = re.compile(r"^[A-Za-z0-9_\-.:]{1,128}$", re.ASCII)
# Control characters, and lone UTF-16 surrogates: legal as JSON escapes, but not text SQLite can store.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
MAX_DEPTH = 16


class Event(NamedTuple):  # a NamedTuple: immutable, and built in a fraction of a frozen dataclass's time
    id: str
    kind: str
    product_id: int
    variation_id: int | None
    parent_id: int | None
    sku: str
    manage_stock: bool
    stock_quantity: int | None
    stock_status: str
    backorders: str
    version: int
    occurred_at: str
    cause_kind: str
    cause_order_id: int | None


class Rejection(NamedTuple):
    id: str | None
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "code": self.code, "message": self.message}


def parse_json(body: bytes) -> Any:
    """Strict JSON: UTF-8 only, no duplicate keys, no NaN/Infinity, bounded depth and number size."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("malformed_json", "The body is not valid UTF-8.") from None
    try:
        if text.startswith("\ufeff"):  # what json.loads says; the shared decoder below does not check it
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _DECODER.decode(text)
    except RecursionError:
        raise PayloadError("malformed_json", "The JSON is nested too deeply.") from None
    except ValueError as exc:  # includes JSONDecodeError and over-long integers
        raise PayloadError("malformed_json", f"The body is not valid JSON: {_short(str(exc))}") from None
    if not _shallow(body) and _depth(value) > MAX_DEPTH:
        raise PayloadError("malformed_json", f"The JSON is nested more than {MAX_DEPTH} levels deep.")
    return value


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"{}[]")


def _shallow(body: bytes) -> bool:
    """True when the body's containers cannot nest deeper than MAX_DEPTH, found at C speed, without the walk.

    The body's brackets alone (strings' brackets included) are reduced by removing innermost ``{}`` and ``[]``
    pairs, one nesting level a round: empty after MAX_DEPTH - 1 rounds means no container holds more than that
    many levels, so no value (a scalar sits one level below its container) is deeper than MAX_DEPTH. Anything
    else (deeper, or brackets inside strings that do not pair up) leaves the answer to ``_depth``'s exact walk.
    A 100-event batch is three rounds over about 200 bytes."""
    brackets = body.translate(None, _NOT_BRACKETS)
    for _ in range(MAX_DEPTH - 1):
        if not brackets:
            return True
        brackets = brackets.replace(b"{}", b"").replace(b"[]", b"")
    return not brackets


def _short(text: str) -> str:
    return text if len(text) <= 120 else text[:117] + "..."


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):  # only then look for the first repeated key, to name it
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


# One decoder for every request: json.loads with hooks would build a new JSONDecoder each call.
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def check_envelope(doc: Any, expected_type: str, site: str) -> dict[str, Any]:
    """The whole-request checks common to every signed POST."""
    if not isinstance(doc, dict):
        raise PayloadError("malformed_json", "The body must be a JSON object.")
    if "type" not in doc:
        raise PayloadError("missing_field", "The body has no 'type'.")
    if doc["type"] != expected_type:
        raise PayloadError("type_mismatch", f"This path takes type {expected_type!r}, not {_short(repr(doc['type']))}.")
    if "site" in doc and doc["site"] != site:
        raise PayloadError("type_mismatch", "The body's 'site' does not match the site in the URL.")
    return doc


def content_digest(doc: dict[str, Any]) -> str:
    """What makes two requests under one webhook-id the same request: everything but ``sent_at``, which the
    plugin renders anew on every resend. A batch's events count by what identifies and states them (the plugin
    never changes an event it has sent), which costs a fraction of hashing their whole text."""
    events = doc.get("events")
    return _digest(doc, [_raw_summary(event) for event in (events if isinstance(events, list) else [events])])


# What of an event the digest counts: these keys of its object, in this order (a stored digest is compared with a
# resend's, perhaps computed by another version of the relay, so what is hashed never changes).
_DIGEST_KEYS = ("id", "kind", "product_id", "variation_id", "sku", "stock_quantity", "stock_status", "version")
# The same values taken from a validated Event, whose fields hold exactly what the object said for these keys
# (variation_id absent or null alike: None), at C speed instead of a generator of .get() calls per event.
_EVENT_SUMMARY = operator.itemgetter(0, 1, 2, 3, 5, 7, 8, 10)
_HASH_CHUNK = 2000  # under hashlib's 2048 bytes, above which an update releases the GIL (see _digest)


def _raw_summary(event: Any) -> Any:
    return tuple(event.get(key) for key in _DIGEST_KEYS) if isinstance(event, dict) else event


def _digest(doc: dict[str, Any], summary: list[Any]) -> str:
    rest = sorted((key, repr(value)) for key, value in doc.items() if key not in ("sent_at", "events"))
    text = repr((rest, summary)).encode()
    # Fed in chunks that keep the GIL: a 100-event batch is ~5 kB, and handing the GIL to the writer thread for the
    # microseconds of one update, then waiting to get it back, cost the event loop more than the hash itself.
    hasher = hashlib.blake2b(digest_size=16)
    for at in range(0, len(text), _HASH_CHUNK):
        hasher.update(text[at : at + _HASH_CHUNK])
    return hasher.hexdigest()


class CheckedBatch(NamedTuple):
    valid: list[Event]
    rejected: list[Rejection]
    digest: str  # content_digest of the document, taken from the same pass


def split_batch(doc: dict[str, Any], max_events: int) -> tuple[list[Event], list[Rejection]]:
    """Validate a `stock.batch` document's events one by one."""
    checked = check_batch(doc, max_events)
    return checked.valid, checked.rejected


def check_batch(doc: dict[str, Any], max_events: int) -> CheckedBatch:
    """``split_batch`` and ``content_digest`` in one pass over the events: a valid event's digest summary is read
    from its Event (equal to what ``content_digest`` reads from the object), only a refused one's from the object."""
    events = doc.get("events")
    if events is None:
        raise PayloadError("missing_field", "The batch has no 'events' list.")
    if not isinstance(events, list):
        raise PayloadError("malformed_json", "'events' must be a list.")
    if not events:
        raise PayloadError("missing_field", "The batch has no events; send 1 to 500 per request.")
    if len(events) > max_events:
        raise PayloadError("batch_too_large", f"A batch holds at most {max_events} events; this one has {len(events)}.")
    valid: list[Event] = []
    rejected: list[Rejection] = []
    summary: list[Any] = []
    for raw in events:
        outcome = validate_event(raw)
        if type(outcome) is Event:
            valid.append(outcome)
            summary.append(_EVENT_SUMMARY(outcome))
        else:
            rejected.append(outcome)  # type: ignore[arg-type]
            summary.append(_raw_summary(raw))
    return CheckedBatch(valid, rejected, _digest(doc, summary))


def validate_event(raw: Any) -> Event | Rejection:
    """One event of a batch, or the reason it is refused (a refusal is final: resending cannot help)."""
    if not isinstance(raw, dict):
        return Rejection(None, "invalid_event", "Each event must be a JSON object.")
    event_id = raw.get("id")
    if not isinstance(event_id, str) or not EVENT_ID.match(event_id):
        return Rejection(None, "invalid_id", "id must be 1-128 characters of A-Z a-z 0-9 _ - . :")
    for name in ("kind", "product_id", "sku", "stock_quantity", "stock_status", "version"):
        if name not in raw:
            return Rejection(event_id, "missing_field", f"The event has no '{name}'.")
    try:
        return _event(event_id, raw)
    except _Invalid as exc:
        return Rejection(event_id, exc.code, exc.message)


class _Invalid(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code, self.message = code, message


def _int(raw: dict[str, Any], name: str, low: int, high: int, code: str, optional: bool = False) -> int | None:
    value = raw.get(name)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _Invalid(code, f"{name} must be an integer from {low} to {high}" + (" or null" if optional else ""))
    return value


def _choice(raw: dict[str, Any], name: str, allowed: Sequence[str], default: str | None = None) -> str:
    value = raw.get(name, default)
    if value not in allowed:
        raise _Invalid(f"invalid_{name}", f"{name} must be one of: {', '.join(allowed)}")
    return str(value)


def _event(event_id: str, raw: dict[str, Any]) -> Event:
    kind = _choice(raw, "kind", KINDS)
    product_id = _int(raw, "product_id", 1, MAX_ID, "invalid_product_id")
    variation_id = _int(raw, "variation_id", 1, MAX_ID, "invalid_product_id", optional=True)
    parent_id = _int(raw, "parent_id", 1, MAX_ID, "invalid_product_id", optional=True)
    sku = raw["sku"]
    if not isinstance(sku, str) or len(sku) > MAX_SKU_LENGTH or CONTROL.search(sku) or sku != sku.strip():
        raise _Invalid(
            "invalid_sku",
            f"sku must be text of at most {MAX_SKU_LENGTH} characters, without control characters or surrounding spaces",
        )
    manage_stock = raw.get("manage_stock", raw["stock_quantity"] is not None)
    if not isinstance(manage_stock, bool):
        raise _Invalid("invalid_manage_stock", "manage_stock must be true or false")
    quantity = _int(raw, "stock_quantity", MIN_QUANTITY, MAX_QUANTITY, "invalid_quantity", optional=True)
    if manage_stock and quantity is None and kind == "stock":
        raise _Invalid("invalid_quantity", "stock_quantity must be an integer when manage_stock is true")
    status = _choice(raw, "stock_status", STATUSES)
    backorders = _choice(raw, "backorders", BACKORDERS, "no")
    version = _int(raw, "version", 1, MAX_ID, "invalid_version")
    occurred_at = raw.get("occurred_at", "")
    if occurred_at != "" and not _is_timestamp(occurred_at):
        raise _Invalid(
            "invalid_timestamp", "occurred_at must be an RFC 3339 UTC timestamp such as 2026-11-22T10:00:00Z"
        )
    cause = raw.get("cause") or {}
    if not isinstance(cause, dict):
        raise _Invalid("invalid_cause", "cause must be an object with a 'kind'")
    cause_kind = cause.get("kind", "other")
    if cause_kind not in CAUSES:
        raise _Invalid("invalid_cause", f"cause.kind must be one of: {', '.join(CAUSES)}")
    order_id = _int(cause, "order_id", 1, MAX_ID, "invalid_cause", optional=True)
    return Event(
        id=event_id,
        kind=kind,
        product_id=product_id,  # type: ignore[arg-type]
        variation_id=variation_id,
        parent_id=parent_id,
        sku=sku,
        manage_stock=manage_stock,
        stock_quantity=quantity,
        stock_status=status,
        backorders=backorders,
        version=version,  # type: ignore[arg-type]
        occurred_at=occurred_at,
        cause_kind=cause_kind,
        cause_order_id=order_id,
    )


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 40 or not value.endswith("Z"):
        return False
    try:
        datetime.fromisoformat(value[:-1] + "+00:00")
    except ValueError:
        return False
    return True


def is_reuse(stored: str | None, digest: str) -> bool:
    """A repeated webhook-id whose content differs from the first request's (unknown on either side: not a reuse)."""
    return bool(stored and digest and stored != digest)
