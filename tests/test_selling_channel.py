"""A push to the channel that made a sale never undoes it (issue 15 item 3, invariant 11).

eBay takes a unit off itself when it sells one. Until that sale is applied to the shop and the shop's change comes
back, the shop's quantity still counts the unit: any push of it (another change in the shop, a reconciliation, a
replay) would offer the sold unit again. So the quantity pushed to a channel is the shop's, less that channel's own
sales the shop's quantity does not include yet; a cancellation not yet applied adds nothing. Real relay, fake eBay
(sales swept from its orders), a sandbox channel beside it, fake shop (the adjust route).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fakes.ebay import FakeEbay
from fakes.shop import FakeShop
from relay.cli.client import new_event_id, stock_event
from relay.config import ChannelConfig, RateLimit, ReconcileConfig
from relay.connectors.sandbox import SandboxConnector
from relay.delivery import deliveries

from .conftest import SITE_SECRET, RunningRelay, StartRelay, eventually
from .marketplaces import channel, marketplace_config, settle, store_credentials

SKU = "TS-RED-M"
QUIET = ReconcileConfig(incremental_minutes=0, full_hour=None, readback_hours=0)


@pytest.fixture
async def ebay() -> AsyncIterator[FakeEbay]:
    fake = FakeEbay()
    await fake.start()
    fake.add_item(SKU, 0)
    yield fake
    await fake.stop()


@pytest.fixture
async def shop() -> AsyncIterator[FakeShop]:
    fake = await FakeShop("main", SITE_SECRET).start()
    fake.add(1, SKU, 5)
    yield fake
    await fake.stop()


async def start(tmp_path: Path, start_relay: StartRelay, ebay: FakeEbay, shop: FakeShop) -> RunningRelay:
    """eBay (its orders swept by hand) and a sandbox; the shop's 5 already on both."""
    sandbox = ChannelConfig(name="sandbox", type="sandbox", batch_size=20, rate=RateLimit(200, 200))
    cfg = marketplace_config(tmp_path / "state", channel("ebay", ebay.url, {}, sales_poll_seconds=3600.0))
    site = replace(cfg.sites[0], channels=(*cfg.sites[0].channels, sandbox), shop_url=shop.url, reconcile=QUIET)
    cfg = replace(cfg, sites=(site,))
    creds = {"client_id": ebay.client_id, "client_secret": ebay.client_secret, "refresh_token": ebay.refresh_token}
    store_credentials(cfg, "main/ebay", creds)
    r: RunningRelay = await start_relay(cfg)
    assert (await r.client.send_events([stock_event(1, SKU, 5, shop.bump(1))]))[0] == 202
    await settle(r)
    assert shown(r, ebay) == (5, 5)
    return r


def shown(r: RunningRelay, ebay: FakeEbay) -> tuple[int, int]:
    sandbox = r.relay.workers[("main", "sandbox")].connector
    assert isinstance(sandbox, SandboxConnector)
    return ebay.items[SKU], sandbox.listings[SKU]


async def sweep(r: RunningRelay) -> int:
    return int(await r.relay.sweepers[("main", "ebay")].poll_once())


async def shop_change(r: RunningRelay, shop: FakeShop, quantity: int | None = None) -> None:
    """The shop's stock changes (to ``quantity``: an admin edit; None: as an adjust left it) and its event arrives."""
    product = shop.products[1]
    if quantity is not None:
        event = shop.change(1, quantity, new_event_id())
    else:
        event = shop.event(product, shop.bump(product.owner), new_event_id())
    assert (await r.client.send_events([event]))[0] == 202
    await settle(r)


async def ebay_attempts(r: RunningRelay) -> list[tuple[int, dict[str, Any]]]:
    rows = await r.relay.store.read(
        "SELECT quantity, detail FROM audit WHERE action = 'attempt' AND channel = 'ebay' ORDER BY id", ()
    )
    return [(row[0], json.loads(row[1])) for row in rows]


def sale_key(ebay: FakeEbay, order: str) -> str:
    return f"ebay:{order}:{ebay.orders[order]['lineItems'][0]['lineItemId']}"


async def test_a_push_to_ebay_leaves_out_its_own_sale_until_the_shop_has_it(
    tmp_path: Path, start_relay: StartRelay, ebay: FakeEbay, shop: FakeShop
) -> None:
    """eBay sells one (5→4), swept but not yet applied; an admin edit 5→7 reaches the relay: eBay is sent 6 (7 less
    its own sale), the sandbox 7, and the eBay attempt's audit says why. After the shop applied the sale (7→6) but
    before its change is back, a replay still sends eBay 6; once the change is back, every channel shows 6."""
    r = await start(tmp_path, start_relay, ebay, shop)
    order = ebay.sell(SKU, 1)
    assert await sweep(r) == 1
    await shop_change(r, shop, 7)
    assert shown(r, ebay) == (6, 7)
    key = sale_key(ebay, order)
    quantity, detail = (await ebay_attempts(r))[-1]
    assert quantity == 6
    assert detail["adjusted"] == f"sent 6: shop 7, less 1 unit of this channel's sale {key} not yet in the shop"
    assert detail["unapplied_sales"] == [key]

    assert await r.relay.shop_workers["main"].drain() == 1
    assert shop.products[1].quantity == 6
    ebay.items[SKU] = 6  # whatever it shows: the replay below pushes again
    seq = await r.count("SELECT want_seq FROM deliveries WHERE channel = 'ebay'")
    now = r.relay.now()
    await r.relay.store.write(lambda conn: deliveries.make_due(conn, "main", "ebay", SKU, seq, now, restart=True))
    await settle(r)
    assert (await ebay_attempts(r))[-1][0] == 6, "the sale is applied, but the event pushed does not include it"

    await shop_change(r, shop)  # the shop's 7→6 comes back
    assert shown(r, ebay) == (6, 6)
    quantity, detail = (await ebay_attempts(r))[-1]
    assert quantity == 6 and "adjusted" not in detail


async def test_a_cancellation_not_yet_applied_raises_nothing(
    tmp_path: Path, start_relay: StartRelay, ebay: FakeEbay, shop: FakeShop
) -> None:
    """eBay's order A (2 units) is applied and back (every channel 3); then A is cancelled and order B (1) sold, both
    swept, neither applied. An admin edit 3→6: eBay is sent 5 (6 less B), not 7 (A's restock added, or the net of
    both): the restock reaches eBay only through the shop. Once both are applied and back, every channel shows 7."""
    r = await start(tmp_path, start_relay, ebay, shop)
    first = ebay.sell(SKU, 2)
    assert await sweep(r) == 1
    assert await r.relay.shop_workers["main"].drain() == 1
    await shop_change(r, shop)
    assert shown(r, ebay) == (3, 3)

    ebay.cancel(first)
    second = ebay.sell(SKU, 1)
    assert await sweep(r) == 2
    await shop_change(r, shop, 6)
    assert shown(r, ebay) == (5, 6)
    assert (await ebay_attempts(r))[-1][1]["unapplied_sales"] == [sale_key(ebay, second)]

    assert await r.relay.shop_workers["main"].drain() == 2
    assert shop.products[1].quantity == 7
    await shop_change(r, shop)
    assert shown(r, ebay) == (7, 7)


async def test_the_shops_change_back_before_its_answer_leaves_ebay_no_unit_short(
    tmp_path: Path, start_relay: StartRelay, ebay: FakeEbay, shop: FakeShop
) -> None:
    """The race: the shop applies eBay's sale (5→4) and its change comes back and is pushed before the shop's answer
    to the adjust has reached the relay. The sale was still pending at that push, so eBay was sent 3 (4 less the
    sale, which the event already held). The answer names the version before the change (the event's is larger):
    the push is due again and eBay is sent 4, not left a unit short until the SKU next changes."""
    r = await start(tmp_path, start_relay, ebay, shop)
    ebay.sell(SKU, 1)
    assert await sweep(r) == 1
    shop.hold_adjust = asyncio.Event()
    applying = asyncio.create_task(r.relay.shop_workers["main"].drain())
    await eventually(lambda: shop.products[1].quantity == 4, what="the shop to apply the sale")
    await shop_change(r, shop)  # the shop's 5→4 is back first, and pushed while the sale is still pending
    assert shown(r, ebay) == (3, 4), "pushed while pending: one unit short, for now"
    shop.hold_adjust.set()
    assert await applying == 1
    await settle(r)
    assert shown(r, ebay) == (4, 4)
    assert [q for q, _ in await ebay_attempts(r)][-2:] == [3, 4]


async def test_a_push_in_flight_when_the_answer_comes_is_sent_again_whole(
    tmp_path: Path, start_relay: StartRelay, ebay: FakeEbay, shop: FakeShop
) -> None:
    """As above, but the shop's answer arrives while the push of 3 is still in flight to eBay: that push's own
    settle finds the sale applied below the event's version and makes the event due again: eBay ends at 4."""
    r = await start(tmp_path, start_relay, ebay, shop)
    ebay.sell(SKU, 1)
    assert await sweep(r) == 1
    shop.hold_adjust = asyncio.Event()
    applying = asyncio.create_task(r.relay.shop_workers["main"].drain())
    await eventually(lambda: shop.products[1].quantity == 4, what="the shop to apply the sale")
    event = shop.event(shop.products[1], shop.bump(1), new_event_id())
    assert (await r.client.send_events([event]))[0] == 202
    ebay.hold_updates = asyncio.Event()
    pushing = asyncio.create_task(r.relay.workers[("main", "ebay")].drain())
    await eventually(ebay.updates_held.is_set, what="the push of 3 to reach eBay")
    shop.hold_adjust.set()
    assert await applying == 1  # the sale settles while the push is in flight
    ebay.hold_updates.set()
    await pushing
    ebay.hold_updates = None
    await settle(r)
    assert shown(r, ebay) == (4, 4)
    assert [q for q, _ in await ebay_attempts(r)][-2:] == [3, 4]
