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
from typing import Any

import psycopg

from ..errors import StorageError
from . import postgres
from .dbapi import WAKE_CHANNEL
from .location import Dsn
from .store import Job, Store, migration_statements

RETRIES = 12
log = logging.getLogger("stock_relay.store")
# psycopg warns when it tears down the pipeline of an executemany that a serialization failure aborted; the failure
# itself is handled (the group runs again), so the warning would only fill the log under contention.
logging.getLogger("psycopg").setLevel(logging.ERROR)


class PgStore(Store):
    BEGIN = "BEGIN ISOLATION LEVEL SERIALIZABLE"

    def __init__(self, dsn: Dsn) -> None:
        self.dsn = dsn
        self._init_engine(dsn)
        self._listening = threading.Event()
        self._listener: threading.Thread | None = None

    async def open(self, check: bool = True) -> None:
        await super().open(check)
        loop = asyncio.get_running_loop()
        self._listening.set()
        self._listener = threading.Thread(target=self._listen, args=(loop,), name="store-listener", daemon=True)
        self._listener.start()

    async def close(self) -> None:
        self._listening.clear()
        if self._listener is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._listener.join)
            self._listener = None
        await super().close()

    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        """LISTEN on a connection of its own; each notification is handed to ``on_notify`` on the loop. A lost
        connection is opened again (a missed wake-up only waits for the workers' idle poll)."""
        while self._listening.is_set():
            try:
                with psycopg.connect(self.dsn.url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {WAKE_CHANNEL}")
                    while self._listening.is_set():
                        for note in conn.notifies(timeout=0.5):
                            if self.on_notify is not None:
                                with contextlib.suppress(RuntimeError):  # the loop closed under us: stopping
                                    loop.call_soon_threadsafe(self.on_notify, note.payload)
            except psycopg.Error as exc:
                log.debug("wake-up listener reconnecting: %s", postgres.describe_error(exc))
                time.sleep(1.0)

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
