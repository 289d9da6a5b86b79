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
"""

from __future__ import annotations

import math
import time
from typing import Any

from aiohttp import web

from .common import Bucket, Clock, FakeMarketplace, TokenIssuer, Window, bearer, query

DAY = 86400.0


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
        super().__init__()

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v3/public/oauth/token", self.token)
        router.add_get("/v3/application/shops/{shop_id}/listings", self.shop_listings)
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
