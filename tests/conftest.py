"""Shared fixtures: real relays on real SQLite files, real HTTP receivers on 127.0.0.1. Nothing of ours is mocked."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from relay import signing
from relay.cli.client import SignedClient
from relay.config import ChannelConfig, Config, DispatchConfig, RateLimit, SiteConfig
from relay.http.server import make_app
from relay.runtime import Relay

from . import backend
from .backend import pg_schema  # noqa: F401 - a fixture, for the tests of PostgreSQL itself
from .procs import STARTED

SITE_SECRET = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
CHANNEL_SECRET = "whsec_IkYQ8QKJC8DkDEn/tFa7k9Rabe6I3Jp77zUfoQ0/hYI="


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No STOCK_RELAY_* variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("STOCK_RELAY_") or name in ("STATE_DIRECTORY", "CREDENTIALS_DIRECTORY"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _store_backend(_clean_environment: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The suite's store: SQLite, or on the PostgreSQL run a schema of this test's own (tests/backend.py)."""
    yield from backend.suite_store(monkeypatch)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not backend.ON_POSTGRES:
        return
    for item in items:
        marker = item.get_closest_marker("sqlite_only")
        if marker is not None:
            why = marker.args[0] if marker.args else "about SQLite itself"
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {why}"))


@pytest.fixture(autouse=True)
def _no_leftover_relays() -> Iterator[None]:
    """A test that fails halfway must not leave a relay subprocess running for the rest of the suite."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def fast_dispatch(**overrides: Any) -> DispatchConfig:
    """Dispatcher settings for tests: short backoff so retries happen within a test's lifetime."""
    base = DispatchConfig(
        lease_seconds=10.0,
        backoff_base_seconds=0.01,
        backoff_max_seconds=0.05,
        circuit_failure_threshold=100,
        circuit_open_seconds=0.2,
        auth_pause_seconds=0.2,
        idle_poll_seconds=0.05,
    )
    return replace(base, **overrides)


def eventually(condition: Callable[[], Any], seconds: float = 30.0, what: str = "the condition") -> Any:
    """Poll ``condition`` until it is true; fail after a generous deadline. The one way tests wait.

    For waiting on state: a fixed sleep before an assertion fails on a machine slow enough to need longer, and a
    loop that falls through when it runs out hides the failure. ``condition`` may also assert: its AssertionError
    counts as "not yet", and the last one is raised at the deadline, so the failure says what was wrong.
    In an async test ``await eventually(...)`` (``condition`` may be a coroutine function, e.g. one that drains the
    relay and then checks); in a plain test call it as it is, and it blocks (``condition`` must be a plain function).
    """
    deadline = time.monotonic() + seconds

    def done(value: Any, failed: AssertionError | None) -> bool:
        if value:
            return True
        if time.monotonic() >= deadline:
            if failed is not None:
                raise failed
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        return False

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        while True:
            try:
                value, failed = condition(), None
            except AssertionError as exc:
                value, failed = False, exc
            if done(value, failed):
                return None
            time.sleep(0.05)

    async def poll() -> None:
        while True:
            try:
                value, failed = condition(), None
                if asyncio.iscoroutine(value):
                    value = await value
            except AssertionError as exc:
                value, failed = False, exc
            if done(value, failed):
                return
            await asyncio.sleep(0.01)

    return poll()


def webhook_channel(name: str, url: str, **overrides: Any) -> ChannelConfig:
    return replace(
        ChannelConfig(
            name=name, type="webhook", url=url, secret=CHANNEL_SECRET, batch_size=1, rate=RateLimit(1000, 1000)
        ),
        **overrides,
    )


def make_config(state_dir: Path, channels: tuple[ChannelConfig, ...] = (), **overrides: Any) -> Config:
    site = SiteConfig(id="main", secrets=(SITE_SECRET,), channels=channels, max_requests_per_second=0)
    base = Config(state_dir=state_dir, store=backend.store_for(state_dir), dispatch=fast_dispatch(), sites=(site,))
    return replace(base, **overrides)


@dataclass
class Reply:
    """One scripted answer of a fake receiver."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # The answer waits until the test sets this: "still in flight" then holds however slow the machine is.
    release: asyncio.Event | None = None


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def doc(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A real HTTP server that verifies the Standard Webhooks signature and answers from a script.

    ``script`` maps a path to replies used in order; once used up, the path answers 200.
    ``quantities`` is what the receiver "shows": the last quantity it accepted per SKU.
    """

    def __init__(self) -> None:
        self.script: dict[str, list[Reply]] = {}
        self.received: list[Received] = []
        self.quantities: dict[str, dict[str, int]] = {}
        self.bad_signatures = 0
        self.server: TestServer | None = None

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    def on(self, path: str, *replies: Reply) -> None:
        self.script.setdefault(path, []).extend(replies)

    def for_path(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            signing.verify([CHANNEL_SECRET], headers, body, time.time())
        except Exception:  # noqa: BLE001 - v1a channels are verified by the test itself
            self.bad_signatures += 1
        self.received.append(Received(request.path, headers, body, time.monotonic()))
        queue = self.script.get(request.path)
        reply = queue.pop(0) if queue else Reply()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.release is not None:
            await reply.release.wait()
        if 200 <= reply.status < 300:
            shown = self.quantities.setdefault(request.path, {})
            rejected = {r["sku"] for r in (reply.body or {}).get("results", []) if r.get("status") != "ok"}
            for update in json.loads(body).get("updates", []):
                if update["sku"] not in rejected:
                    shown[update["sku"]] = update["quantity"]
        if reply.body is None:
            return web.Response(status=reply.status, headers=reply.headers)
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    fake = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.server = server
    yield fake
    await server.close()


@dataclass
class RunningRelay:
    relay: Relay
    server: TestServer
    client: SignedClient
    session: aiohttp.ClientSession

    @property
    def base_url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    async def post_raw(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        async with self.session.post(self.base_url + path, data=body, headers=headers) as response:
            text = await response.text()
            return response.status, (json.loads(text) if text else None), dict(response.headers)

    async def drain(self) -> int:
        """Burst mode: every worker publishes what is due, repeatedly, until nothing is left due now."""
        total = 0
        while True:
            done = 0
            for worker in self.relay.workers.values():
                done += await worker.drain()
            total += done
            if done == 0:
                return total

    async def count(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        rows = await self.relay.store.read(sql, params)
        return rows[0][0]


StartRelay = Callable[..., Any]


@pytest.fixture
async def start_relay(tmp_path: Path) -> AsyncIterator[StartRelay]:
    """Factory: ``await start_relay(config, run_workers=False)`` → a RunningRelay on a real port."""
    running: list[RunningRelay] = []

    async def start(
        config: Config | None = None, run_workers: bool = False, now: Callable[[], float] = time.time
    ) -> RunningRelay:
        cfg = config or make_config(tmp_path / "state")
        relay = Relay(cfg, now=now)
        await relay.start(run_workers=run_workers)
        server = TestServer(make_app(cfg, relay), host="127.0.0.1")
        await server.start_server()
        relay.serving.set()  # as serve does once it listens
        session = aiohttp.ClientSession()
        site = cfg.sites[0]
        client = SignedClient(str(server.make_url("")).rstrip("/"), site.id, site.secrets[0], session)
        handle = RunningRelay(relay, server, client, session)
        running.append(handle)
        return handle

    yield start
    for handle in running:
        await handle.session.close()
        await handle.server.close()
        await handle.relay.stop()
