"""What needs the shop owner's attention, in plain words: the ``attention`` list of the status answer.

Built from the status answer itself (relay/http/operator_api.py, or the CLI reading the file), so it never says
anything the numbers beside it do not: a channel paused, deliveries failing and since when, dead letters and the
newest, a circuit open, a stuck worker, a marketplace whose orders cannot be read, sales the shop refused,
oversold incidents. Each item has a ``code`` (stable,
for the WordPress plugin, which words and translates notices itself), a ``level`` (``error``: something is not
reaching a channel or the shop; ``warning``: it is, but someone should look), the ``channel`` (or null for the site),
``since`` (Unix seconds, or null) and an English ``message`` for everyone else. Errors come first.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

ERROR, WARNING = "error", "warning"


def _at(at: float | None) -> str:
    return "" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _item(code: str, level: str, channel: str | None, since: float | None, message: str) -> dict[str, Any]:
    return {"code": code, "level": level, "channel": channel, "since": since, "message": message}


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def channel_items(c: dict[str, Any]) -> list[dict[str, Any]]:
    """One channel's items, from its row of the status answer."""
    name, items = c["name"], []
    paused = c.get("paused")
    if paused:
        items.append(
            _item(
                "paused", WARNING, name, paused["paused_at"],
                f"{name} is paused since {_at(paused['paused_at'])} by {paused['actor']}: {paused['reason']}."
                f" Changes wait for it ({c['pending']} now) and are sent when it is resumed.",
            )
        )  # fmt: skip
    if c.get("circuit") in ("open", "half_open") and c.get("circuit_reason"):
        retry = c.get("circuit_retry_in")
        when = f" The relay tries it again in {retry:.0f} s." if retry else " The relay is trying it again now."
        items.append(
            _item(
                "channel_unavailable", ERROR, name, None, f"{name} is not being sent to: {c['circuit_reason']}.{when}"
            )
        )
    failing = c.get("failing") or {}
    if failing.get("items"):
        error = (c.get("last_error") or {}).get("message")
        items.append(
            _item(
                "deliveries_failing", ERROR, name, failing["since"],
                f"Sending to {name} has been failing since {_at(failing['since'])} for"
                f" {_plural(failing['items'], 'product', 'products')}; the relay keeps retrying."
                + (f" Last error: {error}" if error else ""),
            )
        )  # fmt: skip
    if c.get("dead_letters"):
        newest = c.get("newest_dead_letter") or {}
        text = f"{name} refused {_plural(c['dead_letters'], 'change', 'changes')} (dead letters)"
        if newest:
            text += f"; the newest, SKU {newest['sku']} at {_at(newest['since'])}: {newest['reason']}"
        items.append(
            _item(
                "dead_letters", ERROR, name, newest.get("since"),
                text + ". Fix the product or the listing, then retry them.",
            )
        )  # fmt: skip
    if c.get("orders_error"):
        read = c.get("orders_read_at")
        since = f"since {_at(read)}" if read else "since the relay started"
        items.append(
            _item(
                "orders_unread", ERROR, name, read,
                f"{name}'s orders have not been read {since}, so its sales are not reaching the shop:"
                f" {c['orders_error']}",
            )
        )  # fmt: skip
    worker = c.get("worker", "ok")
    if worker != "ok":
        items.append(_item("worker_stalled", ERROR, name, None, f"The relay's sender for {name} is {worker}."))
    return items


def attention(status: dict[str, Any]) -> list[dict[str, Any]]:
    """Every item of the status answer, errors first (then in channel order)."""
    items = [item for c in status.get("channels", []) for item in channel_items(c)]
    sales = status.get("sales") or {}
    if sales.get("refused"):
        items.append(
            _item(
                "sales_refused", WARNING, None, None,
                f"The shop refused {_plural(sales['refused'], 'sale', 'sales')} reported by marketplaces;"
                " its stock does not include them (stock-relay status lists them).",
            )
        )  # fmt: skip
    oversold = status.get("oversold") or {}
    if oversold.get("incidents"):
        newest = oversold.get("newest") or {}
        text = (
            f"{_plural(oversold['incidents'], 'sale', 'sales')} left the shop's stock below zero in the last"
            f" {oversold['days']} days (the last unit sold twice)"
        )
        if newest:
            text += f"; the newest: SKU {newest['sku']}, the shop has {newest['shop_quantity']} now"
        items.append(_item("oversold", WARNING, None, newest.get("at"), text + "."))
    return sorted(items, key=lambda item: item["level"] != ERROR)
