"""TikTok Shop (Partner API 202309): one signed inventory update per product, every warehouse of each SKU.

``POST /product/202309/products/{product_id}/inventory/update`` with ``{skus: [{id, inventory:
[{warehouse_id, quantity}]}]}``: all SKUs of one product that the batch changes go in one call (TikTok
refuses SKUs of another product), and each SKU lists every warehouse it is stocked in. A SKU in one
warehouse gets the shop's quantity there; a SKU in several gets it in ``account.warehouse_id`` while
the others keep what TikTok shows (read fresh, ``GET /product/202309/products/{id}``, just before).

Seller SKU → (product id, SKU id, warehouses) comes from ``POST /product/202309/products/search``
(100 products a page), scanned once and cached; a SKU still unknown after a rescan (at most every
five minutes) is a permanent error naming the shop. When TikTok says the cached product is gone (12052048)
or the SKU is not in it (12052230), the seller moved it: the mapping is dropped and the SKU retried after a
rescan; only a second refusal in a row dead-letters it.

Every call carries ``app_key``, ``timestamp``, ``shop_cipher`` and ``sign`` (tiktok_sign) in the
query and ``x-tts-access-token``. Tokens: ``GET {auth}/api/v2/token/refresh``; the expiries it returns
are Unix timestamps, not durations. TikTok publishes no rate limit: the budget starts at ``rate``
(default 10/s) and halves on a throttle.

Answers (body ``{code, message, request_id, data}``; ``code`` 0 is success): HTTP 401 → refresh the
token once, then pause (code 106001, a bad signature, pauses at once: wrong app secret or clock);
HTTP 429 → retry slower; 5xx → retry; any other non-zero ``code`` → dead letter for the product's
SKUs in the call; ``data.errors`` with a ``sku_id`` → dead letter for that SKU only.

Read-back: Get Product (``GET /product/202309/products/{id}``, signed) once per product of the cached
SKUs, 50 SKUs per read. The quantity is the one a push writes: the SKU's only warehouse, or
``account.warehouse_id`` when it is stocked in several; the sum over its warehouses only when it is in
several and no ``warehouse_id`` is set (a push refuses such a SKU). When a SKU is not cached and a rescan
is due, the rescan itself (product search, its pages in ``read_cost``, waiting for the budget as they
go) gives every quantity, with no Get Product. None: no product of the shop has the seller SKU. A
product gone (12052048) or no longer holding the SKU drops the mapping and fails the read as transient;
the next read rescans.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..config import ChannelConfig
from ..errors import AuthDeliveryError, DeliveryError, PermanentDeliveryError, TransientDeliveryError
from ..vault import Vault
from . import http
from .base import Connector, ItemResult, TokenAuth, Update
from .tiktok_sign import sign

AUTH_BASE = "https://auth.tiktok-shops.com"
PAGE = 100
RESCAN_SECONDS = 300.0
MAX_QUANTITY = 99_999
BAD_SIGNATURE = 106001
PRODUCT_GONE = 12052048  # "Product does not exist.": the product our cached mapping names was deleted
SKU_NOT_IN_PRODUCT = 12052230  # "The SKU does not belong to this product.": the seller moved the SKU
CONCURRENCY = 8
READ_BATCH = 50  # seller SKUs per read: at most one Get Product each


class MovedError(PermanentDeliveryError):
    """The product a cached mapping points at is gone: permanent for that product id, not for the SKU."""


@dataclass
class Listing:
    """Where a seller SKU lives on TikTok: its product, its own id and the warehouses stocking it."""

    product_id: str
    sku_id: str
    warehouses: dict[str, int]  # warehouse id → quantity, as last read


class TikTokConnector(Connector):
    type = "tiktok"
    account_keys = ()
    read_batch_size = READ_BATCH

    def __init__(
        self, site: str, config: ChannelConfig, session: aiohttp.ClientSession, vault: Vault | None = None
    ) -> None:
        super().__init__(site, config, session, vault)
        self.base = (config.api_base or "https://open-api.tiktokglobalshop.com").rstrip("/")
        self.auth_base = (config.account.get("auth_base") or AUTH_BASE).rstrip("/")
        self.shop_cipher = config.account.get("shop_cipher", "")
        self.warehouse_id = config.account.get("warehouse_id", "")
        self.listings: dict[str, Listing] = {}
        self.scanned_at = float("-inf")
        self.scan_pages = 1  # pages the last product search read: what a read expects the next one to take
        self.auth = TokenAuth(self._fetch_token)
        self._app_key = ""
        self._app_secret = ""
        self._secrets: set[str] = set()
        self._looked_up_again: set[str] = set()  # seller SKUs whose mapping went stale once and were re-read

    def cost(self, updates: Sequence[Update]) -> float:
        return 0.0  # one call per product (and perhaps a read): push charges each as it makes it

    # --- auth -----------------------------------------------------------------------------------------------

    async def _fetch_token(self) -> tuple[str, float]:
        creds = await http.load_credentials(self.credentials, ("app_key", "app_secret", "refresh_token"), "TikTok Shop")
        self._secrets.update(v for v in creds.values() if v)
        self._app_key, self._app_secret = creds["app_key"], creds["app_secret"]
        params = {
            "app_key": creds["app_key"],
            "app_secret": creds["app_secret"],
            "refresh_token": creds["refresh_token"],
            "grant_type": "refresh_token",
        }
        answer = await http.send(
            self.session,
            "GET",
            f"{self.auth_base}/api/v2/token/refresh",
            timeout=self.config.timeout_seconds,
            what="TikTok Shop's token endpoint",
            params=params,
        )
        doc = answer.json() if isinstance(answer.json(), dict) else {}
        data = doc.get("data") or {}
        snippet = http.scrub(answer.text, self._secrets)
        if answer.status == 429 or answer.status >= 500:
            raise TransientDeliveryError(
                f"TikTok Shop's token endpoint answered {answer.status}", answer.retry_after, http_status=answer.status
            )
        if answer.status != 200 or doc.get("code") != 0 or not data.get("access_token"):
            raise AuthDeliveryError(
                f"TikTok Shop refused to refresh the access token (code {doc.get('code')}:"
                f" {http.scrub(str(doc.get('message') or answer.status), self._secrets)});"
                " authorize the shop again and store the new refresh token (stock-relay credentials set)",
                http_status=answer.status,
                excerpt=snippet,
            )
        token = str(data["access_token"])
        self._secrets.add(token)
        new_refresh = str(data.get("refresh_token") or "")
        if new_refresh and new_refresh != creds["refresh_token"]:
            self._secrets.add(new_refresh)
            await self.credentials.save({**creds, "refresh_token": new_refresh})
        try:  # a Unix timestamp, not a duration
            expires_at = float(data.get("access_token_expire_in") or 0)
        except (TypeError, ValueError):
            expires_at = 0.0
        lifetime = expires_at - time.time() if expires_at > 0 else 3600.0
        return token, max(lifetime, 60.0)

    # --- one signed call ----------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        charged: bool = False,
    ) -> Any:
        """One signed call, charged unless the caller ``charged`` it already; returns ``data`` of a ``code: 0``
        answer or raises the classified error."""
        payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        if not self.shop_cipher and not path.startswith("/authorization/"):
            await self._find_shop_cipher()
        token = await self.auth.token()  # before the budget: a call that waited for a token must not burst
        if not charged:
            await self.budget.acquire(1.0)

        async def call(token: str) -> http.Answer:
            params = {**(query or {}), "app_key": self._app_key, "timestamp": str(int(time.time()))}
            if self.shop_cipher and not path.startswith("/authorization/"):
                params["shop_cipher"] = self.shop_cipher
            params["sign"] = sign(self._app_secret, path, params, payload)
            headers = {"x-tts-access-token": token, "Content-Type": "application/json"}
            return await http.send(
                self.session,
                method,
                f"{self.base}{path}",
                timeout=self.config.timeout_seconds,
                what="TikTok Shop",
                headers=headers,
                params=params,
                data=payload if body is not None else None,
            )

        answer = await call(token)
        if answer.status == 401 and self._code(answer) != BAD_SIGNATURE:
            self.auth.invalidate(token)
            answer = await call(await self.auth.token())
        doc = answer.json() if isinstance(answer.json(), dict) else {}
        code, message = doc.get("code"), http.scrub(str(doc.get("message") or ""), self._secrets)
        snippet = http.scrub(answer.text, self._secrets)
        if answer.status == 401:
            hint = (
                "check the app secret and the server's clock" if code == BAD_SIGNATURE else "authorize the shop again"
            )
            raise AuthDeliveryError(
                f"TikTok Shop refused the request (401, code {code}: {message}); {hint}",
                http_status=401,
                excerpt=snippet,
            )
        if answer.status == 429:
            wait = answer.retry_after or max(1.0, 1.0 / self.budget.rate)
            self.budget.throttled(wait)
            raise TransientDeliveryError(
                f"TikTok Shop throttled the call (429, code {code})", wait, http_status=429, excerpt=snippet
            )
        if answer.status >= 500 or not doc:
            raise TransientDeliveryError(
                f"TikTok Shop answered {answer.status} (code {code})",
                answer.retry_after,
                http_status=answer.status,
                excerpt=snippet,
            )
        if code != 0:
            error = MovedError if code == PRODUCT_GONE else PermanentDeliveryError
            raise error(
                f"TikTok Shop refused the request (code {code}: {message})", http_status=answer.status, excerpt=snippet
            )
        self.budget.succeeded()
        return doc.get("data") or {}

    @staticmethod
    def _code(answer: http.Answer) -> Any:
        doc = answer.json()
        return doc.get("code") if isinstance(doc, dict) else None

    async def _find_shop_cipher(self) -> None:
        """``account.shop_cipher`` left out: take it from the authorized shops (``shop_id`` picks one of several)."""
        data = await self._call("GET", "/authorization/202309/shops")
        shops = [s for s in data.get("shops") or [] if isinstance(s, dict)]
        wanted = self.config.account.get("shop_id")
        chosen = [s for s in shops if not wanted or str(s.get("id")) == wanted]
        if len(chosen) != 1 or not chosen[0].get("cipher"):
            raise AuthDeliveryError(
                f"TikTok Shop authorized {len(shops)} shop(s) for this app; set account.shop_cipher"
                " (or account.shop_id) to the one to update"
            )
        self.shop_cipher = str(chosen[0]["cipher"])

    # --- seller SKU → TikTok ids -----------------------------------------------------------------------------

    async def _scan(self) -> set[str]:
        """Read every product of the shop into the mapping; returns the seller SKUs seen."""
        self.scanned_at = time.monotonic()
        token = ""
        seen: set[str] = set()
        pages = 0
        while True:
            query = {"page_size": str(PAGE), **({"page_token": token} if token else {})}
            pages += 1
            data = await self._call("POST", "/product/202309/products/search", {}, query)
            for product in data.get("products") or []:
                seen.update(self._remember(product))
            token = str(data.get("next_page_token") or "")
            if not token:
                break
        self.scan_pages = pages
        return seen

    def _remember(self, product: Mapping[str, Any]) -> list[str]:
        """Map the product's seller SKUs (with their warehouses' quantities); returns them."""
        remembered = []
        for sku in product.get("skus") or []:
            seller_sku = sku.get("seller_sku")
            if seller_sku:
                warehouses = {str(i["warehouse_id"]): int(i.get("quantity") or 0) for i in sku.get("inventory") or []}
                self.listings[str(seller_sku)] = Listing(str(product["id"]), str(sku["id"]), warehouses)
                remembered.append(str(seller_sku))
        return remembered

    def _scan_due(self, skus: Sequence[str]) -> bool:
        return any(s not in self.listings for s in skus) and time.monotonic() - self.scanned_at >= RESCAN_SECONDS

    async def _resolve(self, skus: Sequence[str]) -> None:
        if self._scan_due(skus):
            await self._scan()

    # --- the write -----------------------------------------------------------------------------------------------

    async def push(self, updates: Sequence[Update]) -> Mapping[str, ItemResult]:
        if not self._app_secret:
            await self.auth.token()  # loads the app key and secret the signature needs
        await self._resolve([u.channel_sku for u in updates])
        results: dict[str, ItemResult] = {}
        by_product: dict[str, list[Update]] = {}
        for u in updates:
            listing = self.listings.get(u.channel_sku)
            if listing is None:
                shop = self.config.account.get("shop_id") or self.shop_cipher
                results[u.sku] = ItemResult(
                    PermanentDeliveryError(f"SKU {u.channel_sku} is not listed on TikTok Shop {shop}")
                )
            else:
                by_product.setdefault(listing.product_id, []).append(u)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(product_id: str, group: list[Update]) -> None:
            async with gate:
                try:
                    results.update(await self._update_product(product_id, group))
                except AuthDeliveryError:
                    raise
                except MovedError as exc:
                    results.update({u.sku: self._moved(u, str(exc), exc.http_status) for u in group})
                except DeliveryError as exc:
                    results.update({u.sku: ItemResult(exc, exc.http_status, exc.excerpt) for u in group})

        await asyncio.gather(*(one(p, g) for p, g in by_product.items()))
        return results

    def _moved(self, u: Update, reason: str, status: int | None) -> ItemResult:
        """The cached product of ``u`` is stale (deleted, or the seller moved the SKU to another product): forget
        it and look it up again on the retry; only a SKU that is still refused after that is dead-lettered."""
        if u.channel_sku in self._looked_up_again:
            self._looked_up_again.discard(u.channel_sku)
            error: DeliveryError = PermanentDeliveryError(f"TikTok Shop refused SKU {u.channel_sku}: {reason}")
        else:
            self._looked_up_again.add(u.channel_sku)
            self.listings.pop(u.channel_sku, None)
            self.scanned_at = float("-inf")  # the next push rescans, whatever the rescan interval
            error = TransientDeliveryError(
                f"SKU {u.channel_sku} is no longer where TikTok Shop had it ({reason}); looking it up again"
            )
        return ItemResult(error, status, reason)

    def _target(self, warehouses: Mapping[str, int]) -> str | None:
        """The warehouse a push writes the shop's quantity to: the only one, or account.warehouse_id among several."""
        if len(warehouses) <= 1:
            return next(iter(warehouses), self.warehouse_id)
        return self.warehouse_id if self.warehouse_id in warehouses else None

    def inventory_body(self, group: Sequence[Update]) -> tuple[dict[str, Any], dict[str, str]]:
        """The update body for one product's SKUs, and per shop SKU a reason it cannot be sent (if any)."""
        skus, refused = [], {}
        for u in group:
            listing = self.listings[u.channel_sku]
            quantity = max(0, min(MAX_QUANTITY, u.quantity))
            warehouses = listing.warehouses
            target = self._target(warehouses)
            if target is None:
                refused[u.sku] = (
                    f"SKU {u.channel_sku} is stocked in {len(warehouses)} TikTok warehouses; set account.warehouse_id"
                    " to the one the shop's stock is in"
                )
                continue
            inventory = [{"warehouse_id": w, "quantity": quantity if w == target else q} for w, q in warehouses.items()]
            if not inventory:  # a single-warehouse shop: TikTok takes the quantity without a warehouse id
                inventory = [{"quantity": quantity}]
            skus.append({"id": listing.sku_id, "inventory": inventory})
        return {"skus": skus}, refused

    async def _update_product(self, product_id: str, group: list[Update]) -> dict[str, ItemResult]:
        if any(len(self.listings[u.channel_sku].warehouses) > 1 for u in group):
            product = await self._call("GET", f"/product/202309/products/{product_id}")
            self._remember({**product, "id": product_id})  # the other warehouses' quantities, fresh
        body, refused = self.inventory_body(group)
        results = {sku: ItemResult(PermanentDeliveryError(reason)) for sku, reason in refused.items()}
        if not body["skus"]:
            return results
        data = await self._call("POST", f"/product/202309/products/{product_id}/inventory/update", body)
        failed: dict[str, str] = {}
        whole = ""  # an error naming no SKU is about all of them
        for error in data.get("errors") or []:
            if not isinstance(error, dict):
                continue
            detail: dict[str, Any] = error["detail"] if isinstance(error.get("detail"), dict) else {}
            text = f"{error.get('code')}: {error.get('message')}"
            if detail.get("sku_id"):
                failed[str(detail["sku_id"])] = text
            else:
                whole = whole or text
        for u in group:
            if u.sku in results:
                continue
            listing = self.listings[u.channel_sku]
            reason = failed.get(listing.sku_id) or whole or None
            if reason is None:
                self._looked_up_again.discard(u.channel_sku)
                results[u.sku] = ItemResult(None, 200)
            elif reason.startswith(f"{SKU_NOT_IN_PRODUCT}:"):
                results[u.sku] = self._moved(u, http.scrub(reason, self._secrets), 200)
            else:
                text = http.scrub(reason, self._secrets)
                error = PermanentDeliveryError(f"TikTok Shop refused SKU {u.channel_sku}: {text}", http_status=200)
                results[u.sku] = ItemResult(error, 200, text)
        return results

    # --- read-back -------------------------------------------------------------------------------------------

    def read_cost(self, channel_skus: Sequence[str]) -> float:
        """The shop cipher lookup if not known yet, then a rescan's pages when one is due, else a Get Product per
        product of the cached SKUs."""
        lookups = 0 if self.shop_cipher else 1
        if self._scan_due(channel_skus):
            return float(lookups + self.scan_pages)
        return float(lookups + len({self.listings[s].product_id for s in channel_skus if s in self.listings}))

    def shown(self, listing: Listing) -> int:
        """What a read reports: the quantity in the warehouse a push writes (the sum when a push has none)."""
        target = self._target(listing.warehouses)
        return sum(listing.warehouses.values()) if target is None else listing.warehouses.get(target, 0)

    async def read(self, channel_skus: Sequence[str]) -> Mapping[str, int | None]:
        if not self._app_secret:
            await self.auth.token()  # loads the app key and secret the signature needs
        if self._scan_due(channel_skus):
            seen = await self._scan()  # every product's SKUs and warehouses, fresh: nothing more to read
            for sku in channel_skus:
                if sku not in seen:
                    self.listings.pop(sku, None)
        else:
            await self._read_products(channel_skus)
        return {s: self.shown(self.listings[s]) if s in self.listings else None for s in channel_skus}

    async def _read_products(self, channel_skus: Sequence[str]) -> None:
        """Get Product for each product of the cached SKUs (charged by the caller), refreshing their mapping."""
        by_product: dict[str, list[str]] = {}
        for sku in dict.fromkeys(channel_skus):
            if sku in self.listings:
                by_product.setdefault(self.listings[sku].product_id, []).append(sku)
        gate = asyncio.Semaphore(CONCURRENCY)
        stale: list[str] = []

        async def one(product_id: str, skus: list[str]) -> None:
            async with gate:
                try:
                    product = await self._call("GET", f"/product/202309/products/{product_id}", charged=True)
                except MovedError:
                    stale.extend(skus)
                    return
                held = self._remember({**product, "id": product_id})
                stale.extend(s for s in skus if s not in held)

        tasks = [asyncio.ensure_future(one(p, g)) for p, g in by_product.items()]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
        if stale:
            for sku in stale:
                self.listings.pop(sku, None)
            self.scanned_at = float("-inf")  # the next read (or push) rescans, whatever the rescan interval
            raise TransientDeliveryError(
                f"SKU {stale[0]} is no longer where TikTok Shop had it; it will be looked up again"
            )
