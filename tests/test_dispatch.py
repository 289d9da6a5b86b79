"""The dispatcher against real fake receivers: coalescing, leases, retries, dead letters, circuit breaker, isolation."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from relay import signing
from relay.cli.client import stock_event
from relay.config import StockRules
from relay.delivery import deliveries

from .conftest import Reply, eventually, fast_dispatch, make_config, webhook_channel


async def test_coalesces_to_newest_version(start_relay, tmp_path: Path, receiver) -> None:
    """Five changes of one SKU queued while the channel is idle go out as one call with the newest quantity."""
    r = await start_relay(make_config(tmp_path / "s", (webhook_channel("a", receiver.url("/a")),)))
    for version, qty in enumerate([9, 8, 7, 6, 5], start=1):
        await r.client.send_events([stock_event(1, "SKU", qty, version)])
    await r.drain()
    assert len(receiver.for_path("/a")) == 1
    assert receiver.quantities["/a"] == {"SKU": 5}


async def test_stale_version_never_overwrites(start_relay, tmp_path: Path, receiver) -> None:
    """An older version arriving after a newer one is ignored: the channel keeps the newer quantity."""
    r = await start_relay(make_config(tmp_path / "s", (webhook_channel("a", receiver.url("/a")),)))
    await r.client.send_events([stock_event(1, "SKU", 4, 20)])
    await r.drain()
    await r.client.send_events([stock_event(1, "SKU", 99, 19)])
    await r.drain()
    assert receiver.quantities["/a"] == {"SKU": 4}
    assert len(receiver.for_path("/a")) == 1


async def test_newer_value_during_flight_is_sent_next(start_relay, tmp_path: Path, receiver) -> None:
    """While one update of a SKU is in flight no second one is sent; the newest value follows when it lands."""
    landed = asyncio.Event()  # the first answer is held until the newer changes are in: in flight at any speed
    receiver.on("/a", Reply(release=landed))
    r = await start_relay(make_config(tmp_path / "s", (webhook_channel("a", receiver.url("/a")),)), run_workers=True)
    await r.client.send_events([stock_event(1, "SKU", 10, 1)])
    try:
        await eventually(lambda: receiver.for_path("/a"), what="the first update")
        for version, qty in [(2, 9), (3, 8)]:
            await r.client.send_events([stock_event(1, "SKU", qty, version)])
        assert await r.count("SELECT COUNT(*) FROM events WHERE sku = 'SKU'") == 3
        assert len(receiver.for_path("/a")) == 1  # still in flight: nothing else sent for this SKU
    finally:
        landed.set()
    await eventually(lambda: receiver.quantities.get("/a", {}).get("SKU") == 8, what="the newest quantity")
    assert [x.doc["updates"][0]["quantity"] for x in receiver.for_path("/a")] == [10, 8]


async def test_running_worker_pushes_the_next_batch_while_a_settle_commits(
    start_relay, tmp_path: Path, receiver
) -> None:
    """The running worker overlaps: while the one database writer is held (as during a burst of shop changes) a
    batch's settle waits, but the next batch, claimed a commit earlier, is pushed meanwhile. Once the writer moves,
    everything settles, each update sent once, and stopping leaves nothing claimed."""
    channel = webhook_channel("a", receiver.url("/a"), batch_size=2)
    r = await start_relay(make_config(tmp_path / "s", (channel,)))
    await r.client.send_events([stock_event(i, f"S{i}", i, 1) for i in range(1, 7)])
    worker = r.relay.workers[("main", "a")]
    assert await worker.drain_once(overlap=True) == 2  # claimed two batches in one commit, pushed the first

    async def settled_and_claimed_the_third() -> bool:
        delivered = await r.count("SELECT COUNT(*) FROM deliveries WHERE state = 'delivered'")
        return delivered == 2 and await r.count("SELECT COUNT(*) FROM deliveries WHERE claim_token IS NOT NULL") == 4

    await eventually(settled_and_claimed_the_third, what="the first settle to commit and claim the third batch")
    entered, release = threading.Event(), threading.Event()

    def hold_the_writer(conn: sqlite3.Connection) -> None:
        entered.set()
        release.wait(10)

    held = asyncio.ensure_future(r.relay.store.write(hold_the_writer))
    await asyncio.to_thread(entered.wait, 5)
    try:
        assert await asyncio.wait_for(worker.drain_once(overlap=True), 5) == 2  # pushed with its settle held
        assert [sorted(u["sku"] for u in x.doc["updates"]) for x in receiver.for_path("/a")] == [
            ["S1", "S2"],
            ["S3", "S4"],
        ]
        assert await r.count("SELECT COUNT(*) FROM deliveries WHERE state = 'delivered'") == 2
    finally:
        release.set()
    await held
    assert await worker.drain_once(overlap=True) == 2
    stopping = asyncio.Event()
    stopping.set()
    await worker.run(stopping)  # stops at once: finishes the settle in hand and gives back what it claimed
    assert await r.count("SELECT COUNT(*) FROM deliveries WHERE state = 'delivered'") == 6
    assert await r.count("SELECT COUNT(*) FROM deliveries WHERE claim_token IS NOT NULL") == 0
    assert len(receiver.for_path("/a")) == 3 and receiver.quantities["/a"] == {f"S{i}": i for i in range(1, 7)}


@pytest.mark.parametrize(("claims_ahead", "claimed"), [(True, 4), (False, 2)])
async def test_a_batch_is_claimed_ahead_only_where_the_connector_wants_it(
    start_relay, tmp_path: Path, receiver, claims_ahead: bool, claimed: int
) -> None:
    """While its first push is in flight, a running worker holds two batches claimed, or one where the connector
    says no (Amazon and Walmart, whose claims hold 5 s of calls): a batch claimed ahead waits a whole push."""
    answered = asyncio.Event()  # the first push stays in flight until the claims are counted, however slow
    receiver.on("/a", Reply(release=answered))
    channel = webhook_channel("a", receiver.url("/a"), batch_size=2)
    r = await start_relay(make_config(tmp_path / "s", (channel,)))
    worker = r.relay.workers[("main", "a")]
    worker.connector.claims_ahead = claims_ahead  # type: ignore[misc]
    await r.client.send_events([stock_event(i, f"S{i}", i, 1) for i in range(1, 7)])
    stopping = asyncio.Event()
    running = asyncio.ensure_future(worker.run(stopping))
    try:
        await eventually(lambda: receiver.for_path("/a"), what="the first push")
        assert await r.count("SELECT COUNT(*) FROM deliveries WHERE claim_token IS NOT NULL") == claimed
        answered.set()

        async def all_delivered() -> bool:
            return await r.count("SELECT COUNT(*) FROM deliveries WHERE state = 'delivered'") == 6

        await eventually(all_delivered, what="every update to be delivered")
    finally:
        answered.set()
        stopping.set()
        worker.wake.set()
        await running
    assert receiver.quantities["/a"] == {f"S{i}": i for i in range(1, 7)}


def test_claim_respects_live_leases_and_tokens(tmp_path: Path) -> None:
    """A live lease hides a row from other claimers; a stale claimant's settlement changes nothing."""
    conn = sqlite3.connect(tmp_path / "q.sqlite3", isolation_level=None)
    from relay.storage.store import migrate

    migrate(conn)
    conn.execute(
        "INSERT INTO events (site, event_id, kind, product_id, sku, manage_stock, stock_quantity, stock_status,"
        " backorders, version, occurred_at, cause_kind, received_at, outcome)"
        " VALUES ('s','e1','stock',1,'A',1,5,'instock','no',1,'','order',0,'accepted')"
    )
    from relay.delivery.deliveries import make_due

    make_due(conn, "s", "c", "A", 1, now=0.0)
    first = deliveries.claim(conn, "s", "c", 10, "t1", lease_seconds=30, now=1.0)
    assert [c.sku for c in first] == ["A"]
    assert deliveries.claim(conn, "s", "c", 10, "t2", lease_seconds=30, now=2.0) == []
    taken_over = deliveries.claim(conn, "s", "c", 10, "t2", lease_seconds=30, now=40.0)  # t1's lease ran out
    assert [c.sku for c in taken_over] == ["A"]
    policy = deliveries.RetryPolicy(1, 10, 3600)
    ok = [deliveries.Outcome("A", deliveries.OK, quantity=5)]
    assert deliveries.settle(conn, "s", "c", "t1", first, ok, policy, 41.0, random.Random(1)) == 0
    assert conn.execute("SELECT claim_token, state FROM deliveries").fetchone() == ("t2", "pending")
    assert conn.execute("SELECT COUNT(*) FROM audit WHERE action = 'lease_lost'").fetchone()[0] == 1
    assert deliveries.settle(conn, "s", "c", "t2", taken_over, ok, policy, 42.0, random.Random(1)) == 1
    assert conn.execute("SELECT claim_token, state, delivered_quantity FROM deliveries").fetchone() == (
        None,
        "delivered",
        5,
    )


class _CountingConnection(sqlite3.Connection):
    """A real SQLite connection that counts the statements it is handed (executemany: one, whatever its rows)."""

    calls = 0

    def execute(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1
        return super().execute(*args, **kwargs)

    def executemany(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1
        return super().executemany(*args, **kwargs)


def _due(conn: sqlite3.Connection, skus: list[str]) -> None:
    """One stored event per SKU, its delivery on channel c due at 0."""
    for n, sku in enumerate(skus, start=1):
        conn.execute(
            "INSERT INTO events (seq, site, event_id, kind, product_id, sku, manage_stock, stock_quantity, stock_status,"
            " backorders, version, occurred_at, cause_kind, received_at, outcome)"
            " VALUES (?, 's', ?, 'stock', ?, ?, 1, 5, 'instock', 'no', 1, '', 'order', 0, 'accepted')",
            (n, f"e{n}", n, sku),
        )
        deliveries.make_due(conn, "s", "c", sku, n, now=0.0)


def test_claim_and_settle_cost_the_same_statements_for_a_batch_of_3_or_30(tmp_path: Path) -> None:
    """Claim and settle are set-based (issue 20 §5): a batch costs a fixed number of statements, whatever its size and
    whichever outcomes it holds. One statement per row made them dearer per delivery than anything else the writer
    does, once a large catalogue's random traffic stops coalescing."""
    from relay.storage.store import migrate

    kinds = [deliveries.OK, deliveries.TRANSIENT, deliveries.PERMANENT, deliveries.AUTH, deliveries.SKIPPED]
    policy = deliveries.RetryPolicy(1, 10, 3600)
    calls = []
    for size in (3 * len(kinds), 30 * len(kinds)):
        conn = sqlite3.connect(tmp_path / f"{size}.sqlite3", isolation_level=None, factory=_CountingConnection)
        migrate(conn)
        _due(conn, [f"SKU-{n}" for n in range(size)])
        conn.calls = 0
        claimed = deliveries.claim(conn, "s", "c", size, "t", lease_seconds=30, now=1.0)
        outcomes = [deliveries.Outcome(c.sku, kinds[n % len(kinds)], quantity=5) for n, c in enumerate(claimed)]
        assert deliveries.settle(conn, "s", "c", "t", claimed, outcomes, policy, 2.0, random.Random(1)) == size
        calls.append(conn.calls)
        assert conn.execute("SELECT COUNT(*) FROM deliveries WHERE claim_token IS NULL").fetchone()[0] == size
    assert calls[0] == calls[1]


def test_settle_of_rows_lost_or_named_twice_is_audited_and_leaves_the_others_jitter_alone(tmp_path: Path) -> None:
    """A row whose lease another worker took over, and a SKU's second outcome in one batch, are ``lease_lost``; each
    transient outcome still draws its jitter in turn, so the others' retries are due exactly when one settle per row
    made them due."""
    from relay.storage.store import migrate

    conn = sqlite3.connect(tmp_path / "q.sqlite3", isolation_level=None)
    migrate(conn)
    _due(conn, ["A", "B", "C"])
    claimed = deliveries.claim(conn, "s", "c", 10, "t1", lease_seconds=30, now=1.0)
    conn.execute("UPDATE deliveries SET claim_token = 't2' WHERE sku = 'A'")  # taken over
    transient = [deliveries.Outcome(sku, deliveries.TRANSIENT, error="HTTP 503") for sku in ("A", "B", "C")]
    policy = deliveries.RetryPolicy(1, 10, 3600)
    outcomes = [*transient, deliveries.Outcome("B", deliveries.OK, quantity=5)]
    assert deliveries.settle(conn, "s", "c", "t1", claimed, outcomes, policy, 2.0, random.Random(7)) == 2
    expected = random.Random(7)
    delays = [policy.delay(1, None, expected) for _ in range(3)]  # A's draw comes first, as it always did
    due = dict(conn.execute("SELECT sku, next_attempt_at FROM deliveries WHERE claim_token IS NULL").fetchall())
    assert due == {"B": 2.0 + delays[1], "C": 2.0 + delays[2]}
    actions = conn.execute("SELECT sku, action FROM audit ORDER BY id").fetchall()
    assert actions == [("A", "lease_lost"), ("B", "attempt"), ("C", "attempt"), ("B", "lease_lost")]


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    """Delays double per attempt within [d/2, d], are capped, and never undercut Retry-After."""
    policy = deliveries.RetryPolicy(base_seconds=1, max_seconds=60, give_up_after_seconds=3600)
    rand = random.Random(7)
    for attempts, ceiling in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (30, 60)]:
        for _ in range(50):
            assert ceiling / 2 <= policy.delay(attempts, None, rand) <= ceiling
    assert policy.delay(1, 120, rand) == 120


async def test_transient_failures_retry_until_delivered(start_relay, tmp_path: Path, receiver) -> None:
    """503, 500, a timeout and a 429 are retried with persisted backoff; the same webhook-id is reused each time."""
    # The third answer is held past the channel's timeout; a timeout of 2 s (not 0.5) so that on a busy machine
    # the prompt answers are not taken for timeouts too.
    late = asyncio.Event()
    receiver.on("/a", Reply(503), Reply(500), Reply(status=200, release=late), Reply(429, headers={"Retry-After": "0"}))
    channel = webhook_channel("a", receiver.url("/a"), timeout_seconds=2)
    r = await start_relay(make_config(tmp_path / "s", (channel,)))
    await r.client.send_events([stock_event(1, "SKU", 3, 1)])

    async def delivered() -> bool:
        await r.drain()
        return (
            receiver.quantities.get("/a") == {"SKU": 3} and await r.count("SELECT state FROM deliveries") == "delivered"
        )

    try:
        await eventually(delivered, what="the update to be delivered after the failures")
    finally:
        late.set()
    assert await r.count("SELECT state FROM deliveries") == "delivered"
    ids = {x.headers["webhook-id"] for x in receiver.for_path("/a")}
    assert len(ids) == 1 and len(receiver.for_path("/a")) >= 5
    assert await r.count("SELECT COUNT(*) FROM dead_letters") == 0
    outcomes = await r.relay.store.read("SELECT http_status FROM audit WHERE action = 'attempt' ORDER BY id")
    assert [x[0] for x in outcomes][:2] == [503, 500] and outcomes[-1][0] == 200


async def test_retry_after_is_persisted(start_relay, tmp_path: Path, receiver) -> None:
    """A 429 with Retry-After: 120 schedules the next attempt no sooner than 120 s later, in SQLite."""
    receiver.on("/a", Reply(429, headers={"Retry-After": "120"}))
    r = await start_relay(make_config(tmp_path / "s", (webhook_channel("a", receiver.url("/a")),)))
    await r.client.send_events([stock_event(1, "SKU", 3, 1)])
    before = time.time()
    await r.drain()
    row = (await r.relay.store.read("SELECT next_attempt_at, attempts, last_error FROM deliveries"))[0]
    assert row[0] >= before + 120 and row[1] == 1 and "429" in row[2]


async def test_permanent_failure_dead_letters_with_reason(start_relay, tmp_path: Path, receiver) -> None:
    """A 422 goes straight to the dead-letter state with a readable reason; a newer change re-arms the SKU."""
    receiver.on("/a", Reply(422, body={"error": "unknown listing"}))
    r = await start_relay(make_config(tmp_path / "s", (webhook_channel("a", receiver.url("/a")),)))
    await r.client.send_events([stock_event(1, "SKU", 3, 1)])
    await r.drain()
    assert await r.count("SELECT state FROM deliveries") == "dead"
    reason = await r.count("SELECT reason FROM dead_letters")
    assert "rejected the update (422)" in reason
    assert "unknown listing" in await r.count("SELECT detail FROM audit WHERE action = 'attempt'")
    assert len(receiver.for_path("/a")) == 1
    await r.client.send_events([stock_event(1, "SKU", 2, 2)])
    await r.drain()
    assert receiver.quantities["/a"] == {"SKU": 2}
    assert await r.count("SELECT COUNT(*) FROM dead_letters WHERE resolved_at IS NULL") == 0


async def test_per_item_results_split_a_batch(start_relay, tmp_path: Path, receiver) -> None:
    """Within one batch, a rejected item dead-letters, a retry item retries, and the rest are delivered."""
    results = {
        "results": [{"sku": "B", "status": "rejected", "message": "no such SKU"}, {"sku": "C", "status": "retry"}]
    }
    receiver.on("/a", Reply(200, body=results))
    r = await start_relay(make_config(tmp_path / "s", (webhook_channel("a", receiver.url("/a"), batch_size=10),)))
    await r.client.send_events([stock_event(i, sku, 5, 1) for i, sku in enumerate("ABC", start=1)])

    async def states() -> dict[str, str]:
        await r.drain()
        return dict(tuple(x) for x in await r.relay.store.read("SELECT sku, state FROM deliveries"))

    async def settled() -> bool:
        return await states() == {"A": "delivered", "B": "dead", "C": "delivered"}

    await eventually(settled, what="A and C delivered, B dead")
    assert await states() == {"A": "delivered", "B": "dead", "C": "delivered"}
    assert len(receiver.for_path("/a")) == 2
    assert receiver.quantities["/a"] == {"A": 5, "C": 5}


async def test_gives_up_after_the_configured_time(start_relay, tmp_path: Path, receiver) -> None:
    """A delivery still failing after give_up_after_hours is dead-lettered, saying why."""
    clock = [1_000_000.0]
    receiver.on("/a", *[Reply(503)] * 5)
    cfg = make_config(
        tmp_path / "s", (webhook_channel("a", receiver.url("/a")),), dispatch=fast_dispatch(give_up_after_hours=1.0)
    )
    r = await start_relay(cfg, now=lambda: clock[0])
    await r.relay.store.write(lambda c: _seed(c, clock[0]))
    await r.drain()
    clock[0] += 3601
    await r.drain()
    assert await r.count("SELECT state FROM deliveries") == "dead"
    assert "still failing after 1 h" in await r.count("SELECT reason FROM dead_letters")


def _seed(conn: sqlite3.Connection, now: float) -> None:
    from relay.intake.ingest import record_batch
    from relay.intake.protocol import Event

    event = Event("e1", "stock", 1, None, None, "SKU", True, 3, "instock", "no", 1, "", "order", None)
    record_batch(conn, "main", ["a"], "msg_seed", [event], [], now)


async def test_auth_failure_pauses_channel_without_burning_retries(start_relay, tmp_path: Path, receiver) -> None:
    """A 401 opens the circuit at once; the delivery stays pending with no attempt counted."""
    receiver.on("/a", Reply(401))
    cfg = make_config(
        tmp_path / "s", (webhook_channel("a", receiver.url("/a")),), dispatch=fast_dispatch(auth_pause_seconds=60)
    )
    r = await start_relay(cfg)
    await r.client.send_events([stock_event(1, "SKU", 3, 1), stock_event(2, "SKU2", 3, 1)])
    await r.drain()
    worker = r.relay.workers[("main", "a")]
    assert worker.circuit.state == "open" and "refused our signature" in worker.circuit.reason
    assert len(receiver.for_path("/a")) == 1
    rows = await r.relay.store.read("SELECT state, attempts FROM deliveries ORDER BY sku")
    assert [tuple(x) for x in rows] == [("pending", 0), ("pending", 0)]


async def test_circuit_opens_probes_and_closes(start_relay, tmp_path: Path, receiver) -> None:
    """After N consecutive failures calls stop; after the cool-down one probe of one item goes out, and success closes it."""
    receiver.on("/a", *[Reply(503)] * 3)
    cfg = make_config(
        tmp_path / "s",
        (webhook_channel("a", receiver.url("/a"), batch_size=10),),
        dispatch=fast_dispatch(circuit_failure_threshold=3, circuit_open_seconds=0.3, backoff_max_seconds=0.01),
    )
    # The relay's clock (queue and circuit alike) moves only when the test moves it: on the wall clock, a machine
    # that took 0.3 s between opening and the check found the circuit half-open already, and a probe went out.
    clock = [time.time()]  # starts at the real time: ingest checks signatures against it
    r = await start_relay(cfg, now=lambda: clock[0])
    await r.client.send_events([stock_event(i, f"S{i}", 1, 1) for i in range(1, 6)])
    worker = r.relay.workers[("main", "a")]
    for _ in range(3):
        await worker.drain_once()
        clock[0] += 0.02  # past the retry backoff (at most 0.01 s)
    assert worker.circuit.state == "open"
    calls = len(receiver.for_path("/a"))
    clock[0] += 0.05
    assert await worker.drain_once() == 0 and len(receiver.for_path("/a")) == calls  # open: no call
    clock[0] += 0.3
    assert await worker.drain_once() == 1  # half-open: a probe of one item
    assert len(receiver.for_path("/a")[-1].doc["updates"]) == 1
    assert worker.circuit.state == "closed"
    await r.drain()
    assert len(receiver.quantities["/a"]) == 5


async def test_slow_channel_does_not_delay_another(start_relay, tmp_path: Path, receiver) -> None:
    """With one channel hanging, another channel of the same site still gets the update promptly."""
    hung = asyncio.Event()  # the slow channel answers only once the fast one has its update, at any speed
    receiver.on("/slow", Reply(release=hung))
    channels = (
        webhook_channel("slow", receiver.url("/slow"), timeout_seconds=120),
        webhook_channel("fast", receiver.url("/fast")),
    )
    r = await start_relay(make_config(tmp_path / "s", channels), run_workers=True)
    await r.client.send_events([stock_event(1, "SKU", 3, 1)])
    try:
        await eventually(lambda: receiver.quantities.get("/fast"), what="the fast channel's update")
        assert receiver.quantities.get("/fast") == {"SKU": 3}
        assert "/slow" not in receiver.quantities  # the slow one is still hanging
    finally:
        hung.set()


async def test_rules_apply_per_channel(start_relay, tmp_path: Path, receiver) -> None:
    """Buffer, SKU map, deleted → 0 and leave-off (null map) are applied per channel."""
    rules = StockRules(buffer=2, buffer_per_sku={"B": 5}, sku_map={"A": "AMZ-A", "HIDDEN": None})
    channels = (
        webhook_channel("plain", receiver.url("/p"), batch_size=10),
        webhook_channel("ruled", receiver.url("/r"), batch_size=10, rules=rules),
    )
    r = await start_relay(make_config(tmp_path / "s", channels))
    await r.client.send_events(
        [
            stock_event(1, "A", 10, 1),
            stock_event(2, "B", 4, 1),
            stock_event(3, "HIDDEN", 7, 1),
            stock_event(4, "GONE", 8, 1, kind="deleted"),
        ]
    )
    await r.drain()
    assert receiver.quantities["/p"] == {"A": 10, "B": 4, "HIDDEN": 7, "GONE": 0}
    assert receiver.quantities["/r"] == {"AMZ-A": 8, "B": 0, "GONE": 0}
    assert await r.count("SELECT COUNT(*) FROM audit WHERE action = 'skipped' AND channel = 'ruled'") == 1


async def test_v1a_signed_webhook(start_relay, tmp_path: Path, receiver) -> None:
    """A v1a channel signs with ed25519 and the receiver verifies with the public key."""
    private, public = signing.new_ed25519_key()
    channel = replace(webhook_channel("a", receiver.url("/a")), signing="v1a", secret=private)
    r = await start_relay(make_config(tmp_path / "s", (channel,)))
    await r.client.send_events([stock_event(1, "SKU", 3, 1)])
    await r.drain()
    got = receiver.for_path("/a")[0]
    assert signing.verify_ed25519(
        public,
        got.headers["webhook-id"],
        int(got.headers["webhook-timestamp"]),
        got.body,
        got.headers["webhook-signature"],
    )
    assert got.doc["updates"][0] == {
        "sku": "SKU",
        "quantity": 3,
        "version": 1,
        "event_id": got.doc["updates"][0]["event_id"],
        "product_id": 1,
    }


async def test_unreachable_channel_is_transient(start_relay, tmp_path: Path) -> None:
    """A connection refused is retried later, never dead-lettered."""
    r = await start_relay(make_config(tmp_path / "s", (webhook_channel("a", "http://127.0.0.1:9/x"),)))
    await r.client.send_events([stock_event(1, "SKU", 3, 1)])
    await r.drain()
    row = (await r.relay.store.read("SELECT state, attempts, last_error FROM deliveries"))[0]
    # At least one attempt: the test dispatcher's backoff is 10 ms, so a slow drain may already have retried.
    assert row[0] == "pending" and row[1] >= 1 and "could not reach" in row[2]
    assert await r.count("SELECT COUNT(*) FROM dead_letters") == 0
