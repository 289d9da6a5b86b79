"""The shop as one more destination: one worker per site sends the sales other systems reported to the plugin.

It lives beside the channel workers because it is the same job in the other direction (DESIGN.md, "and back"):
claim due rows under a lease and a token, send them, settle each by the answer, back off durably. The call is the
plugin's signed ``adjust`` route (docs/wire-protocol.md §3b), with the site's secret, through ``outbound`` like
every relay→shop call: up to 100 sales as one ``stock.adjust``; the shop answers per key ``applied`` or
``duplicate`` (done, with its quantity) or ``refused`` (a dead letter with the shop's code and message).

A whole request that fails settles every item alike: 5xx, 429, timeouts and an unreadable answer retry with the
dispatch backoff (``Retry-After`` honoured); 401/403, and any other refusal of the route itself (a plugin without
it answers 404), pause the site's sales for ``dispatch.auth_pause_seconds`` without counting an attempt; 413 splits
the batch; 400 refuses it. A crash between the shop applying and the relay settling is safe: the lease runs out
(or start-up releases it), the batch is sent again, and the plugin answers ``duplicate`` for keys it has applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import yarl

from .. import signing
from ..config import DispatchConfig, SiteConfig
from ..errors import StorageError, TransientDeliveryError
from ..ids import new_msg_id
from ..storage.dbapi import Conn
from ..storage.store import Store
from . import adjustments, outbound
from .adjustments import APPLIED, Claimed, Oversold, Result
from .deliveries import AUTH, PERMANENT, TRANSIENT, RetryPolicy
from .leases import Lease

log = logging.getLogger("stock_relay.shop")
ADJUST_PATH = "/wp-json/stock-relay/v1/adjust"
ADJUST_TYPE = "stock.adjust"
BATCH_SIZE = 100  # the plugin takes 1 to 100 items per request
TIMEOUT_SECONDS = 30.0
ANSWER_BYTES = 1024 * 1024
FINAL = ("applied", "duplicate")


class ShopWorker:
    """Claims the site's due sales, sends them to the shop, settles the answers; ``wake`` when new ones arrive."""

    def __init__(
        self,
        store: Store,
        site: SiteConfig,
        session: aiohttp.ClientSession,
        settings: DispatchConfig,
        now: Callable[[], float] = time.time,
        rand: random.Random | None = None,
    ) -> None:
        self.store = store
        self.site = site
        self.session = session
        self.settings = settings
        self.now = now
        self.rand = rand or random.Random()
        self.url = site.shop_url + ADJUST_PATH
        self.wake = asyncio.Event()
        self.policy = RetryPolicy(
            settings.backoff_base_seconds, settings.backoff_max_seconds, settings.give_up_after_hours * 3600
        )
        self._said = ""  # the last failure logged, so an outage is one line, not one per retry
        self.on_oversold: Callable[[str], None] | None = None  # called with the channel of each oversold incident
        # Which relay works this site's shop when several share the store (relay/delivery/leases.py); set by the runtime.
        self.lease: Lease | None = None

    @property
    def name(self) -> str:
        return f"{self.site.id} (shop)"  # never a channel's site/channel name

    async def run(self, stopping: asyncio.Event) -> None:
        """Work until ``stopping`` is set; the batch in hand is finished first."""
        while not stopping.is_set():
            self.wake.clear()  # before claiming: a wake-up that lands while we work is not lost
            try:
                worked = await self.drain_once()
            except StorageError as exc:
                log.warning("%s: database unavailable, pausing: %s", self.name, exc)
                await self._sleep(stopping, 1.0)
                continue
            if worked:
                continue
            due = None
            with contextlib.suppress(StorageError):  # the next claim reports it
                due = await self.store.query(lambda conn: adjustments.next_due(conn, self.site.id))
            cap = self.settings.idle_poll_seconds
            if self.lease is not None:  # renewed in time, or taken over in time
                cap = min(cap, self.lease.renew_every)
            await self._sleep(stopping, cap if due is None else min(cap, max(0.005, due - self.now())))
        if self.lease is None or self.lease.held():  # another relay's claims are its own
            with contextlib.suppress(StorageError):
                await self.store.write(lambda conn: adjustments.release(conn, self.site.id))

    async def drain(self, max_batches: int = 1_000_000) -> int:
        """Burst mode for tests and tools: send everything due now; returns how many sales were settled."""
        total = 0
        for _ in range(max_batches):
            done = await self.drain_once()
            if not done:
                break
            total += done
        return total

    async def drain_once(self) -> int:
        """Claim, send and settle at most one batch; returns how many sales it settled (0: nothing due)."""
        token, msg_id, now = secrets.token_hex(16), new_msg_id(), self.now()
        lease = self.settings.lease_seconds
        if self.lease is not None and not await self.lease.keep(self.store.write, now):
            return 0  # another relay works this site's shop
        fence = None if self.lease is None else self.lease.fence()

        def claim(conn: Conn) -> list[Claimed]:
            return adjustments.claim(conn, self.site.id, BATCH_SIZE, token, lease, now, msg_id, fence)

        claimed = await self.store.write(claim)
        if not claimed:
            return 0
        try:
            async with asyncio.timeout(lease / 2):  # a stuck call must not outlive its lease
                results = await self._send(claimed, msg_id)
        except TimeoutError:
            results = [Result(c.key, TRANSIENT, error="the shop did not answer in time") for c in claimed]
        settled_at = self.now()

        oversold: list[Oversold] = []

        def settle(conn: Conn) -> int:
            oversold.clear()  # a write job may run again after a failed commit
            return adjustments.settle(
                conn, self.site.id, token, claimed, results, self.policy, settled_at, self.rand, oversold, fence
            )

        settled = await self.store.write(settle)
        self._log(claimed, results)
        for incident in oversold:
            log.warning(
                "%s: OVERSOLD %s: sale %s left the shop at %d (stock-relay oversold)",
                self.name,
                incident.sku,
                incident.key,
                incident.quantity,
            )
            if self.on_oversold is not None:
                self.on_oversold(incident.channel)
        return settled

    async def _send(self, claimed: Sequence[Claimed], msg_id: str) -> list[Result]:
        """One stock.adjust for ``claimed``, judged per item; a 413 splits the batch in two and sends each half."""
        doc = {
            "type": ADJUST_TYPE,
            "site": self.site.id,
            "items": [{"key": c.key, "sku": c.sku, "delta": c.delta, "reason": c.reason} for c in claimed],
        }
        body = json.dumps(doc, separators=(",", ":")).encode()
        headers = signing.shop_request_headers(self.site.secrets, msg_id, int(self.now()), body)
        started = time.monotonic()
        try:
            answer = await outbound.send(
                self.session,
                "POST",
                yarl.URL(self.url),
                timeout=min(TIMEOUT_SECONDS, self.settings.lease_seconds / 2),
                what=f"the shop at {self.url}",
                headers=headers,
                data=body,
                limit=ANSWER_BYTES,
            )
        except TransientDeliveryError as exc:
            return [Result(c.key, TRANSIENT, error=exc.message) for c in claimed]
        latency_ms = (time.monotonic() - started) * 1000
        if answer.status == 413 and len(claimed) > 1:
            half = len(claimed) // 2
            return [
                *await self._send(claimed[:half], new_msg_id()),
                *await self._send(claimed[half:], new_msg_id()),
            ]
        common: dict[str, Any] = {"http_status": answer.status, "latency_ms": latency_ms}
        verdict = outbound.classify(answer)
        if verdict.kind is outbound.Kind.OK:
            return judge(claimed, answer, common)
        code, message = _error(answer)
        said = f"HTTP {answer.status}" + (f" {code}: {message}" if code else "")
        if verdict.kind in (outbound.Kind.THROTTLED, outbound.Kind.TRANSIENT):
            retry_after = verdict.retry_after
            return [Result(c.key, TRANSIENT, error=said, retry_after=retry_after, **common) for c in claimed]
        if answer.status in (400, 413):  # this batch will fail the same way again
            return [
                Result(c.key, PERMANENT, code=code or f"http_{answer.status}", error=message or said, **common)
                for c in claimed
            ]
        pause = self.settings.auth_pause_seconds
        hint = "" if verdict.kind is outbound.Kind.AUTH else " (is the Stock Relay plugin up to date?)"
        error = f"the shop refused the adjust call: {said}{hint}; paused"
        return [Result(c.key, AUTH, error=error, retry_after=pause, **common) for c in claimed]

    def _log(self, claimed: Sequence[Claimed], results: Sequence[Result]) -> None:
        refused = [r for r in results if r.status == PERMANENT]
        if refused:
            log.warning(
                "%s: the shop refused %d sale(s), e.g. %s: %s (stock-relay status)",
                self.name,
                len(refused),
                refused[0].key,
                refused[0].code,
            )
        failed = next((r for r in results if r.status in (TRANSIENT, AUTH)), None)
        if failed is None:
            self._said = ""
        elif failed.error != self._said:
            self._said = failed.error
            log.warning("%s: %d sale(s) wait for the shop: %s", self.name, len(claimed), failed.error)

    async def _sleep(self, stopping: asyncio.Event, seconds: float) -> None:
        waiters = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(stopping.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter


def judge(claimed: Sequence[Claimed], answer: outbound.Answer, common: dict[str, Any]) -> list[Result]:
    """The shop's per-item answers; an item it did not answer for (or an answer that is not one) is retried."""
    doc = answer.json()
    items = doc.get("items") if isinstance(doc, dict) and doc.get("type") == "adjust.result" else None
    by_key: dict[str, dict[str, Any]] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            by_key[item["key"]] = item
    results = []
    for c in claimed:
        item = by_key.get(c.key, {})
        result, quantity, version = item.get("result"), item.get("quantity"), item.get("version")
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            quantity = None
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            version = None  # a plugin before schema 4 answers none
        if result in FINAL:
            results.append(Result(c.key, APPLIED, quantity=quantity, version=version, answer=str(result), **common))
        elif result == "refused":
            code, message = str(item.get("code", ""))[:64], str(item.get("message", ""))[:300]
            results.append(Result(c.key, PERMANENT, answer="refused", code=code, error=message, **common))
        else:
            error = (
                "the shop's answer has no result for this sale"
                if items is not None
                else "the shop's answer is not an adjust.result"
            )
            results.append(Result(c.key, TRANSIENT, error=error, **common))
    return results


def _error(answer: outbound.Answer) -> tuple[str, str]:
    """The plugin's error code and message, if its answer has them."""
    doc = answer.json()
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("code", ""))[:64], str(error.get("message", ""))[:300]
