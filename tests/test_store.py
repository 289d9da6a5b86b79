"""The SQLite store: migrations, integrity check at start, group commit, one relay per state directory."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import pytest

from relay.delivery import deliveries
from relay.errors import StorageError
from relay.runtime import Relay
from relay.storage import retention, views
from relay.storage.store import MAX_GROUP, MIGRATIONS, Store, clean_marker, migrate

from .conftest import make_config


async def test_migrations_run_once_and_set_version(tmp_path: Path) -> None:
    """A new database gets every migration; reopening it changes nothing."""
    for _ in range(2):
        store = Store(tmp_path / "db.sqlite3")
        await store.open()
        await store.close()
    with sqlite3.connect(tmp_path / "db.sqlite3") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"events", "deliveries", "dead_letters", "requests", "audit", "product_versions"} <= tables


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A database written by a newer relay is not touched by an older one."""
    with sqlite3.connect(tmp_path / "db.sqlite3") as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StorageError, match="newer than this relay knows"):
        await Store(tmp_path / "db.sqlite3").open()


async def test_corrupt_database_is_detected_not_recreated(tmp_path: Path) -> None:
    """Garbage where the database should be stops start-up with a clear message and is left as it was."""
    path = tmp_path / "db.sqlite3"
    path.write_bytes(b"this is not a database" * 1000)
    with pytest.raises(StorageError, match="restore it from a backup"):
        await Store(path).open()
    assert path.read_bytes().startswith(b"this is not a database")


async def test_damaged_pages_are_detected(tmp_path: Path) -> None:
    """A database whose pages were overwritten fails the integrity check at start."""
    path = tmp_path / "db.sqlite3"
    store = Store(path)
    await store.open()
    await store.write(
        lambda c: c.executemany(
            "INSERT INTO audit (at, site, action, detail) VALUES (0, 's', 'x', ?)", [("y" * 500,)] * 400
        )
    )
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = 4096
    data[page * 3 : page * 6] = b"\x07" * (page * 3)
    path.write_bytes(bytes(data))
    with pytest.raises(StorageError):
        await Store(path).open()


async def test_group_commit_batches_concurrent_writers(tmp_path: Path) -> None:
    """Jobs queued together (fewer than MAX_GROUP) commit in one transaction, and each gets its own result."""
    store = Store(tmp_path / "db.sqlite3")
    await store.open()
    before = store.groups_committed
    jobs = 200
    assert jobs <= MAX_GROUP

    def job(i: int):
        def run(c: sqlite3.Connection) -> tuple[int, int]:
            seen = c.execute("SELECT COUNT(*) FROM audit").fetchone()[0]  # the group's earlier, uncommitted rows
            return seen, c.execute(
                "INSERT INTO audit (at, site, action) VALUES (?, 's', 'x') RETURNING id", (i,)
            ).fetchone()[0]

        return run

    results = await asyncio.gather(*(store.write(job(i)) for i in range(jobs)))
    assert len({row_id for _, row_id in results}) == jobs
    assert store.groups_committed - before == 1, "all the jobs were committed by one transaction"
    assert [seen for seen, _ in results] == list(range(jobs)), "each job saw the ones before it, uncommitted"
    await store.close()


async def test_failing_job_does_not_undo_its_group(tmp_path: Path) -> None:
    """One job's own error is handed to its caller; the other jobs of the same group still commit."""
    store = Store(tmp_path / "db.sqlite3")
    await store.open()

    def bad(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO audit (at, site, action) VALUES (1, 's', 'bad')")
        raise ValueError("boom")

    results = await asyncio.gather(
        store.write(lambda c: c.execute("INSERT INTO audit (at, site, action) VALUES (1, 's', 'good')").rowcount),
        store.write(bad),
        return_exceptions=True,
    )
    assert results[0] == 1 and isinstance(results[1], ValueError)
    rows = await store.read("SELECT action FROM audit")
    assert [r[0] for r in rows] == ["good"]
    await store.close()


async def test_one_relay_per_state_directory(tmp_path: Path) -> None:
    """A second relay on the same state directory refuses to start while the first runs."""
    cfg = make_config(tmp_path / "state")
    first = Relay(cfg)
    await first.start(run_workers=False)
    try:
        with pytest.raises(StorageError, match="already running"):
            await Relay(cfg).start(run_workers=False)
    finally:
        await first.stop()
    again = Relay(cfg)
    await again.start(run_workers=False)
    await again.stop()


def _plan(conn: sqlite3.Connection, sql: str) -> list[str]:
    numbered = [int(n) for n in re.findall(r"\?(\d+)", sql)]
    params = (None,) * (max(numbered) if numbered else sql.count("?"))
    return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]


def test_open_dead_letters_are_found_by_index_not_by_reading_them_all(tmp_path: Path) -> None:
    """Every confirmed delivery resolves its SKU's open dead letter, and pruning asks of every old event whether
    an open dead letter holds it. Both must be index lookups: as scans, a channel with 20,000 open dead letters
    made each delivery ~100x dearer for the one writer every channel and ingest share."""
    conn = sqlite3.connect(tmp_path / "db.sqlite3")
    migrate(conn)
    assert any("USING INDEX dead_letters_open_sku" in step for step in _plan(conn, deliveries.RESOLVE_DEAD_LETTER))
    statements: list[str] = []
    conn.execute(
        "INSERT INTO events (site, event_id, kind, product_id, sku, manage_stock, stock_status, backorders, version,"
        " occurred_at, cause_kind, received_at, outcome) VALUES ('main', 'e1', 'stock.changed', 1, 'S', 1,"
        " 'instock', 'no', 1, '', 'order', 0, 'accepted')"
    )
    conn.set_trace_callback(statements.append)
    retention.prune_events(conn, 1.0, ["sandbox"], retention.Walk())
    conn.set_trace_callback(None)
    (prune,) = [sql for sql in statements if "dead_letters" in sql]
    plan = _plan(conn, prune)
    assert any("USING INDEX dead_letters_open_event" in step for step in plan), plan
    assert not any(step.startswith("SCAN l") for step in plan), plan


def test_set_based_claim_and_settle_find_each_row_by_its_key(tmp_path: Path) -> None:
    """The claim stamps, and the settle checks, a whole batch with one statement over a JSON list of its SKUs: each
    SKU must be a lookup by the deliveries key, never a read of the channel's rows (a million at 1M SKUs)."""
    conn = sqlite3.connect(tmp_path / "db.sqlite3")
    migrate(conn)
    for sql in (deliveries.CLAIM_ROWS, deliveries.STILL_OURS):
        steps = _plan(conn, sql)
        assert "SEARCH deliveries USING PRIMARY KEY (site=? AND channel=? AND sku=?)" in steps, steps
        assert not any(step.startswith("SCAN deliveries") for step in steps), steps


def test_events_keep_only_their_keys_as_indexes(tmp_path: Path) -> None:
    """Every index on events is written at a random page per event once SKUs come at random (issue 20 §3), and each
    such page again at every commit: events keep their rowid and the (site, event_id) key that makes a repeat a
    duplicate, nothing else. events_product (schema 13 drops it) served no lookup that these do not."""
    conn = sqlite3.connect(tmp_path / "db.sqlite3")
    migrate(conn)
    indexes = {
        row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'")
    }
    assert indexes == {"sqlite_autoindex_events_1"}


def test_two_way_sync_reads_are_index_lookups(tmp_path: Path) -> None:
    """Read-back asks for every SKU a channel shows lower whether its sales explain it, every claim asks it for its
    batch, and status counts a week of oversold incidents: over a sales table that is never pruned and an audit log
    of 30 days, these must be index lookups, not scans."""
    conn = sqlite3.connect(tmp_path / "db.sqlite3")
    migrate(conn)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    deliveries.unapplied_sales(conn, "s", "c", [("SKU", 1), ("SKU-2", 2)])
    views.oversold_status(conn, "s", 1_000_000.0)
    conn.set_trace_callback(None)
    for sql in statements:
        plan = _plan(conn, sql)
        # the SKUs asked about (a JSON list, j, and its rows, w) are read whole; the tables never
        assert not any(step.startswith("SCAN") and not step.startswith(("SCAN j ", "SCAN w")) for step in plan), (
            sql,
            plan,
        )
    plans = [step for sql in statements for step in _plan(conn, sql)]
    assert any("INDEX sales_sku" in step for step in plans), plans
    assert any("INDEX audit_oversold" in step for step in plans), plans


async def test_the_integrity_check_is_skipped_only_for_the_file_a_clean_stop_left(tmp_path: Path) -> None:
    """The check reads the whole file (seconds at a million SKUs), so a restart after a clean stop skips it; after
    a crash (no clean close), or once the file changed while the relay was stopped, it runs again and refuses a
    damaged file."""
    path = tmp_path / "relay.sqlite3"
    first = Store(path)
    await first.open()
    await first.write(lambda conn: conn.execute("INSERT INTO heartbeat (id, at) VALUES (1, 1)"))
    await first.close()
    assert first.integrity_checked is False, "a new file has nothing to check"
    assert clean_marker(path).exists()

    again = Store(path)
    await again.open()
    assert again.integrity_checked is False, "as the clean stop left it: not read again"
    assert not clean_marker(path).exists(), "used up: a crash now makes the next start check"
    await again.write(lambda conn: conn.execute("UPDATE heartbeat SET at = 2"))
    # no close: the relay was killed (its threads die with it; the stamp is never written)
    crashed = Store(path)
    await crashed.open()
    assert crashed.integrity_checked is True
    await crashed.close()
    await again.close()

    data = bytearray(path.read_bytes())
    data[4096 * 2 : 4096 * 3] = b"\x07" * 4096  # damaged while the relay was stopped
    path.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="restore it from a backup"):
        await Store(path).open()
