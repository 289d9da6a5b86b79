"""The sales crash loop of bench/sales_crashloop.py, short: SIGKILLs during intake and adjusts lose no acknowledged
sale, apply none twice and leave every SKU at its start minus what was sold (issue 15)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_short_sales_crash_loop_applies_every_acknowledged_sale_once() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "sales_crashloop.py",
            "--kills",
            "3",
            "--sales",
            "40",
            "--seed",
            "7",
            "--converge-seconds",
            "60",
        ],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=120,
    )
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    assert figures["kills"] == 3
    assert figures["sales_acknowledged"] == 40, figures  # the reporter resends until every report is answered 202
    assert figures["sales_lost"] == 0, figures
    assert figures["sales_applied_twice"] == 0, figures
    assert figures["skus_wrong"] == 0, figures
    assert figures["relay_unsettled"] == 0, figures
    assert run.returncode == 0, run.stderr[-3000:]
