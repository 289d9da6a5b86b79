"""Outbound HTTP: every call the relay makes to another server is sent, translated and judged here.

One boundary, as httpx's ``map_httpcore_exceptions`` is one (STYLE.md):

- ``send`` makes one request and turns whatever aiohttp or asyncio raise on the way (refused or reset
  connection, DNS, a bad URL, a timeout) into a ``TransientDeliveryError`` naming the remote (``what``),
  never anything else. With ``reconnect`` it first retries a connection that failed outright a few times
  in-process (tenacity: bounded by attempts and by time, with jitter); anything longer is the caller's
  durable backoff. The answer comes back whole as an ``Answer`` (or its first ``limit`` bytes).
- ``classify`` is the one status ladder: 2xx ok, 429 throttled, 5xx (and the remote's other transient
  statuses) transient, 401/403 auth, any other status permanent. A remote's nuances are a ``Ladder``
  (which statuses mean auth, which transient, whether only some 4xx are permanent), not a copy.
- ``retry_after_seconds`` parses ``Retry-After`` (delta seconds or an HTTP date), once, for every caller.

Callers: the marketplace connectors (through ``relay.connectors.http``, which adds tokens and scrubbed
excerpts), the webhook connector, the shop's snapshot client (``relay.repair.reconcile``), the shop wake
(``relay.repair.shop_wake``) and the operator's remote client (``relay.cli.operator``). The last three are not
connectors: they re-word a ``TransientDeliveryError`` as their own error (or a log line) at their edge.
"""

from __future__ import annotations

import codecs
import enum
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import Any
from urllib.parse import quote

import aiohttp
import yarl
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from ..errors import AuthDeliveryError, DeliveryError, PermanentDeliveryError, TransientDeliveryError

EXCERPT_CHARS = 200
CHUNK_BYTES = 65536


# --- answers -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A remote's answer: status, headers (names in lower case), the body and the charset it declared.

    ``complete`` is False when the body was longer than the ``limit`` the caller read.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes = b""
    encoding: str = "utf-8"
    complete: bool = True

    @cached_property
    def text(self) -> str:
        return self.body.decode(self.encoding, errors="replace")

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


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Parse Retry-After: delta seconds or an HTTP date (a past one is 0); None when absent or nonsense."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def excerpt(text: str) -> str:
    """A short, printable piece of a remote answer for the audit log."""
    clean = "".join(ch if ch.isprintable() else " " for ch in text[: EXCERPT_CHARS * 2])
    return clean[:EXCERPT_CHARS]


# --- sending -----------------------------------------------------------------------------------------


def request_url(url: str, params: Mapping[str, str] | None = None) -> yarl.URL:
    """``url`` (already percent-encoded: a caller quotes what it puts in a path, ``quote(sku, safe="")``)
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


@dataclass(frozen=True)
class Reconnect:
    """Short in-process retries of a request whose connection failed outright or timed out.

    Only for a body that can be sent again as is (bytes, JSON, a form; not an ``aiohttp.FormData``).
    """

    attempts: int = 3
    within_seconds: float = 2.0
    wait_multiplier: float = 0.05
    wait_max: float = 0.5


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: str | yarl.URL,
    *,
    timeout: float,
    what: str,
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    form: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    data: aiohttp.FormData | bytes | None = None,
    limit: int | None = None,
    reconnect: Reconnect | None = None,
    follow_redirects: bool = False,
) -> Answer:
    """Make one request; a transport failure is a TransientDeliveryError naming ``what`` (e.g. "Etsy").

    A ``str`` ``url`` is percent-encoded already and ``params`` are encoded by ``request_url``; a ``yarl.URL``
    (an address from the configuration, encoded by yarl) is sent as it is, with no ``params``. ``data`` is a body
    sent as is (bytes, or a multipart upload); ``form`` is a urlencoded form. Redirects are followed only
    with ``follow_redirects``.
    ``limit`` reads at most that many bytes of the body (``Answer.complete`` says whether that was all).
    """

    target = url if isinstance(url, yarl.URL) else request_url(url, params)

    async def exchange() -> Answer:
        async with session.request(
            method,
            target,
            headers=dict(headers or {}),
            json=json_body,
            data=form if form is not None else data,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=follow_redirects,
        ) as response:
            body, complete = await _read(response, limit)
            names = {k.lower(): v for k, v in response.headers.items()}
            return Answer(response.status, names, body, _charset(response), complete)

    try:
        if reconnect is None:
            return await exchange()
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type((aiohttp.ClientConnectionError, TimeoutError)),
            stop=stop_after_attempt(reconnect.attempts) | stop_after_delay(reconnect.within_seconds),
            wait=wait_random_exponential(multiplier=reconnect.wait_multiplier, max=reconnect.wait_max),
            reraise=True,
        ):
            with attempt:
                return await exchange()
    except TimeoutError:
        raise TransientDeliveryError(f"{what} did not answer within {timeout:g} s") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise TransientDeliveryError(f"could not reach {what}: {type(exc).__name__}") from None
    raise AssertionError("unreachable")  # pragma: no cover - AsyncRetrying either returns or raises


async def _read(response: aiohttp.ClientResponse, limit: int | None) -> tuple[bytes, bool]:
    if limit is None:
        return await response.read(), True
    data = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
        data += chunk
        if len(data) > limit:
            return bytes(data[:limit]), False
    return bytes(data), True


def _charset(response: aiohttp.ClientResponse) -> str:
    """The declared charset (as aiohttp's ``text()`` reads it), else UTF-8."""
    declared = response.charset
    if declared:
        try:
            return codecs.lookup(declared).name
        except (LookupError, ValueError):
            pass
    return "utf-8"


# --- judging answers ---------------------------------------------------------------------------------


class Kind(enum.Enum):
    OK = "ok"  # 2xx
    THROTTLED = "throttled"  # 429: slow down, then retry
    TRANSIENT = "transient"  # 5xx and the remote's other passing troubles: retry
    AUTH = "auth"  # credentials or signature refused: pause, do not burn retries
    PERMANENT = "permanent"  # will fail the same way again


ERROR_CLASS: Mapping[Kind, type[DeliveryError]] = {
    Kind.THROTTLED: TransientDeliveryError,
    Kind.TRANSIENT: TransientDeliveryError,
    Kind.AUTH: AuthDeliveryError,
    Kind.PERMANENT: PermanentDeliveryError,
}


@dataclass(frozen=True)
class Ladder:
    """How one remote's statuses read. ``permanent=None``: every status the other rungs leave is permanent;
    a set: only those are, and the rest is transient (a remote whose unknown answers are passing troubles)."""

    auth: frozenset[int] = frozenset({401, 403})
    transient: frozenset[int] = frozenset()  # beside 429 and every 5xx
    permanent: frozenset[int] | None = None


LADDER = Ladder()


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    retry_after: float | None = None  # the answer's Retry-After, in seconds

    @property
    def error(self) -> type[DeliveryError] | None:
        """The relay's error class for this verdict; None for a success."""
        return ERROR_CLASS.get(self.kind)


def classify(answer: Answer, ladder: Ladder = LADDER) -> Verdict:
    """The status ladder, the same for every remote (its nuances in ``ladder``)."""
    status = answer.status
    if 200 <= status < 300:
        return Verdict(Kind.OK)
    if status == 429:
        return Verdict(Kind.THROTTLED, answer.retry_after)
    if status >= 500 or status in ladder.transient:
        return Verdict(Kind.TRANSIENT, answer.retry_after)
    if status in ladder.auth:
        return Verdict(Kind.AUTH)
    if ladder.permanent is None or status in ladder.permanent:
        return Verdict(Kind.PERMANENT)
    return Verdict(Kind.TRANSIENT, answer.retry_after)
