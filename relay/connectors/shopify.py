"""Shopify: absolute quantities through the GraphQL Admin API's ``inventorySetQuantities``.

One call sets up to 250 (inventory item, location) pairs (every GraphQL input array is capped at
250). From API 2026-04 each entry must carry ``changeFromQuantity`` and the mutation an
``@idempotent(key:)`` directive. The shop is the source of truth here, so ``changeFromQuantity`` is
an explicit ``null`` (no compare-and-swap: the relay's coalescing already orders versions), and the
key is derived from the batch's idempotency keys, so a retry of the same batch is deduplicated by
Shopify instead of applied twice. Versions before 2026-01 get ``ignoreCompareQuantity: true``.

SKU → inventory item is resolved with ``productVariants(query: "sku:…")`` in bulk and cached.
The exchange itself (tokens, sending a query, judging its answer, learning the bucket) is
``shopify_api.ShopifyAdmin``.

Budget: Shopify limits by *cost points* per app and store (Standard plan 100 points/s), so this
channel's ``rate`` is in points. Every answer's ``extensions.cost.throttleStatus`` tells the real
bucket; the budget adopts it and never believes it has more than ``currentlyAvailable``.

Answers: 401 → refresh once then pause; 403 (missing scope) → pause; 429, 5xx and a ``THROTTLED``
error → retry; other 4xx and ``MAX_COST_EXCEEDED`` → dead letter. ``userErrors`` point at one entry
(``["input", "quantities", "3", …]``) and fail only that SKU; the mutation is all-or-nothing, so
the entries it did not apply because of another's error are retried without it.

Read-back: ``nodes(ids:)`` on the cached inventory items, each item's ``inventoryLevel(locationId:)``
``quantities(names: ["available"])``; up to 100 SKUs per query. SKUs not cached yet are resolved
first with the same lookup the push uses (its cost is part of ``read_cost``). None: no variant has
the SKU, several do, or the item is not stocked at the location.

Sales: order webhooks (relay/intake/shopify.py), and a sweep of the orders updated since a cursor that catches
what the webhooks missed, under the same keys (``shopify_orders.OrdersReader``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from ..config import ChannelConfig
from ..delivery.outbound import excerpt
from ..errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from ..intake.sales import Sale, SaleRejection
from ..vault import Vault
from .base import Connector, ItemResult, SalesGate, Update
from .shopify_api import SET_COST, ShopifyAdmin
from .shopify_orders import OrdersReader

API_VERSION = "2026-04"
MAX_BATCH = 250  # every GraphQL input array is capped at 250 items
LOOKUP_CHUNK = 50  # SKUs per productVariants search
READ_BATCH = 100  # SKUs per read: 100 items × 3 objects ≈ 300 points, well under a query's 1,000
STALE = {"CHANGE_FROM_QUANTITY_STALE", "COMPARE_QUANTITY_STALE"}

SET_MUTATION = """mutation StockRelaySet($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input)%s {
    inventoryAdjustmentGroup { id }
    userErrors { field message code }
  }
}"""

LOOKUP_QUERY = """query StockRelayVariants($first: Int!, $query: String!) {
  productVariants(first: $first, query: $query) {
    nodes { sku inventoryItem { id } }
  }
}"""


READ_QUERY = """query StockRelayLevels($ids: [ID!]!, $locationId: ID!) {
  nodes(ids: $ids) {
    ... on InventoryItem {
      id
      inventoryLevel(locationId: $locationId) { quantities(names: ["available"]) { name quantity } }
    }
  }
}"""


def gid(kind: str, value: str) -> str:
    """``123`` or ``gid://shopify/Location/123`` → the GID."""
    value = value.strip()
    return value if value.startswith("gid://") else f"gid://shopify/{kind}/{value}"


def shop_domain(shop: str) -> str:
    shop = shop.strip().removeprefix("https://").rstrip("/")
    return shop if "." in shop else f"{shop}.myshopify.com"


def lookup_cost(first: int) -> float:
    """Requested cost of LOOKUP_QUERY: a connection costs 2 + first × (variant + inventory item)."""
    return 2.0 + first * 2.0


def read_query_cost(items: int) -> float:
    """Requested cost of READ_QUERY: one point per object (item, level, quantity) per item, plus the query."""
    return 1.0 + items * 3.0


def search_term(sku: str) -> str:
    return 'sku:"' + sku.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ShopifyConnector(Connector):
    type = "shopify"
    account_keys = ("shop", "location_id")
    read_batch_size = READ_BATCH
    lists_sales = True

    def __init__(
        self, site: str, config: ChannelConfig, session: aiohttp.ClientSession, vault: Vault | None = None
    ) -> None:
        super().__init__(site, config, session, vault)
        self.shop = shop_domain(config.account.get("shop", ""))
        self.base = (config.api_base or f"https://{self.shop}").rstrip("/")
        self.version = config.account.get("api_version") or API_VERSION
        self.location = gid("Location", config.account.get("location_id", ""))
        self.items: dict[str, str] = {}  # channel SKU → inventory item GID
        timeout = config.timeout_seconds
        self.api = ShopifyAdmin(session, self.base, self.version, self.credentials, self.budget, timeout)
        self.auth = self.api.auth

    @property
    def batch_size(self) -> int:
        return min(self.config.batch_size, MAX_BATCH)

    def cost(self, updates: Sequence[Update]) -> float:
        return SET_COST

    @property
    def graphql_url(self) -> str:
        return self.api.graphql_url

    # --- SKU resolution ------------------------------------------------------------------------

    def _lookups(self, skus: Sequence[str]) -> list[list[str]]:
        """The uncached SKUs of ``skus``, in the chunks one lookup query each resolves."""
        missing = [s for s in dict.fromkeys(skus) if s not in self.items]
        return [missing[start : start + LOOKUP_CHUNK] for start in range(0, len(missing), LOOKUP_CHUNK)]

    async def _resolve(self, skus: Sequence[str], charged: bool = False) -> dict[str, str]:
        """Fill the cache for ``skus`` (each lookup charged unless the caller ``charged`` it already); returns a
        readable reason for each SKU that cannot be set."""
        problems: dict[str, str] = {}
        for chunk in self._lookups(skus):
            first = min(MAX_BATCH, 2 * len(chunk))
            if not charged:
                await self.budget.acquire(lookup_cost(first))
            query = " OR ".join(search_term(s) for s in chunk)
            data = await self.api.graphql(LOOKUP_QUERY, {"first": first, "query": query})
            found: dict[str, list[str]] = {}
            nodes = ((data or {}).get("productVariants") or {}).get("nodes") or []
            for node in nodes:
                item = (node or {}).get("inventoryItem") or {}
                if node.get("sku") in chunk and item.get("id"):
                    found.setdefault(node["sku"], []).append(str(item["id"]))
            for sku in chunk:
                ids = sorted(set(found.get(sku, [])))
                if len(ids) == 1:
                    self.items[sku] = ids[0]
                elif not ids:
                    problems[sku] = f"SKU {sku} is not listed on Shopify shop {self.shop}"
                else:
                    problems[sku] = f"SKU {sku} matches {len(ids)} variants on Shopify shop {self.shop}; make it unique"
        return problems

    # --- the set ---------------------------------------------------------------------------------

    def _modern(self) -> bool:
        return self.version >= "2026-01" or self.version == "unstable"

    def mutation(self, updates: Sequence[Update]) -> tuple[str, dict[str, Any]]:
        """The query text and variables for one batch (resolved SKUs only)."""
        digest = hashlib.sha256("\n".join(f"{u.idempotency_key}:{u.quantity}" for u in updates).encode()).digest()
        key = str(uuid.UUID(bytes=digest[:16]))
        entries: list[dict[str, Any]] = []
        for u in updates:
            entry: dict[str, Any] = {
                "inventoryItemId": self.items[u.channel_sku],
                "locationId": self.location,
                "quantity": u.quantity,
            }
            if self._modern():
                entry["changeFromQuantity"] = None  # explicit opt-out: the shop is the source of truth
            entries.append(entry)
        payload: dict[str, Any] = {
            "name": "available",
            "reason": "correction",
            "referenceDocumentUri": f"gid://stock-relay/StockBatch/{key}",
            "quantities": entries,
        }
        if not self._modern():
            payload["ignoreCompareQuantity"] = True
        directive = f' @idempotent(key: "{key}")' if self._modern() else ""
        return SET_MUTATION % directive, {"input": payload}

    async def push(self, updates: Sequence[Update]) -> Mapping[str, ItemResult]:
        results: dict[str, ItemResult] = {}
        problems = await self._resolve([u.channel_sku for u in updates])
        for u in updates:
            if u.channel_sku in problems:
                results[u.sku] = ItemResult(PermanentDeliveryError(problems[u.channel_sku]))
        ready = [u for u in updates if u.channel_sku not in problems]
        if not ready:
            return results
        query, variables = self.mutation(ready)
        data = await self.api.graphql(query, variables)
        self.budget.succeeded()
        outcome = (data or {}).get("inventorySetQuantities") or {}
        results.update(self._judge(ready, outcome))
        return results

    # --- sales -----------------------------------------------------------------------------------

    async def sales_since(self, since: dt.datetime, gate: SalesGate) -> tuple[list[Sale], list[SaleRejection]]:
        return await OrdersReader(self.api, self.config, gate).read(since)

    # --- read-back -------------------------------------------------------------------------------

    def read_cost(self, channel_skus: Sequence[str]) -> float:
        """Points: the lookups of uncached SKUs, then one level query for all of them."""
        lookups = sum(lookup_cost(min(MAX_BATCH, 2 * len(chunk))) for chunk in self._lookups(channel_skus))
        unique = len(set(channel_skus))
        return lookups + sum(read_query_cost(min(READ_BATCH, unique - start)) for start in range(0, unique, READ_BATCH))

    async def read(self, channel_skus: Sequence[str]) -> Mapping[str, int | None]:
        await self._resolve(channel_skus, charged=True)
        items = sorted({self.items[s] for s in channel_skus if s in self.items})
        available: dict[str, int] = {}
        for start in range(0, len(items), READ_BATCH):
            ids = items[start : start + READ_BATCH]
            data = await self.api.graphql(READ_QUERY, {"ids": ids, "locationId": self.location})
            self.budget.succeeded()
            nodes = (data or {}).get("nodes") or []
            found = set()
            for node in nodes:
                if not isinstance(node, dict) or not node.get("id"):
                    continue
                found.add(str(node["id"]))
                level = node.get("inventoryLevel") or {}
                for quantity in level.get("quantities") or []:
                    if isinstance(quantity, dict) and quantity.get("name") == "available":
                        available[str(node["id"])] = int(quantity.get("quantity") or 0)
            for sku in [s for s in channel_skus if self.items.get(s) in ids and self.items[s] not in found]:
                self.items.pop(sku, None)  # the item is gone: resolve the SKU again next time
        return {sku: available.get(self.items.get(sku, "")) for sku in channel_skus}

    def _judge(self, ready: Sequence[Update], outcome: Mapping[str, Any]) -> dict[str, ItemResult]:
        errors: dict[int, DeliveryError] = {}
        general: list[str] = []
        for error in outcome.get("userErrors") or []:
            index = _entry_index(error.get("field"))
            code = str(error.get("code") or "")
            message = excerpt(f"{code}: {error.get('message') or ''}".strip(": "))
            if index is None or not 0 <= index < len(ready):
                general.append(message)
                continue
            sku = ready[index].channel_sku
            if code in STALE:
                errors[index] = TransientDeliveryError(f"Shopify saw a concurrent change of {sku}: {message}")
            else:
                self.items.pop(sku, None)  # re-resolve on replay: the variant may have been recreated
                errors[index] = PermanentDeliveryError(f"Shopify refused {sku}: {message}")
        applied = outcome.get("inventoryAdjustmentGroup") is not None or not (errors or general)
        results: dict[str, ItemResult] = {}
        for index, u in enumerate(ready):
            if index in errors:
                results[u.sku] = ItemResult(errors[index], 200, errors[index].message)
            elif general:
                results[u.sku] = ItemResult(PermanentDeliveryError(f"Shopify refused the batch: {general[0]}"), 200)
            elif not applied:
                error = TransientDeliveryError("not applied: Shopify refused another item of the same call")
                results[u.sku] = ItemResult(error, 200)
            else:
                results[u.sku] = ItemResult(None, 200)
        return results


def _entry_index(field: Any) -> int | None:
    """``["input", "quantities", "3", "quantity"]`` → 3."""
    if not isinstance(field, list):
        return None
    for before, value in zip(field, field[1:], strict=False):
        if before == "quantities" and str(value).isdigit():
            return int(value)
    return None
