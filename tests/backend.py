"""Which store the suite runs on: SQLite (the default) or PostgreSQL (``STOCK_RELAY_TEST_BACKEND=postgresql``).

scripts/test runs the suite twice: once as it is, once on the private PostgreSQL it starts (scripts/lib/postgres.sh,
``STOCK_RELAY_TEST_PG``). On PostgreSQL every test gets a schema of its own in that cluster (the URL's search_path),
dropped afterwards, so tests are as apart as their temporary SQLite files are. Relays made in the test process get
it through ``make_config``; relay subprocesses through the ``store:`` key ``with_store`` adds to their YAML, which
names the environment variable the test sets.

Tests of what only SQLite has (its file, its integrity check, its WAL, a full disk under it) are marked
``sqlite_only`` and skipped, with that reason, on the PostgreSQL run.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from relay.storage.location import Dsn

# Read at import, before conftest's _clean_environment empties STOCK_RELAY_* for each test.
BACKEND = os.environ.get("STOCK_RELAY_TEST_BACKEND", "sqlite")
CLUSTER = os.environ.get("STOCK_RELAY_TEST_PG", "")
ON_POSTGRES = BACKEND == "postgresql"
REQUIRED = os.environ.get("STOCK_RELAY_REQUIRE_PG") == "1"  # scripts/test: a missing cluster is a failure
STORE_VARIABLE = "STOCK_RELAY_TEST_STORE_URL"  # what a relay subprocess's store: reference names

_current: Dsn | None = None
_by_state_dir: dict[Path, tuple[Dsn, str]] = {}  # a schema per state directory the test uses (as SQLite has a file)
_monkeypatch: pytest.MonkeyPatch | None = None


def current_store() -> Dsn | None:
    """The running test's PostgreSQL schema, or None on SQLite."""
    return _current


def store_for(state_dir: Path | None) -> Dsn | None:
    """The store of the relay with this state directory: None on SQLite (its file is in the folder); on the
    PostgreSQL run the test's schema for the first state directory asked about, and a schema of its own for each
    other one, so two relays a test keeps apart on SQLite stay apart here too."""
    if _current is None:
        return None
    if state_dir is None:
        return _current
    key = state_dir.resolve()
    if key not in _by_state_dir:
        if not _by_state_dir:
            _by_state_dir[key] = (_current, "")
        else:
            dsn, name = new_schema(cluster())
            _by_state_dir[key] = (dsn, name)
            if _monkeypatch is not None:
                _monkeypatch.setenv(_variable(dsn), dsn.url)
    return _by_state_dir[key][0]


def _variable(dsn: Dsn) -> str:
    """The environment variable a relay subprocess's ``store:`` names for this schema."""
    for index, (known, _) in enumerate(_by_state_dir.values()):
        if known == dsn and index:
            return f"{STORE_VARIABLE}_{index}"
    return STORE_VARIABLE


def schema_url(base: str, schema: str) -> str:
    # urlunsplit would drop the empty host of postgresql:///db?host=/socket/dir
    options = urllib.parse.urlencode({"options": f"-csearch_path={schema}"})
    return base + ("&" if "?" in base else "?") + options


def cluster() -> str:
    """The test cluster's URL; a test that needs one fails (under scripts/test) or skips (a bare pytest) without it."""
    if not CLUSTER:
        if REQUIRED:
            pytest.fail("STOCK_RELAY_REQUIRE_PG=1 but no STOCK_RELAY_TEST_PG: scripts/test starts one", pytrace=False)
        pytest.skip("no PostgreSQL: scripts/test starts a private one (STOCK_RELAY_TEST_PG)")
    return CLUSTER


def new_schema(base: str) -> tuple[Dsn, str]:
    import psycopg

    name = "t_" + secrets.token_hex(6)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")  # a generated name, never input
    return Dsn(schema_url(base, name)), name


def drop_schema(base: str, name: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@pytest.fixture
def pg_schema() -> Iterator[Dsn]:
    """A fresh schema in the test cluster, for tests that are about PostgreSQL itself."""
    base = cluster()
    dsn, name = new_schema(base)
    yield dsn
    drop_schema(base, name)


def suite_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """On the PostgreSQL run: this test's schema, for make_config and for relay subprocesses."""
    global _current
    if not ON_POSTGRES:
        yield
        return
    global _monkeypatch
    base = cluster()
    dsn, name = new_schema(base)
    _current, _monkeypatch = dsn, monkeypatch
    monkeypatch.setenv(STORE_VARIABLE, dsn.url)
    try:
        yield
    finally:
        others = [other for _, other in _by_state_dir.values() if other]
        _current, _monkeypatch = None, None
        _by_state_dir.clear()
        for schema in [name, *others]:
            drop_schema(base, schema)


def with_store(config_yaml: str, state_dir: Path | None = None) -> str:
    """A relay subprocess's YAML, on the PostgreSQL run pointed at the schema of its state directory."""
    dsn = store_for(state_dir)
    if dsn is None:
        return config_yaml
    return config_yaml.rstrip("\n") + f"\nstore: env:{_variable(dsn)}\n"


def read_rows(database: Path, sql: str, params: Sequence[Any] = (), store: Dsn | None = None) -> list[tuple[Any, ...]]:
    """Look at a relay's data from outside it: the SQLite file ``database`` read-only, or on the PostgreSQL run
    ``store`` (the test's schema unless given). ``sql`` is the relay's dialect: ``?`` placeholders work on both."""
    store = store or store_for(database.parent)
    if store is None:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
            return conn.execute(sql, params).fetchall()
    from relay.storage import postgres

    pg = postgres.connect(store, read_only=True, application="stock-relay-tests")
    try:
        return [tuple(row) for row in pg.execute(sql, params).fetchall()]
    finally:
        pg.close()
