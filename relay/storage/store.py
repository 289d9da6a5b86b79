"""The store: schema and migrations, one group-committing writer, separate readers. This module is the engine and
its SQLite side; relay/storage/pg_store.py runs the same engine, jobs and views on PostgreSQL (``open_store``).

Every write in the relay is a *job*: a plain function ``job(conn) -> result`` run on the single
writer connection. Concurrent callers queue their jobs; the writer takes everything queued, runs it
in one ``BEGIN IMMEDIATE`` transaction (each job inside its own savepoint, so one failing job does not
undo the others), commits once with ``synchronous=FULL`` and only then hands each caller its result.
That is group commit: one fsync serves many requests, so durability is never traded for speed.

Jobs of one ``MergeableJob`` class queued next to each other (the ingest requests of a busy moment)
run as one call, in one savepoint, that writes them all with one ``executemany`` per table instead
of a savepoint and some ten statements each. If that call fails, its jobs run again one by one, so
the failure still reaches only the caller whose job caused it.

The writer runs on one dedicated thread with the standard library driver so that a whole group is a
single thread hop; aiosqlite would cost a hop per statement.

Every read is a *view*: a plain function ``view(conn) -> data`` (relay/storage/views.py) run by a ``Reader`` on a
read-only connection (WAL lets it run beside the writer). The relay's Store keeps a few such connections
open for its reader threads; the CLI reads the file through the same ``Reader`` (``read_view``), and its
writes go through a ``Store`` of its own, so SQLite's locking and busy timeout serialise them with a
running relay's. Either way, a sqlite3 error becomes a StorageError in one place: ``_reading`` for
reads, ``_run_group`` (and opening) for writes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import sqlite3
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from ..errors import StorageError
from .dbapi import Conn
from .location import Dsn, StoreLocation

T = TypeVar("T")
Job = Callable[[Conn], Any]
MAX_GROUP = 256
READERS = 4  # the relay's reader threads, and the read-only connections it keeps open for them

MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE events (
        seq            INTEGER PRIMARY KEY,
        site           TEXT    NOT NULL,
        event_id       TEXT    NOT NULL,
        kind           TEXT    NOT NULL,
        product_id     INTEGER NOT NULL,
        variation_id   INTEGER,
        parent_id      INTEGER,
        sku            TEXT    NOT NULL,
        manage_stock   INTEGER NOT NULL,
        stock_quantity INTEGER,
        stock_status   TEXT    NOT NULL,
        backorders     TEXT    NOT NULL,
        version        INTEGER NOT NULL,
        occurred_at    TEXT    NOT NULL,
        cause_kind     TEXT    NOT NULL,
        cause_order_id INTEGER,
        received_at    REAL    NOT NULL,
        outcome        TEXT    NOT NULL,            -- accepted | stale
        UNIQUE (site, event_id)
    );
    CREATE INDEX events_product ON events (site, product_id, version);

    -- Highest version seen per product: the gate that keeps a stale state from overwriting a newer one.
    CREATE TABLE product_versions (
        site       TEXT    NOT NULL,
        product_id INTEGER NOT NULL,
        version    INTEGER NOT NULL,
        PRIMARY KEY (site, product_id)
    ) WITHOUT ROWID;

    -- One row per (site, channel, shop SKU): the coalescing point. want_seq is the newest event to
    -- publish; a claim copies it to claimed_seq, so a newer event arriving mid-flight stays pending.
    CREATE TABLE deliveries (
        site               TEXT    NOT NULL,
        channel            TEXT    NOT NULL,
        sku                TEXT    NOT NULL,
        want_seq           INTEGER NOT NULL,
        claimed_seq        INTEGER,
        delivered_seq      INTEGER,
        delivered_quantity INTEGER,
        state              TEXT    NOT NULL,        -- pending | delivered | dead
        attempts           INTEGER NOT NULL DEFAULT 0,
        first_failure_at   REAL,
        next_attempt_at    REAL    NOT NULL,
        claim_token        TEXT,
        lease_until        REAL,
        last_error         TEXT,
        updated_at         REAL    NOT NULL,
        PRIMARY KEY (site, channel, sku)
    ) WITHOUT ROWID;
    CREATE INDEX deliveries_due ON deliveries (site, channel, state, next_attempt_at);

    CREATE TABLE dead_letters (
        id          INTEGER PRIMARY KEY,
        site        TEXT    NOT NULL,
        channel     TEXT    NOT NULL,
        sku         TEXT    NOT NULL,
        event_seq   INTEGER NOT NULL,
        quantity    INTEGER,
        reason      TEXT    NOT NULL,
        created_at  REAL    NOT NULL,
        resolved_at REAL
    );
    CREATE INDEX dead_letters_open ON dead_letters (site, channel, resolved_at);

    -- Accepted webhook-ids and the answer given, so a repeat gets the same answer without redoing work.
    CREATE TABLE requests (
        site        TEXT NOT NULL,
        msg_id      TEXT NOT NULL,
        response    TEXT NOT NULL,
        received_at REAL NOT NULL,
        PRIMARY KEY (site, msg_id)
    ) WITHOUT ROWID;
    CREATE INDEX requests_age ON requests (received_at);

    -- The operator's record: every event received and how it was judged, every attempt with its
    -- status, latency and a response excerpt, every dead letter with its reason.
    CREATE TABLE audit (
        id          INTEGER PRIMARY KEY,
        at          REAL    NOT NULL,
        site        TEXT    NOT NULL,
        channel     TEXT,
        sku         TEXT,
        event_id    TEXT,
        version     INTEGER,
        action      TEXT    NOT NULL,
        quantity    INTEGER,
        http_status INTEGER,
        latency_ms  REAL,
        detail      TEXT
    );
    CREATE INDEX audit_sku ON audit (site, sku, id);
    CREATE INDEX audit_at ON audit (at);
    """,
    # 2: operator surface. pending_since: when the oldest change not yet on the channel arrived (the
    # "oldest pending age" of status and metrics); heartbeat: the row /readyz writes to prove the
    # database takes writes.
    """
    ALTER TABLE deliveries ADD COLUMN pending_since REAL;
    UPDATE deliveries SET pending_since = updated_at WHERE state = 'pending';
    CREATE TABLE heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at REAL NOT NULL);
    """,
    # 3: reconciliation. drift: a channel found showing (or last sent) something other than the shop's
    # quantity, kept for the report until the delivery is next confirmed; reconcile_runs: every pass,
    # so an incremental one knows where the last good one started.
    """
    CREATE TABLE drift (
        site     TEXT NOT NULL,
        channel  TEXT NOT NULL,
        sku      TEXT NOT NULL,
        expected INTEGER,
        shown    INTEGER,
        reason   TEXT NOT NULL,            -- missed_event | behind_hooks | never_sent | last_push_differs | channel_shows | not_listed
        found_at REAL NOT NULL,
        PRIMARY KEY (site, channel, sku)
    ) WITHOUT ROWID;
    CREATE TABLE reconcile_runs (
        id          INTEGER PRIMARY KEY,
        site        TEXT    NOT NULL,
        kind        TEXT    NOT NULL,      -- full | incremental
        started_at  REAL    NOT NULL,
        finished_at REAL,
        shop_time   TEXT,
        items       INTEGER NOT NULL DEFAULT 0,
        corrections INTEGER NOT NULL DEFAULT 0,
        error       TEXT
    );
    CREATE INDEX reconcile_runs_site ON reconcile_runs (site, kind, id);
    """,
    # 4: open dead letters by SKU and by event. Every confirmed delivery resolves its SKU's open dead
    # letter; with only (site, channel, resolved_at) to go by, that read every open dead letter of the
    # channel, so a channel with 20,000 of them made each delivery ~100x dearer for the one writer all
    # channels and ingest share. Partial indexes: they hold open rows only, so they stay small.
    """
    CREATE INDEX dead_letters_open_sku ON dead_letters (site, sku, channel) WHERE resolved_at IS NULL;
    CREATE INDEX dead_letters_open_event ON dead_letters (event_seq) WHERE resolved_at IS NULL;
    """,
    # 5: eBay's revisions per listing per calendar day (250 allowed), counted by the connector
    # (relay/connectors/revisions.py) so a restarted relay still holds back a SKU that used them all.
    # One row per SKU: a new day's count replaces the old one.
    """
    CREATE TABLE revisions (
        site      TEXT    NOT NULL,
        channel   TEXT    NOT NULL,
        sku       TEXT    NOT NULL,        -- the channel's SKU
        day       TEXT    NOT NULL,        -- the marketplace's calendar day (eBay: Pacific time), ISO date
        revisions INTEGER NOT NULL,
        PRIMARY KEY (site, channel, sku)
    ) WITHOUT ROWID;
    """,
    # 6: what each remembered webhook-id carried (protocol.content_digest), so a reused id with other content is
    # refused instead of answered with the first request's result while its own events are dropped.
    # NULL (rows from before, WooCommerce's webhooks): never compared.
    """
    ALTER TABLE requests ADD COLUMN digest TEXT;
    """,
    # 7: two-way sync (issue 15): one row per change another system reported for the shop's stock (a sale, its
    # cancellation, a refund), keyed by what makes it that change (relay/intake/sales.py builds the key), so INSERT
    # OR IGNORE counts it once however often it is reported. The shop worker (relay/delivery/shop_sales.py) claims
    # due rows under a lease and a token as deliveries are claimed, sends them as stock.adjust and keeps the shop's
    # answer: applied (with the shop's quantity) or refused (with its code and message).
    """
    CREATE TABLE sales (
        site            TEXT    NOT NULL,
        key             TEXT    NOT NULL,      -- <channel>:<order>:<line>[:cancel | :refund:<refund id>]
        channel         TEXT    NOT NULL,
        order_id        TEXT    NOT NULL,
        line_id         TEXT    NOT NULL,
        sku             TEXT    NOT NULL,
        delta           INTEGER NOT NULL,      -- what the shop's stock moves by: a sale is negative
        reason          TEXT    NOT NULL,      -- sale | cancel | refund
        source          TEXT    NOT NULL,      -- inbound (a signed sales.report)
        received_at     REAL    NOT NULL,
        state           TEXT    NOT NULL,      -- pending | applied | refused
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL    NOT NULL,
        claim_token     TEXT,
        lease_until     REAL,
        quantity        INTEGER,               -- the shop's stock after it applied the change
        last_error      TEXT,
        updated_at      REAL    NOT NULL,
        PRIMARY KEY (site, key)
    ) WITHOUT ROWID;
    CREATE INDEX sales_due ON sales (site, state, next_attempt_at);
    """,
    # 8: sales intake by polling (relay/intake/sweep.py): per channel, the time up to which its orders have been
    # read. It is written in the transaction that records the sales it covers, so it never moves past a line
    # that is not committed.
    """
    CREATE TABLE sales_cursors (
        site       TEXT NOT NULL,
        channel    TEXT NOT NULL,
        cursor     TEXT NOT NULL,             -- ISO 8601 UTC: orders modified before it have been read
        updated_at REAL NOT NULL,             -- the poll that wrote it
        PRIMARY KEY (site, channel)
    ) WITHOUT ROWID;
    """,
    # 9: the reads two-way sync adds, by index rather than by scanning tables that only grow: read-back asks, for
    # every SKU a channel shows lower, whether that channel's sales explain it (sales is never pruned), and the
    # status answer counts a week of oversold incidents (otherwise every audit row of the week is read).
    """
    CREATE INDEX sales_sku ON sales (site, channel, sku, state, updated_at);
    CREATE INDEX audit_oversold ON audit (site, at) WHERE action = 'oversold';
    """,
    # 10: an operator's pause of a channel (relay/storage/pauses.py): one row while it is paused, with why and who
    # (the WordPress user's login, or the shell user of the CLI). The dispatcher's claim looks it up by its key in
    # the claim's own transaction, so a pause committed is a pause obeyed, by this relay and after a restart alike.
    # Nothing else changes while a channel is paused: its deliveries keep queuing and coalescing as usual.
    """
    CREATE TABLE channel_pauses (
        site      TEXT NOT NULL,
        channel   TEXT NOT NULL,
        reason    TEXT NOT NULL,
        actor     TEXT NOT NULL,
        paused_at REAL NOT NULL,
        PRIMARY KEY (site, channel)
    ) WITHOUT ROWID;
    """,
    # 11: the product's event version the shop answered with an applied sale (the plugin's adjust route reads it
    # under the lock its drainer's version bump waits for): a stock event with a larger version read the stock
    # after the sale, so it includes it. Pushes to the selling channel use it to tell, exactly, whether the event
    # they send already holds the sale (relay/delivery/deliveries.py, UNAPPLIED_SALES); NULL from an older plugin.
    """
    ALTER TABLE sales ADD COLUMN shop_version INTEGER;
    """,
    # 12: the alert webhook's place in the audit log (relay/delivery/alerts.py): the id of the last oversold
    # incident the site's alert_url accepted. Moved only after a 2xx, so an alert is sent at least once.
    """
    CREATE TABLE alert_cursors (
        site       TEXT    PRIMARY KEY,
        last_id    INTEGER NOT NULL,
        updated_at REAL    NOT NULL
    ) WITHOUT ROWID;
    """,
    # 13: one random-key write fewer per event (issue 20 §3). events_product had one reader, the WooCommerce
    # product.deleted route's lookup of the product's last SKU, and that used it only for site = ?, reading every
    # event of the site as the UNIQUE (site, event_id) index does now; the version gate reads product_versions. With
    # random SKUs on a large catalogue each event wrote it at a random page, written again at every commit.
    """
    DROP INDEX IF EXISTS events_product;
    """,
    # 14: several relays on one store (issue 19, relay/delivery/leases.py): which relay works each channel, the shop
    # worker (@shop, whose holder also reconciles the site and sends its alerts); token is the fencing token, raised at
    # each takeover.
    """
    CREATE TABLE worker_leases (
        site        TEXT    NOT NULL,
        worker      TEXT    NOT NULL,      -- a channel's name, or @shop
        holder      TEXT    NOT NULL,      -- the relay: instance@host:pid:random (leases.relay_id)
        token       INTEGER NOT NULL,
        lease_until REAL    NOT NULL,
        PRIMARY KEY (site, worker)
    ) WITHOUT ROWID;
    """,
]


class MergeableJob:
    """A write job whose neighbours of the same class in a group can be run together by ``run_many``.

    ``run_many(conn, jobs)`` must return one result per job, exactly as running them one after the
    other would; calling a single job is ``run_many`` of one.
    """

    def __call__(self, conn: Conn) -> Any:
        return self.run_many(conn, [self])[0]

    @classmethod
    def run_many(cls, conn: Conn, jobs: Sequence[Any]) -> list[Any]:
        raise NotImplementedError


def connect_writer(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def file_stamp(path: Path) -> str:
    """What identifies the database file as it is: inode, size, modification time (ns)."""
    st = path.stat()
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def clean_marker(path: Path) -> Path:
    """Beside the database: its stamp at the relay's last clean stop (see ``Store.open``)."""
    return path.with_name(path.name + ".clean")


def check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse to start on a damaged database: never silently recreate it."""
    try:
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path} is not a usable SQLite database ({exc}); restore it from a backup") from None
    if result != "ok":
        raise StorageError(f"{path} failed its integrity check ({result}); restore it from a backup")


def migration_statements() -> list[list[str]]:
    """The schema's migrations, each as its statements (the PostgreSQL store runs the same ones)."""
    return [_statements(script) for script in MIGRATIONS]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date; returns the version now in force."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise StorageError(
            f"the database schema is version {version}, newer than this relay knows ({len(MIGRATIONS)}); "
            "upgrade the relay instead of downgrading it"
        )
    for number in range(version, len(MIGRATIONS)):
        conn.execute("BEGIN IMMEDIATE")
        for statement in _statements(MIGRATIONS[number]):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number + 1}")
        conn.execute("COMMIT")
    return len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit behind our back)."""
    out, buf = [], []
    for line in script.splitlines():
        code = line.split("--", 1)[0]
        buf.append(code)
        if code.rstrip().endswith(";"):
            statement = "\n".join(buf).strip()
            if statement.strip(";").strip():
                out.append(statement)
            buf = []
    return out


def connect_reader(path: Path, any_thread: bool = False) -> sqlite3.Connection:
    """A read-only connection: it cannot change the database, whoever runs it (the relay or the CLI).

    ``any_thread``: the caller hands it between threads itself, one at a time (a streamed export).
    """
    if not path.exists():
        raise StorageError(f"no database at {path}: has the relay run with this state_dir?")
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0, check_same_thread=not any_thread
        )
        conn.execute("PRAGMA query_only=ON")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open {path}: {exc}") from None
    return conn


@contextlib.contextmanager
def _reading(location: StoreLocation) -> Iterator[None]:
    """The one place where a read's database errors become StorageError (the relay's, the API's and the CLI's)."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read {location}: {exc}") from None
    except Exception as exc:
        if not isinstance(location, Dsn):
            raise
        from . import postgres

        if not postgres.is_error(exc):
            raise
        raise StorageError(f"cannot read {location}: {postgres.describe_error(exc)}") from None


def _connect_reader(location: StoreLocation) -> Conn:
    if isinstance(location, Dsn):
        from . import postgres

        return postgres.connect(location, read_only=True)
    return connect_reader(location, any_thread=True)


class Reader:
    """Read-only connections to one database file, opened when first needed and kept for the next read.

    ``run(view)`` lends a connection to a view function (relay/storage/views.py) on the calling thread, whichever it
    is, and takes it back after; at most ``keep`` idle ones stay open. A connection whose view failed or whose
    stream was left unfinished is closed instead: it may still hold a statement, and with it an old snapshot.
    So a view returns data, never a cursor or an unfinished iterator (``connection`` is for streaming).
    """

    def __init__(self, location: StoreLocation, keep: int = READERS) -> None:
        self.location, self.keep = location, keep
        self._idle: list[Conn] = []
        self._lock = threading.Lock()
        self.closed = False

    def run(self, view: Callable[[Conn], T]) -> T:
        """``view`` on a connection of this reader's. A kept connection the server has dropped since (PostgreSQL
        restarted, an idle timeout) is only found out by using it: the view then runs once more on a new one, as a
        view only reads. The error of a connection that still works, or of a new one, is the caller's."""
        dropped: list[bool] = []
        try:
            with self.connection(dropped) as conn:
                return view(conn)
        except StorageError:
            if not dropped:
                raise
        self._close_idle()  # its idle siblings were most likely dropped with it (a restart): new ones for all
        with self.connection() as conn:
            return view(conn)

    @contextlib.contextmanager
    def connection(self, dropped: list[bool] | None = None) -> Iterator[Conn]:
        """A connection of this reader's for the block, from any thread (one at a time); errors mapped.

        ``dropped``: gets True appended when the block failed on a connection kept from an earlier read that turns out
        to be gone (PostgreSQL's; a SQLite file's connection is never dropped)."""
        with self._lock:
            if self.closed:
                raise StorageError("the database is closed")
            conn = self._idle.pop() if self._idle else None
        kept = conn is not None
        if conn is None:
            with _reading(self.location):
                conn = _connect_reader(self.location)
        try:
            with _reading(self.location):
                yield conn
        except BaseException:
            if kept and dropped is not None and getattr(conn, "broken", False):
                dropped.append(True)
            _close(conn)
            raise
        with self._lock:
            if not self.closed and len(self._idle) < self.keep:
                self._idle.append(conn)
                return
        _close(conn)

    def close(self) -> None:
        with self._lock:
            self.closed = True
        self._close_idle()

    def _close_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close(conn)

    def __enter__(self) -> Reader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def _close(conn: Conn) -> None:
    with contextlib.suppress(Exception):  # a connection that is already gone needs no closing
        conn.close()  # type: ignore[attr-defined]


def read_view(location: StoreLocation, view: Callable[[Conn], T]) -> T:
    """Run one view on the store at ``location`` (a command's read, the relay running or not)."""
    with Reader(location, keep=0) as reader:
        return reader.run(view)


def existing(location: StoreLocation) -> StoreLocation:
    """The store a command works on; a missing SQLite file is an error (a PostgreSQL store is asked when used)."""
    if isinstance(location, Path) and not location.exists():
        raise StorageError(f"no database at {location}: has the relay run with this state_dir?")
    return location


def open_store(location: StoreLocation) -> Store:
    """The store at ``location``: the SQLite file, or the PostgreSQL database a ``store:`` DSN names."""
    if isinstance(location, Dsn):
        from .pg_store import PgStore

        return PgStore(location)
    return Store(location)


class Store:
    """The database: ``write(job)`` for every change (group-committed), ``query(view)`` for every read.

    This class is the SQLite store; ``pg_store.PgStore`` is the PostgreSQL one, the same engine with its own
    ``_prepare`` (connect and migrate), transaction start and error rules. ``open_store`` picks one.
    """

    BEGIN = "BEGIN IMMEDIATE"  # take the write lock at once: a group never waits for it halfway

    def __init__(self, path: Path) -> None:
        self.path = path
        self._init_engine(path)

    def _init_engine(self, location: StoreLocation) -> None:
        self.location = location
        # Wake-ups committed by the relays sharing the store (dbapi.notify), on the loop; only PostgreSQL has them.
        self.on_notify: Callable[[str], None] | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._conn: Any = None
        self._last_full_checkpoint = 0.0  # monotonic time of the last WAL truncation after a full disk
        self._queue: asyncio.Queue[tuple[Job, asyncio.Future[Any]]] = asyncio.Queue()
        self._writer_task: asyncio.Task[None] | None = None
        self._reader = Reader(location)
        self._readers = concurrent.futures.ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="store-reader")
        self.groups_committed = 0
        self.integrity_checked = False  # whether the last open read the whole file (see ``open``)
        self._stamp_on_close = False  # the relay's own store: a clean close leaves the stamp

    def _left_clean(self) -> bool:
        """Whether the file is as the last clean close left it; the stamp is used up either way."""
        marker = clean_marker(self.path)
        try:
            stamp = marker.read_text()
        except OSError:
            return False
        marker.unlink(missing_ok=True)
        wal = self.path.with_name(self.path.name + "-wal")
        return self.path.exists() and not wal.exists() and stamp == file_stamp(self.path)

    async def open(self, check: bool = True) -> None:
        """Open the writer and bring the schema up to date.

        ``check``: run the integrity check first (the relay, at start-up). An operator's command beside a running
        relay passes False rather than read the whole file again.

        The check reads the whole file (7 s for 1.5 GB on the 2-core VM), so it is skipped when the file is exactly
        as the relay's last clean stop left it: same inode, size and modification time as the stamp ``close``
        wrote beside it, and no WAL. The stamp is removed here, before anything is written, so after a crash, a
        copy, a restore or any write by another program, the next start checks the file again.
        """
        self.integrity_checked = False
        self._conn = await asyncio.get_running_loop().run_in_executor(self._executor, self._prepare, check)
        self._writer_task = asyncio.create_task(self._writer_loop(), name="store-writer")

    def _prepare(self, check: bool) -> Any:
        """On the writer thread: the writer connection, the schema brought up to date."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if check:
            check = not self._left_clean()
            self._stamp_on_close = True
        return self._open_writer(check)

    def _open_writer(self, check: bool = True) -> sqlite3.Connection:
        if check and self.path.exists() and self.path.stat().st_size > 0:
            # check before connect_writer: switching a damaged file to WAL would already write its header
            with contextlib.closing(sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True)) as probe:
                check_integrity(probe, self.path)
            self.integrity_checked = True
        try:
            conn = connect_writer(self.path)
        except sqlite3.OperationalError as exc:  # read-only, no space, no permission: the file may be fine
            raise StorageError(
                f"cannot open {self.path} for writing ({exc}); check that its disk has space and is writable"
            ) from None
        except sqlite3.DatabaseError as exc:
            raise StorageError(
                f"{self.path} is not a usable SQLite database ({exc}); restore it from a backup"
            ) from None
        try:
            migrate(conn)
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"cannot prepare {self.path}: {exc}") from None
        return conn

    async def close(self) -> None:
        if self._writer_task is not None:
            self._writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer_task
            self._writer_task = None
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(StorageError("the relay is shutting down"))
        self._readers.shutdown(wait=True)
        self._reader.close()
        if self._conn is not None:
            conn = self._conn
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
            self._conn = None
            if self._stamp_on_close:
                self._write_stamp()
        self._executor.shutdown(wait=True)

    def _write_stamp(self) -> None:
        """After the last connection closed (SQLite then checkpoints the WAL and removes it): the file's stamp, so
        the next start can skip the integrity check. Nothing is stamped while a WAL remains (another process has
        the file open); a stamp that cannot be written only costs the next start its check."""
        if self.path.with_name(self.path.name + "-wal").exists():
            return
        with contextlib.suppress(OSError):
            marker = clean_marker(self.path)
            partial = marker.with_name(marker.name + ".tmp")
            partial.write_text(file_stamp(self.path))
            partial.replace(marker)

    async def write(self, job: Callable[[Conn], T]) -> T:
        """Run ``job`` in the next group transaction; returns its result once committed."""
        if self._writer_task is None:
            raise StorageError("the database is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((job, future))
        return await future

    async def query(self, view: Callable[[Conn], T]) -> T:
        """Run a view (relay/storage/views.py) on one of the store's read-only connections, on a reader thread.

        The views are plain sqlite3 functions so the CLI can run the very same ones on the file (``read_view``).
        """
        if self._reader.closed:
            raise StorageError("the database is closed")
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._reader.run, view)

    async def stream(self, view: Callable[[Conn], Iterator[T]], size: int = 1000) -> AsyncGenerator[list[T], None]:
        """The rows a streaming view yields (``views.iter_state``), ``size`` at a time, walked on a reader thread.

        The event loop never waits behind the cursor, and memory holds one chunk, however big the table. Close the
        iterator when leaving early (``contextlib.aclosing``), so its connection is given up at once.
        """
        loop = asyncio.get_running_loop()
        with self._reader.connection() as conn:
            rows = await loop.run_in_executor(self._readers, view, conn)
            while chunk := await loop.run_in_executor(self._readers, lambda: list(itertools.islice(rows, size))):
                yield chunk

    async def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """The rows of one SELECT, by index or by name: for tests and checks by hand (the relay reads by views)."""

        def rows(conn: Conn) -> list[Any]:
            if isinstance(conn, sqlite3.Connection):
                cursor = conn.cursor()
                cursor.row_factory = sqlite3.Row
                return cursor.execute(sql, params).fetchall()
            return conn.execute(sql, params).fetchall()

        return await self.query(rows)

    async def checkpoint(self) -> None:
        """Copy the WAL back into the database and truncate it, outside any transaction, between groups."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._checkpoint)

    def _give_back_wal_space(self) -> None:
        """After a full disk: a WAL that is never checkpointed keeps every byte it grew to, so once space returns
        the next writes would fill the disk again and the relay would never recover. Truncating it (at most once a
        second while the disk stays full) is what lets the relay come back by itself."""
        now = time.monotonic()
        if now - self._last_full_checkpoint >= 1.0:
            self._last_full_checkpoint = now
            self._checkpoint()

    def _checkpoint(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.OperationalError):  # busy: a reader holds it; next time
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def _writer_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self._queue.get()]
            while len(jobs) < MAX_GROUP and not self._queue.empty():
                jobs.append(self._queue.get_nowait())
            try:
                outcomes = await loop.run_in_executor(self._executor, self._run_group, [job for job, _ in jobs])
            except StorageError as exc:
                outcomes = [(False, exc)] * len(jobs)
            except Exception as exc:  # noqa: BLE001 - the writer must outlive any surprise, or every write hangs
                error = StorageError(f"the database writer failed: {type(exc).__name__}")
                outcomes = [(False, error)] * len(jobs)
            for (_, future), (ok, value) in zip(jobs, outcomes, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def _run_group(self, jobs: list[Job]) -> list[tuple[bool, Any]]:
        conn = self._conn
        assert conn is not None
        try:
            outcomes = self._run_transaction(conn, jobs)
        except Exception as exc:
            if not self._database_error(exc):
                raise
            if conn.in_transaction:
                with contextlib.suppress(Exception):
                    conn.execute("ROLLBACK")
            raise self._group_failed(exc) from None
        self.groups_committed += 1
        return outcomes

    def _run_transaction(self, conn: Any, jobs: list[Job]) -> list[tuple[bool, Any]]:
        """The group in one transaction: each job, or run of mergeable jobs, in its savepoint; then one COMMIT."""
        outcomes: list[tuple[bool, Any]] = []
        conn.execute(self.BEGIN)
        start = 0
        while start < len(jobs):
            end = start + 1
            if isinstance(jobs[start], MergeableJob):
                while end < len(jobs) and type(jobs[end]) is type(jobs[start]):
                    end += 1
            outcomes.extend(self._run_jobs(conn, jobs[start:end]))
            start = end
        conn.execute("COMMIT")
        return outcomes

    def _database_error(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.Error)

    def _group_fatal(self, exc: BaseException) -> bool:
        """Disk full, read-only, I/O: the whole group fails, nobody is acknowledged."""
        return isinstance(exc, sqlite3.OperationalError)

    def _group_failed(self, exc: BaseException) -> StorageError:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            self._give_back_wal_space()
        return StorageError(f"the database could not commit: {exc}")

    def _run_jobs(self, conn: Any, jobs: list[Job]) -> list[tuple[bool, Any]]:
        """One job, or a run of mergeable ones, inside a savepoint; a run that fails is retried job by job."""
        conn.execute("SAVEPOINT job")
        try:
            results = jobs[0].run_many(conn, jobs) if len(jobs) > 1 else [jobs[0](conn)]  # type: ignore[attr-defined]
            conn.execute("RELEASE job")
            return [(True, result) for result in results]
        except Exception as exc:  # noqa: BLE001 - a job's own failure is handed back to its caller
            if self._group_fatal(exc):
                raise
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            if len(jobs) == 1:
                return [(False, exc)]
            return [outcome for job in jobs for outcome in self._run_jobs(conn, [job])]
