"""The audit log, the operator's record: every row of it is written here.

An entry is a plain tuple in the order of ``COLUMNS`` (the table is in store.py), so ingest can build one per
event and write a whole group with one ``executemany`` at no more cost than a statement of its own; ``entry``
builds one by name where speed does not matter. Readers (views.py, the CLI) select the columns they show.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .dbapi import Conn

COLUMNS = (
    "at",
    "site",
    "channel",
    "sku",
    "event_id",
    "version",
    "action",
    "quantity",
    "http_status",
    "latency_ms",
    "detail",
)
Entry = tuple[
    float,  # at
    str,  # site
    str | None,  # channel
    str | None,  # sku
    str | None,  # event_id
    int | None,  # version
    str,  # action
    int | None,  # quantity
    int | None,  # http_status
    float | None,  # latency_ms
    str | None,  # detail: JSON
]
_INSERT = f"INSERT INTO audit ({', '.join(COLUMNS)}) VALUES ({','.join('?' * len(COLUMNS))})"


def entry(
    at: float,
    site: str,
    action: str,
    *,
    channel: str | None = None,
    sku: str | None = None,
    event_id: str | None = None,
    version: int | None = None,
    quantity: int | None = None,
    http_status: int | None = None,
    latency_ms: float | None = None,
    detail: dict[str, Any] | None = None,
) -> Entry:
    """One entry, its ``detail`` as JSON (an empty one: none)."""
    text = json.dumps(detail) if detail else None
    return (at, site, channel, sku, event_id, version, action, quantity, http_status, latency_ms, text)


def record(conn: Conn, entries: Iterable[Entry]) -> None:
    """Write entries, in order, with one statement (inside the caller's write job)."""
    conn.executemany(_INSERT, entries)
