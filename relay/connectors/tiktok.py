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

Every call is signed (``app_key``, ``timestamp``, ``shop_cipher``, ``sign``) and sent by
``tiktok_api.TikTokApi``, which also refreshes the token and judges each answer. TikTok publishes no
rate limit: the budget starts at ``rate`` (default 10/s) and halves on a throttle.

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

Sales (relay/intake/sweep.py, and the order webhook of relay/intake/tiktok.py): Get Order List, ``POST
/order/202309/orders/search`` (100 orders a page, ``sort_field=update_time``, body ``update_time_ge``/
``update_time_lt`` in Unix seconds, paged by ``page_token`` while the answer has ``next_page_token``), and for a
webhook Get Order Detail, ``GET /order/202309/orders?ids=``. In 202309 a line item is one unit (it has no
quantity): each is a sale ``<channel>:<order id>:<line item id>`` of 1, the SKU its ``seller_sku`` mapped back
through ``rules.sku_map``. An order ``CANCELLED`` (or a line whose ``display_status`` is, after a partial
cancellation) also gives ``…:cancel`` with ``restock_on_cancel``. UNPAID orders count: TikTok reserves the stock
when the order is placed and gives it back when an unpaid order is cancelled, which then restocks the shop too.
Only orders whose ``fulfillment_type`` is in ``fulfillment_services`` (default FULFILLMENT_BY_SELLER) are sales
of the shop's stock; Fulfilled by TikTok ships from TikTok's warehouses.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..config import TYPE_DEFAULTS, ChannelConfig
from ..errors import AuthDeliveryError, DeliveryError, MovedError, PermanentDeliveryError, TransientDeliveryError
from ..intake.sales import Sale, SaleRejection, shop_sku_for, validate_item
from ..vault import Vault
from . import http
from .base import Connector, ItemResult, Update
from .tiktok_api import TikTokApi

AUTH_BASE = "https://auth.tiktok-shops.com"
PAGE = 100
RESCAN_SECONDS = 300.0
MAX_QUANTITY = 99_999
SKU_NOT_IN_PRODUCT = 12052230  # "The SKU does not belong to this product.": the seller moved the SKU
DEFAULT_RATE = TYPE_DEFAULTS["tiktok"][1]  # the rate batch_size is sized for (see Connector.rate_scaled_batch)
CONCURRENCY = 8  # products updated (or read) at once at most; never more than the budget's burst
READ_BATCH = 50  # seller SKUs per read: at most one Get Product each
ORDERS_SEARCH = "/order/202309/orders/search"  # Get Order List
ORDER_DETAIL = "/order/202309/orders"  # Get Order Detail (?ids=, up to 50)
ORDERS_PAGE = 100  # Get Order List's largest page_size
CANCELLED = "CANCELLED"  # an order's status, or a line item's display_status after a partial cancellation
SELLER_FULFILLED = "FULFILLMENT_BY_SELLER"  # what an order without fulfillment_type is taken to be


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
    lists_sales = True

    def __init__(
        self, site: str, config: ChannelConfig, session: aiohttp.ClientSession, vault: Vault | None = None
    ) -> None:
        super().__init__(site, config, session, vault)
        self.base = (config.api_base or "https://open-api.tiktokglobalshop.com").rstrip("/")
        self.auth_base = (config.account.get("auth_base") or AUTH_BASE).rstrip("/")
        self.warehouse_id = config.account.get("warehouse_id", "")
        self.listings: dict[str, Listing] = {}
        self.scanned_at = float("-inf")
        self.scan_pages = 1  # pages the last product search read: what a read expects the next one to take
        self.api = TikTokApi(
            session, self.base, self.auth_base, config.account, self.credentials, self.budget, config.timeout_seconds
        )
        self.auth = self.api.auth
        self._looked_up_again: set[str] = set()  # seller SKUs whose mapping went stale once and were re-read

    @property
    def shop_cipher(self) -> str:
        return self.api.shop_cipher

    @property
    def batch_size(self) -> int:
        return self.rate_scaled_batch(DEFAULT_RATE)

    def concurrency(self) -> int:
        """Product calls in flight at once (``Connector.in_flight``)."""
        return self.in_flight(CONCURRENCY)

    def cost(self, updates: Sequence[Update]) -> float:
        return 0.0  # one call per product (and perhaps a read): push charges each as it makes it

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
            data = await self.api.call("POST", "/product/202309/products/search", {}, query)
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
        await self.api.ready()
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
        gate = asyncio.Semaphore(self.concurrency())

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
            product = await self.api.call("GET", f"/product/202309/products/{product_id}")
            self._remember({**product, "id": product_id})  # the other warehouses' quantities, fresh
        body, refused = self.inventory_body(group)
        results = {sku: ItemResult(PermanentDeliveryError(reason)) for sku, reason in refused.items()}
        if not body["skus"]:
            return results
        data = await self.api.call("POST", f"/product/202309/products/{product_id}/inventory/update", body)
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
                results[u.sku] = self._moved(u, http.scrub(reason, self.api.secrets), 200)
            else:
                text = http.scrub(reason, self.api.secrets)
                error = PermanentDeliveryError(f"TikTok Shop refused SKU {u.channel_sku}: {text}", http_status=200)
                results[u.sku] = ItemResult(error, 200, text)
        return results

    # --- sales ---------------------------------------------------------------------------------------------------

    async def sales_since(
        self, since: dt.datetime, gate: Callable[[], Awaitable[None]]
    ) -> tuple[list[Sale], list[SaleRejection]]:
        # The upper bound holds the window still while its pages are read: an order updated meanwhile moves past
        # it (sorted by update_time) instead of shifting the pages, and the next poll's window holds it.
        body = {"update_time_ge": int(since.timestamp()), "update_time_lt": int(time.time()) + 1}
        sales: list[Sale] = []
        skipped: list[SaleRejection] = []
        token = ""
        while True:
            await gate()
            query = {"page_size": str(ORDERS_PAGE), "sort_field": "update_time", "sort_order": "ASC"}
            if token:
                query["page_token"] = token
            data = await self.api.call("POST", ORDERS_SEARCH, body, query, charged=True)
            orders = data.get("orders") if isinstance(data, dict) else None
            if not isinstance(orders or [], list):
                raise PermanentDeliveryError("TikTok Shop's order list answer has no list of orders", http_status=200)
            for order in orders or []:
                if isinstance(order, dict):
                    self._order_sales(order, sales, skipped)
            token = str(data.get("next_page_token") or "")
            if not token or not orders:
                return sales, skipped

    async def order_sales(self, order_id: str) -> tuple[list[Sale], list[SaleRejection]]:
        """One order's sales, read with Get Order Detail (a webhook names the order, not its lines); charged to
        the budget like a push. Raises a DeliveryError when TikTok cannot answer, or does not know the order."""
        data = await self.api.call("GET", ORDER_DETAIL, None, {"ids": order_id})
        orders = data.get("orders") if isinstance(data, dict) else None
        found = [o for o in orders or [] if isinstance(o, dict) and str(o.get("id")) == order_id]
        if not found:
            raise TransientDeliveryError(f"TikTok Shop's order detail did not include order {order_id}")
        sales: list[Sale] = []
        skipped: list[SaleRejection] = []
        self._order_sales(found[0], sales, skipped)
        return sales, skipped

    def _order_sales(self, order: dict[str, Any], sales: list[Sale], skipped: list[SaleRejection]) -> None:
        """An order's line items (one unit each) as sales and, cancelled, cancellations of the shop's SKU; or why
        a line is no sale of the shop's stock."""
        order_id = order.get("id")
        fulfilled_by = str(order.get("fulfillment_type") or SELLER_FULFILLED)
        for index, line in enumerate(order.get("line_items") or []):
            if not isinstance(line, dict):
                continue
            line_id = line.get("id")
            named = (str(order_id) if order_id else None, str(line_id) if line_id else None)
            if fulfilled_by not in self.config.fulfillment_services:
                message = f"fulfilled by {fulfilled_by[:64]!r}, which ships its own stock"
                skipped.append(SaleRejection(index, *named, "fulfilled_elsewhere", message))
                continue
            seller_sku = line.get("seller_sku")
            if not isinstance(seller_sku, str) or not seller_sku.strip():
                skipped.append(SaleRejection(index, *named, "no_sku", "the line has no seller SKU"))
                continue
            sku = shop_sku_for(self.config, seller_sku)
            if sku is None:
                message = f"seller SKU {seller_sku[:100]!r} is no shop SKU of this channel (rules.sku_map)"
                skipped.append(SaleRejection(index, *named, "unmapped_sku", message))
                continue
            cancelled = CANCELLED in (order.get("status"), line.get("display_status"))
            kinds = ("sale", "cancel") if cancelled and self.config.restock_on_cancel else ("sale",)
            for kind in kinds:
                item = {"order": order_id, "line": line_id, "sku": sku, "quantity": 1, "kind": kind}
                found = validate_item(item, index, self.name)
                if isinstance(found, Sale):
                    sales.append(found)
                else:
                    skipped.append(found)

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
        await self.api.ready()
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
        gate = asyncio.Semaphore(self.concurrency())
        stale: list[str] = []

        async def one(product_id: str, skus: list[str]) -> None:
            async with gate:
                try:
                    product = await self.api.call("GET", f"/product/202309/products/{product_id}", charged=True)
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
