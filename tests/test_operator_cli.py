"""The operator's commands as a user runs them: on the local file, and against a running relay over the API."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from relay import signing
from relay.cli.client import SignedClient, stock_event
from relay.storage.dbapi import Conn
from relay.storage.store import open_store

from .backend import store_for
from .conftest import eventually
from .procs import RelayProcess, on_suite_store, relay_command, run_cli


def write_config(tmp_path: Path, channels: list[dict[str, Any]], secret: str) -> tuple[Path, dict[str, str]]:
    doc = {
        "state_dir": str(tmp_path / "state"),
        "listen": {"port": 0},
        "dispatch": {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05, "idle_poll_seconds": 0.05},
        "sites": {"main": {"secret": "env:OPS_SITE_SECRET", "max_requests_per_second": 0, "channels": channels}},
    }
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path, {"OPS_SITE_SECRET": secret}


async def send(url: str, secret: str, events: list[dict[str, Any]]) -> None:
    async with aiohttp.ClientSession() as session:
        status, body = await SignedClient(url, "main", secret, session).send_events(events)
    assert status == 202, body


@pytest.fixture
def running(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A relay subprocess with one sandbox channel, fed 3 SKUs (the second one changed twice)."""
    secret = signing.new_secret()
    config, env = write_config(tmp_path, [{"name": "box", "type": "sandbox", "latency_ms": 0}], secret)
    proc = RelayProcess(config, env, tmp_path / "relay.log")
    url = proc.start()
    try:  # a failing setup must not leave the relay running
        events = [stock_event(1, "RED-1", 4, 1), stock_event(2, "BLUE-2", 7, 1), stock_event(3, "GREEN-3", 0, 1)]
        asyncio.run(send(url, secret, events))
        asyncio.run(send(url, secret, [stock_event(2, "BLUE-2", 6, 2)]))
        eventually(lambda: _delivered(config, env) == 3)
        yield config, env, url, secret
    finally:
        proc.terminate()


def _delivered(config: Path, env: dict[str, str]) -> int:
    out = run_cli("status", "-c", str(config), "--json", env=env)
    box = json.loads(out.stdout)["channels"][0] if out.returncode == 0 else {"pending": 1}
    return int(box["delivered"]) if box["pending"] == 0 else -1


def cli(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(args[0], "-c", str(config), *args[1:], env=env)


def test_status_table_and_json(running) -> None:  # type: ignore[no-untyped-def]
    """A readable table by default; --json for machines; exit 0 when nothing is dead or stuck."""
    config, env, _, _ = running
    table = cli(config, env, "status")
    assert table.returncode == 0, table.stderr
    assert "channel" in table.stdout and "box" in table.stdout and "last success" in table.stdout
    data = json.loads(cli(config, env, "status", "--json").stdout)
    (box,) = data["channels"]
    assert (box["name"], box["pending"], box["dead_letters"]) == ("box", 0, 0) and box["last_success"]


def test_audit_by_sku_and_lineage(running) -> None:  # type: ignore[no-untyped-def]
    """audit --sku shows only that SKU, newest first; lineage shows what the channel shows and why."""
    config, env, _, _ = running
    entries = json.loads(cli(config, env, "audit", "--sku", "BLUE-2", "--since", "1h", "--json").stdout)
    assert entries and {e["sku"] for e in entries} == {"BLUE-2"}
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    trace = cli(config, env, "lineage", "BLUE-2")
    assert trace.returncode == 0, trace.stderr
    assert "box" in trace.stdout and "shows 6" in trace.stdout and "v2" in trace.stdout
    missing = cli(config, env, "lineage", "NO-SUCH-SKU")
    assert missing.returncode == 4 and "no record" in missing.stdout


def test_replay_and_dead_locally_and_remotely(running) -> None:  # type: ignore[no-untyped-def]
    """replay --sku on the file schedules and the running relay sends it; the same over the signed API."""
    config, env, url, secret = running
    local = cli(config, env, "replay", "--sku", "RED-1", "UNKNOWN-9")
    assert local.returncode == 0, local.stderr
    assert "scheduled 1 deliveries" in local.stdout and "UNKNOWN-9" in local.stdout
    remote_env = {"OPS_REMOTE_SECRET": secret}
    remote = run_cli("replay", "--all", "--remote", url, "--site", "main", "--secret", "env:OPS_REMOTE_SECRET",
                     "--json", env=remote_env)  # fmt: skip
    assert remote.returncode == 0, remote.stderr
    assert json.loads(remote.stdout)["scheduled"] == 3
    dead = run_cli("dead", "--remote", url, "--site", "main", "--secret", "env:OPS_REMOTE_SECRET", env=remote_env)
    assert dead.returncode == 0 and "no open dead letters" in dead.stdout
    wrong = run_cli(
        "status",
        "--remote",
        url,
        "--site",
        "main",
        "--secret",
        "env:OPS_WRONG",
        env={"OPS_WRONG": signing.new_secret()},
    )
    assert wrong.returncode == 1 and "401 signature_invalid" in wrong.stderr
    assert secret not in remote.stdout + remote.stderr + dead.stdout + wrong.stderr
    eventually(
        lambda: (
            json.loads(cli(config, env, "audit", "--sku", "RED-1", "--limit", "1", "--json").stdout)[0]["action"]
            == "attempt"
        )
    )


def test_export_state_csv_and_remote_jsonl(running, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """export state as CSV to a file, and the audit log as JSON Lines from the remote relay."""
    config, env, url, secret = running
    out = tmp_path / "state.csv"
    done = cli(config, env, "export", "state", "-o", str(out))
    assert done.returncode == 0 and "exported 3 rows" in done.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert {(r["sku"], r["shows"]) for r in rows} == {("RED-1", "4"), ("BLUE-2", "6"), ("GREEN-3", "0")}
    remote = run_cli("export", "audit", "--format", "jsonl", "--remote", url, "--site", "main",
                     "--secret", "env:OPS_REMOTE_SECRET", env={"OPS_REMOTE_SECRET": secret})  # fmt: skip
    assert remote.returncode == 0, remote.stderr
    lines = [json.loads(line) for line in remote.stdout.splitlines()]
    assert {line["action"] for line in lines} >= {"received", "attempt"} and lines[0]["id"] < lines[-1]["id"]


def test_commands_explain_a_missing_database(tmp_path: Path) -> None:
    """Before the relay ever ran there is no database: a one-line error, no traceback, no empty file created."""
    config, env = write_config(tmp_path, [{"name": "box", "type": "sandbox"}], signing.new_secret())
    out = cli(config, env, "status")
    assert out.returncode == 1 and "no database" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "state" / "relay.sqlite3").exists()


def _fill_audit(path: Path, rows: int) -> None:
    """A real schema (the relay's own migrations) in the store of ``path``'s state directory, then ``rows`` audit
    entries."""
    detail = json.dumps({"outcome": "ok", "attempt": 1, "response": "x" * 120})

    def fill(conn: Conn) -> None:
        # 10,000 rows at a time, never all of them (psycopg's executemany makes a list): the exports are forked
        # from this process, and a child's peak RSS counts the parent's pages it starts with.
        for start in range(0, rows, 10_000):
            conn.executemany(
                "INSERT INTO audit (at, site, channel, sku, event_id, version, action, quantity, http_status,"
                " latency_ms, detail) VALUES (?, 'main', 'box', ?, ?, ?, 'attempt', ?, 200, 12.5, ?)",
                (
                    (1.7e9 + i, f"SKU-{i:07d}", f"evt_{i:026d}", i, i % 50, detail)
                    for i in range(start, min(rows, start + 10_000))
                ),
            )

    async def write() -> None:
        store = open_store(store_for(path.parent) or path)
        await store.open()
        try:
            await store.write(fill)
        finally:
            await store.close()

    asyncio.run(write())


def _export_peak_rss_kib(config: Path, env: dict[str, str], output: Path) -> int:
    on_suite_store(config)  # as run_cli does: on the PostgreSQL run, the test's schema
    proc = subprocess.Popen(
        relay_command("export", "audit", "-c", str(config), "-o", str(output)),
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    with proc.stderr:
        errors = proc.stderr.read()  # until the export exits: its progress and summary lines only
        _, status, usage = os.wait4(proc.pid, 0)  # wait4: this child's own peak, not every child's
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, errors
    return int(usage.ru_maxrss)


def test_export_of_100k_rows_runs_in_bounded_memory(tmp_path: Path) -> None:
    """Exporting 100,000 audit rows peaks at about the same memory as 10,000: rows stream, nothing accumulates."""
    peaks = {}
    for rows in (10_000, 100_000):
        base = tmp_path / str(rows)
        base.mkdir()
        config, env = write_config(base, [{"name": "box", "type": "sandbox"}], signing.new_secret())
        (base / "state").mkdir()
        _fill_audit(base / "state" / "relay.sqlite3", rows)
        output = base / "audit.csv"
        peaks[rows] = _export_peak_rss_kib(config, env, output)
        with output.open() as handle:
            assert sum(1 for _ in handle) == rows + 1
    print(f"export peak RSS: 10k rows {peaks[10_000] / 1024:.1f} MiB, 100k rows {peaks[100_000] / 1024:.1f} MiB")
    # Keeping the rows would add ~100 MiB for 100k rows; streaming keeps the difference to noise.
    assert peaks[100_000] - peaks[10_000] < 8 * 1024, peaks


def _iso_matches(row: dict[str, Any], field: str) -> bool:
    """``<field>_iso`` is ISO 8601 UTC to the millisecond and names the same instant as the number beside it."""
    text = row[f"{field}_iso"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text), text
    return abs(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() - float(row[field])) < 0.001


def test_times_are_iso_8601_beside_the_unix_seconds(running, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Every --json answer, the signed API and both export formats give each time as ISO 8601 UTC beside the number."""
    config, env, url, secret = running
    status = json.loads(cli(config, env, "status", "--json").stdout)
    assert _iso_matches(status, "server_time") and _iso_matches(status, "last_event_at")
    assert _iso_matches(status["channels"][0], "last_success")
    remote_env = {"OPS_REMOTE_SECRET": secret}
    remote = ("--remote", url, "--site", "main", "--secret", "env:OPS_REMOTE_SECRET", "--json")
    for answer in (status, json.loads(run_cli("status", *remote, env=remote_env).stdout)):
        assert isinstance(answer["server_time"], float)  # the number stays: the WordPress plugin reads it
    entries = json.loads(run_cli("audit", "--sku", "BLUE-2", *remote, env=remote_env).stdout)
    assert entries and all(_iso_matches(e, "at") for e in entries)
    trace = json.loads(cli(config, env, "lineage", "BLUE-2", "--json").stdout)
    assert all(_iso_matches(e, "received_at") for e in trace["events"])
    steps = [s for e in trace["events"] for s in e["channels"].get("box", []) if s["action"] == "attempt"]
    assert steps and all(_iso_matches(s, "at") for s in steps)
    out = tmp_path / "audit.csv"
    assert cli(config, env, "export", "audit", "-o", str(out)).returncode == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert rows and all(_iso_matches(r, "at") for r in rows)
    state = cli(config, env, "export", "state", "--format", "jsonl").stdout.splitlines()
    assert state and all(_iso_matches(json.loads(line), "updated_at") for line in state)
