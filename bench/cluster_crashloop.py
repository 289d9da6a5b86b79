"""Cluster crash loop: three relays on one PostgreSQL store, SIGKILLed at random moments while a shop posts stock
changes; then check nothing was lost, every channel converged, and no channel was ever worked by two relays at once.

Three relays share one store (a fresh schema in the cluster of ``--store-url``, dropped at the end), each with its
own state_dir and port. A producer posts signed ``stock.batch`` requests for ``--skus`` products the way the plugin
does (a batch is kept and resent with the same webhook-id until it gets a 202), each request to a random relay that
is up, as a load balancer would (a refused connection or a 503: another relay). Meanwhile a random relay is
SIGKILLed ``--kills`` times at random moments and restarted on the same port and state_dir. Two webhook channels
are served by a receiver in this process, which outlives every kill. Per channel it records:

- the last quantity it accepted per SKU;
- how many requests were in flight at once. A channel is worked by one relay at a time (the worker lease,
  relay/delivery/leases.py) whose pushes are sequential, so two at once is a double-active worker;
- when each request arrived, to check the channel's rate budget: in every window, requests <= burst + rate x
  window + 1. The +1 is exact, not a tolerance for jitter: a relay sends its next request only after the answer to
  the previous one, so the first request of a window may have been sent up to one request earlier than it arrived.

Afterwards one relay is stopped cleanly (``--no-clean-stop``: killed too), one killed, and the last left running
until every channel shows the shop's final quantities (or ``--converge-seconds`` pass). A clean stop gives its leases
back at once and the relay that takes over has a full rate budget of its own, so a window spanning that handover can
hold up to a burst more than the bound: such windows are also counted apart. ``timeline.json`` in the workdir lists
each relay's starts, kills and stops and which process sent each channel call. Then: every event that got a 202
must be in the store's events table, and every channel must show the shop's final quantity for every SKU. Prints
progress on stderr and ends with one JSON line on stdout; the exit code is 1 when an acknowledged event was lost, a
SKU diverged, a channel had two requests in flight at once or its rate budget was exceeded.

    python bench/cluster_crashloop.py                      # on $STOCK_RELAY_TEST_PG: 3,000 SKUs, 40 kills
    python bench/cluster_crashloop.py --skus 300 --kills 6 --store-url postgresql:///postgres?host=/run/postgresql
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import yaml
from _common import ROOT
from _pg import create_schema, drop_schema, schema_url
from aiohttp import web

from relay import signing  # noqa: E402
from relay.cli.client import SignedClient, new_msg_id, stock_event  # noqa: E402
from relay.errors import SignatureError  # noqa: E402

CHANNELS = ("alpha", "beta")
RELAYS = 3
STORE_VARIABLE = "BENCH_CLUSTER_STORE_URL"  # what each relay's store: reference names


# -- the receiver: both channels' webhook endpoint -----------------------------------------------------------------


@dataclass
class ChannelWatch:
    """What one channel's endpoint saw."""

    shown: dict[str, int] = field(default_factory=dict)  # SKU -> the last quantity accepted
    arrivals: list[float] = field(default_factory=list)  # monotonic time each request arrived
    senders: list[int] = field(default_factory=list)  # the pid that sent each request (for the timeline)
    in_flight: int = 0
    max_in_flight: int = 0
    overlaps: int = 0  # requests that arrived while another one for the channel was in flight


class Receiver:
    """Verifies signatures, keeps the last quantity per SKU, and watches concurrency and arrival times per channel.

    Each request is answered after ``latency`` seconds, as a marketplace would: without it a request is handled in
    one step of this process's event loop and two relays pushing at once could never be seen overlapping."""

    def __init__(self, secret: str, latency: float) -> None:
        self.secret = secret
        self.latency = latency
        self.channels = {c: ChannelWatch() for c in CHANNELS}
        self.bad_signatures = 0
        self.pids_by_port: dict[int, int] = {}  # a relay keeps its connections: look each one up once
        self.candidates: Callable[[], list[int]] = list  # the relay pids that may be sending

    async def handle(self, request: web.Request) -> web.Response:
        watch = self.channels[request.match_info["channel"]]
        watch.arrivals.append(time.monotonic())
        watch.senders.append(self.sender(request))
        watch.overlaps += watch.in_flight > 0
        watch.in_flight += 1
        watch.max_in_flight = max(watch.max_in_flight, watch.in_flight)
        try:
            return await self._answer(watch, request)
        finally:
            watch.in_flight -= 1

    def sender(self, request: web.Request) -> int:
        """The pid of the process on the other end of the request's connection (0 when not found)."""
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if not peer:
            return 0
        if peer[1] not in self.pids_by_port:
            self.pids_by_port[peer[1]] = socket_owner(peer[1], self.candidates)
        return self.pids_by_port[peer[1]]

    async def _answer(self, watch: ChannelWatch, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            signing.verify([self.secret], {k.lower(): v for k, v in request.headers.items()}, body, time.time())
        except SignatureError:
            self.bad_signatures += 1
            return web.json_response({"error": "bad signature"}, status=401)
        await asyncio.sleep(self.latency)
        for update in json.loads(body)["updates"]:
            watch.shown[update["sku"]] = update["quantity"]
        return web.json_response({"ok": True})


def socket_owner(port: int, pids: Callable[[], list[int]]) -> int:
    """Which of ``pids`` holds the local TCP socket on ``port`` of 127.0.0.1 (Linux /proc), 0 if none."""
    wanted = f"0100007F:{port:04X}"
    inode = next(
        (line.split()[9] for line in Path("/proc/net/tcp").read_text().splitlines()[1:] if line.split()[1] == wanted),
        None,
    )
    for pid in pids():
        try:
            if any(os.readlink(fd) == f"socket:[{inode}]" for fd in Path(f"/proc/{pid}/fd").iterdir()):
                return pid
        except OSError:  # it exited meanwhile
            continue
    return 0


@dataclass
class BudgetCheck:
    """One channel's arrivals against its rate bound."""

    breaking: list[tuple[float, float]]  # for each request that ended a window over the bound: the worst window
    peak: float  # the largest (count - rate x window) of any window; the bound is burst + 1


def budget_check(arrivals: list[float], rate: float, burst: float) -> BudgetCheck:
    """Every window of requests against burst + rate x window + 1.

    With f(k) = k - rate x t_k, the window from request i to j breaks the bound when f(j) - f(i) > burst, so one pass
    with the running minimum of f checks every window ending at each request."""
    breaking: list[tuple[float, float]] = []
    peak, lowest, since = 0.0, float("inf"), 0.0
    for k, arrived in enumerate(sorted(arrivals)):
        f = k - rate * arrived
        if f < lowest:
            lowest, since = f, arrived
        peak = max(peak, f - lowest + 1)
        if f - lowest > burst:
            breaking.append((since, arrived))
    return BudgetCheck(breaking, round(peak, 2))


def across(windows: list[tuple[float, float]], moments: list[float]) -> int:
    """How many of ``windows`` contain one of ``moments``."""
    return sum(1 for start, end in windows if any(start <= m <= end for m in moments))


async def serve_receiver(receiver: Receiver) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/{channel}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


# -- the store: a schema of its own in the cluster ------------------------------------------------------------------


def read_store(url: str) -> tuple[set[str], int]:
    """The event ids in the store, and how many times a channel's worker changed hands (each takeover raises the
    lease's token by one, from 1)."""
    with psycopg.connect(url) as conn:
        stored = {row[0] for row in conn.execute("SELECT event_id FROM events")}
        row = conn.execute("SELECT COALESCE(SUM(token - 1), 0) FROM worker_leases WHERE worker NOT LIKE '@%'")
        takeovers = int(row.fetchone()[0])  # type: ignore[index]
    return stored, takeovers


# -- the relays -----------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(workdir: Path, index: int, port: int, receiver_url: str, args: argparse.Namespace) -> Path:
    """Relay ``index``'s YAML: its own state_dir and port, the shared store, site and channels."""
    channel = {
        "type": "webhook",
        "secret": f"file:{workdir / 'hook.secret'}",
        "batch_size": args.batch_size,
        "rate": {"per_second": args.rate, "burst": args.burst},
    }
    doc: dict[str, Any] = {
        "state_dir": str(workdir / f"relay-{index}" / "state"),
        "listen": {"host": "127.0.0.1", "port": port},
        "store": f"env:{STORE_VARIABLE}",
        "dispatch": {
            "lease_seconds": args.lease_seconds,
            "backoff_base_seconds": 0.05,
            "backoff_max_seconds": 0.5,
            "idle_poll_seconds": 0.1,
        },
        "sites": {
            "bench": {
                "secret": f"file:{workdir / 'site.secret'}",
                "max_requests_per_second": 0,
                "channels": [dict(channel, name=name, url=f"{receiver_url}/{name}") for name in CHANNELS],
            }
        },
    }
    path = workdir / f"relay-{index}" / "relay.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(doc))
    return path


class Relay:
    """One relay subprocess, restarted on the same port and state_dir; each start logs to its own file."""

    def __init__(self, index: int, config: Path, port: int, store_url: str) -> None:
        self.index = index
        self.config = config
        self.port = port
        self.env = {**os.environ, STORE_VARIABLE: store_url}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.history: list[tuple[float, str, int]] = []  # (monotonic time, what, pid): for the timeline
        self.up = False  # listening, as far as this process knows: what the load balancer sends to

    async def start(self, timeout: float = 120.0) -> None:
        self.starts += 1
        log_path = self.config.parent / f"relay-{self.starts}.log"
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "relay", "serve", "-c", str(self.config)],
                stdout=log,
                stderr=log,
                cwd=ROOT,
                env=self.env,
            )
        self.history.append((time.monotonic(), "spawned", self.proc.pid))
        deadline = time.monotonic() + timeout  # bounds a failure only: the relay says when it listens
        while time.monotonic() < deadline:
            if "listening on" in log_path.read_text(errors="replace"):
                self.history.append((time.monotonic(), "listening", self.proc.pid))
                self.up = True
                return
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"relay {self.index} exited with {self.proc.returncode}:\n{log_path.read_text()[-3000:]}"
                )
            await asyncio.sleep(0.02)
        raise TimeoutError(f"relay {self.index} did not start:\n{log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no chance to flush, give its leases back or answer what is in flight."""
        assert self.proc is not None
        self.up = False
        self.history.append((time.monotonic(), "killed", self.proc.pid))
        self.proc.kill()
        self.proc.wait(30)

    def kill_if_running(self) -> None:
        """After a failed run: leave no relay behind."""
        if self.proc is not None and self.proc.poll() is None:
            self.kill()

    async def terminate(self) -> int:
        """SIGTERM, waited for without blocking the receiver (a clean stop finishes the push in hand)."""
        assert self.proc is not None
        self.up = False
        self.history.append((time.monotonic(), "terminated", self.proc.pid))
        self.proc.terminate()
        return await asyncio.to_thread(self.proc.wait, 120)


async def wait_for(condition: Callable[[], bool], deadline: float) -> bool:
    """Poll ``condition`` until it holds or ``deadline`` (monotonic) passes; the deadline only bounds a failure."""
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


# -- the shop: a producer behind a load balancer --------------------------------------------------------------------


class Shop:
    """The shop's truth and its plugin's outbox rule, posting through a load balancer over the relays that are up."""

    def __init__(self, relays: list[Relay], clients: list[SignedClient], rand: random.Random) -> None:
        self.relays = relays
        self.clients = clients
        self.rand = rand
        self.truth: dict[str, int] = {}
        self.versions: dict[int, int] = {}
        self.acknowledged: set[str] = set()
        self.resends = 0
        self.other_answers = 0  # neither 202 nor 503: a bug worth looking at
        self.producing = True

    def change(self, pid: int) -> dict[str, Any]:
        self.versions[pid] = self.versions.get(pid, 0) + 1
        quantity = self.rand.randint(0, 500)
        self.truth[f"SKU-{pid}"] = quantity
        return stock_event(pid, f"SKU-{pid}", quantity, self.versions[pid])

    def pick(self, avoid: int | None) -> int | None:
        """A random relay that is up, another than ``avoid`` when there is one."""
        up = [r.index for r in self.relays if r.up]
        others = [i for i in up if i != avoid]
        return self.rand.choice(others or up) if up else None

    async def post_until_accepted(self, events: list[dict[str, Any]]) -> None:
        msg_id = new_msg_id()
        failed: int | None = None
        while True:  # the plugin's rule: keep the batch, resend it with the same webhook-id until a 2xx
            index = self.pick(failed)
            if index is not None:
                try:
                    status, _ = await self.clients[index].send_events(events, msg_id=msg_id)
                    if status == 202:
                        self.acknowledged.update(e["id"] for e in events)
                        return
                    self.other_answers += status != 503
                except (TimeoutError, aiohttp.ClientError):
                    pass
                failed = index
                self.resends += 1
            await asyncio.sleep(0.02)

    async def produce(self, pids: list[int], skus: int) -> None:
        for i in range(0, len(pids), 500):  # every SKU once, so each has a final quantity
            await self.post_until_accepted([self.change(pid) for pid in pids[i : i + 500]])
        while self.producing:
            batch = {self.rand.randint(1, skus) for _ in range(self.rand.randint(1, 100))}
            await self.post_until_accepted([self.change(pid) for pid in sorted(batch)])


# -- the run --------------------------------------------------------------------------------------------------------


def progress(text: str, final: bool = False) -> None:
    tty = sys.stderr.isatty()
    print(f"\r{text}" if tty else text, end="\n" if final or not tty else "", file=sys.stderr, flush=True)


async def kill_loop(relays: list[Relay], shop: Shop, args: argparse.Namespace, rand: random.Random) -> None:
    """``--kills`` times: wait a random while, SIGKILL a random relay that is up and restart it in the background.
    The last relay up is never killed, so the shop always has somewhere to post (two may be down at once)."""
    restarts: list[asyncio.Task[None]] = []
    for kill in range(1, args.kills + 1):
        await asyncio.sleep(rand.uniform(0.0, args.max_uptime))
        await wait_for(lambda: sum(r.up for r in relays) >= 2, time.monotonic() + 300)
        victim = rand.choice([r for r in relays if r.up])
        victim.kill()
        restarts.append(asyncio.create_task(victim.start()))
        if sys.stderr.isatty() or kill % 10 == 0 or kill == args.kills:
            progress(
                f"kills {kill}/{args.kills}  acknowledged {len(shop.acknowledged)}  resends {shop.resends}",
                final=kill == args.kills,
            )
    await asyncio.gather(*restarts)


def write_timeline(relays: list[Relay], receiver: Receiver, started: float) -> None:
    """timeline.json in the workdir: each relay's starts, kills and stops, and each channel's requests with the pid
    that sent them, in seconds from the start, to see where a count that is not zero came from."""
    doc = {
        "relays": [[[round(t - started, 4), what, pid] for t, what, pid in r.history] for r in relays],
        "channels": {
            c: [[round(t - started, 4), pid] for t, pid in zip(w.arrivals, w.senders, strict=True)]
            for c, w in receiver.channels.items()
        },
    }
    (relays[0].config.parent.parent / "timeline.json").write_text(json.dumps(doc))


def converged(receiver: Receiver, truth: dict[str, int]) -> bool:
    return all(receiver.channels[c].shown == truth for c in CHANNELS)


async def run(args: argparse.Namespace, workdir: Path, store_url: str) -> dict[str, Any]:
    site_secret, hook_secret = signing.new_secret(), signing.new_secret()
    for name, secret in (("site.secret", site_secret), ("hook.secret", hook_secret)):
        (workdir / name).write_text(secret)
        (workdir / name).chmod(0o600)
    receiver = Receiver(hook_secret, args.channel_latency_ms / 1000)
    runner, receiver_url = await serve_receiver(receiver)
    relays = []
    for index in range(RELAYS):
        port = free_port()
        relays.append(Relay(index, write_config(workdir, index, port, receiver_url, args), port, store_url))
    receiver.candidates = lambda: [r.proc.pid for r in relays if r.proc is not None and r.proc.poll() is None]
    try:
        return await exercise(args, relays, receiver, site_secret, store_url)
    finally:
        for relay in relays:
            relay.kill_if_running()
        await runner.cleanup()


async def exercise(
    args: argparse.Namespace, relays: list[Relay], receiver: Receiver, site_secret: str, store_url: str
) -> dict[str, Any]:
    rand = random.Random(args.seed)
    started = time.monotonic()
    await relays[0].start()  # the first one migrates the fresh schema alone
    await asyncio.gather(*(r.start() for r in relays[1:]))

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        clients = [SignedClient(f"http://127.0.0.1:{r.port}", "bench", site_secret, session) for r in relays]
        shop = Shop(relays, clients, rand)
        pids = list(range(1, args.skus + 1))
        producers = [
            asyncio.create_task(shop.produce(pids[p :: args.producers], args.skus)) for p in range(args.producers)
        ]
        await kill_loop(relays, shop, args, random.Random(args.seed + 1))  # its own: which relay dies is seeded
        shop.producing = False
        await asyncio.gather(*producers)
        produced = time.monotonic()

        # The end: one relay stops cleanly (its leases given back at once), one is killed (its leases lapse), and
        # the last works every channel until it shows the shop's final quantities.
        clean_stops = [await relays[1].terminate()] if args.clean_stop else []
        relays[2].kill()
        if not args.clean_stop:
            relays[1].kill()
        progress(f"converging {args.skus} SKUs on {len(CHANNELS)} channels on one relay…", final=True)
        await wait_for(lambda: converged(receiver, shop.truth), time.monotonic() + args.converge_seconds)
        converged_at = time.monotonic()
        clean_stops.append(await relays[0].terminate())

    write_timeline(relays, receiver, started)
    stored, takeovers = read_store(store_url)
    lost = shop.acknowledged - stored
    diverged = sum(1 for c in CHANNELS for sku, q in shop.truth.items() if receiver.channels[c].shown.get(sku) != q)
    budgets = [budget_check(receiver.channels[c].arrivals, args.rate, args.burst) for c in CHANNELS]
    breaking = [window for budget in budgets for window in budget.breaking]
    handovers = [t for r in relays for t, what, _ in r.history if what == "terminated"]
    return {
        "relays": RELAYS,
        "kills": args.kills,
        "skus": args.skus,
        "channels": len(CHANNELS),
        "events_acknowledged": len(shop.acknowledged),
        "acked_then_lost": len(lost),
        "diverged": diverged,
        "double_active_workers": sum(receiver.channels[c].overlaps for c in CHANNELS),
        "rate_budget_exceeded": len(breaking),
        # Of those, windows that span a clean stop: its leases go to another relay at once, whose budget is its own.
        "rate_budget_exceeded_across_clean_stop": across(breaking, handovers),
        "max_channel_concurrency": max(receiver.channels[c].max_in_flight for c in CHANNELS),
        "takeovers": takeovers,
        "channel_requests": sum(len(receiver.channels[c].arrivals) for c in CHANNELS),
        "max_window_excess": max(budget.peak for budget in budgets),  # count - rate x window; bound: burst + 1
        "rate_bound": {"per_second": args.rate, "burst": args.burst},
        "resends_by_producer": shop.resends,
        "unexpected_answers": shop.other_answers,
        "bad_signatures": receiver.bad_signatures,
        "clean_stop_exits": clean_stops,
        "relay_starts": sum(r.starts for r in relays),
        "seconds": round(time.monotonic() - started, 1),
        "produce_seconds": round(produced - started, 1),
        "converge_seconds": round(converged_at - produced, 1),
        "workdir": str(relays[0].config.parent.parent),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store-url", default=os.environ.get("STOCK_RELAY_TEST_PG", ""), help="a PostgreSQL URL")
    parser.add_argument("--skus", type=int, default=3000)
    parser.add_argument("--kills", type=int, default=40)
    parser.add_argument(
        "--max-uptime", type=float, default=4.0, help="seconds; each kill comes within this of the last"
    )
    parser.add_argument("--producers", type=int, default=2, help="shop requests in flight at once")
    parser.add_argument("--lease-seconds", type=float, default=3.0, help="dispatch.lease_seconds of every relay")
    parser.add_argument("--rate", type=float, default=5.0, help="each channel's rate.per_second")
    parser.add_argument("--burst", type=int, default=5, help="each channel's rate.burst")
    parser.add_argument("--batch-size", type=int, default=25, help="each channel's batch_size")
    parser.add_argument("--channel-latency-ms", type=float, default=10.0, help="how long the receiver takes to answer")
    parser.add_argument(
        "--no-clean-stop",
        dest="clean_stop",
        action="store_false",
        help="at the end, SIGKILL both relays that stop instead of stopping one with SIGTERM",
    )
    parser.add_argument("--converge-seconds", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not args.store_url:
        parser.error("no PostgreSQL: give --store-url or set STOCK_RELAY_TEST_PG")
    schema = create_schema(args.store_url, "cluster_crashloop")
    try:
        workdir = Path(tempfile.mkdtemp(prefix="cluster-crashloop-"))
        figures = asyncio.run(run(args, workdir, schema_url(args.store_url, schema)))
    finally:
        drop_schema(args.store_url, schema)
    print(json.dumps(figures))
    counts = ("acked_then_lost", "diverged", "double_active_workers", "rate_budget_exceeded")
    return 0 if all(figures[name] == 0 for name in counts) and figures["bad_signatures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
