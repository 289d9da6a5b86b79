"""TikTok Shop's order webhooks: a TikTok channel's sales, applied to the shop once each (docs/connectors.md "Sales").

``POST /v1/sites/{site}/channels/{channel}/tiktok`` takes TikTok Shop's webhook notifications, verified by the
``Authorization`` header = hex(HMAC-SHA256(app secret, app key + raw body)), the channel's own vault credentials
``app_key`` and ``app_secret`` (the key and secret its API calls are signed with), compared in constant time.

An ORDER_STATUS_CHANGE notification (``type`` 1) names the order and its new status only, so the order's lines are
read with Get Order Detail through the channel's connector and turned into sales by the same code as the poll
(``TikTokConnector._order_sales``): the same keys ``<channel>:<order id>:<line item id>`` (``:cancel``), so a
webhook and a poll seeing the same order apply it once (DESIGN.md invariant 10). They are recorded by the sales
write job, source ``webhook``, with ``tts_notification_id`` (else order id and ``update_time``) standing in for the
webhook-id: a repeat is answered with the first answer and records nothing.

TikTok retries a notification that is not answered 200, so the answer is 200 only after the commit; an order that
cannot be read now (TikTok's API down, throttled, the vault unreadable) is a 503 that its retry may mend. Other
notification types (and another shop's) are answered 200 and ignored, logged once each: refused, TikTok would
retry them for nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from aiohttp import web

from ..config import SiteConfig
from ..connectors.tiktok import TikTokConnector
from ..errors import DeliveryError, PayloadError, SignatureError
from . import protocol
from .sales import PART, SOURCE_WEBHOOK, ReportWrite

if TYPE_CHECKING:
    from ..runtime import Relay

log = logging.getLogger("stock_relay.tiktok")

ORDER_STATUS_CHANGE = 1
NOTIFICATION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
_said: set[tuple[str, str, str]] = set()  # (site, channel, what) ignored notifications already logged


class Notification(NamedTuple):
    type: Any
    id: str  # stands in for the webhook-id
    shop_id: str
    order_id: str


def signature(app_key: str, app_secret: str, body: bytes) -> str:
    """What TikTok puts in ``Authorization``: hex(HMAC-SHA256(app secret, app key + raw body))."""
    return hmac.new(app_secret.encode(), app_key.encode() + body, hashlib.sha256).hexdigest()


def connector_for(relay: Relay, site: SiteConfig, name: str) -> TikTokConnector | None:
    """The connector of the site's TikTok channel ``name`` when it imports sales (which need the shop's address)."""
    worker = relay.workers.get((site.id, name))
    if worker is None or not isinstance(worker.connector, TikTokConnector):
        return None
    return worker.connector if worker.connector.config.import_sales and site.shop_url else None


async def verify(connector: TikTokConnector, headers: Mapping[str, str], body: bytes) -> None:
    """The body's signature with the channel's app key and secret, in constant time; a mismatch rereads them
    from the vault (at most once a minute) before it is refused, so a rotated secret needs no restart."""
    given = headers.get("Authorization", "").strip().lower().encode("ascii", "replace")
    if not given:
        raise SignatureError("signature_missing", "The request has no Authorization header.")
    for fresh in (False, True):
        try:
            key, secret = await connector.api.app_keys(fresh)
        except DeliveryError as exc:
            raise PayloadError(
                "credentials_unavailable",
                f"The channel's TikTok Shop credentials cannot be read ({exc}); nothing was recorded.",
                503,
            ) from None
        if hmac.compare_digest(signature(key, secret, body).encode(), given):
            return
    raise SignatureError(
        "signature_invalid",
        "Authorization does not match: the channel's credentials must hold the app_key and app_secret of the"
        " TikTok Shop app that sends these webhooks.",
    )


def parse(doc: Any) -> Notification:
    """The notification's envelope: ``{type, tts_notification_id, shop_id, timestamp, data}``."""
    if not isinstance(doc, dict) or "type" not in doc or not isinstance(doc.get("data"), dict):
        raise PayloadError("malformed_json", "The body must be a TikTok Shop notification with 'type' and 'data'.")
    data = doc["data"]
    order = _text(data.get("order_id"))
    given = _text(doc.get("tts_notification_id"))
    event = given if given and NOTIFICATION_ID.match(given) else f"{order}-{_text(data.get('update_time'))}"
    return Notification(doc["type"], event, _text(doc.get("shop_id")), order)


def _text(value: Any) -> str:
    """An id TikTok may send as a string or a number, as text ('' for anything else)."""
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""


async def handle(relay: Relay, site: SiteConfig, connector: TikTokConnector, body: bytes) -> web.StreamResponse:
    """A notification whose signature verified: an order status change is read and recorded, anything else
    ignored. 200 only after the commit."""
    note = parse(protocol.parse_json(body))
    channel = connector.config.name
    shop = connector.config.account.get("shop_id", "")
    if note.type != ORDER_STATUS_CHANGE or (shop and note.shop_id and note.shop_id != shop):
        what = f"type {note.type!r}" if note.type != ORDER_STATUS_CHANGE else f"shop {note.shop_id}"
        _say_once(site.id, channel, what)
        return web.json_response({"ignored": True})
    if not PART.match(note.order_id):
        raise PayloadError("missing_field", "An order status change needs data.order_id.")
    try:
        sales, skipped = await connector.order_sales(note.order_id)
    except DeliveryError as exc:
        log.warning("%s/%s: TikTok Shop order %s could not be read; TikTok retries: %s", site.id, channel,
                    note.order_id, exc)  # fmt: skip
        raise PayloadError(
            "order_unavailable", "The order could not be read from TikTok Shop now; nothing was recorded.", 503
        ) from None
    if relay.shutting_down:
        raise PayloadError("shutting_down", "The relay is restarting; retry shortly.", 503)
    job = ReportWrite(site.id, channel, note.id, sales, skipped, relay.now(), "", SOURCE_WEBHOOK, audit_skipped=True)
    outcome = await relay.store.write(job)
    if outcome.accepted:
        relay.wake_shop(site.id)
    headers = {"Idempotent-Replayed": "true"} if outcome.repeated else None
    return web.Response(text=outcome.body, status=200, headers=headers, content_type="application/json")


def _say_once(site: str, channel: str, what: str) -> None:
    if (site, channel, what) not in _said and len(_said) < 1000:
        _said.add((site, channel, what))
        log.info("%s/%s: TikTok Shop notifications of %s are answered 200 and ignored", site, channel, what)
