"""WooCommerce's own webhooks, for shops without the plugin (docs/wire-protocol.md §4).

``POST /v1/sites/{site}/woocommerce`` takes the topics ``product.updated``, ``product.created``,
``product.deleted`` and ``product.restored``, verified by ``X-WC-Webhook-Signature`` =
base64(HMAC-SHA256(secret, raw body)) against each of the site's active secrets (WooCommerce's
webhook "Secret" field holds the site's whole ``whsec_…`` value). The ping WooCommerce sends when a
webhook is created (form body ``webhook_id=N``) gets 200 and stores nothing.

Weaker guarantees than the plugin, documented in docs/wire-protocol.md: these requests carry no
timestamp (a captured request could be replayed while its delivery id is no longer remembered, so
only send them over TLS), no stable event id (the delivery id stands in) and no version. WooCommerce
builds the payload when it delivers, not when stock changed, so the newest delivery holds the newest
state: its version is the time the relay received it, in microseconds (the plugin's versions use the
same scale, so the gate still orders them if a shop switches).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from .. import signing
from ..config import SiteConfig
from ..errors import PayloadError, SignatureError
from . import ingest, protocol

TOPICS = {"product.updated": "stock", "product.created": "stock", "product.restored": "restored"}
DELETED = "product.deleted"
PING = re.compile(rb"^webhook_id=\d{1,20}$")
DELIVERY_ID = re.compile(r"[^A-Za-z0-9_\-.:]")


def verify(site: SiteConfig, headers: Any, body: bytes) -> None:
    signature = headers.get("X-WC-Webhook-Signature", "")
    if not signature:
        raise SignatureError("signature_missing", "The request has no X-WC-Webhook-Signature header.")
    if not any(signing.verify_woocommerce(secret, body, signature) for secret in site.secrets):
        raise SignatureError(
            "signature_invalid", "X-WC-Webhook-Signature does not match: put the site's secret in the webhook's Secret."
        )


def is_ping(content_type: str, body: bytes) -> bool:
    return content_type != "application/json" and PING.match(body.strip()) is not None


def delivery_id(headers: Any, body: bytes) -> str:
    """WooCommerce's X-WC-Webhook-Delivery-ID, made safe as an event id (it is a hash; nothing is lost)."""
    raw = headers.get("X-WC-Webhook-Delivery-ID", "")
    if not raw:
        raise PayloadError("missing_field", "The request has no X-WC-Webhook-Delivery-ID header.")
    return "wc_" + DELIVERY_ID.sub("", raw)[:100]


def topic_kind(headers: Any) -> str:
    topic = headers.get("X-WC-Webhook-Topic", "")
    if topic == DELETED:
        return "deleted"
    if topic not in TOPICS:
        raise PayloadError(
            "unsupported_topic",
            "Use the topics product.updated, product.created, product.deleted and product.restored for this URL.",
        )
    return TOPICS[topic]


def to_event(doc: Any, kind: str, event_id: str, version: int, known_sku: str | None) -> dict[str, Any]:
    """The REST product resource WooCommerce sends, as one stock event of the wire protocol.

    A variation whose stock its parent manages (``manage_stock: "parent"``) reports the parent's stock row,
    so the event is the parent's (``product_id`` owns the stock, docs/wire-protocol.md §2). ``product.deleted``
    carries only ``id``: the SKU is the one the relay last saw for that product (``known_sku``).
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), int) or isinstance(doc.get("id"), bool):
        raise PayloadError("malformed_json", "The body must be a WooCommerce product with an integer 'id'.")
    item_id = doc["id"]
    parent_id = doc.get("parent_id") or None
    is_variation = doc.get("type") == "variation" and isinstance(parent_id, int)
    managed = doc.get("manage_stock", False)
    event: dict[str, Any] = {
        "id": event_id,
        "kind": kind,
        "product_id": parent_id if is_variation and managed == "parent" else item_id,
        "variation_id": item_id if is_variation else None,
        "parent_id": parent_id if is_variation else None,
        "sku": doc.get("sku", known_sku or ""),
        "manage_stock": managed is True or managed == "parent",
        "stock_quantity": doc.get("stock_quantity"),
        "stock_status": doc.get("stock_status", "outofstock" if kind == "deleted" else "instock"),
        "backorders": doc.get("backorders", "no"),
        "version": version,
        "cause": {"kind": "other"},
    }
    if kind == "deleted":
        event.update(sku=known_sku or "", manage_stock=False, stock_quantity=None, stock_status="outofstock")
    return event


async def handle(request: web.Request, site: SiteConfig, body: bytes, relay: Any) -> web.StreamResponse:
    """A JSON delivery whose signature server.py has verified (and charged to the site's request budget)."""
    kind = topic_kind(request.headers)
    event_id = delivery_id(request.headers, body)
    doc = protocol.parse_json(body)
    known = None
    if kind == "deleted" and isinstance(doc, dict) and isinstance(doc.get("id"), int):
        product_id = doc["id"]
        row = await relay.store.query(
            lambda conn: conn.execute(
                "SELECT sku FROM events WHERE site = ? AND (product_id = ? OR variation_id = ?) AND sku != ''"
                " ORDER BY seq DESC LIMIT 1",
                (site.id, product_id, product_id),
            ).fetchone()
        )
        known = row[0] if row else None
    now = relay.now()
    raw = to_event(doc, kind, event_id, int(now * 1_000_000), known)
    checked = protocol.validate_event(raw)
    if isinstance(checked, protocol.Rejection):
        raise PayloadError(checked.code, checked.message)
    channels = [c.name for c in site.channels]
    outcome = await relay.store.write(
        lambda conn: ingest.record_batch(conn, site.id, channels, event_id, [checked], [], now, site.coalesce)
    )
    if outcome.accepted_skus:
        relay.wake(site.id)
    if not outcome.repeated:
        relay.metrics.count_batch(site.id, outcome.response)
    return web.json_response(outcome.response, status=202)
