"""The alert webhook: each oversold incident posted to the site's ``alert_url``, signed, at least once.

An incident is an audit entry (action ``oversold``, written in the transaction that settled the sale; see
adjustments.py), so the audit log is the outbox: the sender reads the incidents after the site's cursor
(``alert_cursors``, schema 12), posts each as ``alert.oversold`` signed with ``alert_secret`` (Standard Webhooks,
the same scheme as every signed request here; the ``webhook-id`` is the incident's own, so a resend after a crash
or a timeout can be told apart from a new incident), and moves the cursor past it only after a 2xx. A failure
waits with a doubling backoff (1 s to 15 min) and is logged once per cause; incidents
keep until ``retention_days`` prunes the audit log. The cursor starts at the newest incident when the alert
webhook is first configured: an alert is about what happens from then on, not a replay of the log.

The shop worker wakes the sender when it records an incident, so an alert leaves within a round trip of the sale
that went below zero.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import yarl

from ..config import SiteConfig
from ..errors import DeliveryError, StorageError
from ..signing import signed_headers
from ..storage import views
from ..storage.dbapi import Conn
from ..storage.store import Store
from . import outbound

log = logging.getLogger("stock_relay.alerts")
BATCH = 50
TIMEOUT_SECONDS = 15.0
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 900.0
IDLE_SECONDS = 30.0  # a wake-up is what normally starts a send; this only bounds a missed one


def start_cursor(conn: Conn, site: str, now: float) -> int:
    """Write job: the site's cursor, made at the newest incident on first use."""
    row = conn.execute("SELECT last_id FROM alert_cursors WHERE site = ?", (site,)).fetchone()
    if row is not None:
        return int(row[0])
    newest = conn.execute(
        "SELECT COALESCE(MAX(id), 0) FROM audit WHERE site = ? AND action = 'oversold'", (site,)
    ).fetchone()[0]
    conn.execute("INSERT INTO alert_cursors (site, last_id, updated_at) VALUES (?, ?, ?)", (site, newest, now))
    return int(newest)


def incidents_after(conn: Conn, site: str, after: int) -> list[tuple[int, dict[str, Any]]]:
    """View: the next incidents after the cursor, oldest first (the ``audit_oversold`` index: few rows a site)."""
    rows = conn.execute(
        f"SELECT {', '.join(views.AUDIT_COLUMNS)} FROM audit WHERE site = ? AND action = 'oversold' AND id > ?"
        " ORDER BY id LIMIT ?",
        (site, after, BATCH),
    ).fetchall()
    return [(int(row[0]), views.oversold_incident(row)) for row in rows]


class AlertSender:
    """Posts one site's oversold incidents to its ``alert_url``; ``send_due`` is one pass (tests drive it)."""

    def __init__(
        self, store: Store, site: SiteConfig, session: aiohttp.ClientSession, now: Callable[[], float] = time.time
    ) -> None:
        self.store, self.site, self.session, self.now = store, site, session, now
        self.wake = asyncio.Event()
        self.cursor: int | None = None
        self.backoff = 0.0  # seconds to wait before the next try; 0 while the receiver answers
        self._said = ""
        # Sends only while this relay works the site's shop (its @shop lease, relay/delivery/leases.py), where the
        # incidents are found; the cursor is read again after another relay may have moved it.
        self.may_work: Callable[[], bool] = lambda: True
        self.recheck_seconds = IDLE_SECONDS  # how soon to ask may_work again when it said no

    @property
    def name(self) -> str:
        return f"{self.site.id} (alerts)"

    async def send_due(self) -> int:
        """Post every incident after the cursor, in order, stopping at the first failure (raised); returns how
        many were accepted."""
        if self.cursor is None:
            now = self.now()
            self.cursor = await self.store.write(lambda conn: start_cursor(conn, self.site.id, now))
        accepted = 0
        while True:
            due = await self.store.query(functools.partial(incidents_after, site=self.site.id, after=self.cursor))
            if not due:
                return accepted
            for audit_id, incident in due:
                await self._post(audit_id, incident)
                now = self.now()
                await self.store.write(
                    lambda conn, audit_id=audit_id, now=now: conn.execute(  # type: ignore[misc]
                        "UPDATE alert_cursors SET last_id = ?, updated_at = ? WHERE site = ?",
                        (audit_id, now, self.site.id),
                    )
                )
                self.cursor = audit_id
                accepted += 1

    async def _post(self, audit_id: int, incident: dict[str, Any]) -> None:
        body = json.dumps(
            {"type": "alert.oversold", "site": self.site.id, "incident": incident}, ensure_ascii=False
        ).encode()
        msg_id = f"alert_{self.site.id}_{audit_id}"
        signed = signed_headers(self.site.alert_secrets[0], msg_id, int(self.now()), body)
        answer = await outbound.send(
            self.session,
            "POST",
            yarl.URL(self.site.alert_url),  # from the configuration: encoded by yarl, sent as it is
            timeout=TIMEOUT_SECONDS,
            what="the alert URL",
            headers={"Content-Type": "application/json", **signed},
            data=body,
        )
        if not 200 <= answer.status < 300:
            raise DeliveryError(f"the alert URL answered {answer.status}", http_status=answer.status)

    async def run(self, stopping: asyncio.Event) -> None:
        """Send what is due on every wake-up (and every IDLE_SECONDS), backing off while the receiver fails."""
        while not stopping.is_set():
            self.wake.clear()
            try:
                if self.may_work():
                    await self.send_due()
                else:  # another relay works this site's shop and sends its alerts; read the cursor anew later
                    self.cursor = None
                if self._said:
                    log.info("%s: the alert URL accepts alerts again", self.name)
                self._said, self.backoff = "", 0.0
            except (DeliveryError, StorageError) as exc:
                said = f"{type(exc).__name__}: {exc}"
                if said != self._said:
                    log.warning("%s: an oversold alert could not be sent, it is tried again: %s", self.name, exc)
                self._said = said
                self.backoff = min(BACKOFF_MAX, max(BACKOFF_FIRST, self.backoff * 2))
            wait = self.backoff or (IDLE_SECONDS if self.may_work() else self.recheck_seconds)
            waits = [asyncio.ensure_future(stopping.wait())]
            if not self.backoff:  # while the receiver fails, a new incident does not cut the backoff short
                waits.append(asyncio.ensure_future(self.wake.wait()))
            try:
                await asyncio.wait(waits, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pending in waits:
                    pending.cancel()
