"""Claim + settle per delivery: this checkout's relay/delivery/deliveries.py against an earlier one, interleaved.

    .venv/bin/python bench/claim_settle.py [--deliveries 20000] [--rounds 5] [--batches 1,10,100] [--baseline REV]

The earlier implementation is read from git (``--baseline``, default: the last row-at-a-time claim and settle, before
issue 20 §5) and loaded beside the current one, so both run in this process on copies of the same SQLite file (fresh
for every run, synchronous=OFF: the cost measured is the statements', not the disk's), the two alternating within
each round. Two workloads:

- **ok**: every claimed delivery confirmed, the steady state of a healthy channel, in batches of 1, 10 and 100
  (``--batches``): a quiet channel claims one at a time, a busy one full batches;
- **mixed**, in batches of 100: outcomes of every kind (ok, skipped, transient with and without Retry-After,
  permanent, auth, held), now and then a second outcome for a SKU, sales taken off the pushed quantity and then
  applied by the shop (pushed again), some claims taken over before the settle (lease lost), some SKUs changing again
  between claim and settle (coalescing: ingest's own ``record_batch``), a retry budget short enough to give up, the
  clock moving on whenever nothing is due; until nothing is pending.

Both implementations must leave **the same database** (every row of deliveries, dead letters, audit) and return the
same claims, counts and dead letters, batch for batch; the bench fails if not. Figures: CPU µs per delivery settled
(process time of ``claim`` and ``settle`` alone, median of the rounds) and the ratio current / baseline. The last
line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from relay.cli.client import stock_event  # noqa: E402
from relay.delivery import deliveries as current  # noqa: E402
from relay.intake import ingest, protocol  # noqa: E402
from relay.storage import store  # noqa: E402

BASELINE = "4a3f8b8f911aa3d31bb937b4ad055aeee9013097"  # deliveries.py before issue 20 §5
SITE, CHANNEL = "shop", "channel"
START = 1_000_000.0  # the simulated clock: every run sees the same times, so the two must write the same rows
POLICY = current.RetryPolicy(base_seconds=1, max_seconds=8, give_up_after_seconds=20)
Run = tuple[float, int, list[Any]]  # CPU seconds, deliveries settled, what each batch returned (for the comparison)


def load_baseline(rev: str) -> types.ModuleType:
    """relay/delivery/deliveries.py as of ``rev``, as a module of the relay.delivery package (its imports resolve)."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:relay/delivery/deliveries.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    spec = importlib.util.spec_from_loader("relay.delivery._baseline_deliveries", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "relay.delivery"
    sys.modules[spec.name] = module  # dataclasses look their module up
    exec(compile(source, f"{rev[:10]}:relay/delivery/deliveries.py", "exec"), module.__dict__)
    return module


def events(skus: list[str], version: int) -> list[Any]:
    """An event per SKU at ``version``, named after both (the same in every run); SKU-0000041 is product 42."""
    return [
        protocol.validate_event(
            stock_event(int(sku[4:]) + 1, sku, version % 7, version, event_id=f"evt_{sku}_{version}")
        )
        for sku in skus
    ]


def fill(path: Path, count: int) -> None:
    """``count`` SKUs with one event each, every delivery due (ingest's own write job); every 40th SKU has a sale on
    the channel that the shop has not applied yet (the claim takes it off the quantity it pushes)."""
    conn = store.connect_writer(path)
    store.migrate(conn)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    ingest.record_batch(conn, SITE, [CHANNEL], "fill", events([f"SKU-{n:07d}" for n in range(count)], 1), [], START)
    conn.executemany(
        "INSERT INTO sales (site, key, channel, order_id, line_id, sku, delta, reason, source, received_at, state,"
        " next_attempt_at, updated_at) VALUES (?, ?, ?, ?, '1', ?, -1, 'sale', 'inbound', ?, 'pending', ?, ?)",
        [
            (SITE, f"{CHANNEL}:O-{n}:1", CHANNEL, f"O-{n}", f"SKU-{n:07d}", START, START, START)
            for n in range(0, count, 40)
        ],
    )
    conn.execute("COMMIT")
    conn.close()


def pick(sku: str, batch: int) -> int:
    """A stable number 0..99 for a SKU in a batch: both implementations see the same outcomes."""
    return zlib.crc32(f"{sku}/{batch}".encode()) % 100


def mixed_outcome(mod: types.ModuleType, item: Any, batch: int) -> Any:
    n = pick(item.sku, batch)
    if n < 55:
        return mod.Outcome(item.sku, mod.OK, quantity=item.stock_quantity, http_status=200, latency_ms=5.0)
    if n < 60:
        return mod.Outcome(item.sku, mod.SKIPPED)
    if n < 75:
        retry_after = 3.0 if n < 65 else None
        return mod.Outcome(item.sku, mod.TRANSIENT, error="HTTP 503", retry_after=retry_after, http_status=503)
    if n < 85:
        return mod.Outcome(item.sku, mod.PERMANENT, error="unknown SKU", http_status=400, excerpt='{"error":"x"}')
    if n < 92:
        return mod.Outcome(item.sku, mod.AUTH, error="HTTP 401")
    return mod.Outcome(item.sku, mod.HELD, error="daily quota spent")


def run(mod: types.ModuleType, path: Path, mixed: bool, size: int) -> Run:
    """Claim and settle until nothing is pending; the CPU time spent in ``claim`` and ``settle`` alone."""
    conn = store.connect_writer(path)
    conn.row_factory = None
    conn.execute("PRAGMA synchronous=OFF")
    rand = random.Random(20)
    now, batch, settled, cpu = START + 1, 0, 0, 0.0
    returned: list[Any] = []
    while True:
        batch += 1
        token = f"token-{batch}"
        conn.execute("BEGIN")
        started = time.process_time()
        claimed = mod.claim(conn, SITE, CHANNEL, size, token, 60.0, now)
        cpu += time.process_time() - started
        if not claimed:
            conn.execute("COMMIT")
            if not conn.execute("SELECT 1 FROM deliveries WHERE state = 'pending' LIMIT 1").fetchone():
                break
            now += 7.0  # nothing due yet: the clock moves on to the retries and the leases taken over
            continue
        if mixed:
            outcomes = [mixed_outcome(mod, item, batch) for item in claimed]
            stolen = [item.sku for item in claimed if pick(item.sku, -batch) < 4]  # another worker took them over
            conn.executemany(
                "UPDATE deliveries SET claim_token = 'other', lease_until = ? WHERE site = ? AND channel = ? AND sku = ?",
                [(now + 30, SITE, CHANNEL, sku) for sku in stolen],
            )
            changed = [item.sku for item in claimed if 4 <= pick(item.sku, -batch) < 10 and batch < 400]
            if changed:  # a newer event mid-flight: it stays pending after the settle
                ingest.record_batch(conn, SITE, [CHANNEL], f"m{batch}", events(changed, batch + 1), [], now)
            # The shop applied the sales taken off, answering a version below the pushed event's: pushed again, whole.
            conn.executemany(
                "UPDATE sales SET state = 'applied', shop_version = 0, updated_at = ? WHERE site = ? AND key = ?",
                [(now, SITE, key) for item in claimed for key, _ in item.unapplied],
            )
            if batch % 17 == 0:  # a SKU's second outcome in one batch: the first settles it, the second finds it gone
                outcomes.append(mod.Outcome(claimed[0].sku, mod.TRANSIENT, error="HTTP 502"))
        else:
            outcomes = [mod.Outcome(item.sku, mod.OK, quantity=item.stock_quantity) for item in claimed]
        dead: list[tuple[str, str]] = []
        started = time.process_time()
        count = mod.settle(conn, SITE, CHANNEL, token, claimed, outcomes, POLICY, now, rand, dead)
        cpu += time.process_time() - started
        conn.execute("COMMIT")
        settled += count
        returned.append(([dataclasses.astuple(c) for c in claimed], count, dead))
        now += 0.25
    returned.append([conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4").fetchall() for table in TABLES])
    conn.close()
    return cpu, settled, returned


TABLES = ("deliveries", "dead_letters", "audit")


def measure(
    implementations: dict[str, types.ModuleType], source: Path, workdir: Path, rounds: int, mixed: bool, size: int
) -> dict[str, list[float]]:
    """Microseconds per settled delivery of each implementation, one run each per round, their order alternating."""
    per: dict[str, list[float]] = {name: [] for name in implementations}
    names = list(implementations)
    for round_ in range(rounds):
        results: dict[str, Run] = {}
        for name in names if round_ % 2 == 0 else names[::-1]:
            copy = workdir / f"{name}.sqlite3"
            shutil.copyfile(source, copy)
            results[name] = run(implementations[name], copy, mixed, size)
            copy.unlink()
        (first, a), (second, b) = results.items()
        if a[1:] != b[1:]:
            what = f"{'mixed' if mixed else 'ok'}, batches of {size}"
            raise SystemExit(f"{what}: {first} and {second} left different databases or returns")
        for name, (cpu, settled, _) in results.items():
            per[name].append(cpu / settled * 1e6)
    return per


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=20_000, help="due deliveries at the start (default 20000)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", default="1,10,100", help="batch sizes of the ok workload (default 1,10,100)")
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the implementation to compare with")
    args = parser.parse_args()
    implementations = {"baseline": load_baseline(args.baseline), "current": current}
    figures: dict[str, Any] = {"bench": "claim_settle", "deliveries": args.deliveries, "rounds": args.rounds}
    with tempfile.TemporaryDirectory(prefix="bench-claim-") as tmp:
        source = Path(tmp) / "source.sqlite3"
        fill(source, args.deliveries)
        workloads = [("ok", int(size)) for size in args.batches.split(",")] + [("mixed", 100)]
        for workload, size in workloads:
            per = measure(implementations, source, Path(tmp), args.rounds, workload == "mixed", size)
            base, cur = statistics.median(per["baseline"]), statistics.median(per["current"])
            ratio = cur / base
            name = f"{workload}, batches of {size}"
            print(f"{name:>20}: baseline {base:6.1f} us per delivery, current {cur:6.1f} us: ratio {ratio:.2f}")
            print(
                f"       every round (baseline / current): {' '.join(f'{b:.1f}/{c:.1f}' for b, c in zip(*per.values(), strict=True))}"
            )
            figures[f"{workload}_{size}"] = {
                "baseline_us": round(base, 1),
                "current_us": round(cur, 1),
                "ratio": round(ratio, 2),
            }
    print("both left the same database and returned the same, batch for batch, in every run")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
