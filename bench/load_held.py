"""Load held: sustained signed ingest for minutes while every channel is slow; does anything grow without bound?

    .venv/bin/python bench/load_held.py [--minutes 10] [--rate 200] [--skus 2000] [--channels 3] [--delay 0.3]

The relay (``stock-relay serve`` on a fresh SQLite file) runs in its own process. ``--rate`` events a second
(batches of 20) over ``--skus`` SKUs go in; ``--channels`` webhook channels, served from this process, each
take ``--delay`` seconds per request and are limited to 5 requests a second, so they fall behind and the
relay must coalesce. Every 10 s it samples the relay's resident memory, the queue depth (deliveries due but not
yet delivered) and the sizes of the database file and its WAL, and prints a line on stderr.

Coalescing bounds the queue: one delivery row per (channel, SKU), so depth ≤ SKUs × channels however long the
load lasts. Memory should be flat after warm-up (RSS drift = last minute's mean ÷ second minute's mean). The
WAL is checkpointed by housekeeping; the database file grows with the history kept for ``retention_days``
(reported per 1,000 events), not with the queue. The last line of stdout is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from _common import database_path, start_relay
from aiohttp import web

from relay import signing
from relay.cli.client import SignedClient, stock_event

SAMPLE_SECONDS = 10.0


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def queue_depth(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM deliveries WHERE state = 'pending'").fetchone()[0])


def file_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


async def run(args: argparse.Namespace) -> dict[str, Any]:
    hook_secret = signing.new_secret()
    delivered = 0

    async def slow_channel(request: web.Request) -> web.Response:
        nonlocal delivered
        body = await request.read()
        await asyncio.sleep(args.delay)
        delivered += len(json.loads(body)["updates"])
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/{channel}", slow_channel)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    receiver = f"http://127.0.0.1:{runner.addresses[0][1]}"

    workdir = Path(tempfile.mkdtemp(prefix="load-held-"))
    (workdir / "hook.secret").write_text(hook_secret)
    channels = [
        {
            "name": f"slow{n}",
            "type": "webhook",
            "url": f"{receiver}/slow{n}",
            "secret": f"file:{workdir / 'hook.secret'}",
            "batch_size": 20,
            "rate": {"per_second": 5, "burst": 5},
        }
        for n in range(args.channels)
    ]
    relay, site_secret = start_relay(workdir, channels)
    db = database_path(workdir)
    wal = db.with_name(db.name + "-wal")
    rand = random.Random(3)
    versions: dict[int, int] = {}
    acknowledged = refused = 0
    samples: list[dict[str, float]] = []
    started = time.monotonic()
    deadline = started + args.minutes * 60

    async with aiohttp.ClientSession() as session:
        client = SignedClient(relay.url, "bench", site_secret, session)

        async def produce() -> None:
            nonlocal acknowledged, refused
            interval = 20 / args.rate
            next_at = time.monotonic()
            while time.monotonic() < deadline:
                events = []
                for _ in range(20):
                    pid = rand.randint(1, args.skus)
                    versions[pid] = versions.get(pid, 0) + 1
                    events.append(stock_event(pid, f"SKU-{pid}", rand.randint(0, 99), versions[pid]))
                status, _ = await client.send_events(events)
                if status == 202:
                    acknowledged += len(events)
                else:
                    refused += 1
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

        producer = asyncio.create_task(produce())
        while not producer.done():
            await asyncio.wait([producer], timeout=SAMPLE_SECONDS)
            sample = {
                "t": round(time.monotonic() - started, 1),
                "rss": rss_bytes(relay.pid),
                "depth": queue_depth(db),
                "db": file_size(db),
                "wal": file_size(wal),
                "acknowledged": acknowledged,
            }
            samples.append(sample)
            print(
                f"t={sample['t']:>6.0f}s  rss {sample['rss'] / 2**20:6.1f} MiB  depth {sample['depth']:>6}"
                f"  db {sample['db'] / 2**20:6.1f} MiB  wal {sample['wal'] / 2**20:5.1f} MiB  events {acknowledged}",
                file=sys.stderr,
                flush=True,
            )
        await producer
    relay.terminate()
    await runner.cleanup()

    def mean_rss(lo: float, hi: float) -> float:
        window = [s["rss"] for s in samples if lo <= s["t"] < hi] or [samples[-1]["rss"]]
        return sum(window) / len(window)

    total = samples[-1]["t"]
    warm = mean_rss(60, 120) if total > 120 else mean_rss(0, total / 2)
    last = mean_rss(total - 60, total + 1)
    first_db = next((s for s in samples if s["t"] >= 60), samples[0])
    grown_events = samples[-1]["acknowledged"] - first_db["acknowledged"]
    return {
        "minutes": args.minutes,
        "events_acknowledged": acknowledged,
        "requests_refused": refused,
        "events_per_second": round(acknowledged / total, 1),
        "updates_delivered": delivered,
        "skus": args.skus,
        "channels": args.channels,
        "peak_rss_mib": round(max(s["rss"] for s in samples) / 2**20, 1),
        "rss_drift_last_vs_warm": round(last / warm, 3),
        "max_queue_depth": max(s["depth"] for s in samples),
        "queue_depth_bound": args.skus * args.channels,
        "max_wal_mib": round(max(s["wal"] for s in samples) / 2**20, 2),
        "final_db_mib": round(samples[-1]["db"] / 2**20, 2),
        "db_bytes_per_1000_events_after_warmup": round(
            (samples[-1]["db"] - first_db["db"]) / max(1, grown_events) * 1000
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=200.0, help="events per second (sent in batches of 20)")
    parser.add_argument("--skus", type=int, default=2000)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--delay", type=float, default=0.3, help="seconds each channel takes per request")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
