"""A marketplace's order line becomes the shop's change by the channel's SKU map read backwards, the same way for
every marketplace (relay/intake/sales.py ``order_line``; Walmart's per-unit cancellations use ``shop_sku_for``)."""

from __future__ import annotations

from relay.config import ChannelConfig, StockRules
from relay.intake.sales import Sale, SaleRejection, order_line

CHANNEL = ChannelConfig(name="ebay", type="ebay", rules=StockRules(sku_map={"TS-RED": "EB-RED", "TS-OFF": ""}))


def lines(sku: str, kinds: tuple[str, ...] = ("sale",)) -> tuple[list[Sale], list[SaleRejection]]:
    sales: list[Sale] = []
    skipped: list[SaleRejection] = []
    order_line(CHANNEL, {"order": "O-1", "line": "7", "sku": sku, "quantity": 2}, kinds, sales, skipped)
    return sales, skipped


def test_a_mapped_sku_is_the_shops_and_an_unmapped_one_is_itself() -> None:
    (sale,), _ = lines("EB-RED")
    assert (sale.key, sale.sku, sale.delta) == ("ebay:O-1:7", "TS-RED", -2)
    (sale,), _ = lines("TS-BLUE")
    assert sale.sku == "TS-BLUE"


def test_a_channel_sku_that_is_a_shop_sku_sent_elsewhere_is_no_sale_of_it() -> None:
    """TS-RED is listed on this channel as EB-RED, and TS-OFF is kept off it: a line with either SKU on the channel
    is another product (or none of the shop's), not those: refused by name, never applied to them."""
    for sku in ("TS-RED", "TS-OFF"):
        sales, (refused,) = lines(sku)
        assert not sales and refused.code == "unmapped_sku" and sku in refused.message


def test_a_cancelled_order_gives_the_sale_and_its_cancellation() -> None:
    sales, _ = lines("EB-RED", ("sale", "cancel"))
    assert [(s.key, s.delta) for s in sales] == [("ebay:O-1:7", -2), ("ebay:O-1:7:cancel", 2)]
