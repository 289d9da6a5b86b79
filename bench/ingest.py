"""Ingest: signed single-event batches over 32 connections, the real relay vs a bare aiohttp 202 handler.

    .venv/bin/python bench/ingest.py [--seconds 10] [--warmup 3] [--connections 32] [--paced-rps 500]
                                     [--skus 5000] [--random]

Both servers run in their own process; the load generator is this process. The bare handler reads
the body and answers 202. The relay (``stock-relay serve`` on a fresh SQLite file, one site with no
ingest rate limit and one ``sandbox`` channel, so every event also makes a delivery due and the
dispatcher works alongside) verifies the Standard Webhooks signature, validates the event, commits
it with its delivery, audit row and webhook-id in a group commit (WAL, synchronous=FULL) and only
then answers 202.

Every request is built and signed *before* its phase starts and is sent over a minimal HTTP/1.1
keep-alive client (raw asyncio, a few microseconds per request), so the client's own cost is as
small as it can be: on a 2-core machine the load generator competes with the server for CPU.

Phases, for each server: warm-up, then **saturated** (every connection sends its next request as
soon as the previous answer arrives: the requests/s ratio), then for the relay **paced** (the same
32 connections at a fixed total rate: latency without queueing behind a saturated client).
Afterwards the relay is SIGKILLed and the SQLite file is opened: the number of events in it must
equal the number of 202s, id for id.

SKUs: each event's SKU is one of ``--skus``, walked in order by default (SKU-0, SKU-1, ...: neighbouring keys,
the best case for SQLite's pages) or, with ``--random``, drawn at random (a seeded draw), as a large catalogue's
real traffic is: each event then touches pages all over the deliveries and index B-trees (issue 20 §6).

Targets (issue 2): relay ≥ 50 % of the bare handler's requests/s; every 202 durable; p99 ≤ 10 ms.
The last line of stdout is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import ServerProcess, cpu_seconds, database_path, start_relay, summary_ms

from relay import signing
from relay.cli.client import new_event_id, new_msg_id, stock_event

BARE = """
import asyncio, sys
from aiohttp import web

async def handle(request):
    await request.read()
    return web.json_response({"accepted": 1, "duplicates": 0, "stale": 0, "rejected": []}, status=202)

async def main():
    app = web.Application(client_max_size=1024 * 1024 + 1)
    app.router.add_post("/v1/sites/{site}/events", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print("bare 202 handler listening on http://127.0.0.1:%d" % runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


# --- requests, built and signed ahead of time --------------------------------------------------------


def signed_batch(host: str, port: int, secret: str, events: list[dict[str, Any]]) -> bytes:
    """A `stock.batch` of ``events`` for site "bench" as one raw, signed HTTP/1.1 request (a fresh webhook-id)."""
    body = json.dumps({"type": "stock.batch", "site": "bench", "events": events}, separators=(",", ":")).encode()
    headers = signing.signed_headers(secret, new_msg_id(), int(time.time()), body)
    head = (
        f"POST /v1/sites/bench/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"webhook-id: {headers['webhook-id']}\r\nwebhook-timestamp: {headers['webhook-timestamp']}\r\n"
        f"webhook-signature: {headers['webhook-signature']}\r\n\r\n"
    )
    return head.encode() + body


class RequestMaker:
    """Single-event `stock.batch` requests as raw HTTP/1.1 bytes, each with a fresh event and webhook-id."""

    def __init__(self, host: str, port: int, secret: str, skus: int = 5000, shuffled: bool = False) -> None:
        self.host, self.port, self.secret = host, port, secret
        self.counter = 0
        self.skus = skus
        self.draw = random.Random(20) if shuffled else None

    def make(self) -> tuple[str, bytes]:
        self.counter += 1
        n = self.counter
        number = self.draw.randrange(self.skus) if self.draw else n % self.skus
        # A new product per event, so no event is ever stale; SKUs repeat so deliveries coalesce.
        event = stock_event(n, f"SKU-{number}", n % 100, 1, event_id=new_event_id())
        return event["id"], signed_batch(self.host, self.port, self.secret, [event])

    def batch(self, count: int) -> list[tuple[str, bytes]]:
        return [self.make() for _ in range(count)]


# --- a minimal keep-alive HTTP/1.1 client ------------------------------------------------------------


class Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time; answers must carry Content-Length (aiohttp's do)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            waiter.set_exception(RuntimeError("answer without Content-Length"))
            return
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop > 0 else None])
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        answer = (int(head[9:12]), bytes(self.buffer[end + 4 : total]))
        del self.buffer[:total]
        waiter.set_result(answer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the server closed the connection"))

    async def send(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


@dataclass
class PhaseResult:
    seconds: float
    acked_ids: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)  # perf_counter() at each latency's send
    errors: int = 0
    signed_inline: int = 0  # requests signed during the phase because the pre-built pool ran out
    late_sends: int = 0  # paced: sends more than 1 ms behind their schedule
    server_cpu: float = 0.0  # CPU seconds the server process used during the phase

    @property
    def rps(self) -> float:
        return len(self.acked_ids) / self.seconds


async def run_phase(
    host: str,
    port: int,
    pool: list[tuple[str, bytes]],
    maker: RequestMaker,
    seconds: float,
    connections: int,
    server_pid: int,
    paced_rps: float = 0.0,
    expect_accepted: bool = False,
) -> PhaseResult:
    """Drive ``connections`` keep-alive connections for ``seconds``; saturated, or paced at ``paced_rps``."""
    loop = asyncio.get_running_loop()
    conns = [(await loop.create_connection(Connection, host, port))[1] for _ in range(connections)]
    result = PhaseResult(seconds)
    pool.reverse()  # pop() from the end hands them out in the order they were made
    interval = connections / paced_rps if paced_rps else 0.0
    cpu_before = cpu_seconds(server_pid)
    start = time.perf_counter()
    deadline = start + seconds
    clock = time.perf_counter

    async def drive(conn: Connection, index: int) -> None:
        next_send = start + index * interval / connections
        while True:
            if interval:
                delay = next_send - clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.001:
                    result.late_sends += 1
                next_send += interval
            if clock() >= deadline:
                return
            if pool:
                event_id, request = pool.pop()
            else:
                result.signed_inline += 1
                event_id, request = maker.make()
            sent = clock()
            status, body = await conn.send(request)
            done = clock()
            ok = status == 202 and (not expect_accepted or json.loads(body).get("accepted") == 1)
            if ok:
                result.latencies.append(done - sent)
                result.sent_at.append(sent)
                result.acked_ids.append(event_id)
            else:
                result.errors += 1
                if result.errors <= 3:
                    print(f"  unexpected answer {status}: {body[:200]!r}", file=sys.stderr)

    await asyncio.gather(*(drive(conn, i) for i, conn in enumerate(conns)))
    result.seconds = time.perf_counter() - start
    result.server_cpu = cpu_seconds(server_pid) - cpu_before
    for conn in conns:
        assert conn.transport is not None
        conn.transport.close()
    return result


def drive_server(
    server: ServerProcess, secret: str, args: argparse.Namespace, paced: bool
) -> tuple[PhaseResult, PhaseResult, PhaseResult | None]:
    """Warm-up, saturated and (optionally) paced phases against one server, each with a pre-signed pool."""
    maker = RequestMaker(server.host, server.port, secret, args.skus, args.random)
    expect = paced  # only the relay answers with a real outcome worth checking
    host, port, pid = server.host, server.port, server.pid

    warm = asyncio.run(
        run_phase(host, port, maker.batch(2000), maker, args.warmup, args.connections, pid, expect_accepted=expect)
    )
    # Enough pre-signed requests for the measured phase at well over the warm-up's rate.
    need = int(max(warm.rps, 500) * args.seconds * 2.5) + 1000
    saturated = asyncio.run(
        run_phase(host, port, maker.batch(need), maker, args.seconds, args.connections, pid, expect_accepted=expect)
    )
    paced_result = None
    if paced:
        need = int(args.paced_rps * args.seconds * 1.1) + 1000
        paced_result = asyncio.run(
            run_phase(host, port, maker.batch(need), maker, args.seconds, args.connections, pid, args.paced_rps, expect)
        )
    return warm, saturated, paced_result


def count_stored(db: Path, acked: list[str]) -> tuple[int, int, int, int]:
    """(events in the file, acknowledged ids missing from it, events with a delivery row, audit 'received' rows)."""
    with sqlite3.connect(db) as conn:
        stored = {row[0] for row in conn.execute("SELECT event_id FROM events")}
        deliveries = conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
        received = conn.execute("SELECT COUNT(*) FROM audit WHERE action = 'received'").fetchone()[0]
    conn.close()
    missing = len(set(acked) - stored)
    return len(stored), missing, deliveries, received


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measured phase (default 10)")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up before each server's phases (default 3)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--paced-rps", type=float, default=500.0, help="total rate of the paced phase (default 500)")
    parser.add_argument("--skus", type=int, default=5000, help="how many SKUs the events spread over (default 5000)")
    parser.add_argument("--random", action="store_true", help="draw each event's SKU at random (default: in order)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        workdir = Path(tmp)

        bare = ServerProcess([sys.executable, "-c", BARE], workdir / "bare.log").start()
        try:
            _, bare_sat, _ = drive_server(bare, signing.new_secret(), args, paced=False)
        finally:
            bare.kill()

        sandbox = {
            "name": "sandbox",
            "type": "sandbox",
            "latency_ms": 5,
            "batch_size": 100,
            "rate": {"per_second": 1000, "burst": 1000},
        }
        relay, secret = start_relay(workdir, [sandbox])
        try:
            warm, sat, paced = drive_server(relay, secret, args, paced=True)
        finally:
            relay.kill()  # SIGKILL: a 202 must not depend on a clean shutdown
        assert paced is not None
        acked = warm.acked_ids + sat.acked_ids + paced.acked_ids
        stored, missing, deliveries, received = count_stored(database_path(workdir), acked)

    ratio = sat.rps / bare_sat.rps
    sat_ms, paced_ms, bare_ms = summary_ms(sat.latencies), summary_ms(paced.latencies), summary_ms(bare_sat.latencies)
    bare_cpu_us = bare_sat.server_cpu / max(1, len(bare_sat.acked_ids)) * 1e6
    relay_cpu_us = sat.server_cpu / max(1, len(sat.acked_ids)) * 1e6
    durable = stored == len(acked) and missing == 0
    errors = bare_sat.errors + warm.errors + sat.errors + paced.errors
    inline = bare_sat.signed_inline + sat.signed_inline + paced.signed_inline

    order = "random" if args.random else "in order"
    print(f"{args.connections} connections, single-event signed batches, {args.seconds:g} s per phase,"
          f" {args.skus} SKUs {order}")  # fmt: skip
    print(
        f"bare aiohttp 202 handler, saturated: {bare_sat.rps:8.0f} req/s   p50 {bare_ms['p50_ms']:6.2f} ms"
        f"   p99 {bare_ms['p99_ms']:6.2f} ms   server CPU {bare_cpu_us:5.0f} us/req"
    )
    print(
        f"stock-relay ingest,       saturated: {sat.rps:8.0f} req/s   p50 {sat_ms['p50_ms']:6.2f} ms"
        f"   p99 {sat_ms['p99_ms']:6.2f} ms   server CPU {relay_cpu_us:5.0f} us/req"
    )
    print(f"  throughput ratio relay / bare: {ratio:.2f}   (target >= 0.50)")
    print(f"  server CPU per request relay / bare: {relay_cpu_us / max(bare_cpu_us, 1e-9):.1f}x")
    print(
        f"stock-relay ingest, paced {args.paced_rps:g} req/s: {paced.rps:6.0f} req/s done   p50 {paced_ms['p50_ms']:6.2f} ms"
        f"   p99 {paced_ms['p99_ms']:6.2f} ms   max {paced_ms['max_ms']:.2f} ms   (target p99 <= 10 ms)"
    )
    print(
        f"  saturated p99 {sat_ms['p99_ms']:.2f} ms is mostly queueing: {args.connections} requests are always in"
        f" flight, so the mean is {args.connections} / throughput = {args.connections / sat.rps * 1000:.1f} ms"
    )
    print(
        f"durability (relay SIGKILLed, then the SQLite file read): {len(acked)} events got 202, {stored} in the"
        f" database, {missing} missing -> {'OK' if durable else 'FAILED'}"
    )
    print(f"  {received} 'received' audit rows, {deliveries} delivery rows (one per channel x SKU, coalesced)")
    if errors or inline:
        print(f"non-202 answers: {errors}; requests signed inline (pool ran out): {inline}")

    figures = {
        "bench": "ingest",
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "connections": args.connections,
        "seconds": args.seconds,
        "skus": args.skus,
        "sku_order": "random" if args.random else "sequential",
        "bare_rps": round(bare_sat.rps, 1),
        "bare_p50_ms": bare_ms["p50_ms"],
        "bare_p99_ms": bare_ms["p99_ms"],
        "relay_rps": round(sat.rps, 1),
        "ratio": round(ratio, 3),
        "relay_p50_ms": sat_ms["p50_ms"],
        "relay_p99_ms": sat_ms["p99_ms"],
        "bare_server_cpu_us_per_req": round(bare_cpu_us, 1),
        "relay_server_cpu_us_per_req": round(relay_cpu_us, 1),
        "paced_rps": args.paced_rps,
        "paced_p50_ms": paced_ms["p50_ms"],
        "paced_p99_ms": paced_ms["p99_ms"],
        "paced_max_ms": paced_ms["max_ms"],
        "paced_late_sends": paced.late_sends,
        "acknowledged": len(acked),
        "stored": stored,
        "missing": missing,
        "durable": durable,
        "errors": errors,
        "signed_inline": inline,
    }
    print(json.dumps(figures))
    return 0 if durable and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
