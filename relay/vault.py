"""Marketplace credentials and refreshed tokens, encrypted at rest.

Each channel account's credentials are one JSON object (for example ``client_id``,
``client_secret``, ``refresh_token``), encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from
``cryptography``) into its own file under ``<state_dir>/credentials/``. Writes are atomic (temp
file, fsync, rename), so a crash mid-refresh leaves the old token, never a torn file.

The key comes from the config's ``vault_key`` reference (``credential:`` for systemd's
LoadCredential=, or ``file:``), never from the state directory, so a copy of the state
directory alone (a backup, a stolen disk image) does not reveal the credentials. The reference
may hold several keys: the first encrypts, every one decrypts. That is how the key rotates:
put the new key first, run ``stock-relay credentials rotate``, then drop the old key.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .errors import VaultError

NAME = re.compile(r"^[a-z0-9-]{1,64}/[a-z0-9][a-z0-9_-]{0,63}$")
SUFFIX = ".cred"


def new_key() -> str:
    return Fernet.generate_key().decode("ascii")


class Vault:
    def __init__(self, directory: Path, keys: Sequence[str]) -> None:
        if not keys:
            raise VaultError("the vault needs at least one key")
        try:
            self._fernet = MultiFernet([Fernet(key.encode("ascii")) for key in keys])
        except (ValueError, UnicodeEncodeError):
            raise VaultError("vault_key must hold Fernet keys (stock-relay keygen --vault prints one)") from None
        self.directory = directory

    def _path(self, name: str) -> Path:
        if not NAME.match(name):
            raise VaultError(f"credential names are SITE/CHANNEL, got {name!r}")
        site, channel = name.split("/")
        return self.directory / f"{site}.{channel}{SUFFIX}"

    def read(self, name: str) -> dict[str, str]:
        path = self._path(name)
        try:
            token = path.read_bytes()
        except FileNotFoundError:
            raise VaultError(f"no credentials stored for {name} (stock-relay credentials set {name})") from None
        except OSError as exc:
            raise VaultError(f"cannot read credentials for {name}: {exc.strerror}") from None
        try:
            values = json.loads(self._fernet.decrypt(token))
        except InvalidToken:
            raise VaultError(f"the credentials for {name} were encrypted with a key vault_key does not hold") from None
        if not isinstance(values, dict):
            raise VaultError(f"the credentials for {name} are not an object")
        return {str(k): str(v) for k, v in values.items()}

    def write(self, name: str, values: Mapping[str, str]) -> None:
        path = self._path(name)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        token = self._fernet.encrypt(json.dumps(dict(values), sort_keys=True).encode())
        temp = path.with_suffix(f".tmp{os.getpid()}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(token)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def names(self) -> list[tuple[str, float]]:
        """Every stored credential name with the time it was last written."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            site, _, channel = path.name[: -len(SUFFIX)].partition(".")
            found.append((f"{site}/{channel}", path.stat().st_mtime))
        return found

    def rotate(self) -> int:
        """Re-encrypt every entry with the first key; returns how many were rewritten."""
        count = 0
        for name, _ in self.names():
            self.write(name, self.read(name))
            count += 1
        return count


class Credentials:
    """One channel account's view of the vault, for connectors (file I/O off the event loop)."""

    def __init__(self, vault: Vault | None, name: str) -> None:
        self._vault = vault
        self.name = name
        self.saved_at = 0.0

    async def load(self) -> dict[str, str]:
        if self._vault is None:
            raise VaultError(
                f"{self.name} needs credentials: set vault_key in the config, then stock-relay credentials set"
            )
        return await asyncio.to_thread(self._vault.read, self.name)

    async def save(self, values: Mapping[str, str]) -> None:
        """Persist refreshed tokens (rotating refresh tokens must survive a restart)."""
        if self._vault is None:
            raise VaultError(f"{self.name} needs credentials: set vault_key in the config")
        await asyncio.to_thread(self._vault.write, self.name, values)
        self.saved_at = time.time()
