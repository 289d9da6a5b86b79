"""Etsy: read-modify-write of a listing's whole inventory, one listing per call.

Etsy has no per-SKU quantity call: ``PUT /v3/application/listings/{listing_id}/inventory``
replaces every product of the listing. So for each listing the connector reads the inventory
(``GET`` the same path), changes only the offerings of the products whose SKU it was asked to set,
and writes everything back as read: other variations keep their quantities, prices, property
values and enabled flags. SKUs of one listing in the same batch share that one read and write.

SKU → listing comes from the shop's listings (``GET /v3/application/shops/{shop_id}/listings``,
100 per page, their ``skus``), scanned once and cached; a SKU still unknown after a rescan (at most
every few minutes) is a permanent error naming the shop.

Limits: 10 queries/s and 10,000 per rolling day per app (defaults; the developer portal shows an
app's own). Every call is charged to the budget, and ``x-remaining-this-second`` /
``x-remaining-today`` can only lower what it believes is left; a 429 honours ``retry-after``.
The day's quota spent (a success saying ``x-remaining-today: 0``, or a 429 whose ``retry-after`` is
longer than the one-second window the per-second limit works in) holds the whole channel
(``quota.py``): no call until the quota returns, the items stay pending. Etsy's day is a rolling
window, so after a success that spent it the relay cannot know when it returns: it probes once a
minute, and the 429 that probe gets says exactly how long to wait.

Answers: 401 → refresh once, then pause; 403 → pause; 429 and 5xx → retry; 400 and 404 → dead
letter (a 404 also forgets the cached listing, so a replay looks the SKU up again).

Read-back: ``GET /v3/application/listings/batch/inventory?listing_ids=…`` (up to 100 listings, one
call) for the listings of the cached SKU → listing map, each SKU's offering ``quantity``; 100 SKUs
per read. A SKU not in the map triggers the same rescan as a push (at most every few minutes); its
pages are in ``read_cost`` and, as in a push, wait for the budget as they go. None: no listing of the
shop has the SKU. Etsy answers 404 for the whole batch when one listing is gone, and a listing may no
longer hold a SKU: both drop the stale mappings and fail the read as transient, so the next read
rescans and answers.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp

from ..config import TYPE_DEFAULTS, ChannelConfig
from ..delivery import outbound
from ..delivery.outbound import Kind
from ..errors import AuthDeliveryError, DeliveryError, PermanentDeliveryError, QuotaHold, TransientDeliveryError
from ..intake.sales import Sale, SaleRejection, order_line
from ..vault import Vault
from . import http
from .base import Connector, ItemResult, TokenAuth, Update
from .quota import QuotaGate

PAGE = 100
RESCAN_SECONDS = 300.0
STATES = ("active", "sold_out", "inactive", "draft", "expired")
MAX_QUANTITY = 999  # Etsy's largest offering quantity
BATCH_READ = 100  # listing ids per batch inventory read
DEFAULT_RATE = TYPE_DEFAULTS["etsy"][1]  # the rate batch_size is sized for (see Connector.rate_scaled_batch)
QPS_WINDOW = 1.0  # the per-second limit's retry-after is at most this; a longer one means the day's quota
QUOTA_PROBE_SECONDS = 60.0  # how long to hold when a success spent the day's quota (Etsy says no retry-after then)
RECEIPTS_PAGE = 100  # getShopReceipts' largest limit
EARLIEST_FILTER = 946684800  # the smallest timestamp getShopReceipts' filters accept (2000-01-01)
LISTING_SCOPES = "listings_r and listings_w"


class EtsyConnector(Connector):
    type = "etsy"
    account_keys = ("shop_id",)
    read_batch_size = BATCH_READ
    lists_sales = True

    def __init__(
        self, site: str, config: ChannelConfig, session: aiohttp.ClientSession, vault: Vault | None = None
    ) -> None:
        super().__init__(site, config, session, vault)
        self.base = (config.api_base or "https://api.etsy.com").rstrip("/")
        self.shop_id = config.account.get("shop_id", "")
        self.listings: dict[str, int] = {}  # channel SKU → listing id
        self.scanned_at = float("-inf")
        self.scan_pages = len(STATES)  # pages the last scan read: what a read expects the next one to take
        self.auth = TokenAuth(self._fetch_token)
        self._api_key = ""
        self._secrets: set[str] = set()
        self.quota = QuotaGate()
        self.quota_probe_seconds = QUOTA_PROBE_SECONDS

    def hold(self) -> QuotaHold | None:
        return self.quota.active()

    @property
    def batch_size(self) -> int:
        return self.rate_scaled_batch(DEFAULT_RATE)

    def cost(self, updates: Sequence[Update]) -> float:
        return 0.0  # a read and a write per listing: push charges each call as it makes it

    async def _fetch_token(self) -> tuple[str, float]:
        creds = await http.load_credentials(self.credentials, ("keystring", "refresh_token"), "Etsy")
        self._secrets.update(v for v in creds.values() if v)
        # Etsy now wants "keystring:shared_secret" in x-api-key; older apps send the keystring alone.
        secret = creds.get("shared_secret")
        self._api_key = f"{creds['keystring']}:{secret}" if secret else creds["keystring"]
        form = {"grant_type": "refresh_token", "client_id": creds["keystring"], "refresh_token": creds["refresh_token"]}
        doc = await http.token_grant(
            self.session, f"{self.base}/v3/public/oauth/token", form, what="Etsy", timeout=self.config.timeout_seconds
        )
        new_refresh = str(doc.get("refresh_token") or "")
        if new_refresh and new_refresh != creds["refresh_token"]:
            self._secrets.add(new_refresh)
            await self.credentials.save({**creds, "refresh_token": new_refresh})
        token = str(doc["access_token"])
        self._secrets.add(token)
        return token, http.lifetime(doc, 3600.0)

    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        charged: bool = False,
        scopes: str = LISTING_SCOPES,
    ) -> Any:
        """One call, charged unless the caller ``charged`` it already; returns the parsed body of a 2xx or raises
        the classified error (a 403 names ``scopes``, what the call needs)."""
        self.quota.check()  # the day's quota is spent: a call now would only be refused
        if not charged:
            await self.budget.acquire(1.0)
            self.quota.check()  # spent by a concurrent call while this one waited for the budget

        async def call(token: str) -> outbound.Answer:
            headers = {"x-api-key": self._api_key, "Authorization": f"Bearer {token}", "Accept": "application/json"}
            return await outbound.send(
                self.session,
                method,
                f"{self.base}{path}",
                timeout=self.config.timeout_seconds,
                what="Etsy",
                headers=headers,
                json_body=body,
                params=params,
            )

        answer = await http.with_token(self.auth, call, "Etsy")
        self._learn(answer)
        status, snippet = answer.status, http.scrub(answer.text, self._secrets)
        doc = answer.json()
        verdict = outbound.classify(answer)
        if verdict.kind is Kind.OK:
            self.budget.succeeded()
            if _remaining_today(answer) == 0:  # this call took the last one: hold before the next is refused
                self.quota.hold(
                    self.quota_probe_seconds,
                    "Etsy's daily quota of API calls is spent (x-remaining-today: 0); the channel is held and"
                    f" tries again in {self.quota_probe_seconds:g} s, nothing is lost",
                )
            return doc
        if verdict.kind is Kind.THROTTLED and _daily_quota_spent(answer):
            wait = verdict.retry_after or self.quota_probe_seconds
            raise self.quota.hold(
                wait,
                f"Etsy's daily quota of API calls is spent (429, retry-after {wait:g} s); the channel is held"
                " until it returns, nothing is lost",
            )
        message = str(doc.get("error") or "") if isinstance(doc, dict) else ""
        raise http.refusal(
            answer,
            verdict,
            "Etsy",
            snippet,
            budget=self.budget,
            auth=f"Etsy refused access ({status}: {message or 'forbidden'}); check the app's {scopes} scopes and shop",
            permanent=f"Etsy refused the request ({status}{': ' + message if message else ''})",
        )

    def _learn(self, answer: outbound.Answer) -> None:
        for name in ("x-remaining-this-second", "x-remaining-today"):
            value = answer.header(name)
            if value is not None and value.strip().lstrip("-").isdigit():
                self.budget.observe_remaining(float(value))

    # --- SKU → listing ------------------------------------------------------------------------

    async def _scan(self) -> None:
        """Read every listing of the shop, in every state a stocked product can be in, for its SKUs.

        Only a scan that read every page counts as done: one cut short (a 429, a quota hold) must not stop the
        next push from scanning again, or the SKUs it did not reach would be dead-lettered as not listed.
        """
        started = time.monotonic()
        pages = 0
        for state in STATES:
            offset = 0
            while True:
                params = {"state": state, "limit": str(PAGE), "offset": str(offset)}
                pages += 1
                doc = await self._call("GET", f"/v3/application/shops/{self.shop_id}/listings", params=params)
                results = (doc or {}).get("results") or []
                for listing in results:
                    for sku in listing.get("skus") or []:
                        self.listings[str(sku)] = int(listing["listing_id"])
                offset += PAGE
                if len(results) < PAGE or offset >= int((doc or {}).get("count") or 0):
                    break
        self.scanned_at = started
        self.scan_pages = pages

    def _scan_due(self, skus: Sequence[str]) -> bool:
        return any(s not in self.listings for s in skus) and time.monotonic() - self.scanned_at >= RESCAN_SECONDS

    async def _resolve(self, skus: Sequence[str]) -> None:
        if self._scan_due(skus):
            await self._scan()

    # --- the write ------------------------------------------------------------------------------

    def inventory_body(self, inventory: Mapping[str, Any], quantities: Mapping[str, int]) -> dict[str, Any]:
        """The PUT body: the listing's inventory as read, with ``quantities`` (SKU → quantity) applied."""
        products = []
        for product in inventory.get("products") or []:
            if product.get("is_deleted"):
                continue
            sku = product.get("sku")
            offerings = []
            for offering in product.get("offerings") or []:
                if offering.get("is_deleted"):
                    continue
                price = offering.get("price") or {}
                quantity = quantities.get(sku, offering.get("quantity", 0)) if sku else offering.get("quantity", 0)
                offerings.append(
                    {
                        "price": price.get("amount", 0) / (price.get("divisor") or 1),
                        "quantity": min(MAX_QUANTITY, int(quantity)),
                        "is_enabled": bool(offering.get("is_enabled", True)),
                    }
                )
            values = [
                {
                    key: value[key]
                    for key in ("property_id", "value_ids", "scale_id", "property_name", "values")
                    if key in value
                }
                for value in product.get("property_values") or []
            ]
            products.append({"sku": sku, "property_values": values, "offerings": offerings})
        return {
            "products": products,
            "price_on_property": list(inventory.get("price_on_property") or []),
            "quantity_on_property": list(inventory.get("quantity_on_property") or []),
            "sku_on_property": list(inventory.get("sku_on_property") or []),
        }

    async def push(self, updates: Sequence[Update]) -> Mapping[str, ItemResult]:
        await self._resolve([u.channel_sku for u in updates])
        results: dict[str, ItemResult] = {}
        by_listing: dict[int, list[Update]] = {}
        for u in updates:
            listing = self.listings.get(u.channel_sku)
            if listing is None:
                error = PermanentDeliveryError(f"SKU {u.channel_sku} is not listed on Etsy shop {self.shop_id}")
                results[u.sku] = ItemResult(error)
            else:
                by_listing.setdefault(listing, []).append(u)
        for listing, group in by_listing.items():
            try:
                await self._write_listing(listing, group)
                outcome = ItemResult(None, 200)
                results.update({u.sku: outcome for u in group})
            except AuthDeliveryError:
                raise
            except DeliveryError as exc:
                results.update({u.sku: ItemResult(exc, exc.http_status, exc.excerpt) for u in group})
        return results

    async def _write_listing(self, listing: int, group: Sequence[Update]) -> None:
        path = f"/v3/application/listings/{listing}/inventory"
        try:
            inventory = await self._call("GET", path)
        except PermanentDeliveryError as exc:
            if exc.http_status == 404:
                for u in group:
                    self.listings.pop(u.channel_sku, None)
            raise
        if not isinstance(inventory, dict):
            raise TransientDeliveryError(f"Etsy's inventory of listing {listing} was unreadable")
        skus = {p.get("sku") for p in inventory.get("products") or [] if not p.get("is_deleted")}
        absent = [u.channel_sku for u in group if u.channel_sku not in skus]
        if absent:  # the listing changed since the scan: look again next time
            for sku in absent:
                self.listings.pop(sku, None)
            raise TransientDeliveryError(
                f"listing {listing} no longer holds SKU {absent[0]}; it will be looked up again"
            )
        live = [p for p in inventory.get("products") or [] if not p.get("is_deleted")]
        if len(live) > 1 and not inventory.get("quantity_on_property"):
            wanted = {u.quantity for u in group}
            if len(group) < len(live) or len(wanted) > 1:
                raise PermanentDeliveryError(
                    f"Etsy listing {listing} keeps one quantity for all its variations, so SKU {group[0].channel_sku}"
                    " cannot have its own; turn on 'quantities vary' for the listing on Etsy"
                )
        body = self.inventory_body(inventory, {u.channel_sku: u.quantity for u in group})
        await self._call("PUT", path, body)

    # --- sales ---------------------------------------------------------------------------------------

    async def sales_since(
        self, since: dt.datetime, gate: Callable[[], Awaitable[None]]
    ) -> tuple[list[Sale], list[SaleRejection]]:
        stamp = max(EARLIEST_FILTER, math.floor(since.timestamp()))
        path = f"/v3/application/shops/{self.shop_id}/receipts"
        sales: list[Sale] = []
        skipped: list[SaleRejection] = []
        for canceled in (False, True):
            offset = 0
            while True:
                self.quota.check()  # the day's quota is spent: take no spare call for a call Etsy would refuse
                await gate()
                params = {
                    "min_last_modified": str(stamp),
                    "was_canceled": "true" if canceled else "false",
                    "sort_on": "created",
                    "sort_order": "desc",
                    "limit": str(RECEIPTS_PAGE),
                    "offset": str(offset),
                }
                doc = await self._call("GET", path, params=params, charged=True, scopes="transactions_r")
                receipts = doc.get("results") if isinstance(doc, dict) else None
                count = doc.get("count") if isinstance(doc, dict) else None
                if not isinstance(receipts, list) or isinstance(count, bool) or not isinstance(count, int):
                    raise TransientDeliveryError("Etsy's receipts answer had no results list or count")
                for receipt in receipts:
                    if isinstance(receipt, dict):
                        self._receipt_sales(receipt, canceled, sales, skipped)
                offset += len(receipts)
                if not receipts or offset >= count:
                    break
        return sales, skipped

    def _receipt_sales(
        self, receipt: dict[str, Any], canceled: bool, sales: list[Sale], skipped: list[SaleRejection]
    ) -> None:
        """A receipt's transactions as sales (and, canceled, as cancellations), with the shop's SKU."""
        canceled = canceled or receipt.get("status") == "canceled"
        kinds = ("sale", "cancel") if canceled and self.config.restock_on_cancel else ("sale",)
        order = _part(receipt.get("receipt_id"))
        for line in receipt.get("transactions") or []:
            if not isinstance(line, dict):
                continue
            sku = line.get("sku")
            if sku is None or sku == "":
                skipped.append(
                    SaleRejection(
                        0,
                        order,
                        _part(line.get("transaction_id")),
                        "no_sku",
                        f"Etsy transaction {line.get('transaction_id')} (listing {line.get('listing_id')}) has no SKU,"
                        " so the shop cannot tell which product was sold; give the listing's products SKUs on Etsy",
                    )
                )
                continue
            item = {"order": order, "line": _part(line.get("transaction_id")), "sku": sku}
            order_line(self.config, item | {"quantity": line.get("quantity")}, kinds, sales, skipped)

    # --- read-back -------------------------------------------------------------------------------------

    def read_cost(self, channel_skus: Sequence[str]) -> float:
        """One batch read per 100 listings (a listing per SKU at most), plus a rescan's pages when one is due."""
        reads = math.ceil(len(set(channel_skus)) / BATCH_READ)
        return float(reads + (self.scan_pages if self._scan_due(channel_skus) else 0))

    async def read(self, channel_skus: Sequence[str]) -> Mapping[str, int | None]:
        await self._resolve(channel_skus)
        listings = sorted({self.listings[s] for s in channel_skus if s in self.listings})
        shown: dict[tuple[int, str], int] = {}
        for start in range(0, len(listings), BATCH_READ):
            chunk = listings[start : start + BATCH_READ]
            shown.update(await self._read_listings(chunk, channel_skus))
        stale = [s for s in channel_skus if s in self.listings and (self.listings[s], s) not in shown]
        if stale:  # the listing no longer holds the SKU: look again on the next read
            self._forget(stale)
            raise TransientDeliveryError(f"Etsy listing no longer holds SKU {stale[0]}; it will be looked up again")
        return {s: shown.get((self.listings[s], s)) if s in self.listings else None for s in channel_skus}

    async def _read_listings(self, chunk: Sequence[int], skus: Sequence[str]) -> dict[tuple[int, str], int]:
        """(listing, SKU) → the quantity of its offering, for the listings of ``chunk`` (one batch call)."""
        params = {"listing_ids": ",".join(str(listing) for listing in chunk)}
        try:
            doc = await self._call("GET", "/v3/application/listings/batch/inventory", params=params, charged=True)
        except PermanentDeliveryError as exc:
            if exc.http_status != 404:
                raise
            self._forget([s for s in skus if self.listings.get(s) in chunk])
            raise TransientDeliveryError(
                "one of the Etsy listings read is gone (404 for the whole batch); they will be looked up again",
                http_status=404,
                excerpt=exc.excerpt,
            ) from None
        shown: dict[tuple[int, str], int] = {}
        for result in (doc or {}).get("results") or []:
            if not isinstance(result, dict) or result.get("listing_id") is None:
                continue
            for product in (result.get("inventory") or {}).get("products") or []:
                offerings = [o for o in product.get("offerings") or [] if not o.get("is_deleted")]
                if product.get("is_deleted") or not product.get("sku") or not offerings:
                    continue
                shown[(int(result["listing_id"]), str(product["sku"]))] = int(offerings[0].get("quantity") or 0)
        return shown

    def _forget(self, skus: Sequence[str]) -> None:
        for sku in skus:
            self.listings.pop(sku, None)
        self.scanned_at = float("-inf")  # the next read (or push) rescans, whatever the rescan interval


def _part(value: Any) -> str | None:
    """An Etsy id (a JSON integer) as a sale key's part; None, which the sale's check refuses, for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    return str(value)


def _remaining_today(answer: outbound.Answer) -> int | None:
    value = (answer.header("x-remaining-today") or "").strip()
    return int(value) if value.lstrip("-").isdigit() else None


def _daily_quota_spent(answer: outbound.Answer) -> bool:
    """A 429 for the day's quota rather than the second's: Etsy checks the second first, and its pause ends
    within a second; the day's is "up to 86400" s. A 429 that also says nothing is left today is the day's too."""
    return (answer.retry_after or 0.0) > QPS_WINDOW or _remaining_today(answer) == 0
