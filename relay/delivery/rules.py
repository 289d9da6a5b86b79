"""Per-channel stock rules: which SKU a channel knows an item by, and what quantity it should show.

The choices, documented in docs/configuration.md:
- a deleted (trashed) product, or one out of stock, shows 0 everywhere;
- negative stock (oversold) shows 0;
- buffer stock is held back: ``published = max(0, quantity - buffer)``, per SKU or for the channel;
- unmanaged stock (WooCommerce does not count it) has no number to send: by default the channel is
  left alone (``unmanaged_quantity: null``); set a number to publish that instead while in stock;
- on backorder with nothing on hand shows ``backorder_quantity`` (default 0: marketplaces would
  otherwise sell stock the shop does not have).
"""

from __future__ import annotations

from ..config import StockRules


def channel_sku(rules: StockRules, sku: str) -> str | None:
    """The channel's SKU for a shop SKU; None when the map leaves the item off this channel."""
    if sku in rules.sku_map:
        return rules.sku_map[sku]
    return sku


def published_quantity(
    rules: StockRules,
    sku: str,
    kind: str,
    manage_stock: bool,
    quantity: int | None,
    stock_status: str,
) -> int | None:
    """The quantity to publish, or None to leave the channel's value as it is."""
    if kind == "deleted" or stock_status == "outofstock":
        return 0
    if not manage_stock or quantity is None:
        if stock_status == "onbackorder":
            return rules.backorder_quantity
        return rules.unmanaged_quantity
    if quantity <= 0:
        return rules.backorder_quantity if stock_status == "onbackorder" else 0
    buffer = rules.buffer_per_sku.get(sku, rules.buffer)
    return max(0, quantity - buffer)
