"""Shared by the PostgreSQL benchmarks: a cluster of the bench's own (fsync on), a fresh schema per phase, relays
that share it, and the CPU the cluster's processes use.

The development cluster (scripts/lib/postgres.sh) runs with fsync=off: right for tests, which kill relays and not the
machine, wrong for a throughput figure, since a COMMIT there never waits for the disk. So unless a URL is given, a
bench starts a cluster of its own with the server's durable defaults (fsync, synchronous_commit, full_page_writes
on), listening only on a Unix socket in its temporary folder.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

import psycopg
import yaml
from _common import CLOCK_TICKS, ServerProcess

from relay import signing

STORE_VARIABLE = "BENCH_PG_STORE_URL"  # what each relay's ``store:`` reference names


# -- the cluster ------------------------------------------------------------------------------------------------------


def _bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries in /usr/lib/postgresql (apt-get install postgresql)")
    return found[-1]


class OwnCluster:
    """initdb + pg_ctl start in a temporary folder; as root, run as Debian's ``postgres`` user (the server refuses
    root). ``url`` is the superuser's URL over the folder's socket; ``stop()`` removes everything."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        self.data = self.dir / "data"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        self.url = f"postgresql:///postgres?host={self.dir}&user=postgres"

    def start(self) -> OwnCluster:
        bindir = _bindir()
        self._run([str(bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8"])
        options = (
            f"-c listen_addresses='' -k {self.dir} -c max_connections=200"
            " -c fsync=on -c synchronous_commit=on -c full_page_writes=on"
        )
        pg_ctl = [str(bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w", "-t", "60"]
        self._run([*pg_ctl, "-o", options, "start"])
        return self

    def stop(self) -> None:
        pg_ctl = str(_bindir() / "pg_ctl")
        subprocess.run([*self.as_user, pg_ctl, "-D", str(self.data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])

    def cpu_seconds(self) -> float:
        """CPU used so far by the postmaster, its live children and the children it has reaped."""
        return tree_cpu_seconds(self.postmaster_pid())

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run([*self.as_user, *argv], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid``, of its reaped children (cutime, cstime) and of its live children."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if proc.name == str(pid):
            total += sum(int(v) for v in fields[11:15]) / CLOCK_TICKS
        elif fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def setting(url: str, name: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
    return str(row[0]) if row else "?"


# -- a schema per phase ---------------------------------------------------------------------------------------------


def schema_url(base: str, schema: str) -> str:
    # urlunsplit would drop the empty host of postgresql:///db?host=/socket/dir
    options = urllib.parse.urlencode({"options": f"-csearch_path={schema}"})
    return base + ("&" if "?" in base else "?") + options


def create_schema(base: str, prefix: str) -> str:
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")  # a generated name, never input
    return name


def drop_schema(base: str, name: str) -> None:
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def stored_event_ids(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {row[0] for row in conn.execute("SELECT event_id FROM events")}


# -- relays sharing the store ----------------------------------------------------------------------------------------


def relay_config(workdir: Path, site_secret_file: Path, channels: list[dict[str, Any]], **extra: Any) -> Path:
    """One relay's YAML in ``workdir``: its own state_dir, the store from ``$BENCH_PG_STORE_URL``, site "bench"
    without an ingest rate limit. ``extra`` adds top-level keys (``listen``, ``dispatch``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "state_dir": str(workdir / "state"),
        "listen": {"host": "127.0.0.1", "port": 0},
        "store": f"env:{STORE_VARIABLE}",
        "sites": {
            "bench": {"secret": f"file:{site_secret_file}", "max_requests_per_second": 0, "channels": channels},
        },
        **extra,
    }
    path = workdir / "relay.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def secret_file(path: Path) -> tuple[str, Path]:
    """A new Standard Webhooks secret, written to ``path`` readable by its owner only."""
    secret = signing.new_secret()
    path.write_text(secret)
    path.chmod(0o600)
    return secret, path


def start_pg_relays(
    workdir: Path, count: int, store_url: str, channels: list[dict[str, Any]], **extra: Any
) -> tuple[list[ServerProcess], str]:
    """``count`` relays on one store, each with its own state_dir and port; the first starts (and migrates the fresh
    schema) alone. Returns the running processes and the site's secret."""
    workdir.mkdir(parents=True, exist_ok=True)
    secret, path = secret_file(workdir / "site.secret")
    relays = []
    try:
        for index in range(count):
            config = relay_config(workdir / f"relay-{index}", path, channels, **extra)
            relay = ServerProcess(
                [sys.executable, "-m", "relay", "serve", "-c", str(config)],
                config.parent / "relay.log",
                {STORE_VARIABLE: store_url},
            )
            relays.append(relay.start(timeout=120))
    except BaseException:
        for relay in relays:
            relay.kill()
        raise
    return relays, secret
