"""The store on PostgreSQL: the same group-committing engine as SQLite's (relay/storage/store.py), several relays
writing to one database.

What differs from SQLite, and why:
- Each group runs ``SERIALIZABLE``. On SQLite one writer at a time makes every transaction serial; here other
  relays' groups run at the same moment, and the jobs were written for serial execution (read a version, then
  write on it). PostgreSQL's serializable isolation keeps that true: a group that would break it fails with a
  serialization failure before anything is acknowledged, and runs again (``RETRIES`` times, then its callers get
  a StorageError, which the API answers with 503).
- A lost connection (the server restarted, a failover) fails the group it happened in (nobody acknowledged) and is
  opened again by the next group: the relay recovers by itself once the server is back.
- No integrity check, WAL checkpoint or clean-stop stamp: PostgreSQL keeps its own files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Sequence
from typing import Any

import psycopg
import psycopg.sql

from ..errors import StorageError
from . import postgres
from .dbapi import WAKE_CHANNEL
from .location import Dsn
from .store import Job, Store, migration_statements

RETRIES = 12
# The tables the hot statements read by key. PostgreSQL plans from statistics, and a young store outgrows its own
# within seconds: autovacuum analyzes once a minute at best, and until it does the planner takes a table that grew
# from nothing to 100k rows for a handful, and ingest's lookup and the claim scan every row of the site instead of
# finding their keys (measured: 30-40 ms a lookup, the relay at 0.28x the rate it has once analyzed). So the relay
# analyzes them itself when they have changed by a fifth since PostgreSQL last did (or by ``STATS_MIN_CHANGES``).
STATS_TABLES = ("events", "deliveries", "requests", "product_versions", "audit", "sales")
STATS_MIN_CHANGES = 1000
STATS_CHECK_SECONDS = 2.0
_STALE_TABLES = (
    "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
    " WHERE s.schemaname = current_schema() AND s.relname = ANY(%s)"
    " AND s.n_mod_since_analyze > %s + 0.2 * GREATEST(c.reltuples, 0) ORDER BY s.relname"
)
log = logging.getLogger("stock_relay.store")
# psycopg warns when it tears down the pipeline of an executemany that a serialization failure aborted; the failure
# itself is handled (the group runs again), so the warning would only fill the log under contention.
logging.getLogger("psycopg").setLevel(logging.ERROR)


class PgStore(Store):
    BEGIN = "BEGIN ISOLATION LEVEL SERIALIZABLE"

    def __init__(self, dsn: Dsn) -> None:
        self.dsn = dsn
        self._init_engine(dsn)
        self._stopping = threading.Event()  # set while closed: the store's own threads end
        self._threads: list[threading.Thread] = []

    async def open(self, check: bool = True) -> None:
        await super().open(check)
        loop = asyncio.get_running_loop()
        self._stopping.clear()
        self._threads = [
            threading.Thread(target=self._listen, args=(loop,), name="store-listener", daemon=True),
            threading.Thread(target=self._keep_statistics, name="store-statistics", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    async def close(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            await asyncio.get_running_loop().run_in_executor(None, thread.join)
        self._threads = []
        await super().close()

    def _keep_statistics(self) -> None:
        """Every ``STATS_CHECK_SECONDS``, ANALYZE those of ``STATS_TABLES`` that changed enough since they were last
        analyzed, on a connection of its own (ANALYZE takes no lock that writes wait for; ``SKIP_LOCKED``: a table
        that another relay or autovacuum is analyzing right now is left to them)."""
        while not self._stopping.wait(STATS_CHECK_SECONDS):
            try:
                with psycopg.connect(self.dsn.url, autocommit=True, connect_timeout=5) as conn:
                    while True:
                        stale = {r[0] for r in conn.execute(_STALE_TABLES, (list(STATS_TABLES), STATS_MIN_CHANGES))}
                        if stale:
                            _analyze(conn, [name for name in STATS_TABLES if name in stale], skip_locked=True)
                        if self._stopping.wait(STATS_CHECK_SECONDS):
                            return
            except psycopg.Error as exc:
                log.debug("statistics upkeep reconnecting: %s", postgres.describe_error(exc))

    def analyze(self, tables: Sequence[str]) -> None:
        """ANALYZE ``tables`` now, on a connection of its own (after a bulk load: ``store migrate``)."""
        with psycopg.connect(self.dsn.url, autocommit=True, connect_timeout=5) as conn:
            _analyze(conn, tables)

    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        """LISTEN on a connection of its own; each notification is handed to ``on_notify`` on the loop. A lost
        connection is opened again (a missed wake-up only waits for the workers' idle poll)."""
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.dsn.url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {WAKE_CHANNEL}")
                    while not self._stopping.is_set():
                        for note in conn.notifies(timeout=0.5):
                            if self.on_notify is not None:
                                with contextlib.suppress(RuntimeError):  # the loop closed under us: stopping
                                    loop.call_soon_threadsafe(self.on_notify, note.payload)
            except psycopg.Error as exc:
                log.debug("wake-up listener reconnecting: %s", postgres.describe_error(exc))
                self._stopping.wait(1.0)

    def _prepare(self, check: bool) -> Any:
        conn = postgres.connect(self.dsn)
        try:
            postgres.migrate(conn, migration_statements())
        except psycopg.Error as exc:
            conn.close()
            raise StorageError(f"cannot prepare {self.dsn}: {postgres.describe_error(exc)}") from None
        return conn

    def _run_group(self, jobs: list[Job]) -> list[tuple[bool, Any]]:
        if self._conn is None or self._conn.broken:
            self._conn = None
            self._conn = postgres.connect(self.dsn)  # StorageError while the server is away: 503, then again
        return super()._run_group(jobs)

    def _run_transaction(self, conn: Any, jobs: list[Job]) -> list[tuple[bool, Any]]:
        attempt = 0
        while True:
            try:
                return super()._run_transaction(conn, jobs)
            except psycopg.Error as exc:
                attempt += 1
                if not postgres.retryable(exc) or attempt > RETRIES:
                    raise
                conn.execute("ROLLBACK")
                # apart from the other relay's retry, and longer each time: a group that keeps colliding waits
                # up to ~1 s in all before its callers get a 503
                time.sleep(random.uniform(0.5, 1.0) * min(0.002 * 2**attempt, 0.2))

    def _database_error(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.Error)

    def _group_fatal(self, exc: BaseException) -> bool:
        return postgres.group_fatal(exc)

    def _group_failed(self, exc: BaseException) -> StorageError:
        assert isinstance(exc, psycopg.Error)
        return StorageError(f"the database could not commit: {postgres.describe_error(exc)}")

    def _checkpoint(self) -> None:
        """PostgreSQL checkpoints by itself."""


def _analyze(conn: psycopg.Connection[Any], tables: Sequence[str], skip_locked: bool = False) -> None:
    names = ", ".join(psycopg.sql.Identifier(name).as_string(conn) for name in tables)
    conn.execute(f"ANALYZE {'(SKIP_LOCKED) ' if skip_locked else ''}{names}")
