"""Where the relay's store lives: a SQLite file (the embedded default) or a PostgreSQL database (``store:``)."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

SCHEMES = ("postgresql", "postgres")


class Dsn:
    """A PostgreSQL connection URL. ``str()`` and ``repr()`` show it without its password, so a DSN can be named in
    a log line or an error message; ``url`` (the whole of it) goes to the driver and nowhere else. (A plain class,
    not a dataclass: the config reads dataclasses as sections of keys.)"""

    __slots__ = ("url",)

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise ValueError("must be a PostgreSQL URL: postgresql://user@host:port/database")
        self.url = url

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dsn) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    def __str__(self) -> str:
        parts = urllib.parse.urlsplit(self.url)
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        user = f"{parts.username}@" if parts.username else ""
        query = urllib.parse.parse_qs(parts.query)
        where = query.get("host", [""])[0]  # a Unix socket directory: postgresql:///db?host=/run/postgresql
        return f"postgresql://{user}{host}{parts.path}" + (f" (socket {where})" if where else "")

    def __repr__(self) -> str:
        return f"Dsn({str(self)!r})"


StoreLocation = Path | Dsn


def describe(location: StoreLocation) -> str:
    """How to name the store to an operator: the file, or the database without its password."""
    return str(location)
