"""The relay's own bounds on client connections, against the real ``stock-relay serve``: slow clients
(slowloris) are closed, connections past ``limits.max_connections`` get a quick 503, a body that trickles
is answered 408, and a client that leaves mid-body is not counted as the relay's error.

Every wait here is on state (a socket closed, a metric counted), with deadlines far beyond the configured
timeouts, so a busy machine only makes the test slower, never wrong.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from relay import signing
from relay.cli.client import new_msg_id
from relay.logsetup import RepeatFilter

from .conftest import CHANNEL_SECRET, SITE_SECRET, eventually
from .procs import RelayProcess

MAX_CONNECTIONS = 16
TIMEOUT = 2  # limits.request_timeout_seconds
DEADLINE = 60.0  # how long a test waits for what the relay should do within TIMEOUT


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayProcess]:
    doc = {
        "state_dir": str(tmp_path / "state"),
        "listen": {"host": "127.0.0.1", "port": 0},
        "limits": {"max_connections": MAX_CONNECTIONS, "request_timeout_seconds": TIMEOUT},
        "sites": {
            "main": {
                "secret": "env:CONN_SITE",
                "max_requests_per_second": 0,
                "channels": [
                    {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/", "secret": "env:CONN_HOOK"}
                ],
            }
        },
    }
    (tmp_path / "relay.yaml").write_text(yaml.safe_dump(doc))
    process = RelayProcess(
        tmp_path / "relay.yaml", {"CONN_SITE": SITE_SECRET, "CONN_HOOK": CHANNEL_SECRET}, tmp_path / "relay.log"
    )
    process.start()
    yield process
    assert process.terminate() == 0
    assert "Traceback" not in process.log()


def address(relay: RelayProcess) -> tuple[str, int]:
    host, port = relay.url.removeprefix("http://").split(":")
    return host, int(port)


def slow_client(relay: RelayProcess) -> socket.socket:
    """A connection that sends the start of a request's headers and never the rest."""
    sock = socket.create_connection(address(relay), timeout=DEADLINE)
    sock.sendall(b"POST /v1/sites/main/events HTTP/1.1\r\nHost: relay\r\nX-Slow: ")
    return sock


def answer(sock: socket.socket) -> bytes:
    """Everything the relay sends until it closes the connection (b"" when it just closes it)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def signed_events(relay: RelayProcess, sku: str) -> requests.Response:
    event = {
        "id": "evt_" + new_msg_id()[4:], "kind": "stock", "product_id": 1, "variation_id": None, "parent_id": None,
        "sku": sku, "manage_stock": True, "stock_quantity": 3, "stock_status": "instock", "backorders": "no",
        "version": time.time_ns() // 1000, "occurred_at": "2026-12-03T10:00:00Z", "cause": {"kind": "other"},
    }  # fmt: skip
    body = json.dumps({"type": "stock.batch", "site": "main", "sent_at": "2026-12-03T10:00:00Z", "events": [event]})
    headers = signing.signed_headers(SITE_SECRET, new_msg_id(), int(time.time()), body.encode())
    return requests.post(
        relay.url + "/v1/sites/main/events",
        data=body,
        headers=headers | {"content-type": "application/json"},
        timeout=DEADLINE,
    )


def metric(relay: RelayProcess, name: str) -> float:
    text = requests.get(relay.url + "/metrics", timeout=DEADLINE).text
    found = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_slow_clients_are_closed_and_connections_past_the_limit_get_503(relay: RelayProcess) -> None:
    held = [slow_client(relay) for _ in range(MAX_CONNECTIONS)]
    # Past the limit: a clear 503 at once, the socket closed, whatever the request would have been.
    extra = [slow_client(relay) for _ in range(4)]
    for sock in extra:
        got = answer(sock)
        assert got.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 5" in got and b"too_many_connections" in got
        sock.close()
    # The slow ones are closed by the relay once their headers are overdue (they used to be held for an hour).
    for sock in held:
        assert answer(sock) == b""
        sock.close()
    assert metric(relay, "stock_relay_connections_refused_total") == 4
    # And the shop's own requests get through again.
    response = signed_events(relay, "SLOW-1")
    assert response.status_code == 202, response.text


def test_a_body_that_trickles_is_answered_408_and_nothing_is_stored(relay: RelayProcess) -> None:
    sock = socket.create_connection(address(relay), timeout=DEADLINE)
    sock.sendall(
        b"POST /v1/sites/main/events HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n" + b'{"type": "stock.batch", '
    )
    got = answer(sock)
    sock.close()
    assert got.startswith(b"HTTP/1.1 408 ") and b"request_timeout" in got, got[:300]
    assert metric(relay, 'stock_relay_client_aborts_total{reason="timeout"}') == 1
    assert metric(relay, 'stock_relay_request_errors_total{code="internal_error"}') == 0


def test_a_client_leaving_mid_body_is_not_the_relays_error(relay: RelayProcess) -> None:
    sock = socket.create_connection(address(relay), timeout=DEADLINE)
    sock.sendall(
        b"POST /v1/sites/main/events HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n" + b'{"type": "stock.batch", '
    )
    sock.close()
    eventually(
        lambda: metric(relay, 'stock_relay_client_aborts_total{reason="disconnected"}') >= 1,
        DEADLINE,
        "the relay to notice the client leaving",
    )
    assert metric(relay, 'stock_relay_request_errors_total{code="internal_error"}') == 0
    assert "unexpected error" not in relay.log()


def test_one_message_repeated_is_logged_once_then_summed_up() -> None:
    """asyncio's accept error under a file-descriptor shortage repeated 423,052 times in 30 s; the relay's log
    handler lets the first through, drops the rest for a minute, then says how many it dropped."""
    now = [0.0]
    repeat = RepeatFilter(window=60.0, clock=lambda: now[0])
    log = logging.getLogger("test.flood")

    def passes(message: str) -> bool:
        return repeat.filter(log.makeRecord(log.name, logging.ERROR, __file__, 1, message, None, None))

    assert passes("socket.accept() out of system resource")
    assert not any(passes("socket.accept() out of system resource") for _ in range(10_000))
    assert passes("another message"), "a different message is not held back"
    now[0] = 61.0
    record = log.makeRecord(log.name, logging.ERROR, __file__, 1, "socket.accept() out of system resource", None, None)
    assert repeat.filter(record)
    assert record.getMessage().endswith("(repeated 10000 more times in the last 60 s)")
