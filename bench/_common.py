"""Shared by the benchmarks: the real relay in its own process on a throwaway config, and percentiles.

Deliberately independent of ``tests/``: a benchmark must keep working while the tests change.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from relay import signing  # noqa: E402

LISTENING = re.compile(r"listening on http://([\d.]+):(\d+)")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation): p99 of 200 samples is the 198th smallest."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil(n * pct / 100)
    return ordered[int(rank) - 1]


def summary_ms(values: list[float]) -> dict[str, float]:
    """p50/p99/max/mean of durations given in seconds, in milliseconds."""
    if not values:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan"), "mean_ms": float("nan")}
    return {
        "p50_ms": round(percentile(values, 50) * 1000, 3),
        "p99_ms": round(percentile(values, 99) * 1000, 3),
        "max_ms": round(max(values) * 1000, 3),
        "mean_ms": round(sum(values) / len(values) * 1000, 3),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class ServerProcess:
    """A server in its own process whose log says ``listening on http://HOST:PORT`` once it is up."""

    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
        self.argv = argv
        self.cwd = cwd
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.host = ""
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> ServerProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=log, env=self.env, cwd=self.cwd)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = LISTENING.search(self.log_path.read_text(errors="replace"))
            if match:
                self.host, self.port = match.group(1), int(match.group(2))
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv} exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            time.sleep(0.02)
        self.kill()
        raise TimeoutError(f"{self.argv} did not start:\n{self.log()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: nothing gets a chance to flush, so whatever was acknowledged must already be on disk."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def terminate(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(60)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_relay(
    workdir: Path, channels: list[dict[str, Any]], dispatch: dict[str, Any] | None = None, root: Path = ROOT
) -> tuple[ServerProcess, str]:
    """``stock-relay serve`` (as ``python -m relay serve``) with one site "bench" and no ingest rate limit.

    Returns the running process and the site's secret. The database is ``workdir/state/relay.sqlite3``. ``root``:
    the checkout whose ``relay`` package runs (another one's: an A/B of two versions in one run).
    """
    secret = signing.new_secret()
    secret_file = workdir / "site.secret"
    secret_file.write_text(secret)
    secret_file.chmod(0o600)
    doc: dict[str, Any] = {
        "state_dir": str(workdir / "state"),
        "listen": {"host": "127.0.0.1", "port": 0},
        "sites": {
            "bench": {"secret": f"file:{secret_file}", "max_requests_per_second": 0, "channels": channels},
        },
    }
    if dispatch:
        doc["dispatch"] = dispatch
    path = workdir / "relay.yaml"
    path.write_text(yaml.safe_dump(doc))
    relay = ServerProcess([sys.executable, "-m", "relay", "serve", "-c", str(path)], workdir / "relay.log", cwd=root)
    relay.start()
    return relay, secret


def database_path(workdir: Path) -> Path:
    return workdir / "state" / "relay.sqlite3"
