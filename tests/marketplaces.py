"""Helpers for the marketplace connector tests: a relay with a vault, one marketplace channel, and a drain
that waits out short retry backoffs (bounded by a count of rounds, not by time)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from relay.cli.client import stock_event
from relay.config import ChannelConfig, Config, RateLimit
from relay.vault import Vault

from .conftest import RunningRelay, eventually, make_config

VAULT_KEY = "bXl0ZXN0dmF1bHRrZXlteXRlc3R2YXVsdGtleTAxMjM="


def marketplace_config(state: Path, channel: ChannelConfig) -> Config:
    return make_config(state, (channel,), vault_keys=(VAULT_KEY,))


def channel(kind: str, api_base: str, account: dict[str, str], **overrides: Any) -> ChannelConfig:
    base = ChannelConfig(
        name=kind, type=kind, api_base=api_base, account=account, batch_size=50, rate=RateLimit(1000, 1000)
    )
    return replace(base, **overrides)


def store_credentials(config: Config, name: str, values: dict[str, str]) -> Vault:
    vault = Vault(config.vault_dir, config.vault_keys)
    vault.write(name, values)
    return vault


async def send(r: RunningRelay, items: list[tuple[str, int]], version: int = 1) -> None:
    events = [stock_event(index + 1, sku, qty, version) for index, (sku, qty) in enumerate(items)]
    status, _ = await r.client.send_events(events)
    assert status == 202


async def settle(r: RunningRelay) -> None:
    """Drain until no delivery is pending (delivered or dead; retries are due within the test dispatcher's 50 ms
    backoff)."""

    async def nothing_pending() -> bool:
        await r.drain()
        return bool(await r.count("SELECT COUNT(*) FROM deliveries WHERE state = 'pending'") == 0)

    await eventually(nothing_pending, what="no delivery to be pending")


async def states(r: RunningRelay) -> dict[str, str]:
    rows = await r.relay.store.read("SELECT sku, state FROM deliveries", ())
    return {row[0]: row[1] for row in rows}


async def dead_reasons(r: RunningRelay) -> dict[str, str]:
    rows = await r.relay.store.read("SELECT sku, reason FROM dead_letters", ())
    return {row[0]: row[1] for row in rows}


async def audit_text(r: RunningRelay) -> str:
    rows = await r.relay.store.read("SELECT COALESCE(detail, '') FROM audit", ())
    return "\n".join(row[0] for row in rows)


async def poll_orders(r: RunningRelay, channel: str) -> int:
    """One poll of the channel's orders (its sweeper's ``poll_once``): how many sales were new."""
    return int(await r.relay.sweepers[("main", channel)].poll_once())


async def sales_cursor(r: RunningRelay, channel: str) -> str | None:
    """The channel's persisted sales cursor, or None before its first poll."""
    rows = await r.relay.store.read("SELECT cursor FROM sales_cursors WHERE site = 'main' AND channel = ?", (channel,))
    return rows[0][0] if rows else None
