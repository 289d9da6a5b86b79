"""A signed client for the relay's own API: what the demo, the benchmarks and tests post with.

It is the same wire contract the WordPress plugin speaks (docs/wire-protocol.md), written once in Python.
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp

from .. import signing
from ..ids import new_event_id, new_msg_id


class SignedClient:
    def __init__(self, base_url: str, site: str, secret: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url.rstrip("/")
        self.site = site
        self.secret = secret
        self.session = session

    def encode(
        self, doc: dict[str, Any], msg_id: str | None = None, timestamp: int | None = None
    ) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(doc, separators=(",", ":")).encode()
        headers = signing.signed_headers(self.secret, msg_id or new_msg_id(), timestamp or int(time.time()), body)
        headers["content-type"] = "application/json"
        return body, headers

    async def post(self, operation: str, doc: dict[str, Any], msg_id: str | None = None) -> tuple[int, Any]:
        body, headers = self.encode(doc, msg_id)
        url = f"{self.base_url}/v1/sites/{self.site}/{operation}"
        async with self.session.post(url, data=body, headers=headers) as response:
            return response.status, await response.json(content_type=None)

    async def send_events(self, events: list[dict[str, Any]], msg_id: str | None = None) -> tuple[int, Any]:
        doc = {"type": "stock.batch", "site": self.site, "sent_at": _utc_now(), "events": events}
        return await self.post("events", doc, msg_id)

    async def ping(self) -> tuple[int, Any]:
        return await self.post("ping", {"type": "ping", "site": self.site})


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def stock_event(
    product_id: int,
    sku: str,
    quantity: int | None,
    version: int,
    kind: str = "stock",
    cause: str = "order",
    event_id: str | None = None,
) -> dict[str, Any]:
    """A well-formed event as the plugin sends it."""
    status = "instock" if quantity is None or quantity > 0 else "outofstock"
    return {
        "id": event_id or new_event_id(),
        "kind": kind,
        "product_id": product_id,
        "variation_id": None,
        "parent_id": None,
        "sku": sku,
        "manage_stock": quantity is not None,
        "stock_quantity": quantity,
        "stock_status": status,
        "backorders": "no",
        "version": version,
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cause": {"kind": cause},
    }
