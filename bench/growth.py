"""Growth: the relay's cost as the shop grows, from 10k to 1M SKUs with 30 days of history (issue 20 §1).

    .venv/bin/python bench/growth.py [--sizes 10000,100000,1000000] [--history-rate 0.5] [--history-days 30]
                                     [--seconds 10] [--paced-rps 200] [--paced-seconds 130] [--window 1]

For each size, on a fresh state directory, the real relay (``stock-relay serve`` in its own process, one site,
one ``sandbox`` channel, default retention of 30 days):

1. **History.** ``--history-days`` of past stock changes at ``--history-rate`` events/s, written straight into the
   SQLite file while no relay runs, by the relay's own code (schema: ``migrate``; rows: ``record_batch``, the
   ingest write job, each minute's changes as one batch at that minute; then one "attempt" audit row per change
   as a successful delivery writes it, and every delivery settled). So the file holds what a relay that has run
   that long holds: superseded events, "received" and "attempt" audit rows, and retention has a month to prune
   from. The history's changes fall on the first ``min(sizes)`` SKUs (the catalogue's selling part; every size
   gets the same history, so that the catalogue's size is what varies); it is built once and copied.
2. **Fill.** The relay started and every SKU sent through its own ingest API, signed batches of 500 over 4
   connections (progress on stderr), then the channel's deliveries left to drain (each SKU now exists on the
   channel too).
3. **Start-up.** The relay stopped (SIGTERM) and started again: seconds from the process's start to its
   "listening" log line, and its RSS from /proc.
4. **Load, random SKUs** (a seeded draw over all N, each event a new version of its product): warm-up, then
   saturated at 1 event per request (``--connections``) and at 100 per request (``--batch-connections``): events/s
   and the relay's CPU µs per event (/proc); then paced at ``--paced-rps`` requests/s of 1 event for
   ``--paced-seconds``: p99 overall, and p99 of the requests sent within ``--window`` s of a housekeeping round vs
   of all others. The relay runs housekeeping at start and then every ``HOUSEKEEPING_SECONDS`` (60 s, a constant of
   relay/runtime.py that no config key or environment variable shortens), so the paced phase lasts long enough to
   hold two rounds. A round ends with ``PRAGMA wal_checkpoint(TRUNCATE)``, the only thing that shrinks the WAL
   file (outside a full disk), so the bench finds each round by watching the WAL's size drop (every 5 ms).
5. **Durability.** The relay SIGKILLed; the events stored after the fill must be exactly the events acknowledged.

Ratios are against the first size of the run (10k by default). Targets (issue 20): CPU per event at the largest
size ≤ 1.5x that at the first; p99 around housekeeping ≤ 2x the p99 of the other windows; start-up ≤ 1 s at 1M.
The last line of stdout is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import ServerProcess, database_path, percentile, start_relay, summary_ms
from ingest import Connection, PhaseResult, run_phase, signed_batch

from relay.cli.client import new_event_id, new_msg_id, stock_event
from relay.intake import protocol
from relay.intake.ingest import record_batch
from relay.storage import audit
from relay.storage.store import connect_reader, connect_writer, migrate

SITE, CHANNEL = "bench", "sandbox"
DAY = 86_400.0
FILL_BATCH, FILL_CONNECTIONS = 500, 4
LOAD_BATCH = 100  # events per request of the second saturated phase
CHANNEL_CONFIG = {
    "name": CHANNEL,
    "type": "sandbox",
    "latency_ms": 5,
    "batch_size": 500,  # the fill's million deliveries drain in minutes, not hours
    "rate": {"per_second": 1000, "burst": 1000},
}
TARGET_COST_RATIO, TARGET_HOUSEKEEPING_RATIO, TARGET_STARTUP_S = 1.5, 2.0, 1.0


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Versions:
    """One counter for every event the run sends: each is a product's newest version, so none is ever stale."""

    def __init__(self, start: int = 1) -> None:
        self.next = start

    def take(self) -> int:
        self.next += 1
        return self.next - 1


def sku_event(index: int, version: int, quantity: int, occurred: float | None = None) -> dict[str, Any]:
    """SKU-<index> is product index + 1, as the plugin would send it."""
    event = stock_event(index + 1, f"SKU-{index}", quantity, version, event_id=new_event_id())
    if occurred is not None:
        event["occurred_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(occurred))
    return event


# --- 1. history, written into the file while no relay runs --------------------------------------------------


def build_history(db: Path, skus: int, rate: float, days: float, versions: Versions) -> int:
    """``days`` of changes at ``rate``/s over SKU-0..skus-1, ending now; returns how many events were written."""
    draw = random.Random(30)
    conn = connect_writer(db)
    migrate(conn)
    conn.execute("PRAGMA synchronous=OFF")  # the bench's own bulk load: nothing here has to survive a crash
    end = time.time()
    minutes = int(days * 1440)
    owed, written, said = 0.0, 0, time.monotonic()
    conn.execute("BEGIN")
    for minute in range(minutes):
        at = end - (minutes - minute) * 60.0
        owed += rate * 60.0
        count, owed = int(owed), owed - int(owed)
        if count:
            raw = [sku_event(draw.randrange(skus), versions.take(), draw.randrange(100), at) for _ in range(count)]
            events, rejected = protocol.split_batch({"events": raw}, len(raw))
            assert not rejected, rejected
            record_batch(conn, SITE, [CHANNEL], new_msg_id(), events, [], at)
            audit.record(conn, [delivered(e, at + 0.05) for e in events])
            written += count
        if minute % 1440 == 1439:
            conn.execute("COMMIT")
            conn.execute("BEGIN")
            if time.monotonic() - said > 5:
                said = time.monotonic()
                progress(f"  history: day {minute // 1440 + 1} of {days:g}, {written:,} events")
    # Every change was delivered: the channel holds each SKU's newest quantity, as settle() leaves it.
    conn.execute(
        "UPDATE deliveries SET claimed_seq = want_seq, delivered_seq = want_seq, state = 'delivered',"
        " delivered_quantity = (SELECT stock_quantity FROM events WHERE seq = want_seq), claim_token = NULL,"
        " lease_until = NULL, attempts = 0, pending_since = NULL, next_attempt_at = updated_at"
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return written


def delivered(event: protocol.Event, at: float) -> audit.Entry:
    """The audit row a successful push of ``event`` writes (deliveries.settle, outcome "ok")."""
    return audit.entry(
        at, SITE, "attempt", channel=CHANNEL, sku=event.sku, event_id=event.id, version=event.version,
        quantity=event.stock_quantity, http_status=200, latency_ms=5.0, detail={"outcome": "ok", "attempt": 1},
    )  # fmt: skip


# --- 2. the fill, through the relay's own API ------------------------------------------------------------------


async def fill(relay: ServerProcess, secret: str, skus: int, versions: Versions) -> float:
    """Send every SKU once, in signed batches of FILL_BATCH; returns the seconds it took."""
    loop = asyncio.get_running_loop()
    starts = iter(range(0, skus, FILL_BATCH))
    done = 0
    begun = said = time.perf_counter()

    async def sender() -> None:
        nonlocal done, said
        conn = (await loop.create_connection(Connection, relay.host, relay.port))[1]
        for first in starts:
            events = [sku_event(i, versions.take(), i % 50) for i in range(first, min(first + FILL_BATCH, skus))]
            status, body = await conn.send(signed_batch(relay.host, relay.port, secret, events))
            if status != 202 or json.loads(body).get("accepted") != len(events):
                raise RuntimeError(f"fill: unexpected answer {status}: {body[:300]!r}")
            done += len(events)
            if time.perf_counter() - said > 10:
                said = time.perf_counter()
                rate = done / (said - begun)
                progress(f"  fill: {done:,} of {skus:,} SKUs, {rate:,.0f}/s, {(skus - done) / rate:,.0f} s to go")
        assert conn.transport is not None
        conn.transport.close()

    await asyncio.gather(*(sender() for _ in range(FILL_CONNECTIONS)))
    return time.perf_counter() - begun


def wait_delivered(db: Path, timeout: float = 3600.0) -> float:
    """Wait until the channel has no pending delivery (reading the file as the CLI does); returns the seconds."""
    begun = said = time.monotonic()
    while True:
        conn = connect_reader(db)
        try:
            pending = conn.execute(
                "SELECT COUNT(*) FROM deliveries WHERE site = ? AND channel = ? AND state = 'pending'", (SITE, CHANNEL)
            ).fetchone()[0]
        finally:
            conn.close()
        if pending == 0:
            return time.monotonic() - begun
        if time.monotonic() - begun > timeout:
            raise TimeoutError(f"{pending:,} deliveries still pending after {timeout:g} s")
        if time.monotonic() - said > 10:
            said = time.monotonic()
            progress(f"  deliveries draining: {pending:,} pending")
        time.sleep(0.5)


def max_seq(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
    finally:
        conn.close()


def file_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of a process, in MB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = round(int(value.split()[0]) / 1024, 1)
    return found


# --- 4. load with random SKUs ----------------------------------------------------------------------------------


class LoadMaker:
    """Signed requests of ``per_request`` events, each a random SKU's next version (``run_phase``'s maker)."""

    def __init__(self, relay: ServerProcess, secret: str, skus: int, per_request: int, versions: Versions) -> None:
        self.relay, self.secret, self.skus, self.per_request, self.versions = relay, secret, skus, per_request, versions
        self.draw = random.Random(skus * 1000 + per_request)

    def make(self) -> tuple[str, bytes]:
        events = [
            sku_event(self.draw.randrange(self.skus), self.versions.take(), self.draw.randrange(100))
            for _ in range(self.per_request)
        ]
        return events[0]["id"], signed_batch(self.relay.host, self.relay.port, self.secret, events)

    def batch(self, count: int) -> list[tuple[str, bytes]]:
        return [self.make() for _ in range(count)]


@dataclass
class Housekept:
    """A paced phase and the moments (perf_counter) the WAL shrank: the ends of housekeeping rounds."""

    phase: PhaseResult
    rounds: list[float] = field(default_factory=list)


async def watching_wal(db: Path, phase: Any) -> Housekept:
    """Run ``phase`` (a coroutine) while noting every drop in the WAL file's size."""
    wal = Path(f"{db}-wal")
    rounds: list[float] = []
    stop = asyncio.Event()

    def size() -> int:
        try:
            return wal.stat().st_size
        except FileNotFoundError:
            return 0

    async def watch() -> None:
        last = size()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = size()
            if now < last:
                rounds.append(time.perf_counter())
            last = now

    watcher = asyncio.create_task(watch())
    try:
        result = await phase
    finally:
        stop.set()
        await watcher
    return Housekept(result, rounds)


def split_by_rounds(kept: Housekept, window: float) -> tuple[list[float], list[float]]:
    """Latencies of requests sent within ``window`` s of a round's end, and of all others."""
    near, other = [], []
    for sent, latency in zip(kept.phase.sent_at, kept.phase.latencies, strict=True):
        (near if any(abs(sent - t) <= window for t in kept.rounds) else other).append(latency)
    return near, other


@dataclass
class Step:
    skus: int
    figures: dict[str, Any] = field(default_factory=dict)


def measure(size: int, workdir: Path, history: Path, versions: Versions, args: argparse.Namespace) -> Step:
    step = Step(size)
    figures = step.figures
    state = workdir / "state"
    state.mkdir(parents=True)
    db = database_path(workdir)
    shutil.copyfile(history, db)

    progress(f"{size:,} SKUs: fill")
    relay, secret = start_relay(workdir, [CHANNEL_CONFIG])
    try:
        figures["fill_seconds"] = round(asyncio.run(fill(relay, secret, size, versions)), 1)
        figures["drain_seconds"] = round(wait_delivered(db), 1)
        if relay.terminate() != 0:
            raise RuntimeError(f"the relay did not stop cleanly:\n{relay.log()[-2000:]}")
    finally:
        relay.kill()
    figures["fill_events_per_s"] = round(size / figures["fill_seconds"], 0)
    figures["database_mb"] = round(file_bytes(db) / 1e6, 1)
    base_seq = max_seq(db)

    progress(f"{size:,} SKUs: start-up and load")
    relay = ServerProcess(relay.argv, workdir / "restart.log")
    began = time.perf_counter()
    relay.start(timeout=600)
    figures["startup_s"] = round(time.perf_counter() - began, 3)
    figures["rss_after_start_mb"] = memory_mb(relay.pid)["VmRSS"]
    host, port, pid = relay.host, relay.port, relay.pid
    one = LoadMaker(relay, secret, size, 1, versions)
    many = LoadMaker(relay, secret, size, LOAD_BATCH, versions)
    try:
        warm = asyncio.run(run_phase(host, port, one.batch(1000), one, args.warmup, args.connections, pid))
        need = int(max(warm.rps, 300) * args.seconds * 2.5) + 1000
        single = asyncio.run(run_phase(host, port, one.batch(need), one, args.seconds, args.connections, pid))
        need = int(max(warm.rps, 300) * 4 * args.seconds * 2.5 / LOAD_BATCH) + 50
        batched = asyncio.run(run_phase(host, port, many.batch(need), many, args.seconds, args.batch_connections, pid))
        need = int(args.paced_rps * args.paced_seconds * 1.1) + 1000
        paced = asyncio.run(
            watching_wal(
                db,
                run_phase(host, port, one.batch(need), one, args.paced_seconds, args.connections, pid, args.paced_rps),
            )
        )
        memory = memory_mb(pid)
    finally:
        relay.kill()  # SIGKILL: a 202 must not depend on a clean shutdown
    phases = (warm, single, batched, paced.phase)
    acked = len(warm.acked_ids) + len(single.acked_ids) + LOAD_BATCH * len(batched.acked_ids)
    acked += len(paced.phase.acked_ids)
    conn = sqlite3.connect(db)
    try:
        stored, stale = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(outcome = 'stale'), 0) FROM events WHERE seq > ?", (base_seq,)
        ).fetchone()
    finally:
        conn.close()

    near, other = split_by_rounds(paced, args.window)
    paced_ms = summary_ms(paced.phase.latencies)
    figures.update(
        rss_end_mb=memory["VmRSS"],
        rss_peak_mb=memory["VmHWM"],
        events_per_s_1=round(single.rps, 0),
        cpu_us_per_event_1=round(single.server_cpu / max(1, len(single.acked_ids)) * 1e6, 1),
        events_per_s_100=round(batched.rps * LOAD_BATCH, 0),
        cpu_us_per_event_100=round(batched.server_cpu / max(1, LOAD_BATCH * len(batched.acked_ids)) * 1e6, 1),
        paced_rps_done=round(paced.phase.rps, 1),
        paced_p50_ms=paced_ms["p50_ms"],
        paced_p99_ms=paced_ms["p99_ms"],
        paced_max_ms=paced_ms["max_ms"],
        paced_late_sends=paced.phase.late_sends,
        housekeeping_rounds=len(paced.rounds),
        near_housekeeping_requests=len(near),
        near_housekeeping_p99_ms=round(percentile(near, 99) * 1000, 3),
        other_p99_ms=round(percentile(other, 99) * 1000, 3),
        acknowledged=acked,
        stored=stored,
        stale=stale,
        durable=stored == acked and stale == 0,
        errors=sum(p.errors for p in phases),
        signed_inline=sum(p.signed_inline for p in phases),
    )
    figures["housekeeping_ratio"] = round(figures["near_housekeeping_p99_ms"] / figures["other_p99_ms"], 2)
    return step


def ratio(value: float, base: float) -> float:
    return round(value / base, 2) if base else float("nan")


def report(steps: list[Step], args: argparse.Namespace, history_events: int) -> dict[str, Any]:
    base = steps[0].figures
    print(
        f"history: {args.history_days:g} days at {args.history_rate:g} events/s ({history_events:,} events,"
        f" {args.history_rate * DAY:,.0f} a day) over the first {steps[0].skus:,} SKUs; load: random SKUs;"
        f" {os.cpu_count()} CPUs, load average at the start {args.loadavg}"
    )
    print(
        f"{'SKUs':>9} {'db MB':>7} {'fill ev/s':>9} {'start s':>7} {'RSS MB':>7} {'ev/s @1':>7} {'us/ev @1':>8}"
        f" {'ev/s @100':>9} {'us/ev @100':>10} {'p99 ms':>7} {'hk p99':>7} {'other p99':>9} {'rounds':>6}"
    )
    for step in steps:
        f = step.figures
        print(
            f"{step.skus:>9,} {f['database_mb']:>7.0f} {f['fill_events_per_s']:>9,.0f} {f['startup_s']:>7.2f}"
            f" {f['rss_after_start_mb']:>7.0f} {f['events_per_s_1']:>7,.0f} {f['cpu_us_per_event_1']:>8.0f}"
            f" {f['events_per_s_100']:>9,.0f} {f['cpu_us_per_event_100']:>10.0f} {f['paced_p99_ms']:>7.1f}"
            f" {f['near_housekeeping_p99_ms']:>7.1f} {f['other_p99_ms']:>9.1f} {f['housekeeping_rounds']:>6}"
        )
    print(f"p99 at {args.paced_rps:g} req/s of 1 event; hk: requests sent within {args.window:g} s of a round's end")
    met = {}
    for step in steps:
        f = step.figures
        f["cost_ratio_1"] = ratio(f["cpu_us_per_event_1"], base["cpu_us_per_event_1"])
        f["cost_ratio_100"] = ratio(f["cpu_us_per_event_100"], base["cpu_us_per_event_100"])
        f["events_per_s_ratio_100"] = ratio(f["events_per_s_100"], base["events_per_s_100"])
        f["paced_p99_ratio"] = ratio(f["paced_p99_ms"], base["paced_p99_ms"])
        f["startup_ratio"] = ratio(f["startup_s"], base["startup_s"])
        print(
            f"{step.skus:>9,} vs {steps[0].skus:,}: CPU per event x{f['cost_ratio_1']:.2f} at 1, x{f['cost_ratio_100']:.2f}"
            f" at 100 per request (target <= {TARGET_COST_RATIO:g}); events/s at 100 x{f['events_per_s_ratio_100']:.2f};"
            f" paced p99 x{f['paced_p99_ratio']:.2f}; start-up {f['startup_s']:.2f} s x{f['startup_ratio']:.2f}"
            f" (target <= {TARGET_STARTUP_S:g} s at 1M)"
        )
        print(
            f"{'':>9}    housekeeping: p99 {f['near_housekeeping_p99_ms']:.1f} ms near {f['housekeeping_rounds']}"
            f" round(s) vs {f['other_p99_ms']:.1f} ms otherwise = x{f['housekeeping_ratio']:.2f}"
            f" (target <= {TARGET_HOUSEKEEPING_RATIO:g}); durable: {f['stored']:,} of {f['acknowledged']:,} stored,"
            f" {f['stale']} stale -> {'OK' if f['durable'] else 'FAILED'}"
        )
        if f["errors"] or f["signed_inline"]:
            print(f"{'':>9}    non-202 answers: {f['errors']}; requests signed inline: {f['signed_inline']}")
        met[str(step.skus)] = {
            "cost_1": f["cost_ratio_1"] <= TARGET_COST_RATIO,
            "cost_100": f["cost_ratio_100"] <= TARGET_COST_RATIO,
            "housekeeping": f["housekeeping_rounds"] > 0 and f["housekeeping_ratio"] <= TARGET_HOUSEKEEPING_RATIO,
            "startup": f["startup_s"] <= TARGET_STARTUP_S,
        }
    return {
        "bench": "growth",
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "loadavg_at_start": args.loadavg,
        "history_days": args.history_days,
        "history_events_per_s": args.history_rate,
        "history_events": history_events,
        "history_skus": steps[0].skus,
        "connections": args.connections,
        "batch_connections": args.batch_connections,
        "seconds": args.seconds,
        "paced_rps": args.paced_rps,
        "paced_seconds": args.paced_seconds,
        "window_s": args.window,
        "targets": {
            "cost_ratio": TARGET_COST_RATIO,
            "housekeeping_ratio": TARGET_HOUSEKEEPING_RATIO,
            "startup_s_at_1m": TARGET_STARTUP_S,
        },
        "steps": [{"skus": step.skus, **step.figures} for step in steps],
        "met": met,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="SKU counts, comma-separated; the first is the base"
    )
    parser.add_argument("--history-rate", type=float, default=0.5, help="events/s the history stands for (default 0.5)")
    parser.add_argument("--history-days", type=float, default=30.0, help="days of history (default 30, the retention)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each saturated phase (default 10)")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=32, help="for 1 event per request and the paced phase")
    parser.add_argument("--batch-connections", type=int, default=8, help="for 100 events per request (default 8)")
    parser.add_argument("--paced-rps", type=float, default=200.0, help="paced phase's requests/s (default 200)")
    parser.add_argument("--paced-seconds", type=float, default=130.0, help="long enough for 2 housekeeping rounds")
    parser.add_argument("--window", type=float, default=1.0, help="seconds either side of a round's end (default 1)")
    args = parser.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",")]
    args.loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])

    with tempfile.TemporaryDirectory(prefix="bench-growth-") as tmp:
        root = Path(tmp)
        history = root / "history.sqlite3"
        versions = Versions()
        progress(f"history: {args.history_days:g} days at {args.history_rate:g} events/s over {min(sizes):,} SKUs")
        began = time.monotonic()
        history_events = build_history(history, min(sizes), args.history_rate, args.history_days, versions)
        progress(
            f"  {history_events:,} events in {time.monotonic() - began:.0f} s, {history.stat().st_size / 1e6:.0f} MB"
        )
        steps = []
        for number, size in zip(itertools.count(), sizes):
            workdir = root / f"step{number}"
            steps.append(measure(size, workdir, history, versions, args))
            progress(f"  done: {json.dumps({'skus': size, **steps[-1].figures})}")  # kept if a later step fails
            shutil.rmtree(workdir)
        figures = report(steps, args, history_events)
    print(json.dumps(figures))
    ok = all(step.figures["durable"] and not step.figures["errors"] for step in steps)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
