"""What strict parsing costs over the standard library's plain ``json.loads``, per request body.

    .venv/bin/python bench/parse.py [--events 100] [--rounds 2000]

A signed batch of ``--events`` stock events as the plugin sends it, read ``--rounds`` times by each reader in the
same process, interleaved (machines here are shared and noisy: only the ratio means something):
- ``plain``: ``json.loads``, the baseline (refuses nothing beyond JSON syntax);
- ``strict``: ``relay.intake.protocol.parse_json`` (UTF-8 only, no duplicate keys, no NaN, depth ≤ 16);
- ``walk``: the same strict decoder followed by the exact depth walk every time, as the relay did before the
  bracket scan (issue 20 §4).
The last line of stdout is one JSON object: µs per body for each, and strict/plain and walk/plain.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from relay.intake import protocol  # noqa: E402


def body(events: int) -> bytes:
    batch = [
        {"event_id": f"0b7c6d1e-{i:04d}-4a6f-9d2e-5f0e3c2b1a90", "kind": "stock.changed", "product_id": 1000 + i,
         "sku": f"TS-{i:05d}", "manage_stock": True, "stock_quantity": i % 40, "stock_status": "instock",
         "version": 7, "occurred_at": "2026-12-03T10:00:00Z", "cause": "order"}
        for i in range(events)
    ]  # fmt: skip
    doc = {"type": "stock.batch", "site": "main", "sent_at": "2026-12-03T10:00:00Z", "events": batch}
    return json.dumps(doc).encode()


def walk(raw: bytes) -> Any:
    value = protocol._DECODER.decode(raw.decode("utf-8"))
    protocol._depth(value)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    raw = body(args.events)
    readers: dict[str, Callable[[bytes], Any]] = {"plain": json.loads, "strict": protocol.parse_json, "walk": walk}
    spent = dict.fromkeys(readers, 0.0)
    for _ in range(args.rounds):
        for name, read in readers.items():
            started = time.perf_counter()
            read(raw)
            spent[name] += time.perf_counter() - started
    us = {name: round(total / args.rounds * 1e6, 1) for name, total in spent.items()}
    for name, value in us.items():
        print(f"{name:>7}: {value:8.1f} µs per {len(raw)}-byte body of {args.events} events")
    ratios = {
        "strict_over_plain": round(us["strict"] / us["plain"], 2),
        "walk_over_plain": round(us["walk"] / us["plain"], 2),
    }
    print(json.dumps({"events": args.events, "bytes": len(raw), "us": us, **ratios}))


if __name__ == "__main__":
    main()
