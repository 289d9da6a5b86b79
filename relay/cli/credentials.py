"""``stock-relay credentials``: put marketplace secrets into the encrypted vault, never into the YAML.

Secrets are read from stdin (a JSON object), so they stay out of shell history and ``ps``.
"""

from __future__ import annotations

import json
import sys
import time

from ..config import Config
from ..errors import VaultError
from ..vault import Vault


def run_credentials(cfg: Config, action: str, name: str) -> int:
    if not cfg.vault_keys:
        raise VaultError("set vault_key in the config first (stock-relay keygen --vault prints a key)")
    vault = Vault(cfg.vault_dir, cfg.vault_keys)
    if action == "set":
        if sys.stdin.isatty():
            print(f"paste {name}'s credentials as one JSON object, then Ctrl-D:", file=sys.stderr)
        try:
            values = json.loads(sys.stdin.read())
        except ValueError:
            raise VaultError("stdin must hold one JSON object of credential fields") from None
        if not isinstance(values, dict) or not values or not all(isinstance(v, str | int) for v in values.values()):
            raise VaultError('stdin must hold one JSON object of text fields, e.g. {"client_id": "...", ...}')
        vault.write(name, {str(k): str(v) for k, v in values.items()})
        print(f"stored {len(values)} fields for {name} ({', '.join(sorted(values))}), encrypted")
    elif action == "list":
        entries = vault.names()
        if not entries:
            print("no credentials stored")
        for entry, written in entries:
            fields = ", ".join(sorted(vault.read(entry)))
            print(f"{entry:40} written {time.strftime('%Y-%m-%d %H:%M', time.localtime(written))}  fields: {fields}")
    else:
        print(f"re-encrypted {vault.rotate()} credentials with the first vault key")
    return 0
