"""Several relays on one PostgreSQL store, and PostgreSQL itself restarting under a relay (issue 19 items 2 and 4).

Real ``stock-relay serve`` subprocesses share one fresh schema (``pg_schema``) and one real receiver: they split the
ingest, one of them works the channel (worker_leases), a SIGKILLed holder is replaced once its lease lapses, a
SIGTERMed one hands its lease over at once, and the fencing token stops a holder that lost its lease from writing
(that one in-process, with two stores and a made-up clock). The last test gives a relay a cluster of its own and
stops the server under it: ingest answers 503, never 202, and the relay recovers by itself once the server is back.
Then: a NOTIFY at ingest's commit wakes the holder when the other relay took the event in; the store URL's password
shows nowhere; and the fencing token alone stops a settle whose claim token still matches.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import secrets
import shutil
import subprocess
import tempfile
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from relay.cli.client import SignedClient, new_event_id, new_msg_id, stock_event
from relay.delivery import deliveries, leases
from relay.errors import StorageError
from relay.intake import ingest, protocol
from relay.storage.location import Dsn
from relay.storage.pg_store import PgStore

from .conftest import CHANNEL_SECRET, SITE_SECRET, Receiver, Reply, StartRelay, eventually, make_config, webhook_channel
from .procs import RelayProcess, run_cli

SITE, CHANNEL, HOOK = "main", "hook", "/hook"
STORE = "PG_RELAYS_STORE"  # the variable every relay's store: names
ENV = {"PG_RELAYS_SITE_SECRET": SITE_SECRET, "PG_RELAYS_HOOK_SECRET": CHANNEL_SECRET}
LATENCY = 0.02  # the receiver's answer time: long enough that two senders at once would overlap in it


# --- a receiver that counts requests in flight --------------------------------------------------------------------


class CountingReceiver(Receiver):
    """The suite's receiver, answering after LATENCY, and remembering the most requests it ever had in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.most_in_flight = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(LATENCY)  # a marketplace's answer time, not a wait on state
            return await super().handle(request)
        finally:
            self.in_flight -= 1

    def shown(self) -> dict[str, int]:
        return self.quantities.get(HOOK, {})

    def skus_sent(self) -> list[str]:
        return [update["sku"] for got in self.for_path(HOOK) for update in got.doc["updates"]]


@pytest.fixture
async def hook() -> AsyncIterator[CountingReceiver]:
    fake = CountingReceiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", fake.handle)
    fake.server = TestServer(app, host="127.0.0.1")
    await fake.server.start_server()
    yield fake
    await fake.server.close()


# --- relays on the shared store -------------------------------------------------------------------------------------


def write_config(
    root: Path, hook_url: str, lease_seconds: float, idle_poll_seconds: float = 0.1, store: str = f"env:{STORE}"
) -> Path:
    """One relay's YAML: its own state_dir and port, the shared store (``store``, a reference), one webhook channel."""
    channel = {
        "name": CHANNEL,
        "type": "webhook",
        "url": hook_url,
        "secret": "env:PG_RELAYS_HOOK_SECRET",
        "batch_size": 1,
        "rate": {"per_second": 1000, "burst": 1000},
    }
    doc = {
        "state_dir": str(root / "state"),
        "store": store,
        "listen": {"host": "127.0.0.1", "port": 0},
        "shutdown_grace_seconds": 5,
        "dispatch": {
            "lease_seconds": lease_seconds,
            "backoff_base_seconds": 0.05,
            "backoff_max_seconds": 0.5,
            "idle_poll_seconds": idle_poll_seconds,
        },
        "sites": {SITE: {"secret": "env:PG_RELAYS_SITE_SECRET", "max_requests_per_second": 0, "channels": [channel]}},
    }
    root.mkdir(parents=True, exist_ok=True)
    path = root / "relay.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


async def start_relays(
    tmp_path: Path, dsn: Dsn, hook_url: str, lease_seconds: float, count: int = 2, idle_poll_seconds: float = 0.1
) -> list[RelayProcess]:
    """``count`` relay subprocesses on the store ``dsn``, started one after the other."""
    relays = []
    for n in range(count):
        root = tmp_path / f"relay{n}"
        config = write_config(root, hook_url, lease_seconds, idle_poll_seconds)
        relay = RelayProcess(config, {**ENV, STORE: dsn.url}, root / "relay.log")
        await asyncio.to_thread(relay.start)  # its blocking wait must not stop the receiver answering
        relays.append(relay)
    return relays


def pid_of(relay: RelayProcess) -> int:
    assert relay.proc is not None
    return relay.proc.pid


async def send(
    session: aiohttp.ClientSession, url: str, events: list[dict[str, Any]], msg_id: str | None = None
) -> tuple[int, Any]:
    """Post one signed stock.batch to the relay at ``url``."""
    return await SignedClient(url, SITE, SITE_SECRET, session).send_events(events, msg_id=msg_id)


async def send_accepted(session: aiohttp.ClientSession, url: str, events: list[dict[str, Any]]) -> Any:
    """Post a batch that must be acknowledged at once; returns the relay's answer."""
    status, body = await send(session, url, events)
    assert status == 202, (status, body)
    return body


# --- what the store says --------------------------------------------------------------------------------------------


def query(dsn: Dsn, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the store directly, the way an operator's psql would, outside every relay."""
    with psycopg.connect(dsn.url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


@dataclass(frozen=True)
class LeaseRow:
    holder: str  # host:pid:random
    token: int
    lease_until: float

    @property
    def pid(self) -> int:
        return int(self.holder.rsplit(":", 2)[1])


def lease_row(dsn: Dsn, worker: str = CHANNEL) -> LeaseRow | None:
    rows = query(
        dsn, "SELECT holder, token, lease_until FROM worker_leases WHERE site = %s AND worker = %s", (SITE, worker)
    )
    return LeaseRow(rows[0][0], int(rows[0][1]), float(rows[0][2])) if rows else None


def held_lease(dsn: Dsn) -> LeaseRow:
    row = lease_row(dsn)
    assert row is not None, "nobody has taken the channel's lease yet"
    return row


def stored_event_ids(dsn: Dsn) -> set[str]:
    return {row[0] for row in query(dsn, "SELECT event_id FROM events")}


def undelivered(dsn: Dsn) -> list[tuple[Any, ...]]:
    """The channel's rows that are not delivered yet, or still claimed."""
    return query(
        dsn,
        "SELECT sku, state, claim_token FROM deliveries WHERE channel = %s AND (state <> 'delivered' OR claim_token IS NOT NULL)",
        (CHANNEL,),
    )


def shows(hook: CountingReceiver, truth: dict[str, int]) -> bool:
    """The receiver shows every SKU's last quantity (an assertion naming the first few that differ)."""
    wrong = {sku: (hook.shown().get(sku), qty) for sku, qty in truth.items() if hook.shown().get(sku) != qty}
    assert not wrong, f"{len(wrong)} SKUs differ (shown, truth): {list(wrong.items())[:5]}"
    return True


def round_of_changes(rand: random.Random, skus: range, version: int, truth: dict[str, int]) -> list[dict[str, Any]]:
    """One change of each product in ``skus`` at ``version``; ``truth`` keeps what each SKU must end showing."""
    events = []
    for n in skus:
        truth[f"SKU-{n}"] = rand.randint(0, 40)
        events.append(stock_event(n, f"SKU-{n}", truth[f"SKU-{n}"], version))
    return events


# --- 1. two relays, one channel -------------------------------------------------------------------------------------


async def test_two_relays_split_ingest_and_one_works_the_channel(
    tmp_path: Path, pg_schema: Dsn, hook: CountingReceiver
) -> None:
    """Both relays acknowledge only what they committed, every change is delivered, one sender at a time, one holder,
    and the version gate holds across relays."""
    a, b = await start_relays(tmp_path, pg_schema, hook.url(HOOK), lease_seconds=10)
    rand, truth, acknowledged = random.Random(19), {}, set()
    async with aiohttp.ClientSession() as session:
        for version in range(1, 21):  # each round half to each relay, at once, the halves swapping relays each round
            first, second = (a, b) if version % 2 else (b, a)
            halves = [
                round_of_changes(rand, range(1, 6), version, truth),
                round_of_changes(rand, range(6, 11), version, truth),
            ]
            await asyncio.gather(
                send_accepted(session, first.url, halves[0]), send_accepted(session, second.url, halves[1])
            )
            acknowledged |= {event["id"] for half in halves for event in half}
        newer = stock_event(500, "SKU-V", 7, 2)
        assert (await send_accepted(session, a.url, [newer]))["accepted"] == 1
        older = await send_accepted(session, b.url, [stock_event(500, "SKU-V", 3, 1)])
        assert (older["accepted"], older["stale"]) == (0, 1), older
        truth["SKU-V"] = 7
        await eventually(lambda: shows(hook, truth), what="the receiver to show every SKU's last quantity")
        await eventually(lambda: not undelivered(pg_schema), what="every delivery to be recorded")
    assert acknowledged | {newer["id"]} <= stored_event_ids(pg_schema)
    assert hook.most_in_flight == 1, "both relays were sending to the channel at once"
    row = held_lease(pg_schema)
    assert row.pid in (pid_of(a), pid_of(b)), row
    assert row.token == 1, "the lease changed hands while both relays ran"
    assert hook.bad_signatures == 0
    assert a.terminate() == 0 and b.terminate() == 0


# --- 2. takeover after SIGKILL --------------------------------------------------------------------------------------


async def test_a_killed_holder_is_replaced_and_its_claim_sent_again(
    tmp_path: Path, pg_schema: Dsn, hook: CountingReceiver
) -> None:
    """SIGKILL the relay working the channel mid-push: the other takes the lease with a higher token, sends what the
    dead one had in flight again, and delivers what it is sent afterwards."""
    # lease_seconds 6: a push is cut off after half of it, and this one must stay in flight until the kill
    relays = await start_relays(tmp_path, pg_schema, hook.url(HOOK), lease_seconds=6)
    gate = asyncio.Event()
    hook.on(HOOK, Reply(release=gate))  # the holder's first push stays in flight until after the kill
    async with aiohttp.ClientSession() as session:
        await send_accepted(session, relays[0].url, [stock_event(1, "SKU-1", 5, 1)])
        await eventually(lambda: hook.skus_sent() == ["SKU-1"], what="the holder's push of SKU-1")
        before = held_lease(pg_schema)
        holder, survivor = relays if before.pid == pid_of(relays[0]) else relays[::-1]
        assert before.pid == pid_of(holder), before
        holder.kill()
        gate.set()
        await eventually(lambda: held_lease(pg_schema).pid == pid_of(survivor), what="the survivor to take the lease")
        assert held_lease(pg_schema).token > before.token
        truth = {"SKU-1": 5}
        await send_accepted(session, survivor.url, round_of_changes(random.Random(2), range(2, 12), 1, truth))
        await eventually(lambda: shows(hook, truth), what="the survivor to deliver every change")
        await eventually(lambda: not undelivered(pg_schema), what="every delivery to be recorded")
    assert hook.skus_sent().count("SKU-1") >= 2, "the dead holder's claim was not sent again"
    assert survivor.terminate() == 0


# --- 3. a clean stop hands the lease over at once -------------------------------------------------------------------


async def test_a_stopped_holder_gives_its_lease_back(tmp_path: Path, pg_schema: Dsn, hook: CountingReceiver) -> None:
    """SIGTERM the holder: the other relay takes the channel over before the old lease would have run out."""
    lease_seconds = 30.0  # a term of 20 s: a takeover that waited it out could not pass for one given back
    relays = await start_relays(tmp_path, pg_schema, hook.url(HOOK), lease_seconds)
    async with aiohttp.ClientSession() as session:
        await send_accepted(session, relays[0].url, [stock_event(1, "SKU-1", 5, 1)])
        await eventually(lambda: hook.shown().get("SKU-1") == 5, what="the first change delivered")
        before = held_lease(pg_schema)
        holder, survivor = relays if before.pid == pid_of(relays[0]) else relays[::-1]
        assert holder.terminate() == 0
        await eventually(lambda: held_lease(pg_schema).pid == pid_of(survivor), seconds=60, what="the takeover")
        after = held_lease(pg_schema)
        taken_at = after.lease_until - lease_seconds * 2 / 3  # the survivor's clock when it took the lease
        assert taken_at < before.lease_until, "the survivor waited for the old lease to run out"
        assert after.token == before.token + 1
        await send_accepted(session, survivor.url, [stock_event(1, "SKU-1", 4, 2)])
        await eventually(lambda: hook.shown().get("SKU-1") == 4, what="the survivor to deliver")
    assert survivor.terminate() == 0


# --- 4. fencing ----------------------------------------------------------------------------------------------------


@pytest.fixture
async def two_stores(pg_schema: Dsn) -> AsyncIterator[tuple[PgStore, PgStore]]:
    """Two stores on one schema, as two relays have."""
    stores = (PgStore(pg_schema), PgStore(pg_schema))
    for store in stores:
        await store.open()
    yield stores
    for store in stores:
        await store.close()


async def take(store: PgStore, lease: leases.Lease, now: float) -> int | None:
    """Take or renew ``lease`` at ``now``, as Lease.keep does, and remember the token."""
    token = await store.write(lambda conn: leases.take(conn, lease, now))
    lease.token = token
    return token


async def a_claims_and_its_term_ends(
    tmp_path: Path, pg_schema: Dsn, start_relay: StartRelay, store_a: PgStore
) -> tuple[leases.Lease, leases.Lease, list[deliveries.Claimed], float]:
    """One change made due by a relay; holder A takes the channel's lease and claims it, and does not renew. Returns
    A's and B's leases, A's claim and a time past A's term (B has not taken the lease yet)."""
    relay = await start_relay(
        make_config(tmp_path / "state", (webhook_channel(CHANNEL, "http://127.0.0.1:9/"),), store=pg_schema)
    )
    status, body = await relay.client.send_events([stock_event(1, "SKU-1", 5, 1)])
    assert status == 202, body
    lease_a = leases.Lease(SITE, CHANNEL, "host-a:1:aa", lease_seconds=30)
    lease_b = leases.Lease(SITE, CHANNEL, "host-b:2:bb", lease_seconds=30)
    now = relay.relay.now()
    assert await take(store_a, lease_a, now) == 1
    claimed = await store_a.write(
        lambda conn: deliveries.claim(conn, SITE, CHANNEL, 10, "claim-a", 30, now, lease_a.fence())
    )
    assert [c.sku for c in claimed] == ["SKU-1"]
    return lease_a, lease_b, claimed, now + lease_a.term + 1


async def test_a_holder_that_lost_its_lease_writes_nothing(
    tmp_path: Path, pg_schema: Dsn, start_relay: StartRelay, two_stores: tuple[PgStore, PgStore]
) -> None:
    """Once B has taken the lease over, A's settle records nothing and A cannot claim; the row is B's to claim."""
    store_a, store_b = two_stores
    lease_a, lease_b, claimed, later = await a_claims_and_its_term_ends(tmp_path, pg_schema, start_relay, store_a)
    assert await take(store_b, lease_b, later) == 2
    policy, rand = deliveries.RetryPolicy(1, 10, 3600), random.Random(0)
    ok = [deliveries.Outcome("SKU-1", deliveries.OK, quantity=5)]

    def settle_as(token: str, claimed: list[deliveries.Claimed], lease: leases.Lease) -> Any:
        fence = lease.fence()
        return lambda conn: deliveries.settle(conn, SITE, CHANNEL, token, claimed, ok, policy, later, rand, None, fence)

    assert await store_a.write(settle_as("claim-a", claimed, lease_a)) == 0
    again = await store_a.write(
        lambda conn: deliveries.claim(conn, SITE, CHANNEL, 10, "claim-a2", 30, later, lease_a.fence())
    )
    assert again == [], "a holder that lost its lease claimed again"
    assert undelivered(pg_schema) == [("SKU-1", "pending", None)]
    for_b = await store_b.write(
        lambda conn: deliveries.claim(conn, SITE, CHANNEL, 10, "claim-b", 30, later, lease_b.fence())
    )
    assert [c.sku for c in for_b] == ["SKU-1"]
    assert await store_b.write(settle_as("claim-b", for_b, lease_b)) == 1
    assert undelivered(pg_schema) == []


# --- 5. PostgreSQL restarts under a running relay -------------------------------------------------------------------


@dataclass
class Cluster:
    """A PostgreSQL cluster of one test's own: a data directory and a Unix socket in ``root``, nothing else shared."""

    root: Path
    ctl: list[str]  # pg_ctl -D <data>, as the postgres user when the tests run as root

    @property
    def dsn(self) -> Dsn:
        return Dsn(f"postgresql:///postgres?host={self.root}&user=postgres")

    def start(self) -> None:
        options = f"-c listen_addresses='' -k {self.root} -c fsync=off -c full_page_writes=off"
        log = self.root / "server.log"
        run([*self.ctl, "-l", str(log), "-w", "-t", "60", "-o", options, "start"])

    def stop(self) -> None:
        """As a crash would: no shutdown checkpoint, every connection cut."""
        run([*self.ctl, "-m", "immediate", "-w", "stop"])


def run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{command[-1]} failed: {done.stdout}{done.stderr}"


def postgres_bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


@pytest.fixture
def own_cluster() -> Iterator[Cluster]:
    """A fresh cluster, so stopping it disturbs no other test. Its folder is in the system temp dir, not tmp_path:
    pytest makes tmp_path's parents private to root, and the server runs as the postgres user."""
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb)")
    root = Path(tempfile.mkdtemp(prefix="stock-relay-pg-restart."))
    as_postgres = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(root, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    try:
        run(
            [
                *as_postgres,
                str(bindir / "initdb"),
                "-D",
                str(root / "data"),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        )
        cluster = Cluster(root, [*as_postgres, str(bindir / "pg_ctl"), "-D", str(root / "data")])
        cluster.start()
        yield cluster
    finally:
        subprocess.run(
            [*as_postgres, str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


UNAVAILABLE = f"{SITE}/{CHANNEL}: database unavailable"  # the worker's log line when a write fails


async def readyz(session: aiohttp.ClientSession, relay: RelayProcess) -> int:
    async with session.get(relay.url + "/readyz") as response:
        return response.status


async def test_the_relay_rides_out_a_postgres_restart(
    tmp_path: Path, own_cluster: Cluster, hook: CountingReceiver
) -> None:
    """Server down: ingest answers 503 (never 202) and /readyz 503. Server back: the same relay process accepts again
    and delivers everything, the push that was in flight when the server went away included."""
    # lease_seconds 6: a push is cut off after half of it, and the first must stay in flight until the server is down
    (relay,) = await start_relays(tmp_path, own_cluster.dsn, hook.url(HOOK), lease_seconds=6, count=1)
    rand, truth, acknowledged = random.Random(5), {}, set()
    gate = asyncio.Event()
    hook.on(HOOK, Reply(release=gate))  # the first push is answered only once the server is down: it cannot settle
    async with aiohttp.ClientSession() as session:
        events = round_of_changes(rand, range(1, 4), 1, truth)
        await send_accepted(session, relay.url, events)
        acknowledged |= {e["id"] for e in events}
        await eventually(lambda: len(hook.received) == 1, what="the first push in flight")
        await asyncio.to_thread(own_cluster.stop)
        refused = []
        for version in range(2, 7):
            status, body = await send(
                session, relay.url, round_of_changes(random.Random(version), range(1, 4), version, {})
            )
            refused.append(status)
        assert refused == [503] * 5, refused
        assert await readyz(session, relay) == 503
        gate.set()
        await eventually(lambda: UNAVAILABLE in relay.log(), what="the push's settle to fail")
        await asyncio.to_thread(own_cluster.start)
        events = round_of_changes(rand, range(4, 9), 1, truth)  # other SKUs: the first round's must arrive as sent
        msg_id = new_msg_id()

        async def accepted_again() -> bool:  # like the plugin: the same batch, same webhook-id, until a 202
            status, _ = await send(session, relay.url, events, msg_id)
            assert status in (202, 503), status
            return status == 202

        await eventually(accepted_again, what="ingest to accept again")
        acknowledged |= {e["id"] for e in events}
        assert await readyz(session, relay) == 200
        await eventually(lambda: shows(hook, truth), what="every change delivered after the restart")
        await eventually(lambda: not undelivered(own_cluster.dsn), what="every delivery recorded")
    assert acknowledged <= stored_event_ids(own_cluster.dsn)
    in_flight = hook.received[0].doc["updates"][0]["sku"]
    assert hook.skus_sent().count(in_flight) >= 2, "the push whose outcome could not be recorded was not sent again"
    assert relay.terminate() == 0


# --- 6. a NOTIFY wakes the holder -----------------------------------------------------------------------------------

IDLE = 3600.0  # the holder's idle poll, and its lease's renewal interval (lease_seconds / 6): both an hour
WOKEN = 60.0  # how long the holder may take to deliver once woken: generous on a busy machine, far below IDLE


async def test_the_holder_is_woken_by_an_event_the_other_relay_took_in(
    tmp_path: Path, pg_schema: Dsn, hook: CountingReceiver
) -> None:
    """An event committed by the relay without the channel's lease is delivered by the holder at once: ingest's NOTIFY
    reaches the holder's listener (pg_store), which wakes its worker. Its own polls would look only an hour later."""
    relays = await start_relays(tmp_path, pg_schema, hook.url(HOOK), lease_seconds=6 * IDLE, idle_poll_seconds=IDLE)
    holder, other = relays if held_lease(pg_schema).pid == pid_of(relays[0]) else relays[::-1]
    async with aiohttp.ClientSession() as session:
        await send_accepted(session, other.url, [stock_event(1, "SKU-1", 5, 1)])
        await eventually(lambda: hook.shown().get("SKU-1") == 5, seconds=WOKEN, what="the woken holder to deliver")
    row = held_lease(pg_schema)
    assert (row.pid, row.token) == (pid_of(holder), 1), "the lease moved: the delivery proves no wake-up"
    assert holder.terminate() == 0 and other.terminate() == 0


# --- 7. the store's password ----------------------------------------------------------------------------------------

PASSWORD = "Store-Pw-" + secrets.token_hex(8)  # distinctive: found in an output only if it leaked there
SECRET_ENV = {**ENV, "PG_RELAYS_OPS_SECRET": SITE_SECRET}  # the operator's --secret reference for --remote


def hidden(text: str) -> str:
    """An output quoted in a failed assertion: without the password, should it be there."""
    return text.replace(PASSWORD, "<password>")


def with_password(dsn: Dsn, password: str) -> str:
    """``dsn``'s URL with ``password`` in it. The test cluster trusts its Unix socket: the server ignores it."""
    parts = urllib.parse.urlsplit(dsn.url)
    user = parts.username or urllib.parse.parse_qs(parts.query)["user"][0]
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


async def test_the_store_password_is_never_shown(tmp_path: Path, pg_schema: Dsn, hook: CountingReceiver) -> None:
    """A relay whose store: reference holds a password: not in its log, nor in check-config, status (from the store
    and over the API), audit, /readyz or /metrics. A store that is not there fails the start, and the status
    command, with an error that names the database without it."""
    url = with_password(pg_schema, PASSWORD)
    root = tmp_path / "relay"
    config = write_config(root, hook.url(HOOK), lease_seconds=10, store="file:store.url")
    (root / "store.url").write_text(url + "\n")
    relay = RelayProcess(config, ENV, root / "relay.log")
    await asyncio.to_thread(relay.start)
    shown: dict[str, str] = {}
    async with aiohttp.ClientSession() as session:
        await send_accepted(session, relay.url, [stock_event(1, "SKU-1", 5, 1)])
        await eventually(lambda: hook.shown().get("SKU-1") == 5, what="the relay to deliver")
        for path in ("/readyz", "/metrics"):
            async with session.get(relay.url + path) as response:
                assert response.status == 200, path
                shown[path] = await response.text()
    remote = ("--remote", relay.url, "--site", SITE, "--secret", "env:PG_RELAYS_OPS_SECRET")
    for command in (("check-config",), ("status", "--json"), ("audit", "--json"), ("status", "--json", *remote)):
        args = command if "--remote" in command else (*command, "-c", str(config))
        done = await asyncio.to_thread(run_cli, *args, env=SECRET_ENV)
        code = done.returncode  # not done itself in the assertion: pytest would print its output
        assert code == 0, (command, hidden(done.stderr))
        shown[" ".join(command)] = done.stdout + done.stderr
    assert relay.terminate() == 0
    shown["log"] = relay.log()
    assert [where for where, text in shown.items() if PASSWORD in text] == []
    named = str(Dsn(url))  # how every message names the store: where a leak would be
    assert named in shown["log"] and named in shown["check-config"], "the store is not named where it was looked for"

    nowhere = with_password(Dsn(f"postgresql:///postgres?host={tmp_path / 'no-server'}&user=postgres"), PASSWORD)
    (root / "store.url").write_text(nowhere + "\n")
    failed = {
        command: await asyncio.to_thread(run_cli, command, "-c", str(config), env=SECRET_ENV)
        for command in ("serve", "status")
    }
    assert [command for command, done in failed.items() if PASSWORD in done.stdout + done.stderr] == []
    codes = {command: done.returncode for command, done in failed.items()}
    assert codes == {"serve": 1, "status": 1}, hidden(failed["serve"].stderr + failed["status"].stderr)
    assert f"cannot start: cannot connect to {Dsn(nowhere)}" in failed["serve"].stderr
    assert f"cannot connect to {Dsn(nowhere)}" in failed["status"].stderr


# --- 8. the fencing token on its own --------------------------------------------------------------------------------


async def test_a_holder_whose_claim_outlived_its_lease_settles_nothing(
    tmp_path: Path, pg_schema: Dsn, start_relay: StartRelay, two_stores: tuple[PgStore, PgStore]
) -> None:
    """B has taken the lease over but A's claim was not given back (B ran TAKE alone; ``take`` also releases the old
    holder's claims, the case of test 4): A's claim token still matches the row, and only the fencing token can stop
    A's settle. The row stays exactly as it was, and A's outcome is audited as lease_lost."""
    store_a, store_b = two_stores
    lease_a, lease_b, claimed, later = await a_claims_and_its_term_ends(tmp_path, pg_schema, start_relay, store_a)
    taken = await store_b.write(
        lambda conn: conn.execute(leases.TAKE, (SITE, CHANNEL, lease_b.holder, later + lease_b.term, later)).fetchone()
    )
    assert taken is not None and int(taken[0]) == 2
    rows = "SELECT * FROM deliveries WHERE site = %s AND channel = %s"
    before = query(pg_schema, rows, (SITE, CHANNEL))
    assert query(pg_schema, "SELECT claim_token FROM deliveries") == [("claim-a",)], "the claim check alone would pass"
    ok = [deliveries.Outcome("SKU-1", deliveries.OK, quantity=5)]
    policy, rand, fence = deliveries.RetryPolicy(1, 10, 3600), random.Random(0), lease_a.fence()
    settled = await store_a.write(
        lambda conn: deliveries.settle(conn, SITE, CHANNEL, "claim-a", claimed, ok, policy, later, rand, None, fence)
    )
    assert settled == 0
    assert query(pg_schema, rows, (SITE, CHANNEL)) == before
    audited = query(pg_schema, "SELECT sku, action FROM audit WHERE channel = %s", (CHANNEL,))
    assert audited == [("SKU-1", "lease_lost")]


async def test_a_kept_reader_connection_the_server_dropped_is_replaced_not_failed(pg_schema: Dsn) -> None:
    """The store keeps its read connections between reads; one the server dropped meanwhile (a restart, an idle
    timeout, here pg_terminate_backend) must cost no failed read: the view runs once more on a new connection. A view
    that fails on a working connection still fails, once."""
    store = PgStore(pg_schema)
    await store.open()
    try:

        def backend(conn: Any) -> int:
            return int(conn.execute("SELECT pg_backend_pid()").fetchone()[0])

        # several kept connections (concurrent reads), then all of them dropped, as a server restart does
        kept = set(await asyncio.gather(*(store.query(backend) for _ in range(4))))
        for pid in kept:
            query(pg_schema, "SELECT pg_terminate_backend(%s)", (pid,))
        await eventually(
            lambda: not query(pg_schema, "SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)", (list(kept),))
        )
        assert await store.query(backend) not in kept
        assert await store.query(backend) not in kept

        calls = []

        def failing(conn: Any) -> None:
            calls.append(1)
            conn.execute("SELECT no_such_column FROM events")

        with pytest.raises(StorageError):
            await store.query(failing)
        assert len(calls) == 1
    finally:
        await store.close()


def analyze_runs(dsn: Dsn, table: str) -> int:
    """How many times ``table`` was analyzed by an ANALYZE command (autovacuum's own runs are counted apart)."""
    rows = query(
        dsn,
        "SELECT analyze_count FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = %s",
        (table,),
    )
    return int(rows[0][0]) if rows else 0


async def test_a_young_store_is_analyzed_as_it_grows_so_lookups_find_their_keys(pg_schema: Dsn) -> None:
    """PostgreSQL plans from statistics that autovacuum refreshes once a minute at best; a store that grew from
    nothing within seconds was planned as empty, and ingest's lookup read every event of the site to find a few ids.
    The store analyzes its hot tables itself once they have changed enough; then the lookup is an index search by
    (site, event_id)."""
    store = PgStore(pg_schema)
    await store.open()
    try:
        for start in range(0, 3000, 500):
            events = []
            for n in range(start + 1, start + 501):
                event = protocol.validate_event(stock_event(n, f"SKU-{n}", 5, 1, event_id=new_event_id()))
                assert isinstance(event, protocol.Event)
                events.append(event)
            await store.write(
                functools.partial(
                    ingest.record_batch,
                    site="shop",
                    channels=["hook"],
                    msg_id=new_msg_id(),
                    events=events,
                    rejected=[],
                    now=1e9,
                )  # fmt: skip
            )
        await eventually(lambda: analyze_runs(pg_schema, "events") > 0, seconds=60, what="events to be analyzed")
        plan = "\n".join(
            row[0]
            for row in query(
                pg_schema,
                "EXPLAIN SELECT event_id FROM events WHERE site = 'shop'"
                ' AND event_id = ANY(ARRAY(SELECT json_array_elements_text(\'["evt_a", "evt_b"]\'::json)))',
            )
        )
        assert "Index Cond: ((site = 'shop'::text) AND (event_id = ANY" in plan, plan
    finally:
        await store.close()
