"""Ingest on PostgreSQL (issue 19 item 5): 1, 2 and 3 relays sharing one store against a minimal durable PostgreSQL
server, beside the relay on SQLite against the minimal durable SQLite server, in one interleaved run.

    .venv/bin/python bench/pg_baseline.py [--sizes 1,10,100] [--reps 3] [--seconds 3] [--warmup 1]
                                          [--connections 32] [--skus 5000] [--store-url [URL]]

Six backends, each measured at 1, 10 and 100 events per request by bench/durable_baseline.py's load generator (this
process; requests built and signed before each phase; every connection sends its next request as soon as its
answer arrives) and its durability check (every server SIGKILLed after its phase, then every 202'd event id looked
up in the store):

- ``relay-sqlite`` and ``minimal-sqlite``: bench/durable_baseline.py's relay and minimal durable server, as there.
- ``relay-pg1``, ``relay-pg2``, ``relay-pg3``: 1, 2 or 3 ``stock-relay serve`` processes with the same config
  (``store: env:...`` naming one fresh schema, the sandbox channel of durable_baseline), each with its own
  state_dir and port; the load generator spreads its connections over them round-robin, as a balancer would.
- ``minimal-pg``: aiohttp; verifies the same Standard Webhooks signature, parses the batch and hands its rows to
  one writer thread with one psycopg 3 connection that takes everything queued, inserts one row per event into one
  table (no index) in one transaction, COMMITs once (synchronous_commit on) and then answers all: what the storage
  allows.

Each PostgreSQL phase gets a fresh schema, dropped afterwards. The PostgreSQL server is, unless ``--store-url`` is
given (bare: ``$STOCK_RELAY_TEST_PG``), a cluster of this bench's own with fsync on (bench/_pg.py; the development cluster runs with fsync off, where
a COMMIT never waits for the disk); the output says which. With the bench's own cluster the CPU per event of the
PostgreSQL backends includes the database server's processes.

Every pairing runs ``--reps`` times, interleaved (each repetition walks the sizes and, within a size, the backends
in a rotated order). The last line of stdout is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import durable_baseline as durable
from _common import ServerProcess
from _pg import (
    STORE_VARIABLE,
    OwnCluster,
    create_schema,
    drop_schema,
    schema_url,
    setting,
    start_pg_relays,
    stored_event_ids,
)
from durable_baseline import BASELINE_COMMON, GROUP_COMMIT, SANDBOX, Run, Started

from relay import signing

KINDS = ("relay-sqlite", "minimal-sqlite", "relay-pg1", "relay-pg2", "relay-pg3", "minimal-pg")
PAIRS = {
    "relay-sqlite": "minimal-sqlite",
    "relay-pg1": "minimal-pg",
    "relay-pg2": "minimal-pg",
    "relay-pg3": "minimal-pg",
}

# The rows of bench/durable_baseline.py's baselines, in a heap table without an index (as SQLite's rowid table).
MINIMAL_PG = (
    BASELINE_COMMON
    + r"""
import psycopg

PG_URL = os.environ.pop("BENCH_PG_STORE_URL")
PG_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS events (site TEXT NOT NULL, event_id TEXT NOT NULL, kind TEXT NOT NULL,"
    " product_id BIGINT NOT NULL, variation_id BIGINT, parent_id BIGINT, sku TEXT NOT NULL, manage_stock INTEGER NOT"
    " NULL, stock_quantity BIGINT, stock_status TEXT NOT NULL, backorders TEXT NOT NULL, version BIGINT NOT NULL,"
    " occurred_at TEXT NOT NULL, cause_kind TEXT NOT NULL, cause_order_id BIGINT, received_at DOUBLE PRECISION NOT"
    " NULL)"
)
PG_INSERT = f"INSERT INTO events ({COLUMNS}) VALUES ({','.join(['%s'] * 16)})"
CONN = psycopg.connect(PG_URL)  # not autocommit: the first statement opens the group's transaction
CONN.execute(PG_SCHEMA)
CONN.commit()


def write_group(batches):
    with CONN.cursor() as cursor:
        cursor.executemany(PG_INSERT, [row for batch in batches for row in batch])
    CONN.commit()


def rollback():
    CONN.rollback()
"""
    + GROUP_COMMIT
)


class Backends:
    """Starts any of KINDS; the PostgreSQL ones on the schema of the phase (``store_url``)."""

    def __init__(self, cluster: OwnCluster | None) -> None:
        self.cluster = cluster

    def start(self, kind: str, workdir: Path, store_url: str = "") -> Started:
        if kind.endswith("-sqlite"):
            return durable.start(kind.removesuffix("-sqlite"), workdir)
        extra_cpu = self.cluster.cpu_seconds if self.cluster else lambda: 0.0
        stored = functools.partial(stored_event_ids, store_url)
        if kind == "minimal-pg":
            workdir.mkdir()
            secret = signing.new_secret()
            env = {"BENCH_SECRET": secret, STORE_VARIABLE: store_url}
            server = ServerProcess([sys.executable, "-c", MINIMAL_PG, "postgresql"], workdir / "server.log", env)
            return Started([server.start()], secret, stored, extra_cpu)
        relays, secret = start_pg_relays(workdir, int(kind.removeprefix("relay-pg")), store_url, [SANDBOX])
        return Started(relays, secret, stored, extra_cpu)


def measure(
    kind: str, size: int, rep: int, workdir: Path, args: argparse.Namespace, rates: dict[Any, float], backends: Backends
) -> Run:
    """One phase of durable_baseline.measure; a PostgreSQL backend on a schema of its own, dropped afterwards."""
    if kind.endswith("-sqlite"):
        return durable.measure(kind, size, rep, workdir, args, rates, starter=backends.start)
    schema = create_schema(args.store_url, "bench_ingest")
    try:
        starter = functools.partial(backends.start, store_url=schema_url(args.store_url, schema))
        return durable.measure(kind, size, rep, workdir, args, rates, starter=starter)
    finally:
        drop_schema(args.store_url, schema)


# --- report ---------------------------------------------------------------------------------------------------------


def summarize(runs: list[Run], sizes: list[int], kinds: tuple[str, ...]) -> dict[str, Any]:
    """Per size: each backend's median and range, each relay's ratio to its storage's minimal server (of medians, and
    the range of the ratios paired per repetition), and 2 and 3 relays against 1."""
    out: dict[str, Any] = {}
    for size in sizes:
        mine = {kind: [r for r in runs if r.size == size and r.server == kind] for kind in kinds}
        row: dict[str, Any] = {}
        for kind, rs in mine.items():
            med, low, high = durable.median_and_range([r.events_per_second for r in rs])
            cpu = statistics.median(r.cpu_us_per_event for r in rs)
            db_cpu = statistics.median(r.extra_cpu_us_per_event for r in rs)
            row[kind] = {"eps_median": round(med, 1), "eps_min": round(low, 1), "eps_max": round(high, 1),
                         "cpu_us_per_event": round(cpu, 1), "db_cpu_us_per_event": round(db_cpu, 1),
                         "non_202": sum(r.errors for r in rs)}  # fmt: skip
        for relay, base in PAIRS.items():
            if relay not in mine or base not in mine:
                continue
            paired = [r.events_per_second / b.events_per_second for r, b in zip(mine[relay], mine[base], strict=True)]
            row[relay]["over_minimal"] = round(row[relay]["eps_median"] / row[base]["eps_median"], 3)
            row[relay]["over_minimal_paired_min"] = round(min(paired), 3)
            row[relay]["over_minimal_paired_max"] = round(max(paired), 3)
        for many in ("relay-pg2", "relay-pg3") if "relay-pg1" in mine else ():
            if many not in mine:
                continue
            row[many]["over_one_relay"] = round(row[many]["eps_median"] / row["relay-pg1"]["eps_median"], 3)
        out[str(size)] = row
    return out


def print_table(summary: dict[str, Any]) -> None:
    print(
        "events/s, median (min–max) of the repetitions; CPU µs per event, median (of it, the PostgreSQL server's,"
        " when the cluster is the bench's own); relay/minimal of its storage; n relays/1 relay"
    )
    print(
        f"{'ev/req':>6} | {'backend':<14} | {'events/s':>22} | {'CPU':>6} | {'of it DB':>8} | {'/minimal':>8}"
        f" | {'/1 relay':>8} | {'non-202':>7}"
    )
    for size, row in summary.items():
        for kind, cell in row.items():
            ratio = f"{cell['over_minimal']:.2f}" if "over_minimal" in cell else ""
            scale = f"{cell['over_one_relay']:.2f}" if "over_one_relay" in cell else ""
            eps = f"{cell['eps_median']:.0f} ({cell['eps_min']:.0f}–{cell['eps_max']:.0f})"
            db = f"{cell['db_cpu_us_per_event']:.0f}µs" if "-pg" in kind else ""
            print(
                f"{size:>6} | {kind:<14} | {eps:>22} | {cell['cpu_us_per_event']:4.0f}µs | {db:>8} | {ratio:>8}"
                f" | {scale:>8} | {cell['non_202']:>7}"
            )


def describe_store(args: argparse.Namespace, own: bool) -> str:
    settings = ", ".join(f"{name}={setting(args.store_url, name)}" for name in ("fsync", "synchronous_commit"))
    where = "a cluster of the bench's own" if own else "the cluster of --store-url"
    version = setting(args.store_url, "server_version")
    return f"PostgreSQL {version}: {where} ({settings})"


def run_all(args: argparse.Namespace, sizes: list[int], backends: Backends, tmp: Path) -> list[Run]:
    runs: list[Run] = []
    rates: dict[Any, float] = {}
    kinds = args.kinds
    for rep in range(args.reps):
        for size in sizes:
            shift = rep % len(kinds)
            for kind in kinds[shift:] + kinds[:shift]:  # a different backend leads each repetition
                run = measure(kind, size, rep, tmp / f"{kind}-{size}-{rep}", args, rates, backends)
                runs.append(run)
                print(
                    f"  rep {rep + 1} {size:>3} ev/req {kind:>14}: {run.events_per_second:8.0f} events/s"
                    f" {run.cpu_us_per_event:5.0f} µs CPU/event; {run.acked} acked, {run.missing} missing",
                    file=sys.stderr,
                )
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,10,100", help="events per request (default 1,10,100)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of every pairing (default 3)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each measured phase (default 3)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up before each phase (default 1)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--skus", type=int, default=5000, help="SKUs the events spread over, in order (default 5000)")
    parser.add_argument(
        "--store-url",
        nargs="?",
        const=os.environ.get("STOCK_RELAY_TEST_PG", ""),
        default="",
        help="a PostgreSQL cluster to use (bare: $STOCK_RELAY_TEST_PG) instead of one of the bench's own, fsync on",
    )
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"backends to measure (default {','.join(KINDS)})")
    parser.add_argument("--keep", action="store_true", help="keep the servers' folders (logs) and print where")
    args = parser.parse_args()
    args.kinds = tuple(k for k in args.kinds.split(",") if k)
    if unknown := set(args.kinds) - set(KINDS):
        parser.error(f"unknown backends: {sorted(unknown)}")
    sizes = [int(s) for s in args.sizes.split(",")]
    if not args.store_url and "--store-url" in sys.argv:
        parser.error("--store-url without a URL needs STOCK_RELAY_TEST_PG")
    tmp = Path(tempfile.mkdtemp(prefix="bench-pg-baseline-"))
    cluster = None if args.store_url else OwnCluster().start()
    try:
        if cluster:
            args.store_url = cluster.url
        store = describe_store(args, cluster is not None)
        load_before = os.getloadavg()
        began = time.monotonic()
        runs = run_all(args, sizes, Backends(cluster), tmp)
        load_after = os.getloadavg()
    finally:
        if cluster:
            cluster.stop()
        if args.keep:
            print(f"servers' folders kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return report(args, runs, sizes, store, load_before, load_after, time.monotonic() - began)


def report(
    args: argparse.Namespace,
    runs: list[Run],
    sizes: list[int],
    store: str,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
    elapsed: float,
) -> int:
    summary = summarize(runs, sizes, args.kinds)
    durable_ok = all(r.durable for r in runs)
    errors = sum(r.errors for r in runs)
    inline = sum(r.signed_inline for r in runs)
    print(store)
    print(
        f"{args.connections} connections, {args.seconds:g} s saturated per phase after {args.warmup:g} s warm-up,"
        f" {args.reps} repetitions interleaved, {os.cpu_count()} CPUs, load average {load_before[0]:.2f} before,"
        f" {load_after[0]:.2f} after ({elapsed:.0f} s)"
    )
    print_table(summary)
    print(
        f"durability (every server SIGKILLed after each phase, the store read): {sum(r.acked for r in runs)} events"
        f" acknowledged, {sum(r.missing for r in runs)} missing -> {'OK' if durable_ok else 'FAILED'}"
    )
    if errors or inline:
        print(f"non-202 answers: {errors}; requests signed during a phase (pool ran out): {inline}")
    figures = {
        "bench": "pg_baseline",
        "date": time.strftime("%Y-%m-%d"),
        "store": store,
        "cpus": os.cpu_count(),
        "load_before": round(load_before[0], 2),
        "load_after": round(load_after[0], 2),
        "connections": args.connections,
        "seconds": args.seconds,
        "reps": args.reps,
        "sizes": summary,
        "acknowledged": sum(r.acked for r in runs),
        "missing": sum(r.missing for r in runs),
        "durable": durable_ok,
        "errors": errors,
        "signed_inline": inline,
    }
    print(json.dumps(figures))
    return 0 if durable_ok and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
