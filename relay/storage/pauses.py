"""An operator's pause of a channel: persisted, with the reason and who paused it, audited, and obeyed by the claim.

A pause is one row of ``channel_pauses`` (schema 10) while it lasts. The dispatcher's claim (relay/delivery/dispatch.py)
looks the row up by its primary key inside the claim's own write transaction, so once a pause has committed no batch
is claimed for the channel, whether the pause came over the signed API, from the CLI on the database file, or before a
restart. Nothing else changes: ingest, reconciliation, read-back's repairs and replays keep making deliveries due, and
they coalesce as usual, so a resumed channel gets each SKU's newest quantity once, in the order they became due.

Resuming gives back the time the pause took from the retry budget: a delivery that was failing before the pause has its
``first_failure_at`` moved forward by the length of the pause, so ``give_up_after_hours`` counts only time the relay
spent trying and a long pause never turns a retry into a dead letter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import audit
from .dbapi import Conn

MAX_REASON = 500
MAX_ACTOR = 191  # a WordPress user_login is at most 60; room for "name (via CLI)" and e-mail addresses


@dataclass(frozen=True, slots=True)
class Pause:
    channel: str
    reason: str
    actor: str
    paused_at: float

    def as_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "actor": self.actor, "paused_at": self.paused_at}


def pause_of(conn: Conn, site: str, channel: str) -> Pause | None:
    """The channel's pause, or None: one lookup by primary key (the claim runs it every time it claims)."""
    row = conn.execute(
        "SELECT reason, actor, paused_at FROM channel_pauses WHERE site = ? AND channel = ?", (site, channel)
    ).fetchone()
    return None if row is None else Pause(channel, row[0], row[1], float(row[2]))


def pauses(conn: Conn, site: str) -> dict[str, Pause]:
    """Every paused channel of the site, by name."""
    rows = conn.execute(
        "SELECT channel, reason, actor, paused_at FROM channel_pauses WHERE site = ?", (site,)
    ).fetchall()
    return {row[0]: Pause(row[0], row[1], row[2], float(row[3])) for row in rows}


def pause(
    conn: Conn, site: str, channels: Sequence[str], reason: str, actor: str, now: float
) -> tuple[list[Pause], list[Pause]]:
    """Write job: pause each channel not paused yet. Returns (paused now, already paused): an existing pause keeps its
    reason, actor and time, since those say who stopped the channel and why, which a second pause does not change."""
    done, already = [], []
    for channel in channels:
        existing = pause_of(conn, site, channel)
        if existing is not None:
            already.append(existing)
            continue
        conn.execute(
            "INSERT INTO channel_pauses (site, channel, reason, actor, paused_at) VALUES (?, ?, ?, ?, ?)",
            (site, channel, reason, actor, now),
        )
        done.append(Pause(channel, reason, actor, now))
    audit.record(
        conn,
        [audit.entry(now, site, "paused", channel=p.channel, detail={"reason": reason, "actor": actor}) for p in done],
    )
    return done, already


def resume(conn: Conn, site: str, channels: Sequence[str], actor: str, now: float) -> list[Pause]:
    """Write job: lift each channel's pause; returns the pauses lifted (a channel not paused is left alone).

    A failing delivery's ``first_failure_at`` moves forward by the pause's length (see the module's docstring); the
    rows are found through deliveries_due (site, channel, state)."""
    lifted = []
    for channel in channels:
        found = pause_of(conn, site, channel)
        if found is None:
            continue
        conn.execute("DELETE FROM channel_pauses WHERE site = ? AND channel = ?", (site, channel))
        conn.execute(
            "UPDATE deliveries SET first_failure_at = first_failure_at + ?"
            " WHERE site = ? AND channel = ? AND state = 'pending' AND first_failure_at IS NOT NULL",
            (max(0.0, now - found.paused_at), site, channel),
        )
        lifted.append(found)
    audit.record(
        conn,
        [
            audit.entry(
                now,
                site,
                "resumed",
                channel=p.channel,
                detail={
                    "actor": actor,
                    "paused_by": p.actor,
                    "reason": p.reason,
                    "paused_for": round(now - p.paused_at),
                },
            )
            for p in lifted
        ],
    )
    return lifted
