"""One exchange with Shopify's GraphQL Admin API, and the access token it needs.

``ShopifyAdmin.graphql`` sends a query and judges the answer at the boundary: 401 → one token refresh
(shared by concurrent callers), then pause; 403 and ``ACCESS_DENIED`` → pause; 429, 5xx, ``THROTTLED``
and ``INTERNAL_SERVER_ERROR`` → retry; other errors → permanent. Every answer's
``extensions.cost.throttleStatus`` is adopted by the channel's budget (the shop's real restore rate and
bucket) and ``currentlyAvailable`` caps what it believes is left.

Tokens: a legacy custom app's ``access_token`` never expires; a Dev Dashboard app's client credentials
or an expiring offline token's rotating refresh token are exchanged at ``/admin/oauth/access_token``,
and a rotated refresh token is saved to the vault before the access token is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from ..delivery import outbound
from ..delivery.outbound import Kind
from ..delivery.ratelimit import RateBudget
from ..errors import AuthDeliveryError, PermanentDeliveryError, TransientDeliveryError
from ..vault import Credentials
from . import http
from .base import TokenAuth

SET_COST = 10.0  # a mutation's requested cost
NEVER_EXPIRES = 10 * 365 * 86400.0
PAUSE_CODES = {"ACCESS_DENIED", "UNAUTHORIZED", "FORBIDDEN"}


class ShopifyAdmin:
    """The shop's Admin API at ``base`` (``https://{shop}`` or a test server), API ``version``."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base: str,
        version: str,
        credentials: Credentials,
        budget: RateBudget,
        timeout: float,
    ) -> None:
        self.session = session
        self.base = base
        self.version = version
        self.credentials = credentials
        self.budget = budget
        self.timeout = timeout
        self.auth = TokenAuth(self.fetch_token)
        self.secrets: set[str] = set()  # every token and secret seen: scrubbed from audit excerpts

    @property
    def graphql_url(self) -> str:
        return f"{self.base}/admin/api/{self.version}/graphql.json"

    async def fetch_token(self) -> tuple[str, float]:
        """A legacy ``access_token`` never expires; a client-credentials or rotating refresh grant does."""
        creds = await http.load_credentials(self.credentials, (), "Shopify")
        self.secrets.update(v for v in creds.values() if v)
        url = f"{self.base}/admin/oauth/access_token"
        timeout = self.timeout
        if creds.get("refresh_token"):
            form = {
                "client_id": creds.get("client_id", ""),
                "client_secret": creds.get("client_secret", ""),
                "grant_type": "refresh_token",
                "refresh_token": creds["refresh_token"],
            }
            doc = await http.token_grant(self.session, url, form, what="Shopify", timeout=timeout)
            # The refresh token rotates on every use: persist the new one before using the access token.
            if doc.get("refresh_token"):
                self.secrets.add(str(doc["refresh_token"]))
                await self.credentials.save({**creds, "refresh_token": str(doc["refresh_token"])})
        elif creds.get("client_id") and creds.get("client_secret"):
            form = {
                "client_id": creds["client_id"],
                "client_secret": creds["client_secret"],
                "grant_type": "client_credentials",
            }
            doc = await http.token_grant(self.session, url, form, what="Shopify", timeout=timeout)
        elif creds.get("access_token"):
            return creds["access_token"], NEVER_EXPIRES
        else:
            raise AuthDeliveryError(
                f"the Shopify credentials {self.credentials.name} need access_token,"
                " or client_id and client_secret (and refresh_token for expiring offline tokens)"
            )
        token = str(doc["access_token"])
        self.secrets.add(token)
        return token, http.lifetime(doc, 3600.0)

    async def graphql(self, query: str, variables: Mapping[str, Any]) -> Any:
        """One query; returns its ``data`` or raises the classified error (having learnt the bucket it reports)."""
        body = {"query": query, "variables": dict(variables)}

        async def call(token: str) -> outbound.Answer:
            headers = {"X-Shopify-Access-Token": token, "Content-Type": "application/json"}
            return await outbound.send(
                self.session,
                "POST",
                self.graphql_url,
                timeout=self.timeout,
                what="Shopify",
                headers=headers,
                json_body=body,
            )

        answer = await http.with_token(self.auth, call, "Shopify")
        snippet = http.scrub(answer.text, self.secrets)
        status = answer.status
        verdict = outbound.classify(answer)
        if verdict.kind is not Kind.OK and status >= 400:  # anything else is judged by its body
            raise http.refusal(
                answer,
                verdict,
                "Shopify",
                snippet,
                budget=self.budget,
                auth=f"Shopify refused the app ({status}): a scope is missing (write_inventory, read_products);"
                " re-authorize the app",
                permanent=f"Shopify rejected the request ({status})",
            )
        doc = answer.json()
        if not isinstance(doc, dict):
            raise TransientDeliveryError("Shopify's answer was not JSON", http_status=status, excerpt=snippet)
        wait = self._learn(doc.get("extensions"))
        errors = doc.get("errors")
        if errors:
            self._raise_for_errors(errors, wait, status, snippet)
        if doc.get("data") is None:
            raise TransientDeliveryError("Shopify's answer held no data", http_status=status, excerpt=snippet)
        return doc["data"]

    def _learn(self, extensions: Any) -> float | None:
        """Adopt the real bucket from ``throttleStatus``; returns how long the last query's cost takes to restore."""
        cost = extensions.get("cost") if isinstance(extensions, dict) else None
        status = cost.get("throttleStatus") if isinstance(cost, dict) else None
        if not isinstance(status, dict):
            return None
        try:
            maximum = float(status["maximumAvailable"])
            available = float(status["currentlyAvailable"])
            restore = float(status["restoreRate"])
            requested = float(cost.get("requestedQueryCost") or SET_COST) if isinstance(cost, dict) else SET_COST
        except (KeyError, TypeError, ValueError):
            return None
        if restore <= 0 or maximum <= 0:
            return None
        self.budget.adopt(restore, maximum)
        self.budget.observe_remaining(available)
        return max(0.0, (requested - available) / restore)

    def _raise_for_errors(self, errors: Any, wait: float | None, status: int, snippet: str) -> None:
        codes = set()
        for error in errors if isinstance(errors, list) else [errors]:
            ext = error.get("extensions") if isinstance(error, dict) else None
            codes.add(str(ext.get("code")) if isinstance(ext, dict) else "")
        if "THROTTLED" in codes:
            self.budget.throttled(wait)
            raise TransientDeliveryError(
                "Shopify throttled the call (THROTTLED)", wait, http_status=status, excerpt=snippet
            )
        if codes & PAUSE_CODES:
            raise AuthDeliveryError(
                "Shopify denied access; check the app's scopes", http_status=status, excerpt=snippet
            )
        if "INTERNAL_SERVER_ERROR" in codes:
            raise TransientDeliveryError("Shopify had an internal error", http_status=status, excerpt=snippet)
        raise PermanentDeliveryError(
            f"Shopify refused the query ({', '.join(sorted(c for c in codes if c)) or 'error'})",
            http_status=status,
            excerpt=snippet,
        )
