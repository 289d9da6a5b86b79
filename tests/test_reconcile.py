"""Reconciliation against a stand-in shop serving the plugin's snapshot pages, with real relays and receivers."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from fakes.shop import FakeShop
from relay.cli.client import new_event_id, stock_event
from relay.config import ChannelConfig, RateLimit, ReconcileConfig, StockRules
from relay.connectors.sandbox import SandboxConnector
from relay.errors import ReconcileError
from relay.repair import reconcile
from relay.repair.readback import ReadBack
from relay.storage import views
from relay.storage.store import read_view

from .backend import with_store
from .conftest import SITE_SECRET, Receiver, RunningRelay, StartRelay, eventually, make_config, webhook_channel

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
async def shop() -> AsyncIterator[FakeShop]:
    fake = await FakeShop("main", SITE_SECRET).start()
    yield fake
    await fake.stop()


def shop_config(tmp_path: Path, shop: FakeShop, receiver: Receiver, channels: tuple[str, ...] = ("a", "b")) -> Any:
    cfg = make_config(tmp_path / "state", tuple(webhook_channel(n, receiver.url(f"/{n}")) for n in channels))
    site = replace(cfg.sites[0], shop_url=shop.url, reconcile=ReconcileConfig(page_size=4))
    return replace(cfg, sites=(site,))


async def full_pass(running: RunningRelay, full: bool = True) -> reconcile.PassResult:
    site = running.relay.config.sites[0]
    client = reconcile.ShopClient(site, running.session, retry_wait=0.01)
    return await reconcile.run_pass(running.relay.store.write, site, client, full)


async def stock_the_shop(shop: FakeShop, running: RunningRelay, count: int) -> None:
    """Products 1..count, each once through the hooks, every event delivered: relay and channels agree."""
    events = [shop.change(shop.add(i, f"SKU-{i}", 10 + i).item_id, 10 + i, new_event_id()) for i in range(1, count + 1)]
    status, _ = await running.client.send_events(events)
    assert status == 202
    await running.drain()


async def test_events_dropped_before_the_relay_are_repaired_on_every_channel(
    tmp_path: Path, shop: FakeShop, receiver: Receiver, start_relay: StartRelay
) -> None:
    """Changes whose events never reached the relay are adopted from the snapshot and sent, with cause reconcile."""
    running = await start_relay(shop_config(tmp_path, shop, receiver))
    await stock_the_shop(shop, running, 10)
    sent = [shop.change(i, 1, new_event_id()) for i in (1, 2)]
    for i in (3, 7, 9):
        shop.change(i, 0, new_event_id())  # dropped: the plugin's request never arrived
    assert (await running.client.send_events(sent))[0] == 202
    await running.drain()
    assert receiver.quantities["/a"]["SKU-3"] == 13

    result = await full_pass(running)
    await running.drain()

    assert (result.pages, result.counts.items, result.counts.missed, result.counts.behind_hooks) == (3, 10, 3, 0)
    want = {p.sku: p.quantity for p in shop.products.values()}
    assert receiver.quantities["/a"] == want
    assert receiver.quantities["/b"] == want
    audited = await running.relay.store.read(
        "SELECT sku, json_extract(detail, '$.reason') FROM audit WHERE action = 'received'"
        " AND json_extract(detail, '$.cause') = 'reconcile' ORDER BY sku"
    )
    assert [tuple(r) for r in audited] == [
        ("SKU-3", "missed_event"),
        ("SKU-7", "missed_event"),
        ("SKU-9", "missed_event"),
    ]
    again = await full_pass(running)
    assert again.counts.corrections == 0, "a second pass finds nothing left to repair"


async def test_a_change_behind_the_hooks_keeps_its_version_and_is_adopted(
    tmp_path: Path, shop: FakeShop, receiver: Receiver, start_relay: StartRelay
) -> None:
    """Same version, other state: the product was edited in the database; the snapshot wins, the gate stays."""
    running = await start_relay(shop_config(tmp_path, shop, receiver))
    await stock_the_shop(shop, running, 3)
    version = shop.versions[2]
    shop.edit_behind_hooks(2, 4)

    result = await full_pass(running)
    await running.drain()

    assert (result.counts.missed, result.counts.behind_hooks) == (0, 1)
    assert receiver.quantities["/a"]["SKU-2"] == 4
    gate = await running.count("SELECT version FROM product_versions WHERE product_id = 2")
    assert gate == version, "the version gate does not move for a snapshot of the same version"
    # The shop's next real change (a larger version) is taken as usual.
    assert (await running.client.send_events([shop.change(2, 6, new_event_id())]))[0] == 202
    await running.drain()
    assert receiver.quantities["/a"]["SKU-2"] == 6


async def test_after_a_reinstall_an_unversioned_product_is_judged_by_its_state(
    tmp_path: Path, shop: FakeShop, receiver: Receiver, start_relay: StartRelay
) -> None:
    """Version 0 (the plugin lost its versions table): a state edited meanwhile is adopted once the relay's own
    event has settled, never while it may be racing the page; the gate stays where it was."""
    running = await start_relay(shop_config(tmp_path, shop, receiver))
    await stock_the_shop(shop, running, 2)
    gate = shop.versions[1]
    shop.versions.clear()  # uninstall.php dropped the table; the plugin was installed again
    shop.edit_behind_hooks(1, 3)
    site = running.relay.config.sites[0]
    client = reconcile.ShopClient(site, running.session, retry_wait=0.01)

    fresh = await reconcile.run_pass(running.relay.store.write, site, client, True)
    assert (fresh.counts.relay_newer, fresh.counts.behind_hooks) == (2, 0), "a fresh event may be racing the page"
    # Two minutes on: the relay's events settled (aged in place: the workers run on the real clock).
    await running.relay.store.write(lambda conn: conn.execute("UPDATE events SET received_at = received_at - 120"))
    later = await reconcile.run_pass(running.relay.store.write, site, client, True)
    await running.drain()

    assert (later.counts.behind_hooks, later.counts.relay_newer) == (1, 0)
    assert receiver.quantities["/a"]["SKU-1"] == 3
    assert await running.count("SELECT version FROM product_versions WHERE product_id = 1") == gate


async def test_a_product_changed_while_a_reconcile_runs_keeps_the_newer_value(
    tmp_path: Path, shop: FakeShop, receiver: Receiver, start_relay: StartRelay
) -> None:
    """The page was read before the change; its event reaches the relay first; the snapshot's older value loses."""
    running = await start_relay(shop_config(tmp_path, shop, receiver))
    await stock_the_shop(shop, running, 6)
    shop.edit_behind_hooks(5, 2)  # makes product 5 look worth adopting, were it not for the newer event
    raced: list[int] = []

    async def change_during_the_pass(items: list[dict[str, Any]]) -> None:
        if any(item["item_id"] == 5 for item in items) and not raced:
            raced.append(5)
            assert (await running.client.send_events([shop.change(5, 50, new_event_id())]))[0] == 202

    shop.after_read = change_during_the_pass
    result = await full_pass(running)
    await running.drain()

    assert raced == [5]
    assert result.counts.relay_newer == 1
    assert result.counts.behind_hooks == 0
    assert receiver.quantities["/a"]["SKU-5"] == 50
    assert receiver.quantities["/b"]["SKU-5"] == 50
    adopted = await running.count("SELECT COUNT(*) FROM events WHERE sku = 'SKU-5' AND cause_kind = 'reconcile'")
    assert adopted == 0, "the snapshot's older state was never recorded"
    shown = [json.loads(r.body)["updates"][0]["quantity"] for r in receiver.for_path("/a")]
    assert 2 not in shown, "the older value never went out, not even for a moment"


async def test_a_channel_added_later_and_a_changed_buffer_are_sent_only_where_needed(
    tmp_path: Path, shop: FakeShop, receiver: Receiver, start_relay: StartRelay
) -> None:
    """State unchanged: only the new channel gets everything, and only the re-buffered channel is sent again."""
    first = shop_config(tmp_path, shop, receiver, channels=("a",))
    running = await start_relay(first)
    await stock_the_shop(shop, running, 5)
    await running.relay.stop()
    base = shop_config(tmp_path, shop, receiver, channels=("a", "b"))
    a, b = base.sites[0].channels
    a = replace(a, rules=StockRules(buffer_per_sku={"SKU-2": 3}))
    running = await start_relay(replace(base, sites=(replace(base.sites[0], channels=(a, b)),)))
    calls_a = len(receiver.for_path("/a"))

    result = await full_pass(running)
    await running.drain()

    assert (result.counts.missed, result.counts.behind_hooks, result.counts.channel_fixes) == (0, 0, 6)
    assert receiver.quantities["/b"] == {f"SKU-{i}": 10 + i for i in range(1, 6)}
    assert receiver.quantities["/a"]["SKU-2"] == 12 - 3
    assert len(receiver.for_path("/a")) == calls_a + 1, "channel a is sent only the SKU whose buffer changed"


async def test_an_incremental_pass_asks_for_changes_since_the_last_good_pass(
    tmp_path: Path, shop: FakeShop, receiver: Receiver, start_relay: StartRelay
) -> None:
    """modified_after = the shop's clock at the last successful pass, less the overlap; only changed items come."""
    running = await start_relay(shop_config(tmp_path, shop, receiver))
    shop.clock = lambda: time.time() - 7200  # stocked two hours ago
    await stock_the_shop(shop, running, 8)
    shop.clock = time.time
    first = await full_pass(running, full=False)
    assert first.kind == reconcile.FULL, "with no pass before it, an incremental pass is a full one"
    assert first.counts.items == 8
    shop.clock = lambda: time.time() + 3600  # an hour later, in the shop
    shop.change(4, 1, new_event_id())  # dropped
    seen: list[int] = []

    async def record(items: list[dict[str, Any]]) -> None:
        seen.extend(item["item_id"] for item in items)

    shop.after_read = record
    second = await full_pass(running, full=False)
    await running.drain()

    assert second.kind == reconcile.INCREMENTAL
    assert seen == [4]
    assert (second.counts.items, second.counts.missed) == (1, 1)
    assert receiver.quantities["/a"]["SKU-4"] == 1


async def test_a_shop_that_cannot_be_read_is_a_clear_error_and_changes_nothing(
    tmp_path: Path, shop: FakeShop, receiver: Receiver, start_relay: StartRelay
) -> None:
    """Wrong secret, an outage, a malformed page: one sentence each, no correction written, the run recorded."""
    running = await start_relay(shop_config(tmp_path, shop, receiver))
    await stock_the_shop(shop, running, 2)
    shop.edit_behind_hooks(1, 0)
    site = running.relay.config.sites[0]
    before = await running.count("SELECT COUNT(*) FROM events")

    wrong = replace(site, secrets=("whsec_" + "B" * 43 + "=",))
    with pytest.raises(ReconcileError, match="share the site's secret"):
        await reconcile.run_pass(running.relay.store.write, wrong, reconcile.ShopClient(wrong, running.session), True)
    assert SITE_SECRET[6:20] not in str(shop.refused)

    shop.status_override = 503
    with pytest.raises(ReconcileError, match="HTTP 503"):
        await full_pass(running)
    shop.status_override = None

    async def corrupt(items: list[dict[str, Any]]) -> None:
        items[0]["stock_quantity"] = "seven"

    shop.after_read = corrupt
    with pytest.raises(ReconcileError, match=r"snapshot item 0 \(post 1\): stock_quantity"):
        await full_pass(running)

    assert await running.count("SELECT COUNT(*) FROM events") == before
    runs = await running.relay.store.read("SELECT error FROM reconcile_runs ORDER BY id")
    assert len(runs) == 3 and all(r[0] for r in runs), "every failed pass is recorded with its reason"
    async with aiohttp.ClientSession() as session:
        gone = replace(site, shop_url="http://127.0.0.1:9")
        with pytest.raises(ReconcileError, match="could not reach the shop"):
            await reconcile.ShopClient(gone, session, retry_wait=0.01).page(0, 10)


async def test_drift_is_reported_until_the_channel_confirms_the_fix(
    tmp_path: Path, shop: FakeShop, receiver: Receiver, start_relay: StartRelay
) -> None:
    """The drift view counts what a pass found until each delivery is confirmed; status carries it per channel."""
    running = await start_relay(shop_config(tmp_path, shop, receiver))
    await stock_the_shop(shop, running, 4)
    shop.edit_behind_hooks(1, 100)
    shop.edit_behind_hooks(3, 12)  # the smaller difference: listed second
    await full_pass(running)
    report = await running.relay.store.query(lambda conn: views.drift(conn, "main", "a"))
    assert report["differ"] == 2
    assert [(e["sku"], e["expected"], e["shown"]) for e in report["examples"]] == [
        ("SKU-1", 100, 11),
        ("SKU-3", 12, 13),
    ]
    status, answer = await running.client.post("status", {"type": "status.query", "site": "main"})
    assert status == 200
    assert answer["channels"][0]["drift"]["differ"] == 2
    assert answer["reconcile"]["last"]["kind"] == "full"

    await running.drain()
    report = await running.relay.store.query(lambda conn: views.drift(conn, "main", "a"))
    assert report == {"differ": 0, "examples": []}


async def test_status_says_when_no_check_ever_ran_instead_of_zero_differ(
    tmp_path: Path, shop: FakeShop, receiver: Receiver, start_relay: StartRelay
) -> None:
    """ "0 SKUs differ" is only news after a check: until a pass finishes without error, the status answer's drift
    says checked_at null (the plugin shows "not checked"), although the count is 0 and two SKUs really differ."""
    running = await start_relay(shop_config(tmp_path, shop, receiver))
    await stock_the_shop(shop, running, 3)
    shop.edit_behind_hooks(1, 100)
    shop.edit_behind_hooks(2, 50)

    async def drift() -> dict[str, Any]:
        status, answer = await running.client.post("status", {"type": "status.query", "site": "main"})
        assert status == 200
        return dict(answer["channels"][0]["drift"])

    assert await drift() == {"differ": 0, "examples": [], "checked_at": None, "checked_at_iso": None}
    shop.status_override = 503
    with pytest.raises(ReconcileError):
        await full_pass(running)
    shop.status_override = None
    assert (await drift())["checked_at"] is None, "a failed pass checked nothing"

    before = time.time()
    await full_pass(running)
    found = await drift()
    assert found["differ"] == 2
    assert before <= found["checked_at"] <= time.time()
    assert found["checked_at_iso"] == views.iso(found["checked_at"])


async def test_a_read_back_round_counts_as_a_check_without_shop_url(tmp_path: Path, start_relay: StartRelay) -> None:
    """Read-back compares the channel itself, so a site without shop_url is checked once a round completes."""
    readback = ReconcileConfig(readback_hours=1.0, readback_share=1.0)
    running = await start_relay(sandbox_config(tmp_path, readback), run_workers=True)
    worker = running.relay.workers[("main", "sandbox")]
    assert worker.readback is not None

    async def checked_at() -> Any:
        status, answer = await running.client.post("status", {"type": "status.query", "site": "main"})
        assert status == 200
        return answer["channels"][0]["drift"]["checked_at"]

    assert await checked_at() is None, "nothing delivered yet, so nothing was read back"
    assert (await running.client.send_events([stock_event(1, "RC-1", 4, 1)]))[0] == 202
    await eventually(lambda: worker.readback is not None and worker.readback.last_round_at is not None)
    assert await checked_at() == worker.readback.last_round_at


async def test_the_schedule_runs_a_full_pass_first_then_incremental_ones(
    tmp_path: Path, shop: FakeShop, receiver: Receiver, start_relay: StartRelay
) -> None:
    """due_kind: full when never reconciled, nightly at full_hour, incremental after incremental_minutes."""
    running = await start_relay(shop_config(tmp_path, shop, receiver))
    site = replace(running.relay.config.sites[0], reconcile=ReconcileConfig(incremental_minutes=5, full_hour=None))
    now = time.time()

    def due(at: float) -> str | None:
        return running.relay.store.query(lambda conn: reconcile.due_kind(conn, site, at))  # type: ignore[return-value]

    assert await due(now) == reconcile.FULL  # type: ignore[misc]
    await full_pass(running)
    assert await due(time.time() + 60) is None  # type: ignore[misc]
    assert await due(time.time() + 301) == reconcile.INCREMENTAL  # type: ignore[misc]
    nightly = replace(site, reconcile=ReconcileConfig(incremental_minutes=0, full_hour=time.localtime(now).tm_hour))
    assert await running.relay.store.query(lambda conn: reconcile.due_kind(conn, nightly, now + 60)) is None
    late = now + 21 * 3600
    at_hour = replace(nightly, reconcile=replace(nightly.reconcile, full_hour=time.localtime(late).tm_hour))
    assert await running.relay.store.query(lambda conn: reconcile.due_kind(conn, at_hour, late)) == reconcile.FULL


async def test_the_running_relay_reconciles_by_itself(
    tmp_path: Path, shop: FakeShop, receiver: Receiver, start_relay: StartRelay
) -> None:
    """With a shop_url, serve runs the first (full) pass on its own and the channels converge without a command."""
    cfg = shop_config(tmp_path, shop, receiver)
    shop.add(1, "SOLO", 9)
    running = await start_relay(cfg, run_workers=True)
    await eventually(lambda: receiver.quantities.get("/b", {}).get("SOLO") == 9)
    assert receiver.quantities["/a"]["SOLO"] == 9
    assert receiver.quantities["/b"]["SOLO"] == 9
    assert running.relay.config.sites[0].shop_url == shop.url


async def test_reconcile_and_drift_commands_on_the_database_file(
    tmp_path: Path, shop: FakeShop, receiver: Receiver, start_relay: StartRelay
) -> None:
    """`stock-relay reconcile --full` prints what it repaired; `drift` lists it until sent and exits 3 meanwhile."""
    cfg = shop_config(tmp_path, shop, receiver)
    running = await start_relay(cfg)
    await stock_the_shop(shop, running, 3)
    await running.relay.stop()
    shop.edit_behind_hooks(2, 0)
    config_file = tmp_path / "config.yaml"
    doc = {
        "state_dir": str(cfg.state_dir),
        "sites": {
            "main": {
                "secret": "env:SITE_SECRET",
                "shop_url": shop.url,
                "channels": [{"name": n, "type": "webhook", "url": receiver.url(f"/{n}"),
                              "secret": "env:SITE_SECRET"} for n in ("a", "b")],
            }
        },
    }  # fmt: skip
    config_file.write_text(with_store(yaml.safe_dump(doc), cfg.state_dir))

    async def cli(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "relay", *args, "-c", str(config_file),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO,
            env={**os.environ, "SITE_SECRET": SITE_SECRET},
        )  # fmt: skip
        out, err = await proc.communicate()
        return proc.returncode or 0, out.decode(), err.decode()

    code, out, err = await cli("reconcile", "--full")
    assert code == 0, err
    assert "full reconcile checked 3 SKUs in 1 page" in out
    assert "1 changed behind the hooks" in out
    code, out, _ = await cli("drift")
    assert code == 3
    assert "a: 1 SKUs differ" in out and "SKU-2" in out
    code, out, _ = await cli("drift", "--json")
    assert json.loads(out)[0]["channels"][1]["examples"][0]["sku"] == "SKU-2"
    assert SITE_SECRET[6:20] not in out + err

    shop.status_override = 500
    code, out, err = await cli("reconcile")
    assert code == 1
    assert "main: the shop answered HTTP 500" in err
    assert read_view(cfg.store_location, lambda c: views.last_run(c, "main"))["error"]  # type: ignore[index]


def sandbox_config(tmp_path: Path, readback: ReconcileConfig, **channel: Any) -> Any:
    cfg = make_config(tmp_path / "state")
    sandbox = ChannelConfig(name="sandbox", type="sandbox", batch_size=20, rate=RateLimit(200, 200), latency_ms=1)
    site = replace(cfg.sites[0], channels=(replace(sandbox, **channel),), reconcile=readback)
    return replace(cfg, sites=(site,))


async def test_readback_repairs_a_listing_edited_behind_our_back(tmp_path: Path, start_relay: StartRelay) -> None:
    """A quantity changed by hand on the channel is read back, sent again, audited and reported until fixed."""
    readback = ReconcileConfig(readback_hours=0.0005, readback_share=1.0)
    running = await start_relay(sandbox_config(tmp_path, readback), run_workers=True)
    worker = running.relay.workers[("main", "sandbox")]
    sandbox = worker.connector
    assert isinstance(sandbox, SandboxConnector) and worker.readback is not None
    events = [stock_event(i, f"RB-{i}", i + 5, 1) for i in range(1, 31)]
    assert (await running.client.send_events(events))[0] == 202
    await eventually(lambda: len(sandbox.listings) == 30)
    sandbox.listings["RB-7"] = 99  # edited on the marketplace
    del sandbox.listings["RB-9"]  # the listing was removed there

    await eventually(lambda: sandbox.listings.get("RB-7") == 12)
    assert "RB-9" not in sandbox.listings, "a SKU the channel does not list is reported, not pushed blindly"
    assert worker.readback.differences >= 2
    rows = await running.relay.store.read("SELECT sku, detail FROM audit WHERE action = 'reconcile' ORDER BY id")
    audit = [(sku, json.loads(detail).get("reason"), json.loads(detail).get("shown")) for sku, detail in rows]
    assert ("RB-7", "channel_shows", 99) in audit
    assert ("RB-9", "not_listed", None) in audit
    await eventually(lambda: worker.phase == "idle")
    report = await running.relay.store.query(lambda conn: views.drift(conn, "main", "sandbox"))
    assert [(e["sku"], e["reason"]) for e in report["examples"]] == [("RB-9", "not_listed")]


async def test_readback_runs_without_shop_url_and_says_so(
    tmp_path: Path, start_relay: StartRelay, caplog: pytest.LogCaptureFixture
) -> None:
    """Read-back checks a channel against what the relay last sent it, not against the shop, so a site without
    shop_url reads back too (docs/configuration.md says so); the log names each channel it reads, at start-up,
    and readback_hours 0 turns it off."""
    cfg = sandbox_config(tmp_path, ReconcileConfig(readback_hours=0.0005, readback_share=1.0))
    assert cfg.sites[0].shop_url == ""
    with caplog.at_level(logging.INFO, logger="stock_relay.readback"):
        running = await start_relay(cfg, run_workers=True)
    assert "main/sandbox: read-back of what the channel shows" in caplog.text
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("reconcile ")], "the shop is never read"
    sandbox = running.relay.workers[("main", "sandbox")].connector
    assert isinstance(sandbox, SandboxConnector)
    assert (await running.client.send_events([stock_event(1, "NS-1", 4, 1)]))[0] == 202
    await eventually(lambda: sandbox.listings.get("NS-1") == 4)
    sandbox.listings["NS-1"] = 40  # edited on the marketplace
    await eventually(lambda: sandbox.listings.get("NS-1") == 4)
    assert ("read", 1) in sandbox.log

    caplog.clear()
    off = sandbox_config(tmp_path / "off", ReconcileConfig(readback_hours=0))
    with caplog.at_level(logging.INFO, logger="stock_relay.readback"):
        quiet = await start_relay(off, run_workers=True)
    assert quiet.relay.workers[("main", "sandbox")].readback is None and "read-back" not in caplog.text


async def test_updates_go_before_readback(tmp_path: Path, start_relay: StartRelay) -> None:
    """No read starts while anything is due: a burst arriving during read-back goes out before the next read."""
    readback = ReconcileConfig(readback_hours=0.0005, readback_share=1.0)
    cfg = sandbox_config(tmp_path, readback, batch_size=10, rate=RateLimit(10_000, 100))
    running = await start_relay(cfg, run_workers=True)
    sandbox = running.relay.workers[("main", "sandbox")].connector
    assert isinstance(sandbox, SandboxConnector)
    setattr(sandbox, "read_batch_size", 1)  # noqa: B010 - a read per SKU: reads would interleave if they could
    assert (await running.client.send_events([stock_event(i, f"S-{i}", 3, 1) for i in range(1, 101)]))[0] == 202
    await eventually(lambda: len(sandbox.listings) == 100)
    await eventually(lambda: any(kind == "read" for kind, _ in sandbox.log))
    start = len(sandbox.log)
    assert (await running.client.send_events([stock_event(i, f"S-{i}", 4, 2) for i in range(1, 101)]))[0] == 202
    await eventually(lambda: all(sandbox.listings[f"S-{i}"] == 4 for i in range(1, 101)))
    kinds = [kind for kind, _ in sandbox.log[start:]]
    first_push, last_push = kinds.index("push"), len(kinds) - 1 - kinds[::-1].index("push")
    assert kinds.count("push") == 10, "the burst went out as 10 pushes"
    # From the first push: reads logged before it may have been made while the burst was still on its way in
    # (on a busy machine, its request takes longer), and those are allowed.
    assert kinds[first_push:last_push].count("read") <= 1, f"reads came between the burst's pushes: {kinds}"


async def test_changes_waiting_to_coalesce_keep_readback_waiting(tmp_path: Path, start_relay: StartRelay) -> None:
    """A change waiting out the channel's coalesce_seconds is an update on its way: read-back, which otherwise fills
    any moment nothing is due, stops from its arrival until it is sent."""
    readback = ReconcileConfig(readback_hours=0.0005, readback_share=1.0)
    cfg = sandbox_config(tmp_path, readback, batch_size=10, rate=RateLimit(10_000, 100), coalesce_seconds=0.5)
    running = await start_relay(cfg, run_workers=True)
    sandbox = running.relay.workers[("main", "sandbox")].connector
    assert isinstance(sandbox, SandboxConnector)
    setattr(sandbox, "read_batch_size", 1)  # noqa: B010 - a read per SKU, so read-back is busy all the time
    assert (await running.client.send_events([stock_event(i, f"S-{i}", 3, 1) for i in range(1, 41)]))[0] == 202
    await eventually(lambda: len(sandbox.listings) == 40)
    await eventually(lambda: sandbox.log.count(("read", 1)) >= 3)
    start = len(sandbox.log)
    assert (await running.client.send_events([stock_event(1, "S-1", 4, 2)]))[0] == 202
    # Counted from the 202, when the change is surely in: reads made while its request was on its way do not
    # count (a busy machine makes more of them), and the one in flight at the 202 may finish.
    arrived = len(sandbox.log) - start
    await eventually(lambda: sandbox.listings["S-1"] == 4)
    kinds = [kind for kind, _ in sandbox.log[start:]]
    assert kinds[arrived : kinds.index("push")].count("read") <= 1, f"reads went on while the change waited: {kinds}"


async def test_readback_keeps_to_its_share_of_the_rate(tmp_path: Path, start_relay: StartRelay) -> None:
    """Reads spend at most readback_share of the channel's rate budget, and a round does get read."""
    readback = ReconcileConfig(readback_hours=1, readback_share=0.1)
    cfg = sandbox_config(tmp_path, readback, batch_size=10, rate=RateLimit(100, 10))
    running = await start_relay(cfg, run_workers=True)
    worker = running.relay.workers[("main", "sandbox")]
    sandbox = worker.connector
    assert isinstance(sandbox, SandboxConnector) and isinstance(worker.readback, ReadBack)
    setattr(sandbox, "read_batch_size", 1)  # noqa: B010 - one SKU per read, so a round is 40 reads
    assert (await running.client.send_events([stock_event(i, f"S-{i}", 3, 1) for i in range(1, 41)]))[0] == 202
    await eventually(lambda: len(sandbox.listings) == 40)
    await eventually(lambda: ("read", 1) in sandbox.log)
    started, before = time.monotonic(), sandbox.log.count(("read", 1))
    # Waits for progress (15 reads, 1.5 s at the share) rather than for 1.5 s: a busy machine reads fewer in a fixed
    # time. The bound is on the rate over the time it really took, which holds at any speed.
    await eventually(lambda: sandbox.log.count(("read", 1)) - before >= 15, seconds=60)
    elapsed = time.monotonic() - started
    reads = sandbox.log.count(("read", 1)) - before
    assert reads <= 0.1 * 100 * elapsed + 1, f"{reads} reads in {elapsed:.1f} s exceed 10% of 100 calls/s"
