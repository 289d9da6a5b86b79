"""Takeover: two relays on PostgreSQL, the one holding a webhook channel's lease SIGKILLed mid-run; how long the
channel goes without deliveries, and what that does to propagation (issue 19 item 5).

    .venv/bin/python bench/takeover.py [--lease-seconds 15,60] [--rate 50] [--before 20] [--after 20]
                                       [--store-url [URL]]

For each ``dispatch.lease_seconds`` given: two ``stock-relay serve`` processes share one fresh schema (each with its
own state_dir and port), one site with one ``webhook`` channel served by a receiver in this process, which checks
each delivery's Standard Webhooks signature and notes when each event first arrives (the moment its request is
answered 200 is one step of this process's event loop later). A shop posts ``--rate`` stock changes per second,
each a new product (so nothing coalesces and every event is delivered by itself), each a signed single-event batch
posted to the relays round-robin; a refused connection or a non-202 is resent, with the same webhook-id, to the
other relay, as the plugin does.

After ``--before`` seconds the relay named by the channel's ``worker_leases`` row (holder = host:pid:random) is
SIGKILLed. The other takes the lease over once it lapses (within lease_seconds) and delivers again; the shop keeps
posting (to the survivor) for ``--after`` seconds more, then the bench waits until every acknowledged event has
arrived. Reported, from post to arrival:

- **before**: events delivered before the kill (the steady state with two relays);
- **during**: events posted before the takeover and delivered after the kill (in flight at the kill, or posted
  while nobody worked the channel);
- **after**: events posted after the takeover;
- **takeover**: from the kill to the first delivery after it (which only the survivor can make).

The PostgreSQL server is a cluster of the bench's own with fsync on unless ``--store-url`` is given (bench/_pg.py).
The last line of stdout is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from _common import ServerProcess, summary_ms
from _pg import OwnCluster, create_schema, drop_schema, schema_url, secret_file, setting, start_pg_relays
from aiohttp import web

from relay import signing
from relay.cli.client import SignedClient, new_msg_id, stock_event
from relay.errors import SignatureError

CHANNEL = "hook"


@dataclass
class Receiver:
    """The channel's endpoint: verifies each delivery and notes when each event first arrived."""

    secret: str
    arrived: dict[str, float] = field(default_factory=dict)  # event id -> perf_counter at its first arrival
    requests: int = 0
    bad_signatures: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.perf_counter()
        try:
            signing.verify([self.secret], request.headers, body, time.time())
        except SignatureError:
            self.bad_signatures += 1
            return web.json_response({"error": "bad signature"}, status=401)
        self.requests += 1
        for update in json.loads(body).get("updates", []):
            self.arrived.setdefault(update["event_id"], now)
        return web.json_response({"ok": True})

    def first_after(self, moment: float) -> float | None:
        later = [t for t in self.arrived.values() if t >= moment]
        return min(later) if later else None


@dataclass
class Posted:
    at: float  # perf_counter when the shop first sent it
    relay: int  # the relay it was first sent to


@dataclass
class Shop:
    """Posts a new single-event batch every 1/rate s, round-robin over the relays not known to be down (as a load
    balancer does), each resent at once to the other relay until a 202."""

    clients: list[SignedClient]
    posted: dict[str, Posted] = field(default_factory=dict)  # acknowledged events only
    down: set[int] = field(default_factory=set)  # refused a connection: the balancer stops sending to it
    resends: int = 0
    producing: bool = True
    counter: int = 0

    def pick(self, n: int) -> int:
        up = [i for i in range(len(self.clients)) if i not in self.down] or list(range(len(self.clients)))
        return up[n % len(up)]

    async def post(self, event: dict[str, Any], n: int, at: float) -> None:
        msg_id = new_msg_id()
        first = target = self.pick(n)
        for attempt in range(1, 10_000):
            try:
                status, _ = await self.clients[target].send_events([event], msg_id=msg_id)
                if status == 202:
                    self.posted[event["id"]] = Posted(at, first)
                    return
            except aiohttp.ClientConnectionError:
                self.down.add(target)
            except TimeoutError:
                pass
            self.resends += 1
            target = (target + 1) % len(self.clients)
            if attempt % len(self.clients) == 0:  # every relay tried: wait a little before the next round
                await asyncio.sleep(0.01)
        raise RuntimeError(f"no relay accepted event {event['id']}")

    async def produce(self, rate: float) -> None:
        tasks: set[asyncio.Task[None]] = set()
        began = time.perf_counter()
        while self.producing:
            self.counter += 1
            n = self.counter
            event = stock_event(n, f"SKU-{n}", n % 100, 1)
            task = asyncio.create_task(self.post(event, n, time.perf_counter()))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await asyncio.sleep(max(0.0, began + n / rate - time.perf_counter()))  # paced, not drifting
        await asyncio.gather(*tasks)


def lease_holder(url: str) -> tuple[str, int] | None:
    """The channel's lease: (holder, token), or None before a relay took it."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT holder, token FROM worker_leases WHERE site = 'bench' AND worker = %s", (CHANNEL,)
        ).fetchone()
    return (str(row[0]), int(row[1])) if row else None


async def wait_for_holder(url: str, relays: list[ServerProcess], deadline: float) -> ServerProcess:
    """The relay whose pid the lease's holder names, once one holds it; the deadline only bounds a failure."""
    while time.monotonic() < deadline:
        found = await asyncio.to_thread(lease_holder, url)
        if found:
            pid = int(found[0].rsplit(":", 2)[1])
            for relay in relays:
                if relay.pid == pid:
                    return relay
        await asyncio.sleep(0.1)
    raise TimeoutError("no relay took the channel's lease")


async def wait_until(condition: Any, deadline: float) -> bool:
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def phases(shop: Shop, receiver: Receiver, killed_at: float, takeover_at: float) -> dict[str, list[float]]:
    """Each delivered event's propagation, by phase (see the module's docstring)."""
    out: dict[str, list[float]] = {"before": [], "during": [], "after": []}
    for event_id, posted in shop.posted.items():
        arrived = receiver.arrived.get(event_id)
        if arrived is None:
            continue
        phase = "before" if arrived < killed_at else "during" if posted.at < takeover_at else "after"
        out[phase].append(arrived - posted.at)
    return out


async def one_run(lease_seconds: float, args: argparse.Namespace, base_url: str, workdir: Path) -> dict[str, Any]:
    schema = create_schema(base_url, "bench_takeover")
    url = schema_url(base_url, schema)
    hook_secret, hook_file = secret_file(workdir / "hook.secret")
    receiver = Receiver(hook_secret)
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    channel = {
        "name": CHANNEL,
        "type": "webhook",
        "url": f"http://127.0.0.1:{runner.addresses[0][1]}/hook",
        "secret": f"file:{hook_file}",
        "batch_size": 50,
        "rate": {"per_second": 1000, "burst": 1000},  # the relay's pace, not a rate budget, is measured
    }
    relays: list[ServerProcess] = []
    try:
        relays, site_secret = await asyncio.to_thread(
            start_pg_relays, workdir, 2, url, [channel], dispatch={"lease_seconds": lease_seconds}
        )
        return await exercise(relays, site_secret, receiver, url, lease_seconds, args)
    finally:
        for relay in relays:
            relay.kill()
        await runner.cleanup()
        drop_schema(base_url, schema)


async def exercise(
    relays: list[ServerProcess],
    site_secret: str,
    receiver: Receiver,
    url: str,
    lease_seconds: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        shop = Shop([SignedClient(r.url, "bench", site_secret, session) for r in relays])
        producing = asyncio.create_task(shop.produce(args.rate))
        holder = await wait_for_holder(url, relays, time.monotonic() + 120)
        await asyncio.sleep(args.before)
        victim = relays.index(holder)
        holder.kill()
        killed_at = time.perf_counter()
        print(f"  lease {lease_seconds:g} s: killed relay {victim} (pid {holder.pid})", file=sys.stderr)
        took_over = await wait_until(
            lambda: receiver.first_after(killed_at) is not None, time.monotonic() + 2 * lease_seconds + 60
        )
        takeover_at = receiver.first_after(killed_at) or float("nan")
        await asyncio.sleep(args.after)
        shop.producing = False
        await producing
        delivered = await wait_until(
            lambda: all(e in receiver.arrived for e in shop.posted), time.monotonic() + 2 * lease_seconds + 120
        )
    survivor_holds = (await asyncio.to_thread(lease_holder, url) or ("", 0))[0].rsplit(":", 2)[1] == str(
        relays[1 - victim].pid
    )
    by_phase = phases(shop, receiver, killed_at, takeover_at)
    before_same = [  # the steady state, split by whether the post went to the relay working the channel
        receiver.arrived[e] - p.at
        for e, p in shop.posted.items()
        if e in receiver.arrived and receiver.arrived[e] < killed_at and p.relay == victim
    ]
    before_other = [
        receiver.arrived[e] - p.at
        for e, p in shop.posted.items()
        if e in receiver.arrived and receiver.arrived[e] < killed_at and p.relay != victim
    ]
    return {
        "lease_seconds": lease_seconds,
        "takeover_s": round(takeover_at - killed_at, 3) if took_over else None,
        "takeover_over_lease": round((takeover_at - killed_at) / lease_seconds, 3) if took_over else None,
        "events_acknowledged": len(shop.posted),
        "events_not_delivered": sum(1 for e in shop.posted if e not in receiver.arrived),
        "all_delivered": delivered,
        "survivor_holds_lease": survivor_holds,
        "resends_by_shop": shop.resends,
        "bad_signatures": receiver.bad_signatures,
        "channel_requests": receiver.requests,
        **{name: {"events": len(values), **summary_ms(values)} for name, values in by_phase.items()},
        "before_posted_to_holder": summary_ms(before_same),
        "before_posted_to_other": summary_ms(before_other),
    }


def print_run(f: dict[str, Any]) -> None:
    print(
        f"lease_seconds {f['lease_seconds']:g}: takeover {f['takeover_s']} s after the SIGKILL"
        f" ({f['takeover_over_lease']} x lease_seconds); {f['events_acknowledged']} events acknowledged,"
        f" {f['events_not_delivered']} not delivered; shop resends {f['resends_by_shop']}"
    )
    for name in ("before", "during", "after"):
        p = f[name]
        print(
            f"  {name:<7} {p['events']:>5} events: p50 {p['p50_ms']:9.1f} ms  p99 {p['p99_ms']:9.1f} ms"
            f"  max {p['max_ms']:9.1f} ms"
        )
    same, other = f["before_posted_to_holder"], f["before_posted_to_other"]
    print(
        f"  before, posted to the lease holder: p50 {same['p50_ms']:.1f} ms p99 {same['p99_ms']:.1f} ms;"
        f" to the other relay: p50 {other['p50_ms']:.1f} ms p99 {other['p99_ms']:.1f} ms"
    )


async def run_all(args: argparse.Namespace, base_url: str, tmp: Path) -> list[dict[str, Any]]:
    out = []
    for lease in args.lease_seconds:
        workdir = tmp / f"lease-{lease:g}"
        workdir.mkdir()
        out.append(await one_run(lease, args, base_url, workdir))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lease-seconds", default="15,60", help="dispatch.lease_seconds, one run each (15,60)")
    parser.add_argument("--rate", type=float, default=50.0, help="stock changes posted per second (default 50)")
    parser.add_argument("--before", type=float, default=20.0, help="seconds of steady state before the kill")
    parser.add_argument("--after", type=float, default=20.0, help="seconds of posting after the takeover")
    parser.add_argument(
        "--store-url",
        nargs="?",
        const=os.environ.get("STOCK_RELAY_TEST_PG", ""),
        default="",
        help="a PostgreSQL cluster to use (bare: $STOCK_RELAY_TEST_PG) instead of one of the bench's own, fsync on",
    )
    parser.add_argument("--keep", action="store_true", help="keep the relays' folders (logs) and print where")
    args = parser.parse_args()
    args.lease_seconds = [float(v) for v in args.lease_seconds.split(",")]
    if not args.store_url and "--store-url" in sys.argv:
        parser.error("--store-url without a URL needs STOCK_RELAY_TEST_PG")
    tmp = Path(tempfile.mkdtemp(prefix="bench-takeover-"))
    cluster = None if args.store_url else OwnCluster().start()
    base_url = cluster.url if cluster else args.store_url
    try:
        store = f"{'own cluster' if cluster else '--store-url'}, fsync={setting(base_url, 'fsync')}"
        load_before = os.getloadavg()
        runs = asyncio.run(run_all(args, base_url, tmp))
        load_after = os.getloadavg()
    finally:
        if cluster:
            cluster.stop()
        if args.keep:
            print(f"relays' folders kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"2 relays on PostgreSQL ({store}), one webhook channel, {args.rate:g} changes/s round-robin;"
        f" {os.cpu_count()} CPUs, load average {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    for run in runs:
        print_run(run)
    ok = all(r["all_delivered"] and r["takeover_s"] is not None and r["bad_signatures"] == 0 for r in runs)
    figures = {
        "bench": "takeover",
        "date": time.strftime("%Y-%m-%d"),
        "store": store,
        "cpus": os.cpu_count(),
        "load_before": round(load_before[0], 2),
        "load_after": round(load_after[0], 2),
        "rate": args.rate,
        "runs": runs,
        "ok": ok,
    }
    print(json.dumps(figures))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
