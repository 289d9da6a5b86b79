"""A fake TikTok Shop (Partner API 202309): signed calls, products with SKUs in warehouses, token refresh.

- Signature: every API call's ``sign`` is recomputed here from the request as received (query without
  ``sign``/``access_token``, sorted; path; raw body; wrapped in the app secret; HMAC-SHA256). A wrong
  one gets HTTP 401 ``code 106001``; a ``timestamp`` more than 5 minutes off gets the same.
- ``x-tts-access-token`` missing or expired: HTTP 401 ``code 105002``.
- ``GET /api/v2/token/refresh?app_key&app_secret&refresh_token&grant_type=refresh_token`` →
  ``{code: 0, data: {access_token, access_token_expire_in, refresh_token, refresh_token_expire_in}}``,
  the expiries as Unix timestamps (access: 7 days unless ``token_lifetime`` says otherwise).
- ``GET /authorization/202309/shops`` → ``{shops: [{id, cipher, ...}]}``.
- ``POST /product/202309/products/search?page_size&page_token`` and ``GET /product/202309/products/{id}``
  (Get Product: the product with its SKUs' ``inventory[{warehouse_id, quantity}]``; HTTP 404 ``code 12052048``
  for one that does not exist), both answering the live state, so ``set_stock`` shows in the next read.
- ``POST /product/202309/products/{id}/inventory/update``: every SKU must belong to the product and list
  exactly its warehouses (none missing, none added) with a quantity in [0, 99999], else a per-SKU
  entry in ``data.errors``; ``sku_errors`` scripts more. The others are applied.
- Limit: TikTok publishes none; this fake allows ``rate`` calls a second (bucket of ``rate``, times
  ``speed``) and answers HTTP 429 beyond it.
- Orders: ``sell(seller_sku, quantity)`` places an order of ``quantity`` line items (in 202309 a line item is one
  unit) and lowers the SKU's stock in its first warehouse, as TikTok reserves it when the order is placed (unpaid
  too); an order Fulfilled by TikTok ships from TikTok's own stock and lowers nothing. ``cancel(order_id)`` marks it
  CANCELLED and gives the stock back.
- ``POST /order/202309/orders/search?page_size&page_token&sort_field&sort_order`` (Get Order List): body filters
  ``update_time_ge``/``update_time_lt`` (and ``create_time_*``, ``order_status``), ``page_size`` 1-100
  (``order_page_limit`` caps it lower for tests), an opaque ``next_page_token`` while more follow;
  ``order_page_failures`` scripts an HTTP status for a page (by its number, from 0).
- ``GET /order/202309/orders?ids=a,b`` (Get Order Detail): up to 50 ids; orders it does not hold are left out.
- Webhooks: ``notify(order_id)`` POSTs an ORDER_STATUS_CHANGE (type 1) notification to ``webhook_url`` as TikTok
  does, signed ``Authorization: hex(HMAC-SHA256(app secret, app key + body))``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import time
from typing import Any

import aiohttp
from aiohttp import web

from .common import Bucket, Clock, FakeMarketplace, TokenIssuer, query

SKEW_SECONDS = 300


def expected_sign(app_secret: str, path: str, query: dict[str, str], body: bytes) -> str:
    """TikTok's algorithm, written here independently of the relay's, so a mistake there cannot hide."""
    pieces = [path] + [k + query[k] for k in sorted(query) if k not in ("sign", "access_token")]
    wrapped = app_secret.encode() + "".join(pieces).encode() + body + app_secret.encode()
    return hmac.new(app_secret.encode(), wrapped, hashlib.sha256).hexdigest()


def tts(code: int, message: str, data: Any = None, status: int = 200) -> web.Response:
    body = {"code": code, "message": message, "request_id": secrets.token_hex(10).upper(), "data": data}
    return web.json_response(body, status=status)


class FakeTikTok(FakeMarketplace):
    def __init__(
        self, speed: float = 1.0, rate: float = 10.0, token_lifetime: float = 7 * 86400.0, now: Clock = time.monotonic
    ) -> None:
        self.limit = Bucket(rate * speed, max(1.0, rate), now)
        self.tokens = TokenIssuer(token_lifetime, "ROW_fakeaccess", now)
        self.app_key = "6abcfakeappkey"
        self.app_secret = "fakeappsecret0123456789abcdef"
        self.refresh_token = self.tokens.new_refresh_token()
        self.shop_id = "7495000000000000001"
        self.shop_cipher = "ROW_fakeshopcipher01"
        self.products: dict[str, dict[str, Any]] = {}  # product id → {status, skus: [{id, seller_sku, inventory}]}
        self.sku_errors: dict[str, tuple[int, str]] = {}  # SKU id → (code, message) the next update answers
        self.bad_signatures = 0
        self._seq = 0
        self.orders: dict[str, dict[str, Any]] = {}  # order id → the order as Get Order List returns it
        self.order_page_limit = 100  # the largest Get Order List page this fake serves (TikTok: 100)
        self.order_page_failures: dict[int, int] = {}  # page number → the HTTP status its next request gets
        self.webhook_url = ""  # where notify() posts
        self.notifications: list[tuple[str, int]] = []  # (tts_notification_id, status answered)
        self._order_ids = itertools.count(576_000_000_000_000_001)
        super().__init__()

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/api/v2/token/refresh", self.refresh)
        router.add_get("/authorization/202309/shops", self.shops)
        router.add_post("/product/202309/products/search", self.search)
        router.add_get("/product/202309/products/{product_id}", self.get_product)
        router.add_post("/product/202309/products/{product_id}/inventory/update", self.update_inventory)
        router.add_post("/order/202309/orders/search", self.search_orders)
        router.add_get("/order/202309/orders", self.order_detail)

    # --- state ---------------------------------------------------------------------------------------------

    def _id(self) -> str:
        self._seq += 1
        return str(1729000000000000000 + self._seq)

    def add_product(self, skus: dict[str, dict[str, int]], status: str = "ACTIVATE") -> str:
        """A product whose SKUs (seller SKU → {warehouse id: quantity}) are stocked in those warehouses."""
        product_id = self._id()
        self.products[product_id] = {
            "id": product_id,
            "status": status,
            "skus": [
                {
                    "id": self._id(),
                    "seller_sku": seller_sku,
                    "inventory": [{"warehouse_id": w, "quantity": q} for w, q in warehouses.items()],
                }
                for seller_sku, warehouses in skus.items()
            ],
        }
        return product_id

    def _sku(self, seller_sku: str) -> dict[str, Any] | None:
        for product in self.products.values():
            for sku in product["skus"]:
                if sku["seller_sku"] == seller_sku:
                    return dict(sku)
        return None

    def stock(self, seller_sku: str) -> dict[str, int] | None:
        sku = self._sku(seller_sku)
        return None if sku is None else {i["warehouse_id"]: i["quantity"] for i in sku["inventory"]}

    def set_stock(self, seller_sku: str, warehouse_id: str, quantity: int) -> None:
        """The seller edits a SKU's stock in one warehouse in Seller Center, behind the relay's back."""
        for product in self.products.values():
            for sku in product["skus"]:
                if sku["seller_sku"] == seller_sku:
                    for stock in sku["inventory"]:
                        if stock["warehouse_id"] == warehouse_id:
                            stock["quantity"] = quantity
                            return
        raise KeyError((seller_sku, warehouse_id))

    def sku_id(self, seller_sku: str) -> str:
        sku = self._sku(seller_sku)
        assert sku is not None
        return str(sku["id"])

    # --- orders --------------------------------------------------------------------------------------------

    def sell(
        self,
        seller_sku: str,
        quantity: int = 1,
        fulfillment_type: str = "FULFILLMENT_BY_SELLER",
        status: str = "AWAITING_SHIPMENT",
    ) -> str:
        """A buyer orders ``quantity`` units of a SKU: one line item each; TikTok reserves the stock at once."""
        sku = self._sku(seller_sku)
        now = int(time.time())
        order_id = str(next(self._order_ids))
        lines = [
            {"id": str(next(self._order_ids)), "sku_id": sku["id"] if sku else "0", "seller_sku": seller_sku,
             "product_id": self._product_of(seller_sku), "product_name": f"Product {seller_sku}",
             "display_status": status, "sku_type": "NORMAL", "is_gift": False, "sale_price": "9.99",
             "currency": "GBP", "package_status": "TO_FULFILL"}
            for _ in range(quantity)
        ]  # fmt: skip
        self.orders[order_id] = {
            "id": order_id,
            "status": status,
            "fulfillment_type": fulfillment_type,
            "shipping_type": "TIKTOK",
            "create_time": now,
            "update_time": now,
            "paid_time": now if status != "UNPAID" else 0,
            "line_items": lines,
        }
        if fulfillment_type == "FULFILLMENT_BY_SELLER":
            self._move_stock(seller_sku, -quantity)
        return order_id

    def cancel(self, order_id: str) -> None:
        """The order is cancelled (by the buyer, the seller or, unpaid, by TikTok): its stock comes back."""
        order = self.orders[order_id]
        order["status"] = "CANCELLED"
        order["update_time"] = int(time.time())
        for line in order["line_items"]:
            if line["display_status"] != "CANCELLED" and order["fulfillment_type"] == "FULFILLMENT_BY_SELLER":
                self._move_stock(line["seller_sku"], 1)
            line["display_status"] = "CANCELLED"

    def _product_of(self, seller_sku: str) -> str:
        for product in self.products.values():
            if any(s["seller_sku"] == seller_sku for s in product["skus"]):
                return str(product["id"])
        return "0"

    def _move_stock(self, seller_sku: str, change: int) -> None:
        for product in self.products.values():
            for sku in product["skus"]:
                if sku["seller_sku"] == seller_sku and sku["inventory"]:
                    sku["inventory"][0]["quantity"] = max(0, sku["inventory"][0]["quantity"] + change)
                    return

    async def notify(
        self, order_id: str, notification_id: str | None = None, secret: str | None = None, kind: int = 1
    ) -> int:
        """POST a notification about ``order_id`` to ``webhook_url`` as TikTok does (``kind`` 1: its status changed),
        signed with the app secret (or ``secret``); a repeat of a notification reuses its ``notification_id``."""
        order = self.orders.get(order_id, {})
        note = notification_id or str(next(self._order_ids))
        data = {"order_id": order_id, "order_status": order.get("status", ""), "is_on_hold_order": False,
                "update_time": order.get("update_time", int(time.time()))}  # fmt: skip
        doc = {"type": kind, "tts_notification_id": note, "shop_id": self.shop_id, "timestamp": int(time.time()),
               "data": data}  # fmt: skip
        raw = json.dumps(doc).encode()
        sign = hmac.new((secret or self.app_secret).encode(), self.app_key.encode() + raw, hashlib.sha256)
        headers = {"Authorization": sign.hexdigest(), "Content-Type": "application/json"}
        async with aiohttp.ClientSession() as session, session.post(self.webhook_url, data=raw, headers=headers) as r:
            await r.read()
            self.notifications.append((note, r.status))
            return r.status

    async def search_orders(self, request: web.Request) -> web.Response:
        raw = await request.read()
        refused = self._gate(request, raw)
        if refused is not None:
            return refused
        args = query(request)
        try:
            size = int(args["page_size"])
            start = int(base64.urlsafe_b64decode(args["page_token"]).decode()) if args.get("page_token") else 0
            filters = json.loads(raw) if raw else {}
            assert isinstance(filters, dict) and 1 <= size <= 100 and start >= 0
            assert args.get("sort_field", "create_time") in ("create_time", "update_time")
            assert args.get("sort_order", "DESC") in ("ASC", "DESC")
            bounds = {k: filters[k] for k in filters if k.endswith(("_ge", "_lt"))}
            assert all(isinstance(v, int) and not isinstance(v, bool) for v in bounds.values())
        except (KeyError, ValueError, AssertionError):
            return tts(36009004, "Invalid request parameters.", status=400)
        size = min(size, self.order_page_limit)
        page_number = start // size
        if page_number in self.order_page_failures:
            status = self.order_page_failures.pop(page_number)
            if status == 429:
                self.throttled += 1
                return tts(36009003, "Too many requests.", status=429)
            return tts(36009001, "Internal error, please retry.", status=status)
        field = args.get("sort_field", "create_time")
        found = [o for o in self.orders.values() if self._matches(o, filters)]
        found.sort(key=lambda o: (o[field], o["id"]), reverse=args.get("sort_order", "DESC") == "DESC")
        page = found[start : start + size]
        more = start + size < len(found)
        token = base64.urlsafe_b64encode(str(start + size).encode()).decode() if more else ""
        return tts(0, "Success", {"orders": page, "next_page_token": token, "total_count": len(found)})

    @staticmethod
    def _matches(order: dict[str, Any], filters: dict[str, Any]) -> bool:
        for name in ("update_time", "create_time"):
            if f"{name}_ge" in filters and order[name] < filters[f"{name}_ge"]:
                return False
            if f"{name}_lt" in filters and order[name] >= filters[f"{name}_lt"]:
                return False
        return filters.get("order_status") in (None, order["status"])

    async def order_detail(self, request: web.Request) -> web.Response:
        refused = self._gate(request, b"")
        if refused is not None:
            return refused
        ids = [i for i in query(request).get("ids", "").split(",") if i]
        if not 1 <= len(ids) <= 50:
            return tts(36009004, "ids must list 1 to 50 order ids.", status=400)
        return tts(0, "Success", {"orders": [self.orders[i] for i in ids if i in self.orders]})

    # --- auth and signature --------------------------------------------------------------------------------

    async def refresh(self, request: web.Request) -> web.Response:
        q = query(request)
        if q.get("app_key") != self.app_key or q.get("app_secret") != self.app_secret:
            return tts(36004003, "app_key or app_secret is invalid")
        if q.get("grant_type") != "refresh_token" or self.tokens.use_refresh(q.get("refresh_token", "")) is None:
            return tts(36004004, "refresh_token is invalid or expired")
        token, lifetime = self.tokens.issue()
        data = {
            "access_token": token,
            "access_token_expire_in": int(time.time() + lifetime),  # Unix timestamps, not durations
            "refresh_token": q["refresh_token"],
            "refresh_token_expire_in": int(time.time() + 365 * 86400),
            "open_id": "fakeopenid",
            "seller_name": "Fake Seller",
        }
        return tts(0, "success", data)

    def _gate(self, request: web.Request, body: bytes, shop_scoped: bool = True) -> web.Response | None:
        params = dict(query(request))
        expected = expected_sign(self.app_secret, request.path, params, body)
        stamp = params.get("timestamp", "")
        fresh = stamp.isdigit() and abs(int(stamp) - time.time()) <= SKEW_SECONDS
        if params.get("app_key") != self.app_key or params.get("sign") != expected or not fresh:
            self.bad_signatures += 1
            return tts(106001, "Invalid credentials. The 'sign' query parameter is invalid.", status=401)
        if not self.tokens.valid(request.headers.get("x-tts-access-token")):
            return tts(105002, "Expired credentials. The access token has expired.", status=401)
        if shop_scoped and params.get("shop_cipher") != self.shop_cipher:
            return tts(106011, "Invalid shop_cipher.", status=400)
        if not self.limit.take():
            self.throttled += 1
            return tts(36009003, "Too many requests.", status=429)
        return None

    # --- API ------------------------------------------------------------------------------------------------------

    async def shops(self, request: web.Request) -> web.Response:
        refused = self._gate(request, b"", shop_scoped=False)
        if refused is not None:
            return refused
        shop = {
            "id": self.shop_id,
            "cipher": self.shop_cipher,
            "name": "Fake Shop",
            "region": "GB",
            "seller_type": "LOCAL",
        }
        return tts(0, "Success", {"shops": [shop]})

    async def search(self, request: web.Request) -> web.Response:
        refused = self._gate(request, await request.read())
        if refused is not None:
            return refused
        size = min(100, int(query(request).get("page_size", "10")))
        start = int(query(request).get("page_token") or 0)
        products = list(self.products.values())
        page = products[start : start + size]
        token = str(start + size) if start + size < len(products) else ""
        return tts(0, "Success", {"products": page, "next_page_token": token, "total_count": len(products)})

    async def get_product(self, request: web.Request) -> web.Response:
        refused = self._gate(request, b"")
        if refused is not None:
            return refused
        product = self.products.get(request.match_info["product_id"])
        if product is None:
            return tts(12052048, "Product does not exist.", status=404)
        return tts(0, "Success", product)

    async def update_inventory(self, request: web.Request) -> web.Response:
        raw = await request.read()
        refused = self._gate(request, raw)
        if refused is not None:
            return refused
        product = self.products.get(request.match_info["product_id"])
        if product is None:
            return tts(12052048, "Product does not exist.", status=404)
        try:
            skus = json.loads(raw)["skus"]
            assert isinstance(skus, list) and skus
        except (ValueError, KeyError, AssertionError, TypeError):
            return tts(36009004, "Invalid request body.", status=400)
        if product["status"] != "ACTIVATE":
            return tts(12019001, "The product is not in ACTIVATE status.")
        own = {s["id"]: s for s in product["skus"]}
        errors = []
        for entry in skus:
            sku = own.get(entry.get("id"))
            problem = self._check(sku, entry)
            if problem is None and sku is not None and sku["id"] in self.sku_errors:
                problem = self.sku_errors.pop(sku["id"])
            if problem is not None:
                errors.append({"code": problem[0], "message": problem[1], "detail": {"sku_id": entry.get("id")}})
                continue
            assert sku is not None
            for item in entry["inventory"]:
                for stock in sku["inventory"]:
                    if stock["warehouse_id"] == item["warehouse_id"]:
                        stock["quantity"] = item["quantity"]
        return tts(0, "Success", {"errors": errors} if errors else {})

    def _check(self, sku: dict[str, Any] | None, entry: dict[str, Any]) -> tuple[int, str] | None:
        if sku is None:
            return 12052230, "The SKU does not belong to this product."
        inventory = entry.get("inventory") or []
        sent = [i.get("warehouse_id") for i in inventory]
        held = [i["warehouse_id"] for i in sku["inventory"]]
        if sorted(sent) != sorted(held):
            return 12052217, "Include all warehouse IDs assigned to this SKU, and no others."
        if any(not isinstance(i.get("quantity"), int) or not 0 <= i["quantity"] <= 99_999 for i in inventory):
            return 12052700, "The quantity must be between 0 and 99999."
        return None
