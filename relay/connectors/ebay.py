"""eBay: absolute quantities through the Sell Inventory API's ``bulk_update_price_quantity``.

One call carries up to 25 ``requests``, one per SKU, each setting
``shipToLocationAvailability.quantity`` on the inventory item (the total eBay distributes to the
SKU's offers). eBay answers 200 when every item took and 207 when results are mixed, with one
``responses[]`` entry per item or offer; only the failed SKUs are retried or dead-lettered.

Claims and coalescing. Each listing may be revised at most 250 times a day, so eBay is the channel where
sending a SKU's intermediate quantities costs most. A change waits the channel's ``coalesce_seconds``
(default 1 s) before it is due, and the same SKU's further changes meanwhile go out with it as one
update (a revision). A claim then holds up to a second of calls at the budget's rate (at most
``CALLS_PER_CLAIM``), sent one after another: each claim and settle is a database commit, and during a
burst of shop changes each waits behind ingest's, so claims of four calls left eBay's budget idle until
the burst was over (drain bench: 30-40 calls/s during it, ~340/s after). Larger claims without the wait
kept up with the burst but sent each SKU's intermediate quantities too, twice the calls and revisions,
and took CPU from ingest.

Offers: the listing shows the smaller of the item's quantity and an offer's ``availableQuantity``.
A seller who caps offers that way sets ``account.update_offers: "yes"``; the SKU's published
offers are then looked up once (``GET /offer?sku=``, one call per SKU, cached) and each gets
``availableQuantity`` too, as eBay's bulk-update guide advises. Left off, one call per 25 SKUs.

Each listing may be revised at most 250 times per calendar day (Pacific time). The connector
counts the revisions it makes per SKU and holds a SKU back (a retry after midnight, coalesced to its
newest quantity) instead of letting eBay refuse it; past half of them, a SKU's revisions are paced
so the rest last until midnight (``revisions.py``). The counts are kept in SQLite too
(``revisions.py``), so a restart still knows what today has used.

Answers: 401 → refresh the user token once, then pause; 403 (scope) → pause; 429 (errorId 2001),
5xx and errorId 25001 → retry; other 4xx → dead letter.

Sales (relay/intake/sweep.py): the Sell Fulfillment API's ``getOrders``, ``GET /sell/fulfillment/v1/order`` with
``filter=lastmodifieddate:[FROM..]``, 200 orders a page, paged by ``offset`` while the answer has ``next``. Each line
item is a sale ``<channel>:<orderId>:<lineItemId>`` of its ``quantity``; a CANCELED order's lines also give
``…:cancel`` (with ``restock_on_cancel``). The calls use a token of their own, granted for the fulfillment scope,
so a seller who has not consented to it loses intake only, never pushes.

Read-back: ``POST /bulk_get_inventory_item`` with up to 25 SKUs, one call; each SKU's
``inventoryItem.availability.shipToLocationAvailability.quantity``. None: eBay answers that SKU
with a 404 (or a 4xx naming it unknown or invalid). Offer caps (``availableQuantity``) are not read.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp

from ..config import ChannelConfig
from ..delivery import outbound
from ..delivery.outbound import Kind
from ..errors import (
    AuthDeliveryError,
    DeliveryError,
    PendingDeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from ..intake.sales import Sale, SaleRejection, order_line
from ..storage.dbapi import Conn
from ..vault import Vault
from . import http, revisions
from .base import Connector, ItemResult, TokenAuth, Update
from .revisions import DAILY_REVISIONS, RevisionBudget

MAX_BATCH = 25
CALLS_PER_CLAIM = 40  # bulk calls per claim at most: 1,000 SKUs, the largest claim (see above)
SCOPE = "https://api.ebay.com/oauth/api_scope/sell.inventory"
ORDERS_SCOPE = "https://api.ebay.com/oauth/api_scope/sell.fulfillment.readonly"
INVENTORY_API = "/sell/inventory/v1"
ORDERS_PATH = "/sell/fulfillment/v1/order"
ORDERS_PAGE = 200  # getOrders' largest limit
RETRYABLE_ERRORS = {25001, 2001}  # system error; too many requests
THROTTLE_WAIT = 60.0  # eBay's 429 usually carries no Retry-After


class EbayConnector(Connector):
    type = "ebay"
    account_keys = ()
    read_batch_size = MAX_BATCH
    lists_sales = True

    def __init__(
        self, site: str, config: ChannelConfig, session: aiohttp.ClientSession, vault: Vault | None = None
    ) -> None:
        super().__init__(site, config, session, vault)
        self.base = (config.api_base or "https://api.ebay.com").rstrip("/")
        self.update_offers = config.account.get("update_offers", "no").lower() in ("yes", "true", "1")
        self.offers: dict[str, list[str]] = {}  # SKU → published offer ids (only with update_offers)
        self.revisions = RevisionBudget()
        self.auth = TokenAuth(self._fetch_token)
        self.orders_auth = TokenAuth(functools.partial(self._fetch_token, orders=True))
        self._secrets: set[str] = set()

    @property
    def per_call(self) -> int:
        """SKUs per bulk call: the channel's ``batch_size``, at most eBay's 25."""
        return min(self.config.batch_size, MAX_BATCH)

    @property
    def batch_size(self) -> int:
        """SKUs per claim: a second of calls at the budget's rate, at most ``CALLS_PER_CLAIM``."""
        return self.per_call * max(1, min(CALLS_PER_CLAIM, int(self.budget.rate)))

    def cost(self, updates: Sequence[Update]) -> float:
        return 0.0  # a claim may be several calls: push charges each as it makes it

    def read_state(self, conn: Conn) -> Any:
        day = self.revisions.today(dt.datetime.now(dt.UTC))
        return day, revisions.load(conn, self.site, self.name, day)

    def restore_state(self, state: Any) -> None:
        day, counts = state
        self.revisions.restore(day, counts)

    def state_saver(self) -> Callable[[Conn], None] | None:
        unsaved = self.revisions.take_unsaved()
        return None if unsaved is None else revisions.saver(self.site, self.name, *unsaved)

    async def _fetch_token(self, orders: bool = False) -> tuple[str, float]:
        creds = await http.load_credentials(self.credentials, ("client_id", "client_secret", "refresh_token"), "eBay")
        self._secrets.update(v for v in creds.values() if v)
        basic = base64.b64encode(f"{creds['client_id']}:{creds['client_secret']}".encode()).decode()
        self._secrets.add(basic)
        form = {
            "grant_type": "refresh_token",
            "refresh_token": creds["refresh_token"],
            "scope": (creds.get("orders_scope") or ORDERS_SCOPE) if orders else (creds.get("scope") or SCOPE),
        }
        doc = await http.token_grant(
            self.session,
            f"{self.base}/identity/v1/oauth2/token",
            form,
            what="eBay",
            timeout=self.config.timeout_seconds,
            headers={"Authorization": f"Basic {basic}"},
        )
        token = str(doc["access_token"])
        self._secrets.add(token)
        return token, http.lifetime(doc, 7200.0)

    async def _call(
        self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None
    ) -> outbound.Answer:
        async def call(token: str) -> outbound.Answer:
            headers = {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            }
            return await outbound.send(
                self.session,
                method,
                f"{self.base}{path if path == ORDERS_PATH else INVENTORY_API + path}",
                timeout=self.config.timeout_seconds,
                what="eBay",
                headers=headers,
                json_body=body,
                params=params,
            )

        answer = await http.with_token(self.orders_auth if path == ORDERS_PATH else self.auth, call, "eBay")
        verdict = outbound.classify(answer)
        if verdict.kind in (Kind.OK, Kind.PERMANENT):  # the caller reads what eBay said (207, 400, 404)
            return answer
        raise http.refusal(
            answer,
            verdict,
            "eBay",
            http.scrub(answer.text, self._secrets),
            budget=self.budget,
            throttle_wait=THROTTLE_WAIT,
            throttled="eBay throttled the call (429)",
            auth=f"eBay refused the token's scope ({answer.status}); grant the"
            f" {'sell.fulfillment' if path == ORDERS_PATH else 'sell.inventory'} scope again",
        )

    async def _offers_for(self, sku: str) -> list[str]:
        if sku not in self.offers:
            await self.budget.acquire(1.0)
            answer = await self._call("GET", "/offer", params={"sku": sku})
            doc = answer.json() if answer.status == 200 else None
            found = (doc or {}).get("offers") or []
            self.offers[sku] = [str(o["offerId"]) for o in found if o.get("offerId") and o.get("status") == "PUBLISHED"]
        return self.offers[sku]

    async def body(self, updates: Sequence[Update]) -> dict[str, Any]:
        requests = []
        for u in updates:
            entry: dict[str, Any] = {"sku": u.channel_sku, "shipToLocationAvailability": {"quantity": u.quantity}}
            if self.update_offers:
                offer_ids = await self._offers_for(u.channel_sku)
                if offer_ids:
                    entry["offers"] = [{"offerId": o, "availableQuantity": u.quantity} for o in offer_ids]
            requests.append(entry)
        return {"requests": requests}

    async def push(self, updates: Sequence[Update]) -> Mapping[str, ItemResult]:
        now = dt.datetime.now(dt.UTC)
        results: dict[str, ItemResult] = {}
        ready = []
        for u in updates:
            # Held back on purpose, not a failure of the channel: pending, so the circuit never opens for it.
            if self.revisions.exhausted(u.channel_sku, now):
                wait = self.revisions.seconds_to_midnight(now)
                error = PendingDeliveryError(
                    f"SKU {u.channel_sku} used eBay's {DAILY_REVISIONS} revisions for today; the newest quantity goes"
                    " out after midnight Pacific time",
                    wait,
                )
                results[u.sku] = ItemResult(error)
            elif (wait := self.revisions.pacing_wait(u.channel_sku, now)) > 0:
                error = PendingDeliveryError(
                    f"SKU {u.channel_sku} has used over half of eBay's {DAILY_REVISIONS} revisions for today; its newest"
                    f" quantity goes out in {wait:.0f} s, so that the rest last until midnight Pacific time",
                    wait,
                )
                results[u.sku] = ItemResult(error)
            else:
                ready.append(u)
        for start in range(0, len(ready), self.per_call):
            chunk = ready[start : start + self.per_call]
            body = await self.body(chunk)
            await self.budget.acquire(1.0)
            try:
                answer = await self._call("POST", "/bulk_update_price_quantity", body)
            except AuthDeliveryError:
                raise
            except DeliveryError as exc:  # 429, 5xx, no answer: this call's SKUs and the rest are retried
                results.update({u.sku: ItemResult(exc, exc.http_status, exc.excerpt) for u in ready[start:]})
                break
            for u in chunk:
                self.revisions.spend(u.channel_sku, now)
            results.update(self._judge(chunk, answer))
        return results

    # --- sales ---------------------------------------------------------------------------------------

    async def sales_since(
        self, since: dt.datetime, gate: Callable[[], Awaitable[None]]
    ) -> tuple[list[Sale], list[SaleRejection]]:
        stamp = since.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{since.microsecond // 1000:03d}Z"
        sales: list[Sale] = []
        skipped: list[SaleRejection] = []
        offset = 0
        while True:
            await gate()
            params = {"filter": f"lastmodifieddate:[{stamp}..]", "limit": str(ORDERS_PAGE), "offset": str(offset)}
            answer = await self._call("GET", ORDERS_PATH, params=params)
            doc = answer.json()
            orders = doc.get("orders") if isinstance(doc, dict) else None
            if answer.status != 200 or not isinstance(doc, dict) or not isinstance(orders or [], list):
                raise PermanentDeliveryError(
                    f"eBay refused the orders search ({answer.status}): {_messages(doc)}",
                    http_status=answer.status,
                    excerpt=http.scrub(answer.text, self._secrets),
                )
            self.budget.succeeded()
            for order in orders or []:
                if isinstance(order, dict):
                    self._order_sales(order, sales, skipped)
            if not doc.get("next") or not orders:
                return sales, skipped
            offset += len(orders)

    def _order_sales(self, order: dict[str, Any], sales: list[Sale], skipped: list[SaleRejection]) -> None:
        """An order's line items as sales (and, cancelled, as cancellations), with the shop's SKU."""
        cancelled = (order.get("cancelStatus") or {}).get("cancelState") == "CANCELED"
        kinds = ("sale", "cancel") if cancelled and self.config.restock_on_cancel else ("sale",)
        for line in order.get("lineItems") or []:
            if isinstance(line, dict):
                item = {"order": order.get("orderId"), "line": line.get("lineItemId"), "sku": line.get("sku")}
                order_line(self.config, item | {"quantity": line.get("quantity")}, kinds, sales, skipped)

    # --- read-back -------------------------------------------------------------------------------

    def read_cost(self, channel_skus: Sequence[str]) -> float:
        return float(math.ceil(len(set(channel_skus)) / MAX_BATCH))

    async def read(self, channel_skus: Sequence[str]) -> Mapping[str, int | None]:
        unique = list(dict.fromkeys(channel_skus))
        shown: dict[str, int | None] = {}
        for start in range(0, len(unique), MAX_BATCH):
            chunk = unique[start : start + MAX_BATCH]
            answer = await self._call("POST", "/bulk_get_inventory_item", {"requests": [{"sku": s} for s in chunk]})
            shown.update(self._read_answer(chunk, answer))
        return {sku: shown.get(sku) for sku in channel_skus}

    def _read_answer(self, chunk: Sequence[str], answer: outbound.Answer) -> dict[str, int | None]:
        status, snippet = answer.status, http.scrub(answer.text, self._secrets)
        doc = answer.json()
        responses = doc.get("responses") if isinstance(doc, dict) else None
        if status not in (200, 207) or not isinstance(responses, list):
            raise PermanentDeliveryError(
                f"eBay refused the inventory read ({status}): {_messages(doc)}", http_status=status, excerpt=snippet
            )
        self.budget.succeeded()
        shown: dict[str, int | None] = {}
        for entry in responses:
            if not isinstance(entry, dict) or str(entry.get("sku")) not in chunk:
                continue
            code = int(entry.get("statusCode") or 0)
            ids = {int(e.get("errorId") or 0) for e in entry.get("errors") or [] if isinstance(e, dict)}
            if code >= 500 or code == 429 or ids & RETRYABLE_ERRORS:
                raise TransientDeliveryError(
                    f"eBay could not read SKU {entry.get('sku')} now: {_messages(entry)}", http_status=code
                )
            if code != 200:
                shown[str(entry["sku"])] = None  # 404 / 25702: eBay has no inventory item with this SKU
                continue
            item = entry.get("inventoryItem") or {}
            ship = ((item.get("availability") or {}).get("shipToLocationAvailability")) or {}
            shown[str(entry["sku"])] = int(ship.get("quantity") or 0)
        missing = [s for s in chunk if s not in shown]
        if missing:
            raise TransientDeliveryError(
                f"eBay's inventory read had no result for SKU {missing[0]}", http_status=status
            )
        return shown

    def _judge(self, ready: Sequence[Update], answer: outbound.Answer) -> dict[str, ItemResult]:
        status, snippet = answer.status, http.scrub(answer.text, self._secrets)
        doc = answer.json()
        responses = (doc or {}).get("responses") if isinstance(doc, dict) else None
        if not isinstance(responses, list):
            if 200 <= status < 300:
                self.budget.succeeded()
                return {u.sku: ItemResult(None, status) for u in ready}
            error = PermanentDeliveryError(
                f"eBay rejected the call ({status}): {_messages(doc)}", http_status=status, excerpt=snippet
            )
            return {u.sku: ItemResult(error, status, snippet) for u in ready}
        self.budget.succeeded()
        by_sku: dict[str, list[dict[str, Any]]] = {}
        for entry in responses:
            if isinstance(entry, dict):
                by_sku.setdefault(str(entry.get("sku")), []).append(entry)
        results: dict[str, ItemResult] = {}
        for u in ready:
            entries = by_sku.get(u.channel_sku)
            if not entries:
                missing = TransientDeliveryError("eBay's answer had no result for this SKU", http_status=status)
                results[u.sku] = ItemResult(missing, status)
                continue
            failed = [e for e in entries if int(e.get("statusCode") or 0) >= 300]
            results[u.sku] = ItemResult(_item_error(u.channel_sku, failed) if failed else None, status)
        return results


def _messages(doc: Any) -> str:
    errors = doc.get("errors") if isinstance(doc, dict) else None
    parts = [f"{e.get('errorId')} {e.get('message', '')}".strip() for e in errors or [] if isinstance(e, dict)]
    return "; ".join(parts)[:200] or "no details"


def _item_error(sku: str, failed: list[dict[str, Any]]) -> DeliveryError:
    codes = {int(e.get("statusCode") or 0) for e in failed}
    ids = {int(err.get("errorId") or 0) for e in failed for err in e.get("errors") or [] if isinstance(err, dict)}
    detail = "; ".join(_messages(e) for e in failed)
    if ids & RETRYABLE_ERRORS or any(code >= 500 or code == 429 for code in codes):
        return TransientDeliveryError(f"eBay could not update {sku} now: {detail}", http_status=max(codes))
    return PermanentDeliveryError(f"eBay refused {sku}: {detail}", http_status=max(codes), excerpt=detail[:200])
