"""``stock-relay store migrate --to REF``: copy a relay's SQLite store into PostgreSQL, before moving it there.

The copy runs with the relay stopped: it holds the state directory's ``relay.lock`` (the one a relay takes,
relay/runtime.py) from start to end, so no relay writes rows it would miss, and none starts while it runs. It reads
the file through a read-only connection and writes through a ``PgStore`` (which creates or updates the schema), each
table in key order, ``--batch`` rows per transaction, every row ``INSERT ... ON CONFLICT DO NOTHING``: an interrupted
copy is finished by running it again, which adds only what is missing. Then each identity sequence is moved past the
copied ids (explicit ids do not move it, and the relay's next insert would collide) and every table's row count is
compared; the exit status is 0 only if they all match.

The target is a secret reference (``env:NAME``, ``file:PATH``, ``credential:NAME``), as the config's ``store:`` is:
its URL holds a password, and a command line shows in ``ps`` and in shell history. The URL is only ever shown by
``str(Dsn)``, without its password.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import yaml

from .. import config as config_module
from .. import secretref
from ..errors import ConfigError, RelayError, StorageError
from ..storage.dbapi import Conn
from ..storage.location import Dsn
from ..storage.store import MIGRATIONS, Reader
from .operator import Progress, check_state_dir, table

if TYPE_CHECKING:
    from ..storage.pg_store import PgStore

T = TypeVar("T")
COMMANDS = ("store",)
BATCH = 5000


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    store = commands.add_parser("store", help="move the relay's store: copy its SQLite file into PostgreSQL")
    actions = store.add_subparsers(dest="action", required=True, metavar="ACTION")
    migrate = actions.add_parser(
        "migrate",
        help="copy every table of the SQLite store into PostgreSQL (the relay stopped), then compare row counts",
        description="Copy the relay's SQLite store into the PostgreSQL database REF names. Stop the relay first. "
        "Safe to run again: an interrupted copy is completed, nothing is copied twice.",
    )
    migrate.add_argument("-c", "--config", help="YAML config (default: $STOCK_RELAY_CONFIG, else embedded)")
    migrate.add_argument(
        "--to",
        required=True,
        metavar="REF",
        help="where the postgresql:// URL is: env:NAME, file:PATH (relative to the config's directory) or "
        "credential:NAME; never the URL itself, whose password would show in ps and in shell history. "
        "Afterwards put the same reference in the config as store: REF",
    )
    migrate.add_argument(
        "--batch", type=int, default=BATCH, help=f"rows per transaction (default {BATCH}); each batch commits alone"
    )


def run(args: argparse.Namespace) -> int:
    if not 0 < args.batch <= 1_000_000:
        raise ConfigError("--batch", "give 1 to 1,000,000 rows")
    config_path = args.config or os.environ.get("STOCK_RELAY_CONFIG") or None
    cfg = config_module.load(config_path, secrets=False)  # the source needs no secret; the target is --to
    check_state_dir(cfg, config_path)
    source = _source(cfg, config_path)
    base_dir = Path(config_path).resolve().parent if config_path else Path.cwd()
    target = _target(args.to, base_dir)
    with _relay_stopped(cfg.state_dir), Reader(source, keep=1) as reader, reader.connection() as conn:
        assert isinstance(conn, sqlite3.Connection)
        return asyncio.run(_migrate(conn, target, args.batch, args.to))


# --- what is copied where -------------------------------------------------------------------------


def _source(cfg: config_module.Config, config_path: str | None) -> Path:
    """The SQLite file to copy; refused when the config already keeps its store in PostgreSQL, or there is none."""
    if config_path and _names_store(Path(config_path)):
        raise RelayError(
            "the config already has store: (the relay's store is in PostgreSQL); migrate copies the SQLite store of"
            " a config without it"
        )
    path = cfg.database_path
    if not path.is_file():
        raise StorageError(f"no SQLite store at {path}: has the relay run with this state_dir?")
    return path


def _names_store(path: Path) -> bool:
    """Whether the YAML sets ``store:`` (read as written: the config is loaded without resolving references)."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False  # config_module.load has read it already; it says what is wrong when it is
    return isinstance(doc, dict) and bool(doc.get("store"))


def _target(ref: str, base_dir: Path) -> Dsn:
    """The database REF names; errors say what is wrong with the reference, never its value."""
    if ref.partition(":")[0] not in secretref.SCHEMES:
        raise ConfigError("--to", secretref.NOT_A_REFERENCE)
    try:
        return Dsn(secretref.resolve(ref, os.environ, base_dir))
    except ValueError as exc:
        raise ConfigError("--to", str(exc)) from None


@contextlib.contextmanager
def _relay_stopped(state_dir: Path) -> Iterator[IO[str]]:
    """The state directory's relay.lock for the whole copy: refused while a relay runs, and no relay starts meanwhile."""
    try:
        handle = open(state_dir / "relay.lock", "a+")  # noqa: SIM115 - closed below, which releases the lock
    except OSError as exc:
        raise StorageError(
            f"cannot open {state_dir / 'relay.lock'} ({exc.strerror}); run as the relay's user"
        ) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RelayError(
                f"a stock-relay is running on {state_dir}: stop it first (rows it wrote during the copy would be"
                " missed), e.g. systemctl stop stock-relay"
            ) from None
        yield handle


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]  # the primary key, in its order: the copy's order, and what ON CONFLICT finds

    @property
    def sole_key(self) -> str | None:
        """A one-column key: PostgreSQL may number it itself (an identity column, from SQLite's INTEGER PRIMARY
        KEY); ``_reset_identity`` asks."""
        return self.key[0] if len(self.key) == 1 else None


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def tables(conn: sqlite3.Connection) -> list[Table]:
    """Every table of the schema in the file, SQLite's own (sqlite_*) left out."""
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
            " ORDER BY name"
        )
    ]
    found = []
    for name in names:
        info = conn.execute(f"PRAGMA table_info({quoted(name)})").fetchall()
        key = tuple(row[1] for row in sorted((r for r in info if r[5] > 0), key=lambda r: r[5]))
        if not key:
            raise StorageError(f"table {name} has no primary key: it cannot be copied without duplicates on a re-run")
        found.append(Table(name, tuple(row[1] for row in info), key))
    return found


def _check_sqlite_version(version: int) -> None:
    """The file at this relay's schema version: the copy maps columns by name, and a migration can move data."""
    known = len(MIGRATIONS)
    if version < known:
        raise StorageError(
            f"the SQLite store is at schema version {version}, this stock-relay's is {known}: start this version"
            " of the relay on it once (it updates the schema), stop it, then migrate"
        )
    if version > known:
        raise StorageError(
            f"the SQLite store is at schema version {version}, newer than this stock-relay knows ({known}):"
            " migrate with the version that wrote it"
        )


def _check_pg_version(version: int | None, sqlite_version: int) -> None:
    if version != sqlite_version:
        raise StorageError(f"the PostgreSQL store is at schema version {version}, the SQLite store at {sqlite_version}")


# --- the copy -------------------------------------------------------------------------------------


async def _migrate(source: sqlite3.Connection, target: Dsn, batch: int, ref: str) -> int:
    sqlite_version = int(source.execute("PRAGMA user_version").fetchone()[0])
    _check_sqlite_version(sqlite_version)  # before the target is touched
    schema = tables(source)
    store = _pg_store(target)
    try:
        await store.open(check=False)  # creates or updates the schema
        rows = await store.read("SELECT version FROM schema_version")
        _check_pg_version(int(rows[0][0]) if rows else None, sqlite_version)
        progress = Progress()
        copied: dict[str, int] = {}
        for t in schema:
            copied[t.name] = await _copy(source, store, t, batch, progress)
        progress.done()
        for t in schema:
            await _reset_identity(store, t)
        print("analyzing the tables (the planner's statistics) ...", file=sys.stderr)
        await asyncio.get_running_loop().run_in_executor(None, store.analyze, [t.name for t in schema])
        counts = [(t.name, _count(source, t.name), await _pg_count(store, t.name)) for t in schema]
    finally:
        await store.close()
    print(table(("table", "sqlite", "postgresql", "copied now"), [(n, s, p, copied[n]) for n, s, p in counts]))
    differ = [n for n, s, p in counts if s != p]
    if differ:
        print(
            f"stock-relay: the row counts differ in {', '.join(differ)} ({target}): PostgreSQL has rows the SQLite"
            " store has not, or lacks some; keep the relay on SQLite and check the database before switching",
            file=sys.stderr,
        )
        return 1
    print(
        f"\nall {len(counts)} tables copied to {target}; next: put\n  store: {ref}\nin the config and start the relay(s)"
    )
    return 0


def _pg_store(target: Dsn) -> PgStore:
    try:
        from ..storage.pg_store import PgStore
    except ImportError:
        raise RelayError("PostgreSQL needs psycopg: pip install 'stock-relay[postgresql]'") from None
    return PgStore(target)


def _count(conn: sqlite3.Connection, name: str) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {quoted(name)}").fetchone()[0])


async def _pg_count(store: PgStore, name: str) -> int:
    rows = await store.read(f"SELECT COUNT(*) FROM {quoted(name)}")
    return int(rows[0][0])


async def _copy(source: sqlite3.Connection, store: PgStore, t: Table, batch: int, progress: Progress) -> int:
    """The table's rows in key order, ``batch`` per transaction; returns how many were not there yet."""
    total, done, added = _count(source, t.name), 0, 0
    progress.show(_progress_line(t.name, 0, total), force=True)
    for rows in _batches(source, t, batch):
        added += await _write(store, t, _Insert(t, rows))
        done += len(rows)
        progress.show(_progress_line(t.name, done, total), force=done == total)
    return added


def _progress_line(name: str, done: int, total: int) -> str:
    return f"{name}: {done:,} / {total:,} rows ({100 * done / total if total else 100:.0f}%)"


def _batches(conn: sqlite3.Connection, t: Table, size: int) -> Iterator[list[tuple[Any, ...]]]:
    """The table's rows, ``size`` at a time, read by key ranges (each read starts where the last ended)."""
    columns, key = ", ".join(map(quoted, t.columns)), ", ".join(map(quoted, t.key))
    first = f"SELECT {columns} FROM {quoted(t.name)} ORDER BY {key} LIMIT ?"
    following = (
        f"SELECT {columns} FROM {quoted(t.name)} WHERE ({key}) > ({', '.join('?' * len(t.key))}) ORDER BY {key} LIMIT ?"
    )
    positions = [t.columns.index(k) for k in t.key]
    rows = conn.execute(first, (size,)).fetchall()
    while rows:
        yield [tuple(row) for row in rows]
        if len(rows) < size:
            return
        last = rows[-1]
        rows = conn.execute(following, (*(last[i] for i in positions), size)).fetchall()


class _Insert:
    """One batch into PostgreSQL; rows already there (an earlier, interrupted run's) are left as they are.

    The rows go in by COPY into a temporary table emptied at each commit, then one INSERT ... SELECT ... ON CONFLICT
    DO NOTHING: COPY alone cannot skip rows that exist, and a statement per row (executemany) made the whole copy
    about 4x slower than a bare COPY of the same rows.
    """

    def __init__(self, t: Table, rows: Sequence[tuple[Any, ...]]) -> None:
        self.table, self.rows = t, rows
        self.staging = quoted(f"migrate_{t.name}")
        columns = ", ".join(map(quoted, t.columns))
        self.copy = f"COPY {self.staging} ({columns}) FROM STDIN"
        self.insert = (
            f"INSERT INTO {quoted(t.name)} ({columns}) SELECT {columns} FROM {self.staging}"
            f" ORDER BY {', '.join(map(quoted, t.key))} ON CONFLICT DO NOTHING"
        )

    def __call__(self, conn: Conn) -> int:
        raw = conn.raw  # type: ignore[attr-defined]  # PgConn's psycopg connection: COPY has no sqlite3 twin
        raw.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {self.staging} (LIKE {quoted(self.table.name)}) ON COMMIT DELETE ROWS"
        )
        with raw.cursor() as cursor:
            with cursor.copy(self.copy) as copy:
                for row in self.rows:
                    copy.write_row(row)
            cursor.execute(self.insert)
            return int(cursor.rowcount)


async def _write(store: PgStore, t: Table, job: Callable[[Conn], T]) -> T:
    """``store.write``, with a statement's own error (a value PostgreSQL refuses) as a StorageError: its first line
    names the table and the problem; psycopg's detail lines, which can quote the row, are left out."""
    from ..storage import postgres

    try:
        return await store.write(job)
    except Exception as exc:
        if not postgres.is_error(exc):
            raise
        raise StorageError(f"cannot copy {t.name} into {store.dsn}: {postgres.describe_error(exc)}") from None


async def _reset_identity(store: PgStore, t: Table) -> None:
    """Move an identity column's sequence past the largest id: the copy wrote its ids, which does not advance it."""
    column = t.sole_key
    if column is None:
        return

    def job(conn: Conn) -> None:
        sequence = conn.execute("SELECT pg_get_serial_sequence(?, ?)", (quoted(t.name), column)).fetchone()[0]
        if sequence is not None:
            conn.execute(
                f"SELECT setval(?::regclass, COALESCE(MAX({quoted(column)}), 0) + 1, false) FROM {quoted(t.name)}",
                (sequence,),
            )

    await _write(store, t, job)
