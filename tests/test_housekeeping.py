"""Housekeeping never reads a whole table (issue 20 §2): every prune is served by an index or the primary key, in
slices of at most ``retention.BATCH`` rows, and rows kept for a reason (an event a delivery still points at) do
not stop the old rows behind them from going.

The database is a real SQLite file with the relay's schema; rows are written as the relay writes them.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from relay import runtime
from relay.storage import retention
from relay.storage.store import migrate

DAY = 86_400.0


def add_events(conn: sqlite3.Connection, count: int, received_at: float, sku: str = "") -> None:
    conn.executemany(
        "INSERT INTO events (site, event_id, kind, product_id, sku, manage_stock, stock_status, backorders, version,"
        " occurred_at, cause_kind, received_at, outcome) VALUES ('main', ?, 'stock.changed', 1, ?, 1, 'instock',"
        " 'no', 1, '', 'order', ?, 'accepted')",
        [(f"e-{received_at}-{i}", sku or f"S-{i}", received_at) for i in range(count)],
    )


def pin_all(conn: sqlite3.Connection, received_at: float) -> None:
    """A delivery of each SKU to the channel points at its event received at ``received_at``: those are kept."""
    conn.execute(
        "INSERT INTO deliveries (site, channel, sku, want_seq, state, next_attempt_at, attempts, updated_at)"
        " SELECT 'main', 'shop-hook', sku, seq, 'delivered', 0, 0, 0 FROM events WHERE received_at = ?",
        (received_at,),
    )


def plans(conn: sqlite3.Connection, statements: list[str]) -> list[str]:
    steps: list[str] = []
    for sql in statements:
        if sql.lstrip().upper().startswith(("SELECT", "DELETE")):
            count = len(re.findall(r"\?", sql))
            steps += [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", (0,) * count)]
    return steps


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(tmp_path / "relay.sqlite3", isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")  # what is measured here is which rows go, not durability
    migrate(db)
    return db


def test_every_prune_is_an_index_or_key_lookup_never_a_table_scan(conn: sqlite3.Connection) -> None:
    add_events(conn, 50, received_at=0.0)
    conn.execute(
        "INSERT INTO dead_letters (site, channel, sku, event_seq, reason, created_at, resolved_at)"
        " VALUES ('main', 'shop-hook', 'S-1', 1, 'refused', 0, 1)"
    )
    conn.execute("INSERT INTO audit (at, site, action) VALUES (0, 'main', 'received')")
    conn.execute("INSERT INTO requests (site, msg_id, response, received_at) VALUES ('main', 'm', '{}', 0)")
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    assert runtime.prune_request_ids(conn, 1.0) == (1, False)
    assert retention.prune_audit(conn, 1.0) == (1, False)
    assert retention.prune_events(conn, 1.0, ["shop-hook"], retention.Walk()) == (50, True)
    assert retention.prune_dead_letters(conn, 2.0, retention.Walk()) == (1, True)
    conn.set_trace_callback(None)
    steps = plans(conn, statements)
    assert steps, "the prunes' statements were traced"
    scans = [s for s in steps if re.match(r"SCAN (events|audit|requests|dead_letters|deliveries|e|l|d)\b", s)]
    assert not scans, steps


def test_kept_rows_do_not_block_the_old_rows_behind_them_and_slices_stay_small(conn: sqlite3.Connection) -> None:
    """2,500 old events, the first 1,500 kept by deliveries, then 1,200 old ones free to go, then young ones: the
    walk passes the kept ones slice by slice, deletes the free ones, stops at the young, and no slice looks at more
    than BATCH rows. A later round goes on from there; after REWALK_SECONDS it starts over and frees an event whose
    delivery has moved on since."""
    add_events(conn, 1500, received_at=0.0)
    pin_all(conn, 0.0)
    add_events(conn, 1200, received_at=1.0, sku="OLD")
    add_events(conn, 300, received_at=50 * DAY)
    walk = retention.Walk()
    walk.begin_round(now=40 * DAY)
    rounds: list[tuple[int, bool]] = []
    while not rounds or rounds[-1][1]:
        before = conn.total_changes
        rounds.append(retention.prune_events(conn, 30 * DAY, ["shop-hook"], walk))
        assert conn.total_changes - before <= retention.BATCH
    assert sum(deleted for deleted, _ in rounds) == 1200
    assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1800
    assert len(rounds) == 4, rounds  # 1,000 kept; 500 kept + 500 freed; 700 freed; the young slice ends it

    conn.execute("DELETE FROM deliveries WHERE sku = 'S-3'")  # its delivery moved on: the old event is free
    walk.begin_round(now=40 * DAY + 60)
    assert retention.prune_events(conn, 30 * DAY, ["shop-hook"], walk) == (0, False), "the next round goes on"
    walk.begin_round(now=40 * DAY + retention.REWALK_SECONDS)
    freed = 0
    while True:
        deleted, more = retention.prune_events(conn, 30 * DAY, ["shop-hook"], walk)
        freed += deleted
        if not more:
            break
    assert freed == 1


def test_resolved_dead_letters_go_and_open_ones_stay(conn: sqlite3.Connection) -> None:
    rows = [(f"S-{i}", 0.0, 1.0 if i % 2 else None) for i in range(2500)]
    conn.executemany(
        "INSERT INTO dead_letters (site, channel, sku, event_seq, reason, created_at, resolved_at)"
        " VALUES ('main', 'shop-hook', ?, 1, 'refused', ?, ?)",
        rows,
    )
    walk = retention.Walk()
    walk.begin_round(now=10 * DAY)
    deleted = 0
    while True:
        count, more = retention.prune_dead_letters(conn, 5 * DAY, walk)
        deleted += count
        if not more:
            break
    assert deleted == 1250
    assert conn.execute("SELECT COUNT(*) FROM dead_letters WHERE resolved_at IS NULL").fetchone()[0] == 1250
