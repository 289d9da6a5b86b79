"""PostgreSQL for the store (``store: env:NAME`` holding ``postgresql://...``), through psycopg 3.

Why psycopg 3 and not asyncpg: the relay's jobs and views are plain synchronous functions run on the store's own
threads (one thread hop per group commit, not one per statement; relay/storage/store.py), and the same functions
serve SQLite. psycopg 3 has a synchronous API that fits them as they are, binary wheels on PyPI (nothing to compile),
server-side prepared statements after a few runs of a statement, and LISTEN/NOTIFY on a plain connection. asyncpg
is asyncio-only: every job would need an async twin.

``PgConn`` gives a job what ``sqlite3.Connection`` gives it: ``execute``/``executemany`` on the relay's SQL text with
``?`` and ``?N`` placeholders, rows readable by index and by name, ``rowcount``. The schema is the one description in
store.py's MIGRATIONS, its SQLite column types read as PostgreSQL's (``ddl``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg.adapt import Dumper, Loader
from psycopg.pq import TransactionStatus

from ..errors import StorageError
from .location import Dsn

# One lock id for schema changes, so relays starting together migrate one at a time.
MIGRATION_LOCK = 0x5EC7_0001

_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?(\d*)|%")


# SQLite idioms the relay's SQL uses that PostgreSQL spells otherwise, where the meaning is the same text for text:
# a JSON list parameter read as a set of text values; a text member of a JSON object; a planner hint it has no use
# for. Statements that need more (JSON built in SQL, numbers out of JSON) have their own PostgreSQL text.
_IDIOMS = (
    # col IN (a JSON list): as an array, so the planner looks each value up by index; a semi-join over the function
    # scans the table, and under SERIALIZABLE a scan locks the whole table against every other relay's writes.
    (
        re.compile(r"([\w.]+) IN \(SELECT value FROM json_each\((\?\d*)\)\)"),
        r"\1 = ANY(ARRAY(SELECT json_array_elements_text(\2::json)))",
    ),
    (
        re.compile(r"SELECT (DISTINCT )?value FROM json_each\((\?\d*)\)"),
        r"SELECT \1value FROM json_array_elements_text(\2::json)",
    ),
    (re.compile(r"json_extract\(([\w.]+), '\$\.(\w+)'\)"), r"(\1::json->>'\2')"),
    (re.compile(r" INDEXED BY \w+"), ""),
)


@functools.lru_cache(maxsize=2048)
def translate(sql: str) -> tuple[str, tuple[int, ...]]:
    """The relay's SQL in psycopg's terms: each ``?`` / ``?N`` becomes ``%s`` and the order to pass the parameters
    in (``?1`` used twice is passed twice); every ``%`` is doubled. A ``?`` in quoted text is left alone. The SQLite
    idioms of ``_IDIOMS`` are rewritten first."""
    for pattern, replacement in _IDIOMS:
        sql = pattern.sub(replacement, sql)
    order: list[int] = []
    plain = 0

    def token(match: re.Match[str]) -> str:
        nonlocal plain
        text = match.group(0)
        if text == "%":
            return "%%"
        if not text.startswith("?"):  # quoted: psycopg still reads % in it as a placeholder's start
            return text.replace("%", "%%")
        if match.group(1):
            order.append(int(match.group(1)) - 1)
        else:
            order.append(plain)
            plain += 1
        return "%s"

    return _TOKEN.sub(token, sql), tuple(order)


MULTI_ROW_SIZES = (100, 10, 1)  # statements of these many rows, largest first: few distinct texts to prepare
_PLAIN_INSERT = re.compile(r"(INSERT INTO \w+ \([\w, ]+\) VALUES )(\((?:%s, ?)*%s\))")


@functools.lru_cache(maxsize=256)
def _multi_row(sql: str) -> Callable[[int], str] | None:
    """For ``INSERT INTO t (...) VALUES (?, ...)`` and nothing more (no ON CONFLICT, no RETURNING: rows of one
    statement may not meet each other's conflicts, and nobody reads a result; no ``?N``: parameters in the order
    given), the translated statement with ``n`` rows of values."""
    text, order = translate(sql)
    match = _PLAIN_INSERT.fullmatch(text)
    if match is None or order != tuple(range(len(order))):
        return None
    head, group = match.groups()
    return functools.lru_cache(maxsize=len(MULTI_ROW_SIZES))(lambda n: head + ", ".join([group] * n))


def _arguments(order: tuple[int, ...], parameters: Any) -> Sequence[Any]:
    values = tuple(parameters)
    return [values[i] for i in order]


class Row(tuple[Any, ...]):
    """A result row by index or by column name, like sqlite3.Row (and equal to the tuple of its values)."""

    _index: dict[str, int] = {}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


@functools.lru_cache(maxsize=512)
def _row_class(names: tuple[str, ...]) -> type[Row]:
    return type("Row", (Row,), {"_index": {name: i for i, name in enumerate(names)}, "__slots__": ()})


def _rows(cursor: psycopg.Cursor[Any]) -> Callable[[Sequence[Any]], Row]:
    names = tuple(column.name for column in cursor.description or ())
    cls = _row_class(names)
    return cls


class _IntegralNumeric(Loader):
    """SUM over integers is numeric in PostgreSQL; the relay counts in ints, as SQLite answers."""

    def load(self, data: Any) -> Any:
        value = Decimal(bytes(data).decode())
        return int(value) if value == value.to_integral_value() else float(value)


class _BoolAsInt(Dumper):
    """SQLite keeps booleans as 0/1 in INTEGER columns, and so does the shared schema."""

    oid = psycopg.adapters.types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


class PgConn:
    """A psycopg connection that takes the relay's SQL as a sqlite3 connection does (see the module docstring)."""

    postgres = True

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Any = (), /) -> psycopg.Cursor[Row]:
        text, order = translate(sql)
        cursor = self.raw.cursor(row_factory=_rows)
        cursor.execute(text, _arguments(order, parameters))
        return cursor

    def stream(self, sql: str, parameters: Any = ()) -> Iterator[Row]:
        """Rows one at a time in single-row mode (dbapi.stream): an export never holds its result in memory."""
        text, order = translate(sql)
        cursor = self.raw.cursor(row_factory=_rows)
        return cursor.stream(text, _arguments(order, parameters))

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> psycopg.Cursor[Row]:
        text, order = translate(sql)
        rows = [_arguments(order, p) for p in parameters]
        cursor = self.raw.cursor(row_factory=_rows)
        multi = _multi_row(sql)
        if multi is not None:
            # A plain INSERT of many rows as few statements of up to 100 rows each: a statement per row cost
            # PostgreSQL ~10 µs of its own and psycopg as much again, per row (ingest's events, audit, requests).
            for size in MULTI_ROW_SIZES:
                whole = len(rows) - len(rows) % size
                if whole:
                    statement = multi(size)
                    chunks = [rows[at : at + size] for at in range(0, whole, size)]
                    cursor.executemany(statement, [[v for row in chunk for v in row] for chunk in chunks])
                    rows = rows[whole:]
            return cursor
        cursor.executemany(text, rows)
        return cursor

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    @property
    def broken(self) -> bool:
        return self.raw.closed or self.raw.broken

    def close(self) -> None:
        self.raw.close()


def connect(dsn: Dsn, read_only: bool = False, application: str = "stock-relay") -> PgConn:
    """A connection in autocommit mode: the store writes BEGIN and COMMIT itself, as it does on SQLite."""
    try:
        raw = psycopg.connect(dsn.url, autocommit=True, connect_timeout=5, application_name=application)
    except psycopg.Error as exc:
        raise StorageError(f"cannot connect to {dsn}: {_first_line(exc)}") from None
    raw.adapters.register_loader("numeric", _IntegralNumeric)
    raw.adapters.register_dumper(bool, _BoolAsInt)
    if read_only:
        raw.execute("SET default_transaction_read_only = on")
    return PgConn(raw)


def _first_line(exc: BaseException) -> str:
    """psycopg's message without its detail lines (which can quote a statement's values)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def is_error(exc: BaseException) -> bool:
    return isinstance(exc, psycopg.Error)


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, pgerrors.UndefinedTable):  # a command run before any relay created the schema
        return "no database tables yet: has the relay run with this store? (its first start creates them)"
    return _first_line(exc)


def group_fatal(exc: BaseException) -> bool:
    """An error that sinks the whole group (no caller acknowledged): the server, the connection or a conflict
    with another relay's transaction, never one job's own mistake."""
    return isinstance(exc, psycopg.OperationalError | pgerrors.InFailedSqlTransaction)


def retryable(exc: BaseException) -> bool:
    """Another relay's concurrent transaction got there first: the group can simply run again."""
    return isinstance(exc, pgerrors.SerializationFailure | pgerrors.DeadlockDetected)


# --- the schema -----------------------------------------------------------------------------------------------

_DDL_TYPES = (
    (re.compile(r"\bINTEGER PRIMARY KEY\b"), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\)\s*WITHOUT ROWID"), ")"),
)


def ddl(statement: str) -> str:
    """A statement of the shared schema in PostgreSQL's words: 64-bit integers (SQLite's are), double precision
    for times (PostgreSQL's REAL has 24 bits, seconds since 1970 need more), identity for SQLite's rowid keys."""
    for pattern, replacement in _DDL_TYPES:
        statement = pattern.sub(replacement, statement)
    return statement


def migrate(conn: PgConn, migrations: Sequence[Sequence[str]]) -> int:
    """Bring the schema up to date, under a lock other relays wait on; returns the version now in force."""
    conn.execute("BEGIN")
    try:
        conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        version = 0 if row is None else int(row[0])
        if version > len(migrations):
            raise StorageError(
                f"the database schema is version {version}, newer than this relay knows ({len(migrations)}); "
                "upgrade the relay instead of downgrading it"
            )
        for number in range(version, len(migrations)):
            for statement in migrations[number]:
                conn.raw.execute(ddl(statement))  # our schema: no parameters
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (len(migrations),))
        else:
            conn.execute("UPDATE schema_version SET version = ?", (len(migrations),))
        conn.execute("COMMIT")
    except BaseException:
        if not conn.broken:
            conn.raw.execute("ROLLBACK")
        raise
    return len(migrations)
