"""What a storage job or view may ask of its connection, on SQLite and on PostgreSQL alike.

Jobs and views (relay/storage/store.py) are plain functions of a connection. On SQLite that connection is the
standard library's ``sqlite3.Connection``; on PostgreSQL it is ``postgres.PgConn``, which takes the same SQL text
(``?`` and ``?N`` placeholders) and answers rows readable by index and by name, as ``sqlite3.Row`` is. The SQL the
relay writes keeps to what both engines read alike (``INSERT ... ON CONFLICT``, ``RETURNING``, ``COALESCE``,
``CASE``); the few statements that cannot (SQLite's JSON table functions in the hot paths) ask ``is_postgres``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any, Protocol


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor: ...


def stream(conn: Conn, sql: str, parameters: Any = ()) -> Iterator[Any]:
    """The rows of a SELECT one at a time, however many (an export): SQLite's cursor steps through the table;
    psycopg would fetch the whole result into memory first, so on PostgreSQL the rows come in single-row mode."""
    if is_postgres(conn):
        return conn.stream(sql, parameters)  # type: ignore[attr-defined, no-any-return]
    return iter(conn.execute(sql, parameters))


def skip_locked(conn: Conn, of: str = "") -> str:
    """What a claim's SELECT ends with: on PostgreSQL it locks the rows it picks (of the table aliased ``of``) and
    passes over those another transaction holds (an ingest making them due again), so claims never wait; SQLite
    has one writer at a time."""
    if not is_postgres(conn):
        return ""
    return f" FOR UPDATE OF {of} SKIP LOCKED" if of else " FOR UPDATE SKIP LOCKED"


def writes_at_once(conn: Conn) -> contextlib.AbstractContextManager[Any]:
    """A block of writes whose results nobody reads (no fetch, no rowcount): on PostgreSQL they go to the server
    together (psycopg's pipeline mode) and are waited for once, at the block's end, where an error in any of them is
    raised; a statement at a time cost a round trip each, and the writer waits on those. SQLite: nothing to do."""
    if is_postgres(conn):
        return conn.raw.pipeline()  # type: ignore[attr-defined, no-any-return]
    return contextlib.nullcontext()


def is_postgres(conn: Conn) -> bool:
    """Whether a job runs on PostgreSQL (for the statements whose text must differ)."""
    return bool(getattr(conn, "postgres", False))


WAKE_CHANNEL = "stock_relay_wake"  # PostgreSQL's LISTEN/NOTIFY channel between relays sharing a store


def notify(conn: Conn, payload: str) -> None:
    """In a write job: tell every relay listening (pg_store.PgStore) that ``payload`` has work, once the job commits.
    PostgreSQL sends it at COMMIT, and drops repeats within one transaction; on SQLite (one relay) nothing is sent."""
    if is_postgres(conn):
        conn.execute("SELECT pg_notify(?, ?)", (WAKE_CHANNEL, payload))


def shop_wake_payload(site: str) -> str:
    """The wake-up for a site's shop worker (a site's own is the site id; ids hold no tab)."""
    return f"{site}\t@shop"
