"""A fake Walmart Marketplace (US) seller: inventory, the bulk inventory feed and client-credentials tokens.

- ``POST /v3/token`` (Basic client_id:client_secret, form ``grant_type=client_credentials``, with
  ``WM_SVC.NAME`` and ``WM_QOS.CORRELATION_ID``) → ``{access_token, token_type, expires_in: 900}``.
- Every other call needs ``WM_SEC.ACCESS_TOKEN`` (else 401 ``UNAUTHORIZED.GMP_GATEWAY_API``),
  ``WM_SVC.NAME`` and a ``WM_QOS.CORRELATION_ID`` (else 400 ``INVALID_REQUEST_HEADER``).
- ``PUT /v3/inventory?sku=[&shipNode=]`` with ``{sku, quantity: {unit: "EACH", amount}}`` → the body
  back; 404 ``CONTENT_NOT_FOUND`` for a SKU the seller does not list; 400 for a malformed body.
- ``GET /v3/inventory?sku=[&shipNode=]`` (read-back) → ``{sku, quantity: {unit: "EACH", amount}}``; 404
  ``CONTENT_NOT_FOUND`` for a SKU the seller does not list; 400 without ``sku``. Its own bucket, with
  the single update's figures (Walmart limits per API).
- ``POST /v3/feeds?feedType=inventory`` (multipart ``file``: ``{InventoryHeader: {version: "1.4"},
  Inventory: [...]}``) → ``{feedId}``; ``GET /v3/feeds/{id}?includeDetails=true&offset&limit`` goes
  RECEIVED → INPROGRESS → PROCESSED over ``feed_seconds`` (or ``end_next_feed_with`` = ERROR) and
  applies the feed then, with ``DATA_ERROR`` for SKUs in ``invalid`` or not listed.
- Limits, multiplied by ``speed``: single updates a bucket of 200 refilled at 200 a minute (the
  figure sellers report), feeds 10 an hour (bucket of 10). Every answer carries
  ``x-current-token-count`` and ``x-next-replenish-time`` (epoch ms); over a limit: 429 with
  ``Retry-After``.
"""

from __future__ import annotations

import base64
import json
import math
import secrets
import time
from email import policy
from email.parser import BytesParser
from typing import Any

from aiohttp import web

from .common import Bucket, Clock, FakeMarketplace, TokenIssuer, query

SINGLE_LIMIT = (200 / 60, 200)
FEED_LIMIT = (10 / 3600, 10)


def wm_error(status: int, code: str, message: str, category: str = "DATA") -> web.Response:
    error = {"code": code, "message": message, "category": category, "severity": "ERROR"}
    return web.json_response({"errors": [error]}, status=status)


def file_part(content_type: str, body: bytes) -> bytes | None:
    """The ``file`` part of a multipart/form-data body (parsed from the logged bytes: the stream is read)."""
    if not content_type.startswith("multipart/form-data"):
        return None
    message = BytesParser(policy=policy.default).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else None
    return None


class FakeWalmart(FakeMarketplace):
    def __init__(self, speed: float = 1.0, feed_seconds: float = 1800.0, now: Clock = time.monotonic) -> None:
        self.speed = speed
        self.now = now
        self.single = Bucket(SINGLE_LIMIT[0] * speed, SINGLE_LIMIT[1], now)
        self.feed_limit = Bucket(FEED_LIMIT[0] * speed, FEED_LIMIT[1], now)
        self.read_limit = Bucket(SINGLE_LIMIT[0] * speed, SINGLE_LIMIT[1], now)
        self.feed_seconds = feed_seconds / speed
        self.tokens = TokenIssuer(900.0, "eyJraWQiOiJmYWtl", now)
        self.client_id = "walmart-client-0001"
        self.client_secret = "walmart-client-secret-0001"
        self.inventory: dict[str, int] = {}  # SKU → quantity at the default ship node
        self.invalid: dict[str, str] = {}  # SKU → why a feed refuses it
        self.feeds: dict[str, dict[str, Any]] = {}
        self.end_next_feed_with: str | None = None
        super().__init__()

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v3/token", self.token)
        router.add_put("/v3/inventory", self.update_inventory)
        router.add_get("/v3/inventory", self.get_inventory)
        router.add_post("/v3/feeds", self.create_feed)
        router.add_get("/v3/feeds/{feed_id}", self.feed_status)

    def add_items(self, quantities: dict[str, int]) -> None:
        self.inventory.update(quantities)

    # --- auth and headers --------------------------------------------------------------------------------

    def _missing_headers(self, request: web.Request) -> web.Response | None:
        if (
            not request.headers.get("WM_QOS.CORRELATION_ID")
            or request.headers.get("WM_SVC.NAME") != "Walmart Marketplace"
        ):
            return wm_error(400, "INVALID_REQUEST_HEADER", "WM_QOS.CORRELATION_ID and WM_SVC.NAME are required")
        return None

    async def token(self, request: web.Request) -> web.Response:
        missing = self._missing_headers(request)
        if missing is not None:
            return missing
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        form = await request.post()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return wm_error(401, "UNAUTHORIZED.GMP_GATEWAY_API", "Unauthorized", "APPLICATION")
        if form.get("grant_type") != "client_credentials":
            return wm_error(400, "INVALID_REQUEST_PARAM", "grant_type must be client_credentials")
        token, lifetime = self.tokens.issue()
        return web.json_response({"access_token": token, "token_type": "Bearer", "expires_in": int(lifetime)})

    def _limit_headers(self, bucket: Bucket) -> dict[str, str]:
        next_token_ms = (time.time() + bucket.seconds_until(1.0)) * 1000
        return {
            "x-current-token-count": str(math.floor(bucket.available)),
            "x-next-replenish-time": str(int(next_token_ms)),
        }

    def _gate(self, request: web.Request, bucket: Bucket) -> web.Response | None:
        missing = self._missing_headers(request)
        if missing is not None:
            return missing
        if not self.tokens.valid(request.headers.get("WM_SEC.ACCESS_TOKEN")):
            return wm_error(
                401, "UNAUTHORIZED.GMP_GATEWAY_API", "Unauthorized token or token is expired", "APPLICATION"
            )
        if not bucket.take():
            self.throttled += 1
            response = wm_error(429, "REQUEST_THRESHOLD_VIOLATED.GMP_GATEWAY_API", "Too Many Requests", "APPLICATION")
            response.headers.update(self._limit_headers(bucket))
            response.headers["Retry-After"] = str(max(1, math.ceil(bucket.seconds_until(1.0))))
            return response
        return None

    # --- inventory -------------------------------------------------------------------------------------------

    async def update_inventory(self, request: web.Request) -> web.Response:
        refused = self._gate(request, self.single)
        if refused is not None:
            return refused
        sku = query(request).get("sku", "")
        try:
            body = await request.json()
            amount = body["quantity"]["amount"]
            valid = (
                body["sku"] == sku and body["quantity"]["unit"] == "EACH" and isinstance(amount, int) and amount >= 0
            )
        except (ValueError, KeyError, TypeError):
            valid = False
        if not valid:
            return wm_error(400, "INVALID_REQUEST_CONTENT", "The request body is not a valid inventory update")
        if sku not in self.inventory:
            return wm_error(404, "CONTENT_NOT_FOUND.GMP_INVENTORY_API", f"Item not found for sku {sku}")
        self.inventory[sku] = amount
        return web.json_response(body, headers=self._limit_headers(self.single))

    async def get_inventory(self, request: web.Request) -> web.Response:
        refused = self._gate(request, self.read_limit)
        if refused is not None:
            return refused
        sku = query(request).get("sku", "")
        if not sku:
            return wm_error(400, "MISSING_REQUEST_PARAM", "sku is required")
        if sku not in self.inventory:
            return wm_error(404, "CONTENT_NOT_FOUND.GMP_INVENTORY_API", f"Item not found for sku {sku}")
        body = {"sku": sku, "quantity": {"unit": "EACH", "amount": self.inventory[sku]}}
        return web.json_response(body, headers=self._limit_headers(self.read_limit))

    # --- feeds ---------------------------------------------------------------------------------------------------

    async def create_feed(self, request: web.Request) -> web.Response:
        refused = self._gate(request, self.feed_limit)
        if refused is not None:
            return refused
        if query(request).get("feedType") != "inventory":
            return wm_error(400, "INVALID_REQUEST_PARAM", "feedType must be inventory")
        upload = file_part(request.headers.get("Content-Type", ""), await request.read())
        if upload is None:
            return wm_error(400, "MISSING_REQUEST_PARAM", "the feed file is missing")
        try:
            document = json.loads(upload)
            items = document["Inventory"]
            assert document["InventoryHeader"]["version"] == "1.4" and isinstance(items, list) and items
        except (ValueError, KeyError, TypeError, AssertionError):
            return wm_error(400, "MALFORMED_REQUEST_CONTENT", "The feed file is not a valid inventory feed")
        feed_id = secrets.token_hex(16).upper()
        self.feeds[feed_id] = {
            "items": items,
            "created": self.now(),
            "status": "RECEIVED",
            "end": self.end_next_feed_with,
        }
        self.end_next_feed_with = None
        return web.json_response({"feedId": feed_id}, headers=self._limit_headers(self.feed_limit))

    async def feed_status(self, request: web.Request) -> web.Response:
        missing = self._missing_headers(request)
        if missing is not None:
            return missing
        if not self.tokens.valid(request.headers.get("WM_SEC.ACCESS_TOKEN")):
            return wm_error(
                401, "UNAUTHORIZED.GMP_GATEWAY_API", "Unauthorized token or token is expired", "APPLICATION"
            )
        feed = self.feeds.get(request.match_info["feed_id"])
        if feed is None:
            return wm_error(404, "CONTENT_NOT_FOUND.GMP_FEED_API", "No feed found")
        self._advance(feed)
        offset, limit = int(query(request).get("offset", "0")), int(query(request).get("limit", "50"))
        details = feed.get("details", [])
        doc: dict[str, Any] = {
            "feedId": request.match_info["feed_id"],
            "feedStatus": feed["status"],
            "itemsReceived": len(feed["items"]),
            "itemsSucceeded": sum(1 for d in details if d["ingestionStatus"] == "SUCCESS"),
            "itemsFailed": sum(1 for d in details if d["ingestionStatus"] != "SUCCESS"),
            "itemsProcessing": 0 if details else len(feed["items"]),
            "offset": offset,
            "limit": limit,
        }
        if query(request).get("includeDetails") == "true":
            doc["itemDetails"] = {"itemIngestionStatus": details[offset : offset + min(limit, 1000)]}
        return web.json_response(doc)

    def _advance(self, feed: dict[str, Any]) -> None:
        if feed["status"] not in ("RECEIVED", "INPROGRESS"):
            return
        age = self.now() - feed["created"]
        if age < self.feed_seconds:
            feed["status"] = "RECEIVED" if age < self.feed_seconds / 2 else "INPROGRESS"
            return
        if feed["end"]:
            feed["status"] = feed["end"]
            return
        details = []
        for item in feed["items"]:
            sku = item["sku"]
            reason = self.invalid.get(sku) or (None if sku in self.inventory else "Item not found")
            if reason is None:
                self.inventory[sku] = int(item["quantity"]["amount"])
                details.append(
                    {"martId": 0, "sku": sku, "ingestionStatus": "SUCCESS", "ingestionErrors": {"ingestionError": None}}
                )
            else:
                error = {"type": "DATA_ERROR", "code": "ERR_EXT_DATA_0101", "field": "sku", "description": reason}
                details.append(
                    {
                        "martId": 0,
                        "sku": sku,
                        "ingestionStatus": "DATA_ERROR",
                        "ingestionErrors": {"ingestionError": [error]},
                    }
                )
        feed.update(status="PROCESSED", details=details)
