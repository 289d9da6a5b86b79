"""TikTok Shop's request signature (Partner API 202309), on its own so the fake and the tests can use it too.

1. the query parameters except ``sign`` and ``access_token``, sorted by key, as ``{key}{value}``;
2. prefixed with the URL path; 3. the body appended exactly as sent (unless it is multipart);
4. wrapped in the app secret on both sides; 5. ``hex(HMAC-SHA256(app_secret, that))``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

UNSIGNED = ("sign", "access_token")


def string_to_sign(path: str, params: Mapping[str, str], body: bytes = b"", multipart: bool = False) -> bytes:
    """What gets wrapped and hashed (before the app secret goes around it)."""
    pairs = "".join(f"{key}{params[key]}" for key in sorted(params) if key not in UNSIGNED)
    return (path + pairs).encode() + (b"" if multipart else body)


def sign(app_secret: str, path: str, params: Mapping[str, str], body: bytes = b"", multipart: bool = False) -> str:
    secret = app_secret.encode()
    message = secret + string_to_sign(path, params, body, multipart) + secret
    return hmac.new(secret, message, hashlib.sha256).hexdigest()
