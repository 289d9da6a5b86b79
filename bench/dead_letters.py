"""Claim + settle per delivery on a channel holding many open dead letters, vs on one holding none.

    .venv/bin/python bench/dead_letters.py [--open 20000] [--deliveries 4000]

Every confirmed delivery resolves its SKU's open dead letter, on the one writer connection that
every channel and ingest share. If that lookup reads all of the channel's open dead letters, a
channel that failed for a day (thousands of them) slows every other channel and ingest down.
Both runs use the real deliveries.claim / deliveries.settle on a fresh SQLite file (synchronous=OFF: the cost
measured is the statements', not the disk's), in batches of 100, in the same process.

Target: ratio (many / none) <= 1.2. The last line of stdout is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from relay.cli.client import new_event_id, stock_event  # noqa: E402
from relay.delivery import deliveries
from relay.intake import ingest, protocol
from relay.storage import store  # noqa: E402

POLICY = deliveries.RetryPolicy(1, 60, 3600)


def per_delivery_us(workdir: Path, open_dead: int, count: int) -> float:
    conn = store.connect_writer(workdir / f"open-{open_dead}.sqlite3")
    store.migrate(conn)
    conn.execute("PRAGMA synchronous=OFF")
    now = time.time()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO dead_letters (site, channel, sku, event_seq, quantity, reason, created_at)"
        " VALUES ('shop', 'channel', ?, 1, 0, 'rejected', ?)",
        [(f"DEAD-{i}", now) for i in range(open_dead)],
    )
    events = [
        protocol.validate_event(stock_event(n, f"SKU-{n}", 5, 1, event_id=new_event_id())) for n in range(1, count + 1)
    ]
    ingest.record_batch(conn, "shop", ["channel"], "msg-1", events, [], now)  # type: ignore[arg-type]
    conn.execute("COMMIT")
    rand = random.Random(1)
    settled = 0
    started = time.process_time()
    while True:
        conn.execute("BEGIN")
        claimed = deliveries.claim(conn, "shop", "channel", 100, "token", 60, now + 1)
        if claimed:
            outcomes = [deliveries.Outcome(c.sku, deliveries.OK, quantity=5) for c in claimed]
            settled += deliveries.settle(conn, "shop", "channel", "token", claimed, outcomes, POLICY, now + 1, rand)
        conn.execute("COMMIT")
        if not claimed:
            break
    elapsed = time.process_time() - started
    conn.close()
    assert settled == count, (settled, count)
    return elapsed / settled * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--open", type=int, default=20_000, help="open dead letters on the channel (default 20000)")
    parser.add_argument("--deliveries", type=int, default=4000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dead-") as tmp:
        none = per_delivery_us(Path(tmp), 0, args.deliveries)
        many = per_delivery_us(Path(tmp), args.open, args.deliveries)
    ratio = many / none
    print(f"claim + settle per delivery, no open dead letters:      {none:8.1f} us")
    print(f"claim + settle per delivery, {args.open:,} open dead letters: {many:8.1f} us")
    print(f"  ratio {ratio:.2f}   (target <= 1.2)")
    figures = {"bench": "dead_letters", "open": args.open, "deliveries": args.deliveries}
    figures |= {"none_us": round(none, 1), "many_us": round(many, 1), "ratio": round(ratio, 2)}
    print(json.dumps(figures))
    return 0 if ratio <= 1.2 else 1


if __name__ == "__main__":
    sys.exit(main())
