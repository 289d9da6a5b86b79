"""The HTTP face of the relay (docs/wire-protocol.md §2): signed ingest and ping, plus a liveness probe.

Checks run cheapest first and nothing is stored before the signature verifies: unknown site (404),
content type (415), size (413, read with a cap so a huge body is never buffered), signature (401),
per-site request rate (429), JSON and envelope (400), shutdown (503). Only this module turns
errors into HTTP answers; every answer is ``{"error": {"code", "message"}}`` with no trace and no secret.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import ClientPayloadError, web

from .. import __version__, signing
from ..config import Config, SiteConfig
from ..delivery.ratelimit import TokenBucket
from ..errors import PayloadError, SignatureError, StorageError
from ..intake import ingest, protocol, sales, shopify
from ..intake import tiktok as tiktok_webhooks
from ..intake import woocommerce as woocommerce_webhooks
from ..intake.ingest import BatchOutcome
from ..runtime import Relay
from . import operator_api
from .operator_api import RELAY

log = logging.getLogger("stock_relay.server")

LIMITERS = web.AppKey("limiters", dict)
RETRY_AFTER_STORAGE = 5
ERROR_CODE = web.ResponseKey("error_code", str)
RETRY_AFTER_SHUTDOWN = 10
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None
) -> web.Response:
    body: dict[str, Any] = {"error": {"code": code, "message": message, **(extra or {})}}
    response = web.json_response(body, status=status, headers=headers)
    response[ERROR_CODE] = code  # counted by the middleware
    return response


def iso_now(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place errors become HTTP answers (and are counted by code)."""
    response = await _answer(request, handler)
    code = response.get(ERROR_CODE)
    if code is not None:
        request.app[RELAY].metrics.count_error(code)
    return response


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except SignatureError as exc:
        extra = {"server_time": iso_now(time.time())} if exc.code == "timestamp_out_of_tolerance" else {}
        return error_response(401, exc.code, exc.message, extra=extra)
    except PayloadError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except StorageError as exc:
        log.error("storage unavailable: %s", exc)
        return error_response(
            503,
            "storage_unavailable",
            "The relay cannot write to its database right now; nothing was accepted. Retry later.",
            {"Retry-After": str(RETRY_AFTER_STORAGE)},
        )
    except ClientGone as exc:
        request.app[RELAY].metrics.count_client_abort(exc.reason)
        log.debug("%s %s: %s", request.method, request.path, exc.message)
        # A disconnected client reads nothing; a slow one is told why its connection ends.
        return web.json_response(
            {"error": {"code": "request_timeout", "message": exc.message}}, status=408, headers={"Connection": "close"}
        )
    except web.HTTPException as exc:
        if exc.status == 404:
            return error_response(404, "not_found", "No such endpoint.")
        if exc.status == 405:
            return error_response(405, "method_not_allowed", "Use POST for this endpoint.")
        raise
    except Exception:
        log.exception("unexpected error handling %s %s", request.method, request.path)
        return error_response(500, "internal_error", "The relay hit an unexpected error; nothing was accepted.")


def make_app(config: Config, relay: Relay) -> web.Application:
    app = web.Application(middlewares=[errors_middleware], client_max_size=config.max_body_bytes + 1)
    app[RELAY] = relay
    app[LIMITERS] = {
        site.id: TokenBucket(site.max_requests_per_second, max(1.0, site.max_requests_per_second * 2))
        for site in config.sites
        if site.max_requests_per_second > 0
    }
    app.router.add_post("/v1/sites/{site}/events", timed_ingest(signed("stock.batch")(handle_events)))
    app.router.add_post("/v1/sites/{site}/ping", signed("ping")(handle_ping))
    app.router.add_post("/v1/sites/{site}/status", signed("status.query")(operator_api.handle_status))
    app.router.add_post("/v1/sites/{site}/audit", signed("audit.query")(operator_api.handle_audit))
    app.router.add_post("/v1/sites/{site}/products", signed("product.query")(operator_api.handle_products))
    app.router.add_post("/v1/sites/{site}/dead", signed("dead.query")(operator_api.handle_dead))
    app.router.add_post("/v1/sites/{site}/dead/retry", signed("dead.retry")(operator_api.handle_dead_retry))
    app.router.add_post("/v1/sites/{site}/pause", signed("channel.pause")(operator_api.handle_pause))
    app.router.add_post("/v1/sites/{site}/resume", signed("channel.resume")(operator_api.handle_resume))
    app.router.add_post("/v1/sites/{site}/lineage", signed("lineage.query")(operator_api.handle_lineage))
    app.router.add_post("/v1/sites/{site}/replay", signed("replay.request")(operator_api.handle_replay))
    app.router.add_post("/v1/sites/{site}/export", signed("export.request")(operator_api.handle_export))
    app.router.add_post("/v1/sites/{site}/woocommerce", handle_woocommerce)
    app.router.add_post("/v1/sites/{site}/channels/{channel}/sales", handle_sales)
    app.router.add_post("/v1/sites/{site}/channels/{channel}/shopify", handle_shopify)
    app.router.add_post("/v1/sites/{site}/channels/{channel}/tiktok", handle_tiktok)
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/readyz", operator_api.handle_readyz)
    app.router.add_get("/metrics", operator_api.handle_metrics)
    app.router.add_get("/openapi.yaml", operator_api.handle_openapi)
    return app


SignedHandler = Callable[[web.Request, SiteConfig, dict[str, Any]], Awaitable[web.StreamResponse]]


def signed(body_type: str) -> Callable[[SignedHandler], Handler]:
    """Wrap a handler with the whole-request checks every signed POST shares, signed with the site's secret."""

    def wrap(handler: SignedHandler) -> Handler:
        @functools.wraps(handler)
        async def checked(request: web.Request) -> web.StreamResponse:
            site = request.app[RELAY].config.site(request.match_info["site"])
            if site is None:
                return unknown_site()
            doc = await verified(request, site, site.secrets, body_type)
            if isinstance(doc, web.Response):
                return doc
            return await handler(request, site, doc)

        return checked

    return wrap


def timed_ingest(handler: Handler) -> Handler:
    """Observe how long an accepted batch took to answer (``stock_relay_ingest_seconds``): body, signature, parsing
    and the durable commit. Only 202s count: refusals are cheap by design and would flatter the figure, and a 202
    proves the site is configured, so its id is a safe label (a client cannot mint series with made-up ids)."""

    @functools.wraps(handler)
    async def timed(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        response = await handler(request)
        if response.status == 202:
            request.app[RELAY].metrics.observe_ingest(request.match_info["site"], time.perf_counter() - started)
        return response

    return timed


def unknown_site() -> web.Response:
    return error_response(404, "unknown_site", "This relay has no such site; check the site id in the plugin settings.")


async def verified(
    request: web.Request, site: SiteConfig, secrets: tuple[str, ...], body_type: str
) -> dict[str, Any] | web.Response:
    """The checks every signed POST shares once its site is known, cheapest first: content type, size, the
    signature (with ``secrets``: the site's, or a channel's sales secret), the site's request budget, then JSON and
    envelope. Returns the body's document, or the answer that refuses the request."""
    relay = request.app[RELAY]
    config = relay.config
    content_type = request.headers.get("Content-Type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        return error_response(415, "unsupported_media_type", "Send the body as application/json.")
    body = await read_capped(request, config.max_body_bytes)
    if body is None:
        return error_response(
            413, "body_too_large", f"The body is over {config.max_body_bytes} bytes; send fewer events per request."
        )
    signing.verify(secrets, request.headers, body, relay.now(), config.timestamp_tolerance_seconds)
    if (limited := over_budget(request, site)) is not None:
        return limited
    return protocol.check_envelope(protocol.parse_json(body), body_type, site.id)


async def handle_woocommerce(request: web.Request) -> web.StreamResponse:
    """WooCommerce's native webhooks (docs/wire-protocol.md §4): its own signature scheme, so not ``signed()``."""
    relay = request.app[RELAY]
    site = relay.config.site(request.match_info["site"])
    if site is None:
        return error_response(404, "unknown_site", "This relay has no such site; check the webhook's delivery URL.")
    body = await read_capped(request, relay.config.max_body_bytes)
    if body is None:
        return error_response(413, "body_too_large", f"The body is over {relay.config.max_body_bytes} bytes.")
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if woocommerce_webhooks.is_ping(content_type, body):  # unsigned by WooCommerce's design; stores nothing
        return web.json_response({"ok": True, "site": site.id})
    if content_type != "application/json":
        return error_response(415, "unsupported_media_type", "Send the body as application/json.")
    woocommerce_webhooks.verify(site, request.headers, body)
    if (limited := over_budget(request, site)) is not None:
        return limited
    if relay.shutting_down:
        return shutting_down()
    return await woocommerce_webhooks.handle(request, site, body, relay)


def shutting_down() -> web.Response:
    return error_response(
        503, "shutting_down", "The relay is restarting; retry shortly.", {"Retry-After": str(RETRY_AFTER_SHUTDOWN)}
    )


def webhook_id_reused() -> web.Response:
    return error_response(
        409,
        "webhook_id_reused",
        "This webhook-id was already used for a request with other content; nothing was recorded. A resend must"
        " carry the same events; new events need a new webhook-id.",
    )


def over_budget(request: web.Request, site: SiteConfig) -> web.Response | None:
    """Take one request from the site's budget, or the 429 to answer. Only after the signature verified: a
    forged request must not spend the shop's budget."""
    limiter = request.app[LIMITERS].get(site.id)
    if limiter is None or limiter.try_take():
        return None
    retry = max(1, int(limiter.wait_time() + 0.999))
    return error_response(
        429, "rate_limited", "Too many requests for this site; slow down.", {"Retry-After": str(retry)}
    )


async def read_capped(request: web.Request, limit: int) -> bytes | None:
    """The raw body, or None as soon as it is known to exceed ``limit`` (never buffering more).

    The body must arrive within ``request_timeout_seconds`` (a client trickling it is answered 408), and a
    client that goes away mid-body raises ``ClientGone``: neither is the relay's error.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        return None
    if request.content.is_eof():  # a small body arrives whole with the headers: take it without a read loop
        body = request.content.read_nowait(-1)
        return body if len(body) <= limit else None
    seconds = request.app[RELAY].config.request_timeout_seconds
    chunks, size = [], 0
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > limit:
                    return None
                chunks.append(chunk)
    except TimeoutError:
        raise ClientGone("timeout", f"The body did not arrive within {seconds:g} s; nothing was accepted.") from None
    except (ConnectionError, ClientPayloadError):
        raise ClientGone("disconnected", "The client went away before its body arrived.") from None
    return b"".join(chunks)


class ClientGone(Exception):
    """The client did not deliver its request: it disconnected, or its body took longer than allowed."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


async def handle_events(request: web.Request, site: SiteConfig, doc: dict[str, Any]) -> web.StreamResponse:
    relay = request.app[RELAY]
    # Validation and the content digest in one pass over the events (check_batch).
    events, rejected, digest = protocol.check_batch(doc, relay.config.max_batch_events)
    if relay.shutting_down:
        return shutting_down()
    msg_id = request.headers["webhook-id"]
    channels = [c.name for c in site.channels]
    now = relay.now()
    # A job object, not a lambda: the writer records the batches of concurrent requests together.
    outcome: BatchOutcome = await relay.store.write(
        ingest.BatchWrite(site.id, channels, msg_id, events, rejected, now, site.coalesce, digest)
    )
    if outcome.reused:
        return webhook_id_reused()
    if outcome.accepted_skus:
        relay.wake(site.id)
    if not outcome.repeated:
        relay.metrics.count_batch(site.id, outcome.response)
    headers = {"Idempotent-Replayed": "true"} if outcome.repeated else None
    # The body the writer already encoded (what web.json_response would send), not a second json.dumps.
    return web.Response(text=outcome.body, status=202, headers=headers, content_type="application/json")


async def handle_sales(request: web.Request) -> web.StreamResponse:
    """Sales another system reports for one channel (docs/wire-protocol.md §2b), signed with that channel's own
    ``sales_secret``: recorded once per key, answered 202 after the commit, applied to the shop by its worker."""
    relay = request.app[RELAY]
    site = relay.config.site(request.match_info["site"])
    if site is None:
        return unknown_site()
    name = request.match_info["channel"]
    channel = next((c for c in site.channels if c.name == name and c.sales_secrets), None)
    if channel is None:
        return error_response(
            404, "unknown_channel", "This site has no channel of that name that takes sales (no sales_secret is set)."
        )
    doc = await verified(request, site, channel.sales_secrets, "sales.report")
    if isinstance(doc, web.Response):
        return doc
    valid, rejected = sales.split_report(doc, channel.name)
    if relay.shutting_down:
        return shutting_down()
    job = sales.ReportWrite(
        site.id, channel.name, request.headers["webhook-id"], valid, rejected, relay.now(), protocol.content_digest(doc)
    )
    outcome = await relay.store.write(job)
    if outcome.reused:
        return webhook_id_reused()
    if outcome.accepted:
        relay.wake_shop(site.id)
    headers = {"Idempotent-Replayed": "true"} if outcome.repeated else None
    return web.Response(text=outcome.body, status=202, headers=headers, content_type="application/json")


async def handle_shopify(request: web.Request) -> web.StreamResponse:
    """A Shopify channel's order webhooks (relay/intake/shopify.py): verified with the channel's webhook_secret,
    each event recorded once, answered 200 only after the commit (Shopify retries anything else)."""
    relay = request.app[RELAY]
    site = relay.config.site(request.match_info["site"])
    if site is None:
        return unknown_site()
    name = request.match_info["channel"]
    channel = next((c for c in site.channels if c.name == name and c.takes_sales_webhooks), None)
    if channel is None:
        return error_response(
            404, "unknown_channel", "This site has no Shopify channel of that name that imports sales (webhook_secret)."
        )
    body = await read_capped(request, relay.config.max_body_bytes)
    if body is None:
        return error_response(413, "body_too_large", f"The body is over {relay.config.max_body_bytes} bytes.")
    shopify.verify(channel.webhook_secrets, request.headers, body)
    if (limited := over_budget(request, site)) is not None:
        return limited
    topic, event_id = shopify.topic_and_event(request.headers)
    valid, skipped = shopify.to_sales(topic, protocol.parse_json(body), channel)
    if relay.shutting_down:
        return shutting_down()
    job = sales.ReportWrite(
        site.id, channel.name, event_id, valid, skipped, relay.now(), "", sales.SOURCE_WEBHOOK, audit_skipped=True
    )
    outcome = await relay.store.write(job)
    if outcome.accepted:
        relay.wake_shop(site.id)
    headers = {"Idempotent-Replayed": "true"} if outcome.repeated else None
    return web.Response(text=outcome.body, status=200, headers=headers, content_type="application/json")


async def handle_tiktok(request: web.Request) -> web.StreamResponse:
    """A TikTok Shop channel's order webhooks (relay/intake/tiktok.py): verified with the channel's app secret, each
    order's lines read from TikTok and recorded once, answered 200 only after the commit (TikTok retries the rest)."""
    relay = request.app[RELAY]
    site = relay.config.site(request.match_info["site"])
    if site is None:
        return unknown_site()
    connector = tiktok_webhooks.connector_for(relay, site, request.match_info["channel"])
    if connector is None:
        return error_response(
            404, "unknown_channel", "This site has no TikTok Shop channel of that name that imports sales (shop_url)."
        )
    body = await read_capped(request, relay.config.max_body_bytes)
    if body is None:
        return error_response(413, "body_too_large", f"The body is over {relay.config.max_body_bytes} bytes.")
    await tiktok_webhooks.verify(connector, request.headers, body)
    if (limited := over_budget(request, site)) is not None:
        return limited
    if relay.shutting_down:
        return shutting_down()
    return await tiktok_webhooks.handle(relay, site, connector, body)


async def handle_ping(request: web.Request, site: SiteConfig, doc: dict[str, Any]) -> web.StreamResponse:
    relay = request.app[RELAY]
    return web.json_response(
        {
            "type": "pong",
            "site": site.id,
            "relay_version": __version__,
            "protocol": 1,
            "server_time": iso_now(relay.now()),
            "channels": [{"name": c.name, "type": c.type} for c in site.channels],
        }
    )


async def handle_healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok", "version": __version__})
