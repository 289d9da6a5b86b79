"""A fake eBay seller account: the Sell Inventory API's bulk quantity update and eBay's OAuth refresh.

- ``POST /identity/v1/oauth2/token``: ``Authorization: Basic base64(client_id:client_secret)``,
  form ``grant_type=refresh_token&refresh_token=…&scope=…`` → a user token for ``token_lifetime`` s.
- ``POST /sell/inventory/v1/bulk_update_price_quantity``: ≤25 ``requests``; 200 when every item
  took, 207 with one ``responses[]`` entry per item and per offer when results are mixed.
- ``GET /sell/inventory/v1/offer?sku=``: the SKU's offers.
- ``POST /sell/inventory/v1/bulk_get_inventory_item`` (read-back): ≤25 ``requests[{sku}]``, unique;
  200 when every SKU was found, 207 otherwise, one ``responses[]`` entry per SKU: ``inventoryItem``
  with ``availability.shipToLocationAvailability.quantity``, or statusCode 404 with errorId 25702.
- A call budget of ``calls_per_day`` (eBay's default Inventory API quota is 2,000,000/day) spread
  as ``rate`` calls/s with ``burst``; over it: 429 with errorId 2001, as eBay answers.
- ``revisions_per_day`` per SKU (250); past it the item fails with statusCode 400.
- ``GET /sell/fulfillment/v1/order?filter=lastmodifieddate:[FROM..]&limit=&offset=`` (Sell Fulfillment
  ``getOrders``): the orders modified since FROM, ``limit`` 1-200 (default 50; ``page_limit`` caps it
  lower for tests), paged by ``offset`` with ``next`` while more follow. A test makes orders with
  ``sell(sku, qty)`` (which lowers the item's quantity, as eBay does) and cancels them with ``cancel``.
  Refusals carry the errorIds the Sell Fulfillment OpenAPI lists for getOrders (30700 filter name, 30800
  filter value, 30810 date format: ``[YYYY]-[MM]-[DD]T[hh]:[mm]:[ss].[sss]Z`` only, 31000 offset, 31100
  limit, 30500 system error); ``href`` is the request's own URI and ``next`` the same with the next offset.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import itertools
import re
import time
from typing import Any

from aiohttp import web

from .common import Bucket, FakeMarketplace, TokenIssuer, Window, bearer, query

DAY = 86400.0
ORDERS_FILTER_VALUE = re.compile(r"^\[(.*?)\.\.(.*)\]$")
ORDERS_FILTER_NAMES = ("creationdate", "lastmodifieddate", "orderfulfillmentstatus")  # getOrders' criteria
ORDERS_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")  # the spec's one timestamp format


def ebay_error(error_id: int, message: str, category: str = "REQUEST") -> dict[str, Any]:
    return {"errorId": error_id, "domain": "API_INVENTORY", "category": category, "message": message}


def orders_error(error_id: int, message: str, category: str = "REQUEST") -> dict[str, Any]:
    return {"errorId": error_id, "domain": "API_FULFILLMENT", "category": category, "message": message}


def orders_refusal(error_id: int, message: str) -> web.Response:
    return web.json_response({"errors": [orders_error(error_id, message)]}, status=400)


def _stamp(at: float | None = None) -> str:
    moment = dt.datetime.fromtimestamp(time.time() if at is None else at, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _modified_within(order: dict[str, Any], since: dt.datetime | None, until: dt.datetime | None) -> bool:
    modified = _parse(order["lastModifiedDate"])
    return modified is not None and (since is None or modified >= since) and (until is None or modified <= until)


class FakeEbay(FakeMarketplace):
    def __init__(
        self,
        rate: float = 2_000_000 / DAY,
        burst: float = 25.0,
        token_lifetime: float = 7200.0,
        revisions_per_day: int = 250,
        day_seconds: float = DAY,
    ) -> None:
        self.calls_bucket = Bucket(rate, burst)
        self.tokens = TokenIssuer(token_lifetime, "v^1.1#i^1")
        self.client_id = "relay-app-PRD"
        self.client_secret = "PRD-ebay-client-secret"
        self.refresh_token = self.tokens.new_refresh_token()
        self.revisions_per_day = revisions_per_day
        self.day_seconds = day_seconds
        self.items: dict[str, int] = {}  # sku → shipToLocationAvailability.quantity
        self.offers: dict[str, dict[str, Any]] = {}  # offerId → {sku, availableQuantity, status}
        self.revisions: dict[str, Window] = {}
        self.item_failures: dict[str, tuple[int, int]] = {}  # sku → (statusCode, errorId), for tests
        self.orders: dict[str, dict[str, Any]] = {}  # orderId → the order as getOrders returns it
        self.page_limit = 200  # the largest getOrders page this fake serves (eBay: 200)
        self.page_failures: dict[int, int] = {}  # getOrders offset → the status its next request gets, for tests
        self.hold_updates: asyncio.Event | None = None  # set by a test: updates are applied, the answer waits for it
        self.updates_held = asyncio.Event()  # set once an update is waiting on hold_updates
        self._numbers = itertools.count(1)
        super().__init__()

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/identity/v1/oauth2/token", self.token)
        router.add_post("/sell/inventory/v1/bulk_update_price_quantity", self.bulk_update)
        router.add_get("/sell/inventory/v1/offer", self.get_offers)
        router.add_post("/sell/inventory/v1/bulk_get_inventory_item", self.bulk_get)
        router.add_get("/sell/fulfillment/v1/order", self.get_orders)

    def add_item(self, sku: str, quantity: int = 0, offer_quantity: int | None = None) -> None:
        self.items[sku] = quantity
        if offer_quantity is not None:
            offer_id = str(9_000_000 + len(self.offers))
            self.offers[offer_id] = {"sku": sku, "availableQuantity": offer_quantity, "status": "PUBLISHED"}

    def sell(self, sku: str, quantity: int = 1, lines: int = 1) -> str:
        """A buyer checks out ``lines`` line items of ``quantity`` each; eBay lowers the item's quantity itself."""
        number = next(self._numbers)
        order_id = f"27-{number:05d}-{number:05d}"
        now = _stamp()
        self.orders[order_id] = {
            "orderId": order_id,
            "creationDate": now,
            "lastModifiedDate": now,
            "orderFulfillmentStatus": "NOT_STARTED",
            "orderPaymentStatus": "PAID",
            "cancelStatus": {"cancelState": "NONE_REQUESTED", "cancelRequests": []},
            "lineItems": [
                {"lineItemId": f"{10_000_000_000 + number * 10 + i}", "sku": sku, "quantity": quantity,
                 "legacyItemId": "110554245398", "title": f"Product {sku}"}
                for i in range(lines)
            ],
        }  # fmt: skip
        if sku in self.items:
            self.items[sku] -= quantity * lines
        return order_id

    def cancel(self, order_id: str) -> None:
        """The order is cancelled: eBay gives the quantity back to the listing and marks the order CANCELED."""
        order = self.orders[order_id]
        order["cancelStatus"] = {"cancelState": "CANCELED", "cancelledDate": _stamp(), "cancelRequests": []}
        order["lastModifiedDate"] = _stamp()
        for line in order["lineItems"]:
            if line["sku"] in self.items:
                self.items[line["sku"]] += line["quantity"]

    def shown(self, sku: str) -> int | None:
        """What the listing shows: the smaller of the item's quantity and its offers' shares."""
        if sku not in self.items:
            return None
        shares = [o["availableQuantity"] for o in self.offers.values() if o["sku"] == sku]
        return min([self.items[sku], *shares])

    async def token(self, request: web.Request) -> web.Response:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return web.json_response(
                {"error": "invalid_client", "error_description": "client authentication failed"}, status=401
            )
        form = await request.post()
        if form.get("grant_type") != "refresh_token" or self.tokens.use_refresh(str(form.get("refresh_token"))) is None:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "the provided authorization refresh token is invalid"},
                status=400,
            )
        token, lifetime = self.tokens.issue()
        return web.json_response(
            {"access_token": token, "expires_in": int(lifetime), "token_type": "User Access Token"}
        )

    def _gate(self, request: web.Request) -> web.Response | None:
        if not self.tokens.valid(bearer(request)):
            error = {"errorId": 1001, "domain": "OAuth", "category": "REQUEST", "message": "Invalid access token"}
            return web.json_response({"errors": [error]}, status=401)
        if not self.calls_bucket.take():
            self.throttled += 1
            error = {"errorId": 2001, "domain": "ACCESS", "category": "REQUEST", "message": "Too many requests."}
            return web.json_response({"errors": [error]}, status=429)
        return None

    async def get_offers(self, request: web.Request) -> web.Response:
        refused = self._gate(request)
        if refused is not None:
            return refused
        sku = query(request).get("sku", "")
        offers = [{"offerId": oid, **offer} for oid, offer in self.offers.items() if offer["sku"] == sku]
        if not offers:
            return web.json_response({"errors": [ebay_error(25713, "This Offer is not available.")]}, status=404)
        return web.json_response({"offers": offers, "total": len(offers)})

    async def get_orders(self, request: web.Request) -> web.Response:
        refused = self._gate(request)
        if refused is not None:
            return refused
        args = query(request)
        since: dt.datetime | None = None
        until: dt.datetime | None = None
        if "filter" in args:
            name, _, value = args["filter"].partition(":")
            if name not in ORDERS_FILTER_NAMES:
                return orders_refusal(30700, f"Invalid filter name: {name}")
            match = ORDERS_FILTER_VALUE.match(value)
            if name != "lastmodifieddate" or match is None:  # the only criterion this fake serves
                return orders_refusal(30800, f"Invalid filter value {value} for filter {name}")
            if not all(ORDERS_STAMP.match(stamp) for stamp in match.groups() if stamp):
                return orders_refusal(30810, "Invalid date format")
            if not match.group(1):
                return orders_refusal(30820, "Start date is missing")
            since, until = _parse(match.group(1)), _parse(match.group(2)) if match.group(2) else None
            if since is None or (match.group(2) and until is None):
                return orders_refusal(30810, "Invalid date format")
        limit_text, offset_text = args.get("limit", "50"), args.get("offset", "0")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 200:
            return orders_refusal(31100, f"Invalid limit: {limit_text}")
        if not offset_text.isdigit():
            return orders_refusal(31000, f"Invalid offset: {offset_text}")
        limit, offset = min(int(limit_text), self.page_limit), int(offset_text)
        if offset in self.page_failures:
            status = self.page_failures.pop(offset)
            if status == 429:
                self.throttled += 1
                error = {"errorId": 2001, "domain": "ACCESS", "category": "REQUEST", "message": "Too many requests."}
            else:
                error = orders_error(30500, "System error", "APPLICATION")
            return web.json_response({"errors": [error]}, status=status, headers={"Retry-After": "0"})
        found = [o for o in reversed(self.orders.values()) if _modified_within(o, since, until)]  # newest first
        page = found[offset : offset + limit]
        href = request.url
        doc: dict[str, Any] = {"href": str(href), "total": len(found), "limit": limit, "offset": offset, "orders": page}
        if offset + limit < len(found):
            doc["next"] = str(href.update_query(limit=str(limit), offset=str(offset + limit)))
        return web.json_response(doc)

    async def bulk_get(self, request: web.Request) -> web.Response:
        refused = self._gate(request)
        if refused is not None:
            return refused
        doc = await request.json()
        requests = doc.get("requests") if isinstance(doc, dict) else None
        if not isinstance(requests, list) or not requests or not all(isinstance(r, dict) for r in requests):
            return web.json_response({"errors": [ebay_error(25709, "Invalid value for requests.")]}, status=400)
        if len(requests) > 25:
            error = ebay_error(25727, "The number of InventoryItems in the request cannot exceed 25.")
            return web.json_response({"errors": [error]}, status=400)
        skus = [str(r.get("sku")) for r in requests]
        if len(set(skus)) != len(skus):
            return web.json_response(
                {"errors": [ebay_error(25734, "SKU should be unique in the request.")]}, status=400
            )
        responses: list[dict[str, Any]] = []
        for sku in skus:
            if sku in self.item_failures:
                code, error_id = self.item_failures[sku]
                responses.append({"sku": sku, "statusCode": code, "errors": [ebay_error(error_id, "scripted failure")]})
            elif sku not in self.items:
                error = ebay_error(25702, f"SKU {sku} is not available in the system")
                responses.append({"sku": sku, "statusCode": 404, "errors": [error]})
            else:
                item = {
                    "sku": sku,
                    "locale": "en_US",
                    "availability": {"shipToLocationAvailability": {"quantity": self.items[sku]}},
                    "condition": "NEW",
                    "product": {"title": f"Product {sku}"},
                }
                responses.append({"sku": sku, "statusCode": 200, "inventoryItem": item})
        mixed = any(r["statusCode"] != 200 for r in responses)
        return web.json_response({"responses": responses}, status=207 if mixed else 200)

    async def bulk_update(self, request: web.Request) -> web.Response:
        refused = self._gate(request)
        if refused is not None:
            return refused
        doc = await request.json()
        requests = doc.get("requests") if isinstance(doc, dict) else None
        if not isinstance(requests, list) or not 1 <= len(requests) <= 25:
            return web.json_response({"errors": [ebay_error(25709, "Invalid value for requests.")]}, status=400)
        responses: list[dict[str, Any]] = []
        for entry in requests:
            responses.extend(self._update_one(entry))
        if self.hold_updates is not None:
            self.updates_held.set()
            await self.hold_updates.wait()
        mixed = any(r["statusCode"] != 200 for r in responses)
        return web.json_response({"responses": responses}, status=207 if mixed else 200)

    def _update_one(self, entry: dict[str, Any]) -> list[dict[str, Any]]:
        sku = str(entry.get("sku"))
        if sku in self.item_failures:
            code, error_id = self.item_failures[sku]
            return [{"sku": sku, "statusCode": code, "errors": [ebay_error(error_id, "scripted failure")]}]
        if sku not in self.items:
            return [{"sku": sku, "statusCode": 404, "errors": [ebay_error(25702, f"SKU {sku} is not available.")]}]
        window = self.revisions.setdefault(sku, Window(self.revisions_per_day, self.day_seconds))
        if not window.take():
            error = ebay_error(25014, "The listing has reached its daily revision limit.", "BUSINESS")
            return [{"sku": sku, "statusCode": 400, "errors": [error]}]
        quantity = (entry.get("shipToLocationAvailability") or {}).get("quantity")
        if isinstance(quantity, int):
            self.items[sku] = quantity
        answers = [{"sku": sku, "statusCode": 200}]
        for offer in entry.get("offers") or []:
            known = self.offers.get(str(offer.get("offerId")))
            if known is None or known["sku"] != sku:
                answers.append(
                    {
                        "sku": sku,
                        "offerId": offer.get("offerId"),
                        "statusCode": 400,
                        "errors": [ebay_error(25709, "Invalid offerId.")],
                    }
                )
                continue
            known["availableQuantity"] = offer.get("availableQuantity", known["availableQuantity"])
            answers.append({"sku": sku, "offerId": offer.get("offerId"), "statusCode": 200})
        return answers
