"""One HTTP exchange with a marketplace, and the OAuth token grants the marketplaces share.

Transport failures (refused connection, timeout) become TransientDeliveryError here, once, so the
connectors only judge real answers. URLs go out exactly as built here (``request_url``): query values
are percent-encoded as RFC 3986 has it, so a SKU such as ``A/B 1+2`` reaches the marketplace intact. Excerpts for the audit log are cut short and scrubbed of every
secret the connector knows (tokens, client secrets), because a marketplace may echo them back.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import yarl

from ..errors import AuthDeliveryError, TransientDeliveryError, VaultError
from ..vault import Credentials
from .base import TokenAuth
from .webhook import excerpt, retry_after_seconds


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    text: str

    def json(self) -> Any:
        """The parsed body, or None when it is not JSON (a gateway's HTML error page)."""
        try:
            return json.loads(self.text) if self.text else None
        except ValueError:
            return None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def retry_after(self) -> float | None:
        return retry_after_seconds(self.header("retry-after"))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """An audit excerpt of ``text`` with every known secret blanked out."""
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, "[redacted]")
    return excerpt(text)


def request_url(url: str, params: Mapping[str, str] | None = None) -> yarl.URL:
    """``url`` (already percent-encoded: a connector quotes what it puts in a path, ``quote(sku, safe="")``)
    with ``params`` appended, names and values percent-encoded as RFC 3986 has it, everything but letters,
    digits and ``-._~``: a space is ``%20``, a ``+`` is ``%2B``, a ``/`` is ``%2F``.

    That is what Walmart asks for (reserved characters percent-encoded, a space as ``%20``), and the one
    form every server decodes alike. aiohttp's own ``params`` encoding writes a space as ``+`` (an HTML
    form's convention), which a server decoding RFC 3986 reads as a literal ``+``: ``A/B 1+2`` became
    the SKU ``A/B+1+2``. The URL is sent as built (``encoded=True``), so yarl does not re-encode it.
    """
    query = "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in (params or {}).items())
    if query:
        url = f"{url}{'&' if '?' in url else '?'}{query}"
    return yarl.URL(url, encoded=True)


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    timeout: float,
    what: str,
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    form: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    data: aiohttp.FormData | bytes | None = None,
) -> Answer:
    """Make one request; a transport failure is a TransientDeliveryError naming ``what`` (e.g. "Etsy").

    ``url`` is percent-encoded already and ``params`` are encoded by ``request_url``. ``data`` is a body
    sent as is (a multipart upload); ``form`` is a urlencoded form.
    """
    try:
        async with session.request(
            method,
            request_url(url, params),
            headers=dict(headers or {}),
            json=json_body,
            data=form if form is not None else data,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            text = await response.text(errors="replace")
            return Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, text)
    except TimeoutError:
        raise TransientDeliveryError(f"{what} did not answer within {timeout:g} s") from None
    except aiohttp.ClientError as exc:
        raise TransientDeliveryError(f"could not reach {what}: {type(exc).__name__}") from None


async def with_token(auth: TokenAuth, call: Callable[[str], Awaitable[Answer]], what: str) -> Answer:
    """Call with the current token; on a 401 refresh once (shared with concurrent callers) and call again.

    A second 401 with a fresh token means the grant itself is no good: the channel pauses.
    """
    token = await auth.token()
    answer = await call(token)
    if answer.status != 401:
        return answer
    auth.invalidate(token)
    token = await auth.token()
    answer = await call(token)
    if answer.status == 401:
        auth.invalidate(token)
        raise AuthDeliveryError(f"{what} refused a freshly obtained access token (401)", http_status=401)
    return answer


async def load_credentials(credentials: Credentials, required: Iterable[str], what: str) -> dict[str, str]:
    """The channel's secrets from the vault; a missing entry or key pauses the channel with a clear reason."""
    try:
        values = await credentials.load()
    except VaultError as exc:
        raise AuthDeliveryError(str(exc)) from None
    missing = [key for key in required if not values.get(key)]
    if missing:
        raise AuthDeliveryError(
            f"the {what} credentials {credentials.name} lack {', '.join(missing)}"
            f" (stock-relay credentials set {credentials.name})"
        )
    return values


async def token_grant(
    session: aiohttp.ClientSession,
    url: str,
    form: Mapping[str, str],
    *,
    what: str,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    json_request: bool = False,
) -> dict[str, Any]:
    """POST an OAuth grant; returns the token answer.

    A refused grant (400/401/403: invalid_grant, invalid_client, revoked consent) is for good, so it
    pauses the channel; 429, 5xx and transport failures are retried later.
    """
    secrets = list(form.values())
    answer = await send(
        session,
        "POST",
        url,
        timeout=timeout,
        what=f"{what}'s token endpoint",
        headers=headers,
        json_body=dict(form) if json_request else None,
        form=None if json_request else form,
    )
    doc = answer.json()
    snippet = scrub(answer.text, secrets)
    if 200 <= answer.status < 300 and isinstance(doc, dict) and doc.get("access_token"):
        return doc
    if answer.status == 429 or answer.status >= 500:
        raise TransientDeliveryError(
            f"{what}'s token endpoint answered {answer.status}",
            answer.retry_after,
            http_status=answer.status,
            excerpt=snippet,
        )
    reason = ""
    if isinstance(doc, dict):
        reason = str(doc.get("error") or doc.get("error_description") or "")
    raise AuthDeliveryError(
        f"{what} refused to issue an access token ({answer.status}{': ' + reason if reason else ''});"
        " the stored credentials need renewing (stock-relay credentials set)",
        http_status=answer.status,
        excerpt=snippet,
    )


def lifetime(doc: Mapping[str, Any], default: float) -> float:
    """``expires_in`` of a token answer, in seconds (a missing or odd value gets ``default``)."""
    try:
        value = float(doc.get("expires_in", default))
    except (TypeError, ValueError):
        return default
    return value if value > 0 else default
