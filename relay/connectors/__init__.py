"""Channel connectors, one module each, behind ``base.Connector``."""

from __future__ import annotations

import aiohttp

from ..config import ChannelConfig
from .base import Connector, ItemResult, TokenAuth, Update
from .sandbox import SandboxConnector
from .webhook import WebhookConnector

REGISTRY: dict[str, type[Connector]] = {
    SandboxConnector.type: SandboxConnector,
    WebhookConnector.type: WebhookConnector,
}


def build(site: str, config: ChannelConfig, session: aiohttp.ClientSession) -> Connector:
    return REGISTRY[config.type](site, config, session)


__all__ = ["Connector", "ItemResult", "TokenAuth", "Update", "build", "REGISTRY"]
