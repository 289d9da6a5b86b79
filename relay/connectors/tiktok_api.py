"""One signed exchange with TikTok Shop's Partner API (202309), and the access token it needs.

Every call carries ``app_key``, ``timestamp``, ``shop_cipher`` and ``sign`` (``tiktok_sign``) in the
query and ``x-tts-access-token``; ``TikTokApi.call`` signs it, sends it and judges the answer (body
``{code, message, request_id, data}``; ``code`` 0 is success): HTTP 401 → refresh the token once, then
pause (code 106001, a bad signature, pauses at once: wrong app secret or clock); HTTP 429 → retry
slower; 5xx or an answer that is not TikTok's JSON → retry; any other non-zero ``code`` → permanent
(``MovedError`` for 12052048, the product is gone). Tokens: ``GET {auth}/api/v2/token/refresh``; the
expiries it returns are Unix timestamps, not durations, and a new refresh token is saved to the vault.
``account.shop_cipher`` left out is taken from the authorized shops (``shop_id`` picks one of several).

TikTok signs its webhooks with the same app key and secret (relay/intake/tiktok.py): ``app_keys`` loads them from
the vault without a token refresh, so a webhook can be verified while TikTok's token endpoint is down.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from ..delivery import outbound
from ..delivery.outbound import Kind
from ..delivery.ratelimit import RateBudget
from ..errors import AuthDeliveryError, MovedError, PermanentDeliveryError, TransientDeliveryError
from ..vault import Credentials
from . import http
from .base import TokenAuth
from .tiktok_sign import sign

BAD_SIGNATURE = 106001
PRODUCT_GONE = 12052048  # "Product does not exist.": the product our cached mapping names was deleted
KEYS_RELOAD_SECONDS = 60.0  # a webhook whose signature does not match rereads the app secret at most this often


class TikTokApi:
    """The shop's Partner API at ``base``; tokens from ``auth_base``."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base: str,
        auth_base: str,
        account: Mapping[str, str],
        credentials: Credentials,
        budget: RateBudget,
        timeout: float,
    ) -> None:
        self.session = session
        self.base = base
        self.auth_base = auth_base
        self.shop_cipher = account.get("shop_cipher", "")
        self.shop_id = account.get("shop_id")
        self.credentials = credentials
        self.budget = budget
        self.timeout = timeout
        self.auth = TokenAuth(self.fetch_token)
        self.secrets: set[str] = set()  # every token and secret seen: scrubbed from audit excerpts
        self._app_key = ""
        self._app_secret = ""
        self._keys_loaded_at = float("-inf")  # monotonic time of the last vault read of the app key and secret

    async def ready(self) -> None:
        """Load the app key and secret the signature needs (with the first token), if not done yet."""
        if not self._app_secret:
            await self.auth.token()

    async def app_keys(self, fresh: bool = False) -> tuple[str, str]:
        """The app key and secret (what webhooks are signed with), read from the vault once, or again when
        ``fresh`` and the last read is over ``KEYS_RELOAD_SECONDS`` old (a secret rotated with ``credentials set``
        is taken without a restart, while a stream of forged requests costs at most one vault read a minute)."""
        stale = fresh and time.monotonic() - self._keys_loaded_at >= KEYS_RELOAD_SECONDS
        if not self._app_secret or stale:
            creds = await http.load_credentials(self.credentials, ("app_key", "app_secret"), "TikTok Shop")
            self._keys_loaded_at = time.monotonic()
            self.secrets.update(v for v in creds.values() if v)
            self._app_key, self._app_secret = creds["app_key"], creds["app_secret"]
        return self._app_key, self._app_secret

    async def fetch_token(self) -> tuple[str, float]:
        creds = await http.load_credentials(self.credentials, ("app_key", "app_secret", "refresh_token"), "TikTok Shop")
        self._keys_loaded_at = time.monotonic()
        self.secrets.update(v for v in creds.values() if v)
        self._app_key, self._app_secret = creds["app_key"], creds["app_secret"]
        params = {
            "app_key": creds["app_key"],
            "app_secret": creds["app_secret"],
            "refresh_token": creds["refresh_token"],
            "grant_type": "refresh_token",
        }
        answer = await outbound.send(
            self.session,
            "GET",
            f"{self.auth_base}/api/v2/token/refresh",
            timeout=self.timeout,
            what="TikTok Shop's token endpoint",
            params=params,
        )
        doc = answer.json() if isinstance(answer.json(), dict) else {}
        data = doc.get("data") or {}
        snippet = http.scrub(answer.text, self.secrets)
        verdict = outbound.classify(answer)
        if verdict.kind in (Kind.THROTTLED, Kind.TRANSIENT):
            raise http.refusal(answer, verdict, "TikTok Shop's token endpoint", "")
        if answer.status != 200 or doc.get("code") != 0 or not data.get("access_token"):
            raise AuthDeliveryError(
                f"TikTok Shop refused to refresh the access token (code {doc.get('code')}:"
                f" {http.scrub(str(doc.get('message') or answer.status), self.secrets)});"
                " authorize the shop again and store the new refresh token (stock-relay credentials set)",
                http_status=answer.status,
                excerpt=snippet,
            )
        token = str(data["access_token"])
        self.secrets.add(token)
        new_refresh = str(data.get("refresh_token") or "")
        if new_refresh and new_refresh != creds["refresh_token"]:
            self.secrets.add(new_refresh)
            await self.credentials.save({**creds, "refresh_token": new_refresh})
        try:  # a Unix timestamp, not a duration
            expires_at = float(data.get("access_token_expire_in") or 0)
        except (TypeError, ValueError):
            expires_at = 0.0
        lifetime = expires_at - time.time() if expires_at > 0 else 3600.0
        return token, max(lifetime, 60.0)

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        charged: bool = False,
    ) -> Any:
        """One signed call, charged unless the caller ``charged`` it already; returns ``data`` of a ``code: 0``
        answer or raises the classified error."""
        payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        if not self.shop_cipher and not path.startswith("/authorization/"):
            await self._find_shop_cipher()
        token = await self.auth.token()  # before the budget: a call that waited for a token must not burst
        if not charged:
            await self.budget.acquire(1.0)

        async def call(token: str) -> outbound.Answer:
            params = {**(query or {}), "app_key": self._app_key, "timestamp": str(int(time.time()))}
            if self.shop_cipher and not path.startswith("/authorization/"):
                params["shop_cipher"] = self.shop_cipher
            params["sign"] = sign(self._app_secret, path, params, payload)
            headers = {"x-tts-access-token": token, "Content-Type": "application/json"}
            return await outbound.send(
                self.session,
                method,
                f"{self.base}{path}",
                timeout=self.timeout,
                what="TikTok Shop",
                headers=headers,
                params=params,
                data=payload if body is not None else None,
            )

        answer = await call(token)
        if answer.status == 401 and self._code(answer) != BAD_SIGNATURE:
            self.auth.invalidate(token)
            answer = await call(await self.auth.token())
        doc = answer.json() if isinstance(answer.json(), dict) else {}
        code, message = doc.get("code"), http.scrub(str(doc.get("message") or ""), self.secrets)
        snippet = http.scrub(answer.text, self.secrets)
        if answer.status == 401:
            hint = (
                "check the app secret and the server's clock" if code == BAD_SIGNATURE else "authorize the shop again"
            )
            raise AuthDeliveryError(
                f"TikTok Shop refused the request (401, code {code}: {message}); {hint}",
                http_status=401,
                excerpt=snippet,
            )
        verdict = outbound.classify(answer)  # a 4xx is judged by its code below
        if verdict.kind is Kind.THROTTLED:
            raise http.refusal(
                answer,
                verdict,
                "TikTok Shop",
                snippet,
                budget=self.budget,
                throttle_wait=max(1.0, 1.0 / self.budget.rate),
                throttled=f"TikTok Shop throttled the call (429, code {code})",
            )
        if verdict.kind is Kind.TRANSIENT or not doc:
            raise TransientDeliveryError(
                f"TikTok Shop answered {answer.status} (code {code})",
                verdict.retry_after,
                http_status=answer.status,
                excerpt=snippet,
            )
        if code != 0:
            error = MovedError if code == PRODUCT_GONE else PermanentDeliveryError
            raise error(
                f"TikTok Shop refused the request (code {code}: {message})", http_status=answer.status, excerpt=snippet
            )
        self.budget.succeeded()
        return doc.get("data") or {}

    @staticmethod
    def _code(answer: outbound.Answer) -> Any:
        doc = answer.json()
        return doc.get("code") if isinstance(doc, dict) else None

    async def _find_shop_cipher(self) -> None:
        """``account.shop_cipher`` left out: take it from the authorized shops (``shop_id`` picks one of several)."""
        data = await self.call("GET", "/authorization/202309/shops")
        shops = [s for s in data.get("shops") or [] if isinstance(s, dict)]
        wanted = self.shop_id
        chosen = [s for s in shops if not wanted or str(s.get("id")) == wanted]
        if len(chosen) != 1 or not chosen[0].get("cipher"):
            raise AuthDeliveryError(
                f"TikTok Shop authorized {len(shops)} shop(s) for this app; set account.shop_cipher"
                " (or account.shop_id) to the one to update"
            )
        self.shop_cipher = str(chosen[0]["cipher"])
