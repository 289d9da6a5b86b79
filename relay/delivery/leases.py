"""One active worker per (site, channel) across every relay that shares a store.

Several relays on one PostgreSQL store each run a worker for every channel, but only the one holding the channel's
lease works it: claims, pushes, reads back, polls its orders. The same holds for a site's shop worker (``@shop``),
whose holder also runs the site's reconciliation passes and sends its oversold alerts. On SQLite there is one relay,
which simply holds every lease.

A lease is a row: holder (this relay's id), token, and until when it holds. The holder renews it every
``renew_every`` (a sixth of ``dispatch.lease_seconds``) for ``term`` (two thirds of it); another relay takes it
over once ``term`` has passed without a renewal, so a relay that dies is replaced within ``lease_seconds``. Each
takeover increases the token: the fencing token. Every claim and settle of a channel checks the token in its own
statement (``FENCE``, relay/delivery/deliveries.py); the shop worker's settle, which writes a statement per sale,
checks it first in the same transaction (``still_fenced``). So a relay that
lost its lease (paused by the kernel, cut off from the database, slow) cannot claim or record an outcome after
another has taken over. It also stops by itself: it works only while its last renewal is younger than ``term`` by
its own monotonic clock, and a push is bounded by half of ``lease_seconds`` (dispatch.py), so by the time another
relay can take over, the old holder has stopped sending.

On a takeover the new holder gives back the rows the old one had claimed (their claim tokens can no longer settle:
the fence refuses them), so what was in flight is sent again at once rather than when its row lease runs out. A
relay restarted on the same state directory takes its predecessor's leases back at once (``expire_own``).
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import StorageError
from ..storage.dbapi import Conn

SHOP = "@shop"

# Take the lease, or renew it: a row that is ours, or whose term ran out, becomes ours until ?4; the token goes up
# when the holder changes. Nothing is returned when another relay holds it.
TAKE = (
    "INSERT INTO worker_leases AS l (site, worker, holder, token, lease_until) VALUES (?1, ?2, ?3, 1, ?4)"
    " ON CONFLICT (site, worker) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until,"
    "   token = CASE WHEN l.holder = excluded.holder THEN l.token ELSE l.token + 1 END"
    " WHERE l.holder = excluded.holder OR l.lease_until < ?5"
    " RETURNING token"
)
# The fence, appended to a claim's or settle's WHERE: the worker's lease row still names it with its token.
FENCE = " AND EXISTS (SELECT 1 FROM worker_leases WHERE site = ? AND worker = ? AND holder = ? AND token = ?)"
GIVE_UP = "UPDATE worker_leases SET lease_until = 0 WHERE site = ? AND worker = ? AND holder = ? AND token = ?"


def relay_id(instance: str) -> str:
    """This relay process: its state directory's instance id, host, pid and a random part. A restarted relay is a
    new holder, but one that knows its predecessor's leases by the instance (``expire_own``)."""
    return f"{instance}@{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def instance_id(state_dir: Path) -> str:
    """The state directory's own id (``relay.id``, made at its first start): what a relay restarted on the same
    state directory has in common with the one before it."""
    path = state_dir / "relay.id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        value = secrets.token_hex(8)
        partial = path.with_name(path.name + ".tmp")
        partial.write_text(value + "\n")
        partial.replace(path)
        return value


def expire_own(conn: Conn, instance: str) -> int:
    """Write job at start-up, with the state directory locked: the leases the previous relay of this state directory
    held end now (it is gone, the lock says so), so this one takes its channels back at once instead of waiting out
    their term. The takeover raises each token and gives back what it had claimed, as any takeover does."""
    return conn.execute("UPDATE worker_leases SET lease_until = 0 WHERE holder LIKE ?", (instance + "@%",)).rowcount


@dataclass(frozen=True)
class Fence:
    """What a claim or settle of this worker must still find in worker_leases to write anything."""

    site: str
    worker: str
    holder: str
    token: int


def fenced(sql: str, parameters: tuple[object, ...], fence: Fence | None) -> tuple[str, tuple[object, ...]]:
    """``sql`` (its WHERE last, plain ``?`` placeholders) that matches nothing once ``fence`` no longer holds."""
    if fence is None:
        return sql, parameters
    return sql + FENCE, (*parameters, fence.site, fence.worker, fence.holder, fence.token)


def still_fenced(conn: Conn, fence: Fence | None) -> bool:
    """Whether ``fence`` still holds, read in the caller's transaction (a job that writes several statements)."""
    if fence is None:
        return True
    found = conn.execute("SELECT 1 WHERE TRUE" + FENCE, (fence.site, fence.worker, fence.holder, fence.token))
    return found.fetchone() is not None


@dataclass
class Lease:
    """This relay's hold on one worker's lease; ``held()`` is true only while it may work."""

    site: str
    worker: str
    holder: str
    lease_seconds: float
    shared: bool = False  # several relays may share the store (PostgreSQL); on SQLite there is only this one
    clock: Callable[[], float] = time.monotonic
    token: int | None = None
    renewed_at: float = float("-inf")  # monotonic time the last successful renewal began
    tried_at: float = float("-inf")
    takeovers: int = 0
    # Set when this relay took the lease over from another holder (not at the first take of a new row, nor on a
    # renewal); the worker reads it once (``taken_over``) to start the channel's rate budgets empty.
    from_another: bool = False

    @property
    def term(self) -> float:
        return self.lease_seconds * 2 / 3

    @property
    def renew_every(self) -> float:
        return self.lease_seconds / 6

    def held(self) -> bool:
        return self.token is not None and self.clock() - self.renewed_at < self.term

    def fence(self) -> Fence | None:
        """The token last held: the database, not this relay's clock, decides whether it still holds."""
        return None if self.token is None else Fence(self.site, self.worker, self.holder, self.token)

    async def keep(self, write: Callable[[Callable[[Conn], int | None]], Awaitable[int | None]], now: float) -> bool:
        """Take or renew the lease when it is time to (at most every ``renew_every``); returns ``held()``.

        ``now`` is wall-clock time, what lease_until is in; ``term`` is measured on the monotonic clock from the
        moment the renewal began, so a slow commit only shortens the hold."""
        started = self.clock()
        if started - self.tried_at < self.renew_every:
            return self.held()
        self.tried_at = started
        try:
            token = await write(lambda conn: take(conn, self, now))
        except StorageError:
            return self.held()  # cannot renew: keep working only while the last term lasts
        if token is None:
            self.token = None
            return False
        if token != self.token and token > 1:
            self.takeovers += 1
            self.from_another = True
        self.token, self.renewed_at = token, started
        return True

    def taken_over(self) -> bool:
        """Whether this relay took the lease from another since last asked (see ``from_another``)."""
        taken, self.from_another = self.from_another, False
        return taken


def take(conn: Conn, lease: Lease, now: float) -> int | None:
    """Write job: take or renew ``lease``; on a takeover, give back what the previous holder had claimed."""
    row = conn.execute(TAKE, (lease.site, lease.worker, lease.holder, now + lease.term, now)).fetchone()
    if row is None:
        return None
    token = int(row[0])
    if token != lease.token:
        release_claims(conn, lease.site, lease.worker)
    return token


def release_claims(conn: Conn, site: str, worker: str) -> int:
    """Give back every claim of one worker's rows: at a takeover, and at this relay's stop."""
    if worker == SHOP:
        return conn.execute(
            "UPDATE sales SET claim_token = NULL, lease_until = NULL WHERE site = ? AND claim_token IS NOT NULL",
            (site,),
        ).rowcount
    if worker.startswith("@"):
        return 0
    return conn.execute(
        "UPDATE deliveries SET claim_token = NULL, lease_until = NULL"
        " WHERE site = ? AND channel = ? AND claim_token IS NOT NULL",
        (site, worker),
    ).rowcount


def give_back(conn: Conn, held: list[Lease]) -> int:
    """Write job at a clean stop: release the claims of the workers this relay holds, and their leases, so another
    relay takes over at once; returns how many claims were released."""
    released = 0
    for lease in held:
        if lease.token is not None:
            released += release_claims(conn, lease.site, lease.worker)
            conn.execute(GIVE_UP, (lease.site, lease.worker, lease.holder, lease.token))
    return released
