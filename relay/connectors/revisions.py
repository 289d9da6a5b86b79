"""eBay's revisions per listing per calendar day (Pacific time), counted so a restart does not forget them.

eBay lets a listing be revised at most 250 times a day and refuses the rest; a refusal would
dead-letter the SKU's newest quantity until an operator replays it. So the connector counts the
revisions it makes and holds a SKU that used them all back until midnight Pacific.

Held back until midnight, a SKU that sells all day would show a stale quantity on eBay for hours,
which is how a shop oversells. So once a SKU has used half its revisions, the rest are paced: its
next update waits until (time to midnight ÷ revisions left) after its last one. A SKU that sells
faster than that goes out every few minutes with its newest quantity instead of every second until
the afternoon and then not at all; the pacing is per SKU, so its neighbours are not slowed.

The counts live in memory and in SQLite (``revisions``, migration 5): the worker loads today's
once before its first push, and writes the counts that changed inside the transaction that settles
the batch that spent them. That adds a few rows to a commit the worker makes anyway, never a
transaction (or an fsync) of its own. A crash between a call and its settle loses that batch's
counts, but the batch is not settled either: its SKUs go out again and are counted then.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..storage.dbapi import Conn

DAILY_REVISIONS = 250


def pacific() -> dt.tzinfo:
    try:
        return ZoneInfo("America/Los_Angeles")
    except ZoneInfoNotFoundError:  # a system without tzdata: standard time is close enough
        return dt.timezone(dt.timedelta(hours=-8))


class RevisionBudget:
    """Revisions made per SKU today (eBay's day, Pacific time); 250 per listing per day."""

    def __init__(self, limit: int = DAILY_REVISIONS) -> None:
        self.limit = limit
        self.zone = pacific()
        self._day: dt.date | None = None
        self._counts: dict[str, int] = {}
        self._unsaved: set[str] = set()  # SKUs whose count changed since the last save
        self._last: dict[str, dt.datetime] = {}  # when each SKU was last revised (since this process started)

    def today(self, now: dt.datetime) -> dt.date:
        return now.astimezone(self.zone).date()

    def _roll(self, now: dt.datetime) -> None:
        day = self.today(now)
        if day != self._day:
            self._day, self._counts, self._unsaved, self._last = day, {}, set(), {}

    def exhausted(self, sku: str, now: dt.datetime) -> bool:
        self._roll(now)
        return self._counts.get(sku, 0) >= self.limit

    def spend(self, sku: str, now: dt.datetime) -> None:
        self._roll(now)
        self._counts[sku] = self._counts.get(sku, 0) + 1
        self._unsaved.add(sku)
        self._last[sku] = now

    def pacing_wait(self, sku: str, now: dt.datetime) -> float:
        """Seconds the SKU's next revision must wait so that its revisions left last until midnight (0: none).

        The first half of the day's revisions are free; after that each waits (time to midnight ÷ revisions
        left) from the last one. After a restart the last one's time is unknown, so the first goes at once.
        """
        self._roll(now)
        used = self._counts.get(sku, 0)
        left = self.limit - used
        last = self._last.get(sku)
        if used < self.limit / 2 or left <= 0 or last is None:
            return 0.0
        interval = self.seconds_to_midnight(now) / left
        return max(0.0, interval - (now - last).total_seconds())

    def seconds_to_midnight(self, now: dt.datetime) -> float:
        local = now.astimezone(self.zone)
        midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), local.tzinfo)
        return max(1.0, (midnight - local).total_seconds())

    def restore(self, day: dt.date, counts: Mapping[str, int]) -> None:
        """Counts loaded from the database for ``day``; a count made since (in memory) is never lowered."""
        if self._day not in (None, day):
            return  # loaded for a day that is already over
        self._day = day
        for sku, count in counts.items():
            self._counts[sku] = max(count, self._counts.get(sku, 0))

    def take_unsaved(self) -> tuple[dt.date, dict[str, int]] | None:
        """The day and the counts changed since the last call (what the next save writes), or None."""
        if self._day is None or not self._unsaved:
            return None
        changed = {sku: self._counts[sku] for sku in self._unsaved}
        self._unsaved = set()
        return self._day, changed


def load(conn: Conn, site: str, channel: str, day: dt.date) -> dict[str, int]:
    """The channel's counts for ``day``; rows of earlier days are simply not today's (each SKU has one row)."""
    rows = conn.execute(
        "SELECT sku, revisions FROM revisions WHERE site = ? AND channel = ? AND day = ?",
        (site, channel, day.isoformat()),
    )
    return {str(sku): int(count) for sku, count in rows}


def saver(site: str, channel: str, day: dt.date, counts: Mapping[str, int]) -> Callable[[Conn], None]:
    """A write job storing ``counts`` as the day's totals: absolute, so writing one twice does no harm."""
    rows = [(site, channel, sku, day.isoformat(), count) for sku, count in counts.items()]

    def save(conn: Conn) -> None:
        # One row per SKU: a new day's count replaces the old day's, so the table never outgrows the SKUs.
        conn.executemany(
            "INSERT INTO revisions (site, channel, sku, day, revisions) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (site, channel, sku) DO UPDATE SET day = excluded.day, revisions = excluded.revisions",
            rows,
        )

    return save
