"""End to end: ``stock-relay serve`` as a subprocess, SIGKILLed mid-stream and restarted; nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import aiohttp
import yaml

from relay.cli.client import SignedClient, new_msg_id, stock_event

from .backend import read_rows
from .conftest import CHANNEL_SECRET, SITE_SECRET, eventually
from .procs import RelayProcess

SKUS = 150
BATCHES = 60


def write_config(tmp_path: Path, receiver) -> Path:
    channel = {
        "type": "webhook",
        "secret": "env:E2E_HOOK_SECRET",
        "batch_size": 10,
        "rate": {"per_second": 500, "burst": 500},
    }
    doc = {
        "state_dir": str(tmp_path / "state"),
        "listen": {"host": "127.0.0.1", "port": 0},
        "shutdown_grace_seconds": 5,
        "dispatch": {"backoff_base_seconds": 0.05, "backoff_max_seconds": 0.5, "idle_poll_seconds": 0.1},
        "sites": {
            "main": {
                "secret": "env:E2E_SITE_SECRET",
                "max_requests_per_second": 0,
                "channels": [
                    dict(channel, name="alpha", url=receiver.url("/alpha")),
                    dict(channel, name="beta", url=receiver.url("/beta")),
                ],
            }
        },
    }
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


async def test_sigkill_mid_stream_loses_nothing(tmp_path: Path, receiver) -> None:
    """Every event that got a 202 is in the database after a SIGKILL and restart, and both channels converge."""
    env = {"E2E_SITE_SECRET": SITE_SECRET, "E2E_HOOK_SECRET": CHANNEL_SECRET}
    relay = RelayProcess(write_config(tmp_path, receiver), env, tmp_path / "relay.log")
    relay.start()
    rand = random.Random(42)
    truth: dict[str, int] = {}
    versions: dict[int, int] = {}
    acknowledged: set[str] = set()
    killed = asyncio.Event()

    async with aiohttp.ClientSession() as session:

        async def produce() -> None:
            for n in range(BATCHES):
                events = []
                for _ in range(10):
                    pid = rand.randint(1, SKUS)
                    versions[pid] = versions.get(pid, 0) + 1
                    qty = rand.randint(0, 50)
                    truth[f"SKU-{pid}"] = qty
                    events.append(stock_event(pid, f"SKU-{pid}", qty, versions[pid]))
                msg_id = new_msg_id()
                while True:  # like the plugin: keep the batch and resend it, same webhook-id, until a 202
                    try:
                        client = SignedClient(relay.url, "main", SITE_SECRET, session)
                        status, answer = await client.send_events(events, msg_id=msg_id)
                        if status == 202:
                            acknowledged.update(e["id"] for e in events)
                            break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.05)
                if n == BATCHES // 3:
                    killed.set()
                await asyncio.sleep(0.01)

        producer = asyncio.create_task(produce())
        await killed.wait()
        relay.kill()  # SIGKILL: no chance to release leases or flush anything
        await asyncio.sleep(0.3)
        relay.start()
        await producer

        def nothing_diverged() -> bool:
            for path in ("/alpha", "/beta"):
                diverged = {
                    s: (receiver.quantities.get(path, {}).get(s), q)
                    for s, q in truth.items()
                    if receiver.quantities.get(path, {}).get(s) != q
                }
                assert not diverged, f"{path} diverged on {len(diverged)} SKUs: {list(diverged.items())[:5]}"
            return True

        await eventually(nothing_diverged, what="both channels to show every SKU's last quantity")
    assert relay.terminate() == 0
    stored = {row[0] for row in read_rows(tmp_path / "state" / "relay.sqlite3", "SELECT event_id FROM events")}
    assert acknowledged <= stored, f"{len(acknowledged - stored)} acknowledged events lost"
    assert len(acknowledged) == BATCHES * 10
    assert receiver.bad_signatures == 0
    assert "stopped cleanly" in relay.log()
