"""Identifiers the relay makes: ULIDs, and the webhook-ids and event ids built on them."""

from __future__ import annotations

import os
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid() -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, Crockford base32 (sortable by time)."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def new_msg_id() -> str:
    return "msg_" + ulid()


def new_event_id() -> str:
    return "evt_" + ulid()
