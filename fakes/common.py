"""What every fake marketplace shares: a real server on 127.0.0.1, a request log, a failure script,
a rate-limit bucket that behaves like the marketplace's, and expiring tokens.

A fake is a subclass of ``FakeMarketplace`` that adds its routes in ``routes()``::

    class FakeShop(FakeMarketplace):
        def routes(self, router: web.UrlDispatcher) -> None:
            router.add_post("/admin/api/{version}/graphql.json", self.graphql)

    async with FakeShop() as shop:          # or: await shop.start() ... await shop.stop()
        shop.fail_next(2, 503)              # the next two requests answer 503
        ... point a connector at shop.url ...
        assert shop.requests[-1].json == {...}

Query strings are decoded strictly, as RFC 3986 has it and as the marketplaces' servers read them:
``%XX`` escapes only, so a ``+`` stays a ``+`` (aiohttp's ``request.query`` would make it a space, an
HTML form's convention) and a malformed escape is a 400. Handlers read ``query(request)``.

Limits and clocks are constructor arguments, so a benchmark can scale every one of them by the
same factor; nothing here sleeps, so tests stay untimed (tokens are expired with ``expire_all``).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote

from aiohttp import web

Clock = Callable[[], float]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
STRICT_QUERY = web.RequestKey("strict_query", dict[str, str])


def _unescape(text: str) -> str:
    if BAD_ESCAPE.search(text):
        raise ValueError(f"malformed percent-escape in {text!r}")
    return unquote(text, errors="strict")  # bytes that are not UTF-8: UnicodeDecodeError, a ValueError


def strict_query(raw: str) -> dict[str, str]:
    """A raw query string decoded as RFC 3986 has it: ``%XX`` escapes only (``+`` is a plus, ``%20`` a space);
    the first of repeated names wins. Raises ValueError for a malformed escape or bytes that are not UTF-8."""
    pairs: dict[str, str] = {}
    for part in raw.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.setdefault(_unescape(name), _unescape(value))
    return pairs


def query(request: web.Request) -> dict[str, str]:
    """The request's query parameters, strictly decoded (by the middleware)."""
    return request[STRICT_QUERY]


@dataclass(frozen=True)
class Recorded:
    """One request as the fake received it (header names lower-cased)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float
    raw_path: str = ""  # path and query as they came over the wire, still percent-encoded

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode()))


@dataclass
class Failure:
    """A scripted answer that replaces the real one for the next matching requests."""

    count: int
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # dict/list: sent as JSON; str/bytes: sent as is; None: empty
    path: str | None = None  # only requests whose path contains this (None: any request)
    method: str | None = None

    def matches(self, request: web.Request) -> bool:
        if self.path is not None and self.path not in request.path:
            return False
        return self.method is None or self.method == request.method

    def response(self) -> web.Response:
        if isinstance(self.body, (dict, list)):
            return web.json_response(self.body, status=self.status, headers=self.headers)
        data = self.body.encode() if isinstance(self.body, str) else self.body
        return web.Response(status=self.status, body=data, headers=self.headers)


class Bucket:
    """A marketplace's rate limit: ``rate`` units per second refill a bucket of ``burst``.

    This is Shopify's leaky bucket of cost points, Etsy's per-second limit and Walmart's token
    bucket alike: ``take`` spends and says whether the call may run; ``available`` is what the
    marketplace's headers report.
    """

    def __init__(self, rate: float, burst: float, now: Clock = time.monotonic) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("a bucket needs a positive rate and burst")
        self.rate = rate
        self.burst = burst
        self._now = now
        self._level = float(burst)
        self._stamp = now()

    def _refill(self) -> None:
        stamp = self._now()
        self._level = min(self.burst, self._level + (stamp - self._stamp) * self.rate)
        self._stamp = stamp

    @property
    def available(self) -> float:
        self._refill()
        return self._level

    def take(self, cost: float = 1.0) -> bool:
        """Spend ``cost`` if it is there; refuse (spend nothing) otherwise."""
        self._refill()
        if self._level + 1e-9 >= cost:
            self._level = max(0.0, self._level - cost)
            return True
        return False

    def seconds_until(self, cost: float = 1.0) -> float:
        """How long until ``cost`` will be available (what a Retry-After would say)."""
        self._refill()
        return max(0.0, (min(cost, self.burst) - self._level) / self.rate)


class Window:
    """A count per rolling window (Etsy's queries per day, eBay's revisions per listing per day)."""

    def __init__(self, limit: int, seconds: float, now: Clock = time.monotonic) -> None:
        self.limit = limit
        self.seconds = seconds
        self._now = now
        self._stamps: deque[float] = deque()

    def _trim(self) -> None:
        cutoff = self._now() - self.seconds
        while self._stamps and self._stamps[0] <= cutoff:
            self._stamps.popleft()

    def seconds_until_free(self) -> float:
        """How long until the window has room for one more (0 if it has now): when its oldest use ages out."""
        self._trim()
        if len(self._stamps) < self.limit:
            return 0.0
        return max(0.0, self._stamps[len(self._stamps) - self.limit] + self.seconds - self._now())

    @property
    def remaining(self) -> int:
        self._trim()
        return max(0, self.limit - len(self._stamps))

    def take(self) -> bool:
        self._trim()
        if len(self._stamps) >= self.limit:
            return False
        self._stamps.append(self._now())
        return True


class TokenIssuer:
    """Access tokens that expire after ``lifetime`` seconds, and refresh tokens (optionally rotating).

    ``rotate_refresh``: each use of a refresh token replaces it with a new one (Shopify's expiring
    offline tokens); otherwise a refresh token stays valid until revoked (eBay, Etsy).
    """

    def __init__(self, lifetime: float, prefix: str = "tok", now: Clock = time.monotonic) -> None:
        self.lifetime = lifetime
        self.prefix = prefix
        self._now = now
        self._access: dict[str, float] = {}  # token -> expiry
        self.refresh_tokens: set[str] = set()
        self.issued = 0  # access tokens handed out (a test counts refreshes with it)

    def issue(self) -> tuple[str, float]:
        """A new access token and its lifetime in seconds."""
        token = f"{self.prefix}_{secrets.token_urlsafe(18)}"
        self._access[token] = self._now() + self.lifetime
        self.issued += 1
        return token, self.lifetime

    def grant(self, token: str, lifetime: float | None = None) -> str:
        """Make ``token`` valid (a test's preset credentials)."""
        self._access[token] = self._now() + (self.lifetime if lifetime is None else lifetime)
        return token

    def new_refresh_token(self) -> str:
        token = f"{self.prefix}_refresh_{secrets.token_urlsafe(18)}"
        self.refresh_tokens.add(token)
        return token

    def use_refresh(self, token: str, rotate: bool = False) -> str | None:
        """Check a refresh token; returns the refresh token to hand back (a new one when rotating), None if refused."""
        if token not in self.refresh_tokens:
            return None
        if not rotate:
            return token
        self.refresh_tokens.discard(token)
        return self.new_refresh_token()

    def valid(self, token: str | None) -> bool:
        expiry = self._access.get(token or "")
        return expiry is not None and self._now() < expiry

    def expire_all(self) -> None:
        """Every access token issued so far stops working now (the next call gets a 401)."""
        for token in self._access:
            self._access[token] = float("-inf")

    def revoke_refresh_tokens(self) -> None:
        """The seller withdrew consent: no refresh will work again."""
        self.refresh_tokens.clear()


def bearer(request: web.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    return value[7:].strip() if value[:7].lower() == "bearer " else None


class FakeMarketplace(ABC):
    """A real aiohttp server on 127.0.0.1 (port chosen by the OS) with a request log and a failure script."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.failures: list[Failure] = []
        self.throttled = 0  # throttle answers sent (429s, THROTTLED errors): a benchmark's target is 0
        self.app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        self.routes(self.app.router)
        self._runner: web.AppRunner | None = None
        self._url = ""

    @abstractmethod
    def routes(self, router: web.UrlDispatcher) -> None:
        """Add the marketplace's endpoints."""

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash (what a channel's ``api_base`` points at)."""
        if not self._url:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._url

    async def start(self) -> str:
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]  # the port the OS picked
        self._runner = runner
        self._url = f"http://127.0.0.1:{port}"
        return self._url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeMarketplace:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def fail_next(
        self,
        count: int,
        status: int,
        headers: dict[str, str] | None = None,
        body: Any = None,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """The next ``count`` requests (matching ``path``/``method`` if given) get this answer instead."""
        self.failures.append(Failure(count, status, dict(headers or {}), body, path, method))

    def calls(self, path: str | None = None, method: str | None = None) -> list[Recorded]:
        """Logged requests whose path contains ``path`` (and with ``method``)."""
        return [r for r in self.requests if (path is None or path in r.path) and (method is None or r.method == method)]

    def _scripted(self, request: web.Request) -> web.Response | None:
        for failure in self.failures:
            if failure.count > 0 and failure.matches(request):
                failure.count -= 1
                if failure.status == 429:
                    self.throttled += 1
                return failure.response()
        self.failures = [f for f in self.failures if f.count > 0]
        return None

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        try:
            request[STRICT_QUERY] = strict_query(request.rel_url.raw_query_string)
        except ValueError as exc:
            request[STRICT_QUERY] = {}
            malformed: web.StreamResponse | None = web.json_response({"error": str(exc)}, status=400)
        else:
            malformed = None
        self.requests.append(
            Recorded(
                request.method,
                request.path,
                request[STRICT_QUERY],
                {k.lower(): v for k, v in request.headers.items()},
                body,
                time.monotonic(),
                request.raw_path,
            )
        )
        if malformed is not None:
            return malformed
        scripted = self._scripted(request)
        if scripted is not None:
            return scripted
        return await handler(request)
