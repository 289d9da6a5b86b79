"""Database bytes per stock event, and what retention gives back: the sizing figures of docs/operations.md.

    .venv/bin/python bench/db_size.py [--events 20000] [--products 2000] [--channels 1 (0: none)] [--batch 100]

The real relay in this process (its store, ingest over real HTTP on 127.0.0.1, its workers against
``sandbox`` channels with no latency), on a throwaway state directory and a simulated clock. The shop
sends ``--events`` changes over ``--products`` SKUs in signed batches of ``--batch``; every batch is
published before the next (each change reaches each channel once, nothing coalesced: the most history per
event). Measured: the file's pages in use (page_count - freelist_count, WAL checkpointed) after a first
batch (the schema) and after the fill, divided by the events; then, after ``retention_days`` have passed and
one housekeeping round, how much of it is free pages, and whether a second, equal fill grows the file.

The last line of stdout is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from relay import signing  # noqa: E402
from relay.cli.client import SignedClient, stock_event  # noqa: E402
from relay.config import ChannelConfig, Config, DispatchConfig, RateLimit, SiteConfig  # noqa: E402
from relay.http.server import make_app  # noqa: E402
from relay.runtime import Relay  # noqa: E402

DAY = 86_400.0


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def pages(relay: Relay) -> dict[str, int]:
    await relay.store.checkpoint()
    rows = await relay.store.read("SELECT * FROM pragma_page_count, pragma_freelist_count, pragma_page_size")
    count, free, size = rows[0]
    return {"pages": count, "free": free, "page_size": size}


async def fill(relay: Relay, client: SignedClient, clock: Clock, args: argparse.Namespace, version: int) -> int:
    """Send ``args.events`` changes, publishing each batch; returns the next version to use."""
    sent = 0
    while sent < args.events:
        batch = [
            stock_event(
                1 + (sent + i) % args.products, f"SKU-{(sent + i) % args.products:06d}", (sent + i) % 50, version
            )
            for i in range(args.batch)
        ]
        body, headers = client.encode(
            {"type": "stock.batch", "site": "main", "events": batch}, timestamp=int(clock.now)
        )
        async with client.session.post(f"{client.base_url}/v1/sites/main/events", data=body, headers=headers) as resp:
            assert resp.status == 202, await resp.text()
        sent += len(batch)
        if sent % args.products == 0:
            version += 1
        for worker in relay.workers.values():
            while await worker.drain_once():
                pass
    return version + 1


async def run(args: argparse.Namespace) -> dict[str, Any]:
    clock = Clock()
    channels = tuple(
        ChannelConfig(name=f"box{i}", type="sandbox", batch_size=500, rate=RateLimit(1e6, 1_000_000), latency_ms=0)
        for i in range(args.channels)
    )
    with tempfile.TemporaryDirectory() as tmp:
        site = SiteConfig(id="main", secrets=(signing.new_secret(),), channels=channels, max_requests_per_second=0)
        cfg = Config(state_dir=Path(tmp), sites=(site,), dispatch=DispatchConfig(idle_poll_seconds=0.05))
        relay = Relay(cfg, now=clock)
        await relay.start(run_workers=False)
        server = TestServer(make_app(cfg, relay), host="127.0.0.1")
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as session:
                client = SignedClient(str(server.make_url("")).rstrip("/"), "main", site.secrets[0], session)
                empty = await pages(relay)
                version = await fill(relay, client, clock, args, 1)
                full = await pages(relay)
                clock.now += (cfg.retention_days + 1) * DAY
                deleted = await relay.housekeep()
                pruned = await pages(relay)
                await fill(relay, client, clock, args, version)
                refilled = await pages(relay)
        finally:
            await server.close()
            await relay.stop()
    size = full["page_size"]
    used = (full["pages"] - full["free"] - empty["pages"] + empty["free"]) * size
    return {
        "events": args.events,
        "products": args.products,
        "channels": args.channels,
        "bytes_per_event": round(used / args.events, 1),
        "file_bytes_after_fill": full["pages"] * size,
        "rows_pruned": deleted,
        "free_bytes_after_prune": pruned["free"] * size,
        "file_bytes_after_second_fill": refilled["pages"] * size,
        "second_fill_growth": round(refilled["pages"] / full["pages"] - 1, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--products", type=int, default=2_000)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    print(
        f"{figures['bytes_per_event']:.0f} bytes per event ({args.channels} channel(s), {args.products} SKUs);"
        f" after retention: {figures['rows_pruned']:,} rows pruned, {figures['free_bytes_after_prune']:,} bytes free;"
        f" a second equal fill grew the file by {100 * figures['second_fill_growth']:.1f}%"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
