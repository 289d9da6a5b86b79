"""Walmart Marketplace (US): one ``PUT /v3/inventory`` per SKU, the bulk inventory feed for big backlogs.

Single route: ``PUT /v3/inventory?sku={sku}[&shipNode={id}]`` with ``{sku, quantity: {unit: "EACH",
amount}}``. Feed route (``feeds.FeedConnector`` decides): ``POST /v3/feeds?feedType=inventory``, a
multipart upload of ``{InventoryHeader: {version: "1.4"}, Inventory: [...]}``, then ``GET
/v3/feeds/{feedId}?includeDetails=true`` (paged) until ``PROCESSED``, with a status per SKU.

Threshold: Walmart allows 10 feeds an hour and gives each up to 30 minutes to process, so a batch goes
as a feed only when single updates would take longer than that (``feed_after_seconds``): 6,000 SKUs
at the ~200 updates a minute sellers report, more than one claim holds. The feed route takes over
when the account's single-update rate is far lower (learned from throttling, or set in ``rate``).

Auth: client credentials (``POST /v3/token``, Basic client_id:client_secret); the token lasts 15
minutes and is fetched again a minute before it ends, or on a 401 (once; a second 401 pauses).
Every call carries ``WM_SEC.ACCESS_TOKEN``, a new ``WM_QOS.CORRELATION_ID`` and ``WM_SVC.NAME``.

Limits: ``x-current-token-count`` (calls left in Walmart's bucket) can only lower the budget; a 429
waits for ``Retry-After`` or else ``x-next-replenish-time``. Answers: 400, 404 (SKU not on Walmart),
405, 406, 413, 415 → dead letter; 403 → pause (the key lacks the Inventory API); 423, 429, 5xx → retry.

Read-back: ``GET /v3/inventory?sku={sku}[&shipNode={id}]`` → ``{sku, quantity: {unit, amount}}``, one
SKU per call, 20 SKUs per read, on the single-call budget (the caller charges it). None: Walmart
answers 404 (the seller has no item with that SKU).

Sales (relay/intake/sweep.py): the Orders API's "Get all orders", ``GET /v3/orders`` with
``lastModifiedStartDate`` (the sweep's window), ``createdStartDate`` (``CREATED_LOOKBACK`` before it: without
one Walmart only looks 7 days back, and an older order's cancellation would be missed), ``shipNodeType`` (once
per type in ``fulfillment_services``: Walmart answers one type per search, SellerFulfilled by default) and
``limit=200``; further pages are ``GET /v3/orders{meta.nextCursor}``, the cursor as Walmart gave it. A search that
matches nothing is Walmart's 404 ``CONTENT_NOT_FOUND.GMP_ORDER_API``: no orders, not a failure.
Each order line is a sale ``<channel>:<purchaseOrderId>:<lineNumber>`` of ``orderLineQuantity`` (the quantity
ordered; ``orderLineStatuses`` split it by status). Cancellations are counted per unit, because a line can be
cancelled a unit at a time and the key scheme has one cancel key per line: the line's n-th cancelled unit is
``<channel>:<purchaseOrderId>:<lineNumber>-<n>:cancel`` (+1), so a line's Cancelled quantity growing from 1 to 2
adds exactly the second unit, however often or late either is read (with ``restock_on_cancel``). An order whose
``shipNode.type`` is not in ``fulfillment_services`` (WFS ships Walmart's stock) is returned as skipped lines.
The calls have a budget of their own (Walmart limits each API separately) besides the spare push call the sweep's
gate takes.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp

from ..config import ChannelConfig
from ..delivery import outbound
from ..delivery.outbound import Kind, Ladder
from ..delivery.ratelimit import RateBudget
from ..errors import PermanentDeliveryError, TransientDeliveryError
from ..intake.sales import Sale, SaleRejection, shop_sku_for, validate_item
from ..vault import Vault
from . import http
from .base import ItemResult, TokenAuth, Update, read_each
from .feeds import SINGLE_CONCURRENCY, Feed, FeedConnector, throttle_wait

SERVICE_NAME = "Walmart Marketplace"
FEED_LIMIT = (10 / 3600, 10)  # inventory feeds: 10 calls per hour
STATUS_LIMIT = (1.0, 5)  # feed status: no published figure; one a second is ample for a few feeds
STATUS_PAGE = 1000
# An answer the ladder does not know (423, and the like) is a passing one.
LADDER = Ladder(permanent=frozenset({400, 404, 405, 406, 413, 415}))
RETRY_ITEM_STATUS = {"SYSTEM_ERROR", "TIMEOUT_ERROR"}
READ_BATCH = 20  # SKUs per read: one GET each
ORDERS_PATH = "/v3/orders"
ORDERS_PAGE = 200  # Get all orders' largest limit
ORDERS_LIMIT = (5000 / 60, 50)  # Get all orders: 5,000 calls a minute per seller
CREATED_LOOKBACK = dt.timedelta(days=30)  # orders created this long before the window are still searched
SHIP_NODE_TYPES = ("SellerFulfilled", "WFSFulfilled", "3PLFulfilled")  # what shipNodeType takes
NO_ORDERS = "CONTENT_NOT_FOUND.GMP_ORDER_API"  # Walmart's 404 for a search that matched no order


class WalmartConnector(FeedConnector):
    type = "walmart"
    account_keys = ()
    feed_after_seconds = 1800.0
    read_batch_size = READ_BATCH
    lists_sales = True

    def __init__(
        self, site: str, config: ChannelConfig, session: aiohttp.ClientSession, vault: Vault | None = None
    ) -> None:
        super().__init__(site, config, session, vault)
        self.base = (config.api_base or "https://marketplace.walmartapis.com").rstrip("/")
        self.ship_node = config.account.get("ship_node", "")
        self.channel_type = config.account.get("channel_type", "")  # WM_CONSUMER.CHANNEL.TYPE, if Walmart issued one
        self.feed_budget = RateBudget(*FEED_LIMIT)
        self.status_budget = RateBudget(*STATUS_LIMIT)
        self.orders_budget = RateBudget(*ORDERS_LIMIT)
        self.auth = TokenAuth(self._fetch_token)
        self._secrets: set[str] = set()

    def _headers(self) -> dict[str, str]:
        headers = {
            "WM_QOS.CORRELATION_ID": str(uuid.uuid4()),
            "WM_SVC.NAME": SERVICE_NAME,
            "Accept": "application/json",
        }
        if self.channel_type:
            headers["WM_CONSUMER.CHANNEL.TYPE"] = self.channel_type
        return headers

    async def _fetch_token(self) -> tuple[str, float]:
        creds = await http.load_credentials(self.credentials, ("client_id", "client_secret"), "Walmart")
        self._secrets.update(v for v in creds.values() if v)
        basic = base64.b64encode(f"{creds['client_id']}:{creds['client_secret']}".encode()).decode()
        self._secrets.add(basic)
        doc = await http.token_grant(
            self.session,
            f"{self.base}/v3/token",
            {"grant_type": "client_credentials"},
            what="Walmart",
            timeout=self.config.timeout_seconds,
            headers={**self._headers(), "Authorization": f"Basic {basic}"},
        )
        token = str(doc["access_token"])
        self._secrets.add(token)
        return token, http.lifetime(doc, 900.0)

    async def _call(
        self,
        budget: RateBudget,
        method: str,
        path: str,
        params: Mapping[str, str],
        body: Any = None,
        upload: bytes | None = None,
        charged: bool = False,
        api: str = "Inventory",
    ) -> Any:
        """One call charged to ``budget`` (unless the caller ``charged`` it already); returns the parsed body of a
        2xx or raises the classified error."""
        await self.auth.token()  # before the budget: a call that waited for a token must not burst
        if not charged:
            await budget.acquire(1.0)

        async def call(token: str) -> outbound.Answer:
            data = None
            if upload is not None:  # a fresh form each time: a retried call cannot reuse a consumed one
                data = aiohttp.FormData()
                data.add_field("file", upload, filename="inventory.json", content_type="application/json")
            return await outbound.send(
                self.session,
                method,
                f"{self.base}{path}",
                timeout=self.config.timeout_seconds,
                what="Walmart",
                headers={**self._headers(), "WM_SEC.ACCESS_TOKEN": token},
                json_body=body,
                params=params,
                data=data,
            )

        answer = await http.with_token(self.auth, call, "Walmart")
        self._learn(budget, answer)
        verdict = outbound.classify(answer, LADDER)
        if verdict.kind is Kind.OK:
            budget.succeeded()
            return answer.json()
        reason = self._error_text(answer)
        raise http.refusal(
            answer,
            verdict,
            "Walmart",
            http.scrub(answer.text, self._secrets),
            budget=budget,
            throttle_wait=self._replenish_wait(answer) or throttle_wait(budget.rate),
            throttled="Walmart throttled the call (429)",
            auth=f"Walmart refused access ({answer.status}: {reason}); check that the API key may use the {api} API",
            permanent=f"Walmart refused the request ({answer.status}: {reason})",
        )

    def _error_text(self, answer: outbound.Answer) -> str:
        doc = answer.json()
        errors = doc.get("errors") if isinstance(doc, dict) else None
        if isinstance(errors, dict):  # the Orders API wraps them: {"errors": {"error": [...]}}
            errors = errors.get("error")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            text = f"{first.get('code', '')} {first.get('message') or first.get('description') or ''}".strip()
            return http.scrub(text, self._secrets)
        return "no details"

    def _learn(self, budget: RateBudget, answer: outbound.Answer) -> None:
        count = answer.header("x-current-token-count")
        if count is not None and count.strip().isdigit():
            budget.observe_remaining(float(count))

    def _replenish_wait(self, answer: outbound.Answer) -> float | None:
        """``x-next-replenish-time`` (epoch milliseconds; also spelt x-next-replenishment-time) as seconds from now."""
        value = answer.header("x-next-replenish-time") or answer.header("x-next-replenishment-time")
        if not value or not value.strip().isdigit():
            return None
        return max(0.0, int(value) / 1000 - time.time())

    # --- single route -----------------------------------------------------------------------------------

    def inventory_body(self, update: Update) -> dict[str, Any]:
        return {"sku": update.channel_sku, "quantity": {"unit": "EACH", "amount": update.quantity}}

    def _sku_params(self, channel_sku: str) -> dict[str, str]:
        params = {"sku": channel_sku}
        if self.ship_node:
            params["shipNode"] = self.ship_node
        return params

    async def send_single(self, update: Update) -> ItemResult:
        params = self._sku_params(update.channel_sku)
        try:
            await self._call(self.budget, "PUT", "/v3/inventory", params, self.inventory_body(update))
        except PermanentDeliveryError as exc:
            if exc.http_status == 404:
                error = PermanentDeliveryError(
                    f"SKU {update.channel_sku} is not listed on Walmart", http_status=404, excerpt=exc.excerpt
                )
                return ItemResult(error, 404, exc.excerpt)
            raise
        return ItemResult(None, 200)

    # --- read-back -----------------------------------------------------------------------------------

    def read_cost(self, channel_skus: Sequence[str]) -> float:
        return float(len(set(channel_skus)))  # one GET per SKU

    async def read(self, channel_skus: Sequence[str]) -> Mapping[str, int | None]:
        return await read_each(channel_skus, self._read_one, SINGLE_CONCURRENCY)

    async def _read_one(self, channel_sku: str) -> int | None:
        try:
            doc = await self._call(self.budget, "GET", "/v3/inventory", self._sku_params(channel_sku), charged=True)
        except PermanentDeliveryError as exc:
            if exc.http_status == 404:
                return None
            raise
        quantity = doc.get("quantity") if isinstance(doc, dict) else None
        if not isinstance(quantity, dict) or not isinstance(quantity.get("amount"), int | float):
            raise TransientDeliveryError(f"Walmart's inventory answer for SKU {channel_sku} had no quantity")
        return int(quantity["amount"])

    # --- sales -----------------------------------------------------------------------------------------

    async def sales_since(
        self, since: dt.datetime, gate: Callable[[], Awaitable[None]]
    ) -> tuple[list[Sale], list[SaleRejection]]:
        node_types = [t for t in SHIP_NODE_TYPES if t in self.config.fulfillment_services]
        if not node_types:
            raise PermanentDeliveryError(
                f"fulfillment_services names none of Walmart's ship node types ({', '.join(SHIP_NODE_TYPES)}),"
                " so no order could be a sale of the shop's stock"
            )
        sales: list[Sale] = []
        skipped: list[SaleRejection] = []
        for node_type in node_types:
            async for order in self._orders(since, node_type, gate):
                self._order_sales(order, node_type, sales, skipped)
        return sales, skipped

    async def _orders(
        self, since: dt.datetime, node_type: str, gate: Callable[[], Awaitable[None]]
    ) -> AsyncIterator[dict[str, Any]]:
        """Every order of ``node_type`` modified since ``since``, page by page (a failed page raises)."""
        path = ORDERS_PATH
        params = {
            "lastModifiedStartDate": _stamp(since),
            "createdStartDate": _stamp(since - CREATED_LOOKBACK),
            "shipNodeType": node_type,
            "limit": str(ORDERS_PAGE),
        }
        cursors: set[str] = set()
        while True:
            await gate()
            try:
                doc = await self._call(self.orders_budget, "GET", path, params, api="Orders")
            except PermanentDeliveryError as exc:
                if exc.http_status == 404 and NO_ORDERS in exc.excerpt:
                    return  # nothing (more) matched
                raise
            listing = _obj(doc).get("list")
            orders = _obj(_obj(listing).get("elements")).get("order")
            if not isinstance(listing, dict) or not isinstance(orders or [], list):
                raise TransientDeliveryError("Walmart's orders answer had no list of orders")
            for order in orders or []:
                if isinstance(order, dict):
                    yield order
            cursor = _obj(listing.get("meta")).get("nextCursor")
            if not cursor or not orders:
                return
            if not isinstance(cursor, str) or not cursor.startswith("?") or not cursor.isprintable() or " " in cursor:
                raise PermanentDeliveryError("Walmart's nextCursor is not a query string", excerpt=str(cursor)[:200])
            if cursor in cursors:  # Walmart did not move on: reading on would loop, stopping would lose pages
                raise TransientDeliveryError("Walmart gave the same nextCursor twice; the poll is read again")
            cursors.add(cursor)
            path, params = ORDERS_PATH + cursor, {}

    def _order_sales(
        self,
        order: dict[str, Any],
        asked: str,
        sales: list[Sale],
        skipped: list[SaleRejection],
    ) -> None:
        """An order's lines as sales of the shop's SKU and their cancelled units as cancellations, or, shipped from
        a node ``fulfillment_services`` leaves out, as skipped lines."""
        po = order.get("purchaseOrderId")
        node_type = _obj(order.get("shipNode")).get("type") or asked
        lines = _obj(order.get("orderLines")).get("orderLine")
        for line in lines if isinstance(lines, list) else []:
            if not isinstance(line, dict):
                continue
            number = line.get("lineNumber")
            named = (str(po) if po is not None else None, str(number) if number is not None else None)
            if node_type not in self.config.fulfillment_services:
                message = f"shipped by a {str(node_type)[:32]!r} node, from stock that is not the shop's"
                skipped.append(SaleRejection(0, *named, "fulfilled_elsewhere", message))
                continue
            sku = _obj(line.get("item")).get("sku")
            if isinstance(sku, str) and sku:
                sku = shop_sku_for(self.config, sku)
                if sku is None:
                    message = (
                        f"channel SKU {_obj(line.get('item')).get('sku')!r} stands for no shop SKU of this channel"
                    )
                    skipped.append(SaleRejection(0, *named, "unmapped_sku", message + " (rules.sku_map)"))
                    continue
            item = {"order": po, "line": number, "sku": sku, "quantity": _amount(line.get("orderLineQuantity"))}
            sale = validate_item({**item, "kind": "sale"}, 0, self.name)
            if not isinstance(sale, Sale):
                skipped.append(sale)  # its cancellations would be refused for the same reason
                continue
            sales.append(sale)
            if self.config.restock_on_cancel:
                for outcome in self._cancelled_units(item, line):
                    if isinstance(outcome, Sale):
                        sales.append(outcome)
                    else:
                        skipped.append(outcome)

    def _cancelled_units(self, item: dict[str, Any], line: dict[str, Any]) -> list[Sale | SaleRejection]:
        """One cancellation of +1 per cancelled unit, keyed by the unit's place (``<lineNumber>-<n>``): the key of
        a unit once cancelled never changes, so a later, larger Cancelled quantity adds only the new units."""
        statuses = _obj(line.get("orderLineStatuses")).get("orderLineStatus")
        amounts = [
            _amount(s.get("statusQuantity"))
            for s in (statuses if isinstance(statuses, list) else [])
            if isinstance(s, dict) and s.get("status") == "Cancelled"
        ]
        if any(amount is None for amount in amounts):
            message = "a Cancelled status has no whole quantity"
            return [SaleRejection(0, str(item["order"]), str(item["line"]), "invalid_quantity", message)]
        cancelled = sum(a for a in amounts if a is not None)
        if isinstance(item["quantity"], int):
            cancelled = min(cancelled, item["quantity"])  # never more units back than the line sold
        return [
            validate_item({**item, "line": f"{item['line']}-{unit}", "quantity": 1, "kind": "cancel"}, 0, self.name)
            for unit in range(1, cancelled + 1)
        ]

    # --- feed route -------------------------------------------------------------------------------------

    def feed_document(self, updates: Sequence[Update]) -> dict[str, Any]:
        return {"InventoryHeader": {"version": "1.4"}, "Inventory": [self.inventory_body(u) for u in updates]}

    async def submit_feed(self, updates: Sequence[Update]) -> str:
        document = json.dumps(self.feed_document(updates), separators=(",", ":")).encode()
        params = {"feedType": "inventory"}
        if self.ship_node:
            params["shipNode"] = self.ship_node
        # the caller charged feed_budget already (it chose a feed because a submission was free)
        doc = await self._call(self.feed_budget, "POST", "/v3/feeds", params, upload=document, charged=True)
        feed_id = doc.get("feedId") if isinstance(doc, dict) else None
        if not feed_id:
            raise TransientDeliveryError("Walmart's feed answer had no feedId")
        return str(feed_id)

    async def feed_results(self, feed: Feed) -> dict[str, ItemResult] | None:
        results: dict[str, ItemResult] = {}
        offset = 0
        while True:
            params = {"includeDetails": "true", "offset": str(offset), "limit": str(STATUS_PAGE)}
            doc = await self._call(self.status_budget, "GET", f"/v3/feeds/{feed.feed_id}", params)
            doc = doc if isinstance(doc, dict) else {}
            status = doc.get("feedStatus")
            if status in ("RECEIVED", "INPROGRESS"):
                return None
            if status != "PROCESSED":
                retry = TransientDeliveryError(f"Walmart feed {feed.feed_id} ended {status}; its SKUs are sent again")
                return {sku: ItemResult(retry) for sku in feed.quantities}
            items = ((doc.get("itemDetails") or {}).get("itemIngestionStatus")) or []
            for item in items:
                if isinstance(item, dict) and item.get("sku") in feed.quantities:
                    results[str(item["sku"])] = self._item_result(feed, item)
            offset += STATUS_PAGE
            if not items or offset >= int(doc.get("itemsReceived") or 0):
                return results

    def _item_result(self, feed: Feed, item: Mapping[str, Any]) -> ItemResult:
        status = item.get("ingestionStatus")
        if status == "SUCCESS":
            return ItemResult(None, 200)
        errors = ((item.get("ingestionErrors") or {}).get("ingestionError")) or [{}]
        first = errors[0] if isinstance(errors[0], dict) else {}
        reason = http.scrub(f"{first.get('code', '')} {first.get('description', '')}".strip(), self._secrets)
        if status in RETRY_ITEM_STATUS or status == "INPROGRESS":
            return ItemResult(TransientDeliveryError(f"Walmart feed {feed.feed_id}: {status} {reason}".strip()))
        error = PermanentDeliveryError(f"Walmart refused SKU {item.get('sku')} in feed {feed.feed_id}: {reason}")
        return ItemResult(error, 200, reason)


def _stamp(moment: dt.datetime) -> str:
    """A search date as Walmart's examples write it (``2020-03-16T10:30:15Z``), rounded down to the second: the
    window only ever grows."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one: a field of the wrong type reads as missing."""
    return value if isinstance(value, dict) else {}


def _amount(quantity: Any) -> int | None:
    """A ``{unitOfMeasurement, amount}``'s amount (a string in Walmart's answers) as a whole number, or None."""
    amount = _obj(quantity).get("amount")
    if isinstance(amount, str) and amount.strip().isdigit():
        return int(amount.strip())
    if isinstance(amount, int) and not isinstance(amount, bool):
        return amount
    return None
