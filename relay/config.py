"""Configuration: YAML (or the embedded defaults) → frozen dataclasses, loaded once and passed explicitly.

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
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml
from cryptography.fernet import Fernet

from . import secretref, signing
from .errors import ConfigError

SITE_ID = re.compile(r"^[a-z0-9-]{1,64}$")
CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
CHANNEL_TYPES = ("sandbox", "webhook", "shopify", "ebay", "amazon", "etsy", "walmart", "tiktok")
MARKETPLACE_TYPES = CHANNEL_TYPES[2:]
DEFAULT_STATE_DIR = ".stock-relay"

# Every key the YAML may hold, by section (tests check each one is documented in config.example.yaml).
TOP_KEYS = {
    "state_dir",
    "listen",
    "limits",
    "dispatch",
    "sites",
    "shutdown_grace_seconds",
    "timestamp_tolerance_seconds",
    "vault_key",
    "retention_days",
}
LISTEN_KEYS = {"host", "port"}
LIMIT_KEYS = {"max_body_bytes", "max_batch_events", "max_connections", "request_timeout_seconds"}
SITE_KEYS = {"secret", "channels", "max_requests_per_second", "shop_url", "reconcile"}
RECONCILE_KEYS = {
    "incremental_minutes",
    "full_hour",
    "page_size",
    "timeout_seconds",
    "readback_hours",
    "readback_share",
}
CHANNEL_KEYS = {
    "name",
    "type",
    "batch_size",
    "rate",
    "timeout_seconds",
    "coalesce_seconds",
    "rules",
    "url",
    "signing",
    "secret",
    "latency_ms",
    "failure_rate",
    "api_base",
    "account",
    "credentials",
}
RATE_KEYS = {"per_second", "burst"}
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
# How long a change waits for further changes to the same SKU before it is sent, where a marketplace charges per
# update beyond its call rate: eBay counts each as one of a listing's 250 daily revisions (docs/connectors.md).
COALESCE_DEFAULTS: dict[str, float] = {"ebay": 1.0}
RULE_KEYS = {"buffer", "buffer_per_sku", "sku_map", "unmanaged_quantity", "backorder_quantity"}


@dataclass(frozen=True)
class StockRules:
    """How a shop quantity becomes the quantity a channel shows (see docs/configuration.md)."""

    buffer: int = 0
    buffer_per_sku: Mapping[str, int] = field(default_factory=dict)
    sku_map: Mapping[str, str | None] = field(default_factory=dict)
    unmanaged_quantity: int | None = None
    backorder_quantity: int = 0


@dataclass(frozen=True)
class RateLimit:
    per_second: float = 10.0
    burst: int = 10


@dataclass(frozen=True)
class ChannelConfig:
    name: str
    type: str
    batch_size: int = 50
    rate: RateLimit = field(default_factory=RateLimit)
    timeout_seconds: float = 10.0
    # a change waits this long before it is due, so the same SKU's changes meanwhile go out as one update
    coalesce_seconds: float = 0.0
    rules: StockRules = field(default_factory=StockRules)
    # webhook
    url: str = ""
    signing: str = "v1"
    secret: str = field(default="", repr=False)
    # sandbox
    latency_ms: float = 5.0
    failure_rate: float = 0.0
    # marketplaces: where to call (the live API when empty; a sandbox host or a local fake when set),
    # the account's non-secret identifiers (shop domain, location, seller id, ...) and the vault
    # entry holding its secrets ("SITE/CHANNEL" when empty; see relay/vault.py)
    api_base: str = ""
    account: Mapping[str, str] = field(default_factory=dict)
    credentials: str = ""


@dataclass(frozen=True)
class ReconcileConfig:
    """When the relay compares the shop's truth with what it published (see relay/reconcile.py)."""

    incremental_minutes: float = 5.0  # a pass over what changed since the last one; 0: off
    full_hour: int | None = 3  # local hour of the nightly full pass; None: off
    page_size: int = 500  # snapshot items per request (the plugin serves at most 500)
    timeout_seconds: float = 30.0  # per snapshot request
    readback_hours: float = 24.0  # read every listed SKU back from each channel that can be read, this often; 0: off
    readback_share: float = 0.2  # at most this share of a channel's rate budget goes to read-back


@dataclass(frozen=True)
class SiteConfig:
    id: str
    secrets: tuple[str, ...] = field(repr=False)
    channels: tuple[ChannelConfig, ...]
    max_requests_per_second: float = 50.0
    # the WordPress site's address, where the plugin's snapshot route lives; empty: no reconciliation
    shop_url: str = ""
    reconcile: ReconcileConfig = field(default_factory=ReconcileConfig)

    @functools.cached_property
    def coalesce(self) -> dict[str, float]:
        """Each channel's ``coalesce_seconds`` where it has one: what ingest hands ``record_batch`` (once per site,
        not per request; a frozen dataclass still lets cached_property store it)."""
        return {c.name: c.coalesce_seconds for c in self.channels if c.coalesce_seconds > 0}


@dataclass(frozen=True)
class DispatchConfig:
    lease_seconds: float = 60.0
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 900.0
    give_up_after_hours: float = 72.0
    circuit_failure_threshold: int = 5
    circuit_open_seconds: float = 30.0
    auth_pause_seconds: float = 300.0
    idle_poll_seconds: float = 1.0
    # /readyz reports a worker stuck in one step (a channel call, a database write) for longer than this
    stall_seconds: float = 120.0


@dataclass(frozen=True)
class Config:
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 8787
    max_body_bytes: int = 1024 * 1024
    max_batch_events: int = 500
    # open client connections held at once; more are answered 503 and closed (see relay/connection_gate.py)
    max_connections: int = 1000
    # how long a request's headers, and then its body, may take to arrive (slow clients are closed)
    request_timeout_seconds: float = 30.0
    timestamp_tolerance_seconds: int = 300
    shutdown_grace_seconds: float = 10.0
    retention_days: float = 30.0
    dispatch: DispatchConfig = field(default_factory=DispatchConfig)
    sites: tuple[SiteConfig, ...] = ()
    vault_keys: tuple[str, ...] = field(default=(), repr=False)

    @property
    def database_path(self) -> Path:
        return self.state_dir / "relay.sqlite3"

    @property
    def vault_dir(self) -> Path:
        return self.state_dir / "credentials"

    def site(self, site_id: str) -> SiteConfig | None:
        for site in self.sites:
            if site.id == site_id:
                return site
        return None


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
    root = _Node(raw, "", environ, base_dir, secrets)
    root.expect_keys(TOP_KEYS)
    listen = root.child("listen", {})
    listen.expect_keys(LISTEN_KEYS)
    limits = root.child("limits", {})
    limits.expect_keys(LIMIT_KEYS)
    state_dir = root.get("state_dir", str)
    cfg = Config(
        state_dir=(base_dir / state_dir) if state_dir else default_state_dir(),
        host=listen.get("host", str) or "127.0.0.1",
        port=listen.int("port", 8787, 0, 65535),
        max_body_bytes=limits.int("max_body_bytes", 1024 * 1024, 1024, 1024 * 1024),
        max_batch_events=limits.int("max_batch_events", 500, 1, 500),
        max_connections=limits.int("max_connections", 1000, 16, 100_000),
        request_timeout_seconds=limits.number("request_timeout_seconds", 30.0, 1, 300),
        timestamp_tolerance_seconds=root.int("timestamp_tolerance_seconds", 300, 1, 300),
        shutdown_grace_seconds=root.number("shutdown_grace_seconds", 10.0, 0, 600),
        retention_days=root.number("retention_days", 30.0, 1, 3650),
        dispatch=_dispatch(root.child("dispatch", {})),
        vault_keys=_vault_keys(root),
    )
    sites_node = root.child("sites", None)
    if not isinstance(sites_node.value, Mapping) or not sites_node.value:
        raise ConfigError("sites", "define at least one site (a mapping of site id to its settings)")
    sites = tuple(_site(str(site_id), sites_node.child(str(site_id), None)) for site_id in sites_node.value)
    return replace(cfg, sites=sites)


def _vault_keys(root: _Node) -> tuple[str, ...]:
    ref = root.get("vault_key", str)
    if not ref:
        return ()
    keys = tuple(root.resolve_secret("vault_key", ref).split())
    try:
        for key in keys:
            Fernet(key.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise ConfigError("vault_key", "must hold Fernet keys (stock-relay keygen --vault prints one)") from None
    return keys


def _dispatch(node: _Node) -> DispatchConfig:
    names = {f.name for f in fields(DispatchConfig)}
    node.expect_keys(names)
    defaults = DispatchConfig()
    values: dict[str, Any] = {}
    for name in names:
        default = getattr(defaults, name)
        if isinstance(default, int):
            values[name] = node.int(name, default, 1, 1_000_000)
        else:
            values[name] = node.number(name, default, 0.001, 10_000_000)
    return DispatchConfig(**values)


def _site(site_id: str, node: _Node) -> SiteConfig:
    if not SITE_ID.match(site_id):
        raise ConfigError(node.path, "a site id is 1 to 64 of a-z, 0-9 and '-'")
    node.expect_keys(SITE_KEYS)
    secret_ref = node.get("secret", str)
    if not secret_ref:
        raise ConfigError(
            f"{node.path}.secret", "required: a reference such as env:NAME, file:/path or credential:NAME"
        )
    secrets = tuple(node.resolve_secret("secret", secret_ref).split())
    for value in secrets:
        try:
            signing.secret_key(value)
        except ValueError as exc:
            raise ConfigError(f"{node.path}.secret", str(exc)) from None
    channels_node = node.child("channels", None)
    if not isinstance(channels_node.value, list) or not channels_node.value:
        raise ConfigError(channels_node.path, "list at least one channel")
    channels = tuple(_channel(channels_node.item(i)) for i in range(len(channels_node.value)))
    seen: set[str] = set()
    for index, channel in enumerate(channels):
        if channel.name in seen:
            raise ConfigError(f"{channels_node.path}[{index}].name", f"duplicate channel name {channel.name!r}")
        seen.add(channel.name)
    shop_url = node.get("shop_url", str) or ""
    if shop_url and not re.match(r"^https?://[^\s/]+", shop_url):
        raise ConfigError(f"{node.path}.shop_url", "must be the shop's http:// or https:// address")
    return SiteConfig(
        id=site_id,
        secrets=secrets,
        channels=channels,
        max_requests_per_second=node.number("max_requests_per_second", 50.0, 0, 1_000_000),
        shop_url=shop_url.rstrip("/"),
        reconcile=_reconcile(node.child("reconcile", {})),
    )


def _reconcile(node: _Node) -> ReconcileConfig:
    node.expect_keys(RECONCILE_KEYS)
    full_hour = node.value.get("full_hour", 3) if isinstance(node.value, Mapping) else 3
    return ReconcileConfig(
        incremental_minutes=node.number("incremental_minutes", 5.0, 0, 1440),
        full_hour=None if full_hour is None else node.int("full_hour", 3, 0, 23),
        page_size=node.int("page_size", 500, 1, 500),
        timeout_seconds=node.number("timeout_seconds", 30.0, 1, 600),
        readback_hours=node.number("readback_hours", 24.0, 0, 8760),
        readback_share=node.number("readback_share", 0.2, 0.01, 1),
    )


def _channel(node: _Node) -> ChannelConfig:
    node.expect_keys(CHANNEL_KEYS)
    name = node.get("name", str)
    if not name or not CHANNEL_NAME.match(name):
        raise ConfigError(
            f"{node.path}.name", "required: 1 to 64 of a-z, 0-9, '-' and '_', starting with a letter or digit"
        )
    kind = node.get("type", str)
    if kind not in CHANNEL_TYPES:
        raise ConfigError(f"{node.path}.type", f"must be one of {', '.join(CHANNEL_TYPES)}")
    rate = node.child("rate", {})
    rate.expect_keys(RATE_KEYS)
    defaults = TYPE_DEFAULTS.get(kind, (1 if kind == "webhook" else 50, 10.0, 10))
    channel = ChannelConfig(
        name=name,
        type=kind,
        batch_size=node.int("batch_size", defaults[0], 1, 1000),
        rate=RateLimit(
            per_second=rate.number("per_second", defaults[1], 0.001, 100_000),
            burst=rate.int("burst", defaults[2], 1, 100_000),
        ),
        timeout_seconds=node.number("timeout_seconds", 10.0, 0.1, 300),
        coalesce_seconds=node.number("coalesce_seconds", COALESCE_DEFAULTS.get(kind, 0.0), 0, 60),
        rules=_rules(node.child("rules", {})),
        latency_ms=node.number("latency_ms", 5.0, 0, 60_000),
        failure_rate=node.number("failure_rate", 0.0, 0, 1),
    )
    if kind == "webhook":
        url = node.get("url", str)
        if not url or not re.match(r"^https?://[^\s/]+", url):
            raise ConfigError(f"{node.path}.url", "required for a webhook channel: an http:// or https:// URL")
        mode = node.get("signing", str) or "v1"
        if mode not in ("v1", "v1a"):
            raise ConfigError(f"{node.path}.signing", "must be v1 (HMAC) or v1a (ed25519)")
        ref = node.get("secret", str)
        if not ref:
            raise ConfigError(
                f"{node.path}.secret", "required for a webhook channel: env:NAME, file:/path or credential:NAME"
            )
        secret = next(iter(node.resolve_secret("secret", ref).split()), "")
        if secret:  # empty only when secrets are not resolved
            _check_outbound_secret(f"{node.path}.secret", mode, secret)
        channel = replace(channel, url=url, signing=mode, secret=secret)
    elif kind in MARKETPLACE_TYPES:
        channel = replace(
            channel,
            api_base=_api_base(node),
            account=_account(node.child("account", {})),
            credentials=node.get("credentials", str) or "",
        )
    return channel


def _api_base(node: _Node) -> str:
    base = node.get("api_base", str) or ""
    if base and not re.match(r"^https?://[^\s/]+", base):
        raise ConfigError(f"{node.path}.api_base", "must be an http:// or https:// URL (or left out for the live API)")
    return base.rstrip("/")


def _account(node: _Node) -> dict[str, str]:
    """The account's identifiers: text or whole numbers (IDs), never secrets (those go in the vault)."""
    if not isinstance(node.value, Mapping):
        raise ConfigError(node.path, "must map identifier names (shop, location_id, seller_id, ...) to values")
    account: dict[str, str] = {}
    for key, value in node.value.items():
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ConfigError(f"{node.path}.{key}", "must be text or a whole number")
        account[str(key)] = str(value)
    return account


def _check_outbound_secret(path: str, mode: str, secret: str) -> None:
    if mode == "v1":
        try:
            signing.secret_key(secret)
        except ValueError as exc:
            raise ConfigError(path, str(exc)) from None
    elif not secret.startswith(signing.PRIVATE_KEY_PREFIX):
        raise ConfigError(path, "v1a signing needs a whsk_ ed25519 private key (stock-relay keygen --ed25519)")


def _rules(node: _Node) -> StockRules:
    node.expect_keys(RULE_KEYS)
    per_sku = node.child("buffer_per_sku", {})
    if not isinstance(per_sku.value, Mapping):
        raise ConfigError(per_sku.path, "must map SKU to a whole number")
    sku_map = node.child("sku_map", {})
    if not isinstance(sku_map.value, Mapping):
        raise ConfigError(sku_map.path, "must map shop SKU to channel SKU (or null to leave it off this channel)")
    mapped: dict[str, str | None] = {}
    _sku_keys(sku_map)
    for key, value in sku_map.value.items():
        if value is not None and not isinstance(value, str | int):
            raise ConfigError(f"{sku_map.path}.{key}", "must be a channel SKU or null")
        mapped[str(key)] = None if value is None else str(value)
    unmanaged = node.value.get("unmanaged_quantity") if isinstance(node.value, Mapping) else None
    return StockRules(
        buffer=node.int("buffer", 0, 0, 1_000_000),
        buffer_per_sku={str(k): per_sku.int(k, 0, 0, 1_000_000) for k in _sku_keys(per_sku)},
        sku_map=mapped,
        unmanaged_quantity=None if unmanaged is None else node.int("unmanaged_quantity", 0, 0, 1_000_000),
        backorder_quantity=node.int("backorder_quantity", 0, 0, 1_000_000),
    )


def _sku_keys(node: _Node) -> list[Any]:
    """SKU keys as YAML read them: text or whole numbers; yes/no, dates or decimals mean a missing quote."""
    for key in node.value:
        if isinstance(key, bool) or not isinstance(key, str | int):
            raise ConfigError(f"{node.path}.{key}", "put the SKU in quotes: YAML read it as something other than text")
    return list(node.value)


class _Node:
    """A value in the YAML tree that knows its own key path, for error messages."""

    def __init__(self, value: Any, path: str, environ: Mapping[str, str], base_dir: Path, secrets: bool = True) -> None:
        self.value = value
        self.path = path
        self.environ = environ
        self.base_dir = base_dir
        self.secrets = secrets

    def _sub(self, key: str | int) -> str:
        return f"{self.path}.{key}" if self.path else str(key)

    def expect_keys(self, allowed: set[str]) -> None:
        if self.value is None:
            self.value = {}
        if not isinstance(self.value, Mapping):
            raise ConfigError(self.path, "must be a mapping")
        for key in self.value:
            if key not in allowed:
                raise ConfigError(self._sub(str(key)), f"unknown key (expected one of: {', '.join(sorted(allowed))})")

    def child(self, key: str, default: Any) -> _Node:
        value = self.value.get(key, default) if isinstance(self.value, Mapping) else default
        return _Node(value, self._sub(key), self.environ, self.base_dir, self.secrets)

    def item(self, index: int) -> _Node:
        return _Node(self.value[index], f"{self.path}[{index}]", self.environ, self.base_dir, self.secrets)

    def get(self, key: str, kind: type) -> Any:
        value = self.value.get(key) if isinstance(self.value, Mapping) else None
        if value is not None and not isinstance(value, kind):
            raise ConfigError(self._sub(key), f"must be a {kind.__name__}")
        return value

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self.value.get(key, default) if isinstance(self.value, Mapping) else default
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise ConfigError(self._sub(key), f"must be a number from {low:g} to {high:g}")
        return float(value)

    def int(self, key: str | int, default: int, low: int, high: int) -> int:
        value = self.value.get(key, default) if isinstance(self.value, Mapping) else default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(self._sub(key), f"must be a whole number from {low} to {high}")
        return value

    def resolve_secret(self, key: str, ref: str) -> str:
        """The referenced value; "" without reading it when secrets are not resolved (the reference is still checked)."""
        if not self.secrets:
            if ref.partition(":")[0] not in secretref.SCHEMES:
                raise ConfigError(self._sub(key), secretref.NOT_A_REFERENCE)
            return ""
        try:
            return secretref.resolve(ref, self.environ, self.base_dir)
        except ValueError as exc:
            raise ConfigError(self._sub(key), str(exc)) from None


def redacted(cfg: Config) -> dict[str, Any]:
    """The effective config as plain data with every secret replaced, for ``check-config``."""

    def channel(c: ChannelConfig) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": c.name,
            "type": c.type,
            "batch_size": c.batch_size,
            "rate": {"per_second": c.rate.per_second, "burst": c.rate.burst},
            "timeout_seconds": c.timeout_seconds,
            "coalesce_seconds": c.coalesce_seconds,
            "rules": {
                "buffer": c.rules.buffer,
                "buffer_per_sku": dict(c.rules.buffer_per_sku),
                "sku_map": dict(c.rules.sku_map),
                "unmanaged_quantity": c.rules.unmanaged_quantity,
                "backorder_quantity": c.rules.backorder_quantity,
            },
        }
        if c.type == "webhook":
            out.update(url=c.url, signing=c.signing, secret="<redacted>")
        elif c.type in MARKETPLACE_TYPES:
            out.update(api_base=c.api_base, account=dict(c.account), credentials=c.credentials)
        else:
            out.update(latency_ms=c.latency_ms, failure_rate=c.failure_rate)
        return out

    return {
        "state_dir": str(cfg.state_dir),
        "listen": {"host": cfg.host, "port": cfg.port},
        "limits": {
            "max_body_bytes": cfg.max_body_bytes,
            "max_batch_events": cfg.max_batch_events,
            "max_connections": cfg.max_connections,
            "request_timeout_seconds": cfg.request_timeout_seconds,
        },
        "timestamp_tolerance_seconds": cfg.timestamp_tolerance_seconds,
        "shutdown_grace_seconds": cfg.shutdown_grace_seconds,
        "retention_days": cfg.retention_days,
        "vault_key": f"<redacted: {len(cfg.vault_keys)} keys>" if cfg.vault_keys else None,
        "dispatch": {f.name: getattr(cfg.dispatch, f.name) for f in fields(DispatchConfig)},
        "sites": {
            s.id: {
                "secret": f"<redacted: {len(s.secrets)} active>",
                "max_requests_per_second": s.max_requests_per_second,
                "shop_url": s.shop_url,
                "reconcile": {f.name: getattr(s.reconcile, f.name) for f in fields(ReconcileConfig)},
                "channels": [channel(c) for c in s.channels],
            }
            for s in cfg.sites
        },
    }
