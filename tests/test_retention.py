"""Retention: old history is pruned in small batches, what channels show is kept, and the file stops growing."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from relay.cli.client import stock_event
from relay.config import ChannelConfig, RateLimit

from .conftest import make_config

DAY = 86_400.0


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def post(r: Any, clock: Clock, operation: str, doc: dict[str, Any]) -> tuple[int, Any]:
    """Signed at the relay's (simulated) time, so the request is fresh when the clock has moved on."""
    body, headers = r.client.encode({"site": "main", **doc}, timestamp=int(clock.now))
    status, answer, _ = await r.post_raw(f"/v1/sites/main/{operation}", body, headers)
    return status, answer


async def send(r: Any, clock: Clock, events: list[dict[str, Any]]) -> None:
    status, answer = await post(r, clock, "events", {"type": "stock.batch", "events": events})
    assert status == 202 and answer["accepted"] == len(events), answer


def sandbox() -> ChannelConfig:
    return ChannelConfig(name="box", type="sandbox", batch_size=500, rate=RateLimit(100_000, 100_000), latency_ms=0)


async def test_prunes_old_history_but_keeps_what_channels_show(start_relay, tmp_path: Path) -> None:
    """After 31 days: old audit rows and superseded events are gone; each SKU's current event and lineage remain."""
    clock = Clock()
    r = await start_relay(make_config(tmp_path / "s", (sandbox(),), retention_days=30), now=clock)
    for version in range(1, 6):
        await send(r, clock, [stock_event(i, f"OLD-{i}", version, version) for i in range(1, 11)])
    await r.drain()
    clock.now += 31 * DAY
    await send(r, clock, [stock_event(100, "NEW-1", 3, 1)])
    await r.drain()
    deleted = await r.relay.housekeep()
    assert deleted > 0
    assert await r.count("SELECT COUNT(*) FROM audit WHERE at < ?", (clock.now - 30 * DAY,)) == 0
    assert await r.count("SELECT COUNT(*) FROM audit WHERE sku = 'NEW-1'") == 2  # received + attempt, both new
    # Of the 50 old events only each SKU's newest survives: the delivery still points at it.
    assert await r.count("SELECT COUNT(*) FROM events WHERE sku LIKE 'OLD-%'") == 10
    status, trace = await post(r, clock, "lineage", {"type": "lineage.query", "sku": "OLD-3"})
    assert status == 200 and trace["channels"][0]["shows"] == 5
    assert trace["channels"][0]["delivered_event"]["version"] == 5


@pytest.mark.sqlite_only("counts the SQLite file's pages and its WAL's size")
async def test_database_stops_growing_under_steady_traffic(start_relay, tmp_path: Path) -> None:
    """Ten 31-day rounds of the same traffic: the file's page count levels off and the WAL is truncated."""
    clock = Clock()
    state = tmp_path / "s"
    r = await start_relay(make_config(state, (sandbox(),), retention_days=30), now=clock)
    pages = []
    version = 0
    for _ in range(10):
        for _ in range(4):
            version += 1
            await send(r, clock, [stock_event(i, f"SKU-{i}", version % 50, version) for i in range(1, 501)])
        await r.drain()
        clock.now += 31 * DAY
        await r.relay.housekeep()
        pages.append(await r.count("PRAGMA page_count"))
    # Without pruning every round would add the same again (10 rounds: ~5x round 2's size).
    assert pages[-1] <= pages[1] * 1.1, pages
    assert os.path.getsize(state / "relay.sqlite3-wal") == 0


@pytest.mark.sqlite_only("counts the SQLite file's pages and its free list")
async def test_retention_frees_the_pages_of_pruned_history_for_the_next(start_relay, tmp_path: Path) -> None:
    """A fill of history, then retention_days pass: one housekeeping round deletes the old rows, their pages go on
    the free list (most of the file), and a second, equal fill reuses them instead of growing the file."""
    clock = Clock()
    r = await start_relay(make_config(tmp_path / "s", (sandbox(),), retention_days=7), now=clock)

    async def fill(first_version: int) -> None:
        for version in range(first_version, first_version + 6):
            for start in range(1, 1001, 500):
                await send(r, clock, [stock_event(i, f"SKU-{i}", version, version) for i in range(start, start + 500)])
            await r.drain()

    async def pages() -> tuple[int, int]:
        await r.relay.store.checkpoint()
        return await r.count("PRAGMA page_count"), await r.count("PRAGMA freelist_count")

    await fill(1)
    full, _ = await pages()
    history = await r.count("SELECT COUNT(*) FROM audit") + await r.count("SELECT COUNT(*) FROM events")
    clock.now += 8 * DAY
    deleted = await r.relay.housekeep()
    assert deleted >= history - 1000  # all but each SKU's current event
    assert await r.count("SELECT COUNT(*) FROM audit") == 0
    assert await r.count("SELECT COUNT(*) FROM events") == 1000
    assert await r.count("SELECT COUNT(*) FROM requests") == 0
    pruned, free = await pages()
    assert pruned == full and free > full * 0.6, (full, free)  # the file keeps its size; most of it is free
    await fill(7)
    refilled, _ = await pages()
    # Without the free pages the second fill would nearly double the file.
    assert refilled <= full * 1.15, (full, refilled)
