"""Ingest against its durable baselines (issue 19 item 5): the relay, a minimal durable server and a naive one.

    .venv/bin/python bench/durable_baseline.py [--sizes 1,10,100] [--reps 3] [--seconds 3] [--warmup 1]
                                               [--connections 32] [--skus 5000] [--no-pages]

Three servers, each in its own process on a fresh state directory, driven by the same load generator (this
process: requests built and signed before each phase, sent over bench/ingest.py's raw keep-alive client, every
connection sending its next request as soon as its answer arrives), at 1, 10 and 100 events per request:

1. **relay**: ``stock-relay serve`` (as ``python -m relay serve``) configured as bench/ingest.py configures it: one
   site without an ingest rate limit, one ``sandbox`` channel (so each event also makes a delivery due and the
   dispatcher claims and settles alongside).
2. **minimal**: aiohttp; verifies the same Standard Webhooks signature, parses the JSON batch and hands its rows to
   one writer thread that takes everything queued, inserts one row per event in one transaction, commits once
   (WAL, synchronous=FULL) and then answers all of them: what the storage allows.
3. **naive**: aiohttp + aiosqlite; verifies, parses, INSERTs the rows and COMMITs per request (WAL,
   synchronous=FULL), one request's transaction after the other on its one connection.

Both baselines are written here, apart from the relay's code, and store per event the columns of the relay's
``events`` row in a rowid table with no other index. Every pairing of (size, server) runs ``--reps`` times,
interleaved (each repetition walks the sizes and, within a size, the servers in a rotated order), so a noisy
machine's drift hits all alike. After every phase the server is SIGKILLed and its file read: the events stored must
be exactly the events acknowledged with a 202, id for id (the baselines are checked too, so they are honest).

Then, in this process (``--no-pages`` skips it), what each writes per event: groups of 32 requests recorded by the
relay's own ingest write job (``BatchWrite.run_many``, as the writer merges them) and by the minimal insert, each
group one commit, the WAL's frames counted per B-tree (page numbers read from the WAL's frame headers, named by
``dbstat``).

Targets (issue 19): relay >= 0.5x the minimal server and >= 1.5x the naive server, at every size. The last line of
stdout is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import sqlite3
import statistics
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import ROOT, ServerProcess, cpu_seconds, database_path, start_relay
from ingest import Connection, signed_batch

from relay import signing
from relay.cli.client import new_event_id, stock_event
from relay.intake import ingest, protocol
from relay.storage import store

SERVERS = ("relay", "minimal", "naive")
BEFORE = "before"  # --relay-before: the relay of another checkout, in the same rotation
GROUP = 32  # requests per commit in the page count: the 32 connections' worth

# --- the baselines: stdlib + aiohttp (+ aiosqlite), nothing of the relay's ----------------------------------------

BASELINE_COMMON = r"""
import asyncio, base64, hashlib, hmac, json, os, sqlite3, sys, time
from aiohttp import web

DB = sys.argv[1]
KEY = base64.b64decode(os.environ.pop("BENCH_SECRET").removeprefix("whsec_"))
COLUMNS = ("site, event_id, kind, product_id, variation_id, parent_id, sku, manage_stock, stock_quantity,"
           " stock_status, backorders, version, occurred_at, cause_kind, cause_order_id, received_at")
SCHEMA = ("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, site TEXT NOT NULL, event_id TEXT NOT NULL,"
          " kind TEXT NOT NULL, product_id INTEGER NOT NULL, variation_id INTEGER, parent_id INTEGER,"
          " sku TEXT NOT NULL, manage_stock INTEGER NOT NULL, stock_quantity INTEGER, stock_status TEXT NOT NULL,"
          " backorders TEXT NOT NULL, version INTEGER NOT NULL, occurred_at TEXT NOT NULL,"
          " cause_kind TEXT NOT NULL, cause_order_id INTEGER, received_at REAL NOT NULL)")
INSERT = f"INSERT INTO events ({COLUMNS}) VALUES ({','.join('?' * 16)})"


def verified(headers, body):
    # Standard Webhooks v1: HMAC-SHA256 of "id.timestamp.body", timestamp within 5 minutes, any listed signature.
    msg_id, stamp, listed = (headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (msg_id and stamp and listed and stamp.isdigit()) or abs(time.time() - int(stamp)) > 300:
        return False
    mac = hmac.new(KEY, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    expected = base64.b64encode(mac)
    return any(hmac.compare_digest(part[3:].encode(), expected) for part in listed.split(" ") if part[:3] == "v1,")


def rows(body, site):
    doc = json.loads(body)
    if not isinstance(doc, dict) or doc.get("type") != "stock.batch" or doc.get("site") != site:
        raise ValueError("not a stock.batch for this site")
    now = time.time()
    return [
        (site, e["id"], e["kind"], e["product_id"], e.get("variation_id"), e.get("parent_id"), e["sku"],
         int(e["manage_stock"]), e.get("stock_quantity"), e["stock_status"], e["backorders"], e["version"],
         e["occurred_at"], e["cause"]["kind"], e["cause"].get("order_id"), now)
        for e in doc["events"]
    ]


def connect():
    conn = sqlite3.connect(DB, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(SCHEMA)
    return conn


async def handle(request):
    body = await request.read()
    if not verified(request.headers, body):
        return web.json_response({"error": "bad signature"}, status=401)
    try:
        batch = rows(body, request.match_info["site"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return web.json_response({"error": "bad batch"}, status=400)
    await commit(batch)
    return web.json_response({"accepted": len(batch), "duplicates": 0, "stale": 0, "rejected": []}, status=202)


async def serve(name):
    app = web.Application(client_max_size=1024 * 1024 + 1)
    app.router.add_post("/v1/sites/{site}/events", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(f"{name} listening on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()
"""

# Group commit: the writer task takes everything queued, one thread hop runs one transaction with one commit,
# then every caller in the group gets its answer. The storage part before it defines write_group(batches) and
# rollback(), both run on the writer thread.
GROUP_COMMIT = r"""
import concurrent.futures

queue = None
writer = concurrent.futures.ThreadPoolExecutor(max_workers=1)


async def writer_loop():
    loop = asyncio.get_running_loop()
    while True:
        group = [await queue.get()]
        while not queue.empty():
            group.append(queue.get_nowait())
        try:
            await loop.run_in_executor(writer, write_group, [batch for batch, _ in group])
            error = None
        except Exception as exc:  # the storage's error: the whole group fails, nobody is acknowledged
            await loop.run_in_executor(writer, rollback)
            error = exc
        for _, future in group:
            future.set_exception(error) if error else future.set_result(None)


async def commit(batch):
    future = asyncio.get_running_loop().create_future()
    queue.put_nowait((batch, future))
    await future


async def main():
    global queue
    queue = asyncio.Queue()
    task = asyncio.create_task(writer_loop())
    await serve("minimal durable server")
    await task

asyncio.run(main())
"""

MINIMAL = (
    BASELINE_COMMON
    + r"""
CONN = connect()


def write_group(batches):
    CONN.execute("BEGIN IMMEDIATE")
    for batch in batches:
        CONN.executemany(INSERT, batch)
    CONN.execute("COMMIT")


def rollback():
    if CONN.in_transaction:
        CONN.execute("ROLLBACK")
"""
    + GROUP_COMMIT
)

# A transaction per request: one connection holds one transaction at a time, so requests take turns on it.
NAIVE = (
    BASELINE_COMMON
    + r"""
import aiosqlite

db = None
turn = None


async def commit(batch):
    async with turn:
        await db.executemany(INSERT, batch)
        await db.commit()


async def main():
    global db, turn
    connect().close()  # the schema and WAL mode, as the other servers set them up
    db = await aiosqlite.connect(DB)
    await db.execute("PRAGMA synchronous=FULL")
    turn = asyncio.Lock()
    await serve("naive server")

asyncio.run(main())
"""
)


# --- load: pre-signed batches of N events ---------------------------------------------------------------------------


class BatchMaker:
    """Signed `stock.batch` requests of ``size`` events; each event a new product (never stale) over ``skus`` SKUs."""

    def __init__(self, server: ServerProcess, secret: str, size: int, skus: int) -> None:
        self.server, self.secret, self.size, self.skus = server, secret, size, skus
        self.counter = 0

    def make(self) -> tuple[list[str], bytes]:
        events = []
        for _ in range(self.size):
            self.counter += 1
            n = self.counter
            events.append(stock_event(n, f"SKU-{n % self.skus}", n % 100, 1, event_id=new_event_id()))
        request = signed_batch(self.server.host, self.server.port, self.secret, events)
        return [event["id"] for event in events], request

    def pool(self, count: int) -> list[tuple[list[str], bytes]]:
        return [self.make() for _ in range(count)]


@dataclass
class Phase:
    seconds: float
    acked: list[str] = field(default_factory=list)  # event ids of every 202 whose answer accepted all of them
    errors: int = 0
    signed_inline: int = 0  # requests built during the phase because the pool ran out
    server_cpu: float = 0.0  # of the servers and the processes serving them (Started.cpu)
    extra_cpu: float = 0.0  # of the latter alone (Started.extra_cpu)

    @property
    def events_per_second(self) -> float:
        return len(self.acked) / self.seconds


async def drive(
    started: Started, pool: list[tuple[list[str], bytes]], maker: BatchMaker, seconds: float, connections: int
) -> Phase:
    """Saturated: every connection sends its next request as soon as its answer is in, for ``seconds``. With several
    servers (relays sharing one store) the connections are spread over them round-robin, as a balancer would."""
    loop = asyncio.get_running_loop()
    servers = started.servers
    conns = []
    for i in range(connections):
        server = servers[i % len(servers)]
        conns.append((await loop.create_connection(Connection, server.host, server.port))[1])
    phase = Phase(seconds)
    pool.reverse()  # pop() hands them out in the order they were made
    cpu_before, extra_before = started.cpu(), started.extra_cpu()
    start = time.perf_counter()
    deadline = start + seconds

    async def sender(conn: Connection) -> None:
        while time.perf_counter() < deadline:
            if pool:
                ids, request = pool.pop()
            else:
                phase.signed_inline += 1
                ids, request = maker.make()
            status, body = await conn.send(request)
            if status == 202 and json.loads(body).get("accepted") == len(ids):
                phase.acked.extend(ids)
                continue
            phase.errors += 1
            if phase.errors <= 3:
                print(f"  {maker.server.argv[-1]}: unexpected answer {status}: {body[:200]!r}", file=sys.stderr)

    await asyncio.gather(*(sender(conn) for conn in conns))
    phase.seconds = time.perf_counter() - start
    phase.server_cpu = started.cpu() - cpu_before
    phase.extra_cpu = started.extra_cpu() - extra_before
    for conn in conns:
        assert conn.transport is not None
        conn.transport.close()
    return phase


# --- one measured phase of one server -----------------------------------------------------------------------------


@dataclass
class Run:
    server: str
    size: int
    rep: int
    events_per_second: float
    cpu_us_per_event: float
    acked: int
    stored: int
    missing: int
    errors: int
    signed_inline: int
    extra_cpu_us_per_event: float = 0.0  # the part of cpu_us_per_event spent by Started.extra_cpu's processes

    @property
    def durable(self) -> bool:
        return self.missing == 0 and self.stored == self.acked


@dataclass
class Started:
    """What a phase drives: the server processes, the site's secret, and how to read back the event ids stored."""

    servers: list[ServerProcess]
    secret: str
    stored: Callable[[], set[str]]
    extra_cpu: Callable[[], float] = lambda: 0.0  # CPU of processes serving them (a database server), if known

    def cpu(self) -> float:
        return sum(cpu_seconds(s.pid) for s in self.servers) + self.extra_cpu()

    def kill(self) -> None:
        for server in self.servers:
            server.kill()


# The relay's one channel: every event also makes a delivery due, and the dispatcher claims and settles alongside.
SANDBOX = {
    "name": "sandbox",
    "type": "sandbox",
    "latency_ms": 5,
    "batch_size": 100,
    "rate": {"per_second": 1000, "burst": 1000},
}


def start(kind: str, workdir: Path, before: Path | None = None) -> Started:
    """The server ``kind`` in its own process on a fresh directory (``before``: the checkout of the ``before`` relay)."""
    workdir.mkdir()
    if kind in ("relay", BEFORE):
        relay, secret = start_relay(workdir, [SANDBOX], root=before if kind == BEFORE and before else ROOT)
        return Started([relay], secret, functools.partial(stored_ids, database_path(workdir)))
    secret = signing.new_secret()
    db = workdir / "baseline.sqlite3"
    source = MINIMAL if kind == "minimal" else NAIVE
    server = ServerProcess([sys.executable, "-c", source, str(db)], workdir / "server.log", {"BENCH_SECRET": secret})
    return Started([server.start()], secret, functools.partial(stored_ids, db))


def stored_ids(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        found = {row[0] for row in conn.execute("SELECT event_id FROM events")}
    conn.close()
    return found


def measure(
    kind: str,
    size: int,
    rep: int,
    workdir: Path,
    args: argparse.Namespace,
    rates: dict[Any, float],
    starter: Callable[[str, Path], Started] = start,
) -> Run:
    """Warm-up then the saturated phase; SIGKILL; the store's events against the acknowledged ones."""
    started = starter(kind, workdir)
    maker = BatchMaker(started.servers[0], started.secret, size, args.skus)
    try:
        # Pools sized from the rate this pairing last reached (or the warm-up's), with room to spare.
        known = rates.get((kind, size), 0.0)
        warm_pool = maker.pool(int(known * args.warmup * 1.5 / size) + 50 if known else max(50, 3000 // size))
        warm = asyncio.run(drive(started, warm_pool, maker, args.warmup, args.connections))
        rate = max(known, warm.events_per_second, 100.0)
        pool = maker.pool(int(rate * args.seconds * 2.0 / size) + 2 * args.connections)
        phase = asyncio.run(drive(started, pool, maker, args.seconds, args.connections))
    finally:
        started.kill()  # SIGKILL: a 202 must not depend on a clean shutdown
    rates[(kind, size)] = phase.events_per_second
    acked = warm.acked + phase.acked
    stored = started.stored()
    return Run(
        kind,
        size,
        rep,
        phase.events_per_second,
        phase.server_cpu / max(1, len(phase.acked)) * 1e6,
        len(acked),
        len(stored),
        len(set(acked) - stored),
        warm.errors + phase.errors,
        phase.signed_inline,
        phase.extra_cpu / max(1, len(phase.acked)) * 1e6,
    )


# --- what each writes per event, counted in the WAL -----------------------------------------------------------------


MINIMAL_SCHEMA = (
    "CREATE TABLE events (seq INTEGER PRIMARY KEY, site TEXT, event_id TEXT, kind TEXT, product_id INTEGER,"
    " variation_id INTEGER, parent_id INTEGER, sku TEXT, manage_stock INTEGER, stock_quantity INTEGER,"
    " stock_status TEXT, backorders TEXT, version INTEGER, occurred_at TEXT, cause_kind TEXT, cause_order_id INTEGER,"
    " received_at REAL)"
)
MINIMAL_INSERT = f"INSERT INTO events VALUES (NULL{',?' * 16})"


def wal_frames_by_btree(conn: sqlite3.Connection, path: Path) -> Counter[str]:
    """The WAL's frames so far, by the table or index each page belongs to (the WAL not yet checkpointed)."""
    raw = path.with_name(path.name + "-wal").read_bytes()
    page_size = struct.unpack(">I", raw[8:12])[0]
    owner = {pageno: name for name, pageno in conn.execute("SELECT name, pageno FROM dbstat")}
    counts: Counter[str] = Counter()
    for at in range(32, len(raw) - 24 - page_size + 1, 24 + page_size):
        counts[owner.get(struct.unpack(">I", raw[at : at + 4])[0], "(free list / other)")] += 1
    return counts


def relay_groups(size: int, groups: int, skus: int) -> list[list[ingest.BatchWrite]]:
    counter = 0
    out = []
    for g in range(groups):
        jobs = []
        for r in range(GROUP):
            events = []
            for _ in range(size):
                counter += 1
                raw = stock_event(counter, f"SKU-{counter % skus}", counter % 100, 1, event_id=new_event_id())
                event = protocol.validate_event(raw)
                assert isinstance(event, protocol.Event)
                events.append(event)
            jobs.append(ingest.BatchWrite("bench", ["sandbox"], f"msg_{g}_{r}", events, [], 1e9 + g, {}, "d"))
        out.append(jobs)
    return out


def as_minimal_rows(jobs: list[ingest.BatchWrite]) -> list[tuple[Any, ...]]:
    return [
        (job.site, e.id, e.kind, e.product_id, e.variation_id, e.parent_id, e.sku, int(e.manage_stock),
         e.stock_quantity, e.stock_status, e.backorders, e.version, e.occurred_at, e.cause_kind, e.cause_order_id,
         job.now)
        for job in jobs for e in job.events
    ]  # fmt: skip


def writes_per_event(size: int, skus: int, events: int, tmp: Path) -> dict[str, Any]:
    """WAL frames and write-job CPU per event, relay vs minimal, after a warm fill of ``skus`` events each."""
    groups = max(2, events // (GROUP * size))
    filling = -(-skus // (GROUP * size))  # first every SKU once, so the measured upserts meet existing deliveries
    built = relay_groups(size, filling + groups, skus)
    warm, measured = built[:filling], built[filling:]
    out: dict[str, Any] = {}
    for name in ("relay", "minimal"):
        path = tmp / f"pages-{name}-{size}.sqlite3"
        conn = store.connect_writer(path)
        conn.execute("PRAGMA wal_autocheckpoint=0")  # every frame stays in the WAL until it is counted
        if name == "relay":
            store.migrate(conn)
        else:
            conn.execute(MINIMAL_SCHEMA)
        cpu = 0.0
        for step, group in enumerate(warm + measured):
            if step == len(warm):
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # count from here: the deliveries exist
                cpu = 0.0
            began = time.process_time()
            conn.execute("BEGIN IMMEDIATE")
            if name == "relay":
                ingest.BatchWrite.run_many(conn, group)
            else:
                conn.executemany(MINIMAL_INSERT, as_minimal_rows(group))
            conn.execute("COMMIT")
            cpu += time.process_time() - began
        frames = wal_frames_by_btree(conn, path)
        conn.close()
        count = groups * GROUP * size
        out[name] = {
            "wal_pages": round(sum(frames.values()) / count, 3),
            "cpu_us": round(cpu / count * 1e6, 1),
            "by_btree": {k: round(v / count, 3) for k, v in frames.most_common()},
        }
    return out


# --- report ---------------------------------------------------------------------------------------------------------


def median_and_range(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def summarize(runs: list[Run], sizes: list[int], kinds: tuple[str, ...] = SERVERS) -> dict[str, Any]:
    """Per size: each server's median and range, and the relay's ratios (of medians, and paired per repetition)."""
    out: dict[str, Any] = {}
    for size in sizes:
        mine = {kind: [r for r in runs if r.size == size and r.server == kind] for kind in kinds}
        row: dict[str, Any] = {}
        for kind, rs in mine.items():
            med, low, high = median_and_range([r.events_per_second for r in rs])
            cpu = statistics.median(r.cpu_us_per_event for r in rs)
            row[kind] = {"eps_median": round(med, 1), "eps_min": round(low, 1), "eps_max": round(high, 1),
                         "cpu_us_per_event": round(cpu, 1)}  # fmt: skip
        for base in kinds[1:]:
            paired = [
                r.events_per_second / b.events_per_second
                for r, b in zip(mine["relay"], mine[base], strict=True)
                if b.events_per_second
            ]
            row[f"relay_over_{base}"] = round(row["relay"]["eps_median"] / row[base]["eps_median"], 3)
            row[f"relay_over_{base}_paired_min"] = round(min(paired), 3)
            row[f"relay_over_{base}_paired_max"] = round(max(paired), 3)
        out[str(size)] = row
    return out


def print_table(summary: dict[str, Any], kinds: tuple[str, ...] = SERVERS) -> None:
    print("events/s, median (min–max) of the repetitions; server CPU µs per event (median)")
    print(
        f"{'ev/req':>6} | {'relay':>24} | {'minimal durable':>24} | {'naive':>24} | {'relay/min':>9} | {'relay/naive':>11}"
    )
    for size, row in summary.items():
        cells = [
            f"{row[k]['eps_median']:7.0f} ({row[k]['eps_min']:.0f}–{row[k]['eps_max']:.0f}) {row[k]['cpu_us_per_event']:4.0f}µs"
            for k in SERVERS
        ]
        if BEFORE in kinds:
            b = row[BEFORE]
            cells.append(
                f"before {b['eps_median']:.0f} ({b['eps_min']:.0f}–{b['eps_max']:.0f}) {b['cpu_us_per_event']:.0f}µs,"
                f" relay/before {row['relay_over_before']:.2f}"
                f" ({row['relay_over_before_paired_min']:.2f}–{row['relay_over_before_paired_max']:.2f})"
            )
        print(
            f"{size:>6} | " + " | ".join(f"{c:>24}" for c in cells[:3]) + f" | {row['relay_over_minimal']:9.2f}"
            f" | {row['relay_over_naive']:11.2f}" + (f" | {cells[3]}" if len(cells) > 3 else "")
        )
    print("targets: relay/min >= 0.50, relay/naive >= 1.50 at every size")


def print_pages(pages: dict[str, Any]) -> None:
    print(f"written per event in the WAL, groups of {GROUP} requests per commit (relay's own write job vs minimal):")
    for size, both in pages.items():
        r, m = both["relay"], both["minimal"]
        print(
            f"  {size:>3} ev/req: relay {r['wal_pages']:.2f} pages {r['cpu_us']:.0f} µs CPU,"
            f" minimal {m['wal_pages']:.2f} pages {m['cpu_us']:.0f} µs CPU"
        )
        print("         relay by B-tree: " + ", ".join(f"{k} {v:.2f}" for k, v in r["by_btree"].items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,10,100", help="events per request (default 1,10,100)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of every pairing (default 3)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each measured phase (default 3)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up before each phase (default 1)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--skus", type=int, default=5000, help="SKUs the events spread over, in order (default 5000)")
    parser.add_argument("--no-pages", action="store_true", help="skip the WAL page count per event")
    parser.add_argument(
        "--relay-before",
        type=Path,
        metavar="DIR",
        help="also run the relay of another checkout (e.g. a `git worktree` of the commit before a change) in the"
        " same rotation, and report relay/before",
    )
    args = parser.parse_args()
    kinds = SERVERS + ((BEFORE,) if args.relay_before else ())
    starter = functools.partial(start, before=args.relay_before)
    sizes = [int(s) for s in args.sizes.split(",")]
    load_before = os.getloadavg()
    began = time.monotonic()
    runs: list[Run] = []
    rates: dict[Any, float] = {}
    pages: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-durable-") as tmp:
        for rep in range(args.reps):
            for size in sizes:
                turn = rep % len(kinds)
                for kind in kinds[turn:] + kinds[:turn]:  # each server leads in turn
                    run = measure(kind, size, rep, Path(tmp) / f"{kind}-{size}-{rep}", args, rates, starter)
                    runs.append(run)
                    print(
                        f"  rep {rep + 1} {size:>3} ev/req {kind:>7}: {run.events_per_second:8.0f} events/s"
                        f" {run.cpu_us_per_event:5.0f} µs CPU/event; {run.acked} acked, {run.missing} missing",
                        file=sys.stderr,
                    )
        if not args.no_pages:
            for size in sizes:
                pages[str(size)] = writes_per_event(size, args.skus, 20_000, Path(tmp))
    load_after = os.getloadavg()
    summary = summarize(runs, sizes, kinds)
    durable = all(r.durable for r in runs)
    errors = sum(r.errors for r in runs)
    inline = sum(r.signed_inline for r in runs)

    print(
        f"{args.connections} connections, {args.seconds:g} s saturated per phase after {args.warmup:g} s warm-up,"
        f" {args.reps} repetitions interleaved, {os.cpu_count()} CPUs, load average {load_before[0]:.2f} before,"
        f" {load_after[0]:.2f} after ({time.monotonic() - began:.0f} s)"
    )
    print_table(summary, kinds)
    print(
        f"durability (each server SIGKILLed after each phase, its file read): {sum(r.acked for r in runs)} events"
        f" acknowledged, {sum(r.missing for r in runs)} missing -> {'OK' if durable else 'FAILED'}"
        f" (relay: {sum(r.acked for r in runs if r.server == 'relay')} acknowledged)"
    )
    if errors or inline:
        print(f"non-202 answers: {errors}; requests signed during a phase (pool ran out): {inline}")
    if pages:
        print_pages(pages)
    figures = {
        "bench": "durable_baseline",
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "load_before": round(load_before[0], 2),
        "load_after": round(load_after[0], 2),
        "connections": args.connections,
        "seconds": args.seconds,
        "reps": args.reps,
        "sizes": summary,
        "pages": pages,
        "durable": durable,
        "errors": errors,
        "signed_inline": inline,
    }
    print(json.dumps(figures))
    return 0 if durable and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
