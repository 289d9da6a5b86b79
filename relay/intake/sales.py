"""Sales other systems report (docs/wire-protocol.md §2b): a ``sales.report``'s items, checked one by one, and its
write job.

A POS, an ERP or a channel without a connector reports what it sold, cancelled or refunded on its channel's sales
route, signed with that channel's own secret. Each valid item becomes one row of the sales table, keyed
``<channel>:<order>:<line>`` (a sale), ``<channel>:<order>:<line>:cancel`` or
``<channel>:<order>:<line>:refund:<refund id>``: an insert that ignores a conflict on that key is what makes a change count once
however often it is reported (DESIGN.md invariant 10). The shop worker (relay/delivery/shop.py) applies the rows to
the shop through the plugin's ``adjust`` route.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..config import ChannelConfig
from ..errors import PayloadError
from ..storage import audit
from ..storage.dbapi import Conn, notify, shop_wake_payload
from .protocol import CONTROL, MAX_SKU_LENGTH, is_reuse

SIGNS = {"sale": -1, "cancel": 1, "refund": 1}  # what a unit of each kind does to the shop's stock
MAX_ITEMS = 500
MAX_QUANTITY = 1_000_000
MAX_KEY_LENGTH = 191  # the plugin stores the key in a column this wide
PART = re.compile(r"^[!-9;-~]{1,64}$", re.ASCII)  # printable ASCII without spaces or ':', the key's separator
SOURCE_INBOUND = "inbound"
SOURCE_WEBHOOK = "webhook"  # a marketplace's own order webhooks (relay/intake/shopify.py)


class Sale(NamedTuple):
    key: str
    order: str
    line: str
    sku: str
    delta: int
    reason: str  # sale | cancel | refund


class SaleRejection(NamedTuple):
    position: int  # the item's place in the report, from 0
    order: str | None
    line: str | None
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.position,
            "order": self.order,
            "line": self.line,
            "code": self.code,
            "message": self.message,
        }


def split_report(doc: dict[str, Any], channel: str) -> tuple[list[Sale], list[SaleRejection]]:
    """Validate a ``sales.report`` document's items one by one (a bad item is rejected, the others stand)."""
    items = doc.get("items")
    if items is None:
        raise PayloadError("missing_field", "The report has no 'items' list.")
    if not isinstance(items, list):
        raise PayloadError("malformed_json", "'items' must be a list.")
    if not items:
        raise PayloadError("missing_field", f"The report has no items; send 1 to {MAX_ITEMS} per request.")
    if len(items) > MAX_ITEMS:
        raise PayloadError("batch_too_large", f"A report holds at most {MAX_ITEMS} items; this one has {len(items)}.")
    valid: list[Sale] = []
    rejected: list[SaleRejection] = []
    for index, raw in enumerate(items):
        outcome = validate_item(raw, index, channel)
        if isinstance(outcome, Sale):
            valid.append(outcome)
        else:
            rejected.append(outcome)
    return valid, rejected


def validate_item(raw: Any, index: int, channel: str) -> Sale | SaleRejection:
    """One item of a report, or the reason it is refused (final: resending the same item cannot help)."""
    if not isinstance(raw, dict):
        return SaleRejection(index, None, None, "invalid_item", "Each item must be a JSON object.")
    order, line = raw.get("order"), raw.get("line")
    named = (order if isinstance(order, str) else None, line if isinstance(line, str) else None)

    def refuse(code: str, message: str) -> SaleRejection:
        return SaleRejection(index, *named, code, message)

    for name, value in (("order", order), ("line", line)):
        if not isinstance(value, str) or not PART.match(value):
            return refuse(f"invalid_{name}", f"{name} must be 1-64 printable ASCII characters without spaces or ':'")
    kind = raw.get("kind")
    if kind not in SIGNS:
        return refuse("invalid_kind", f"kind must be one of: {', '.join(SIGNS)}")
    sku = raw.get("sku")
    if not isinstance(sku, str) or not sku or len(sku) > MAX_SKU_LENGTH or CONTROL.search(sku) or sku != sku.strip():
        return refuse(
            "invalid_sku",
            f"sku must be text of 1 to {MAX_SKU_LENGTH} characters, without control characters or surrounding spaces",
        )
    quantity = raw.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
        return refuse("invalid_quantity", f"quantity must be a whole number from 1 to {MAX_QUANTITY}")
    key = f"{channel}:{order}:{line}"
    if kind == "cancel":
        key += ":cancel"
    elif kind == "refund":
        refund = raw.get("refund_id")
        if not isinstance(refund, str) or not PART.match(refund):
            return refuse(
                "invalid_refund_id", "a refund needs refund_id: 1-64 printable ASCII characters without spaces or ':'"
            )
        key += f":refund:{refund}"
    if len(key) > MAX_KEY_LENGTH:
        return refuse("invalid_item", f"channel, order, line and refund_id together exceed {MAX_KEY_LENGTH} characters")
    return Sale(key, str(order), str(line), sku, SIGNS[kind] * quantity, str(kind))


def shop_sku_for(channel: ChannelConfig, sku: str) -> str | None:
    """The shop SKU a channel SKU stands for: ``rules.sku_map`` reversed; a SKU the map does not name is itself,
    unless the map sends that shop SKU elsewhere (or leaves it off this channel)."""
    sku_map = channel.rules.sku_map
    for shop, mapped in sku_map.items():
        if mapped == sku:
            return shop
    return None if sku in sku_map else sku


def order_line(
    channel: ChannelConfig, item: dict[str, Any], kinds: Sequence[str], sales: list[Sale], skipped: list[SaleRejection]
) -> None:
    """A marketplace's order line (``order``, ``line``, the channel's ``sku``, ``quantity``) as one change per kind
    (a sale; with it, a cancellation when the order was cancelled), each with the shop's SKU and checked like a
    reported item, into ``sales`` or, refused, ``skipped``."""
    sku = item.get("sku")
    if isinstance(sku, str) and sku:
        shop = shop_sku_for(channel, sku)
        if shop is None:
            named = (
                None if item.get("order") is None else str(item["order"]),
                None if item.get("line") is None else str(item["line"]),
            )
            message = f"channel SKU {sku[:100]!r} stands for no shop SKU of this channel (rules.sku_map)"
            skipped.append(SaleRejection(0, *named, "unmapped_sku", message))
            return
        item = {**item, "sku": shop}
    for kind in kinds:
        found = validate_item({**item, "kind": kind}, 0, channel.name)
        if isinstance(found, Sale):
            sales.append(found)
        else:
            skipped.append(found)


class ReportOutcome(NamedTuple):
    response: dict[str, Any]
    body: str  # ``response`` as JSON, as stored for repeats
    repeated: bool = False  # the webhook-id was seen before: this is the original answer, nothing was redone
    reused: bool = False  # the webhook-id was seen before with other content: refused, nothing was recorded
    accepted: int = 0


@dataclass(frozen=True, slots=True)
class ReportWrite:
    """Write job: record a report's new sales (each key once), audit them, remember the webhook-id and its answer.

    The webhook-id is remembered per channel (``sales/<channel>/<id>`` in the requests table), so another system's
    id never collides with the plugin's or another channel's. ``source`` says who reported the sales (``inbound``:
    the sales route; ``webhook``: a marketplace's order webhooks, whose event id stands in for the webhook-id);
    ``audit_skipped`` writes each rejected item to the audit log as ``sale_skipped`` (a marketplace's lines that
    are not sales of the shop's stock, which nobody else would be told about).
    """

    site: str
    channel: str
    msg_id: str
    sales: Sequence[Sale]
    rejected: Sequence[SaleRejection]
    now: float
    digest: str
    source: str = SOURCE_INBOUND
    audit_skipped: bool = False

    def __call__(self, conn: Conn) -> ReportOutcome:
        site, now = self.site, self.now
        request_id = f"sales/{self.channel}/{self.msg_id}"
        seen = conn.execute(
            "SELECT response, digest FROM requests WHERE site = ? AND msg_id = ?", (site, request_id)
        ).fetchone()
        if seen is not None:
            if is_reuse(seen[1], self.digest):
                return ReportOutcome({}, "", repeated=True, reused=True)
            return ReportOutcome(json.loads(seen[0]), seen[0], repeated=True)
        accepted = duplicates = 0
        logged: list[audit.Entry] = []
        for sale in self.sales:
            inserted = conn.execute(
                "INSERT INTO sales (site, key, channel, order_id, line_id, sku, delta, reason, source,"
                " received_at, state, next_attempt_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,'pending',?,?)"
                " ON CONFLICT DO NOTHING",
                (site, sale.key, self.channel, sale.order, sale.line, sale.sku, sale.delta, sale.reason,
                 self.source, now, now, now),
            ).rowcount  # fmt: skip
            accepted += inserted
            duplicates += 1 - inserted
            detail = {"reason": sale.reason, "delta": sale.delta, "source": self.source, "webhook_id": self.msg_id}
            logged.append(
                audit.entry(
                    now,
                    site,
                    "sale_received" if inserted else "sale_duplicate",
                    channel=self.channel,
                    sku=sale.sku,
                    event_id=sale.key,
                    detail=detail,
                )  # fmt: skip
            )
        if self.audit_skipped:
            for skip in self.rejected:
                detail = {"code": skip.code, "message": skip.message, "source": self.source, "webhook_id": self.msg_id}
                key = f"{self.channel}:{skip.order}:{skip.line}"
                logged.append(audit.entry(now, site, "sale_skipped", channel=self.channel, event_id=key, detail=detail))
        audit.record(conn, logged)
        response = {"accepted": accepted, "duplicates": duplicates, "rejected": [r.as_dict() for r in self.rejected]}
        text = json.dumps(response)
        conn.execute(
            "INSERT INTO requests (site, msg_id, response, received_at, digest) VALUES (?, ?, ?, ?, ?)",
            (site, request_id, text, now, self.digest or None),
        )
        if accepted:
            notify(conn, shop_wake_payload(site))  # the relay working this site's shop may be another
        return ReportOutcome(response, text, accepted=accepted)
