"""``stock-relay pause`` and ``resume`` as an operator runs them, beside a running relay subprocess."""

from __future__ import annotations

import asyncio
import json

from relay.cli.client import stock_event

from .conftest import eventually
from .procs import run_cli
from .test_operator_cli import cli, running, send  # noqa: F401 - running is the fixture this module's tests use


def test_pause_on_the_file_is_obeyed_and_shown_and_resume_over_the_api_sends_the_queue(running) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """Paused from the file with a reason: the running relay holds the channel's changes and status (file and API)
    names who and why; resumed over the signed API, the queue is sent, and the audit log has both, with the actor."""
    config, env, url, secret = running
    paused = cli(config, env, "pause", "box", "--reason", "stocktake in the warehouse", "--actor", "alice")
    assert paused.returncode == 0, paused.stderr
    assert "paused box: stocktake in the warehouse (by alice)" in paused.stdout
    again = cli(config, env, "pause", "--all", "--reason", "other", "--json")
    assert json.loads(again.stdout)["already_paused"][0]["actor"] == "alice"
    asyncio.run(send(url, secret, [stock_event(1, "RED-1", 2, 9)]))
    remote_env = {"OPS_REMOTE_SECRET": secret}
    remote = ("--remote", url, "--site", "main", "--secret", "env:OPS_REMOTE_SECRET")
    status = run_cli("status", *remote, "--json", env=remote_env)
    box = json.loads(status.stdout)["channels"][0]
    assert box["paused"]["reason"] == "stocktake in the warehouse" and box["paused"]["actor"] == "alice"
    assert box["pending"] == 1  # committed after the pause: no claim can take it (nothing was claimed ahead)
    assert [a["code"] for a in json.loads(status.stdout)["attention"]] == ["paused"]
    table = cli(config, env, "status")
    assert "PAUSED box since" in table.stdout and "by alice: stocktake in the warehouse" in table.stdout
    refused = cli(config, env, "pause", "nope", "--reason", "x")
    assert refused.returncode == 2 and "no channel 'nope'" in refused.stderr
    resumed = run_cli("resume", "box", "--actor", "bob", *remote, env=remote_env)
    assert resumed.returncode == 0 and "resumed box" in resumed.stdout, resumed.stderr
    eventually(lambda: json.loads(cli(config, env, "status", "--json").stdout)["channels"][0]["pending"] == 0)
    audit = json.loads(cli(config, env, "audit", "--channel", "box", "--json").stdout)
    actions = {e["action"]: e["detail"] for e in audit if e["action"] in ("paused", "resumed")}
    assert actions["paused"]["actor"] == "alice" and actions["resumed"]["actor"] == "bob"
    assert "PAUSED" not in cli(config, env, "status").stdout
    nothing = cli(config, env, "resume", "--all")
    assert nothing.returncode == 0 and "nothing to resume" in nothing.stdout
