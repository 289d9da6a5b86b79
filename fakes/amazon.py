"""A fake Amazon seller account: Listings Items 2021-08-01, Feeds 2021-06-30 and LWA, as the SP-API models describe.

- ``POST /auth/o2/token`` (LWA, form): ``grant_type=refresh_token&refresh_token&client_id&client_secret``
  → ``{access_token, token_type, expires_in: 3600, refresh_token}``; ``invalid_grant`` (400) for an unknown
  refresh token, ``invalid_client`` (401) for a wrong client.
- Every SP-API call needs ``x-amz-access-token``; a missing or expired one gets 403 ``Unauthorized``.
- ``PATCH /listings/2021-08-01/items/{sellerId}/{sku}?marketplaceIds=`` → ``{sku, status, submissionId,
  issues}``: ``ACCEPTED``, or ``INVALID`` for SKUs in ``invalid``. An unknown SKU is ACCEPTED and
  nothing happens, as sellers report of the real API.
- ``GET /listings/2021-08-01/items/{sellerId}/{sku}?marketplaceIds=&includedData=`` (getListingsItem) →
  ``{sku, summaries}`` plus ``fulfillmentAvailability: [{fulfillmentChannelCode: "DEFAULT", quantity}]``
  when ``includedData`` asks for it; 404 ``NOT_FOUND`` for a SKU the account does not list.
- Feeds: ``POST /feeds/2021-06-30/documents`` → ``{feedDocumentId, url}`` (a presigned URL on this server
  that takes one PUT); ``POST /feeds/2021-06-30/feeds`` → 202 ``{feedId}``; ``GET …/feeds/{id}`` goes
  IN_QUEUE → IN_PROGRESS → DONE over ``feed_seconds`` (or ``end_next_feed_with`` FATAL/CANCELLED), and
  applies the feed when it is DONE; ``GET …/documents/{id}`` → the gzip processing report's URL.
- Orders v0: ``GET /orders/v0/orders?MarketplaceIds=&LastUpdatedAfter=`` (getOrders: the orders of that
  marketplace updated at or after the ISO 8601 time, ``MaxResultsPerPage`` 1-100, default 100, ``page_limit``
  caps it lower for tests; paged by ``NextToken``, sent with the same filters) and ``GET
  /orders/v0/orders/{orderId}/orderItems`` (getOrderItems, ``items_page_limit`` lines a page, paged by
  ``NextToken``); 400 ``InvalidInput`` for a missing or malformed parameter or an unknown token, 404 for an
  unknown order. A test makes orders with ``sell(sku, qty, fulfillment)``: an MFN sale lowers the listing's
  quantity, as Amazon does the moment an order is placed (Pending); an AFN one (FBA) ships from Amazon's stock
  and leaves it. ``cancel`` gives an MFN order's units back; ``cancel_zeroes_quantity`` makes the cancelled
  lines show ``QuantityOrdered`` 0, as integrators report of the real API. ``page_failures`` scripts a status
  for a getOrders page (by its number, from 0).
- Limits (rate/s, burst), all multiplied by ``speed``: patch 5/5, createFeedDocument 0.5/15,
  createFeed (JSON_LISTINGS_FEED) 5 per 300 s, getFeed 2/15, getFeedDocument 0.0222/10, getListingsItem 5/10,
  getOrders 0.0167/20, getOrderItems 0.5/30.
  Over a limit:
  429 ``QuotaExceeded`` with no Retry-After; every 2xx carries ``x-amzn-RateLimit-Limit`` (the rate).
"""

from __future__ import annotations

import datetime as dt
import gzip
import itertools
import json
import secrets
import time
from typing import Any

from aiohttp import web

from .common import Bucket, Clock, FakeMarketplace, TokenIssuer, query

LIMITS = {
    "patch": (5.0, 5),
    "createFeedDocument": (0.5, 15),
    "createFeed": (5 / 300, 5),
    "getFeed": (2.0, 15),
    "getFeedDocument": (0.0222, 10),
    "getListingsItem": (5.0, 10),
    "getOrders": (0.0167, 20),
    "getOrderItems": (0.5, 30),
}
SALE_STATUSES = ("Pending", "Unshipped", "PartiallyShipped", "Shipped")


def _stamp(at: float | None = None) -> str:
    return dt.datetime.fromtimestamp(time.time() if at is None else at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


INCLUDED_DATA = {"summaries", "attributes", "issues", "offers", "fulfillmentAvailability", "procurement"}


def sp_error(status: int, code: str, message: str, details: str = "") -> web.Response:
    return web.json_response({"errors": [{"code": code, "message": message, "details": details}]}, status=status)


class FakeAmazon(FakeMarketplace):
    def __init__(
        self,
        speed: float = 1.0,
        feed_seconds: float = 120.0,
        seller_id: str = "A2SELLER0001",
        marketplace_id: str = "ATVPDKIKX0DER",
        now: Clock = time.monotonic,
    ) -> None:
        self.speed = speed
        self.now = now
        self.limits = {op: Bucket(rate * speed, burst, now) for op, (rate, burst) in LIMITS.items()}
        self.feed_seconds = feed_seconds / speed
        self.seller_id = seller_id
        self.marketplace_id = marketplace_id
        self.tokens = TokenIssuer(3600.0, "Atza|fake", now)
        self.client_id = "amzn1.application-oa2-client.fake01"
        self.client_secret = "amzn1.oa2-cs.v1.fakeclientsecret01"
        self.refresh_token = self.tokens.new_refresh_token()
        self.listings: dict[str, int] = {}  # SKU → seller-fulfilled quantity
        self.invalid: dict[str, str] = {}  # SKU → why Amazon refuses it
        self.ignored: list[str] = []  # accepted updates for SKUs the account does not list
        self.documents: dict[str, bytes | None] = {}  # feed document id → content (None until uploaded)
        self.feeds: dict[str, dict[str, Any]] = {}
        self.end_next_feed_with: str | None = None
        self.orders: dict[str, dict[str, Any]] = {}  # AmazonOrderId → the order as getOrders returns it
        self.order_items: dict[str, list[dict[str, Any]]] = {}  # AmazonOrderId → its lines as getOrderItems has them
        self.page_limit = 100  # the largest getOrders page this fake serves (Amazon: 100)
        self.items_page_limit = 100
        self.page_failures: dict[int, int] = {}  # getOrders page number → the status its next request gets
        self.cancel_zeroes_quantity = False
        self._pages: dict[str, tuple[str, int]] = {}  # NextToken → (what it pages, the offset it stands for)
        self._numbers = itertools.count(1)
        self._seq = 0
        super().__init__()

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/auth/o2/token", self.token)
        router.add_patch("/listings/2021-08-01/items/{seller_id}/{sku}", self.patch_item)
        router.add_get("/listings/2021-08-01/items/{seller_id}/{sku}", self.get_item)
        router.add_post("/feeds/2021-06-30/documents", self.create_document)
        router.add_post("/feeds/2021-06-30/feeds", self.create_feed)
        router.add_get("/feeds/2021-06-30/feeds/{feed_id}", self.get_feed)
        router.add_get("/feeds/2021-06-30/documents/{document_id}", self.get_document)
        router.add_put("/presigned/{document_id}", self.upload)
        router.add_get("/presigned/{document_id}", self.download)
        router.add_get("/orders/v0/orders", self.get_orders)
        router.add_get("/orders/v0/orders/{order_id}/orderItems", self.get_order_items)

    def add_listings(self, quantities: dict[str, int]) -> None:
        self.listings.update(quantities)

    def sell(self, sku: str, quantity: int = 1, fulfillment: str = "MFN", lines: int = 1) -> str:
        """A buyer orders ``lines`` lines of ``quantity`` each (Pending); an MFN order lowers the listing at once."""
        number = next(self._numbers)
        order_id = f"902-{3_000_000 + number:07d}-{1_000_000 + number:07d}"
        now = _stamp()
        self.orders[order_id] = {
            "AmazonOrderId": order_id,
            "PurchaseDate": now,
            "LastUpdateDate": now,
            "OrderStatus": "Pending",
            "FulfillmentChannel": fulfillment,
            "SalesChannel": "Amazon.com",
            "NumberOfItemsShipped": 0,
            "NumberOfItemsUnshipped": quantity * lines,
            "MarketplaceId": self.marketplace_id,
            "OrderType": "StandardOrder",
            "IsReplacementOrder": False,
        }
        self.order_items[order_id] = [
            {"ASIN": "B0FAKE0001", "OrderItemId": f"{60_000_000_000_000 + number * 100 + i}", "SellerSKU": sku,
             "Title": f"Product {sku}", "QuantityOrdered": quantity, "QuantityShipped": 0}
            for i in range(lines)
        ]  # fmt: skip
        if fulfillment == "MFN" and sku in self.listings:
            self.listings[sku] -= quantity * lines
        return order_id

    def set_status(self, order_id: str, status: str) -> None:
        """The order moves on (payment authorized, shipped): its lines stay as they are."""
        self.orders[order_id].update(OrderStatus=status, LastUpdateDate=_stamp())

    def cancel(self, order_id: str) -> None:
        """The order is cancelled: Amazon gives an MFN order's units back to the listing."""
        order = self.orders[order_id]
        order.update(OrderStatus="Canceled", LastUpdateDate=_stamp(), NumberOfItemsUnshipped=0)
        for line in self.order_items[order_id]:
            if order["FulfillmentChannel"] == "MFN" and line["SellerSKU"] in self.listings:
                self.listings[line["SellerSKU"]] += line["QuantityOrdered"]
            if self.cancel_zeroes_quantity:
                line["QuantityOrdered"] = 0

    def _id(self) -> str:
        self._seq += 1
        return str(50000 + self._seq)

    # --- LWA ------------------------------------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return web.json_response(
                {"error": "invalid_client", "error_description": "Client authentication failed"}, status=401
            )
        if form.get("grant_type") != "refresh_token" or self.tokens.use_refresh(str(form.get("refresh_token"))) is None:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "The request has an invalid grant parameter"},
                status=400,
            )
        token, lifetime = self.tokens.issue()
        doc = {"access_token": token, "token_type": "bearer", "expires_in": int(lifetime)}
        return web.json_response({**doc, "refresh_token": form["refresh_token"]})

    # --- gate: token and usage plan ---------------------------------------------------------------------

    def _gate(self, request: web.Request, op: str) -> web.Response | None:
        if not self.tokens.valid(request.headers.get("x-amz-access-token")):
            return sp_error(
                403,
                "Unauthorized",
                "Access to requested resource is denied.",
                "The access token you provided has expired.",
            )
        if not self.limits[op].take():
            self.throttled += 1
            return sp_error(429, "QuotaExceeded", "You exceeded your quota for the requested resource.")
        return None

    def _ok(self, op: str, doc: Any, status: int = 200) -> web.Response:
        headers = {"x-amzn-RateLimit-Limit": f"{self.limits[op].rate:g}", "x-amzn-RequestId": secrets.token_hex(8)}
        return web.json_response(doc, status=status, headers=headers)

    # --- listings -----------------------------------------------------------------------------------------------

    async def patch_item(self, request: web.Request) -> web.Response:
        refused = self._gate(request, "patch")
        if refused is not None:
            return refused
        sku = request.match_info["sku"]
        if (
            request.match_info["seller_id"] != self.seller_id
            or query(request).get("marketplaceIds") != self.marketplace_id
        ):
            return sp_error(400, "InvalidInput", "Invalid sellerId or marketplaceIds.")
        try:
            body = await request.json()
            value = body["patches"][0]["value"][0]
            quantity = int(value["quantity"])
            assert body["productType"] and body["patches"][0]["path"] == "/attributes/fulfillment_availability"
        except (ValueError, KeyError, IndexError, TypeError, AssertionError):
            return sp_error(400, "InvalidInput", "Request body is not a valid listings item patch.")
        submission = secrets.token_hex(16)
        if sku in self.invalid:
            issue = {
                "code": "90220",
                "message": self.invalid[sku],
                "severity": "ERROR",
                "attributeNames": ["fulfillment_availability"],
            }
            return self._ok("patch", {"sku": sku, "status": "INVALID", "submissionId": submission, "issues": [issue]})
        self._apply(sku, quantity)
        return self._ok("patch", {"sku": sku, "status": "ACCEPTED", "submissionId": submission, "issues": []})

    async def get_item(self, request: web.Request) -> web.Response:
        refused = self._gate(request, "getListingsItem")
        if refused is not None:
            return refused
        sku = request.match_info["sku"]
        included = set(query(request).get("includedData", "summaries").split(","))
        if (
            request.match_info["seller_id"] != self.seller_id
            or query(request).get("marketplaceIds") != self.marketplace_id
            or not included <= INCLUDED_DATA
        ):
            return sp_error(400, "InvalidInput", "Invalid sellerId, marketplaceIds or includedData.")
        if sku not in self.listings:
            return sp_error(404, "NOT_FOUND", f"SKU '{sku}' not found in marketplace {self.marketplace_id}")
        doc: dict[str, Any] = {"sku": sku}
        if "summaries" in included:
            doc["summaries"] = [
                {
                    "marketplaceId": self.marketplace_id,
                    "asin": "B0FAKE0001",
                    "productType": "PRODUCT",
                    "status": ["BUYABLE"],
                    "itemName": f"Product {sku}",
                    "createdDate": "2026-01-01T00:00:00Z",
                    "lastUpdatedDate": "2026-01-01T00:00:00Z",
                }
            ]
        if "fulfillmentAvailability" in included:
            doc["fulfillmentAvailability"] = [{"fulfillmentChannelCode": "DEFAULT", "quantity": self.listings[sku]}]
        return self._ok("getListingsItem", doc)

    def _apply(self, sku: str, quantity: int) -> None:
        if sku in self.listings:
            self.listings[sku] = quantity
        else:
            self.ignored.append(sku)

    # --- orders ----------------------------------------------------------------------------------------------

    def _page_token(self, what: str, offset: int) -> str:
        token = secrets.token_urlsafe(24)
        self._pages[token] = (what, offset)
        return token

    def _offset(self, args: dict[str, str], what: str) -> int | None:
        """The offset a request's NextToken stands for (0 without one); None for a token this fake never gave."""
        token = args.get("NextToken")
        if token is None:
            return 0
        page = self._pages.get(token)
        return page[1] if page is not None and page[0] == what else None

    async def get_orders(self, request: web.Request) -> web.Response:
        refused = self._gate(request, "getOrders")
        if refused is not None:
            return refused
        args = query(request)
        marketplaces = [m for m in args.get("MarketplaceIds", "").split(",") if m]
        if not marketplaces or len(marketplaces) > 50:
            return sp_error(400, "InvalidInput", "MarketplaceIds is required (1 to 50 values).")
        if "CreatedAfter" in args or "CreatedBefore" in args:
            return sp_error(400, "InvalidInput", "This fake serves LastUpdatedAfter only.")
        since = _parse(args.get("LastUpdatedAfter", ""))
        if since is None:
            return sp_error(400, "InvalidInput", "Either CreatedAfter or LastUpdatedAfter is required, in ISO 8601.")
        try:
            size = int(args.get("MaxResultsPerPage", "100"))
        except ValueError:
            size = 0
        if not 1 <= size <= 100:
            return sp_error(400, "InvalidInput", "MaxResultsPerPage must be 1 - 100.")
        found = [
            o
            for o in self.orders.values()
            if o["MarketplaceId"] in marketplaces and (_parse(o["LastUpdateDate"]) or since) >= since
        ]
        what = f"orders {','.join(marketplaces)} {since.isoformat()} {size}"
        offset = self._offset(args, what)
        if offset is None:
            return sp_error(400, "InvalidInput", "Invalid NextToken, or the filters changed since it was given.")
        number = offset // max(1, min(size, self.page_limit))
        if number in self.page_failures:
            status = self.page_failures.pop(number)
            if status == 429:
                self.throttled += 1
                return sp_error(429, "QuotaExceeded", "You exceeded your quota for the requested resource.")
            return sp_error(status, "InternalFailure", "We encountered an internal error. Please try again.")
        limit = min(size, self.page_limit)
        payload: dict[str, Any] = {"Orders": found[offset : offset + limit], "LastUpdatedBefore": _stamp()}
        if offset + limit < len(found):
            payload["NextToken"] = self._page_token(what, offset + limit)
        return self._ok("getOrders", {"payload": payload})

    async def get_order_items(self, request: web.Request) -> web.Response:
        refused = self._gate(request, "getOrderItems")
        if refused is not None:
            return refused
        order_id = request.match_info["order_id"]
        if order_id not in self.order_items:
            return sp_error(404, "NotFound", f"Order {order_id} was not found.")
        what = f"items {order_id}"
        offset = self._offset(query(request), what)
        if offset is None:
            return sp_error(400, "InvalidInput", "Invalid NextToken.")
        lines = self.order_items[order_id]
        payload: dict[str, Any] = {
            "AmazonOrderId": order_id,
            "OrderItems": lines[offset : offset + self.items_page_limit],
        }
        if offset + self.items_page_limit < len(lines):
            payload["NextToken"] = self._page_token(what, offset + self.items_page_limit)
        return self._ok("getOrderItems", {"payload": payload})

    # --- feeds ----------------------------------------------------------------------------------------------------

    def _presigned(self, request: web.Request, document_id: str) -> str:
        return f"{self.url}/presigned/{document_id}?X-Amz-Signature={secrets.token_hex(8)}"

    async def create_document(self, request: web.Request) -> web.Response:
        refused = self._gate(request, "createFeedDocument")
        if refused is not None:
            return refused
        body = await request.json()
        if not isinstance(body, dict) or not body.get("contentType"):
            return sp_error(400, "InvalidInput", "contentType is required.")
        document_id = f"amzn1.tortuga.4.na.{secrets.token_hex(6)}"
        self.documents[document_id] = None
        return self._ok(
            "createFeedDocument", {"feedDocumentId": document_id, "url": self._presigned(request, document_id)}, 201
        )

    async def upload(self, request: web.Request) -> web.Response:
        document_id = request.match_info["document_id"]
        if "x-amz-access-token" in request.headers:  # a presigned URL must not be sent the seller's token
            return web.Response(status=400, text="unexpected x-amz-access-token on a presigned URL")
        if document_id not in self.documents or self.documents[document_id] is not None:
            return web.Response(status=403, text="<Error><Code>AccessDenied</Code></Error>")
        self.documents[document_id] = await request.read()
        return web.Response(status=200)

    async def download(self, request: web.Request) -> web.Response:
        content = self.documents.get(request.match_info["document_id"])
        return web.Response(status=404) if content is None else web.Response(body=content)

    async def create_feed(self, request: web.Request) -> web.Response:
        refused = self._gate(request, "createFeed")
        if refused is not None:
            return refused
        body = await request.json()
        document = self.documents.get(str(body.get("inputFeedDocumentId")))
        if body.get("feedType") != "JSON_LISTINGS_FEED" or body.get("marketplaceIds") != [self.marketplace_id]:
            return sp_error(400, "InvalidInput", "Unsupported feedType or marketplaceIds.")
        if document is None:
            return sp_error(400, "InvalidInput", "The feed document was not uploaded.")
        feed_id = self._id()
        self.feeds[feed_id] = {
            "document": json.loads(document),
            "created": self.now(),
            "end": self.end_next_feed_with,
            "status": "IN_QUEUE",
        }
        self.end_next_feed_with = None
        return self._ok("createFeed", {"feedId": feed_id}, 202)

    async def get_feed(self, request: web.Request) -> web.Response:
        refused = self._gate(request, "getFeed")
        if refused is not None:
            return refused
        feed_id = request.match_info["feed_id"]
        feed = self.feeds.get(feed_id)
        if feed is None:
            return sp_error(404, "NotFound", "The requested feed was not found.")
        self._advance(feed_id, feed)
        doc: dict[str, Any] = {
            "feedId": feed_id,
            "feedType": "JSON_LISTINGS_FEED",
            "marketplaceIds": [self.marketplace_id],
            "processingStatus": feed["status"],
        }
        if feed.get("report_id"):
            doc["resultFeedDocumentId"] = feed["report_id"]
        return self._ok("getFeed", doc)

    def _advance(self, feed_id: str, feed: dict[str, Any]) -> None:
        if feed["status"] not in ("IN_QUEUE", "IN_PROGRESS"):
            return
        age = self.now() - feed["created"]
        if age < self.feed_seconds:
            feed["status"] = "IN_QUEUE" if age < self.feed_seconds / 2 else "IN_PROGRESS"
            return
        if feed["end"]:
            feed["status"] = feed["end"]
            return
        issues = []
        header = feed["document"]["header"]
        for message in feed["document"]["messages"]:
            sku = message["sku"]
            if sku in self.invalid:
                issues.append(
                    {
                        "messageId": message["messageId"],
                        "sku": sku,
                        "code": "90220",
                        "severity": "ERROR",
                        "message": self.invalid[sku],
                    }
                )
                continue
            self._apply(sku, int(message["patches"][0]["value"][0]["quantity"]))
        count = len(feed["document"]["messages"])
        report = {
            "header": {"sellerId": header["sellerId"], "version": "2.0", "feedId": feed_id},
            "issues": issues,
            "summary": {
                "errors": len(issues),
                "warnings": 0,
                "messagesProcessed": count,
                "messagesAccepted": count - len(issues),
                "messagesInvalid": len(issues),
            },
        }
        report_id = f"amzn1.tortuga.4.na.report.{secrets.token_hex(6)}"
        self.documents[report_id] = gzip.compress(json.dumps(report).encode())
        feed.update(status="DONE", report_id=report_id, report=report)

    async def get_document(self, request: web.Request) -> web.Response:
        refused = self._gate(request, "getFeedDocument")
        if refused is not None:
            return refused
        document_id = request.match_info["document_id"]
        if self.documents.get(document_id) is None:
            return sp_error(404, "NotFound", "The requested feed document was not found.")
        doc = {
            "feedDocumentId": document_id,
            "url": self._presigned(request, document_id),
            "compressionAlgorithm": "GZIP",
        }
        return self._ok("getFeedDocument", doc)
