"""The README's test command on a fresh clone, with nothing beside it: the tests that need the marketplaces' spec
files (../shared/refs/specs, which only CI has there) skip and say where they looked; STOCK_RELAY_REQUIRE_SPECS=1,
which .ci/run sets, makes their absence a failure; STOCK_RELAY_SPECS points them elsewhere; scripts/fetch-specs
fetches exactly the files CI has.

Each case runs pytest in a copy of this tree (the working tree, as a clone of it would have it) in a folder with
no shared/ beside it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from . import spec_files

ROOT = Path(__file__).resolve().parent.parent
# every test of the Shopify/eBay/Etsy spec file, and one that reads Amazon's models through spec_files.load
SPEC_TESTS = (
    "tests/test_specs_shopify_ebay_etsy.py",
    "tests/test_connector_amazon.py::test_fake_processing_report_follows_amazons_schema",
)


@pytest.fixture(scope="module")
def lone_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("fresh").resolve() / "stock-relay"
    copy.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", copy / "pyproject.toml")
    for name in ("relay", "fakes", "tests"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    assert not (copy.parent / "shared").exists()
    return copy


def pytest_in(copy: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STOCK_RELAY_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider", *SPEC_TESTS],
        cwd=copy,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def summary(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout.strip().splitlines()[-1]


def test_spec_tests_skip_on_a_fresh_clone_and_say_why(lone_copy: Path) -> None:
    done = pytest_in(lone_copy)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert re.fullmatch(r"5 skipped in [\d.]+s", summary(done)), done.stdout[-3000:]
    where = lone_copy.parent / "shared" / "refs" / "specs"
    reason = (
        f"marketplace specs not found at {where} (set STOCK_RELAY_SPECS=DIR, or fetch them with scripts/fetch-specs)"
    )
    assert "SKIPPED [5] tests/spec_files.py:" in done.stdout and reason in done.stdout, done.stdout[-3000:]


def test_spec_tests_fail_without_the_specs_when_required(lone_copy: Path) -> None:
    done = pytest_in(lone_copy, STOCK_RELAY_REQUIRE_SPECS="1")
    assert done.returncode == 1, done.stdout[-3000:]
    assert re.fullmatch(r"5 failed in [\d.]+s", summary(done)), done.stdout[-3000:]
    assert "STOCK_RELAY_REQUIRE_SPECS=1 and marketplace specs not found at" in done.stdout


def test_stock_relay_specs_names_where_they_are(lone_copy: Path) -> None:
    spec_files.spec_path("ebay/sell_inventory_v1_oas3.json")  # this run has them (or skips / fails as above)
    done = pytest_in(lone_copy, STOCK_RELAY_SPECS=str(spec_files.SPECS), STOCK_RELAY_REQUIRE_SPECS="1")
    assert done.returncode == 0, done.stdout[-3000:]
    assert re.fullmatch(r"5 passed in [\d.]+s", summary(done)), done.stdout[-3000:]


def test_fetch_specs_lists_every_spec_file_ci_has_with_its_hash() -> None:
    spec_files.spec_path("ebay/sell_inventory_v1_oas3.json")
    listing = subprocess.run(
        [str(ROOT / "scripts" / "fetch-specs"), "--list"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    listed = {path: digest for path, digest, _ in (line.split() for line in listing.splitlines())}
    everything = subprocess.run(
        [str(ROOT / "scripts" / "fetch-specs"), "--extra", "--list"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    extra = {line.split()[0] for line in everything.splitlines()} - set(listed)
    have = {
        path.relative_to(spec_files.SPECS).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in spec_files.SPECS.rglob("*")
        if path.is_file() and path.name != "README.md"
    }
    # A folder filled by fetch-specs --extra also holds the order APIs' specs, which CI's copies lack.
    assert listed == {path: digest for path, digest in have.items() if path not in extra}
