"""A fake Shopify store: the GraphQL Admin API as the stock relay uses it (API 2026-04).

- ``POST /admin/oauth/access_token``: client-credentials and (rotating) refresh-token grants.
- ``POST /admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token``:
  ``productVariants(first, query: "sku:… OR …")``, ``inventorySetQuantities`` and (read-back)
  ``nodes(ids:) { … on InventoryItem { id inventoryLevel(locationId:) { quantities(names:) { name quantity } } } }``:
  a node is null for an unknown id, ``inventoryLevel`` null when the item is not stocked at the location.
- Cost-based leaky bucket (``restore_rate`` points/s, ``bucket`` points); a query whose requested
  cost is not available answers HTTP 200 with ``errors[].extensions.code = "THROTTLED"`` and no
  data, as Shopify does. Every answer carries ``extensions.cost.throttleStatus``.
- From 2026-04 the set mutation must carry ``@idempotent(key:)`` and every entry
  ``changeFromQuantity``; a repeated key returns the first answer without applying anything.
- The mutation is all-or-nothing: any ``userErrors`` (path ``["input","quantities","i",…]``)
  and nothing is applied.
- Orders (``sell``, ``cancel``, ``refund``) change the store's own available quantity, as Shopify does, and are
  delivered as the ``orders/create``, ``orders/cancelled`` and ``refunds/create`` webhooks (REST Order and Refund
  bodies) to ``webhook_url``, signed ``X-Shopify-Hmac-Sha256`` = base64(HMAC-SHA256(client secret, body)), with
  ``X-Shopify-Event-Id`` per event and ``X-Shopify-Webhook-Id`` per delivery; ``deliver`` resends on demand.
  With no ``webhook_url`` the event is lost, as one Shopify gave up on is (what the orders sweep must catch).
- The same orders in GraphQL form (the sweep): ``orders(first, after, query: "updated_at:>='ISO'",
  sortKey: UPDATED_AT)``, ``order(id:)`` and ``refund(id:)``, answering only the fields selected, with cursor
  paging of the ``orders``, ``lineItems`` and ``refundLineItems`` connections and ``refunds(first:)`` truncated;
  requested cost as Shopify computes it (object 1, connection 2 + first × node, list first × element; pageInfo
  free). A search this fake cannot read is answered with an error (Shopify would ignore it: stricter, to catch
  the relay's mistakes). ``page_failures`` scripts an answer for the orders page at an offset: 503, or 429 for
  Shopify's THROTTLED.

Defaults are the Standard plan's published 100 points/s; the bucket size is not published per
plan any more, so it defaults to 1,000 points (the largest single query). Scale both for benches.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from graphql import (
    EnumValueNode,
    FieldNode,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    ValueNode,
    VariableNode,
    parse,
)
from graphql.error import GraphQLSyntaxError

from .common import Bucket, FakeMarketplace, TokenIssuer

MUTATION_COST = 10.0


def value_of(node: ValueNode, variables: dict[str, Any]) -> Any:
    """An argument's value as the request gives it: a variable, a string, an integer, an enum or a list."""
    if isinstance(node, VariableNode):
        return variables.get(node.name.value)
    if isinstance(node, StringValueNode):
        return node.value
    if isinstance(node, ListValueNode):
        return [value_of(v, variables) for v in node.values]
    if isinstance(node, IntValueNode):
        return int(node.value)
    if isinstance(node, EnumValueNode):
        return node.value
    return None


def subfield(selection: SelectionSetNode | None, name: str) -> FieldNode | None:
    """The field ``name`` in a selection set, looking inside inline fragments too."""
    for item in selection.selections if selection else ():
        if isinstance(item, FieldNode) and item.name.value == name:
            return item
        if isinstance(item, InlineFragmentNode):
            found = subfield(item.selection_set, name)
            if found is not None:
                return found
    return None


def argument(field: FieldNode, name: str, variables: dict[str, Any]) -> Any:
    for arg in field.arguments or ():
        if arg.name.value == name:
            return value_of(arg.value, variables)
    return None


class FakeShopify(FakeMarketplace):
    def __init__(
        self,
        restore_rate: float = 100.0,
        bucket: float = 1000.0,
        token_lifetime: float = 86400.0,
        location_id: str = "gid://shopify/Location/1",
    ) -> None:

        self.points = Bucket(restore_rate, bucket)
        self.tokens = TokenIssuer(token_lifetime, "shpat")
        self.client_id = "shopify-client"
        self.client_secret = "shopify-secret-0123456789"
        self.location_id = location_id
        self.variants: dict[str, str] = {}  # sku → inventory item gid
        self.levels: dict[tuple[str, str], int] = {}  # (item, location) → available
        self.not_stocked: set[str] = set()  # items not stocked at the location
        self.idempotency: dict[str, dict[str, Any]] = {}
        self.applied_keys: list[str] = []
        self.spent = 0.0  # cost points taken by the queries answered (what a read's read_cost must cover)
        self.webhook_url = ""  # where order webhooks go
        self.orders: dict[int, dict[str, Any]] = {}
        self.refunds: dict[int, list[dict[str, Any]]] = {}  # order id → its refunds (REST shape)
        self.page_failures: dict[int, int] = {}  # orders page offset → the status its next query gets, for tests
        self.deliveries: list[tuple[str, str, str, int]] = []  # (topic, event id, webhook id, status answered)
        self._ids = itertools.count(820982911946154508)
        super().__init__()

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/admin/oauth/access_token", self.access_token)
        router.add_post("/admin/api/{version}/graphql.json", self.graphql)

    # --- state helpers for tests and benches ------------------------------------------------------

    def add_variant(self, sku: str, quantity: int = 0, stocked: bool = True) -> str:
        item = f"gid://shopify/InventoryItem/{1000 + len(self.variants)}"
        self.variants[sku] = item
        self.levels[(item, self.location_id)] = quantity
        if not stocked:
            self.not_stocked.add(item)
        return item

    def set_quantity(self, sku: str, quantity: int) -> None:
        """Someone edits the level in Shopify's admin, behind the relay's back."""
        self.levels[(self.variants[sku], self.location_id)] = quantity

    def quantity(self, sku: str) -> int | None:
        return self.levels.get((self.variants.get(sku, ""), self.location_id))

    # --- orders and their webhooks -------------------------------------------------------------------

    def _move(self, sku: str | None, delta: int) -> None:
        if sku in self.variants:
            key = (self.variants[sku], self.location_id)
            self.levels[key] = self.levels.get(key, 0) + delta

    async def sell(
        self, sku: str | None, quantity: int = 1, fulfillment_service: str = "manual", lines: int = 1
    ) -> dict[str, Any]:
        """A customer orders ``lines`` lines of ``quantity`` each: the store's available quantity drops (for its
        own stock), then the webhook."""
        order_id = next(self._ids)
        items = [
            {
                "id": next(self._ids),
                "sku": sku,
                "quantity": quantity,
                "variant_id": next(self._ids),
                "product_id": next(self._ids),
                "fulfillment_service": fulfillment_service,
                "fulfillment_status": None,
            }
            for _ in range(lines)
        ]
        order = {
            "id": order_id,
            "name": f"#{1000 + len(self.orders) + 1}",
            "cancelled_at": None,
            "updated_at": _iso(),
            "line_items": items,
        }
        self.orders[order_id] = order
        if fulfillment_service == "manual":
            self._move(sku, -quantity * lines)
        await self.deliver("orders/create", order)
        return order

    async def cancel(self, order_id: int, restock: bool = True) -> dict[str, Any]:
        order = self.orders[order_id]
        order.update(cancelled_at=_iso(), updated_at=_iso())
        if restock:
            for line in order["line_items"]:
                if line["fulfillment_service"] == "manual":
                    self._move(line["sku"], line["quantity"])
        await self.deliver("orders/cancelled", order)
        return order

    async def refund(self, order_id: int, quantity: int = 1, restock_type: str = "return") -> dict[str, Any]:
        """A refund of the order's first line; restocked in the store unless ``no_restock``. ``cancel`` is the refund
        Shopify records for a cancellation's restock (the cancellation moved the stock already)."""
        line = self.orders[order_id]["line_items"][0]
        refund = {
            "id": next(self._ids),
            "order_id": order_id,
            "created_at": _iso(),
            "refund_line_items": [
                {
                    "id": next(self._ids),
                    "line_item_id": line["id"],
                    "quantity": quantity,
                    "restock_type": restock_type,
                    "line_item": dict(line),
                }
            ],
        }
        if restock_type not in ("no_restock", "cancel"):
            self._move(line["sku"], quantity)
        self.refunds.setdefault(order_id, []).append(refund)
        self.orders[order_id]["updated_at"] = _iso()
        await self.deliver("refunds/create", refund)
        return refund

    async def deliver(
        self, topic: str, body: Any, event_id: str | None = None, attempts: int = 1, secret: str | None = None
    ) -> list[int]:
        """POST one event to ``webhook_url`` as Shopify does; a failed delivery is retried (each retry keeps the
        webhook id) up to ``attempts`` times. ``event_id`` given: a repeat of that event. The statuses answered."""
        raw = json.dumps(body).encode()
        event = event_id or str(uuid.uuid4())
        webhook = str(uuid.uuid4())
        digest = hmac.new((secret or self.client_secret).encode(), raw, hashlib.sha256).digest()
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
            "X-Shopify-Shop-Domain": "fake-store.myshopify.com",
            "X-Shopify-Webhook-Id": webhook,
            "X-Shopify-Event-Id": event,
            "X-Shopify-API-Version": "2026-04",
            "X-Shopify-Triggered-At": _iso(),
        }
        statuses: list[int] = []
        if not self.webhook_url:
            return statuses  # nobody to deliver to: the event is lost
        async with aiohttp.ClientSession() as session:
            for _ in range(attempts):
                async with session.post(self.webhook_url, data=raw, headers=headers) as response:
                    statuses.append(response.status)
                self.deliveries.append((topic, event, webhook, statuses[-1]))
                if statuses[-1] == 200:
                    break
        return statuses

    # --- endpoints ----------------------------------------------------------------------------------

    async def access_token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = form.get("grant_type")
        if grant == "client_credentials":
            token, lifetime = self.tokens.issue()
            return web.json_response({"access_token": token, "scope": "write_inventory", "expires_in": int(lifetime)})
        if grant == "refresh_token":
            new_refresh = self.tokens.use_refresh(str(form.get("refresh_token", "")), rotate=True)
            if new_refresh is None:
                return web.json_response({"error": "invalid_grant"}, status=400)
            token, lifetime = self.tokens.issue()
            return web.json_response(
                {
                    "access_token": token,
                    "expires_in": int(lifetime),
                    "refresh_token": new_refresh,
                    "scope": "write_inventory",
                }
            )
        return web.json_response({"error": "unsupported_grant_type"}, status=400)

    def _cost(self, requested: float, actual: float | None = None) -> dict[str, Any]:
        return {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": actual,
                "throttleStatus": {
                    "maximumAvailable": self.points.burst,
                    "currentlyAvailable": int(self.points.available),
                    "restoreRate": self.points.rate,
                },
            }
        }

    async def graphql(self, request: web.Request) -> web.Response:
        if not self.tokens.valid(request.headers.get("X-Shopify-Access-Token")):
            return web.json_response(
                {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}, status=401
            )
        version = request.match_info["version"]
        body = await request.json()
        try:
            document = parse(body["query"])
        except (GraphQLSyntaxError, KeyError, TypeError):
            return web.json_response({"errors": [{"message": "syntax error"}]}, status=400)
        operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
        field = next(s for s in operation.selection_set.selections if isinstance(s, FieldNode))
        variables = body.get("variables") or {}
        if field.name.value == "productVariants":
            requested = 2.0 + int(variables.get("first", 1)) * 2.0
        elif field.name.value == "nodes":
            requested = 1.0 + 3.0 * len(argument(field, "ids", variables) or [])
        elif field.name.value in ORDER_FIELDS:
            requested = query_cost(field, variables)
        else:
            requested = MUTATION_COST
        if field.name.value == "orders":
            offset = _offset(argument(field, "after", variables))
            if offset in self.page_failures:
                return self._page_failure(self.page_failures.pop(offset), requested)
        if self.points.take(requested):
            self.spent += requested
        else:
            self.throttled += 1
            return web.json_response(
                {
                    "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                    "extensions": self._cost(requested),
                }
            )
        if field.name.value == "productVariants":
            data = {"productVariants": self._variants(variables)}
        elif field.name.value == "inventorySetQuantities":
            result = self._set(version, field, variables)
            if "errors" in result:
                return web.json_response({**result, "extensions": self._cost(requested, requested)})
            data = {"inventorySetQuantities": result}
        elif field.name.value == "nodes":
            data = {"nodes": self._nodes(field, variables)}
        elif field.name.value in ORDER_FIELDS:
            try:
                data = {_key(field): self._orders_field(field, variables)}
            except ValueError as exc:
                return web.json_response({"errors": [{"message": str(exc)}], "extensions": self._cost(requested)})
        else:
            return web.json_response({"errors": [{"message": f"field {field.name.value} not in this fake"}]})
        return web.json_response({"data": data, "extensions": self._cost(requested, requested)})

    def _page_failure(self, status: int, requested: float) -> web.Response:
        if status == 429:  # Shopify throttles GraphQL with HTTP 200 and a THROTTLED error
            self.throttled += 1
            error = {"message": "Throttled", "extensions": {"code": "THROTTLED"}}
            return web.json_response({"errors": [error], "extensions": self._cost(requested)})
        return web.json_response({"errors": "scripted failure"}, status=status)

    # --- orders in GraphQL form ------------------------------------------------------------------------

    def graphql_order(self, order_id: int) -> dict[str, Any]:
        """The REST order and its refunds as the GraphQL ``Order`` (the fields the relay may select)."""
        order = self.orders[order_id]
        lines = {line["id"]: _graphql_line(line) for line in order["line_items"]}
        refunds = [
            {
                "id": f"gid://shopify/Refund/{refund['id']}",
                "legacyResourceId": str(refund["id"]),
                "createdAt": refund["created_at"],
                "refundLineItems": [
                    {
                        "id": f"gid://shopify/RefundLineItem/{item['id']}",
                        "quantity": item["quantity"],
                        "restockType": str(item["restock_type"]).upper(),
                        "lineItem": lines[item["line_item_id"]],
                    }
                    for item in refund["refund_line_items"]
                ],
            }
            for refund in self.refunds.get(order_id, [])
        ]
        return {
            "id": f"gid://shopify/Order/{order_id}",
            "legacyResourceId": str(order_id),
            "name": order["name"],
            "updatedAt": order["updated_at"],
            "cancelledAt": order["cancelled_at"],
            "lineItems": list(lines.values()),
            "refunds": refunds,
        }

    def _orders_field(self, field: FieldNode, variables: dict[str, Any]) -> Any:
        name = field.name.value
        if name == "orders":
            search = argument(field, "query", variables) or ""
            match = SEARCH.match(search)
            if search and match is None:
                raise ValueError(f"this fake reads only updated_at:>='ISO' searches, not {search!r}")
            since = datetime.fromisoformat(match.group(2).replace("Z", "+00:00")) if match else None
            found = [self.graphql_order(order_id) for order_id in self.orders]
            if since is not None:
                strict = match is not None and match.group(1) == ">"
                found = [
                    o for o in found
                    if (at := datetime.fromisoformat(o["updatedAt"])) > since or (not strict and at == since)
                ]  # fmt: skip
            if argument(field, "sortKey", variables) == "UPDATED_AT":
                found.sort(key=lambda o: (o["updatedAt"], int(o["legacyResourceId"])))
            return _render(field, found, variables)
        wanted = str(argument(field, "id", variables) or "")
        if name == "order":
            number = wanted.removeprefix("gid://shopify/Order/")
            order = self.graphql_order(int(number)) if number.isdigit() and int(number) in self.orders else None
            return _render(field, order, variables)
        for order_id in self.orders:  # refund(id:)
            for refund in self.graphql_order(order_id)["refunds"]:
                if refund["id"] == wanted:
                    return _render(field, refund, variables)
        return None

    def _variants(self, variables: dict[str, Any]) -> dict[str, Any]:
        wanted = re.findall(r'sku:"((?:[^"\\]|\\.)*)"', str(variables.get("query", "")))
        skus = [w.replace('\\"', '"').replace("\\\\", "\\") for w in wanted]
        nodes = [{"sku": s, "inventoryItem": {"id": self.variants[s]}} for s in skus if s in self.variants]
        return {"nodes": nodes[: int(variables.get("first", 1))]}

    def _nodes(self, field: FieldNode, variables: dict[str, Any]) -> list[dict[str, Any] | None]:
        """InventoryItem nodes with the requested level's quantities (only what the relay's read selects)."""
        items = set(self.variants.values())
        level_field = subfield(field.selection_set, "inventoryLevel")
        location = argument(level_field, "locationId", variables) if level_field else None
        quantities_field = subfield(level_field.selection_set, "quantities") if level_field else None
        names = (argument(quantities_field, "names", variables) if quantities_field else None) or []
        nodes: list[dict[str, Any] | None] = []
        for item in argument(field, "ids", variables) or []:
            if item not in items:
                nodes.append(None)
                continue
            node: dict[str, Any] = {"id": item}
            if level_field is not None:
                stocked = (item, location) in self.levels and item not in self.not_stocked
                level = {
                    "quantities": [
                        {"name": n, "quantity": self.levels[(item, location)] if n == "available" else 0} for n in names
                    ]
                }
                node["inventoryLevel"] = level if stocked else None
            nodes.append(node)
        return nodes

    def _set(self, version: str, field: FieldNode, variables: dict[str, Any]) -> dict[str, Any]:
        modern = version >= "2026-04"
        key = None
        for directive in field.directives or ():
            if directive.name.value == "idempotent":
                for arg in directive.arguments:
                    if arg.name.value == "key" and isinstance(arg.value, StringValueNode):
                        key = arg.value.value
        if modern and key is None:
            return {
                "errors": [{"message": "The @idempotent directive is required", "extensions": {"code": "BAD_REQUEST"}}]
            }
        if key is not None and key in self.idempotency:
            return self.idempotency[key]
        payload = variables.get("input") or {}
        user_errors = []
        entries = payload.get("quantities") or []
        if payload.get("name") not in ("available", "on_hand"):
            user_errors.append({"field": ["input", "name"], "message": "invalid name", "code": "INVALID_NAME"})
        for index, entry in enumerate(entries):
            path = ["input", "quantities", str(index)]
            item, location = entry.get("inventoryItemId"), entry.get("locationId")
            if modern and "changeFromQuantity" not in entry:
                user_errors.append(
                    {
                        "field": [*path, "changeFromQuantity"],
                        "message": "changeFromQuantity is required",
                        "code": "INVALID",
                    }
                )
            elif (item, location) not in self.levels:
                code = "INVALID_LOCATION" if location != self.location_id else "INVALID_INVENTORY_ITEM"
                user_errors.append({"field": [*path, "inventoryItemId"], "message": "not found", "code": code})
            elif item in self.not_stocked:
                user_errors.append(
                    {
                        "field": [*path, "locationId"],
                        "message": "The specified inventory item is not stocked at the location.",
                        "code": "ITEM_NOT_STOCKED_AT_LOCATION",
                    }
                )
            elif int(entry.get("quantity", -1)) < 0:
                user_errors.append(
                    {"field": [*path, "quantity"], "message": "can't be negative", "code": "INVALID_QUANTITY_NEGATIVE"}
                )
        result: dict[str, Any]
        if user_errors:
            result = {"inventoryAdjustmentGroup": None, "userErrors": user_errors}
        else:
            for entry in entries:
                self.levels[(entry["inventoryItemId"], entry["locationId"])] = int(entry["quantity"])
            result = {
                "inventoryAdjustmentGroup": {"id": f"gid://shopify/InventoryAdjustmentGroup/{len(self.applied_keys)}"},
                "userErrors": [],
            }
            self.applied_keys.append(key or "")
        if key is not None:
            self.idempotency[key] = result
        return result


ORDER_FIELDS = ("orders", "order", "refund")
CONNECTIONS = ("orders", "lineItems", "refundLineItems")
SEARCH = re.compile(r"^updated_at:(>=?)'?([0-9T:.+-]+Z?)'?$")


def _key(field: FieldNode) -> str:
    return field.alias.value if field.alias else field.name.value


def _offset(cursor: Any) -> int:
    """A connection cursor is the position after which the next page starts (opaque to the client)."""
    try:
        return int(base64.b64decode(str(cursor)).decode().removeprefix("after:")) if cursor else 0
    except ValueError:
        return 0


def _render(field: FieldNode, value: Any, variables: dict[str, Any]) -> Any:
    """``value`` answered as ``field`` selects it: connections paged by first/after, lists cut at first."""
    first = argument(field, "first", variables)
    if field.name.value in CONNECTIONS and isinstance(value, list):
        start = _offset(argument(field, "after", variables))
        size = int(first) if first is not None else len(value)
        page = value[start : start + size]
        cursors = [base64.b64encode(f"after:{start + i + 1}".encode()).decode() for i in range(len(page))]
        value = {
            "nodes": page,
            "edges": [{"cursor": c, "node": n} for c, n in zip(cursors, page, strict=True)],
            "pageInfo": {
                "hasNextPage": start + size < len(value),
                "hasPreviousPage": start > 0,
                "startCursor": cursors[0] if cursors else None,
                "endCursor": cursors[-1] if cursors else None,
            },
        }
    elif isinstance(value, list) and first is not None:
        value = value[: int(first)]
    if field.selection_set is None or value is None:
        return value
    if isinstance(value, list):
        return [_select(field.selection_set, v, variables) for v in value]
    return _select(field.selection_set, value, variables)


def _select(selection: SelectionSetNode, value: dict[str, Any], variables: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in selection.selections:
        if isinstance(item, InlineFragmentNode) and item.selection_set is not None:
            out.update(_select(item.selection_set, value, variables))
        elif isinstance(item, FieldNode):
            out[_key(item)] = _render(item, value.get(item.name.value), variables)
    return out


def query_cost(field: FieldNode, variables: dict[str, Any]) -> float:
    """Requested cost as Shopify computes it before running a query: scalars 0, an object 1 plus its fields, a
    connection 2 + first × its node, a list first × its element (pageInfo is not charged here)."""
    if field.selection_set is None or field.name.value == "pageInfo":
        return 0.0
    children = sum(query_cost(f, variables) for f in field.selection_set.selections if isinstance(f, FieldNode))
    first = argument(field, "first", variables)
    if field.name.value in CONNECTIONS:  # charged by the nodes it may return (only ``nodes`` is read here)
        nodes = subfield(field.selection_set, "nodes")
        inner = nodes.selection_set.selections if nodes is not None and nodes.selection_set else ()
        per_node = 1.0 + sum(query_cost(f, variables) for f in inner if isinstance(f, FieldNode))
        return 2.0 + int(first or 0) * per_node
    if first is not None:
        return int(first) * (1.0 + children)
    return 1.0 + children


def _graphql_line(line: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"gid://shopify/LineItem/{line['id']}",
        "sku": line["sku"],
        "quantity": line["quantity"],
        "currentQuantity": line["quantity"],
        "fulfillmentService": {"handle": line["fulfillment_service"]},
    }


def _iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
