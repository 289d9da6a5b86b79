"""One worker per (site, channel): claim due deliveries, publish them, settle the outcomes.

Each worker has its own connector, rate budget and circuit breaker and never waits on another, so
a slow or failing channel delays nobody else. This is where a push's DeliveryErrors end: each item is
settled (done, retried later, dead-lettered, or the channel paused or held); the read-back and the
multi-call connectors catch them too, for their own calls (see ``relay.errors``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import random
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from ..config import ChannelConfig, DispatchConfig
from ..connectors.base import Connector, ItemResult, Update
from ..errors import (
    AuthDeliveryError,
    DeliveryError,
    PendingDeliveryError,
    PermanentDeliveryError,
    QuotaHold,
    StorageError,
    TransientDeliveryError,
)
from ..storage import pauses
from ..storage.dbapi import Conn
from ..storage.pauses import Pause
from ..storage.store import Store
from . import deliveries, rules
from .circuit import CLOSED, HALF_OPEN, CircuitBreaker
from .deliveries import Claimed, Outcome, RetryPolicy
from .leases import Fence, Lease

log = logging.getLogger("stock_relay.dispatch")
DEAD_LETTER_LOG_SECONDS = 60.0


class IdleWork(Protocol):
    """What a worker runs while its channel has nothing to send: read-back (relay/repair/readback.py), handed in by
    the runtime so delivery does not depend on repair."""

    round_started: float | None  # wall clock; None between rounds
    last_round_at: float | None  # wall clock of the last complete round (the status answer's checked_at)
    not_before: float  # monotonic

    def clock(self) -> float: ...

    def due(self) -> bool: ...

    async def step(self) -> int: ...


def next_due(conn: Conn, site: str, channel: str) -> float | None:
    """View: when the channel's next pending delivery is due (wall clock), or None when nothing is pending."""
    due = conn.execute(
        "SELECT MIN(next_attempt_at) FROM deliveries WHERE site = ? AND channel = ? AND state = 'pending'",
        (site, channel),
    ).fetchone()[0]
    return None if due is None else float(due)


class DeadLetterLog:
    """At most one log line per channel per ``window``: how many items became dead letters, with one example.

    The first dead letter after a quiet window is logged at once; the ones after it are counted and logged together
    when the window is over (``flush``, called at every turn of the worker: a comparison, nothing more).
    """

    def __init__(self, name: str, window: float = DEAD_LETTER_LOG_SECONDS) -> None:
        self.name = name
        self.window = window
        self.count = 0
        self.example = ""
        self.since = 0.0  # when the first of the counted ones arrived
        self.logged_at = float("-inf")

    def add(self, dead: Sequence[tuple[str, str]], outcomes: Sequence[Outcome], now: float) -> None:
        if not self.count:
            sku, reason = dead[0]
            answer = next((o for o in outcomes if o.sku == sku and o.excerpt and o.excerpt not in reason), None)
            if answer is not None:
                status = f"HTTP {answer.http_status} " if answer.http_status else ""
                reason += f"; answered {status}{answer.excerpt}"
            self.example, self.since = f"SKU {sku}: {' '.join(reason.split())[:300]}", now
        self.count += len(dead)
        self.flush(now)

    def flush(self, now: float, force: bool = False) -> None:
        """Log what was counted once the window is over (``force``: now, as the worker stops)."""
        if not self.count or (now - self.logged_at < self.window and not force):
            return
        span = now - self.since
        if self.count == 1:
            what = "1 item became a dead letter"
        else:
            what = f"{self.count} items became dead letters" + (f" in the last {span:.0f} s" if span >= 1 else "")
        log.warning("%s: %s, e.g. %s (stock-relay dead; replay --dead)", self.name, what, self.example)
        self.count, self.logged_at = 0, now


class ChannelWorker:
    def __init__(
        self,
        store: Store,
        site: str,
        channel: ChannelConfig,
        connector: Connector,
        settings: DispatchConfig,
        now: Callable[[], float] = time.time,
        rand: random.Random | None = None,
    ) -> None:
        self.store = store
        self.site = site
        self.channel = channel
        self.connector = connector
        self.settings = settings
        self.now = now
        self.rand = rand or random.Random()
        self.wake = asyncio.Event()
        self.circuit = CircuitBreaker(
            settings.circuit_failure_threshold,
            settings.circuit_open_seconds,
            max(300.0, settings.auth_pause_seconds),
            # intervals: monotonic in production; a simulated clock (tests) drives the circuit and the queue alike
            now=time.monotonic if now is time.time else now,
        )
        self.policy = RetryPolicy(
            settings.backoff_base_seconds, settings.backoff_max_seconds, settings.give_up_after_hours * 3600
        )
        # What the worker is doing and since when (monotonic): /readyz tells a stuck worker from a busy one.
        self.phase = "starting"
        self.phase_since = time.monotonic()
        self.on_settled: Callable[[Sequence[Claimed], Sequence[Outcome], float], None] | None = None
        # Reading back what the channel shows (relay/repair/readback.py), only while nothing is due; set by the runtime.
        self.readback: IdleWork | None = None
        self.last_success: float | None = None  # wall clock of the last item the channel confirmed
        # The operator's pause (relay/storage/pauses.py) as the last claim found it; the operator API sets it at once
        # too, so batches claimed ahead before the pause are given back instead of pushed (``drain_once``).
        self.paused: Pause | None = None
        self._state_restored = False  # the connector's saved state is read once, before the first push
        # (token, rows) claimed by a settle for the pushes to come, and the settle left committing (overlapped)
        self._ahead: collections.deque[tuple[str, list[Claimed]]] = collections.deque()
        self._settling: asyncio.Future[int] | None = None
        self.dead_letter_log = DeadLetterLog(self.name)
        # Which relay works this channel when several share the store (relay/delivery/leases.py); set by the runtime.
        self.lease: Lease | None = None

    def _enter(self, phase: str) -> None:
        self.phase, self.phase_since = phase, time.monotonic()

    def stalled_for(self, limit: float) -> float | None:
        """Seconds the worker has been stuck in one phase beyond ``limit``, or None while it is making progress.

        Waiting for the rate budget is the budget working, not a stall.
        """
        age = time.monotonic() - self.phase_since
        return age if age > limit and self.phase != "waiting for the rate budget" else None

    @property
    def name(self) -> str:
        return f"{self.site}/{self.channel.name}"

    async def run(self, stopping: asyncio.Event) -> None:
        """Work until ``stopping`` is set; the batch in hand is finished first (its lease then released)."""
        while not stopping.is_set():
            self._enter("claiming")
            # Clear before claiming: a wake-up that lands while we work must not be lost.
            self.wake.clear()
            try:
                worked = await self.drain_once(overlap=self.connector.claims_ahead)
            except StorageError as exc:
                log.warning("%s: database unavailable, pausing: %s", self.name, exc)
                worked = 0
                await self._sleep(stopping, 1.0)
                continue
            if worked == 0 and not self._holds_lease():
                await self._sleep(stopping, self._idle_seconds(None))  # another relay works this channel
                continue
            if worked == 0:
                due = None
                # While the circuit is open or the operator paused the channel, when the rows are due does not matter:
                # the worker looks again at its idle poll (a resume over the API wakes it at once).
                if self.circuit.seconds_until_probe() == 0 and self.paused is None:
                    with contextlib.suppress(StorageError):  # the next claim reports it, and waits
                        due = await self._next_due()
                if self._may_read_back(due):
                    assert self.readback is not None
                    self._enter("reading back")
                    with contextlib.suppress(StorageError):  # the next claim reports it, and waits
                        await self.readback.step()
                    continue  # anything that became due meanwhile goes before the next read
                await self._sleep(stopping, self._idle_seconds(due))
        with contextlib.suppress(StorageError):  # what the last settle claimed is due again at once
            await self._release_claims()
        self.dead_letter_log.flush(self.now(), force=True)
        self._enter("stopped")

    async def drain_once(self, overlap: bool = False) -> int:
        """Claim and publish at most one batch; returns how many deliveries it settled (0: nothing due).

        With ``overlap`` (the running worker), the batch's settle is left committing while the next batch is pushed:
        the call returns once its push is done and its settle is under way, and counts the batch it pushed.
        """
        self.dead_letter_log.flush(self.now())
        if self.lease is not None and not await self.lease.keep(self.store.write, self.now()):
            await self._release_claims()  # claimed under a lease another relay now holds: it has them again
            return 0
        if self.lease is not None and self.lease.shared and self.lease.taken_over():
            self.connector.spend_budgets()  # the relay before may have just spent them: together, within them
        wait = self.circuit.seconds_until_probe()
        held = self.connector.hold()
        if wait > 0 or held is not None:
            await self._release_claims()
            if held is not None and wait <= 0:  # found outside a push (read-back): claim nothing until it is over
                self._hold(held)
            return 0
        if not self._state_restored:
            self.connector.restore_state(await self.store.query(self.connector.read_state))
            self._state_restored = True
        probing = self.circuit.state == HALF_OPEN
        if self.paused is not None and self._ahead:  # paused since they were claimed: give them back, unsent
            await self._release_claims()
        if not self._ahead:
            await self._finish_settle()  # whatever it claimed is the next batch
        if self._ahead:  # claimed by an earlier settle, in the same commit
            token, claimed = self._ahead.popleft()
        else:
            # Overlapping, claim two batches: one to push now, one to push while this one's settle commits.
            claims = await self._claim(1 if probing else self.connector.batch_size, 1 if probing or not overlap else 2)
            if not claims:
                return 0
            (token, claimed), *rest = claims
            self._ahead.extend(rest)
        if probing:
            self.circuit.begin_probe()
        outcomes = await self._publish(claimed)
        # The next claim rides in the settle's commit while the channel is healthy: a commit is the worker's dearest
        # step (during a burst each waits behind ingest's), and claiming in its own commit doubled what each batch
        # waited. Overlapping, the next push does not wait for it either: it was claimed a settle earlier.
        claim_next = self.circuit.state == CLOSED and not self.connector.hold()
        settling = asyncio.ensure_future(self._settle(token, claimed, outcomes, self.now(), claim_next))
        self._enter("settling")
        try:
            settled = await self._finish_settle()  # the previous batch's: it committed while this one was pushed
        finally:
            self._settling = settling
        if overlap:
            return len(claimed)
        return settled + await self._finish_settle()

    async def _claim(self, limit: int, batches: int) -> list[tuple[str, list[Claimed]]]:
        """Claim up to ``batches`` batches of ``limit`` in one commit, each under its own token; the empty ones left out."""
        lease, now = self.settings.lease_seconds, self.now()
        tokens = [secrets.token_hex(16) for _ in range(batches)]
        fence = self._fence()

        def claim(conn: Conn) -> tuple[Pause | None, list[tuple[str, list[Claimed]]]]:
            # The pause is read in the claim's own transaction (one lookup by key): a pause that committed is obeyed.
            if (paused := pauses.pause_of(conn, self.site, self.channel.name)) is not None:
                return paused, []
            claims = [
                (t, deliveries.claim(conn, self.site, self.channel.name, limit, t, lease, now, fence)) for t in tokens
            ]
            return None, [(t, rows) for t, rows in claims if rows]

        self.paused, claimed = await self.store.write(claim)
        return claimed

    async def _settle(
        self, token: str, claimed: Sequence[Claimed], outcomes: Sequence[Outcome], now: float, claim_next: bool
    ) -> int:
        """Record a pushed batch's outcomes, and claim the batch after the ones already claimed, in one commit."""
        save_state = self.connector.state_saver()  # eBay's revision counts ride in the same transaction
        limit = self.connector.batch_size if claim_next else 0
        next_token = secrets.token_hex(16)
        dead: list[tuple[str, str]] = []
        fence = self._fence()

        def settle(conn: Conn) -> tuple[int, list[Claimed]]:
            if save_state is not None:
                save_state(conn)
            dead.clear()  # a job may run twice (its group failed): only the committed run counts
            settled = deliveries.settle(
                conn, self.site, self.channel.name, token, claimed, outcomes, self.policy, now, self.rand, dead, fence
            )
            if not limit or pauses.pause_of(conn, self.site, self.channel.name) is not None:
                return settled, []  # paused: the next drain_once's claim finds the pause and says so
            return settled, deliveries.claim(
                conn, self.site, self.channel.name, limit, next_token, self.settings.lease_seconds, now, fence
            )

        settled, following = await self.store.write(settle)
        if dead:
            self.dead_letter_log.add(dead, outcomes, now)
        if following:
            self._ahead.append((next_token, following))
        if self.on_settled is not None:
            self.on_settled(claimed, outcomes, now)
        return settled

    async def _finish_settle(self) -> int:
        """Wait for the settle left committing, if any; returns how many deliveries it settled."""
        settling, self._settling = self._settling, None
        return 0 if settling is None else await settling

    async def drain(self, max_batches: int = 1_000_000) -> int:
        """Burst mode for tests and tools: publish everything due now, then return the count."""
        total = 0
        for _ in range(max_batches):
            done = await self.drain_once()
            if done == 0:
                break
            total += done
        return total

    async def _publish(self, claimed: Sequence[Claimed]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        updates: list[Update] = []
        for item in claimed:
            update = self._update_for(item)
            if update is None:
                outcomes.append(Outcome(item.sku, deliveries.SKIPPED))
            else:
                updates.append(update)
        if not updates:
            return outcomes
        started = time.monotonic()
        try:
            self._enter("waiting for the rate budget")
            await self.connector.budget.acquire(self.connector.cost(updates))
            self._enter("calling the channel")
            started = time.monotonic()
            # A stuck connector must not hold its lease forever: give up well before it runs out.
            async with asyncio.timeout(self.settings.lease_seconds / 2):
                results: Mapping[str, ItemResult] = await self.connector.push(updates)
        except DeliveryError as exc:
            results = {u.sku: ItemResult(exc, exc.http_status, exc.excerpt) for u in updates}
        except TimeoutError:
            error = TransientDeliveryError("the channel did not answer in time")
            results = {u.sku: ItemResult(error) for u in updates}
        except Exception as exc:  # noqa: BLE001 - a connector bug must not kill the worker; retried, and logged
            log.exception("%s: connector failed unexpectedly", self.name)
            error = TransientDeliveryError(f"unexpected connector error: {type(exc).__name__}")
            results = {u.sku: ItemResult(error) for u in updates}
        latency_ms = (time.monotonic() - started) * 1000
        outcomes.extend(self._judge(updates, results, latency_ms))
        return outcomes

    def _update_for(self, item: Claimed) -> Update | None:
        channel_rules = self.channel.rules
        channel_sku = rules.channel_sku(channel_rules, item.sku)
        stock = deliveries.shop_quantity(item)  # less the channel's own sales the shop has not yet applied
        quantity = rules.published_quantity(
            channel_rules, item.sku, item.kind, item.manage_stock, stock, item.stock_status
        )
        if channel_sku is None or quantity is None:
            return None
        key = hashlib.sha256(f"{self.site}\0{self.channel.name}\0{item.event_id}".encode()).hexdigest()[:32]
        return Update(item.sku, channel_sku, quantity, item.event_id, item.version, item.product_id, key)

    def _judge(self, updates: Sequence[Update], results: Mapping[str, ItemResult], latency_ms: float) -> list[Outcome]:
        outcomes = []
        successes = transient = 0
        auth_error: AuthDeliveryError | None = None
        held: QuotaHold | None = None
        for update in updates:
            result = results.get(update.sku) or ItemResult(
                TransientDeliveryError("the channel gave no answer for this item")
            )
            error = result.error
            common = dict(
                quantity=update.quantity, http_status=result.http_status, latency_ms=latency_ms, excerpt=result.excerpt
            )
            if error is None:
                successes += 1
                outcomes.append(Outcome(update.sku, deliveries.OK, **common))  # type: ignore[arg-type]
            elif isinstance(error, QuotaHold):
                # Settled as a pause, like a refused credential: the claim is released and the item keeps its
                # attempts and first failure, so however long the quota takes to return it is never given up.
                held = error
                outcomes.append(Outcome(update.sku, deliveries.HELD, error=str(error), **common))  # type: ignore[arg-type]
            elif isinstance(error, AuthDeliveryError):
                auth_error = error
                outcomes.append(Outcome(update.sku, deliveries.AUTH, error=str(error), **common))  # type: ignore[arg-type]
            elif isinstance(error, PermanentDeliveryError):
                outcomes.append(Outcome(update.sku, deliveries.PERMANENT, error=str(error), **common))  # type: ignore[arg-type]
            else:
                # a feed still being processed is the channel working, not failing: it must not open the circuit
                transient += not isinstance(error, PendingDeliveryError)
                retry_after = error.retry_after if isinstance(error, TransientDeliveryError) else None
                outcomes.append(
                    Outcome(update.sku, deliveries.TRANSIENT, error=str(error), retry_after=retry_after, **common)  # type: ignore[arg-type]
                )
        if successes:
            self.last_success = self.now()
        if auth_error is not None:
            self.circuit.trip(self.settings.auth_pause_seconds, str(auth_error))
            log.error("%s: paused for %.0f s: %s", self.name, self.settings.auth_pause_seconds, auth_error)
        elif held is not None:
            self._hold(held)
        elif successes:
            self.circuit.record_success()
        elif transient:
            self.circuit.record_failure(outcomes[-1].error)
        else:  # every item permanent or pending: the channel itself answered, so it is healthy
            self.circuit.record_success()
        return outcomes

    async def _release_claims(self) -> None:
        """Give back the batches claimed for pushes that are not going to happen now (stopping, or paused since)."""
        try:
            await self._finish_settle()
        finally:
            tokens = [token for token, _ in self._ahead]
            self._ahead.clear()
            if tokens:
                await self.store.write(lambda conn: deliveries.release(conn, tokens))

    def _hold(self, held: QuotaHold) -> None:
        """Open the circuit for as long as the quota is spent: the reason shows in status, and when it is over
        the usual probe (one item) finds out whether the quota really returned."""
        seconds = max(held.retry_after or 0.0, 0.001)
        if self.circuit.reason != held.message:  # the hold is extended by each probe it refuses: say so once
            log.warning("%s: held for %.0f s: %s", self.name, seconds, held)
        self.circuit.trip(seconds, held.message)

    async def _next_due(self) -> float | None:
        """When the channel's next pending delivery is due (wall clock), or None when nothing is pending."""
        return await self.store.query(lambda conn: next_due(conn, self.site, self.channel.name))

    def _may_read_back(self, due: float | None) -> bool:
        """Read back only while no update is on its way: updates go first.

        A change still waiting out the channel's ``coalesce_seconds`` is on its way, so a delivery due within that
        time keeps read-back waiting too (otherwise, all through a burst of shop changes, the waits between claims
        went to reading back quantities about to change). A retry due later does not.
        """
        if self.readback is None or self.circuit.seconds_until_probe() > 0 or not self.readback.due():
            return False
        if self.paused is not None:  # the operator stopped the channel: it is not called at all, not even to read
            return False
        return due is None or due - self.now() > self.channel.coalesce_seconds

    def _fence(self) -> Fence | None:
        return None if self.lease is None else self.lease.fence()

    def _holds_lease(self) -> bool:
        return self.lease is None or self.lease.held()

    def _idle_seconds(self, due: float | None) -> float:
        """Sleep until the next delivery is ``due``, a wake-up, or the idle poll, whichever comes first."""
        cap = self.settings.idle_poll_seconds
        if self.lease is not None:  # renewed in time, or taken over in time
            cap = min(cap, self.lease.renew_every)
        if self.readback is not None and self.readback.round_started is not None:  # mid-round: the next read's turn
            cap = min(cap, max(0.005, self.readback.not_before - self.readback.clock()))
        wait = self.circuit.seconds_until_probe()
        if wait > 0:
            return min(wait, cap)
        if due is None:
            return cap
        return min(cap, max(0.005, due - self.now()))

    async def _sleep(self, stopping: asyncio.Event, seconds: float) -> None:
        self._enter("idle")
        waiters = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(stopping.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
