"""The crash loop of bench/crashloop.py, short: SIGKILLs mid-stream lose no acknowledged event and no SKU diverges."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_short_crash_loop_loses_nothing_and_converges() -> None:
    run = subprocess.run(
        [sys.executable, "crashloop.py", "--skus", "300", "--kills", "8", "--seed", "7"],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=600,
    )
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    assert figures["kills"] == 8
    assert figures["events_acknowledged"] >= 300  # at least every SKU once
    assert figures["events_lost"] == 0, figures
    assert figures["skus_diverged"] == 0, figures
    assert figures["bad_signatures"] == 0
    assert run.returncode == 0, run.stderr[-3000:]
