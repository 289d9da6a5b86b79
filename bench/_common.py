"""Shared by the benchmarks: a real relay in a subprocess on a throwaway config, and percentiles."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from relay import signing  # noqa: E402
from tests.procs import RelayProcess  # noqa: E402


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(values: list[float]) -> dict[str, float]:
    """p50/p99/max of durations given in seconds, in milliseconds."""
    return {
        "p50_ms": round(percentile(values, 50) * 1000, 3),
        "p99_ms": round(percentile(values, 99) * 1000, 3),
        "max_ms": round(max(values) * 1000, 3) if values else float("nan"),
        "mean_ms": round(statistics.fmean(values) * 1000, 3) if values else float("nan"),
    }


def start_relay(
    workdir: Path, channels: list[dict[str, Any]], env: dict[str, str] | None = None
) -> tuple[RelayProcess, str]:
    """Start ``stock-relay serve`` with one site "bench"; returns the process and the site secret."""
    secret = signing.new_secret()
    (workdir / "site.secret").write_text(secret)
    doc = {
        "state_dir": str(workdir / "state"),
        "listen": {"host": "127.0.0.1", "port": 0},
        "sites": {"bench": {"secret": "file:site.secret", "max_requests_per_second": 0, "channels": channels}},
    }
    path = workdir / "relay.yaml"
    path.write_text(yaml.safe_dump(doc))
    relay = RelayProcess(path, env or {}, workdir / "relay.log")
    relay.start()
    return relay, secret
