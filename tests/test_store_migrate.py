"""``stock-relay store migrate --to REF``: a real relay's SQLite store copied into a fresh PostgreSQL schema by the
CLI in a subprocess, checked table by table, run again, interrupted, refused, and served by a relay afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from relay import signing
from relay.cli.client import SignedClient, stock_event
from relay.http.server import make_app
from relay.runtime import Relay
from relay.storage.location import Dsn
from relay.storage.pg_store import PgStore

from .conftest import SITE_SECRET, Receiver, Reply, make_config, webhook_channel
from .procs import RelayProcess, relay_command, run_cli

SKUS = 30
CHANGED_TWICE = 10
REFUSED = 5
ANSWER = {"error": "quantity_out_of_range", "message": "listing is capped at 99 units"}
STORE_VARIABLE = "MIGRATE_TEST_STORE"  # what --to and the migrated config's store: name
BATCH = "7"  # several batches per table, and a last one that is not full


async def _fill(state: Path) -> None:
    """A relay on SQLite in ``state``: every SKU sent once, some twice, the first REFUSED refused for good."""
    fake = Receiver()
    hooks = web.Application()
    hooks.router.add_post("/{tail:.*}", fake.handle)
    fake.server = TestServer(hooks, host="127.0.0.1")
    await fake.server.start_server()
    fake.on("/hook", *[Reply(422, ANSWER) for _ in range(REFUSED)])
    cfg = make_config(state, (webhook_channel("hook", fake.url("/hook")),), store=None)
    relay = Relay(cfg)
    await relay.start(run_workers=False)
    api = TestServer(make_app(cfg, relay), host="127.0.0.1")
    await api.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            client = SignedClient(str(api.make_url("")).rstrip("/"), "main", SITE_SECRET, session)
            status, body = await client.send_events([stock_event(i, f"SKU-{i:02d}", i, 1) for i in range(1, SKUS + 1)])
            assert status == 202, body
            await _drain(relay)
            status, body = await client.send_events(
                [stock_event(i, f"SKU-{i:02d}", i + 50, 2) for i in range(SKUS - CHANGED_TWICE + 1, SKUS + 1)]
            )
            assert status == 202, body
            await _drain(relay)
    finally:
        await api.close()
        await relay.stop()
        await fake.server.close()


async def _drain(relay: Relay) -> None:
    while sum([await worker.drain() for worker in relay.workers.values()]):
        pass


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One relay's state directory, made once for the module; each test works on its own copy."""
    state = tmp_path_factory.mktemp("filled") / "state"
    asyncio.run(_fill(state))
    return state


@pytest.fixture
def state(filled: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "state"
    shutil.copytree(filled, copy)
    return copy


def write_config(tmp_path: Path, state: Path, store: bool = False, name: str = "relay.yaml") -> Path:
    """The relay's YAML: the SQLite one the migration reads, or (``store``) the one that moved to PostgreSQL."""
    channel = {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/", "secret": "env:MIGRATE_HOOK_SECRET"}
    doc: dict[str, Any] = {
        "state_dir": str(state),
        "listen": {"port": 0},
        "sites": {"main": {"secret": "env:MIGRATE_SITE_SECRET", "max_requests_per_second": 0, "channels": [channel]}},
    }
    if store:
        doc["store"] = f"env:{STORE_VARIABLE}"
        channel.update(type="sandbox", latency_ms=0)
        del channel["url"], channel["secret"]
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def migrate(config: Path, dsn: Dsn | str | None, *args: str) -> subprocess.CompletedProcess[str]:
    """The command as an operator runs it (not run_cli: on the suite's PostgreSQL run that adds a store: itself)."""
    env = {**os.environ, STORE_VARIABLE: dsn if isinstance(dsn, str) else dsn.url} if dsn else dict(os.environ)
    command = relay_command("store", "migrate", "-c", str(config), "--to", f"env:{STORE_VARIABLE}", *args)
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def counts_table(stdout: str) -> dict[str, tuple[int, int, int]]:
    """The printed table: table -> (sqlite, postgresql, copied now)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["table", "sqlite"])
    rows = {}
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        name, sqlite, pg, copied = line.split()
        rows[name] = (int(sqlite), int(pg), int(copied))
    return rows


def sqlite_counts(state: Path) -> dict[str, int]:
    with sqlite3.connect(state / "relay.sqlite3") as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: conn.execute(f"SELECT COUNT(*) FROM {n}").fetchone()[0] for n in names if n != "sqlite_sequence"}


def pg_counts(dsn: Dsn, names: list[str]) -> dict[str, int]:
    with psycopg.connect(dsn.url) as conn:
        return {n: conn.execute(f"SELECT COUNT(*) FROM {n}").fetchone()[0] for n in names}  # type: ignore[index]


def pg_analyzed(dsn: Dsn) -> set[str]:
    """The tables an ANALYZE command has run on (autovacuum's runs are counted apart)."""
    with psycopg.connect(dsn.url) as conn:
        rows = conn.execute(
            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() AND analyze_count > 0"
        ).fetchall()
        return {str(r[0]) for r in rows}


def pg_tables(dsn: Dsn) -> int:
    with psycopg.connect(dsn.url) as conn:
        row = conn.execute("SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()").fetchone()
        assert row is not None
        return int(row[0])


def test_copies_every_table_and_a_relay_serves_it(state: Path, tmp_path: Path, pg_schema: Dsn) -> None:
    """Every table arrives with its row count; a relay started on PostgreSQL shows the old dead letters and audit
    and takes new events (the identity sequences were moved past the copied ids)."""
    done = migrate(write_config(tmp_path, state), pg_schema, "--batch", BATCH)
    assert done.returncode == 0, done.stderr
    expected = sqlite_counts(state)
    assert expected["dead_letters"] == REFUSED and expected["events"] == SKUS + CHANGED_TWICE
    assert expected["audit"] > SKUS and expected["deliveries"] == SKUS
    printed = counts_table(done.stdout)
    assert set(printed) == set(expected)
    assert {n: (s, p) for n, (s, p, _) in printed.items()} == {n: (c, c) for n, c in expected.items()}
    assert {n: c for n, (_, _, c) in printed.items()} == expected  # all new to the target
    assert pg_counts(pg_schema, list(expected)) == expected
    assert f"store: env:{STORE_VARIABLE}" in done.stdout
    # the relays start with the planner's statistics of what was copied, not of the empty tables it began with
    assert pg_analyzed(pg_schema) >= set(expected)

    config = write_config(tmp_path, state, store=True, name="on-postgres.yaml")
    secret = signing.new_secret()
    env = {"MIGRATE_SITE_SECRET": secret, STORE_VARIABLE: pg_schema.url}
    proc = RelayProcess(config, env, tmp_path / "relay.log")
    url = proc.start()
    try:
        dead = run_cli("dead", "-c", str(config), "--json", env=env)
        assert dead.returncode == 0, dead.stderr
        letters = json.loads(dead.stdout)
        assert len(letters) == REFUSED and {d["http_status"] for d in letters} == {422}
        audit = run_cli("audit", "-c", str(config), "--sku", f"SKU-{SKUS:02d}", "--json", env=env)
        assert audit.returncode == 0, audit.stderr
        assert {"received", "attempt"} <= {e["action"] for e in json.loads(audit.stdout)}
        asyncio.run(_send(url, secret, [stock_event(SKUS + 1, "SKU-NEW", 3, 1)]))
    finally:
        proc.terminate()
    after = pg_counts(pg_schema, ["events", "audit"])
    assert after["events"] == expected["events"] + 1 and after["audit"] > expected["audit"]


async def _send(url: str, secret: str, events: list[dict[str, Any]]) -> None:
    async with aiohttp.ClientSession() as session:
        status, body = await SignedClient(url, "main", secret, session).send_events(events)
    assert status == 202, body


def test_second_run_copies_nothing_and_still_verifies(state: Path, tmp_path: Path, pg_schema: Dsn) -> None:
    """Run again on a complete copy: nothing new is copied, nothing is doubled, the counts still match."""
    config = write_config(tmp_path, state)
    assert migrate(config, pg_schema).returncode == 0
    again = migrate(config, pg_schema, "--batch", BATCH)
    assert again.returncode == 0, again.stderr
    printed = counts_table(again.stdout)
    assert all(s == p for s, p, _ in printed.values()) and {c for _, _, c in printed.values()} == {0}
    assert pg_counts(pg_schema, list(printed)) == sqlite_counts(state)


async def test_an_interrupted_copy_completes_on_a_rerun(state: Path, tmp_path: Path, pg_schema: Dsn) -> None:
    """A copy that fails halfway through a table keeps the batches it committed; the re-run adds only the rest."""
    store = PgStore(pg_schema)
    await store.open()  # the schema, so the test can put a trigger on audit before the copy
    await store.close()
    with psycopg.connect(pg_schema.url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN IF NEW.id > 15 THEN RAISE EXCEPTION 'the disk is gone'; END IF; RETURN NEW; END $$"
        )
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION refuse()")
    config = write_config(tmp_path, state)
    broken = await asyncio.to_thread(migrate, config, pg_schema, "--batch", BATCH)
    assert broken.returncode == 1 and "cannot copy audit" in broken.stderr and "the disk is gone" in broken.stderr
    assert pg_counts(pg_schema, ["audit"]) == {"audit": 14}  # two batches of 7 committed, the third refused
    with psycopg.connect(pg_schema.url, autocommit=True) as conn:
        conn.execute("DROP TRIGGER refuse ON audit")
    done = await asyncio.to_thread(migrate, config, pg_schema, "--batch", BATCH)
    assert done.returncode == 0, done.stderr
    expected = sqlite_counts(state)
    printed = counts_table(done.stdout)
    assert printed["audit"] == (expected["audit"], expected["audit"], expected["audit"] - 14)
    assert printed["alert_cursors"][2] == 0 and printed["events"][2] == expected["events"]
    assert pg_counts(pg_schema, list(expected)) == expected


async def test_refused_while_a_relay_runs_on_the_state_dir(start_relay, tmp_path: Path, pg_schema: Dsn) -> None:
    """A running relay would write rows the copy misses: refused, and the target is left untouched."""
    state = tmp_path / "state"
    await start_relay(make_config(state, store=None))
    refused = await asyncio.to_thread(migrate, write_config(tmp_path, state), pg_schema)
    assert refused.returncode == 1 and "a stock-relay is running on" in refused.stderr, refused.stderr
    assert pg_tables(pg_schema) == 0


def test_refused_references_and_sources(state: Path, tmp_path: Path, pg_schema: Dsn) -> None:
    """A reference that resolves to nothing, a URL given instead of a reference, a config already on PostgreSQL,
    no SQLite file, an older schema: each refused with what to do, and nothing written to the target."""
    config = write_config(tmp_path, state)
    unset = migrate(config, None)
    assert unset.returncode == 2 and f"environment variable {STORE_VARIABLE} is not set" in unset.stderr
    bare = subprocess.run(
        relay_command("store", "migrate", "-c", str(config), "--to", "postgresql://relay:Hunter2Dummy@127.0.0.1/x"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bare.returncode == 2 and "must be a reference" in bare.stderr and "Hunter2Dummy" not in bare.stderr
    other = migrate(config, "mysql://relay:Hunter2Dummy@127.0.0.1/x")
    assert other.returncode == 2 and "must be a PostgreSQL URL" in other.stderr
    assert "Hunter2Dummy" not in other.stdout + other.stderr
    moved = migrate(write_config(tmp_path, state, store=True, name="moved.yaml"), pg_schema)
    assert moved.returncode == 1 and "already has store:" in moved.stderr
    missing = migrate(write_config(tmp_path, tmp_path / "nowhere", name="empty.yaml"), pg_schema)
    assert missing.returncode == 1 and "no SQLite store at" in missing.stderr
    with sqlite3.connect(state / "relay.sqlite3") as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.execute(f"PRAGMA user_version = {version - 1}")
    older = migrate(config, pg_schema)
    assert older.returncode == 1 and f"schema version {version - 1}" in older.stderr, older.stderr
    assert pg_tables(pg_schema) == 0


def test_the_password_is_never_shown(state: Path, tmp_path: Path) -> None:
    """A server that cannot be reached: the error names the database without the URL's password."""
    url = "postgresql://relay:Hunter2Dummy@127.0.0.1:1/relay"
    failed = migrate(write_config(tmp_path, state), url)
    assert failed.returncode == 1 and "cannot connect to postgresql://relay@127.0.0.1:1/relay" in failed.stderr
    assert "Hunter2Dummy" not in failed.stdout + failed.stderr


def test_progress_on_a_terminal(state: Path, tmp_path: Path, pg_schema: Dsn) -> None:
    """On a terminal, each table's rows copied out of its total and the percentage."""
    leader, follower = os.openpty()
    command = relay_command(
        "store", "migrate", "-c", str(write_config(tmp_path, state)), "--to", f"env:{STORE_VARIABLE}"
    )
    env = {**os.environ, STORE_VARIABLE: pg_schema.url}
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=follower, env=env) as proc:
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        assert proc.wait(120) == 0
    os.close(leader)
    text = shown.decode()
    audit = sqlite_counts(state)["audit"]
    assert f"audit: {audit:,} / {audit:,} rows (100%)" in text and "events: 0 / " in text


async def test_counts_that_differ_fail_the_check(state: Path, tmp_path: Path, pg_schema: Dsn) -> None:
    """A target that already held a row of its own (a relay ran on it): the copy is not taken for complete."""
    store = PgStore(pg_schema)
    await store.open()
    await store.write(
        lambda conn: conn.execute(
            "INSERT INTO channel_pauses (site, channel, reason, actor, paused_at) VALUES ('main', 'hook', 'x', 'y', 1)"
        )
    )
    await store.close()
    done = await asyncio.to_thread(migrate, write_config(tmp_path, state), pg_schema)
    assert done.returncode == 1 and "the row counts differ in channel_pauses" in done.stderr, done.stderr
    assert counts_table(done.stdout)["channel_pauses"][:2] == (0, 1)
    assert "store: env:" not in done.stdout
