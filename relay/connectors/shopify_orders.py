"""Shopify's orders read for sales intake (relay/intake/sweep.py): the sweep that catches what webhooks missed.

Shopify's webhooks (relay/intake/shopify.py) bring each sale at once, but a delivery Shopify gave up on (after
4 hours of failures), or one lost with the relay's address, would never reach the shop. The sweep reads
``orders(first: 10, after:, query: "updated_at:>='…'", sortKey: UPDATED_AT)`` since the sweeper's cursor (minus its
overlap) and turns each order into the very lines the webhooks would have given: the GraphQL order is put in the
REST shape and handed to the webhook path's own ``order_sales`` / ``refund_sales``, so a line has one key,
``CHANNEL:<order id>:<line item id>`` (``:cancel``, ``:refund:<refund id>``) with the numeric ids
(``legacyResourceId``, the line's GID's number), whichever path saw it first, and the same filters apply
(``fulfillment_services``, ``restock_on_cancel``, ``restock_on_refund``). Ascending ``UPDATED_AT`` with cursor
paging means an order changed while the pages are read moves behind the cursor and is read again, never skipped.

Cost. A query is charged its requested cost, as Shopify computes it before running it: an object 1, a connection
2 + ``first`` × its node, a list ``first`` × its element, scalars 0. A page of 10 orders with up to 10 lines
each costs 232 points (282 with 5 refund ids per order, selected only with ``restock_on_refund``), well under
half of the Standard bucket, so the sweeper can take it as spare budget. Shopify refunds the difference to what
the answer really held (a page of three one-line orders: 17 points); the budget learns that from
``throttleStatus``. An order with more lines, or more refunds, than the page holds is completed with queries of
its own (``order(id:)``, ``refund(id:)``), as is every refund's lines: refunds are rare, and their lines are
needed only with ``restock_on_refund``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..config import ChannelConfig
from ..errors import TransientDeliveryError
from ..intake.sales import Sale, SaleRejection
from ..intake.shopify import order_sales, refund_sales
from .base import SalesGate
from .shopify_api import ShopifyAdmin

ORDERS_PAGE = 10  # orders per page
PAGE_LINES = 10  # line items per order in the page query; more are read with LINES_QUERY
PAGE_REFUNDS = 5  # refund ids per order in the page query (with restock_on_refund); more: REFUNDS_QUERY
LINES_PAGE = 50  # line items per LINES_QUERY and refund line items per REFUND_LINES_QUERY
ALL_REFUNDS = 100  # refund ids of one order in REFUNDS_QUERY

LINE_FIELDS = "id sku quantity fulfillmentService { handle }"
LINE_COST = 2  # the line item and its fulfillment service
PAGE_INFO = "pageInfo { hasNextPage endCursor }"

ORDERS_QUERY = """query StockRelayOrders($first: Int!, $after: String, $query: String!) {
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    %(page)s
    nodes {
      legacyResourceId
      cancelledAt
      lineItems(first: %(lines)d) { %(page)s nodes { %(line)s } }%(refunds)s
    }
  }
}"""

REFUND_IDS = "\n      refunds(first: %d) { id legacyResourceId }"

LINES_QUERY = f"""query StockRelayOrderLines($id: ID!, $after: String) {{
  order(id: $id) {{ lineItems(first: {LINES_PAGE}, after: $after) {{ {PAGE_INFO} nodes {{ {LINE_FIELDS} }} }} }}
}}"""

REFUNDS_QUERY = f"""query StockRelayOrderRefunds($id: ID!) {{
  order(id: $id) {{ refunds(first: {ALL_REFUNDS}) {{ id legacyResourceId }} }}
}}"""

REFUND_LINES_QUERY = f"""query StockRelayRefundLines($id: ID!, $after: String) {{
  refund(id: $id) {{
    refundLineItems(first: {LINES_PAGE}, after: $after) {{
      {PAGE_INFO}
      nodes {{ quantity restockType lineItem {{ {LINE_FIELDS} }} }}
    }}
  }}
}}"""


def orders_query(refunds: bool) -> str:
    text = ORDERS_QUERY % {
        "page": PAGE_INFO,
        "lines": PAGE_LINES,
        "line": LINE_FIELDS,
        "refunds": REFUND_IDS % PAGE_REFUNDS if refunds else "",
    }
    return text


def orders_cost(refunds: bool) -> float:
    """Requested cost of a page: each order 1 + its lines connection (+ its refund ids)."""
    order = 1 + (2 + PAGE_LINES * LINE_COST) + (PAGE_REFUNDS if refunds else 0)
    return float(2 + ORDERS_PAGE * order)


LINES_COST = float(1 + 2 + LINES_PAGE * LINE_COST)
REFUNDS_COST = float(1 + ALL_REFUNDS)
REFUND_LINES_COST = float(1 + 2 + LINES_PAGE * (1 + LINE_COST))  # each refund line item and its line item


def search(since: dt.datetime) -> str:
    """Shopify's search syntax for "updated at or after ``since``" (whole seconds, rounded down: never later)."""
    return f"updated_at:>='{since.astimezone(dt.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}'"


def rest_line(node: Any) -> dict[str, Any]:
    """A GraphQL ``LineItem`` in the REST shape the webhook path reads: the GID's number as ``id``, and the
    fulfilment service's handle (Shopify gives ``manual`` unless a fulfilment service stocks the variant)."""
    node = node if isinstance(node, dict) else {}
    gid = node.get("id")
    line: dict[str, Any] = {
        "id": gid.rsplit("/", 1)[-1] if isinstance(gid, str) and gid.startswith("gid://shopify/LineItem/") else None,
        "sku": node.get("sku"),
        "quantity": node.get("quantity"),
    }
    service = node.get("fulfillmentService")
    if isinstance(service, dict):
        line["fulfillment_service"] = service.get("handle")
    return line


def _connection(data: Any, *path: str) -> tuple[list[Any], str | None]:
    """The nodes of the connection at ``path`` in ``data`` and the cursor of the next page (None: the last)."""
    found: Any = data
    for name in path:
        found = found.get(name) if isinstance(found, dict) else None
    if not isinstance(found, dict) or not isinstance(found.get("nodes"), list):
        raise TransientDeliveryError(f"Shopify's answer held no {'.'.join(path)} list")
    info = found.get("pageInfo")
    after = info.get("endCursor") if isinstance(info, dict) and info.get("hasNextPage") else None
    return found["nodes"], after if isinstance(after, str) and after else None


class OrdersReader:
    """One poll's reading of the orders updated since a moment; each call awaits ``gate`` with its cost first."""

    def __init__(self, api: ShopifyAdmin, channel: ChannelConfig, gate: SalesGate) -> None:
        self.api = api
        self.channel = channel
        self.gate = gate
        self.sales: list[Sale] = []
        self.skipped: list[SaleRejection] = []

    async def _query(self, text: str, variables: dict[str, Any], cost: float) -> Any:
        await self.gate(cost)
        data = await self.api.graphql(text, variables)
        self.api.budget.succeeded()
        return data

    async def read(self, since: dt.datetime) -> tuple[list[Sale], list[SaleRejection]]:
        refunds = self.channel.restock_on_refund
        text, cost = orders_query(refunds), orders_cost(refunds)
        after: str | None = None
        while True:
            variables = {"first": ORDERS_PAGE, "after": after, "query": search(since)}
            orders, after = _connection(await self._query(text, variables, cost), "orders")
            for order in orders:
                if isinstance(order, dict):
                    await self._order(order, refunds)
            if after is None:
                return self.sales, self.skipped

    def _add(self, found: tuple[list[Sale], list[SaleRejection]]) -> None:
        self.sales.extend(found[0])
        self.skipped.extend(found[1])

    async def _order(self, order: dict[str, Any], refunds: bool) -> None:
        number = order.get("legacyResourceId")
        if not isinstance(number, str | int) or not str(number).isdigit():
            self.skipped.append(SaleRejection(0, None, None, "invalid_order", "the order has no legacyResourceId"))
            return
        order_id, gid = str(number), f"gid://shopify/Order/{number}"
        lines, after = _connection(order, "lineItems")
        while after is not None:  # more lines than the page's query holds
            data = await self._query(LINES_QUERY, {"id": gid, "after": after}, LINES_COST)
            if not isinstance(data, dict) or data.get("order") is None:
                break  # the order is gone (deleted) since the page was read: its lines so far stand
            more, after = _connection(data, "order", "lineItems")
            lines = [*lines, *more]
        rest = [rest_line(line) for line in lines]
        self._add(order_sales(order_id, rest, "sale", self.channel))
        if order.get("cancelledAt"):
            self._add(order_sales(order_id, rest, "cancel", self.channel))
        if refunds:
            await self._refunds(order_id, gid, order.get("refunds"))

    async def _refunds(self, order_id: str, gid: str, listed: Any) -> None:
        listed = listed if isinstance(listed, list) else []
        if len(listed) >= PAGE_REFUNDS:  # perhaps more than the page's query holds
            data = await self._query(REFUNDS_QUERY, {"id": gid}, REFUNDS_COST)
            order = data.get("order") if isinstance(data, dict) else None
            listed = order.get("refunds") if isinstance(order, dict) and isinstance(order.get("refunds"), list) else []
        for refund in listed:
            number = refund.get("legacyResourceId") if isinstance(refund, dict) else None
            if not isinstance(number, str | int) or not str(number).isdigit():
                continue
            items: list[dict[str, Any]] = []
            after: str | None = None
            while True:
                data = await self._query(
                    REFUND_LINES_QUERY, {"id": refund.get("id"), "after": after}, REFUND_LINES_COST
                )
                if not isinstance(data, dict) or data.get("refund") is None:
                    break
                nodes, after = _connection(data, "refund", "refundLineItems")
                items.extend(_rest_refund_line(node) for node in nodes)
                if after is None:
                    break
            self._add(refund_sales(order_id, str(number), items, self.channel))


def _rest_refund_line(node: Any) -> dict[str, Any]:
    """A GraphQL ``RefundLineItem`` in the REST shape (``restock_type`` lower case, as REST spells it)."""
    node = node if isinstance(node, dict) else {}
    restock = node.get("restockType")
    return {
        "line_item": rest_line(node.get("lineItem")),
        "quantity": node.get("quantity"),
        "restock_type": restock.lower() if isinstance(restock, str) else restock,
    }
