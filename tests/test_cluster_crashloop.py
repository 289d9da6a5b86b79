"""The cluster crash loop of bench/cluster_crashloop.py, short: three relays on one PostgreSQL store, SIGKILLed
mid-stream, lose no acknowledged event, converge, never work one channel from two relays at once and keep each
channel's rate budget."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from . import backend

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_short_cluster_crash_loop_loses_nothing_and_keeps_one_worker_per_channel() -> None:
    """300 SKUs, 6 SIGKILLs across three relays: the four counts are zero and every relay stopped cleanly exits 0."""
    store = backend.cluster()
    run = subprocess.run(
        [
            sys.executable,
            "cluster_crashloop.py",
            "--store-url",
            store,
            "--skus",
            "300",
            "--kills",
            "6",
            "--max-uptime",
            "3",
            # Batches of 10 keep each channel's worker busy at its rate (5 calls/s), so the budget check has
            # windows to judge and a second active relay would show as calls beyond it.
            "--batch-size",
            "10",
            "--seed",
            "7",
        ],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=900,  # bounds a hang only; the run takes well under a minute
    )
    assert run.stdout.strip(), run.stderr[-3000:]
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    assert figures["relays"] == 3
    assert figures["kills"] == 6
    assert figures["events_acknowledged"] >= 300  # at least every SKU once
    assert figures["acked_then_lost"] == 0, figures
    assert figures["diverged"] == 0, figures
    assert figures["double_active_workers"] == 0, figures
    assert figures["rate_budget_exceeded"] == 0, figures
    assert figures["rate_budget_exceeded_across_clean_stop"] == 0, figures  # a takeover starts the budget empty
    assert figures["max_channel_concurrency"] == 1, figures
    assert figures["bad_signatures"] == 0
    assert figures["clean_stop_exits"] == [0, 0]
    assert run.returncode == 0, run.stderr[-3000:]
