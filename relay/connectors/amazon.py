"""Amazon Selling Partner API: ``patchListingsItem`` per SKU, ``JSON_LISTINGS_FEED`` for backlogs.

Single route: ``PATCH /listings/2021-08-01/items/{sellerId}/{sku}?marketplaceIds=…`` replacing
``/attributes/fulfillment_availability`` with ``[{fulfillment_channel_code, quantity}]``. Amazon
answers ``ACCEPTED`` (queued; it applies it shortly after) or ``INVALID`` with issues (dead letter).

Feed route (``feeds.FeedConnector`` decides): createFeedDocument → PUT the document to the
presigned URL (no token: the URL carries its own authorization) → createFeed → getFeed until
DONE/FATAL/CANCELLED → getFeedDocument → read the processing report; an ERROR issue on a message
dead-letters that SKU, a FATAL or CANCELLED feed sends its SKUs again.

Threshold: during a backlog, a batch of more than 600 SKUs (two minutes of patches at the default
5/s, a JSON_LISTINGS_FEED's usual turnaround) goes as one feed, while a submission is free (5 per 5
minutes per region, one a minute sustained). Its SKUs then wait about as long as they would have
waited for patches, and the patch budget keeps serving new changes meanwhile. Smaller backlogs go as
patches, 25 per push, answered per SKU. The floor also keeps feeds large: Amazon processes a
seller's feeds one after another and warns that many small ones queue behind each other.

Budgets: one per operation, at Amazon's published default (rate/s, burst), each adopting the rate an
answer's ``x-amzn-RateLimit-Limit`` reports. 429 → slow down and retry; 500/503 → retry; 400, 404,
413, 415 → dead letter. A 401 or 403 refreshes the LWA token once (Amazon answers 403 for an
expired token); a second refusal pauses the channel (revoked authorization, missing role, or the
LWA client secret passed its 180-day rotation).

Read-back: ``getListingsItem`` (``GET /listings/2021-08-01/items/{sellerId}/{sku}?marketplaceIds=…
&includedData=fulfillmentAvailability``), one SKU per call, 10 SKUs per read (the operation's burst),
charged up front to its own budget (5/s, burst 10: ``read_budget``), never to the patches' one. The quantity is the
``fulfillmentAvailability`` entry of the channel's ``fulfillment_channel_code``; a listing without
one shows 0. None: Amazon answers 404 (no listing with that SKU for the seller).

Sales (relay/intake/sweep.py): Orders v0 ``getOrders`` (``GET /orders/v0/orders?MarketplaceIds=…&LastUpdatedAfter=…``,
100 orders a page, paged by ``NextToken`` with the same filters) and, per order, ``getOrderItems`` (``GET
/orders/v0/orders/{orderId}/orderItems``, paged by ``NextToken``). Each line of a seller-fulfilled order in a status
that holds its units (Pending and PendingAvailability reserve them on Amazon already) is a sale
``<channel>:<AmazonOrderId>:<OrderItemId>`` of ``QuantityOrdered``; a Canceled order also gives ``…:cancel``. Orders
another network ships (``FulfillmentChannel`` not in ``fulfillment_services``: AFN, FBA's own stock) are skipped
without reading their items. The Orders API has its own usage plans, apart from the Listings calls the push budget
paces, so these calls are charged to two budgets of their own (getOrders 0.0167/s burst 20, getOrderItems 0.5/s
burst 30) and never to the push budget: ``gate`` is not awaited, intake cannot delay a push. An order's lines are
kept after a read (``_lines``) and read again only when it becomes Canceled, so an order costs one getOrderItems
call however often its status changes and however many polls' overlap it falls into; returning the kept lines
again is harmless (each key counts once).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp

from ..config import ChannelConfig
from ..delivery import outbound
from ..delivery.outbound import Kind, Ladder
from ..delivery.ratelimit import RateBudget
from ..errors import AuthDeliveryError, DeliveryError, PermanentDeliveryError, TransientDeliveryError
from ..intake.sales import Sale, SaleRejection, order_line
from ..vault import Vault
from . import http
from .base import ItemResult, TokenAuth, Update, read_each
from .feeds import SINGLE_CONCURRENCY, Feed, FeedConnector, throttle_wait

LWA_URL = "https://api.amazon.com/auth/o2/token"
FEED_CONTENT_TYPE = "application/json; charset=UTF-8"
MAX_FEED_MESSAGES = 25_000
# Published defaults, (requests per second, burst): feeds_2021-06-30.json and the JSON_LISTINGS_FEED changelog.
CREATE_DOCUMENT_LIMIT = (0.5, 15)
CREATE_FEED_LIMIT = (5 / 300, 5)  # JSON_LISTINGS_FEED: 5 submissions per 5 minutes per region
GET_FEED_LIMIT = (2.0, 15)
GET_DOCUMENT_LIMIT = (0.0222, 10)
GET_LISTING_LIMIT = (5.0, 10)  # getListingsItem: listingsItems_2021-08-01.json
GET_ORDERS_LIMIT = (0.0167, 20)  # ordersV0.json: getOrders
GET_ORDER_ITEMS_LIMIT = (0.5, 30)  # ordersV0.json: getOrderItems
ORDERS_PATH = "/orders/v0/orders"
ORDERS_PAGE = 100  # getOrders' largest MaxResultsPerPage
# OrderStatus values whose lines hold the seller's units: Pending (payment not yet authorized) and
# PendingAvailability (a pre-order) already take them from the listing's quantity; Canceled gives them back.
SALE_STATUSES = frozenset(
    {"PendingAvailability", "Pending", "Unshipped", "PartiallyShipped", "Shipped", "InvoiceUnconfirmed"}
)
CANCELED = "Canceled"
KEPT_ORDERS = 10_000  # orders whose lines are kept between polls (see the module's docstring)
# 401/403 are handled before the ladder (a refresh, then a pause); an answer it does not know is a passing one.
LADDER = Ladder(auth=frozenset(), permanent=frozenset({400, 404, 413, 415}))


def patches(quantity: int, channel_code: str) -> list[dict[str, Any]]:
    return [
        {
            "op": "replace",
            "path": "/attributes/fulfillment_availability",
            "value": [{"fulfillment_channel_code": channel_code, "quantity": quantity}],
        }
    ]


class AmazonConnector(FeedConnector):
    type = "amazon"
    account_keys = ("seller_id", "marketplace_id")
    feed_after_seconds = 120.0
    read_batch_size = GET_LISTING_LIMIT[1]
    lists_sales = True

    def __init__(
        self, site: str, config: ChannelConfig, session: aiohttp.ClientSession, vault: Vault | None = None
    ) -> None:
        super().__init__(site, config, session, vault)
        self.base = (config.api_base or "https://sellingpartnerapi-na.amazon.com").rstrip("/")
        self.seller_id = config.account.get("seller_id", "")
        self.marketplace_id = config.account.get("marketplace_id", "")
        self.product_type = config.account.get("product_type") or "PRODUCT"
        self.channel_code = config.account.get("fulfillment_channel_code") or "DEFAULT"
        self.lwa_url = config.account.get("lwa_url") or LWA_URL
        self.document_budget = RateBudget(*CREATE_DOCUMENT_LIMIT)
        self.feed_budget = RateBudget(*CREATE_FEED_LIMIT)
        self.status_budget = RateBudget(*GET_FEED_LIMIT)
        self.report_budget = RateBudget(*GET_DOCUMENT_LIMIT)
        self.listing_budget = RateBudget(*GET_LISTING_LIMIT)
        self.orders_budget = RateBudget(*GET_ORDERS_LIMIT)
        self.order_items_budget = RateBudget(*GET_ORDER_ITEMS_LIMIT)
        # (AmazonOrderId, canceled) → the order's lines as read: an order is read again only when it is cancelled
        self._lines: dict[tuple[str, bool], list[dict[str, Any]]] = {}
        self.auth = TokenAuth(self._fetch_token)
        self._secrets: set[str] = set()

    @property
    def batch_size(self) -> int:
        return min(super().batch_size, MAX_FEED_MESSAGES)

    async def _fetch_token(self) -> tuple[str, float]:
        creds = await http.load_credentials(self.credentials, ("client_id", "client_secret", "refresh_token"), "Amazon")
        self._secrets.update(v for v in creds.values() if v)
        form = {
            "grant_type": "refresh_token",
            "refresh_token": creds["refresh_token"],
            "client_id": creds["client_id"],
            "client_secret": creds["client_secret"],
        }
        doc = await http.token_grant(
            self.session, self.lwa_url, form, what="Amazon", timeout=self.config.timeout_seconds
        )
        token = str(doc["access_token"])
        self._secrets.add(token)
        return token, http.lifetime(doc, 3600.0)

    # --- one SP-API call ----------------------------------------------------------------------------

    async def _call(
        self,
        budget: RateBudget,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        charged: bool = False,
        role: str = "Product Listing",
    ) -> Any:
        """One call charged to ``budget`` (unless the caller ``charged`` it already); returns the parsed body of a
        2xx or raises the classified error."""
        token = await self.auth.token()  # before the budget: a call that waited for a token must not burst
        if not charged:
            await budget.acquire(1.0)

        async def call(token: str) -> outbound.Answer:
            headers = {"x-amz-access-token": token, "Accept": "application/json"}
            return await outbound.send(
                self.session,
                method,
                f"{self.base}{path}",  # the SKU in the path is percent-encoded (item_path); outbound.send keeps it so
                timeout=self.config.timeout_seconds,
                what="Amazon",
                headers=headers,
                json_body=body,
                params=params,
            )

        answer = await call(token)
        if answer.status in (401, 403):  # Amazon says 403 for an expired token: refresh once
            self.auth.invalidate(token)
            answer = await call(await self.auth.token())
            if answer.status in (401, 403):
                raise AuthDeliveryError(
                    f"Amazon refused a fresh access token ({answer.status}: {self._error_text(answer)});"
                    f" check the app's authorization, its {role} role and the LWA client secret's rotation",
                    http_status=answer.status,
                    excerpt=http.scrub(answer.text, self._secrets),
                )
        self._learn(budget, answer)
        verdict = outbound.classify(answer, LADDER)
        if verdict.kind is Kind.OK:
            budget.succeeded()
            return answer.json()
        raise http.refusal(
            answer,
            verdict,
            "Amazon",
            http.scrub(answer.text, self._secrets),
            budget=budget,
            throttle_wait=throttle_wait(budget.rate),
            throttled=f"Amazon throttled {method} /{path.split('/')[1]} (429)",
            permanent=f"Amazon refused the request ({answer.status}: {self._error_text(answer)})",
        )

    def _error_text(self, answer: outbound.Answer) -> str:
        doc = answer.json()
        errors = doc.get("errors") if isinstance(doc, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return http.scrub(f"{first.get('code', '')} {first.get('message', '')}".strip(), self._secrets)
        return "no details"

    def _learn(self, budget: RateBudget, answer: outbound.Answer) -> None:
        """``x-amzn-RateLimit-Limit``: the rate Amazon applies to this operation for this account."""
        value = answer.header("x-amzn-ratelimit-limit")
        try:
            rate = float(value) if value else 0.0
        except ValueError:
            return
        if rate > 0:
            budget.adopt(rate, budget.bucket.burst)

    async def _transfer(self, method: str, url: str, data: bytes | None = None) -> bytes:
        """Upload to or download from a presigned document URL (its own authorization; never our token)."""
        headers = {"Content-Type": FEED_CONTENT_TYPE} if data is not None else {}
        answer = await outbound.send(
            self.session,
            method,
            url,  # presigned: sent exactly as Amazon wrote it
            timeout=max(self.config.timeout_seconds, 30.0),
            what="Amazon's document storage",
            headers=headers,
            data=data,
        )
        if outbound.classify(answer).kind is not Kind.OK:
            raise TransientDeliveryError(
                f"Amazon's document storage answered {answer.status}", http_status=answer.status
            )
        return answer.body

    # --- single route -----------------------------------------------------------------------------------

    def patch_body(self, quantity: int) -> dict[str, Any]:
        return {"productType": self.product_type, "patches": patches(quantity, self.channel_code)}

    def item_path(self, channel_sku: str) -> str:
        return f"/listings/2021-08-01/items/{quote(self.seller_id, safe='')}/{quote(channel_sku, safe='')}"

    async def send_single(self, update: Update) -> ItemResult:
        path = self.item_path(update.channel_sku)
        doc = await self._call(
            self.budget, "PATCH", path, self.patch_body(update.quantity), {"marketplaceIds": self.marketplace_id}
        )
        doc = doc if isinstance(doc, dict) else {}
        status = doc.get("status")
        if status == "ACCEPTED":
            return ItemResult(None, 200, f"ACCEPTED {doc.get('submissionId', '')}".strip())
        issues = [i for i in doc.get("issues") or [] if isinstance(i, dict) and i.get("severity") == "ERROR"]
        if status == "INVALID" or issues:
            first = issues[0] if issues else {}
            reason = f"{first.get('code', '')} {first.get('message', '')}".strip() or "no issue given"
            error = PermanentDeliveryError(f"Amazon refused SKU {update.channel_sku}: {reason}", http_status=200)
            return ItemResult(error, 200, http.scrub(reason, self._secrets))
        return ItemResult(TransientDeliveryError(f"Amazon answered status {status!r}", http_status=200), 200)

    # --- sales ---------------------------------------------------------------------------------------------

    async def sales_since(
        self, since: dt.datetime, gate: Callable[[], Awaitable[None]]
    ) -> tuple[list[Sale], list[SaleRejection]]:
        # ``gate`` is not awaited: it takes from the push budget, and the Orders API's usage plans are apart from
        # the Listings calls that budget paces. The orders budgets below keep intake inside Amazon's own limits.
        stamp = since.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        params = {
            "MarketplaceIds": self.marketplace_id,
            "LastUpdatedAfter": stamp,
            "MaxResultsPerPage": str(ORDERS_PAGE),
        }
        orders: list[dict[str, Any]] = []
        next_token = ""
        while True:
            # NextToken pages keep the filters: Amazon says it affects only the pagination of the filtered answer
            page = await self._orders_call(
                ORDERS_PATH, self.orders_budget, params | ({"NextToken": next_token} if next_token else {})
            )
            found = page.get("Orders")
            if not isinstance(found, list):
                raise TransientDeliveryError("Amazon's getOrders answer had no Orders list")
            orders.extend(o for o in found if isinstance(o, dict))
            next_token = str(page.get("NextToken") or "")
            if not next_token:
                break
        sales: list[Sale] = []
        skipped: list[SaleRejection] = []
        for order in orders:
            await self._order_sales(order, sales, skipped)
        return sales, skipped

    async def _orders_call(self, path: str, budget: RateBudget, params: Mapping[str, str]) -> dict[str, Any]:
        doc = await self._call(budget, "GET", path, params=params, role="Inventory and Order Tracking")
        payload = doc.get("payload") if isinstance(doc, dict) else None
        if not isinstance(payload, dict):
            raise TransientDeliveryError(f"Amazon's answer to GET {path.split('?')[0]} had no payload")
        return payload

    async def _order_items(self, order_id: str) -> list[dict[str, Any]]:
        path = f"{ORDERS_PATH}/{quote(order_id, safe='')}/orderItems"
        items: list[dict[str, Any]] = []
        next_token = ""
        while True:
            page = await self._orders_call(
                path, self.order_items_budget, {"NextToken": next_token} if next_token else {}
            )
            found = page.get("OrderItems")
            if not isinstance(found, list):
                raise TransientDeliveryError(
                    f"Amazon's getOrderItems answer for order {order_id} had no OrderItems list"
                )
            items.extend(i for i in found if isinstance(i, dict))
            next_token = str(page.get("NextToken") or "")
            if not next_token:
                return items

    async def _order_sales(self, order: dict[str, Any], sales: list[Sale], skipped: list[SaleRejection]) -> None:
        """An order's lines as sales (and, cancelled, as cancellations), with the shop's SKU."""
        order_id = order.get("AmazonOrderId")
        status = order.get("OrderStatus")
        named = order_id if isinstance(order_id, str) else None
        channel = order.get("FulfillmentChannel")
        if channel not in self.config.fulfillment_services:
            message = f"fulfilled by {str(channel)[:16]!r}, which ships its own stock (Amazon's FBA for AFN)"
            skipped.append(SaleRejection(0, named, None, "fulfilled_elsewhere", message))
            return
        canceled = status == CANCELED
        if not canceled and status not in SALE_STATUSES:
            message = f"order status {str(status)[:32]!r} holds no units of the seller's stock"
            skipped.append(SaleRejection(0, named, None, "not_a_sale", message))
            return
        if named is None:
            skipped.append(SaleRejection(0, None, None, "invalid_order", "the order has no AmazonOrderId"))
            return
        kept = (named, canceled)
        if kept not in self._lines:
            self._lines[kept] = await self._order_items(named)
            while len(self._lines) > KEPT_ORDERS:
                del self._lines[next(iter(self._lines))]  # the oldest read
        kinds = ("sale", "cancel") if canceled and self.config.restock_on_cancel else ("sale",)
        # Integrators report Amazon zeroing a cancelled order's QuantityOrdered (not in the model): what this
        # process read before the cancellation is the quantity to give back then.
        sold = {line.get("OrderItemId"): line.get("QuantityOrdered") for line in self._lines.get((named, False), [])}
        for line in self._lines[kept]:
            sku = line.get("SellerSKU")
            quantity = line.get("QuantityOrdered")
            if canceled and quantity == 0:
                quantity = sold.get(line.get("OrderItemId"), quantity)
            item = {"order": named, "line": line.get("OrderItemId"), "sku": sku, "quantity": quantity}
            order_line(self.config, item, kinds, sales, skipped)

    # --- read-back -----------------------------------------------------------------------------------

    @property
    def read_budget(self) -> RateBudget:
        return self.listing_budget  # getListingsItem has its own limit: reads never spend the patches' budget

    def read_cost(self, channel_skus: Sequence[str]) -> float:
        return float(len(set(channel_skus)))  # one getListingsItem per SKU

    async def read(self, channel_skus: Sequence[str]) -> Mapping[str, int | None]:
        return await read_each(channel_skus, self._read_one, SINGLE_CONCURRENCY)

    async def _read_one(self, channel_sku: str) -> int | None:
        params = {"marketplaceIds": self.marketplace_id, "includedData": "fulfillmentAvailability"}
        try:
            # charged: the caller took read_cost from read_budget before the read
            doc = await self._call(self.listing_budget, "GET", self.item_path(channel_sku), params=params, charged=True)
        except PermanentDeliveryError as exc:
            if exc.http_status == 404:
                return None
            raise
        entries = doc.get("fulfillmentAvailability") if isinstance(doc, dict) else None
        for entry in entries or []:
            if isinstance(entry, dict) and entry.get("fulfillmentChannelCode") == self.channel_code:
                return int(entry.get("quantity") or 0)
        return 0

    # --- feed route -------------------------------------------------------------------------------------

    def feed_document(self, updates: Sequence[Update]) -> dict[str, Any]:
        return {
            "header": {"sellerId": self.seller_id, "version": "2.0", "issueLocale": "en_US"},
            "messages": [
                {
                    "messageId": index + 1,
                    "sku": u.channel_sku,
                    "operationType": "PATCH",
                    "productType": self.product_type,
                    "patches": patches(u.quantity, self.channel_code),
                }
                for index, u in enumerate(updates)
            ],
        }

    async def submit_feed(self, updates: Sequence[Update]) -> str:
        spec = {"contentType": FEED_CONTENT_TYPE}
        created = await self._call(self.document_budget, "POST", "/feeds/2021-06-30/documents", spec)
        if not isinstance(created, dict) or not created.get("url") or not created.get("feedDocumentId"):
            raise TransientDeliveryError("Amazon's createFeedDocument answer had no upload URL")
        document = json.dumps(self.feed_document(updates), separators=(",", ":")).encode()
        await self._transfer("PUT", str(created["url"]), document)
        feed_spec = {
            "feedType": "JSON_LISTINGS_FEED",
            "marketplaceIds": [self.marketplace_id],
            "inputFeedDocumentId": str(created["feedDocumentId"]),
        }
        # the caller charged feed_budget already (it chose a feed because a submission was free)
        answer = await self._call(self.feed_budget, "POST", "/feeds/2021-06-30/feeds", feed_spec, charged=True)
        feed_id = answer.get("feedId") if isinstance(answer, dict) else None
        if not feed_id:
            raise TransientDeliveryError("Amazon's createFeed answer had no feedId")
        return str(feed_id)

    async def feed_results(self, feed: Feed) -> dict[str, ItemResult] | None:
        doc = await self._call(self.status_budget, "GET", f"/feeds/2021-06-30/feeds/{quote(feed.feed_id, safe='')}")
        status = doc.get("processingStatus") if isinstance(doc, dict) else None
        if status in ("IN_QUEUE", "IN_PROGRESS"):
            return None
        if status != "DONE":
            retry = TransientDeliveryError(f"Amazon feed {feed.feed_id} ended {status}; its SKUs are sent again")
            return {sku: ItemResult(retry) for sku in feed.quantities}
        report_id = doc.get("resultFeedDocumentId")
        if not report_id:
            return {}
        if self.report_budget.bucket.wait_time(1.0) > 0:
            return None  # getFeedDocument allows one call per 45 s after its burst: read the report next round
        try:
            report = await self._report(str(report_id))
        except DeliveryError:
            return None
        return self._report_results(feed, report)

    async def _report(self, document_id: str) -> Any:
        doc = await self._call(self.report_budget, "GET", f"/feeds/2021-06-30/documents/{quote(document_id, safe='')}")
        if not isinstance(doc, dict) or not doc.get("url"):
            raise TransientDeliveryError("Amazon's getFeedDocument answer had no URL")
        content = await self._transfer("GET", str(doc["url"]))
        if doc.get("compressionAlgorithm") == "GZIP":
            content = gzip.decompress(content)
        try:
            return json.loads(content)
        except ValueError:
            raise TransientDeliveryError("Amazon's processing report was not JSON") from None

    def _report_results(self, feed: Feed, report: Any) -> dict[str, ItemResult]:
        skus = list(feed.quantities)
        results: dict[str, ItemResult] = {}
        for issue in (report or {}).get("issues") or []:
            if not isinstance(issue, dict) or issue.get("severity") != "ERROR":
                continue
            index = issue.get("messageId")
            sku = skus[index - 1] if isinstance(index, int) and 0 < index <= len(skus) else issue.get("sku")
            if sku not in feed.quantities:
                continue
            reason = f"{issue.get('code', '')} {issue.get('message', '')}".strip()
            error = PermanentDeliveryError(f"Amazon refused SKU {sku} in feed {feed.feed_id}: {reason}")
            results[sku] = ItemResult(error, 200, http.scrub(reason, self._secrets))
        return results
