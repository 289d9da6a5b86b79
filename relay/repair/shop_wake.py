"""Wake the shop's outbox drain: one signed call to the plugin when the relay (re)starts.

While the relay was down the plugin kept the shop's changes in its outbox and backed off between tries (up
to 15 minutes); on a site without a system cron its retries also wait for a visitor. So a quiet shop's
changes could wait long after the relay is back. The relay knows where the shop is (``shop_url``, as for
reconciliation), so it says it is back: the plugin's ``wake`` route ends the backoff and drains at once
(wp-plugin/src/class-stock-relay-wake-route.php; docs/wire-protocol.md §3).

Best effort: a plugin without the route, a shop that is down, or a refused signature is one warning in the
log and changes nothing else; the plugin's own retries still come.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import aiohttp
import yarl

from .. import signing
from ..config import SiteConfig
from ..delivery import outbound
from ..errors import TransientDeliveryError
from ..ids import new_msg_id

log = logging.getLogger("stock_relay.shop_wake")
WAKE_PATH = "/wp-json/stock-relay/v1/wake"
WAKE_TYPE = "outbox.wake"
TIMEOUT_SECONDS = 10.0
ANSWER_BYTES = 4096  # enough for the plugin's error code


async def wake_shop(site: SiteConfig, session: aiohttp.ClientSession, now: Callable[[], float] = time.time) -> bool:
    """POST a signed ``outbox.wake`` to the site's shop; True when it took it (2xx). Logs, never raises."""
    url = site.shop_url + WAKE_PATH
    body = json.dumps({"type": WAKE_TYPE, "site": site.id}, separators=(",", ":")).encode()
    headers = signing.shop_request_headers(site.secrets, new_msg_id(), int(now()), body)
    try:
        answer = await outbound.send(
            session,
            "POST",
            yarl.URL(url),
            timeout=TIMEOUT_SECONDS,
            what="the shop",
            headers=headers,
            data=body,
            limit=ANSWER_BYTES,
        )
    except TransientDeliveryError as exc:
        log.warning(
            "%s: could not wake the shop's outbox at %s (%s); it sends on its own schedule", site.id, url, exc.message
        )
        return False
    status = answer.status
    if 200 <= status < 300:
        log.info("%s: told the shop at %s that the relay is up; it sends what waited now", site.id, url)
        return True
    log.warning(
        "%s: the shop did not take the wake call at %s (HTTP %d%s); it sends on its own schedule%s",
        site.id,
        url,
        status,
        _code(answer.body),
        " (is the Stock Relay plugin up to date?)" if status == 404 else "",
    )
    return False


def _code(answer: bytes) -> str:
    """The plugin's error code (never its message: the operator needs the code, and it is short and ours)."""
    try:
        code = json.loads(answer)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return ""
    return f" {str(code)[:64]}" if isinstance(code, str) else ""
