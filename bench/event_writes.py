"""Ingest's write job per event on a large catalogue, with and without an index, interleaved in one process.

    .venv/bin/python bench/event_writes.py [--skus 200000] [--rounds 4] [--batches 200] [--index events_product]

Issue 20 §3: every event writes a few index entries at random places (random SKUs on a large catalogue), and each
such page is written again at every commit. This fills one SQLite file through ingest's own ``record_batch`` with
``--skus`` products (one event each), copies it twice, one copy with ``--index`` (as the schema before it was
dropped: ``--create`` gives its definition) and one without, and then, alternating between the two copies, records
``--batches`` groups of 100 events for SKUs drawn at random (the same draws on both), each group committed as the
relay commits it (WAL, synchronous=FULL). Figures per event: CPU µs of the write job and its commit (process time),
wall µs, and WAL pages written (frames, counted at a checkpoint after each round: exact, not noisy). The last line of
stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from relay.cli.client import stock_event  # noqa: E402
from relay.intake import ingest, protocol  # noqa: E402
from relay.storage import store  # noqa: E402

SITE, CHANNELS = "shop", ["channel"]
START = 1_000_000.0
EVENTS_PRODUCT = "CREATE INDEX events_product ON events (site, product_id, version)"


def event(product: int, version: int) -> Any:
    return protocol.validate_event(
        stock_event(product, f"SKU-{product:07d}", version % 50, version, event_id=f"evt_{product}_{version}")
    )


def fill(path: Path, skus: int) -> None:
    conn = store.connect_writer(path)
    store.migrate(conn)
    conn.execute("PRAGMA synchronous=OFF")
    for first in range(1, skus + 1, 5000):
        conn.execute("BEGIN")
        batch = [event(n, 1) for n in range(first, min(first + 5000, skus + 1))]
        ingest.record_batch(conn, SITE, CHANNELS, f"fill-{first}", batch, [], START)
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def has_index(path: Path, name: str) -> bool:
    conn = store.connect_writer(path)
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)).fetchone()
    conn.close()
    return found is not None


def record(path: Path, skus: int, batches: int, seed: int, versions: dict[int, int]) -> tuple[float, float, int]:
    """``batches`` groups of 100 random events, each its own commit; (CPU s, wall s, WAL frames)."""
    conn = store.connect_writer(path)
    conn.execute("PRAGMA wal_autocheckpoint=0")  # every frame written stays countable until the checkpoint below
    rand = random.Random(seed)
    cpu = wall = 0.0
    for b in range(batches):
        events = []
        for product in rand.sample(range(1, skus + 1), 100):
            versions[product] = versions.get(product, 1) + 1
            events.append(event(product, versions[product]))
        now = START + seed * batches + b
        started, clock = time.process_time(), time.perf_counter()
        conn.execute("BEGIN")
        ingest.record_batch(conn, SITE, CHANNELS, f"m-{seed}-{b}", events, [], now)
        conn.execute("COMMIT")
        cpu += time.process_time() - started
        wall += time.perf_counter() - clock
    frames = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]  # (busy, frames in the WAL, copied)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the next round starts from an empty WAL
    conn.close()
    return cpu, wall, int(frames)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skus", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batches", type=int, default=200, help="groups of 100 events per round and copy")
    parser.add_argument("--index", default="events_product", help="the index compared (default events_product)")
    parser.add_argument("--create", default=EVENTS_PRODUCT, help="its definition, for the copy that has it")
    args = parser.parse_args()
    figures: dict[str, Any] = {"bench": "event_writes", "skus": args.skus, "index": args.index}
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        source = Path(tmp) / "source.sqlite3"
        print(f"filling {args.skus:,} SKUs…", file=sys.stderr)
        fill(source, args.skus)
        copies = {"with": Path(tmp) / "with.sqlite3", "without": Path(tmp) / "without.sqlite3"}
        for name, path in copies.items():
            shutil.copyfile(source, path)
            conn = store.connect_writer(path)
            present = has_index(path, args.index)
            if name == "with" and not present:
                conn.execute(args.create)
            elif name == "without" and present:
                conn.execute(f"DROP INDEX {args.index}")
            conn.execute("VACUUM")  # both copies laid out alike: only the index differs
            conn.close()
        versions: dict[str, dict[int, int]] = {name: {} for name in copies}
        per: dict[str, list[tuple[float, float, float]]] = {name: [] for name in copies}
        names = list(copies)
        for round_ in range(args.rounds):
            for name in names if round_ % 2 == 0 else names[::-1]:
                cpu, wall, frames = record(copies[name], args.skus, args.batches, round_, versions[name])
                events = args.batches * 100
                per[name].append((cpu / events * 1e6, wall / events * 1e6, frames / events))
        for name in names:
            cpu, wall, pages = (statistics.median(row[i] for row in per[name]) for i in range(3))
            print(
                f"{name:>7} {args.index}: {cpu:6.1f} us CPU, {wall:6.1f} us wall, {pages:5.2f} WAL pages per event"
                f"   (rounds: {' '.join(f'{row[0]:.0f}' for row in per[name])} us CPU)"
            )
            figures[name] = {"cpu_us": round(cpu, 1), "wall_us": round(wall, 1), "wal_pages": round(pages, 2)}
    figures["cpu_ratio"] = round(figures["without"]["cpu_us"] / figures["with"]["cpu_us"], 2)
    figures["pages_ratio"] = round(figures["without"]["wal_pages"] / figures["with"]["wal_pages"], 2)
    print(f"without / with: CPU {figures['cpu_ratio']:.2f}, WAL pages {figures['pages_ratio']:.2f}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
