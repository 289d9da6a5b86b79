"""A fake Etsy shop: listing inventories as Open API v3 serves them, and Etsy's OAuth refresh.

- ``POST /v3/public/oauth/token``: ``grant_type=refresh_token&client_id=<keystring>&refresh_token=…``
  → ``{access_token: "<user id>.<token>", expires_in: 3600, refresh_token}``.
- Every other call needs ``x-api-key: <keystring>:<shared secret>`` and a valid bearer token.
- ``GET /v3/application/shops/{shop_id}/listings?state&limit&offset`` → listings with their ``skus``.
- ``GET``/``PUT /v3/application/listings/{listing_id}/inventory``: the PUT replaces every product.
  It refuses (400) a body without ``products`` or an offering without price/quantity/is_enabled,
  and different quantities when ``quantity_on_property`` is empty, as Etsy does.
- ``GET /v3/application/listings/batch/inventory?listing_ids=1,2,…`` (read-back, ≤100 ids) →
  ``{count, results: [{listing_id, shop_id, state, inventory}]}``; one unknown id makes the whole
  call a 404, as Etsy documents; more than 100 ids or none: 400.
- ``qps`` per second and ``qpd`` per rolling ``day_seconds`` (Etsy's "rolling 24 h sliding window"):
  ``x-limit-per-second``, ``x-remaining-this-second``, ``x-limit-per-day``, ``x-remaining-today`` on
  every answer that was not refused for a limit (the call that spends the day's last one says
  ``x-remaining-today: 0``). The second is checked first; over it: 429 with ``retry-after: 1``. The
  day's quota spent: 429 with ``retry-after`` the whole seconds until the oldest call counted ages
  out of the window (up to 86400), as Etsy answers; refused calls are not counted against the day.
- ``GET /v3/application/shops/{shop_id}/receipts`` (``getShopReceipts``, scope ``transactions_r``): the shop's
  receipts, each with its ``transactions`` (the lines), filtered by ``min_last_modified``/``max_last_modified`` and
  ``min_created``/``max_created`` (epoch seconds, at least 946684800), ``was_paid``/``was_shipped``/``was_canceled``
  (``true``/``false``), sorted by ``sort_on`` (created, updated, receipt_id; default created) and ``sort_order``
  (default desc), ``limit`` 1-100 (default 25; ``page_limit`` caps it lower for tests) and ``offset``, with ``count``
  the number matching. Without ``was_canceled`` it answers the non-canceled receipts only: the default Etsy announced
  with the parameter (release of 2023-04-18), keeping the endpoint's older behaviour. A parameter outside the
  contract is a 400 with ``{"error"}``. A test makes receipts with ``sell(sku, qty)`` (which lowers the product's
  quantity, as Etsy does at checkout) and cancels them with ``cancel(receipt_id)`` (which gives it back and bumps
  ``update_timestamp``); ``page_failures`` scripts an offset's next answer (429 with ``retry-after``, 5xx).
"""

from __future__ import annotations

import itertools
import math
import time
from typing import Any

from aiohttp import web

from .common import Bucket, Clock, FakeMarketplace, TokenIssuer, Window, bearer, query

DAY = 86400.0
EARLIEST = 946684800  # the smallest timestamp getShopReceipts' filters accept (2000-01-01)
RECEIPT_SORTS = {"created": "create_timestamp", "updated": "update_timestamp", "receipt_id": "receipt_id"}
ORDERS = {"asc": False, "ascending": False, "up": False, "desc": True, "descending": True, "down": True}  # → reverse


class FakeEtsy(FakeMarketplace):
    def __init__(
        self,
        qps: float = 10.0,
        qpd: int = 10_000,
        day_seconds: float = DAY,
        token_lifetime: float = 3600.0,
        shop_id: int = 5550001,
        clock: Clock = time.monotonic,  # a test's own clock: the limits' time moves only when the test moves it
    ) -> None:
        self.second = Bucket(qps, qps, clock)
        self.day = Window(qpd, day_seconds, clock)
        self.qps, self.qpd = qps, qpd
        self.tokens = TokenIssuer(token_lifetime, "87654321")
        self.keystring = "etsykeystring01"
        self.shared_secret = "etsysharedsecret01"
        self.refresh_token = self.tokens.new_refresh_token()
        self.shop_id = shop_id
        self.inventories: dict[int, dict[str, Any]] = {}  # listing id → inventory as GET returns it
        self.states: dict[int, str] = {}
        self._next_id = 100
        self.day_refusals = 0  # 429s for the day's quota (``throttled`` counts every 429)
        self.scopes = {"listings_r", "listings_w", "transactions_r"}  # what the seller granted the app
        self.receipts: dict[int, dict[str, Any]] = {}  # receipt id → the receipt as getShopReceipts returns it
        self.page_limit = 100  # the largest getShopReceipts page this fake serves (Etsy: 100)
        self.page_failures: dict[int, int] = {}  # getShopReceipts offset → the status its next request gets, for tests
        self.wall: Clock = time.time  # receipts' timestamps (epoch seconds), apart from the limits' clock
        self._receipt_ids = itertools.count(3_100_000_001)
        self._transaction_ids = itertools.count(4_200_000_001)
        super().__init__()

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v3/public/oauth/token", self.token)
        router.add_get("/v3/application/shops/{shop_id}/listings", self.shop_listings)
        router.add_get("/v3/application/shops/{shop_id}/receipts", self.shop_receipts)
        router.add_get("/v3/application/listings/batch/inventory", self.batch_inventory)  # before {listing_id}
        router.add_get("/v3/application/listings/{listing_id}/inventory", self.get_inventory)
        router.add_put("/v3/application/listings/{listing_id}/inventory", self.put_inventory)

    # --- state for tests and benches ---------------------------------------------------------------

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add_listing(
        self, skus: dict[str, int], quantity_varies: bool = True, state: str = "active", price: int = 1500
    ) -> int:
        """A listing whose products are ``skus`` (SKU → quantity), varying by a "Size" property."""
        listing = self._id()
        products = []
        for index, (sku, quantity) in enumerate(skus.items()):
            products.append(
                {
                    "product_id": self._id(),
                    "sku": sku,
                    "is_deleted": False,
                    "offerings": [
                        {
                            "offering_id": self._id(),
                            "quantity": quantity,
                            "is_enabled": True,
                            "is_deleted": False,
                            "price": {"amount": price + index, "divisor": 100, "currency_code": "EUR"},
                        }
                    ],
                    "property_values": [
                        {
                            "property_id": 100,
                            "property_name": "Size",
                            "scale_id": None,
                            "scale_name": None,
                            "value_ids": [1000 + index],
                            "values": [f"size-{index}"],
                        }
                    ]
                    if len(skus) > 1
                    else [],
                }
            )
        varies = [100] if len(skus) > 1 and quantity_varies else []
        self.inventories[listing] = {
            "products": products,
            "price_on_property": [100] if len(skus) > 1 else [],
            "quantity_on_property": varies,
            "sku_on_property": [100] if len(skus) > 1 else [],
            "listing": None,
        }
        self.states[listing] = state
        return listing

    def quantity(self, sku: str) -> int | None:
        for inventory in self.inventories.values():
            for product in inventory["products"]:
                if product["sku"] == sku and not product["is_deleted"]:
                    return int(product["offerings"][0]["quantity"])
        return None

    def set_quantity(self, sku: str, quantity: int) -> None:
        """The seller edits one variation's quantity on Etsy.com, behind the relay's back."""
        product = self.product(sku)
        assert product is not None
        product["offerings"][0]["quantity"] = quantity

    def product(self, sku: str) -> dict[str, Any] | None:
        for inventory in self.inventories.values():
            for product in inventory["products"]:
                if product["sku"] == sku:
                    return product
        return None

    def listing_of(self, sku: str) -> int | None:
        for listing, inventory in self.inventories.items():
            if any(p["sku"] == sku and not p["is_deleted"] for p in inventory["products"]):
                return listing
        return None

    def sell(self, sku: str | None, quantity: int = 1, lines: int = 1, status: str = "paid") -> int:
        """A buyer checks out ``lines`` transactions of ``quantity`` each of the product ``sku`` (None: a listing
        whose product has no SKU); Etsy lowers the offering's quantity itself. Returns the receipt id."""
        receipt_id = next(self._receipt_ids)
        now = int(self.wall())
        product = self.product(sku) if sku is not None else None
        listing = self.listing_of(sku) if sku is not None else None
        money = {"amount": 1500 * quantity * lines, "divisor": 100, "currency_code": "EUR"}
        zero = {"amount": 0, "divisor": 100, "currency_code": "EUR"}
        transactions = [
            {
                "transaction_id": next(self._transaction_ids), "title": f"Product {sku}", "description": None,
                "seller_user_id": 87654321, "buyer_user_id": 12345678, "create_timestamp": now,
                "created_timestamp": now, "paid_timestamp": now if status == "paid" else None,
                "shipped_timestamp": None, "quantity": quantity, "listing_image_id": None, "receipt_id": receipt_id,
                "is_digital": False, "file_data": "", "listing_id": listing,
                "transaction_type": "listing", "product_id": product["product_id"] if product else None, "sku": sku,
                "price": {"amount": 1500, "divisor": 100, "currency_code": "EUR"}, "shipping_cost": zero,
                "variations": [], "product_data": [], "shipping_profile_id": None, "min_processing_days": 1,
                "max_processing_days": 3, "shipping_method": None, "shipping_upgrade": None,
                "expected_ship_date": now + 3 * 86400, "buyer_coupon": 0, "shop_coupon": 0,
            }
            for _ in range(lines)
        ]  # fmt: skip
        self.receipts[receipt_id] = {
            "receipt_id": receipt_id, "receipt_type": 0, "seller_user_id": 87654321, "seller_email": None,
            "buyer_user_id": 12345678, "buyer_email": None, "name": "A. Buyer", "first_line": None,
            "second_line": None, "city": None, "state": None, "zip": None, "status": status,
            "formatted_address": None, "country_iso": None, "payment_method": "cc", "payment_email": None,
            "message_from_seller": None, "message_from_buyer": None, "message_from_payment": None,
            "is_paid": status == "paid", "is_shipped": False, "create_timestamp": now, "created_timestamp": now,
            "update_timestamp": now, "updated_timestamp": now, "is_gift": False, "gift_message": "",
            "gift_sender": "", "grandtotal": money, "subtotal": money, "total_price": money,
            "total_shipping_cost": zero, "total_tax_cost": zero, "total_vat_cost": zero, "discount_amt": zero,
            "gift_wrap_price": zero, "shipments": [], "transactions": transactions, "refunds": [],
        }  # fmt: skip
        if product is not None:
            product["offerings"][0]["quantity"] -= quantity * lines
        return receipt_id

    def cancel(self, receipt_id: int) -> None:
        """The seller cancels the order: the receipt's status becomes ``canceled``, its ``update_timestamp`` moves,
        and the quantity goes back to the product."""
        receipt = self.receipts[receipt_id]
        now = int(self.wall())
        receipt.update(status="canceled", update_timestamp=now, updated_timestamp=now)
        for line in receipt["transactions"]:
            product = self.product(line["sku"]) if line["sku"] is not None else None
            if product is not None:
                product["offerings"][0]["quantity"] += line["quantity"]

    # --- endpoints ------------------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("client_id") != self.keystring:
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("grant_type") != "refresh_token" or self.tokens.use_refresh(str(form.get("refresh_token"))) is None:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Invalid refresh token"}, status=400
            )
        token, lifetime = self.tokens.issue()
        return web.json_response(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": int(lifetime),
                "refresh_token": self.refresh_token,
            }
        )

    def _headers(self) -> dict[str, str]:
        return {
            "x-limit-per-second": str(int(self.qps)),
            "x-remaining-this-second": str(int(self.second.available)),
            "x-limit-per-day": str(self.qpd),
            "x-remaining-today": str(self.day.remaining),
        }

    def _gate(self, request: web.Request) -> web.Response | None:
        if request.headers.get("x-api-key") != f"{self.keystring}:{self.shared_secret}":
            return web.json_response({"error": "Shared secret is required in x-api-key header"}, status=403)
        if not self.tokens.valid(bearer(request)):
            return web.json_response({"error": "invalid_token"}, status=401)
        # Etsy checks the per-second limit first; a request over it is refused whatever the day's count.
        if not self.second.take():
            return self._refuse(max(1, math.ceil(self.second.seconds_until())), "second")
        if not self.day.take():
            self.day_refusals += 1
            # The day is a rolling window: room comes back when the oldest call counted in it ages out.
            return self._refuse(min(int(DAY), max(1, math.ceil(self.day.seconds_until_free()))), "day")
        return None

    def _refuse(self, retry_after: int, window: str) -> web.Response:
        """A 429: ``retry-after`` in whole seconds, and the limits (what is left is only told on a success)."""
        self.throttled += 1
        limits = {"x-limit-per-second": str(int(self.qps)), "x-limit-per-day": str(self.qpd)}
        return web.json_response(
            {"error": f"You have exceeded your {'daily ' if window == 'day' else ''}quota"},
            status=429,
            headers={**limits, "retry-after": str(retry_after)},
        )

    async def shop_listings(self, request: web.Request) -> web.Response:
        refused = self._gate(request)
        if refused is not None:
            return refused
        if request.match_info["shop_id"] != str(self.shop_id):
            return web.json_response({"error": "Shop not found"}, status=404, headers=self._headers())
        state = query(request).get("state", "active")
        limit = min(100, int(query(request).get("limit", "25")))
        offset = int(query(request).get("offset", "0"))
        matching = [lid for lid in sorted(self.inventories) if self.states[lid] == state]
        page = matching[offset : offset + limit]
        results = [
            {
                "listing_id": lid,
                "shop_id": self.shop_id,
                "state": state,
                "skus": [p["sku"] for p in self.inventories[lid]["products"] if not p["is_deleted"]],
            }
            for lid in page
        ]
        return web.json_response({"count": len(matching), "results": results}, headers=self._headers())

    async def shop_receipts(self, request: web.Request) -> web.Response:
        refused = self._gate(request)
        if refused is not None:
            return refused
        if "transactions_r" not in self.scopes:
            error = (
                "The request could not be completed because the provided access token lacks the transactions_r scope"
            )
            return web.json_response({"error": error}, status=403, headers=self._headers())
        if request.match_info["shop_id"] != str(self.shop_id):
            return web.json_response({"error": "Shop not found"}, status=404, headers=self._headers())
        args = query(request)
        problem = _receipts_problem(args)
        if problem:
            return web.json_response({"error": problem}, status=400, headers=self._headers())
        offset = int(args.get("offset", "0"))
        if offset in self.page_failures:
            status = self.page_failures.pop(offset)
            if status == 429:
                self.throttled += 1
                return web.json_response({"error": "You have exceeded your quota"}, status=429,
                                         headers={"retry-after": "1"})  # fmt: skip
            return web.json_response({"error": "scripted failure"}, status=status, headers=self._headers())
        found = [r for r in self.receipts.values() if _receipt_matches(r, args)]
        key = RECEIPT_SORTS[args.get("sort_on", "created")]
        found.sort(key=lambda r: (r[key], r["receipt_id"]), reverse=ORDERS[args.get("sort_order", "desc")])
        limit = min(int(args.get("limit", "25")), self.page_limit)
        return web.json_response(
            {"count": len(found), "results": found[offset : offset + limit]}, headers=self._headers()
        )

    def _listing(self, request: web.Request) -> int | None:
        raw = request.match_info["listing_id"]
        return int(raw) if raw.isdigit() and int(raw) in self.inventories else None

    async def get_inventory(self, request: web.Request) -> web.Response:
        refused = self._gate(request)
        if refused is not None:
            return refused
        listing = self._listing(request)
        if listing is None:
            return web.json_response({"error": "Listing not found"}, status=404, headers=self._headers())
        return web.json_response(self.inventories[listing], headers=self._headers())

    async def batch_inventory(self, request: web.Request) -> web.Response:
        refused = self._gate(request)
        if refused is not None:
            return refused
        raw = [part for part in query(request).get("listing_ids", "").split(",") if part]
        if not raw or len(raw) > 100 or not all(part.strip().isdigit() for part in raw):
            return web.json_response(
                {"error": "listing_ids must be 1 to 100 listing ids"}, status=400, headers=self._headers()
            )
        ids = [int(part) for part in raw]
        missing = [i for i in ids if i not in self.inventories]
        if missing:
            return web.json_response({"error": f"Listing {missing[0]} not found"}, status=404, headers=self._headers())
        results = [
            {"listing_id": i, "shop_id": self.shop_id, "state": self.states[i], "inventory": self.inventories[i]}
            for i in ids
        ]
        return web.json_response({"count": len(results), "results": results}, headers=self._headers())

    async def put_inventory(self, request: web.Request) -> web.Response:
        refused = self._gate(request)
        if refused is not None:
            return refused
        listing = self._listing(request)
        if listing is None:
            return web.json_response({"error": "Listing not found"}, status=404, headers=self._headers())
        body = await request.json()
        problem = self._check(body)
        if problem:
            return web.json_response({"error": problem}, status=400, headers=self._headers())
        self.inventories[listing] = self._stored(body)
        return web.json_response(self.inventories[listing], headers=self._headers())

    def _check(self, body: Any) -> str | None:
        if not isinstance(body, dict) or not isinstance(body.get("products"), list) or not body["products"]:
            return "products is required"
        quantities = set()
        for product in body["products"]:
            offerings = product.get("offerings")
            if not isinstance(offerings, list) or not offerings:
                return "each product needs offerings"
            for offering in offerings:
                if not all(key in offering for key in ("price", "quantity", "is_enabled")):
                    return "each offering needs price, quantity and is_enabled"
                if not 0 <= int(offering["quantity"]) <= 999:
                    return "quantity must be between 0 and 999"
                quantities.add(int(offering["quantity"]))
        if len(quantities) > 1 and not body.get("quantity_on_property"):
            return "quantities differ but quantity_on_property is empty"
        return None

    def _stored(self, body: dict[str, Any]) -> dict[str, Any]:
        """What a GET returns after the PUT: new product and offering ids, prices as Money."""
        products = []
        for product in body["products"]:
            products.append(
                {
                    "product_id": self._id(),
                    "sku": product.get("sku"),
                    "is_deleted": False,
                    "offerings": [
                        {
                            "offering_id": self._id(),
                            "quantity": int(o["quantity"]),
                            "is_enabled": bool(o["is_enabled"]),
                            "is_deleted": False,
                            "price": {"amount": round(float(o["price"]) * 100), "divisor": 100, "currency_code": "EUR"},
                        }
                        for o in product["offerings"]
                    ],
                    "property_values": [{**v, "scale_name": None} for v in product.get("property_values") or []],
                }
            )
        return {
            "products": products,
            "price_on_property": body.get("price_on_property") or [],
            "quantity_on_property": body.get("quantity_on_property") or [],
            "sku_on_property": body.get("sku_on_property") or [],
            "listing": None,
        }


def _receipts_problem(args: dict[str, str]) -> str | None:
    """What is wrong with a getShopReceipts query, as Etsy's 400 says it, or None."""
    known = {"limit", "offset", "sort_on", "sort_order", "was_paid", "was_shipped", "was_delivered", "was_canceled"}
    stamps = {"min_created", "max_created", "min_last_modified", "max_last_modified"}
    for name, value in args.items():
        if name not in known | stamps:
            return f"Unknown parameter {name}"
        if name in stamps and not (value.isdigit() and int(value) >= EARLIEST):
            return f"Expected int >= {EARLIEST} for {name}"
        if name.startswith("was_") and value not in ("true", "false"):
            return f"Expected a boolean for {name}"
    if not args.get("limit", "25").isdigit() or not 1 <= int(args.get("limit", "25")) <= 100:
        return "Expected int between 1 and 100 for limit"
    if not args.get("offset", "0").isdigit():
        return "Expected int >= 0 for offset"
    if args.get("sort_on", "created") not in RECEIPT_SORTS:
        return "sort_on must be one of created, updated, receipt_id"
    if args.get("sort_order", "desc") not in ORDERS:
        return "sort_order must be one of asc, ascending, desc, descending, up, down"
    return None


def _receipt_matches(receipt: dict[str, Any], args: dict[str, str]) -> bool:
    bounds = (
        ("min_created", "create_timestamp", 1), ("max_created", "create_timestamp", -1),
        ("min_last_modified", "update_timestamp", 1), ("max_last_modified", "update_timestamp", -1),
    )  # fmt: skip
    for name, field, sign in bounds:
        if name in args and (receipt[field] - int(args[name])) * sign < 0:
            return False
    canceled = receipt["status"] == "canceled"
    if (args.get("was_canceled", "false") == "true") != canceled:
        return False
    if "was_paid" in args and (args["was_paid"] == "true") != receipt["is_paid"]:
        return False
    return "was_shipped" not in args or (args["was_shipped"] == "true") == receipt["is_shipped"]
