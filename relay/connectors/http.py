"""The marketplace layer on top of ``relay.delivery.outbound``: tokens, scrubbed excerpts and the marketplaces' refusals.

``relay.delivery.outbound`` sends (transport failures become TransientDeliveryError there, once, so the connectors
only judge real answers) and classifies statuses; here a verdict becomes the connector's error, worded for
the shop owner (``refusal``), and the OAuth token grants the marketplaces share are made. Excerpts for the
audit log are cut short and scrubbed of every secret the connector knows (tokens, client secrets), because
a marketplace may echo them back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import aiohttp

from ..delivery import outbound
from ..delivery.outbound import Answer, Kind, Verdict
from ..delivery.ratelimit import RateBudget
from ..errors import AuthDeliveryError, DeliveryError, PermanentDeliveryError, TransientDeliveryError, VaultError
from ..vault import Credentials
from .base import TokenAuth


def scrub(text: str, secrets: Iterable[str]) -> str:
    """An audit excerpt of ``text`` with every known secret blanked out."""
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, "[redacted]")
    return outbound.excerpt(text)


def refusal(
    answer: Answer,
    verdict: Verdict,
    what: str,
    snippet: str,
    *,
    budget: RateBudget | None = None,
    throttle_wait: float | None = None,
    throttled: str | None = None,
    auth: str | None = None,
    permanent: str | None = None,
) -> DeliveryError:
    """The error for a refused answer, by its verdict (never OK), in the connector's words.

    A 429 waits for its Retry-After (0 too: the remote's word), else ``throttle_wait`` (the connector's rule
    when the marketplace gives none), and tells ``budget`` to slow down. Without their own sentence: "{what}
    answered {status}" for a passing trouble, "{what} refused access ({status})", "{what} refused the request
    ({status})".
    """
    status = answer.status
    if verdict.kind is Kind.THROTTLED:
        wait = throttle_wait if verdict.retry_after is None else verdict.retry_after
        if budget is not None:
            budget.throttled(wait)
        message = throttled or f"{what} answered {status}"
        return TransientDeliveryError(message, wait, http_status=status, excerpt=snippet)
    if verdict.kind is Kind.AUTH:
        return AuthDeliveryError(auth or f"{what} refused access ({status})", http_status=status, excerpt=snippet)
    if verdict.kind is Kind.PERMANENT:
        message = permanent or f"{what} refused the request ({status})"
        return PermanentDeliveryError(message, http_status=status, excerpt=snippet)
    return TransientDeliveryError(f"{what} answered {status}", verdict.retry_after, http_status=status, excerpt=snippet)


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
    answer = await outbound.send(
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
    verdict = outbound.classify(answer)
    if verdict.kind in (Kind.THROTTLED, Kind.TRANSIENT):
        raise refusal(answer, verdict, f"{what}'s token endpoint", snippet)
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
