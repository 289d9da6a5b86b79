"""Bounds on the relay's own HTTP connections, so slow or idle clients cannot starve the shop's requests.

aiohttp has no cap on open connections, and a client that trickles its headers (slowloris) was held
for an hour: 1,100 such sockets under a 1,024 open-file limit made every genuine request time out. So:

- ``GatedSite`` listens like aiohttp's TCPSite, but admits at most ``max_connections`` at once; one
  more is answered ``503`` with ``Retry-After`` and closed at once (a clear answer the plugin backs off
  by, and its file descriptor is back immediately).
- The headers of each request must arrive within ``request_timeout_seconds`` of the connection
  opening or of the previous answer (aiohttp's keep-alive timer closes a connection still waiting for
  a request's headers, so ``serve`` sets it to that value); server.py bounds the body the same way.
- ``raise_open_file_limit`` lifts the soft limit to the hard one (systemd's default soft limit is
  1,024) and ``admitted_connections`` keeps the cap below what the process can open, with room for the
  database and the marketplace connections.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger("stock_relay.server")

_BUSY_BODY = b'{"error": {"code": "too_many_connections", "message": "The relay is at its connection limit; retry."}}'
BUSY_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 5\r\nConnection: close\r\n"
    + f"Content-Length: {len(_BUSY_BODY)}\r\n\r\n".encode()
    + _BUSY_BODY
)
RESERVED_FILES = 128  # database, WAL, readers, logs and the connectors' own outbound connections


def raise_open_file_limit() -> int:
    """Raise the soft open-file limit to the hard one (never lower it); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        want = 65_536 if hard == resource.RLIM_INFINITY else hard
        if want > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
                soft = want
            except (ValueError, OSError):
                pass
    return soft


def admitted_connections(configured: int, open_file_limit: int) -> int:
    """The configured cap, lowered where the open-file limit could not hold it."""
    room = max(16, open_file_limit - RESERVED_FILES)
    if configured > room:
        log.warning(
            "limits.max_connections is %d but the open-file limit (%d) leaves room for %d; holding %d."
            " Raise LimitNOFILE= in the unit to allow more.",
            configured,
            open_file_limit,
            room,
            room,
        )
    return min(configured, room)


class Gate:
    """How many connections are open, against the cap; ``on_refused`` counts the ones turned away (/metrics)."""

    def __init__(self, limit: int, on_refused: Callable[[], object] = lambda: None) -> None:
        self.limit = limit
        self.open = 0
        self.on_refused = on_refused


class _GatedProtocol(asyncio.Protocol):
    """Admits a connection to aiohttp's own protocol, or answers 503 and closes it when the gate is full."""

    def __init__(self, factory: web.Server, gate: Gate) -> None:
        self._factory = factory
        self._gate = gate
        self._inner: asyncio.Protocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._gate.open >= self._gate.limit:
            self._gate.on_refused()
            assert isinstance(transport, asyncio.Transport)
            transport.write(BUSY_ANSWER)
            transport.close()
            return
        self._gate.open += 1
        self._inner = self._factory()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is not None:
            self._gate.open -= 1
            self._inner.connection_lost(exc)
            self._inner = None

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class GatedSite(web.BaseSite):
    """aiohttp's TCPSite with a cap on open connections (``Gate``)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, gate: Gate) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self.gate = gate

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        gate = self.gate
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _GatedProtocol(server, gate), self._host, self._port, reuse_address=True
        )
