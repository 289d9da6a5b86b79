"""Channel connectors, one module each, behind ``base.Connector``."""

from __future__ import annotations

import aiohttp

from ..config import ChannelConfig, Config
from ..errors import ConfigError
from ..vault import Vault
from .amazon import AmazonConnector
from .base import Connector, ItemResult, TokenAuth, Update
from .ebay import EbayConnector
from .etsy import EtsyConnector
from .sandbox import SandboxConnector
from .shopify import ShopifyConnector
from .tiktok import TikTokConnector
from .walmart import WalmartConnector
from .webhook import WebhookConnector

REGISTRY: dict[str, type[Connector]] = {
    SandboxConnector.type: SandboxConnector,
    WebhookConnector.type: WebhookConnector,
    ShopifyConnector.type: ShopifyConnector,
    EbayConnector.type: EbayConnector,
    EtsyConnector.type: EtsyConnector,
    AmazonConnector.type: AmazonConnector,
    WalmartConnector.type: WalmartConnector,
    TikTokConnector.type: TikTokConnector,
}


def build(site: str, config: ChannelConfig, session: aiohttp.ClientSession, vault: Vault | None = None) -> Connector:
    return REGISTRY[config.type](site, config, session, vault)


def check(cfg: Config) -> None:
    """What parsing alone cannot see: a connector type that exists, and each account's required identifiers."""
    for site in cfg.sites:
        for index, channel in enumerate(site.channels):
            path = f"sites.{site.id}.channels[{index}]"
            connector = REGISTRY.get(channel.type)
            if connector is None:
                raise ConfigError(f"{path}.type", f"the {channel.type} connector is not available in this version")
            connector.check_account(channel, path)


__all__ = ["Connector", "ItemResult", "TokenAuth", "Update", "build", "REGISTRY"]
