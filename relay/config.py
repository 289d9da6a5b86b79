"""Configuration: YAML (or the embedded defaults) → frozen dataclasses, loaded once and passed explicitly.

The dataclasses below state the schema once: each field's ``spec(...)`` metadata gives its YAML key, its range,
whether it is required or secret, and which channel types use it. Everything else is derived from them: the
allowed keys, the checks (``_read``), the defaults, what ``check-config`` prints (``redacted``) and the docs test
(``schema()``, which tests/test_docs.py holds against docs/configuration.md and config.example.yaml). A key with
checks of its own (secrets, sites, channels, SKU maps) names its reader, one of the ``_read_*`` functions below.

Secrets never live in the YAML. Wherever a secret is needed the YAML holds a *reference*:
``env:NAME`` (an environment variable), ``file:/path`` (a file) or ``credential:NAME`` (a systemd
credential, read from ``$CREDENTIALS_DIRECTORY/NAME``). A referenced value may hold several
whitespace-separated secrets, which is how a site's secret rotates: old and new are both active.

Every error raised here is a ConfigError whose ``path`` names the offending key, e.g.
``sites.main.channels[1].batch_size``.
"""

from __future__ import annotations

import functools
import os
import re
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.fernet import Fernet

from . import secretref, signing
from .errors import ConfigError
from .storage.location import Dsn, StoreLocation

SITE_ID = re.compile(r"^[a-z0-9-]{1,64}$")
CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
HTTP_URL = re.compile(r"^https?://[^\s/]+")
CHANNEL_TYPES = ("sandbox", "webhook", "shopify", "ebay", "amazon", "etsy", "walmart", "tiktok")
MARKETPLACE_TYPES = CHANNEL_TYPES[2:]
DEFAULT_STATE_DIR = ".stock-relay"
# A marketplace's largest batch and published limit: (batch_size, rate.per_second, rate.burst) when the YAML
# leaves them out. Sources and units are in docs/connectors.md (Shopify's rate is in cost points).
TYPE_DEFAULTS: dict[str, tuple[int, float, int]] = {
    "shopify": (250, 100.0, 1000),  # 250 entries per input array; Standard plan 100 points/s
    "ebay": (25, 23.0, 25),  # 25 requests per bulk call; 2,000,000 calls/day ≈ 23/s
    "etsy": (25, 10.0, 10),  # one listing per write, 10 queries/s
    "amazon": (1000, 5.0, 5),  # a feed takes up to 25,000 messages; patchListingsItem 5/s, burst 5
    "walmart": (1000, 3.3, 10),  # a feed takes thousands; single updates ~200/min (sellers' figure)
    "tiktok": (250, 10.0, 10),  # one product per call, several products per claim; TikTok publishes no limit
}

# --- the declaration's vocabulary -----------------------------------------------------------------

Reader = Callable[["_Node", str, dict[str, Any]], Any]


@dataclass(frozen=True)
class Spec:
    """What the schema says about one field besides its default."""

    key: str | None = ""  # the YAML key: "" is the field's name, "listen.host" sits in a sub-mapping, None: no key
    whole: tuple[int, int] | None = None  # a YAML integer from low to high
    number: tuple[float, float] | None = None  # an integer or decimal from low to high
    nullable: bool = False  # null is a value of its own, not "the default"
    check: Callable[[str], str] | None = None  # a text's check: the value to keep, or ValueError(message)
    required: bool = False
    types: tuple[str, ...] = ()  # the channel types that use it: read, and shown by check-config, for them only
    read_for_all_types: bool = False  # ...but read and checked whatever the type (the sandbox keys always were)
    by_type: Mapping[str, Any] = field(default_factory=dict)  # a channel type's own default
    reader: Reader | None = None  # reads the key instead of the shared rules (its checks are its own)
    mapping: bool = False  # the YAML holds a mapping of id to item
    redact: Callable[[Any], Any] | None = None  # a secret: what check-config shows instead
    doc: str | None = None  # the default as the docs state it, where that is not the value itself


def spec(**kwargs: Any) -> dict[str, Spec]:
    """A field's metadata: ``field(default=50, metadata=spec(whole=(1, 1000)))``."""
    return {"spec": Spec(**kwargs)}


def spec_of(f: Field[Any]) -> Spec:
    found = f.metadata.get("spec")
    return found if isinstance(found, Spec) else Spec()


def _pattern(pattern: re.Pattern[str], message: str, required: bool = False, strip: str = "") -> Callable[[str], str]:
    def check(value: str) -> str:
        if (value or required) and not pattern.match(value):
            raise ValueError(message)
        return value.rstrip(strip)

    return check


def _choice(choices: tuple[str, ...], message: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(message)
        return value

    return check


def _count(unit: str) -> Callable[[tuple[str, ...]], str]:
    return lambda values: f"<redacted: {len(values)} {unit}>"


def _vault_count(keys: tuple[str, ...]) -> str | None:
    return _count("keys")(keys) if keys else None


def _secret_count(secrets: tuple[str, ...]) -> str | None:
    return _count("active")(secrets) if secrets else None


_QUANTITY = (0, 1_000_000)
_DISPATCH_WHOLE = (1, 1_000_000)
_DISPATCH_NUMBER = (0.001, 10_000_000)

# --- keys with checks of their own (the schema below names them) ----------------------------------


def _read_state_dir(node: _Node, key: str, values: dict[str, Any]) -> Path:
    state_dir = node.get(key, str)
    return (node.base_dir / state_dir) if state_dir else default_state_dir()


def _read_vault_keys(node: _Node, key: str, values: dict[str, Any]) -> tuple[str, ...]:
    ref = node.get(key, str)
    if not ref:
        return ()
    keys = tuple(node.resolve_secret(key, ref).split())
    try:
        for value in keys:
            Fernet(value.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise ConfigError(node.sub(key), "must hold Fernet keys (stock-relay keygen --vault prints one)") from None
    return keys


def _read_store(node: _Node, key: str, values: dict[str, Any]) -> Dsn | None:
    ref = node.get(key, str)
    if not ref:
        return None
    # Resolved even when a command reads without secrets: where the store is, every command needs to know.
    try:
        url = secretref.resolve(ref, node.environ, node.base_dir)
    except ValueError as exc:
        raise ConfigError(node.sub(key), str(exc)) from None
    try:
        return Dsn(url)
    except ValueError as exc:
        raise ConfigError(node.sub(key), str(exc)) from None


def _store_shown(dsn: Dsn | None) -> str | None:
    return None if dsn is None else f"<redacted: {dsn}>"


def _read_sites(node: _Node, key: str, values: dict[str, Any]) -> tuple[SiteConfig, ...]:
    sites = node.child(key, None)
    if not isinstance(sites.value, Mapping) or not sites.value:
        raise ConfigError(sites.path, "define at least one site (a mapping of site id to its settings)")
    return tuple(_site(str(site_id), sites.child(str(site_id), None)) for site_id in sites.value)


def _site(site_id: str, node: _Node) -> SiteConfig:
    if not SITE_ID.match(site_id):
        raise ConfigError(node.path, "a site id is 1 to 64 of a-z, 0-9 and '-'")
    site = SiteConfig(id=site_id, **_read(SiteConfig, node))
    _check_sales_secrets(node, site)
    if site.alert_url and not node.get("alert_secret", str):
        raise ConfigError(
            node.sub("alert_secret"), "required with alert_url: the whsec_ secret the alerts are signed with"
        )
    return site


def _read_site_secrets(node: _Node, key: str, values: dict[str, Any]) -> tuple[str, ...]:
    if not node.get(key, str):
        raise ConfigError(node.sub(key), "required: a reference such as env:NAME, file:/path or credential:NAME")
    return _read_whsec_secrets(node, key, values)


def _read_whsec_secrets(node: _Node, key: str, values: dict[str, Any]) -> tuple[str, ...]:
    """Standard Webhooks secrets (``whsec_…``; several while one rotates), each checked; none when unset (for a
    channel's ``sales_secret``: its sales route is off, 404)."""
    ref = node.get(key, str)
    if not ref:
        return ()
    secrets = tuple(node.resolve_secret(key, ref).split())
    for value in secrets:
        try:
            signing.secret_key(value)
        except ValueError as exc:
            raise ConfigError(node.sub(key), str(exc)) from None
    return secrets


def _read_webhook_secrets(node: _Node, key: str, values: dict[str, Any]) -> tuple[str, ...]:
    """The secret(s) a marketplace signs its webhooks with (Shopify: the app's client secret, as it is)."""
    ref = node.get(key, str)
    return tuple(node.resolve_secret(key, ref).split()) if ref else ()


def _read_flag(node: _Node, key: str, values: dict[str, Any], default: bool) -> bool:
    value = node.lookup(key, default)
    if not isinstance(value, bool):
        raise ConfigError(node.sub(key), "must be true or false")
    return value


# Who ships a marketplace order line from the shop's own stock, in each marketplace's words (a fulfilment network
# ships from its own stock: Shopify's fulfilment services, Amazon's AFN/FBA, Walmart's WFS, Fulfilled by TikTok)
FULFILMENT_DEFAULTS: dict[str, tuple[str, ...]] = {
    "shopify": ("manual",),
    "amazon": ("MFN",),
    "walmart": ("SellerFulfilled",),
    "tiktok": ("FULFILLMENT_BY_SELLER",),
}


# The names each marketplace uses (Shopify's are the shop's own service handles: any name)
FULFILMENT_NAMES: dict[str, tuple[str, ...]] = {
    "amazon": ("MFN", "AFN"),
    "walmart": ("SellerFulfilled", "WFSFulfilled", "3PLFulfilled"),
    "tiktok": ("FULFILLMENT_BY_SELLER", "FULFILLMENT_BY_TIKTOK"),
}


def _read_fulfilment(node: _Node, key: str, values: dict[str, Any]) -> tuple[str, ...]:
    kind = values["type"]
    default = FULFILMENT_DEFAULTS[kind]
    names = node.lookup(key, list(default))
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(node.sub(key), f"must be a list of names, e.g. [{', '.join(default)}]")
    known = FULFILMENT_NAMES.get(kind)
    if known and (unknown := [n for n in names if n not in known]):
        raise ConfigError(node.sub(key), f"{', '.join(unknown)}: {kind} names only {', '.join(known)}")
    return tuple(names)


def _check_sales_secrets(node: _Node, site: SiteConfig) -> None:
    """Sales need somewhere to go, and a system that reports them must not hold the shop's own secret."""
    for index, channel in enumerate(site.channels):
        path = f"{node.sub('channels')}[{index}].sales_secret"
        if channel.sales_secrets and not site.shop_url:
            raise ConfigError(path, "needs the site's shop_url: the relay sends reported sales to the shop there")
        if channel.takes_sales_webhooks and not site.shop_url:
            raise ConfigError(
                f"{node.sub('channels')}[{index}].webhook_secret",
                "needs the site's shop_url to import sales (or set import_sales: false)",
            )
        if set(channel.sales_secrets) & set(site.secrets):
            raise ConfigError(path, "must not be the site's secret: give each reporting system a secret of its own")


def _read_channels(node: _Node, key: str, values: dict[str, Any]) -> tuple[ChannelConfig, ...]:
    items = node.child(key, None)
    if not isinstance(items.value, list) or not items.value:
        raise ConfigError(items.path, "list at least one channel")
    channels = tuple(ChannelConfig(**_read(ChannelConfig, items.item(i))) for i in range(len(items.value)))
    seen: set[str] = set()
    for index, channel in enumerate(channels):
        if channel.name in seen:
            raise ConfigError(f"{items.path}[{index}].name", f"duplicate channel name {channel.name!r}")
        seen.add(channel.name)
    return channels


def _read_webhook_secret(node: _Node, key: str, values: dict[str, Any]) -> str:
    ref = node.get(key, str)
    if not ref:
        raise ConfigError(node.sub(key), "required for a webhook channel: env:NAME, file:/path or credential:NAME")
    secret = next(iter(node.resolve_secret(key, ref).split()), "")
    if not secret:  # empty only when secrets are not resolved
        return secret
    if values["signing"] == "v1":
        try:
            signing.secret_key(secret)
        except ValueError as exc:
            raise ConfigError(node.sub(key), str(exc)) from None
    elif not secret.startswith(signing.PRIVATE_KEY_PREFIX):
        raise ConfigError(node.sub(key), "v1a signing needs a whsk_ ed25519 private key (stock-relay keygen --ed25519)")
    return secret


def _read_account(node: _Node, key: str, values: dict[str, Any]) -> dict[str, str]:
    """The account's identifiers: text or whole numbers (IDs), never secrets (those go in the vault)."""
    account = node.child(key, {})
    if not isinstance(account.value, Mapping):
        raise ConfigError(account.path, "must map identifier names (shop, location_id, seller_id, ...) to values")
    out: dict[str, str] = {}
    for name, value in account.value.items():
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ConfigError(account.sub(name), "must be text or a whole number")
        out[str(name)] = str(value)
    return out


def _read_buffer_per_sku(node: _Node, key: str, values: dict[str, Any]) -> dict[str, int]:
    per_sku = node.child(key, {})
    if not isinstance(per_sku.value, Mapping):
        raise ConfigError(per_sku.path, "must map SKU to a whole number")
    return {str(sku): per_sku.int(sku, 0, *_QUANTITY) for sku in _sku_keys(per_sku)}


def _read_sku_map(node: _Node, key: str, values: dict[str, Any]) -> dict[str, str | None]:
    sku_map = node.child(key, {})
    if not isinstance(sku_map.value, Mapping):
        raise ConfigError(sku_map.path, "must map shop SKU to channel SKU (or null to leave it off this channel)")
    mapped: dict[str, str | None] = {}
    for sku in _sku_keys(sku_map):
        value = sku_map.value[sku]
        if value is not None and not isinstance(value, str | int):
            raise ConfigError(sku_map.sub(sku), "must be a channel SKU or null")
        mapped[str(sku)] = None if value is None else str(value)
    return mapped


def _sku_keys(node: _Node) -> list[Any]:
    """SKU keys as YAML read them: text or whole numbers; yes/no, dates or decimals mean a missing quote."""
    for key in node.value:
        if isinstance(key, bool) or not isinstance(key, str | int):
            raise ConfigError(node.sub(key), "put the SKU in quotes: YAML read it as something other than text")
    return list(node.value)


# --- the schema: fields in the order check-config prints them --------------------------------------


@dataclass(frozen=True)
class StockRules:
    """How a shop quantity becomes the quantity a channel shows (see docs/configuration.md)."""

    buffer: int = field(default=0, metadata=spec(whole=_QUANTITY))
    buffer_per_sku: Mapping[str, int] = field(
        default_factory=dict, metadata=spec(reader=_read_buffer_per_sku, doc="none")
    )
    sku_map: Mapping[str, str | None] = field(default_factory=dict, metadata=spec(reader=_read_sku_map, doc="none"))
    unmanaged_quantity: int | None = field(default=None, metadata=spec(whole=_QUANTITY, nullable=True))
    backorder_quantity: int = field(default=0, metadata=spec(whole=_QUANTITY))


@dataclass(frozen=True)
class RateLimit:
    per_second: float = field(
        default=10.0, metadata=spec(number=(0.001, 100_000), by_type={k: v[1] for k, v in TYPE_DEFAULTS.items()})
    )
    burst: int = field(
        default=10, metadata=spec(whole=(1, 100_000), by_type={k: v[2] for k, v in TYPE_DEFAULTS.items()})
    )


@dataclass(frozen=True)
class ChannelConfig:
    name: str = field(
        metadata=spec(
            required=True,
            check=_pattern(
                CHANNEL_NAME, "required: 1 to 64 of a-z, 0-9, '-' and '_', starting with a letter or digit", True
            ),
        )
    )
    # read before the keys below: they take this type's own defaults
    type: str = field(
        metadata=spec(required=True, check=_choice(CHANNEL_TYPES, f"must be one of {', '.join(CHANNEL_TYPES)}"))
    )
    batch_size: int = field(
        default=50,
        metadata=spec(whole=(1, 1000), by_type={"webhook": 1} | {k: v[0] for k, v in TYPE_DEFAULTS.items()}),
    )
    rate: RateLimit = field(default_factory=RateLimit)
    timeout_seconds: float = field(default=10.0, metadata=spec(number=(0.1, 300)))
    # a change waits this long before it is due, so the same SKU's changes meanwhile go out as one update; where a
    # marketplace charges per update beyond its call rate: eBay counts each as one of a listing's 250 daily
    # revisions (docs/connectors.md)
    coalesce_seconds: float = field(default=0.0, metadata=spec(number=(0, 60), by_type={"ebay": 1.0}))
    rules: StockRules = field(default_factory=StockRules)
    # webhook
    url: str = field(
        default="",
        metadata=spec(
            types=("webhook",),
            required=True,
            check=_pattern(HTTP_URL, "required for a webhook channel: an http:// or https:// URL", True),
        ),
    )
    signing: str = field(
        default="v1",
        metadata=spec(types=("webhook",), check=_choice(("v1", "v1a"), "must be v1 (HMAC) or v1a (ed25519)")),
    )
    secret: str = field(
        default="",
        repr=False,
        metadata=spec(types=("webhook",), required=True, reader=_read_webhook_secret, redact=lambda _: "<redacted>"),
    )
    # sandbox
    latency_ms: float = field(
        default=5.0, metadata=spec(number=(0, 60_000), types=("sandbox",), read_for_all_types=True)
    )
    failure_rate: float = field(default=0.0, metadata=spec(number=(0, 1), types=("sandbox",), read_for_all_types=True))
    # marketplaces: where to call (the live API when empty; a sandbox host or a local fake when set),
    # the account's non-secret identifiers (shop domain, location, seller id, ...) and the vault
    # entry holding its secrets ("SITE/CHANNEL" when empty; see relay/vault.py)
    api_base: str = field(
        default="",
        metadata=spec(
            types=MARKETPLACE_TYPES,
            check=_pattern(HTTP_URL, "must be an http:// or https:// URL (or left out for the live API)", strip="/"),
            doc="the live API",
        ),
    )
    # doc "": each type's keys, none of them with a default, are in docs/connectors.md
    account: Mapping[str, str] = field(
        default_factory=dict, metadata=spec(types=MARKETPLACE_TYPES, reader=_read_account, doc="")
    )
    credentials: str = field(default="", metadata=spec(types=MARKETPLACE_TYPES, doc="`SITE/CHANNEL`"))
    # any type: the secret(s) another system signs this channel's sales.report with (docs/wire-protocol.md §2b);
    # none: the channel's sales route answers 404
    sales_secrets: tuple[str, ...] = field(
        default=(), repr=False, metadata=spec(key="sales_secret", reader=_read_whsec_secrets, redact=_secret_count)
    )
    # marketplaces' own sales (Shopify: order webhooks, docs/connectors.md "Sales"): applied to the shop once each
    import_sales: bool = field(
        default=True, metadata=spec(types=MARKETPLACE_TYPES, reader=functools.partial(_read_flag, default=True))
    )
    # how often a marketplace's orders are read (relay/intake/sweep.py; Shopify's sweep catches missed webhooks)
    sales_poll_seconds: float = field(default=60.0, metadata=spec(number=(5, 86_400), types=MARKETPLACE_TYPES))
    webhook_secrets: tuple[str, ...] = field(
        default=(),
        repr=False,
        metadata=spec(key="webhook_secret", types=("shopify",), reader=_read_webhook_secrets, redact=_secret_count),
    )
    restock_on_cancel: bool = field(
        default=True, metadata=spec(types=MARKETPLACE_TYPES, reader=functools.partial(_read_flag, default=True))
    )
    restock_on_refund: bool = field(
        default=False, metadata=spec(types=("shopify",), reader=functools.partial(_read_flag, default=False))
    )
    # a line counts as a sale only when one of these ships it (Shopify's fulfilment networks ship their own stock)
    fulfillment_services: tuple[str, ...] = field(
        default=(),  # (): the type's own, FULFILMENT_DEFAULTS (set in __post_init__, also for configs built in code)
        metadata=spec(
            types=tuple(FULFILMENT_DEFAULTS),
            reader=_read_fulfilment,
            by_type=FULFILMENT_DEFAULTS,
            doc="`[manual]` for `shopify`, `[MFN]` for `amazon`, `[SellerFulfilled]` for `walmart`, `[FULFILLMENT_BY_SELLER]` for `tiktok`",
        ),
    )

    def __post_init__(self) -> None:
        if not self.fulfillment_services and self.type in FULFILMENT_DEFAULTS:
            object.__setattr__(self, "fulfillment_services", FULFILMENT_DEFAULTS[self.type])

    @property
    def takes_sales_webhooks(self) -> bool:
        return self.import_sales and bool(self.webhook_secrets)


@dataclass(frozen=True)
class ReconcileConfig:
    """When the relay compares the shop's truth with what it published (see relay/repair/reconcile.py)."""

    # a pass over what changed since the last one; 0: off
    incremental_minutes: float = field(default=5.0, metadata=spec(number=(0, 1440)))
    # local hour of the nightly full pass; None: off
    full_hour: int | None = field(default=3, metadata=spec(whole=(0, 23), nullable=True))
    # snapshot items per request (the plugin serves at most 500)
    page_size: int = field(default=500, metadata=spec(whole=(1, 500)))
    # per snapshot request
    timeout_seconds: float = field(default=30.0, metadata=spec(number=(1, 600)))
    # read every listed SKU back from each channel that can be read, this often; 0: off
    readback_hours: float = field(default=24.0, metadata=spec(number=(0, 8760)))
    # at most this share of a channel's rate budget goes to read-back
    readback_share: float = field(default=0.2, metadata=spec(number=(0.01, 1)))


@dataclass(frozen=True)
class SiteConfig:
    id: str = field(metadata=spec(key=None))  # its key in `sites`
    secrets: tuple[str, ...] = field(
        repr=False, metadata=spec(key="secret", required=True, reader=_read_site_secrets, redact=_count("active"))
    )
    max_requests_per_second: float = field(default=50.0, metadata=spec(number=(0, 1_000_000)))
    # the WordPress site's address, where the plugin's snapshot route lives; empty: no reconciliation
    shop_url: str = field(
        default="", metadata=spec(check=_pattern(HTTP_URL, "must be the shop's http:// or https:// address", strip="/"))
    )
    # where each oversold incident is posted (relay/delivery/alerts.py), signed with alert_secret; empty: none
    alert_url: str = field(
        default="", metadata=spec(check=_pattern(HTTP_URL, "must be an http:// or https:// URL", strip="/"))
    )
    alert_secrets: tuple[str, ...] = field(
        default=(), repr=False, metadata=spec(key="alert_secret", reader=_read_whsec_secrets, redact=_secret_count)
    )
    reconcile: ReconcileConfig = field(default_factory=ReconcileConfig)
    # keyword-only, so that it may come last (where check-config prints it) after keys with defaults
    channels: tuple[ChannelConfig, ...] = field(kw_only=True, metadata=spec(required=True, reader=_read_channels))

    @functools.cached_property
    def coalesce(self) -> dict[str, float]:
        """Each channel's ``coalesce_seconds`` where it has one: what ingest hands ``record_batch`` (once per site,
        not per request; a frozen dataclass still lets cached_property store it)."""
        return {c.name: c.coalesce_seconds for c in self.channels if c.coalesce_seconds > 0}


@dataclass(frozen=True)
class DispatchConfig:
    lease_seconds: float = field(default=60.0, metadata=spec(number=_DISPATCH_NUMBER))
    backoff_base_seconds: float = field(default=1.0, metadata=spec(number=_DISPATCH_NUMBER))
    backoff_max_seconds: float = field(default=900.0, metadata=spec(number=_DISPATCH_NUMBER))
    give_up_after_hours: float = field(default=72.0, metadata=spec(number=_DISPATCH_NUMBER))
    circuit_failure_threshold: int = field(default=5, metadata=spec(whole=_DISPATCH_WHOLE))
    circuit_open_seconds: float = field(default=30.0, metadata=spec(number=_DISPATCH_NUMBER))
    auth_pause_seconds: float = field(default=300.0, metadata=spec(number=_DISPATCH_NUMBER))
    idle_poll_seconds: float = field(default=1.0, metadata=spec(number=_DISPATCH_NUMBER))
    # /readyz reports a worker stuck in one step (a channel call, a database write) for longer than this
    stall_seconds: float = field(default=120.0, metadata=spec(number=_DISPATCH_NUMBER))


@dataclass(frozen=True)
class Config:
    state_dir: Path = field(metadata=spec(reader=_read_state_dir, doc="`$STATE_DIRECTORY`"))
    # SQLite in state_dir when absent; a reference to a postgresql:// URL puts the store in PostgreSQL
    store: Dsn | None = field(
        default=None, repr=False, metadata=spec(reader=_read_store, redact=_store_shown, doc="SQLite in state_dir")
    )
    host: str = field(default="127.0.0.1", metadata=spec(key="listen.host"))
    port: int = field(default=8787, metadata=spec(key="listen.port", whole=(0, 65535)))
    max_body_bytes: int = field(
        default=1024 * 1024, metadata=spec(key="limits.max_body_bytes", whole=(1024, 1024 * 1024))
    )
    max_batch_events: int = field(default=500, metadata=spec(key="limits.max_batch_events", whole=(1, 500)))
    # open client connections held at once; more are answered 503 and closed (see relay/http/connection_gate.py)
    max_connections: int = field(default=1000, metadata=spec(key="limits.max_connections", whole=(16, 100_000)))
    # how long a request's headers, and then its body, may take to arrive (slow clients are closed)
    request_timeout_seconds: float = field(
        default=30.0, metadata=spec(key="limits.request_timeout_seconds", number=(1, 300))
    )
    timestamp_tolerance_seconds: int = field(default=300, metadata=spec(whole=(1, 300)))
    shutdown_grace_seconds: float = field(default=10.0, metadata=spec(number=(0, 600)))
    retention_days: float = field(default=30.0, metadata=spec(number=(1, 3650)))
    vault_keys: tuple[str, ...] = field(
        default=(), repr=False, metadata=spec(key="vault_key", reader=_read_vault_keys, redact=_vault_count)
    )
    dispatch: DispatchConfig = field(default_factory=DispatchConfig)
    sites: tuple[SiteConfig, ...] = field(default=(), metadata=spec(required=True, reader=_read_sites, mapping=True))

    @property
    def database_path(self) -> Path:
        return self.state_dir / "relay.sqlite3"

    @property
    def store_location(self) -> StoreLocation:
        """Where the store is: the PostgreSQL database of ``store``, else the SQLite file in state_dir."""
        return self.store if self.store is not None else self.database_path

    @property
    def vault_dir(self) -> Path:
        return self.state_dir / "credentials"

    def site(self, site_id: str) -> SiteConfig | None:
        for site in self.sites:
            if site.id == site_id:
                return site
        return None


# --- what the schema says, walked ----------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One key the YAML may hold: ``path`` is e.g. ("sites", "*", "channels", "rate", "burst")."""

    path: tuple[str, ...]
    spec: Spec
    default: Any  # MISSING for a required key or a section
    section: bool = False


def schema(cls: type = Config, prefix: tuple[str, ...] = ()) -> Iterator[Key]:
    """Every key the YAML may hold, in declaration order, each section before its keys."""
    subs: set[str] = set()
    for f in fields(cls):
        s = spec_of(f)
        if s.key is None:
            continue
        *outer, name = (s.key or f.name).split(".")
        if outer and outer[0] not in subs:  # listen, limits: a sub-mapping of this class's own keys
            subs.add(outer[0])
            yield Key((*prefix, outer[0]), Spec(), MISSING, section=True)
        path = (*prefix, *outer, name)
        nested = _sections(cls).get(f.name)
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        yield Key(path, s, MISSING if s.required or nested else default, section=nested is not None)
        if nested:
            yield from schema(nested, (*path, "*") if s.mapping else path)


@functools.cache
def _sections(cls: type) -> dict[str, type]:
    """cls's fields that hold another of these dataclasses (or a tuple of them), with that dataclass."""
    found: dict[str, type] = {}
    for name, hint in typing.get_type_hints(cls).items():
        for candidate in (hint, *typing.get_args(hint)):
            if isinstance(candidate, type) and is_dataclass(candidate):
                found[name] = candidate
    return found


def _allowed(cls: type) -> dict[str, set[str]]:
    """cls's YAML keys by where they sit: "" its own, "listen" those of its sub-mapping listen."""
    allowed: dict[str, set[str]] = {"": set()}
    for f in fields(cls):
        if (key := spec_of(f).key) is not None:
            *outer, name = (key or f.name).split(".")
            allowed[""].add(outer[0] if outer else name)
            if outer:
                allowed.setdefault(outer[0], set()).add(name)
    return allowed


# --- loading -------------------------------------------------------------------------------------


def default_state_dir() -> Path:
    """systemd's StateDirectory when run as a service, else a folder in the working directory."""
    return Path(os.environ.get("STATE_DIRECTORY", DEFAULT_STATE_DIR).split(":")[0])


def embedded_defaults(state_dir: Path | None = None) -> Config:
    """The zero-config setup: a ``demo`` site (secret generated and saved on first start) and a ``sandbox`` channel."""
    state = state_dir or default_state_dir()
    secret = _demo_secret(state)
    sandbox = ChannelConfig(
        name="sandbox", type="sandbox", batch_size=50, rate=RateLimit(per_second=20, burst=20), failure_rate=0.02
    )
    return Config(state_dir=state, sites=(SiteConfig(id="demo", secrets=(secret,), channels=(sandbox,)),))


def _demo_secret(state_dir: Path) -> str:
    path = state_dir / "demo-site.secret"
    if path.exists():
        return path.read_text().strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    secret = signing.new_secret()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret


def load(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None, secrets: bool = True
) -> Config:
    """Load the YAML at ``path``, or the embedded defaults when there is none.

    ``secrets=False`` leaves every secret reference unresolved (sites get no secrets, webhook channels an empty one,
    no vault keys): for the operator commands that only read the database, which must work without the service's
    credentials (``sudo -u stock-relay stock-relay status -c ...`` has no ``$CREDENTIALS_DIRECTORY``).
    """
    env = os.environ if environ is None else environ
    path = path or env.get("STOCK_RELAY_CONFIG") or None
    if path is None:
        return embedded_defaults()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("", f"{path} is not valid YAML: {exc}") from None
    return parse(raw if raw is not None else {}, env, base_dir=Path(path).resolve().parent, secrets=secrets)


def parse(raw: Any, environ: Mapping[str, str], base_dir: Path = Path("."), secrets: bool = True) -> Config:
    """Validate a parsed YAML document and build the Config (``secrets=False``: see ``load``)."""
    return Config(**_read(Config, _Node(raw, "", environ, base_dir, secrets)))


def _read(cls: type, node: _Node, kind: str = "") -> dict[str, Any]:
    """The values of ``cls``'s fields at ``node``, checked as their specs say. A key the YAML leaves out takes its
    default (channel type ``kind``'s own where it has one); a key another channel type uses keeps its default."""
    for where, keys in _allowed(cls).items():
        (node.child(where, {}) if where else node).expect_keys(keys)
    values: dict[str, Any] = {}
    for f in fields(cls):
        s = spec_of(f)
        if s.key is None or (s.types and kind not in s.types and not s.read_for_all_types):
            continue
        *outer, key = (s.key or f.name).split(".")
        at = node.child(outer[0], {}) if outer else node
        default = s.by_type.get(kind, f.default)
        if s.reader:
            values[f.name] = s.reader(at, key, values)
        elif nested := _sections(cls).get(f.name):
            values[f.name] = nested(**_read(nested, at.child(key, {}), kind))
        elif s.nullable and at.lookup(key, default) is None:
            values[f.name] = None
        elif s.whole:
            values[f.name] = at.int(key, default, *s.whole)
        elif s.number:
            values[f.name] = at.number(key, default, *s.number)
        else:
            text = at.get(key, str) or ("" if default is MISSING else default)
            try:
                values[f.name] = s.check(text) if s.check else text
            except ValueError as exc:
                raise ConfigError(at.sub(key), str(exc)) from None
        if cls is ChannelConfig and f.name == "type":
            kind = values[f.name]
    return values


class _Node:
    """A value in the YAML tree that knows its own key path, for error messages."""

    def __init__(self, value: Any, path: str, environ: Mapping[str, str], base_dir: Path, secrets: bool = True) -> None:
        self.value = value
        self.path = path
        self.environ = environ
        self.base_dir = base_dir
        self.secrets = secrets

    def sub(self, key: Any) -> str:
        return f"{self.path}.{key}" if self.path else str(key)

    def expect_keys(self, allowed: set[str]) -> None:
        if self.value is None:
            self.value = {}
        if not isinstance(self.value, Mapping):
            raise ConfigError(self.path, "must be a mapping")
        for key in self.value:
            if key not in allowed:
                raise ConfigError(self.sub(key), f"unknown key (expected one of: {', '.join(sorted(allowed))})")

    def lookup(self, key: Any, default: Any) -> Any:
        return self.value.get(key, default) if isinstance(self.value, Mapping) else default

    def child(self, key: str, default: Any) -> _Node:
        return _Node(self.lookup(key, default), self.sub(key), self.environ, self.base_dir, self.secrets)

    def item(self, index: int) -> _Node:
        return _Node(self.value[index], f"{self.path}[{index}]", self.environ, self.base_dir, self.secrets)

    def get(self, key: str, kind: type) -> Any:
        value = self.lookup(key, None)
        if value is not None and not isinstance(value, kind):
            raise ConfigError(self.sub(key), f"must be a {kind.__name__}")
        return value

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self.lookup(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise ConfigError(self.sub(key), f"must be a number from {low:g} to {high:g}")
        return float(value)

    def int(self, key: Any, default: int, low: int, high: int) -> int:
        value = self.lookup(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(self.sub(key), f"must be a whole number from {low} to {high}")
        return value

    def resolve_secret(self, key: str, ref: str) -> str:
        """The referenced value; "" without reading it when secrets are not resolved (the reference is still checked)."""
        if not self.secrets:
            if ref.partition(":")[0] not in secretref.SCHEMES:
                raise ConfigError(self.sub(key), secretref.NOT_A_REFERENCE)
            return ""
        try:
            return secretref.resolve(ref, self.environ, self.base_dir)
        except ValueError as exc:
            raise ConfigError(self.sub(key), str(exc)) from None


def redacted(cfg: Config) -> dict[str, Any]:
    """The effective config as plain data with every secret replaced, for ``check-config``."""
    return _plain(cfg)


def _plain(obj: Any, kind: str = "") -> dict[str, Any]:
    """One section as the YAML would hold it: a channel shows the keys its type uses, a secret what its spec says."""
    kind = obj.type if isinstance(obj, ChannelConfig) else kind
    out: dict[str, Any] = {}
    for f in fields(obj):
        s = spec_of(f)
        if s.key is None or (s.types and kind not in s.types):
            continue
        value = getattr(obj, f.name)
        if s.redact:
            value = s.redact(value)
        elif s.mapping:
            value = {item.id: _plain(item) for item in value}
        elif isinstance(value, tuple):
            value = [_plain(item) if is_dataclass(item) else item for item in value]
        elif is_dataclass(value):
            value = _plain(value, kind)
        elif isinstance(value, Mapping):
            value = dict(value)
        elif isinstance(value, Path):
            value = str(value)
        *outer, key = (s.key or f.name).split(".")
        (out.setdefault(outer[0], {}) if outer else out)[key] = value
    return out
