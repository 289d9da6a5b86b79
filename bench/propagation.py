"""Propagation: one event fanned out to 30 webhook channels on loopback, from the 202 to the last arrival.

The relay runs in its own process with 30 ``webhook`` channels that all point at receivers in this
process, so arrival times and the 202 are read on one clock. Each round posts one event (a new
version of one SKU) and waits until all 30 channels have received it. The baseline is one signed
POST straight from this process to the same receiver: what a single hop costs here.

    .venv/bin/python bench/propagation.py [--rounds 200] [--channels 30]

Target (issue 2): p99 from the 202 to the last channel receiving the event ≤ 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from _common import start_relay, summary_ms
from aiohttp import web

from relay import signing
from relay.client import SignedClient, new_msg_id, stock_event


async def run(rounds: int, channels: int, workdir: Path) -> dict[str, object]:
    hook_secret = signing.new_secret()
    (workdir / "hook.secret").write_text(hook_secret)
    arrivals: dict[str, dict[str, float]] = {}
    waiters: dict[str, asyncio.Event] = {}

    async def receive(request: web.Request) -> web.Response:
        now = time.perf_counter()
        doc = json.loads(await request.read())
        for update in doc.get("updates", []):
            seen = arrivals.setdefault(update["event_id"], {})
            seen.setdefault(request.match_info["channel"], now)
            if len(seen) == channels and update["event_id"] in waiters:
                waiters[update["event_id"]].set()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook/{channel}", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]

    hooks = [
        {
            "name": f"hook-{i:02d}",
            "type": "webhook",
            "url": f"http://127.0.0.1:{port}/hook/{i}",
            "secret": f"file:{workdir / 'hook.secret'}",
            "rate": {"per_second": 1000, "burst": 1000},
        }
        for i in range(channels)
    ]
    relay, secret = start_relay(workdir, hooks)
    latencies: list[float] = []
    direct: list[float] = []
    timeouts = 0
    try:
        async with aiohttp.ClientSession() as session:
            client = SignedClient(relay.url, "bench", secret, session)
            for n in range(1, rounds + 1):
                event = stock_event(1 + n % 20, f"SKU-{n % 20}", n % 50, n)
                waiters[event["id"]] = asyncio.Event()
                status, _ = await client.send_events([event])
                acked = time.perf_counter()
                assert status == 202, status
                try:
                    await asyncio.wait_for(waiters[event["id"]].wait(), 5.0)
                    latencies.append(max(0.0, max(arrivals[event["id"]].values()) - acked))
                except TimeoutError:
                    timeouts += 1
                # Baseline: the same receiver, one signed POST straight from here.
                body = json.dumps({"updates": []}).encode()
                headers = signing.signed_headers(hook_secret, new_msg_id(), int(time.time()), body)
                started = time.perf_counter()
                async with session.post(f"http://127.0.0.1:{port}/hook/0", data=body, headers=headers) as response:
                    await response.read()
                direct.append(time.perf_counter() - started)
                await asyncio.sleep(0.01)
    finally:
        relay.terminate()
        await runner.cleanup()
    fan = summary_ms(latencies)
    hop = summary_ms(direct)
    return {
        "bench": "propagation",
        "channels": channels,
        "rounds": rounds,
        "timeouts": timeouts,
        "p50_ms": fan["p50_ms"],
        "p99_ms": fan["p99_ms"],
        "max_ms": fan["max_ms"],
        "direct_post_p50_ms": hop["p50_ms"],
        "direct_post_p99_ms": hop["p99_ms"],
        "p99_vs_direct_post_p99": round(fan["p99_ms"] / hop["p99_ms"], 2) if hop["p99_ms"] else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--channels", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(run(args.rounds, args.channels, Path(tmp)))
    print(
        f"202 → last of {args.channels} channels: p50 {figures['p50_ms']} ms   p99 {figures['p99_ms']} ms   max {figures['max_ms']} ms"
    )
    print(
        f"one direct signed POST:        p50 {figures['direct_post_p50_ms']} ms   p99 {figures['direct_post_p99_ms']} ms"
    )
    print(f"fan-out p99 / direct POST p99: {figures['p99_vs_direct_post_p99']}   (target: fan-out p99 <= 100 ms)")
    print(f"rounds that timed out (5 s): {figures['timeouts']}")
    print(json.dumps(figures))
    return 0 if figures["timeouts"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
