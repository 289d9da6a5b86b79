"""A stand-in for a WooCommerce shop running the Stock Relay plugin: its signed ``snapshot`` route (PROTOCOL.md §3),
its ``wake`` route (recorded raw, for a test to verify; ``hold_wake`` keeps the answer back until set) and its
``adjust`` route (docs/wire-protocol.md §3b: each key applied at most once, a repeat answered ``duplicate``;
``adjust_script`` answers scripted statuses first, ``hold_adjust`` keeps the answer back after applying).

It serves the same pages as the plugin (wp-plugin/src/class-stock-relay-snapshot.php, docs/wire-protocol.md):
items paged by post id, the stock owner's version read before the state, trashed items as ``deleted``,
items without a SKU left out, ``modified_after`` by modification time or version. It verifies the
Standard Webhooks signature itself, with a few lines of HMAC, not the relay's code.

A test changes products the two ways a shop does: ``change`` (through the hooks: the version moves and
an event is returned for the test to post, or to drop) and ``edit_behind_hooks`` (a database edit: the
state moves, the version does not). ``after_read`` runs after a page was read and before it is sent,
which is where a change made during a reconciliation lands.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .common import Clock


@dataclass
class Product:
    """A product or variation as the plugin reads it (post, stock meta, the owner's version row)."""

    item_id: int
    sku: str
    quantity: int | None
    owner: int  # the post that owns the stock row (a variation inheriting its parent's stock: the parent)
    variation_id: int | None = None
    parent_id: int | None = None
    backorders: str = "no"
    trashed: bool = False
    modified: float = 0.0

    @property
    def status(self) -> str:
        return "instock" if self.quantity is None or self.quantity > 0 else "outofstock"


class FakeShop:
    def __init__(self, site: str, secret: str, clock: Clock = time.time) -> None:
        self.site = site
        self.key = base64.b64decode(secret.removeprefix("whsec_"))
        self.clock = clock
        self.products: dict[int, Product] = {}
        self.versions: dict[int, int] = {}  # owner → version; absent: never versioned (version 0)
        self.after_read: Callable[[list[dict[str, Any]]], Awaitable[None]] | None = None
        self.pages_served = 0
        self.refused = 0
        self.status_override: int | None = None  # answer every request with this status (an outage)
        self.wakes: list[tuple[dict[str, str], bytes]] = []  # each wake call's headers (lower-case names) and body
        self.hold_wake: asyncio.Event | None = None
        self.adjusted: dict[str, int | None] = {}  # key → the quantity after it was applied: each key at most once
        self.adjust_versions: dict[str, int] = {}  # key → the version answered (events above it hold the change)
        self.adjust_calls: list[dict[str, Any]] = []  # every signed adjust request's body, as sent
        self.adjust_script: list[tuple[int, dict[str, str]]] = []  # (status, headers) answered first, in order
        self.hold_adjust: asyncio.Event | None = None  # applied, but the answer waits until set
        self.adjust_max_items = 100  # more in one request: 413
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- the shop's data ---

    def add(self, item_id: int, sku: str, quantity: int | None, owner: int | None = None, **extra: Any) -> Product:
        product = Product(item_id, sku, quantity, owner or item_id, modified=self.clock(), **extra)
        self.products[item_id] = product
        return product

    def bump(self, owner: int) -> int:
        """The plugin's bump_version: larger than before, never below the microsecond clock."""
        version = max(self.versions.get(owner, 0) + 1, int(self.clock() * 1_000_000))
        self.versions[owner] = version
        return version

    def change(self, item_id: int, quantity: int | None, event_id: str) -> dict[str, Any]:
        """A change through the hooks: state, modification time and version move; returns the event to send."""
        product = self.products[item_id]
        product.quantity, product.modified = quantity, self.clock()
        return self.event(product, self.bump(product.owner), event_id)

    def edit_behind_hooks(self, item_id: int, quantity: int | None) -> None:
        """A direct database edit: only the stock meta changes."""
        self.products[item_id].quantity = quantity

    def event(self, product: Product, version: int, event_id: str) -> dict[str, Any]:
        return {"id": event_id, **self.state(product), "version": version, "cause": {"kind": "admin"}}

    def state(self, product: Product) -> dict[str, Any]:
        return {
            "kind": "deleted" if product.trashed else "stock",
            "product_id": product.owner,
            "variation_id": product.variation_id,
            "parent_id": product.parent_id,
            "sku": product.sku,
            "manage_stock": product.quantity is not None,
            "stock_quantity": product.quantity,
            "stock_status": product.status,
            "backorders": product.backorders,
        }

    # --- the route ---

    async def start(self) -> FakeShop:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_post("/wp-json/stock-relay/v1/snapshot", self.snapshot)
        app.router.add_post("/wp-json/stock-relay/v1/wake", self.wake)
        app.router.add_post("/wp-json/stock-relay/v1/adjust", self.adjust)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def snapshot(self, request: web.Request) -> web.Response:
        if self.status_override is not None:
            return _error(self.status_override, "scripted", "Scripted outage.")
        body = await request.read()
        if not self._signed(request, body):
            self.refused += 1
            return _error(401, "signature_invalid", "The signature does not match this shop's secret.")
        try:
            doc = json.loads(body)
        except ValueError:
            return _error(400, "malformed_json", "The body is not JSON.")
        if doc.get("type") != "snapshot.page" or doc.get("site") != self.site:
            return _error(400, "type_mismatch", "This route takes a snapshot.page for this shop's site.")
        after, limit = int(doc.get("after_id", 0)), int(doc.get("limit", 500))
        if limit > 500:
            return _error(400, "batch_too_large", "limit is at most 500.")
        since = doc.get("modified_after")
        since_at = None if since is None else datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp()
        ids = [
            i
            for i in sorted(self.products)
            if i > after and self.products[i].sku and self._changed_since(self.products[i], since_at)
        ][:limit]
        # As the plugin does: every version first, then the state.
        versions = {i: self.versions.get(self.products[i].owner, 0) for i in ids}
        items = [{"item_id": i, **self.state(self.products[i]), "version": versions[i]} for i in ids]
        if self.after_read is not None:
            await self.after_read(items)
        self.pages_served += 1
        page = {
            "type": "snapshot.page",
            "site": self.site,
            "server_time": datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "items": items,
            "next_after_id": ids[-1] if len(ids) == limit else None,
        }
        return web.json_response(page)

    async def wake(self, request: web.Request) -> web.Response:
        """The plugin's wake route: answers 202 (the drain runs after the answer); the test checks the signature."""
        body = await request.read()
        self.wakes.append(({k.lower(): v for k, v in request.headers.items()}, body))
        if self.hold_wake is not None:
            await self.hold_wake.wait()
        if self.status_override is not None:
            return _error(self.status_override, "scripted", "Scripted outage.")
        if not self._signed(request, body):
            self.refused += 1
            return _error(401, "signature_invalid", "The signature does not match this shop's secret.")
        return web.json_response({"type": "outbox.wake", "site": self.site}, status=202)

    async def adjust(self, request: web.Request) -> web.Response:
        """The plugin's adjust route: each key changes its product's stock at most once (the plugin does it in one
        transaction with the key); a repeat is a ``duplicate`` with the current quantity."""
        body = await request.read()
        if not self._signed(request, body):
            self.refused += 1
            return _error(401, "signature_invalid", "The signature does not match this shop's secret.")
        if self.adjust_script:
            status, headers = self.adjust_script.pop(0)
            response = _error(status, "scripted", "Scripted failure.")
            response.headers.update(headers)
            return response
        try:
            doc = json.loads(body)
        except ValueError:
            return _error(400, "malformed_json", "The body is not JSON.")
        if doc.get("type") != "stock.adjust" or doc.get("site") != self.site:
            return _error(400, "type_mismatch", "This route takes a stock.adjust for this shop's site.")
        items = doc.get("items")
        if not isinstance(items, list) or not items:
            return _error(400, "missing_field", "items must hold 1 to 100 changes.")
        if len(items) > self.adjust_max_items:
            return _error(413, "batch_too_large", f"At most {self.adjust_max_items} items per request.")
        self.adjust_calls.append(doc)
        results = [self._apply(item) for item in items]
        if self.hold_adjust is not None:
            await self.hold_adjust.wait()
        return web.json_response({"type": "adjust.result", "items": results})

    def _apply(self, item: Any) -> dict[str, Any]:
        key = item.get("key") if isinstance(item, dict) else None
        if not isinstance(key, str) or not 0 < len(key) <= 191 or not all("!" <= ch <= "~" for ch in key):
            return {"key": key, "result": "refused", "code": "invalid_item", "message": "key is not a valid key"}
        if key in self.adjusted:
            return {
                "key": key,
                "result": "duplicate",
                "quantity": self.adjusted[key],
                "version": self.adjust_versions[key],
            }
        delta, reason = item.get("delta"), item.get("reason")
        if isinstance(delta, bool) or not isinstance(delta, int) or not delta or abs(delta) > 1_000_000:
            return {"key": key, "result": "refused", "code": "invalid_item", "message": "delta is not valid"}
        if reason not in ("sale", "cancel", "refund"):
            return {"key": key, "result": "refused", "code": "invalid_item", "message": "reason is not valid"}
        found = [p for p in self.products.values() if p.sku == item.get("sku")]
        if not found:
            return {"key": key, "result": "refused", "code": "unknown_sku", "message": "No product has this SKU."}
        product = found[0]
        if product.trashed:
            return {"key": key, "result": "refused", "code": "trashed", "message": "The product is in the trash."}
        if product.quantity is None:
            return {"key": key, "result": "refused", "code": "not_managed", "message": "Stock is not managed."}
        before = self.versions.get(product.owner, 0)  # the plugin answers the last version before the change's event
        product.quantity += delta
        product.modified = self.clock()
        self.bump(product.owner)
        self.adjusted[key] = product.quantity
        self.adjust_versions[key] = before
        return {"key": key, "result": "applied", "quantity": product.quantity, "version": before}

    def _changed_since(self, product: Product, since: float | None) -> bool:
        if since is None:
            return True
        return product.modified >= since or self.versions.get(product.owner, 0) >= since * 1_000_000

    def _signed(self, request: web.Request, body: bytes) -> bool:
        msg_id = request.headers.get("webhook-id", "")
        stamp = request.headers.get("webhook-timestamp", "")
        if not msg_id or not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
            return False
        mac = hmac.new(self.key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
        expected = "v1," + base64.b64encode(mac).decode()
        return any(hmac.compare_digest(expected, s) for s in request.headers.get("webhook-signature", "").split())


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)
