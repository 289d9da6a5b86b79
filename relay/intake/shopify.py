"""Shopify's order webhooks: a Shopify channel's sales, applied to the shop once each (docs/connectors.md "Sales").

``POST /v1/sites/{site}/channels/{channel}/shopify`` takes the topics ``orders/create``, ``orders/cancelled`` and
``refunds/create``, verified by ``X-Shopify-Hmac-Sha256`` = base64(HMAC-SHA256(app client secret, raw body)) against
each of the channel's ``webhook_secret`` values (rotation). Each order line becomes a ``Sale`` of relay/intake/sales.py
keyed ``<channel>:<order id>:<line item id>`` (``:cancel``, ``:refund:<refund id>``) and is recorded by the same write
job as the sales route, source ``webhook``, so the shop worker applies it to the shop exactly once (invariant 10).

``X-Shopify-Event-Id`` is the same for every delivery of one event: it stands in for the webhook-id, so a repeat is
answered with the first answer and records nothing (the sales keys would also count each line once). Shopify wants
a 200 within 5 s and retries anything else, so a delivery the relay cannot use (an unknown topic, a body that is not
an order or a refund) is answered 400 (Shopify's retries then change nothing), never a 5xx.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..config import ChannelConfig
from ..errors import PayloadError, SignatureError
from .sales import PART, Sale, SaleRejection, shop_sku_for, validate_item

TOPICS = ("orders/create", "orders/cancelled", "refunds/create")
NO_RESTOCK = "no_restock"
# Shopify records a cancellation's restock as a refund whose lines say restock_type "cancel": the cancellation
# itself already restocks them (restock_on_cancel), so counting the refund too would restock twice.
CANCEL_RESTOCK = "cancel"
EVENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


def verify(secrets: tuple[str, ...], headers: Mapping[str, str], body: bytes) -> None:
    """The body's HMAC against each active secret, in constant time."""
    given = headers.get("X-Shopify-Hmac-Sha256", "")
    if not given:
        raise SignatureError("signature_missing", "The request has no X-Shopify-Hmac-Sha256 header.")
    ok = False
    for secret in secrets:
        expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
        ok |= hmac.compare_digest(expected, given.encode("ascii", "replace"))
    if not ok:
        raise SignatureError(
            "signature_invalid", "X-Shopify-Hmac-Sha256 does not match: webhook_secret must be the app's client secret."
        )


def topic_and_event(headers: Mapping[str, str]) -> tuple[str, str]:
    topic = headers.get("X-Shopify-Topic", "")
    if topic not in TOPICS:
        raise PayloadError("unsupported_topic", f"Register this URL for the topics {', '.join(TOPICS)} only.")
    event = headers.get("X-Shopify-Event-Id", "") or headers.get("X-Shopify-Webhook-Id", "")
    if not EVENT_ID.match(event):
        raise PayloadError("missing_field", "The request has no usable X-Shopify-Event-Id header.")
    return topic, event


def _id(value: Any) -> str | None:
    """A Shopify id (an integer in REST bodies) as a key part, or None."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text = str(value)
    return text if PART.match(text) else None


def to_sales(topic: str, doc: Any, channel: ChannelConfig) -> tuple[list[Sale], list[SaleRejection]]:
    """The sales a delivery holds, and the lines skipped with the reason (each is audited)."""
    if not isinstance(doc, dict):
        raise PayloadError("malformed_json", "The body must be a Shopify order or refund object.")
    if topic == "refunds/create":
        order, refund = _id(doc.get("order_id")), _id(doc.get("id"))
        items = doc.get("refund_line_items")
        if order is None or refund is None or not isinstance(items, list):
            raise PayloadError(
                "malformed_json", "A refund needs integer 'id' and 'order_id' and a 'refund_line_items' list."
            )
        return refund_sales(order, refund, items, channel)
    order = _id(doc.get("id"))
    lines = doc.get("line_items")
    if order is None or not isinstance(lines, list):
        raise PayloadError("malformed_json", "An order needs an integer 'id' and a 'line_items' list.")
    return order_sales(order, lines, "cancel" if topic == "orders/cancelled" else "sale", channel)


# The two functions below are shared by the webhooks and the orders sweep (relay/connectors/shopify.py, which
# hands them GraphQL orders in the REST shape): one line gives one key, whichever path saw it first.


def order_sales(
    order: str, lines: Sequence[Any], kind: str, channel: ChannelConfig
) -> tuple[list[Sale], list[SaleRejection]]:
    """An order's ``line_items`` (REST shape) as sales, or, ``kind`` cancel, as cancellations; and the skipped."""
    sales: list[Sale] = []
    skipped: list[SaleRejection] = []
    for index, line in enumerate(lines):
        outcome = _line(index, order, line, channel, kind, "")
        if isinstance(outcome, Sale):
            sales.append(outcome)
        else:
            skipped.append(outcome)
    return sales, skipped


def refund_sales(
    order: str, refund: str, items: Sequence[Any], channel: ChannelConfig
) -> tuple[list[Sale], list[SaleRejection]]:
    """A refund's ``refund_line_items`` (REST shape) as restocks, each unless its ``restock_type`` is no_restock, or
    cancel (the cancellation's own restock, counted by its ``:cancel`` key)."""
    sales: list[Sale] = []
    skipped: list[SaleRejection] = []
    for index, item in enumerate(items):
        item = item if isinstance(item, dict) else {}
        line = dict(item.get("line_item") or {}) if isinstance(item.get("line_item"), dict) else {}
        line.setdefault("id", item.get("line_item_id"))
        line["quantity"] = item.get("quantity")
        outcome = _line(index, order, line, channel, "refund", refund)
        if isinstance(outcome, Sale) and item.get("restock_type") == NO_RESTOCK:
            outcome = SaleRejection(index, order, outcome.line, "not_restocked", "the refund does not restock it")
        elif isinstance(outcome, Sale) and item.get("restock_type") == CANCEL_RESTOCK:
            message = "the order's cancellation restocks it (restock_on_cancel), not its refund"
            outcome = SaleRejection(index, order, outcome.line, "cancel_restock", message)
        if isinstance(outcome, Sale):
            sales.append(outcome)
        else:
            skipped.append(outcome)
    return sales, skipped


def _line(index: int, order: str, line: Any, channel: ChannelConfig, kind: str, refund: str) -> Sale | SaleRejection:
    """One line item as a sale (``kind``: sale, cancel or refund) of the shop's SKU, or why it is skipped."""
    line_id = _id(line.get("id")) if isinstance(line, dict) else None
    if line_id is None:
        return SaleRejection(index, order, None, "invalid_line", "the line has no integer id")
    assert isinstance(line, dict)

    def skip(code: str, message: str) -> SaleRejection:
        return SaleRejection(index, order, line_id, code, message)

    if kind == "cancel" and not channel.restock_on_cancel:
        return skip("not_restocked", "restock_on_cancel is off for this channel")
    if kind == "refund" and not channel.restock_on_refund:
        return skip("not_restocked", "restock_on_refund is off for this channel")
    service = line.get("fulfillment_service", "manual")
    if service not in channel.fulfillment_services:
        return skip("fulfillment_service", f"fulfilled by {str(service)[:64]!r}, which ships its own stock")
    sku = line.get("sku")
    if not isinstance(sku, str) or not sku.strip():
        return skip("no_sku", "the line has no SKU")
    shop_sku = shop_sku_for(channel, sku)
    if shop_sku is None:
        return skip("unmapped_sku", f"channel SKU {sku[:100]!r} is no shop SKU of this channel (rules.sku_map)")
    item = {"order": order, "line": line_id, "kind": kind, "sku": shop_sku, "quantity": line.get("quantity")}
    return validate_item(item | ({"refund_id": refund} if refund else {}), index, channel.name)
