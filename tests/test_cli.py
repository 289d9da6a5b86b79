"""The ``stock-relay`` command as a user runs it: keygen, check-config, serve with a clean SIGTERM, demo."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from relay import signing

from .procs import RelayProcess, run_cli


def test_keygen_prints_a_usable_secret() -> None:
    """keygen prints a whsec_ secret the relay accepts."""
    out = run_cli("keygen")
    assert out.returncode == 0
    assert len(signing.secret_key(out.stdout.strip())) == 32


def test_keygen_ed25519_pair() -> None:
    """keygen --ed25519 prints a private and a public key."""
    out = run_cli("keygen", "--ed25519")
    assert out.returncode == 0 and "whsk_" in out.stdout and "whpk_" in out.stdout


def _config(tmp_path: Path, **site: object) -> Path:
    doc = {
        "state_dir": str(tmp_path / "state"),
        "listen": {"port": 0},
        "sites": {"main": {"secret": "env:CLI_SITE_SECRET", "channels": [{"name": "box", "type": "sandbox"}], **site}},
    }
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_check_config_redacts_secrets(tmp_path: Path) -> None:
    """check-config prints the effective config without the secret and says OK."""
    secret = signing.new_secret()
    out = run_cli("check-config", "-c", str(_config(tmp_path)), env={"CLI_SITE_SECRET": secret})
    assert out.returncode == 0, out.stderr
    assert secret not in out.stdout + out.stderr
    assert '"max_batch_events": 500' in out.stdout and "configuration OK" in out.stderr


def test_check_config_error_names_key_and_exits_2(tmp_path: Path) -> None:
    """An invalid config exits 2 with the key path in a one-line message, no traceback."""
    out = run_cli(
        "check-config",
        "-c",
        str(_config(tmp_path, max_requests_per_second="lots")),
        env={"CLI_SITE_SECRET": signing.new_secret()},
    )
    assert out.returncode == 2
    assert "sites.main.max_requests_per_second" in out.stderr and "Traceback" not in out.stderr


def test_serve_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """SIGTERM stops intake, releases leases, closes the database and exits 0."""
    relay = RelayProcess(_config(tmp_path), {"CLI_SITE_SECRET": signing.new_secret()}, tmp_path / "log")
    relay.start()
    assert relay.terminate() == 0
    assert "stopped cleanly" in relay.log()


@pytest.mark.sqlite_only("damages the SQLite file's bytes")
def test_serve_refuses_a_corrupt_database(tmp_path: Path) -> None:
    """A damaged database stops start-up with a message saying to restore a backup; exit is non-zero."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "relay.sqlite3").write_bytes(b"garbage" * 2000)
    out = run_cli("serve", "-c", str(_config(tmp_path)), env={"CLI_SITE_SECRET": signing.new_secret()})
    assert out.returncode == 1 and "restore it from a backup" in out.stderr and "Traceback" not in out.stderr


def test_demo_converges(tmp_path: Path) -> None:
    """The demo drives the real relay over HTTP and ends with every SKU in sync on every channel."""
    out = run_cli("demo", "--duration", "2", "--products", "12", cwd=tmp_path, timeout=90)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Every channel shows the shop's quantity for all 12 SKUs" in out.stdout
    assert (tmp_path / ".stock-relay" / "relay.sqlite3").exists()
    # The commands the demo suggests work on the same defaults, in the same folder.
    sku = out.stdout.split("`stock-relay lineage ")[1].split("`")[0]
    trace = run_cli("lineage", sku, cwd=tmp_path)
    assert trace.returncode == 0 and "sandbox" in trace.stdout and "shows" in trace.stdout, trace.stderr


def test_demo_with_more_products_than_a_batch_converges_and_accounts_for_every_event(tmp_path: Path) -> None:
    """A shop bigger than one request's 500 events: its opening snapshot goes in several batches (one request was
    refused whole, 400 batch_too_large, and those SKUs never converged); the summary accounts for every event sent."""
    out = run_cli("demo", "--duration", "1", "--products", "700", "--rate", "50", cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Every channel shows the shop's quantity for all 700 SKUs" in out.stdout
    summary = re.search(r"^events sent ([\d,]+), accepted ([\d,]+) in ([\d,]+) requests$", out.stdout, re.M)
    assert summary, out.stdout
    sent, accepted = (int(summary.group(i).replace(",", "")) for i in (1, 2))
    explained = sum(int(n.replace(",", "")) for n in re.findall(r"^  ([\d,]+) not accepted: ", out.stdout, re.M))
    assert sent >= 700 and sent - accepted == explained, out.stdout
