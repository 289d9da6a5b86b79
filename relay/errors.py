"""Every error the relay raises on purpose, in one place.

    RelayError
    ├── ConfigError            bad configuration; names the key path
    ├── SignatureError         a request failed Standard Webhooks verification (has an HTTP `code`)
    ├── PayloadError           a request body or field is unacceptable (has an HTTP `code` and `status`)
    ├── StorageError           SQLite could not commit (disk full, read-only, locked too long)
    ├── ReconcileError         the shop's snapshot could not be read (unreachable, refused, malformed)
    └── DeliveryError          raised only at the connector boundary, caught only by the dispatcher
        ├── TransientDeliveryError(retry_after)   retry later; the channel is fine in principle
        │   └── PendingDeliveryError               taken, still being processed (a feed): check again later
        ├── PermanentDeliveryError                 this item can never succeed as sent: dead-letter it
        └── AuthDeliveryError                      credentials refused: pause the whole channel

Only `relay.server` maps these to HTTP statuses. Messages are written for a shop owner and never
contain a secret.
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
    """A request's Standard Webhooks signature did not verify. `code` is the PROTOCOL.md error code."""

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


class PermanentDeliveryError(DeliveryError):
    """Will fail the same way every time (validation, unknown listing): goes to the dead-letter state."""


class AuthDeliveryError(DeliveryError):
    """The channel refused our credentials: pause the channel instead of burning retries."""
