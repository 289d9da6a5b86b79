"""The ``webhook`` channel: a Standard Webhooks signed POST of the batch to any URL.

Body: ``{"type": "stock.update", "site", "channel", "updates": [{"sku", "quantity", "version",
"event_id", "product_id"}]}``, signed ``v1`` (HMAC) or ``v1a`` (ed25519). The ``webhook-id`` is
derived from the batch's idempotency keys, so a retry of the same update carries the same id and a
receiver can drop the repeat.

The receiver answers 2xx to take the whole batch, and may add ``{"results": [{"sku", "status":
"ok"|"retry"|"rejected", "message"}]}`` to judge items one by one. 401/403 pause the channel;
408, 425, 429 and 5xx are retried (honouring Retry-After); any other 4xx is permanent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from .. import __version__, signing
from ..errors import AuthDeliveryError, DeliveryError, PermanentDeliveryError, TransientDeliveryError
from .base import Connector, ItemResult, Update

RETRYABLE_STATUS = {408, 425, 429}
EXCERPT_CHARS = 200


def excerpt(text: str) -> str:
    """A short, printable piece of a remote answer for the audit log."""
    clean = "".join(ch if ch.isprintable() else " " for ch in text[: EXCERPT_CHARS * 2])
    return clean[:EXCERPT_CHARS]


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Parse Retry-After: delta seconds or an HTTP date; None when absent or nonsense."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


class WebhookConnector(Connector):
    type = "webhook"

    def message_id(self, updates: Sequence[Update]) -> str:
        digest = hashlib.sha256("\n".join(u.idempotency_key for u in updates).encode()).hexdigest()
        return "msg_" + digest[:32]

    def body(self, updates: Sequence[Update]) -> bytes:
        doc = {
            "type": "stock.update",
            "site": self.site,
            "channel": self.name,
            "updates": [
                {
                    "sku": u.channel_sku,
                    "quantity": u.quantity,
                    "version": u.version,
                    "event_id": u.event_id,
                    "product_id": u.product_id,
                }
                for u in updates
            ],
        }
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()

    def headers(self, msg_id: str, body: bytes) -> dict[str, str]:
        timestamp = int(time.time())
        if self.config.signing == "v1a":
            signature = signing.sign_ed25519(self.config.secret, msg_id, timestamp, body)
        else:
            signature = signing.sign(self.config.secret, msg_id, timestamp, body)
        return {
            "content-type": "application/json",
            "user-agent": f"stock-relay/{__version__}",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature,
        }

    async def push(self, updates: Sequence[Update]) -> Mapping[str, ItemResult]:
        body = self.body(updates)
        msg_id = self.message_id(updates)
        try:
            # Short in-process retries only for a connection that failed outright; anything longer is
            # the dispatcher's durable backoff. Bounded by attempts and by time.
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type((aiohttp.ClientConnectionError, asyncio.TimeoutError)),
                stop=stop_after_attempt(3) | stop_after_delay(2.0),
                wait=wait_random_exponential(multiplier=0.05, max=0.5),
                reraise=True,
            ):
                with attempt:
                    return await self._post(updates, body, msg_id)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise TransientDeliveryError(f"could not reach the webhook: {type(exc).__name__}") from None
        raise AssertionError("unreachable")  # pragma: no cover - AsyncRetrying either returns or raises

    async def _post(self, updates: Sequence[Update], body: bytes, msg_id: str) -> Mapping[str, ItemResult]:
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_seconds)
        async with self.session.post(
            self.config.url, data=body, headers=self.headers(msg_id, body), timeout=timeout, allow_redirects=False
        ) as response:
            text = await response.text(errors="replace")
            status = response.status
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        snippet = excerpt(text)
        if 200 <= status < 300:
            self.budget.succeeded()
            return self._item_results(updates, text, status, snippet)
        if status == 429:
            self.budget.throttled(retry_after)
        if status in RETRYABLE_STATUS or status >= 500:
            raise TransientDeliveryError(
                f"the webhook answered {status}", retry_after, http_status=status, excerpt=snippet
            )
        if status in (401, 403):
            raise AuthDeliveryError(
                f"the webhook refused our signature ({status}); check the channel's secret",
                http_status=status,
                excerpt=snippet,
            )
        raise PermanentDeliveryError(f"the webhook rejected the update ({status})", http_status=status, excerpt=snippet)

    def _item_results(self, updates: Sequence[Update], text: str, status: int, snippet: str) -> dict[str, ItemResult]:
        ok = ItemResult(http_status=status, excerpt=snippet)
        results: dict[str, ItemResult] = {u.sku: ok for u in updates}
        try:
            doc: Any = json.loads(text) if text else None
        except ValueError:
            return results
        items = doc.get("results") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            return results
        by_channel_sku = {u.channel_sku: u.sku for u in updates}
        for item in items:
            if not isinstance(item, dict) or item.get("sku") not in by_channel_sku:
                continue
            message = excerpt(str(item.get("message") or ""))
            error: DeliveryError | None = None
            if item.get("status") == "retry":
                error = TransientDeliveryError(f"the receiver asked to retry: {message}", http_status=status)
            elif item.get("status") == "rejected":
                error = PermanentDeliveryError(f"the receiver rejected it: {message}", http_status=status)
            results[by_channel_sku[item["sku"]]] = ItemResult(error=error, http_status=status, excerpt=message)
        return results
