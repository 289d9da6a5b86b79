"""Every error the relay raises on purpose, in one place.

    RelayError
    ├── ConfigError            bad configuration; names the key path
    ├── SignatureError         a request failed Standard Webhooks verification (has an HTTP `code`)
    ├── PayloadError           a request body or field is unacceptable (has an HTTP `code` and `status`)
    ├── StorageError           the store could not commit (disk full, read-only, locked too long, server away)
    ├── ReconcileError         the shop's snapshot could not be read (unreachable, refused, malformed)
    ├── VaultError             credentials missing, unreadable, or under a key we do not hold
    └── DeliveryError          a channel did not take an update (or could not be read)
        ├── TransientDeliveryError(retry_after)   retry later; the channel is fine in principle
        │   ├── PendingDeliveryError               taken, still being processed (a feed): check again later
        │   └── QuotaHold                          the channel's quota for a long window is spent: hold the channel
        ├── PermanentDeliveryError                 this item can never succeed as sent: dead-letter it
        │   └── MovedError                         the product a cached mapping names is gone (TikTok)
        └── AuthDeliveryError                      credentials refused: pause the whole channel

Who raises and who catches:

- DeliveryErrors are created by the connectors (``relay/connectors/``), and by the dispatcher for a push that
  timed out, a connector that failed unexpectedly, or an item the connector gave no result for. They are
  caught by the dispatcher (``relay.delivery.dispatch``, which settles each item), by the read-back
  (``relay.repair.readback``, which pauses its round), and inside connectors that make several calls per push
  (to settle one call's items and go on; ``tiktok`` catches ``MovedError`` to drop a stale mapping).
- ``VaultError`` is raised by ``relay.vault`` and ``relay.cli.credentials``; the connectors turn it into an
  ``AuthDeliveryError`` (``connectors.http.load_credentials``), the CLI prints it.
- Only ``relay.http.server`` maps these to HTTP statuses (``SignatureError``, ``PayloadError``, ``StorageError``).
- ``relay.cli.main`` turns any ``RelayError`` that reaches it into a message and an exit status.

Messages are written for a shop owner and never contain a secret.
"""

from __future__ import annotations


class RelayError(Exception):
    """Base of every error the relay raises deliberately."""


class ConfigError(RelayError):
    """The configuration is invalid; `path` names the offending key (e.g. `sites.main.channels[0].url`)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


class SignatureError(RelayError):
    """A request's Standard Webhooks signature did not verify. `code` is the docs/wire-protocol.md error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class PayloadError(RelayError):
    """A request is malformed as a whole (not one event of a batch)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class StorageError(RelayError):
    """The database could not durably commit; the caller must not acknowledge anything."""


class ReconcileError(RelayError):
    """A reconciliation pass could not read the shop's snapshot; nothing of the failed page was applied."""


class VaultError(RelayError):
    """Credentials missing, unreadable, or encrypted with a key we do not hold (message never holds a value)."""


class DeliveryError(RelayError):
    """A channel did not take an update. Created only by connectors.

    ``http_status`` and ``excerpt`` (a short, secret-free piece of the answer) go to the audit log.
    """

    def __init__(self, message: str, *, http_status: int | None = None, excerpt: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.excerpt = excerpt


class TransientDeliveryError(DeliveryError):
    """Worth retrying: timeouts, 5xx, 429, connection errors. `retry_after` is in seconds if the remote said so."""

    def __init__(
        self, message: str, retry_after: float | None = None, *, http_status: int | None = None, excerpt: str = ""
    ) -> None:
        super().__init__(message, http_status=http_status, excerpt=excerpt)
        self.retry_after = retry_after


class PendingDeliveryError(TransientDeliveryError):
    """The channel took the update but has not said yet whether it applied it (an asynchronous feed).

    Settled like a transient failure (the item comes back after ``retry_after`` and the connector
    checks again), but it is not a failure of the channel: it never opens the circuit.
    """


class QuotaHold(TransientDeliveryError):
    """The channel's quota for a long window is spent: hold the channel ``retry_after`` seconds, keep the items.

    Raised by ``connectors.quota.QuotaGate``; the dispatcher stops claiming for that long and counts no attempt.
    """


class PermanentDeliveryError(DeliveryError):
    """Will fail the same way every time (validation, unknown listing): goes to the dead-letter state."""


class MovedError(PermanentDeliveryError):
    """The product a cached mapping points at is gone: permanent for that product id, not for the SKU."""


class AuthDeliveryError(DeliveryError):
    """The channel refused our credentials: pause the channel instead of burning retries."""
