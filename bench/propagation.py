"""Propagation: one event fanned out to 30 webhook channels on loopback, from the 202 to the last arrival.

    .venv/bin/python bench/propagation.py [--rounds 200] [--channels 30] [--gap-ms 10]

The relay (``stock-relay serve`` on a fresh SQLite file) runs in its own process with 30 ``webhook``
channels, all pointing at one aiohttp receiver app in *this* process (one path per channel), so the
202 and every arrival are read on the same clock (time.perf_counter). The receiver checks each
delivery's Standard Webhooks signature. Each round posts one signed single-event batch, notes the
moment the 202 is in hand, and waits until all 30 channels have received that event; rounds run
one after another with a small gap.

Baselines, measured in the same run against the same receiver:
- one signed POST straight from this process (a single hop on this machine), and
- 30 such POSTs at once (the floor for a 30-way fan-out on this machine, with no relay in between).

Target (issue 2): p99 from the 202 to the last of the 30 channels receiving the event ≤ 100 ms.
The last line of stdout is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from _common import start_relay, summary_ms
from aiohttp import web

from relay import signing
from relay.cli.client import SignedClient, new_msg_id, stock_event
from relay.errors import SignatureError


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    channels = args.channels
    hook_secret = signing.new_secret()
    secret_file = workdir / "hook.secret"
    secret_file.write_text(hook_secret)
    secret_file.chmod(0o600)
    arrivals: dict[str, dict[str, float]] = {}
    complete: dict[str, asyncio.Event] = {}
    bad_signatures = 0

    async def receive(request: web.Request) -> web.Response:
        nonlocal bad_signatures
        body = await request.read()
        now = time.perf_counter()
        try:
            signing.verify([hook_secret], request.headers, body, time.time())
        except SignatureError:
            bad_signatures += 1
            return web.json_response({"error": "bad signature"}, status=401)
        for update in json.loads(body).get("updates", []):
            seen = arrivals.setdefault(update["event_id"], {})
            seen.setdefault(request.match_info["channel"], now)
            if len(seen) == channels and update["event_id"] in complete:
                complete[update["event_id"]].set()
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
            "secret": f"file:{secret_file}",
            "batch_size": 50,
            "rate": {"per_second": 1000, "burst": 1000},
        }
        for i in range(channels)
    ]
    relay, secret = start_relay(workdir, hooks)

    fanout: list[float] = []
    direct: list[float] = []
    direct_fan: list[float] = []
    timeouts = 0

    async def direct_post(session: aiohttp.ClientSession, channel: int) -> float:
        body = json.dumps({"type": "stock.update", "updates": []}).encode()
        headers = signing.signed_headers(hook_secret, new_msg_id(), int(time.time()), body)
        headers["content-type"] = "application/json"
        started = time.perf_counter()
        async with session.post(f"http://127.0.0.1:{port}/hook/{channel}", data=body, headers=headers) as response:
            await response.read()
            assert response.status == 200, response.status
        return time.perf_counter() - started

    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            client = SignedClient(relay.url, "bench", secret, session)
            for n in range(-args.warmup, args.rounds):
                version = n + args.warmup + 1
                event = stock_event(1 + version % 20, f"SKU-{version % 20}", version % 50, version)
                complete[event["id"]] = asyncio.Event()
                status, answer = await client.send_events([event])
                acked = time.perf_counter()
                if status != 202 or answer.get("accepted") != 1:
                    raise RuntimeError(f"the relay answered {status}: {answer}")
                try:
                    await asyncio.wait_for(complete[event["id"]].wait(), args.timeout)
                    if n >= 0:
                        fanout.append(max(arrivals[event["id"]].values()) - acked)
                except TimeoutError:
                    if n >= 0:
                        timeouts += 1
                await asyncio.sleep(args.gap_ms / 1000)
                # Baselines, interleaved with the rounds so they see the same machine weather.
                one = await direct_post(session, 0)
                started = time.perf_counter()
                await asyncio.gather(*(direct_post(session, i) for i in range(channels)))
                many = time.perf_counter() - started
                if n >= 0:
                    direct.append(one)
                    direct_fan.append(many)
                await asyncio.sleep(args.gap_ms / 1000)
    finally:
        relay.terminate()
        await runner.cleanup()

    fan, hop, hop30 = summary_ms(fanout), summary_ms(direct), summary_ms(direct_fan)
    early = sum(1 for v in fanout if v < 0)  # an arrival before the 202 reached the client: possible, harmless
    return {
        "bench": "propagation",
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "channels": channels,
        "rounds": args.rounds,
        "timeouts": timeouts,
        "bad_signatures": bad_signatures,
        "p50_ms": fan["p50_ms"],
        "p99_ms": fan["p99_ms"],
        "max_ms": fan["max_ms"],
        "mean_ms": fan["mean_ms"],
        "arrived_before_202": early,
        "direct_post_p50_ms": hop["p50_ms"],
        "direct_post_p99_ms": hop["p99_ms"],
        "direct_fanout_p50_ms": hop30["p50_ms"],
        "direct_fanout_p99_ms": hop30["p99_ms"],
        "p99_over_direct_post_p99": round(fan["p99_ms"] / hop["p99_ms"], 2),
        "p99_over_direct_fanout_p99": round(fan["p99_ms"] / hop30["p99_ms"], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10, help="rounds run first and not counted (default 10)")
    parser.add_argument("--channels", type=int, default=30)
    parser.add_argument("--gap-ms", type=float, default=10.0, help="pause between steps of a round (default 10)")
    parser.add_argument("--timeout", type=float, default=5.0, help="a round not complete by then is a timeout")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-propagation-") as tmp:
        f = asyncio.run(run(args, Path(tmp)))
    n = args.channels
    print(f"{args.rounds} rounds, one event each, fanned out to {n} webhook channels on 127.0.0.1")
    print(
        f"relay, 202 -> last of {n} channels received:  p50 {f['p50_ms']:7.2f} ms   p99 {f['p99_ms']:7.2f} ms"
        f"   max {f['max_ms']:7.2f} ms   (target p99 <= 100 ms)"
    )
    print(
        f"baseline, one direct signed POST:          p50 {f['direct_post_p50_ms']:7.2f} ms"
        f"   p99 {f['direct_post_p99_ms']:7.2f} ms"
    )
    print(
        f"baseline, {n} direct signed POSTs at once:  p50 {f['direct_fanout_p50_ms']:7.2f} ms"
        f"   p99 {f['direct_fanout_p99_ms']:7.2f} ms"
    )
    print(f"  relay p99 / one direct POST p99:        {f['p99_over_direct_post_p99']}")
    print(f"  relay p99 / {n} direct POSTs p99:        {f['p99_over_direct_fanout_p99']}")
    print(f"timeouts ({args.timeout:g} s): {f['timeouts']}   bad signatures: {f['bad_signatures']}")
    print(json.dumps(f))
    return 0 if f["timeouts"] == 0 and f["bad_signatures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
