"""Many dead letters: ``dead`` counts and pages them and shows the channel's answer, ``audit`` reads past one page,
and the relay logs a summary of new dead letters at most once a minute per channel."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from relay.cli.client import stock_event

from .conftest import SITE_SECRET, Reply, make_config, webhook_channel
from .procs import run_cli

REFUSED = 200
ANSWER = {"error": "quantity_out_of_range", "message": "listing is capped at 99 units"}


def refuse_all(receiver: Any, count: int) -> None:
    receiver.on("/hook", *[Reply(422, ANSWER) for _ in range(count)])


def cli_config(tmp_path: Path, state: Path) -> Path:
    """A YAML config over the same state directory and channel, for the commands run as subprocesses."""
    doc = {
        "state_dir": str(state),
        "sites": {
            "main": {
                "secret": "env:DEAD_SITE_SECRET",
                "channels": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/", "secret": "env:NOPE"}],
            }
        },
    }
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


async def cli(config: Path, *args: str) -> Any:
    """A subprocess that reads the file, off the event loop; secrets are not resolved for reading, so none is given."""
    return await asyncio.to_thread(run_cli, args[0], "-c", str(config), *args[1:])


async def test_dead_counts_limits_filters_and_shows_the_answer(start_relay, tmp_path: Path, receiver) -> None:
    """200 refused SKUs: the table says how many and shows the newest 50 with the channel's answer; --limit, --sku,
    --json and the signed API agree; audit --limit 9999 reads every entry, not the first page of 500."""
    refuse_all(receiver, REFUSED)
    state = tmp_path / "s"
    r = await start_relay(make_config(state, (webhook_channel("hook", receiver.url("/hook")),)))
    for start in range(0, REFUSED, 100):
        await r.client.send_events([stock_event(i, f"SKU-{i:03d}", 150, 1) for i in range(start + 1, start + 101)])
    await r.drain()
    config = cli_config(tmp_path, state)

    table = await cli(config, "dead")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith("200 open dead letters, the newest 50 shown"), lines[0]
    rows = [line for line in lines if line.startswith("20") and "SKU-" in line]  # each starts with its UTC time
    assert len(rows) == 50 and all("listing is capped at 99 units" in row and "HTTP 422" in row for row in rows)

    limited = json.loads((await cli(config, "dead", "--limit", "5", "--json")).stdout)
    assert len(limited) == 5 and limited[0]["http_status"] == 422
    assert json.loads(limited[0]["answer"]) == ANSWER
    assert len(json.loads((await cli(config, "dead", "--json")).stdout)) == REFUSED
    one = await cli(config, "dead", "--sku", "SKU-007")
    assert one.stdout.startswith("1 open dead letter\n") and one.stdout.count("SKU-007") == 1

    status, answer = await r.client.post("dead", {"type": "dead.query", "site": "main", "limit": 3, "sku": "SKU-009"})
    assert status == 200 and answer["total"] == 1 and answer["dead_letters"][0]["sku"] == "SKU-009"
    status, answer = await r.client.post("dead", {"type": "dead.query", "site": "main", "limit": 3})
    assert status == 200 and (answer["total"], len(answer["dead_letters"])) == (REFUSED, 3)

    entries = await r.count("SELECT COUNT(*) FROM audit")
    assert entries == 3 * REFUSED  # received, attempt, dead_letter
    audit = json.loads((await cli(config, "audit", "--limit", "9999", "--json")).stdout)
    assert len(audit) == entries and len({e["id"] for e in audit}) == entries
    assert [e["id"] for e in audit] == sorted((e["id"] for e in audit), reverse=True)
    assert len(json.loads((await cli(config, "audit", "--limit", "501", "--json")).stdout)) == 501


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_new_dead_letters_are_logged_at_most_once_a_minute(
    start_relay, tmp_path: Path, receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """30 refusals within a minute: one line at once for the first, one a minute later for the other 29, each with
    an example and the channel's answer; nothing more while nothing new is refused."""
    import time

    clock = Clock(time.time())
    refuse_all(receiver, 30)
    r = await start_relay(make_config(tmp_path / "s", (webhook_channel("hook", receiver.url("/hook")),)), now=clock)
    worker = r.relay.workers[("main", "hook")]
    caplog.set_level(logging.WARNING, logger="stock_relay.dispatch")

    def lines() -> list[str]:
        return [rec.getMessage() for rec in caplog.records if "dead letter" in rec.getMessage()]

    body, headers = r.client.encode(
        {"type": "stock.batch", "site": "main", "events": [stock_event(i, f"SKU-{i}", 150, 1) for i in range(1, 31)]},
        timestamp=int(clock.now),
    )
    status, _, _ = await r.post_raw("/v1/sites/main/events", body, headers)
    assert status == 202
    assert await r.drain() == 30
    assert len(lines()) == 1 and lines()[0].startswith("main/hook: 1 item became a dead letter, e.g. SKU SKU-")
    assert "HTTP 422" in lines()[0] and "listing is capped at 99 units" in lines()[0]

    clock.now += 59
    await worker.drain_once()
    assert len(lines()) == 1  # the window is not over: still counting
    clock.now += 2
    await worker.drain_once()
    assert len(lines()) == 2
    assert lines()[1].startswith("main/hook: 29 items became dead letters in the last 61 s, e.g. SKU SKU-")
    assert "listing is capped at 99 units" in lines()[1]
    clock.now += 600
    await worker.drain_once()
    assert len(lines()) == 2 and SITE_SECRET not in caplog.text
