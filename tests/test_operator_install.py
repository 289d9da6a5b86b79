"""The operator commands of docs/operations.md, on the documented install: a service with systemd credentials and a
state directory, and an operator's shell that has neither (``sudo -u stock-relay stock-relay status -c ...``)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from relay import signing
from relay.cli.client import SignedClient, stock_event

from .backend import read_rows
from .conftest import eventually
from .procs import RelayProcess

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = ROOT / "docs" / "operations.md"
STOCK_RELAY = Path(sys.executable).parent / "stock-relay"  # the console script, as installed by pip


def documented_config() -> dict[str, Any]:
    """The YAML block of docs/operations.md that starts with ``# /etc/stock-relay/config.yaml``."""
    block = re.search(r"```yaml\n(# /etc/stock-relay/config\.yaml\n.*?)```", OPERATIONS.read_text(), re.S)
    assert block, "docs/operations.md lost its /etc/stock-relay/config.yaml example"
    doc = yaml.safe_load(block.group(1))
    assert isinstance(doc, dict)
    return doc


def documented_commands() -> list[str]:
    """The shell lines under "Operator commands" that run stock-relay with ``$C``."""
    section = OPERATIONS.read_text().split("## Operator commands", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block
    return [line for line in block.group(1).splitlines() if line.startswith("stock-relay ") and "$C" in line]


def rooted(root: Path, path: str) -> str:
    """An absolute path of the documented layout, moved under the test's own root folder."""
    return str(root / path.lstrip("/"))


def test_documented_commands_run_without_the_services_secrets(tmp_path: Path) -> None:
    """The relay runs as systemd would start it (credentials, $STATE_DIRECTORY); every operator command of the docs
    then works from another folder with neither, shows the relay's data, and prints no secret."""
    root = tmp_path / "root"
    credentials = root / "etc" / "stock-relay" / "credentials"
    credentials.mkdir(parents=True)
    site_secret, erp_secret = signing.new_secret(), signing.new_secret()
    (credentials / "main-site").write_text(site_secret + "\n")
    (credentials / "erp").write_text(erp_secret + "\n")

    doc = documented_config()
    site = doc["sites"]["main"]
    assert site["secret"].startswith("credential:")
    state = Path(rooted(root, "/var/lib/stock-relay"))  # the unit's StateDirectory=, which systemd creates
    state.mkdir(parents=True, mode=0o700)
    if "state_dir" in doc:
        doc["state_dir"] = rooted(root, doc["state_dir"])
    doc["listen"]["port"] = 0
    doc["dispatch"] = {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05, "idle_poll_seconds": 0.05}
    site["max_requests_per_second"] = 0
    site["channels"][0]["url"] = "http://127.0.0.1:9/hooks/stock"  # nothing listens: the webhook keeps retrying
    site["channels"].append({"name": "box", "type": "sandbox", "latency_ms": 0, "failure_rate": 0})
    config = root / "etc" / "stock-relay" / "config.yaml"
    config.write_text(yaml.safe_dump(doc))

    service_env = {"CREDENTIALS_DIRECTORY": str(credentials), "STATE_DIRECTORY": str(state)}
    relay = RelayProcess(config, service_env, tmp_path / "relay.log")
    url = relay.start()
    try:
        events = [stock_event(1, "TS-RED-M", 4, 1), stock_event(2, "TS-RED-L", 7, 1), stock_event(3, "TS-BLUE-S", 0, 1)]
        asyncio.run(_send(url, site_secret, events))
        asyncio.run(_send(url, site_secret, [stock_event(1, "TS-RED-M", 3, 2)]))
        eventually(lambda: _delivered(state / "relay.sqlite3", "box") == 3)

        operator = tmp_path / "home"
        operator.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY")}
        commands = documented_commands()
        assert len(commands) >= 8, commands
        outputs: dict[str, str] = {}
        for line in commands:
            shell = f'C="-c {config}"; ' + line.replace("stock-relay ", f"{STOCK_RELAY} ", 1).replace("amazon", "box")
            done = subprocess.run(shell, shell=True, cwd=operator, env=env, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
            assert site_secret not in done.stdout + done.stderr and erp_secret not in done.stdout + done.stderr
            outputs[line.split()[1]] = outputs.get(line.split()[1], "") + done.stdout
        assert "box" in outputs["status"] and "erp" in outputs["status"]
        assert "shows 3" in outputs["lineage"] and "v2" in outputs["lineage"]
        assert "TS-RED-M" in outputs["audit"]
        assert "no open dead letters" in outputs["dead"]
        assert "scheduled" in outputs["replay"]
        assert "box,TS-RED-L," in (operator / "state.csv").read_text()
        assert '"sku": "TS-BLUE-S"' in (operator / "audit.jsonl").read_text()
        assert not (operator / ".stock-relay").exists()  # nothing looked for (or created) in the operator's folder
    finally:
        relay.terminate()


async def _send(url: str, secret: str, events: list[dict[str, Any]]) -> None:
    async with aiohttp.ClientSession() as session:
        status, body = await SignedClient(url, "main", secret, session).send_events(events)
    assert status == 202, body


def _delivered(database: Path, channel: str) -> int:
    rows = read_rows(database, "SELECT COUNT(*) FROM deliveries WHERE channel = ? AND state = 'delivered'", (channel,))
    return int(rows[0][0])
