"""Cross-language: the plugin's PHP signer and the relay's Python verifier agree, both ways."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from relay import signing
from relay.cli.client import stock_event
from relay.errors import SignatureError
from relay.intake import protocol

from .conftest import Reply, make_config, webhook_channel

SRC = Path(__file__).resolve().parent.parent / "wp-plugin" / "src"
BOOTSTRAP = SRC.parent / "tests" / "bootstrap.php"
PHP = shutil.which("php")


def php(code: str, *args: str) -> str:
    if PHP is None:
        pytest.fail(
            "php is not installed: scripts/test installs php-cli; the PHP/Python interop cannot be checked without it"
        )
    # The plugin's unit bootstrap stands in for WordPress (ABSPATH, which every file's direct-access guard needs,
    # and the translation functions) and loads the plain classes: the signer, the payload, the status view.
    script = f"require {json.dumps(str(BOOTSTRAP))}; {code}"
    return subprocess.run(
        [PHP, "-r", script, "--", *args], capture_output=True, text=True, check=True, timeout=30
    ).stdout


def test_php_signs_python_verifies() -> None:
    """A body with non-ASCII characters signed by the PHP plugin verifies in the relay."""
    secret = signing.new_secret()
    body = json.dumps({"type": "stock.batch", "site": "main", "events": [{"sku": "MÜTZE/XL"}]}, ensure_ascii=False)
    now = int(time.time())
    headers = json.loads(
        php(
            "echo json_encode(Stock_Relay_Signer::headers($argv[1], $argv[2], (int) $argv[3], $argv[4]));",
            secret,
            "msg_x",
            str(now),
            body,
        )
    )
    assert signing.verify([secret], headers, body.encode(), now=now) == now
    with pytest.raises(SignatureError):
        signing.verify([signing.new_secret()], headers, body.encode(), now=now)


def test_python_signs_php_verifies() -> None:
    """What the relay signs (its outbound webhooks, and the reserved relay→plugin routes) verifies in PHP."""
    secret = signing.new_secret()
    body = '{"type":"snapshot.page","after_id":0}'
    now = int(time.time())
    header = signing.sign(secret, "msg_y", now, body.encode())
    code = "echo Stock_Relay_Signer::verify([$argv[1]], $argv[2], $argv[3], $argv[4], $argv[5], (int) $argv[3]);"
    assert php(code, secret, "msg_y", str(now), body, header) == "valid"
    assert php(code, secret, "msg_y", str(now), body + " ", header) == "invalid"


def test_php_batch_passes_relay_validation() -> None:
    """A stock.batch built by the plugin's payload builder (microsecond-clock version, variation, no SKU,
    unmanaged stock) is signed in PHP, verifies in Python, and every event passes the relay's validation."""
    secret = signing.new_secret()
    now = int(time.time())
    code = """
        $t = microtime(true);
        $events = [
            Stock_Relay_Payload::event(['product_id' => 40, 'variation_id' => 43, 'parent_id' => 40, 'sku' => 'TEE-RED',
                'manage_stock' => true, 'stock_quantity' => 7, 'stock_status' => 'instock', 'backorders' => 'notify'],
                (int) floor($t * 1000000), ['kind' => 'order', 'order_id' => 1001], Stock_Relay_Signer::new_id('evt_'), $t),
            Stock_Relay_Payload::event(['product_id' => 50, 'sku' => '', 'manage_stock' => false, 'stock_quantity' => null,
                'stock_status' => 'onbackorder', 'backorders' => 'no', 'deleted' => true],
                1, ['kind' => 'admin'], Stock_Relay_Signer::new_id('evt_'), $t),
        ];
        $body = Stock_Relay_Payload::batch_body('main', $events, (int) $argv[2]);
        echo json_encode(['body' => $body, 'headers' => Stock_Relay_Signer::headers($argv[1], Stock_Relay_Signer::new_id(), (int) $argv[2], $body)]);
    """
    out = json.loads(php(code, secret, str(now)))
    body = out["body"].encode()
    assert signing.verify([secret], out["headers"], body, now=now) == now
    doc = protocol.check_envelope(protocol.parse_json(body), "stock.batch", "main")
    valid, rejected = protocol.split_batch(doc, 500)
    assert rejected == []
    assert [(e.product_id, e.variation_id, e.sku, e.stock_quantity, e.kind) for e in valid] == [
        (40, 43, "TEE-RED", 7, "stock"),
        (50, None, "", None, "deleted"),
    ]


async def test_plugin_status_panel_reads_the_relays_real_status(start_relay, tmp_path: Path, receiver) -> None:
    """The plugin's status panel rows come from the relay's real status.query answer: every column filled."""
    receiver.on("/a", Reply(400, {"error": "no such listing"}))
    r = await start_relay(make_config(tmp_path / "s", (webhook_channel("amazon", receiver.url("/a")),)))
    await r.client.send_events([stock_event(1, "A", 1, 1)])
    await r.drain()
    await r.client.send_events([stock_event(2, "B", 1, 1)])
    status, body = await r.client.post("status", {"type": "status.query", "site": "main"})
    assert status == 200
    rows = json.loads(php("echo json_encode(Stock_Relay_Status_View::rows(200, json_decode($argv[1], true)));",
                          json.dumps(body)))  # fmt: skip
    (row,) = rows
    assert row[:5] == ["amazon", "1", row[2], "1", "Sending normally"] and row[2].endswith(" s")
