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
  figure sellers report), feeds 10 an hour (bucket of 10), orders 5,000 a minute. Every answer carries
  ``x-current-token-count`` and ``x-next-replenish-time`` (epoch ms); over a limit: 429 with
  ``Retry-After``.
- ``GET /v3/orders`` (Orders API "Get all orders"): the orders created between ``createdStartDate`` (default: 7
  days ago, as Walmart documents) and ``createdEndDate``, modified between ``lastModifiedStartDate`` and
  ``lastModifiedEndDate`` when given, of one ``shipNodeType`` (default SellerFulfilled), newest first, ``limit``
  1-200 (default 100; ``page_limit`` caps it lower for tests). Dates are ``yyyy-MM-dd`` or
  ``yyyy-MM-ddTHH:mm:ss[.SSS]Z``; anything else is a 400. ``{list: {meta: {totalCount, limit, nextCursor},
  elements: {order: [...]}}}``; while more follow, ``nextCursor`` is the next page's query string (``?limit=…&
  hasMoreElements=true&soIndex=…&poIndex=…`` with the search's filters, its end pinned), requested as
  ``GET /v3/orders{nextCursor}``. A search matching nothing is a 404 ``CONTENT_NOT_FOUND.GMP_ORDER_API``
  (severity INFO), as Walmart answers. ``page_failures`` scripts a status for the page at an offset;
  ``ignores_ship_node_type`` lists every node's orders whatever the search asked.
  A test makes orders with ``sell(sku, quantity, ship_node_type)`` (a seller-fulfilled sale lowers the SKU's
  quantity, as Walmart does; WFS and 3PL orders ship other stock) and cancels units with ``cancel``.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import math
import secrets
import time
from email import policy
from email.parser import BytesParser
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .common import Bucket, Clock, FakeMarketplace, TokenIssuer, query

SINGLE_LIMIT = (200 / 60, 200)
FEED_LIMIT = (10 / 3600, 10)
ORDERS_LIMIT = (5000 / 60, 5000)
SHIP_NODE_TYPES = ("SellerFulfilled", "WFSFulfilled", "3PLFulfilled")
NO_ORDERS = {
    "code": "CONTENT_NOT_FOUND.GMP_ORDER_API",
    "field": "data",
    "description": "Failed when called getAllOrders. Orders not found for given search parameters",
    "info": "Requested content could not be found.",
    "severity": "INFO",
    "category": "DATA",
    "causes": [],
    "errorIdentifiers": {},
}


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


def orders_error(status: int, code: str, description: str) -> web.Response:
    """The Orders API's error shape: the list wrapped in ``errors.error`` (its XML heritage)."""
    error = {"code": code, "field": "data", "description": description, "severity": "ERROR", "category": "DATA"}
    return web.json_response({"errors": {"error": [error]}}, status=status)


def _millis(at: float) -> int:
    return int(at * 1000)


def _parse_date(text: str) -> float | None:
    """``yyyy-MM-dd`` or ``yyyy-MM-ddTHH:mm:ss[.SSS]Z`` (UTC) as epoch seconds; None for anything else."""
    try:
        if len(text) == 10:
            return dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.UTC).timestamp()
        if not text.endswith("Z"):
            return None
        return dt.datetime.fromisoformat(text[:-1] + "+00:00").timestamp()
    except ValueError:
        return None


def _stamp(at: float) -> str:
    moment = dt.datetime.fromtimestamp(at, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


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
        self.orders_limit = Bucket(ORDERS_LIMIT[0] * speed, ORDERS_LIMIT[1], now)
        self.orders: dict[str, dict[str, Any]] = {}  # purchaseOrderId → {order (as listed), created, modified}
        self.page_limit = 200  # the largest page this fake serves (Walmart: 200)
        self.page_failures: dict[int, int] = {}  # page offset (poIndex) → the status its next request gets
        self.ignores_ship_node_type = False  # for tests: a search that lists every node's orders
        self._numbers = itertools.count(1)
        super().__init__()

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v3/token", self.token)
        router.add_put("/v3/inventory", self.update_inventory)
        router.add_get("/v3/inventory", self.get_inventory)
        router.add_post("/v3/feeds", self.create_feed)
        router.add_get("/v3/feeds/{feed_id}", self.feed_status)
        router.add_get("/v3/orders", self.get_orders)

    def add_items(self, quantities: dict[str, int]) -> None:
        self.inventory.update(quantities)

    # --- orders (what tests do on Walmart's side) ----------------------------------------------------

    def sell(
        self, sku: str, quantity: int = 1, ship_node_type: str = "SellerFulfilled", lines: int = 1, age: float = 0.0
    ) -> str:
        """A customer orders ``lines`` lines of ``quantity`` each, ``age`` seconds ago; returns the purchaseOrderId.

        A seller-fulfilled order lowers the SKU's quantity, as Walmart does; WFS and 3PL orders ship stock the
        seller's node does not hold.
        """
        number = next(self._numbers)
        po = f"{1_796_277_000_000 + number}"
        created = time.time() - age
        order = {
            "purchaseOrderId": po,
            "customerOrderId": f"{5_281_956_000_000 + number}",
            "customerEmailId": f"{number:032X}@relay.walmart.com",
            "orderDate": _millis(created),
            "shippingInfo": {
                "phone": "3155598681",
                "estimatedDeliveryDate": _millis(created + 5 * 86400),
                "estimatedShipDate": _millis(created + 86400),
                "methodCode": "Value",
                "postalAddress": {"name": "Kathryn Cole", "address1": "3258 Warners Rd", "city": "Warners",
                                  "state": "NY", "postalCode": "13164", "country": "USA",
                                  "addressType": "RESIDENTIAL"},
            },
            "orderLines": {"orderLine": [
                {
                    "lineNumber": str(i + 1),
                    "item": {"productName": f"Product {sku}", "sku": sku},
                    "charges": {"charge": [{"chargeType": "PRODUCT", "chargeName": "ItemPrice",
                                            "chargeAmount": {"currency": "USD", "amount": 10.0}}]},
                    "orderLineQuantity": {"unitOfMeasurement": "EACH", "amount": str(quantity)},
                    "statusDate": _millis(created),
                    "orderLineStatuses": {"orderLineStatus": [
                        {"status": "Created", "statusQuantity": {"unitOfMeasurement": "EACH", "amount": str(quantity)}}
                    ]},
                    "fulfillment": {"fulfillmentOption": "S2H", "shipMethod": "VALUE"},
                }
                for i in range(lines)
            ]},
            "shipNode": {"type": ship_node_type, "name": f"{ship_node_type} node", "id": "10001"},
        }  # fmt: skip
        self.orders[po] = {"order": order, "created": created, "modified": time.time()}
        if ship_node_type == "SellerFulfilled" and sku in self.inventory:
            self.inventory[sku] -= quantity * lines
        return po

    def cancel(self, po: str, line: str = "1", quantity: int | None = None) -> None:
        """``quantity`` units of the line (all that are not cancelled yet by default) are cancelled: Walmart adds
        them to the line's Cancelled status, takes them off its open one, and gives a seller-fulfilled order's
        units back to the SKU."""
        record = self.orders[po]
        order = record["order"]
        found = next(x for x in order["orderLines"]["orderLine"] if x["lineNumber"] == line)
        statuses = found["orderLineStatuses"]["orderLineStatus"]
        open_status = next((s for s in statuses if s["status"] != "Cancelled"), None)
        open_units = int(open_status["statusQuantity"]["amount"]) if open_status else 0
        units = open_units if quantity is None else min(quantity, open_units)
        if units <= 0:
            return
        if open_status is not None:
            left = open_units - units
            if left:
                open_status["statusQuantity"]["amount"] = str(left)
            else:
                statuses.remove(open_status)
        cancelled = next((s for s in statuses if s["status"] == "Cancelled"), None)
        if cancelled is None:
            cancelled = {"status": "Cancelled", "statusQuantity": {"unitOfMeasurement": "EACH", "amount": "0"},
                         "cancellationReason": "CUSTOMER_REQUESTED_SELLER_TO_CANCEL"}  # fmt: skip
            statuses.append(cancelled)
        cancelled["statusQuantity"]["amount"] = str(int(cancelled["statusQuantity"]["amount"]) + units)
        found["statusDate"] = _millis(time.time())
        record["modified"] = time.time()
        sku = found["item"]["sku"]
        if order["shipNode"]["type"] == "SellerFulfilled" and sku in self.inventory:
            self.inventory[sku] += units

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

    # --- orders ------------------------------------------------------------------------------------------------

    async def get_orders(self, request: web.Request) -> web.Response:
        refused = self._gate(request, self.orders_limit)
        if refused is not None:
            return refused
        args = query(request)
        now = time.time()
        window: dict[str, float] = {}
        for name in ("createdStartDate", "createdEndDate", "lastModifiedStartDate", "lastModifiedEndDate"):
            if name in args:
                moment = _parse_date(args[name])
                if moment is None:
                    return orders_error(400, "INVALID_REQUEST_PARAM.GMP_ORDER_API", f"{name} is not a valid date")
                window[name] = moment
        node_type = args.get("shipNodeType", "SellerFulfilled")
        if node_type not in SHIP_NODE_TYPES:
            return orders_error(400, "INVALID_REQUEST_PARAM.GMP_ORDER_API", "shipNodeType is not valid")
        try:
            limit, offset = int(args.get("limit", "100")), int(args.get("poIndex", "0"))
        except ValueError:
            return orders_error(400, "INVALID_REQUEST_PARAM.GMP_ORDER_API", "limit is not a number")
        if not 1 <= limit <= 200 or offset < 0:
            return orders_error(400, "INVALID_REQUEST_PARAM.GMP_ORDER_API", "limit must be 1 to 200")
        if offset in self.page_failures:
            status = self.page_failures.pop(offset)
            if status == 429:
                self.throttled += 1
                response = wm_error(429, "REQUEST_THRESHOLD_VIOLATED.GMP_GATEWAY_API", "Too Many Requests")
                response.headers["Retry-After"] = "0"
                return response
            return orders_error(status, "SYSTEM_ERROR.GMP_ORDER_API", "scripted failure")
        created_from = window.get("createdStartDate", now - 7 * 86400)
        created_to = window.get("createdEndDate", now)
        found = [
            r["order"]
            for r in sorted(self.orders.values(), key=lambda r: r["created"], reverse=True)
            if (self.ignores_ship_node_type or r["order"]["shipNode"]["type"] == node_type)
            and created_from <= r["created"] <= created_to
            and window.get("lastModifiedStartDate", 0.0) <= r["modified"] <= window.get("lastModifiedEndDate", now)
        ]
        page = found[offset : offset + min(limit, self.page_limit)]
        if not page:
            return web.json_response({"errors": {"error": [NO_ORDERS]}}, status=404)
        meta: dict[str, Any] = {"totalCount": len(found), "limit": len(page)}
        if offset + len(page) < len(found):
            follow = {"limit": str(limit), "hasMoreElements": "true", "soIndex": str(len(found)),
                      "poIndex": str(offset + len(page)), "partnerId": "100009", "sellerId": "8",
                      **{k: v for k, v in args.items() if k in ("createdStartDate", "lastModifiedStartDate",
                                                                "lastModifiedEndDate", "shipNodeType")},
                      "createdEndDate": _stamp(created_to)}  # fmt: skip
            meta["nextCursor"] = "?" + "&".join(f"{k}={quote(v, safe=':')}" for k, v in follow.items())
        doc = {"list": {"meta": meta, "elements": {"order": page}}}
        return web.json_response(doc, headers=self._limit_headers(self.orders_limit))

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
