"""Cross-language: the plugin's PHP signer and the relay's Python verifier agree, both ways."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from relay import signing
from relay.errors import SignatureError

SIGNER = Path(__file__).resolve().parent.parent / "wp-plugin" / "src" / "class-stock-relay-signer.php"
PHP = shutil.which("php")


def php(code: str, *args: str) -> str:
    if PHP is None:
        pytest.fail(
            "php is not installed: scripts/test installs php-cli; the PHP/Python interop cannot be checked without it"
        )
    script = f"require {json.dumps(str(SIGNER))}; {code}"
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
