"""Marketplace credentials: encrypted at rest, rotated by key, managed from the CLI without echoing them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from relay import signing
from relay.errors import VaultError
from relay.vault import Vault, new_key

from .procs import relay_command


def test_round_trip_is_encrypted_on_disk(tmp_path: Path) -> None:
    """What is written reads back, the file holds no plaintext, and only the owner can read it."""
    vault = Vault(tmp_path / "creds", [new_key()])
    vault.write("main/shopify", {"access_token": "shpat_plaintext-marker"})
    assert vault.read("main/shopify") == {"access_token": "shpat_plaintext-marker"}
    (path,) = (tmp_path / "creds").iterdir()
    assert b"plaintext-marker" not in path.read_bytes()
    assert path.stat().st_mode & 0o077 == 0


def test_wrong_key_and_missing_entry_are_clear_errors(tmp_path: Path) -> None:
    """A key that did not encrypt an entry, or no entry at all, is a VaultError naming the account only."""
    Vault(tmp_path, [new_key()]).write("main/ebay", {"refresh_token": "v^1.1#secret-marker"})
    with pytest.raises(VaultError, match="main/ebay.*key") as wrong:
        Vault(tmp_path, [new_key()]).read("main/ebay")
    assert "secret-marker" not in str(wrong.value)
    with pytest.raises(VaultError, match="credentials set main/etsy"):
        Vault(tmp_path, [new_key()]).read("main/etsy")
    with pytest.raises(VaultError, match="SITE/CHANNEL"):
        Vault(tmp_path, [new_key()]).read("../etc/passwd")


def test_rotation_reencrypts_with_the_new_key(tmp_path: Path) -> None:
    """New key first + rotate: afterwards the old key can be dropped."""
    old, new = new_key(), new_key()
    Vault(tmp_path, [old]).write("main/amazon", {"refresh_token": "Atzr|x"})
    assert Vault(tmp_path, [new, old]).rotate() == 1
    assert Vault(tmp_path, [new]).read("main/amazon") == {"refresh_token": "Atzr|x"}
    with pytest.raises(VaultError):
        Vault(tmp_path, [old]).read("main/amazon")


def test_cli_set_and_list_never_print_values(tmp_path: Path) -> None:
    """credentials set reads stdin; list shows field names and times, not the secrets."""
    key_file = tmp_path / "vault.key"
    key_file.write_text(new_key())
    config = tmp_path / "relay.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp_path / "state"),
                "vault_key": f"file:{key_file}",
                "sites": {
                    "main": {"secret": "env:VAULT_SITE_SECRET", "channels": [{"name": "box", "type": "sandbox"}]}
                },
            }
        )
    )
    env = {**os.environ, "VAULT_SITE_SECRET": signing.new_secret()}

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        command = relay_command("credentials", "-c", str(config), *args)
        return subprocess.run(command, input=stdin, capture_output=True, text=True, env=env, timeout=60)

    stored = cli("set", "main/walmart", stdin=json.dumps({"client_id": "cid", "client_secret": "top-secret-value"}))
    assert stored.returncode == 0, stored.stderr
    listed = cli("list")
    assert listed.returncode == 0 and "main/walmart" in listed.stdout and "client_secret" in listed.stdout
    assert "top-secret-value" not in stored.stdout + stored.stderr + listed.stdout + listed.stderr
    bad = cli("set", "main/walmart", stdin="client_secret=top-secret-value")
    assert bad.returncode == 1 and "JSON object" in bad.stderr and "top-secret-value" not in bad.stderr
    assert Vault(tmp_path / "state" / "credentials", [key_file.read_text()]).read("main/walmart")["client_id"] == "cid"
