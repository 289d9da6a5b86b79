"""Storage faults on a real filesystem: a full disk and a read-only mount answer 503 and recover by themselves; a
damaged database stops ``serve`` with a clear message and is never recreated.

The disk is a small tmpfs mounted for the test (this needs root, as CI and the VPS install run; elsewhere the
test is skipped and says why). The relay is the real ``stock-relay serve`` subprocess.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from relay.cli.client import SignedClient, new_msg_id, stock_event

from .conftest import CHANNEL_SECRET, SITE_SECRET, eventually
from .procs import RelayProcess, relay_command, run_cli

PRODUCT_IDS = itertools.count(1)  # every event a product of its own: none is stale, each must be stored
ENV = {"FAULT_SITE_SECRET": SITE_SECRET, "FAULT_HOOK_SECRET": CHANNEL_SECRET}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB tmpfs: small enough to fill in a test, real enough that SQLite gets ENOSPC and EROFS from the kernel."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def write_config(tmp_path: Path, state_dir: Path, receiver_url: str) -> Path:
    doc = {
        "state_dir": str(state_dir),
        "listen": {"host": "127.0.0.1", "port": 0},
        "dispatch": {"backoff_base_seconds": 0.05, "backoff_max_seconds": 0.5, "idle_poll_seconds": 0.1},
        "sites": {
            "main": {
                "secret": "env:FAULT_SITE_SECRET",
                "max_requests_per_second": 0,
                "channels": [
                    {
                        "name": "hook",
                        "type": "webhook",
                        "url": receiver_url,
                        "secret": "env:FAULT_HOOK_SECRET",
                        "batch_size": 50,
                        "rate": {"per_second": 500, "burst": 500},
                    }
                ],
            }
        },
    }
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def fill(disk: Path) -> Path:
    """Fill the filesystem to the last byte with one file; deleting it gives the space back."""
    filler = disk / "filler"
    # Unbuffered: a buffered writer keeps the part of the last write that did not fit and fails again at
    # close, which made this depend on whether the free space happened to be a multiple of the chunk.
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError:
            pass
    return filler


def stored_ids(state_dir: Path) -> set[str]:
    with sqlite3.connect(f"file:{state_dir / 'relay.sqlite3'}?mode=ro", uri=True) as conn:
        return {row[0] for row in conn.execute("SELECT event_id FROM events")}


async def post(client: SignedClient, n: int, tag: str) -> tuple[int, dict, list[str]]:
    """Post ``n`` new events; a refusal must carry ``Retry-After`` (PROTOCOL §2: the plugin backs off by it)."""
    first = next(PRODUCT_IDS)
    for _ in range(n - 1):
        next(PRODUCT_IDS)
    events = [stock_event(first + i, f"{tag}-{i}-" + "x" * 120, i % 50, 1) for i in range(n)]
    doc = {"type": "stock.batch", "site": client.site, "sent_at": "2026-11-22T10:00:00Z", "events": events}
    body, headers = client.encode(doc, new_msg_id())
    url = f"{client.base_url}/v1/sites/{client.site}/events"
    async with client.session.post(url, data=body, headers=headers) as response:
        answer = await response.json(content_type=None)
        if response.status == 503:
            assert int(response.headers["Retry-After"]) >= 1, "a 503 without Retry-After"
        return response.status, answer, [e["id"] for e in events]


@pytest.mark.sqlite_only("fills the disk under the SQLite file")
async def test_disk_full_answers_503_and_recovers_when_space_returns(
    tmp_path: Path, small_disk: Path, receiver
) -> None:
    state = small_disk / "state"
    relay = RelayProcess(write_config(tmp_path, state, receiver.url("/hook")), ENV, tmp_path / "relay.log")
    relay.start()
    acknowledged: set[str] = set()
    async with aiohttp.ClientSession() as session:
        client = SignedClient(relay.url, "main", SITE_SECRET, session)
        status, _, ids = await post(client, 50, "BEFORE")
        assert status == 202
        acknowledged.update(ids)

        filler = fill(small_disk)
        refusals = []
        for round_ in range(20):  # whatever free pages the database still had get used up, then 503
            status, answer, ids = await post(client, 200, f"FULL{round_}")
            if status == 202:
                acknowledged.update(ids)
            else:
                refusals.append((status, answer))
                break
        assert refusals, "the relay never refused although the disk was full"
        status, answer = refusals[0]
        assert status == 503 and answer["error"]["code"] == "storage_unavailable", answer
        assert "nothing was accepted" in answer["error"]["message"]

        filler.unlink()  # space returns: the very next request is accepted, with no restart
        answers: list[tuple[int, Any]] = []

        async def accepted() -> bool:
            status, answer, ids = await post(client, 200, "AFTER")
            answers.append((status, answer))
            if status == 202:
                acknowledged.update(ids)
            return status == 202

        await eventually(accepted, what="a request to be accepted once space returned")
        status, answer = answers[-1]
        assert status == 202, answer
        assert relay.proc is not None and relay.proc.poll() is None, "the relay died of a full disk"
        after = {f"AFTER-{i}-" + "x" * 120: i % 50 for i in range(200)}

        def all_shown() -> bool:  # the dispatcher paused on the full disk; it must resume by itself too
            shown = receiver.quantities.get("/hook", {})
            assert all(shown.get(s) == q for s, q in after.items()), (
                len(shown),
                sorted(shown)[:3],
                len(receiver.received),
            )
            return True

        await eventually(all_shown, what="every update after the full disk to be delivered")
    assert relay.terminate() == 0
    assert acknowledged <= stored_ids(state), "an event got a 202 but is not in the database"


@pytest.mark.sqlite_only("mounts the SQLite file's filesystem read-only")
async def test_read_only_filesystem_is_a_clear_error_and_the_next_start_recovers(
    tmp_path: Path, small_disk: Path, receiver
) -> None:
    """A state directory on a read-only mount stops ``serve`` with a message naming the cause (not a traceback, not
    "damaged"); once the mount is writable again the next start (systemd's Restart=) accepts events.

    A running relay cannot be put on a read-only mount from outside: the kernel refuses the remount while the
    database is open for writing (EBUSY), so this is the case an operator actually meets: a start after it happened.
    """
    state = small_disk / "state"
    config = write_config(tmp_path, state, receiver.url("/hook"))
    relay = RelayProcess(config, ENV, tmp_path / "relay.log")
    relay.start()
    assert relay.terminate() == 0  # the database now exists, with its schema

    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        done = run_cli("serve", "-c", str(config), env=ENV, timeout=60)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert done.returncode != 0
    assert "Read-only file system" in done.stderr and "writable" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "backup" not in done.stderr

    relay.start()
    async with aiohttp.ClientSession() as session:
        status, answer, ids = await post(SignedClient(relay.url, "main", SITE_SECRET, session), 20, "RW")
    assert status == 202, answer
    assert relay.terminate() == 0
    assert set(ids) <= stored_ids(state)


@pytest.mark.sqlite_only("damages the SQLite file's bytes")
def test_damaged_database_stops_serve_with_a_clear_message_and_is_kept(tmp_path: Path, receiver) -> None:
    state = tmp_path / "state"
    state.mkdir()
    database = state / "relay.sqlite3"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.executemany("INSERT INTO t VALUES (?)", [("y" * 400,)] * 200)
    data = bytearray(database.read_bytes())
    data[4096 * 2 : 4096 * 4] = b"\x07" * 8192  # overwrite two pages in the middle
    database.write_bytes(bytes(data))
    before = database.read_bytes()

    done = run_cli("serve", "-c", str(write_config(tmp_path, state, receiver.url("/hook"))), env=ENV, timeout=60)
    assert done.returncode != 0
    assert "restore it from a backup" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
    assert database.read_bytes() == before, "a damaged database must never be rewritten or recreated"


@pytest.mark.sqlite_only("makes the SQLite files read-only")
def test_read_only_database_files_stop_serve_promptly_with_a_clear_error(tmp_path: Path, receiver) -> None:
    """The database files at mode 444 (a restore as the wrong user, a chmod gone wrong): the first write fails after
    the database opened, and ``serve`` must still exit non-zero at once, so systemd's Restart=on-failure fires.

    It used to print the error and hang: the start-up error path left the store's threads running. Root ignores file
    modes, so as root the relay runs without the capabilities that let root write anyway (setpriv).
    """
    state = tmp_path / "state"
    config = write_config(tmp_path, state, receiver.url("/hook"))
    relay = RelayProcess(config, ENV, tmp_path / "relay.log")
    relay.start()
    assert relay.terminate() == 0
    for path in state.glob("relay.sqlite3*"):
        path.chmod(0o444)
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv (util-linux): root would write the read-only files anyway")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    done = subprocess.run(
        [*prefix, *relay_command("serve", "-c", str(config))],
        capture_output=True,
        text=True,
        env={**os.environ, **ENV},
        timeout=60,  # a hang is what this catches: it used to never exit
    )
    assert done.returncode == 1, done.stderr
    assert "cannot start" in done.stderr and "readonly database" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
