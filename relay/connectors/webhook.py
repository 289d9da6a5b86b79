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

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import yarl

from .. import __version__, signing
from ..delivery import outbound
from ..delivery.outbound import Kind, Ladder, excerpt
from ..errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from . import http
from .base import Connector, ItemResult, Update

LADDER = Ladder(transient=frozenset({408, 425}))
# Short in-process retries only for a connection that failed outright; anything longer is the dispatcher's
# durable backoff. Bounded by attempts and by time.
RECONNECT = outbound.Reconnect(attempts=3, within_seconds=2.0)


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
        answer = await outbound.send(
            self.session,
            "POST",
            yarl.URL(self.config.url),
            timeout=self.config.timeout_seconds,
            what="the webhook",
            headers=self.headers(msg_id, body),
            data=body,
            reconnect=RECONNECT,
        )
        status, snippet = answer.status, excerpt(answer.text)
        verdict = outbound.classify(answer, LADDER)
        if verdict.kind is Kind.OK:
            self.budget.succeeded()
            return self._item_results(updates, answer.text, status, snippet)
        raise http.refusal(
            answer,
            verdict,
            "the webhook",
            snippet,
            budget=self.budget,
            auth=f"the webhook refused our signature ({status}); check the channel's secret",
            permanent=f"the webhook rejected the update ({status})",
        )

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
