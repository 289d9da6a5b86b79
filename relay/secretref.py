"""Secret references: where the YAML says a secret lives, never the secret itself.

``env:NAME``         an environment variable (for example from systemd's EnvironmentFile=)
``file:PATH``        a file; a relative PATH is relative to the config file
``credential:NAME``  a systemd credential: ``$CREDENTIALS_DIRECTORY/NAME`` (LoadCredential=)

The value may hold several whitespace-separated secrets; callers decide what that means (for a
site: every one is active, which is how secrets rotate).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

SCHEMES = ("env", "file", "credential")
NOT_A_REFERENCE = "must be a reference: env:NAME, file:/path or credential:NAME (never the secret itself)"


def resolve(ref: str, environ: Mapping[str, str], base_dir: Path) -> str:
    """The referenced value, stripped. Raises ValueError with a message that never contains the value."""
    scheme, _, name = ref.partition(":")
    if scheme == "env":
        value = environ.get(name)
        if not value:
            raise ValueError(f"environment variable {name} is not set")
    elif scheme in ("file", "credential"):
        if scheme == "credential":
            cred_dir = environ.get("CREDENTIALS_DIRECTORY")
            if not cred_dir:
                raise ValueError("credential: needs systemd's LoadCredential= ($CREDENTIALS_DIRECTORY is unset)")
            path = Path(cred_dir) / name
        else:
            path = base_dir / name
        try:
            value = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    else:
        raise ValueError(NOT_A_REFERENCE)
    if not value.strip():
        raise ValueError("the referenced secret is empty")
    return value.strip()
