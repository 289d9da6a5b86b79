"""Ingest throughput: signed single-event batches over 32 connections, the real relay vs a bare 202 handler.

Both servers run in their own process (the load generator must not share their event loop). The
bare handler reads the body and answers 202; the relay verifies the signature, validates, commits
the event and its delivery with synchronous=FULL (group commit) and only then answers 202.
Afterwards every 202 is checked against the SQLite file: each acknowledged event must be there.

    .venv/bin/python bench/ingest.py [--seconds 10] [--connections 32]

Targets (issue 2): relay ≥ 50 % of the bare handler's requests/s, p99 ≤ 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from _common import percentile, start_relay, summary_ms

from relay import signing
from relay.client import new_event_id, new_msg_id, stock_event

BARE = """
import sys
from aiohttp import web
async def handle(request):
    await request.read()
    return web.json_response({"accepted": 1, "duplicates": 0, "stale": 0, "rejected": []}, status=202)
app = web.Application()
app.router.add_post("/v1/sites/{site}/events", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=lambda *a: print("listening on http://127.0.0.1:" + sys.argv[1], flush=True), access_log=None)
"""


async def load(
    url: str, secret: str, seconds: float, connections: int, paced_rps: float = 0.0
) -> tuple[int, list[float], list[str], int]:
    """Post single-event batches from ``connections`` concurrent loops; returns (202s, latencies, ids, errors).

    With ``paced_rps`` the loops send at that total rate (an open-ish load) instead of as fast as they can,
    so latency reflects the server's own work rather than queueing behind a saturated client.
    """
    latencies: list[float] = []
    acknowledged: list[str] = []
    errors = 0
    counter = 0
    start = time.perf_counter()
    deadline = start + seconds
    interval = connections / paced_rps if paced_rps else 0.0

    async def worker(session: aiohttp.ClientSession, offset: float) -> None:
        nonlocal errors, counter
        next_send = start + offset
        while time.perf_counter() < deadline:
            if interval:
                next_send += interval
                await asyncio.sleep(max(0.0, next_send - time.perf_counter()))
            counter += 1
            event = stock_event(counter, f"SKU-{counter % 5000}", counter % 100, counter, event_id=new_event_id())
            body = json.dumps(
                {"type": "stock.batch", "site": "bench", "events": [event]}, separators=(",", ":")
            ).encode()
            headers = signing.signed_headers(secret, new_msg_id(), int(time.time()), body)
            headers["content-type"] = "application/json"
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status == 202:
                    latencies.append(time.perf_counter() - started)
                    acknowledged.append(event["id"])
                else:
                    errors += 1

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session, i * interval / connections) for i in range(connections)))
    return len(latencies), latencies, acknowledged, errors


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--paced-rps", type=float, default=500.0, help="rate of the latency phase (default 500/s)")
    args = parser.parse_args()

    port = free_port()
    bare = subprocess.Popen([sys.executable, "-c", BARE, str(port)], stdout=subprocess.PIPE, text=True)
    assert bare.stdout is not None
    bare.stdout.readline()
    bare_url = f"http://127.0.0.1:{port}/v1/sites/bench/events"
    secret_for_bare = signing.new_secret()
    asyncio.run(load(bare_url, secret_for_bare, args.warmup, args.connections))
    bare_count, bare_lat, _, _ = asyncio.run(load(bare_url, secret_for_bare, args.seconds, args.connections))
    bare.terminate()
    bare.wait()

    with tempfile.TemporaryDirectory() as tmp:
        channels = [
            {
                "name": "sandbox",
                "type": "sandbox",
                "latency_ms": 0,
                "batch_size": 250,
                "rate": {"per_second": 1000, "burst": 1000},
            }
        ]
        relay, secret = start_relay(Path(tmp), channels)
        url = relay.url + "/v1/sites/bench/events"
        warm_count, _, warm_ids, _ = asyncio.run(load(url, secret, args.warmup, args.connections))
        count, latencies, ids, errors = asyncio.run(load(url, secret, args.seconds, args.connections))
        paced_count, paced_lat, paced_ids, paced_errors = asyncio.run(
            load(url, secret, args.seconds, args.connections, args.paced_rps)
        )
        relay.terminate()
        with sqlite3.connect(Path(tmp) / "state" / "relay.sqlite3") as conn:
            stored = {row[0] for row in conn.execute("SELECT event_id FROM events")}
    acknowledged = len(ids) + len(warm_ids) + len(paced_ids)
    missing = len(set(ids + warm_ids + paced_ids) - stored)
    paced_ms = summary_ms(paced_lat)

    bare_rps = bare_count / args.seconds
    relay_rps = count / args.seconds
    relay_ms = summary_ms(latencies)
    print(
        f"bare aiohttp 202 handler: {bare_rps:8.0f} req/s   p50 {percentile(bare_lat, 50) * 1000:.2f} ms   p99 {percentile(bare_lat, 99) * 1000:.2f} ms"
    )
    print(
        f"stock-relay ingest:       {relay_rps:8.0f} req/s   p50 {relay_ms['p50_ms']:.2f} ms   p99 {relay_ms['p99_ms']:.2f} ms   errors {errors}"
    )
    print(f"relay / bare throughput:  {relay_rps / bare_rps:.2f}   (target >= 0.50; saturated, 32 in flight)")
    print(
        f"at {args.paced_rps:.0f} req/s paced: p50 {paced_ms['p50_ms']:.2f} ms   p99 {paced_ms['p99_ms']:.2f} ms "
        f"(target <= 10 ms)   errors {paced_errors}"
    )
    print(f"durability: {acknowledged} events acknowledged, {missing} missing from the database (must be 0)")
    figures = {
        "bench": "ingest",
        "connections": args.connections,
        "seconds": args.seconds,
        "bare_rps": round(bare_rps, 1),
        "relay_rps": round(relay_rps, 1),
        "ratio": round(relay_rps / bare_rps, 3),
        "relay_p50_ms": relay_ms["p50_ms"],
        "relay_p99_ms": relay_ms["p99_ms"],
        "bare_p99_ms": round(percentile(bare_lat, 99) * 1000, 3),
        "paced_rps": args.paced_rps,
        "paced_p50_ms": paced_ms["p50_ms"],
        "paced_p99_ms": paced_ms["p99_ms"],
        "acknowledged": acknowledged,
        "missing": missing,
        "errors": errors + paced_errors,
    }
    print(json.dumps(figures))
    return 0 if missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
