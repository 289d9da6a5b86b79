"""Crash loop: SIGKILL the relay at random moments while a shop posts stock changes, then check nothing was lost.

A producer posts signed ``stock.batch`` requests for ``--skus`` products the way the plugin does (a batch is
kept and resent with the same webhook-id until it gets a 202). Meanwhile the relay is SIGKILLed ``--kills``
times at random moments and restarted on the same port and database. Two webhook channels are served by a
receiver in this process, which outlives every kill and remembers the last quantity it accepted per SKU.

Afterwards: every event that got a 202 must be in the database, and every channel must show the shop's final
quantity for every SKU. Prints progress on stderr and ends with one JSON line of figures on stdout; the exit
code is 1 when an event was lost or a SKU diverged.

    python bench/crashloop.py                  # 5,000 SKUs, 100 kills
    python bench/crashloop.py --skus 300 --kills 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from _common import ROOT, database_path  # noqa: F401 - ROOT puts the project on sys.path
from aiohttp import web

from relay import signing  # noqa: E402
from relay.cli.client import SignedClient, new_msg_id, stock_event  # noqa: E402
from relay.errors import SignatureError  # noqa: E402

CHANNELS = ("alpha", "beta")


class Receiver:
    """Both channels' webhook endpoint: verifies signatures, shows the last quantity per SKU, counts repeats."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.shown: dict[str, dict[str, int]] = {c: {} for c in CHANNELS}
        self.seen: Counter[tuple[str, str, str]] = Counter()  # (channel, sku, event_id) -> times received
        self.bad_signatures = 0

    async def handle(self, request: web.Request) -> web.Response:
        channel = request.match_info["channel"]
        body = await request.read()
        try:
            signing.verify([self.secret], {k.lower(): v for k, v in request.headers.items()}, body, time.time())
        except SignatureError:
            self.bad_signatures += 1
            return web.json_response({"error": "bad signature"}, status=401)
        for update in json.loads(body)["updates"]:
            self.shown[channel][update["sku"]] = update["quantity"]
            self.seen[(channel, update["sku"], update["event_id"])] += 1
        return web.json_response({"ok": True})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(workdir: Path, port: int, receiver_url: str, site_secret: str, hook_secret: str) -> Path:
    (workdir / "site.secret").write_text(site_secret)
    (workdir / "hook.secret").write_text(hook_secret)
    channel = {"type": "webhook", "secret": f"file:{workdir / 'hook.secret'}", "batch_size": 50}
    doc: dict[str, Any] = {
        "state_dir": str(workdir / "state"),
        "listen": {"host": "127.0.0.1", "port": port},
        "dispatch": {"backoff_base_seconds": 0.05, "backoff_max_seconds": 0.5, "idle_poll_seconds": 0.1},
        "sites": {
            "bench": {
                "secret": f"file:{workdir / 'site.secret'}",
                "max_requests_per_second": 0,
                "channels": [
                    dict(channel, name=name, url=f"{receiver_url}/{name}", rate={"per_second": 1000, "burst": 1000})
                    for name in CHANNELS
                ],
            }
        },
    }
    path = workdir / "relay.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


class Relay:
    """The relay subprocess, restarted on the same port; each start logs to its own file."""

    def __init__(self, config: Path, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        log_path = self.workdir / f"relay-{self.starts}.log"
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "relay", "serve", "-c", str(self.config)], stdout=log, stderr=log, cwd=ROOT
            )
        for _ in range(600):
            if "listening on" in log_path.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"the relay exited with {self.proc.returncode}:\n{log_path.read_text()[-3000:]}")
            await asyncio.sleep(0.02)
        raise TimeoutError(f"the relay did not start:\n{log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(60)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rand = random.Random(args.seed)
    site_secret, hook_secret = signing.new_secret(), signing.new_secret()
    receiver = Receiver(hook_secret)
    app = web.Application()
    app.router.add_post("/{channel}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver_url = f"http://127.0.0.1:{runner.addresses[0][1]}"

    workdir = Path(tempfile.mkdtemp(prefix="crashloop-"))
    port = free_port()
    relay = Relay(write_config(workdir, port, receiver_url, site_secret, hook_secret), workdir)
    await relay.start()
    truth: dict[str, int] = {}
    versions: dict[int, int] = {}
    acknowledged: set[str] = set()
    resends = 0
    producing = True
    started = time.monotonic()

    async def post_until_accepted(client: SignedClient, events: list[dict[str, Any]]) -> None:
        nonlocal resends
        msg_id = new_msg_id()
        while True:  # the plugin's rule: keep the batch, resend it with the same webhook-id until a 2xx
            try:
                status, _ = await client.send_events(events, msg_id=msg_id)
                if status == 202:
                    acknowledged.update(e["id"] for e in events)
                    return
            except (TimeoutError, aiohttp.ClientError):
                pass
            resends += 1
            await asyncio.sleep(0.02)

    def change(pid: int) -> dict[str, Any]:
        versions[pid] = versions.get(pid, 0) + 1
        quantity = rand.randint(0, 500)
        truth[f"SKU-{pid}"] = quantity
        return stock_event(pid, f"SKU-{pid}", quantity, versions[pid])

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = SignedClient(f"http://127.0.0.1:{port}", "bench", site_secret, session)

        async def produce() -> None:
            pids = list(range(1, args.skus + 1))
            for i in range(0, len(pids), 500):  # every SKU once, so each has a final quantity
                await post_until_accepted(client, [change(pid) for pid in pids[i : i + 500]])
            while producing:
                batch = {rand.randint(1, args.skus) for _ in range(rand.randint(1, 100))}
                await post_until_accepted(client, [change(pid) for pid in sorted(batch)])

        producer = asyncio.create_task(produce())
        for kill in range(1, args.kills + 1):
            await asyncio.sleep(rand.uniform(0.0, args.max_uptime))
            relay.kill()  # SIGKILL: no chance to flush, release leases or answer in-flight requests
            await relay.start()
            if sys.stderr.isatty() or kill % 10 == 0 or kill == args.kills:
                print(
                    f"\rkills {kill}/{args.kills}  acknowledged {len(acknowledged)}  resends {resends}",
                    end="" if sys.stderr.isatty() else "\n",
                    file=sys.stderr,
                    flush=True,
                )
        producing = False
        await producer
        print(f"\nconverging {args.skus} SKUs on {len(CHANNELS)} channels…", file=sys.stderr, flush=True)
        deadline = time.monotonic() + args.converge_seconds
        while time.monotonic() < deadline and any(receiver.shown[c] != truth for c in CHANNELS):
            await asyncio.sleep(0.2)
    clean_stop = relay.terminate()
    await runner.cleanup()

    with sqlite3.connect(database_path(workdir)) as conn:
        stored = {row[0] for row in conn.execute("SELECT event_id FROM events")}
    lost = acknowledged - stored
    diverged = {c: sum(1 for s, q in truth.items() if receiver.shown[c].get(s) != q) for c in CHANNELS}
    per_sku = Counter()
    for (channel, sku, _), times in receiver.seen.items():
        per_sku[(channel, sku)] += times - 1
    duplicates = [per_sku.get((c, s), 0) for c in CHANNELS for s in truth]
    return {
        "kills": args.kills,
        "skus": args.skus,
        "channels": len(CHANNELS),
        "events_acknowledged": len(acknowledged),
        "events_lost": len(lost),
        "skus_diverged": sum(diverged.values()),
        "duplicate_sends_per_sku": {
            "mean": round(sum(duplicates) / len(duplicates), 3),
            "max": max(duplicates),
            "skus_with_any": sum(1 for d in duplicates if d),
        },
        "resends_by_producer": resends,
        "bad_signatures": receiver.bad_signatures,
        "clean_stop_exit": clean_stop,
        "seconds": round(time.monotonic() - started, 1),
        "workdir": str(workdir),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skus", type=int, default=5000)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--max-uptime", type=float, default=1.0, help="seconds; each kill comes within this of a start")
    parser.add_argument("--converge-seconds", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    print(json.dumps(figures))
    ok = figures["events_lost"] == 0 and figures["skus_diverged"] == 0 and figures["bad_signatures"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
