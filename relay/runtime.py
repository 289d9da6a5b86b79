"""The running relay: the store, one connector and worker per channel, and an orderly start and stop."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
import time
from collections.abc import Callable
from typing import IO

import aiohttp

from . import __version__, connectors
from .config import Config, SiteConfig
from .delivery import adjustments, deliveries, leases
from .delivery.alerts import AlertSender
from .delivery.dispatch import ChannelWorker
from .delivery.shop import ShopWorker
from .errors import ReconcileError, StorageError
from .http.metrics import Metrics
from .intake.sweep import SalesSweeper
from .repair import reconcile, shop_wake
from .repair.readback import ReadBack
from .storage import retention as retention_module
from .storage.dbapi import Conn
from .storage.store import open_store
from .vault import Vault

log = logging.getLogger("stock_relay")
HOUSEKEEPING_SECONDS = 60.0
RECONCILE_POLL_SECONDS = 30.0  # how often a site's reconciliation schedule is looked at
# docs/wire-protocol.md asks for at least 2 x the timestamp tolerance; an hour also covers a plugin that resends
# a batch after a long relay outage (its timestamp is fresh, its webhook-id is the original).
REQUEST_ID_MIN_KEEP_SECONDS = 3600.0
PRUNE_BATCH = 1000


def prune_request_ids(conn: Conn, older_than: float) -> tuple[int, bool]:
    """Write job: drop up to PRUNE_BATCH remembered webhook-ids received before ``older_than`` (by the
    ``requests_age`` index); (deleted, more to do)."""
    deleted = conn.execute(
        "DELETE FROM requests WHERE (site, msg_id) IN"
        " (SELECT site, msg_id FROM requests WHERE received_at < ? LIMIT ?)",
        (older_than, PRUNE_BATCH),
    ).rowcount
    return deleted, deleted == PRUNE_BATCH


def release_everything(conn: Conn) -> int:
    """Write job, SQLite only (one relay per store, the state directory's lock says so): every claim and lease left by
    a previous run of this relay, or by its stop, is given back."""
    conn.execute("DELETE FROM worker_leases")
    return deliveries.release(conn) + adjustments.release(conn)


class Relay:
    def __init__(self, config: Config, now: Callable[[], float] = time.time) -> None:
        self.config = config
        self.now = now
        self.store = open_store(config.store_location)
        self.workers: dict[tuple[str, str], ChannelWorker] = {}
        self.shop_workers: dict[str, ShopWorker] = {}  # per site with a shop_url: reported sales → the shop
        self.sweepers: dict[tuple[str, str], SalesSweeper] = {}  # channels whose orders are polled for sales
        self.alert_senders: dict[str, AlertSender] = {}  # per site with an alert_url: oversold incidents → it
        self.stopping = asyncio.Event()
        self.shutting_down = False
        self._tasks: list[asyncio.Task[None]] = []
        self._event_walk = retention_module.Walk()  # where housekeeping's slices of old history stopped
        self._dead_letter_walk = retention_module.Walk()
        self._session: aiohttp.ClientSession | None = None
        self._lock_file: IO[str] | None = None
        self._stopped = False
        self.metrics = Metrics()
        self.holder = ""  # this process, in worker_leases (leases.relay_id), once the state directory is locked
        # Set by whoever opens the HTTP listener (cli.serve): a shop woken before it could send into nothing.
        self.serving = asyncio.Event()

    async def start(self, run_workers: bool = True) -> None:
        """Open the database and start every channel's worker (``run_workers=False``: tests drive them)."""
        connectors.check(self.config)
        self._lock_state_dir()
        try:
            await self._open(run_workers)
        except BaseException:
            # Every thread and file start-up opened must go, or the process cannot exit and systemd's
            # Restart=on-failure never fires (the store's reader thread kept a failed start alive).
            await self._close_resources()
            raise

    async def _open(self, run_workers: bool) -> None:
        """Everything start() does once the state directory is locked."""
        await self.store.open()
        self.store.on_notify = self._woken
        instance = leases.instance_id(self.config.state_dir)
        self.holder = leases.relay_id(instance)
        if self.config.store is None:  # SQLite: the state directory's lock proves no other relay holds a claim
            released = await self.store.write(release_everything)
            if released:
                log.info("released %d claims left by a previous run", released)
        else:  # a shared store: what this state directory's previous relay held is taken back at once
            await self.store.write(lambda conn: leases.expire_own(conn, instance))
        self._session = aiohttp.ClientSession(headers={"user-agent": f"stock-relay/{__version__}"})
        vault = Vault(self.config.vault_dir, self.config.vault_keys) if self.config.vault_keys else None
        for site in self.config.sites:
            for channel in site.channels:
                connector = connectors.build(site.id, channel, self._session, vault)
                worker = ChannelWorker(self.store, site.id, channel, connector, self.config.dispatch, self.now)
                worker.on_settled = functools.partial(self.metrics.count_settled, site.id, channel.name)
                worker.lease = self._lease(site.id, channel.name)
                if ReadBack.enabled_for(connector, site.reconcile):
                    worker.readback = ReadBack(
                        self.store, site.id, channel, connector, site.reconcile, self.now, has_shop=bool(site.shop_url)
                    )
                self.workers[(site.id, channel.name)] = worker
                if site.shop_url and connector.lists_sales and channel.import_sales:
                    wake = functools.partial(self.wake_shop, site.id)
                    sweeper = SalesSweeper(self.store, site, channel, connector, self.now, wake)
                    sweeper.may_work, sweeper.recheck_seconds = worker.lease.held, worker.lease.renew_every
                    self.sweepers[(site.id, channel.name)] = sweeper
            if site.alert_url:
                self.alert_senders[site.id] = AlertSender(self.store, site, self._session, self.now)
            if site.shop_url:
                shop = ShopWorker(self.store, site, self._session, self.config.dispatch, self.now)
                shop.on_oversold = functools.partial(self._oversold, site.id)
                shop.lease = self._lease(site.id, leases.SHOP)
                self.shop_workers[site.id] = shop
                if site.id in self.alert_senders:
                    sender = self.alert_senders[site.id]
                    sender.may_work, sender.recheck_seconds = shop.lease.held, shop.lease.renew_every
        if run_workers:
            await self._take_leases()
            for worker in self.workers.values():
                self._tasks.append(asyncio.create_task(worker.run(self.stopping), name=f"worker {worker.name}"))
            for shop in self.shop_workers.values():
                self._tasks.append(asyncio.create_task(shop.run(self.stopping), name=f"worker {shop.name}"))
            for sweeper in self.sweepers.values():
                self._tasks.append(asyncio.create_task(sweeper.run(self.stopping), name=f"worker {sweeper.name}"))
            for sender in self.alert_senders.values():
                self._tasks.append(asyncio.create_task(sender.run(self.stopping), name=f"worker {sender.name}"))
            self._tasks.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
            for site in self.config.sites:
                if site.shop_url and (site.reconcile.incremental_minutes or site.reconcile.full_hour is not None):
                    self._tasks.append(asyncio.create_task(self._reconciling(site), name=f"reconcile {site.id}"))
            for site in self.config.sites:
                if site.shop_url:
                    self._tasks.append(asyncio.create_task(self._wake_shop(site), name=f"wake {site.id}"))

    async def _take_leases(self) -> None:
        """Before the workers start: every lease that is free, so the workers, and the sweepers and alert senders
        that follow them, start at once (a lease another relay holds is tried again by its worker)."""
        with contextlib.suppress(StorageError):  # the workers take them as soon as the store answers
            for lease in self._leases():
                await lease.keep(self.store.write, self.now())

    def _leases(self) -> list[leases.Lease]:
        """Every lease this relay's workers and shop workers keep."""
        held = [w.lease for w in self.workers.values() if w.lease is not None]
        return held + [s.lease for s in self.shop_workers.values() if s.lease is not None]

    def _lease(self, site: str, worker: str) -> leases.Lease:
        return leases.Lease(
            site, worker, self.holder, self.config.dispatch.lease_seconds, self.config.store is not None
        )

    async def _wake_shop(self, site: SiteConfig) -> None:
        """Once the relay listens, ask the shop to send what waited while it was down (shop_wake: logs, never raises)."""
        waits = [asyncio.ensure_future(self.serving.wait()), asyncio.ensure_future(self.stopping.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        if self.serving.is_set() and not self.stopping.is_set() and self._session is not None:
            await shop_wake.wake_shop(site, self._session, self.now)

    async def _reconciling(self, site: SiteConfig) -> None:
        """Run the passes the site's schedule asks for (see reconcile.due_kind); a failure waits for the next."""
        assert self._session is not None
        client = reconcile.ShopClient(site, self._session, self.now)
        said = ""
        while not self.stopping.is_set():
            shop = self.shop_workers.get(site.id)
            try:
                kind = await self.store.query(lambda conn: reconcile.due_kind(conn, site, self.now()))
                if shop is not None and shop.lease is not None and not shop.lease.held():
                    kind = None  # another relay works this site's shop, and runs its passes
                if kind is not None:
                    await reconcile.run_pass(
                        self.store.write, site, client, kind == reconcile.FULL, self.now, lambda _: self.wake(site.id)
                    )
                    said = ""
            except ReconcileError as exc:
                if str(exc) != said:  # once per distinct cause, not every few minutes while the shop is down
                    log.warning("%s: reconciliation failed: %s", site.id, exc)
                said = str(exc)
            except StorageError as exc:
                log.warning("%s: reconciliation paused: %s", site.id, exc)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), RECONCILE_POLL_SECONDS)

    async def _housekeeping(self) -> None:
        """Prune old history now and then, and keep the WAL small; see ``housekeep``."""
        while not self.stopping.is_set():
            with contextlib.suppress(StorageError):
                await self.housekeep()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), HOUSEKEEPING_SECONDS)

    async def housekeep(self) -> int:
        """One round: forget old webhook-ids, prune history past ``retention_days``, checkpoint the WAL.

        Every delete is a small batch in a write job of its own, so ingest never waits long behind it.
        Returns how many rows were deleted.
        """
        keep = max(REQUEST_ID_MIN_KEEP_SECONDS, 2 * self.config.timestamp_tolerance_seconds)
        retention = self.config.retention_days * 86_400
        channels = sorted({c.name for site in self.config.sites for c in site.channels})
        jobs: list[tuple[Callable[[Conn, float], tuple[int, bool]], float]] = [
            (prune_request_ids, keep),
            (retention_module.prune_audit, retention),
            (functools.partial(retention_module.prune_events, channels=channels, walk=self._event_walk), retention),
            (functools.partial(retention_module.prune_dead_letters, walk=self._dead_letter_walk), retention),
        ]
        deleted = 0
        for walk in (self._event_walk, self._dead_letter_walk):
            walk.begin_round(self.now())
        try:
            for job, age in jobs:
                more = True
                while more and not self.stopping.is_set():
                    before = self.now() - age
                    count, more = await self.store.write(lambda conn, job=job, before=before: job(conn, before))  # type: ignore[misc]
                    deleted += count
        finally:  # also when a prune failed on a full disk: the checkpoint is what gives the WAL's space back
            await self.store.checkpoint()
        return deleted

    def stalled_workers(self) -> dict[str, str]:
        """Workers that stopped, or are stuck in one step beyond ``dispatch.stall_seconds``, with what they do."""
        limit = self.config.dispatch.stall_seconds
        tasks = {task.get_name(): task for task in self._tasks}
        found = {}
        for worker in self.workers.values():
            task = tasks.get(f"worker {worker.name}")
            if task is not None and task.done():
                found[worker.name] = "its loop has stopped (see the log)"
            elif (age := worker.stalled_for(limit)) is not None:
                found[worker.name] = f"stuck {worker.phase} for {age:.0f} s"
        looping = [w.name for w in self.shop_workers.values()] + [w.name for w in self.sweepers.values()]
        for name in looping + [sender.name for sender in self.alert_senders.values()]:
            task = tasks.get(f"worker {name}")
            if task is not None and task.done():
                found[name] = "its loop has stopped (see the log)"
        return found

    async def database_writable(self, timeout: float = 2.0) -> str | None:
        """None when a write commits in time, else why not."""
        try:
            now = self.now()
            await asyncio.wait_for(
                self.store.write(
                    lambda conn: conn.execute(
                        "INSERT INTO heartbeat (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                        (now,),
                    )
                ),
                timeout,
            )
        except TimeoutError:
            return f"a write did not commit within {timeout:g} s"
        except StorageError as exc:
            return str(exc)
        return None

    def _lock_state_dir(self) -> None:
        """One relay per state directory: the lock is what makes releasing all claims at start-up safe."""
        state = self.config.state_dir
        try:
            state.mkdir(parents=True, exist_ok=True)
            handle = open(state / "relay.lock", "a+")  # noqa: SIM115 - held open for the life of the relay
        except OSError as exc:  # a read-only mount or wrong owner: say so, it is not a damaged database
            raise StorageError(
                f"cannot write to the state directory {state} ({exc.strerror}); the relay needs it writable:"
                " check the mount, free space and the owner (the unit's ReadWritePaths=)"
            ) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise StorageError(f"another stock-relay is already running on {state}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    def _unlock_state_dir(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _woken(self, payload: str) -> None:
        """A wake-up committed by a relay sharing the store (dbapi.notify): a site's channels, or its shop."""
        site, _, worker = payload.partition("\t")
        if worker == leases.SHOP:
            self.wake_shop(site)
        else:
            self.wake(site)

    def wake(self, site: str) -> None:
        """New deliveries are due for ``site``: its workers should look now, not at their next poll."""
        for (site_id, _), worker in self.workers.items():
            if site_id == site:
                worker.wake.set()

    def _oversold(self, site: str, channel: str) -> None:
        """An oversold incident was recorded: count it, and post it to the site's alert URL now."""
        self.metrics.count_oversold(site, channel)
        sender = self.alert_senders.get(site)
        if sender is not None:
            sender.wake.set()

    def wake_shop(self, site: str) -> None:
        """New sales are due for ``site``'s shop: its worker should send them now."""
        worker = self.shop_workers.get(site)
        if worker is not None:
            worker.wake.set()

    def begin_shutdown(self) -> None:
        """Stop intake: ingest answers 503 shutting_down from now on."""
        self.shutting_down = True

    async def stop(self) -> None:
        """Finish the batches in hand (within the grace period), release leases, close the database."""
        if self._stopped:
            return
        self._stopped = True
        self.begin_shutdown()
        self.stopping.set()
        if self._tasks:
            done, pending = await asyncio.wait(self._tasks, timeout=self.config.shutdown_grace_seconds)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._tasks.clear()
        with contextlib.suppress(StorageError):
            # Whatever a cancelled worker still held is due again at once: for the next start, or on a shared store
            # for the relay that takes over the leases given back here.
            if self.config.store is None:
                await self.store.write(release_everything)
            else:
                held = self._leases()
                await self.store.write(lambda conn: leases.give_back(conn, held))
        await self._close_resources()

    async def _close_resources(self) -> None:
        """Close connectors, the HTTP session and the database, then unlock the state directory."""
        for worker in self.workers.values():
            await worker.connector.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.store.close()
        self._unlock_state_dir()
