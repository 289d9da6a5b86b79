"""Configuration: embedded defaults, secret references, errors that name the key path, redaction."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from relay import config, signing
from relay.errors import ConfigError
from relay.vault import new_key

SECRET = signing.new_secret()
VAULT_KEY = new_key()


def minimal(**site: Any) -> dict[str, Any]:
    channel = {"name": "hook", "type": "webhook", "url": "https://example.invalid/hook", "secret": "env:HOOK_SECRET"}
    return {"sites": {"main": {"secret": "env:MAIN_SECRET", "channels": [channel], **site}}}


ENV = {"MAIN_SECRET": SECRET, "HOOK_SECRET": signing.new_secret()}


def test_embedded_defaults_create_and_keep_demo_secret(tmp_path: Path) -> None:
    """With no config, a demo site gets a generated secret, saved 0600 and reused on the next start."""
    first = config.embedded_defaults(tmp_path)
    again = config.embedded_defaults(tmp_path)
    assert first.sites[0].id == "demo" and first.sites[0].channels[0].type == "sandbox"
    assert first.sites[0].secrets == again.sites[0].secrets
    mode = stat.S_IMODE(os.stat(tmp_path / "demo-site.secret").st_mode)
    assert mode == 0o600


def test_minimal_config_parses(tmp_path: Path) -> None:
    """A site with one webhook channel loads with sane defaults."""
    cfg = config.parse(minimal(), ENV, tmp_path)
    channel = cfg.sites[0].channels[0]
    assert (cfg.port, cfg.max_body_bytes, cfg.max_batch_events) == (8787, 1024 * 1024, 500)
    assert channel.secret == ENV["HOOK_SECRET"] and channel.batch_size == 1


def test_rotation_holds_several_secrets(tmp_path: Path) -> None:
    """A secret reference holding two whitespace-separated secrets makes both active."""
    second = signing.new_secret()
    cfg = config.parse(minimal(), ENV | {"MAIN_SECRET": f"{SECRET}\n{second}"}, tmp_path)
    assert cfg.sites[0].secrets == (SECRET, second)


def test_file_and_credential_references(tmp_path: Path) -> None:
    """file: is relative to the config file; credential: reads systemd's credentials directory."""
    (tmp_path / "site.secret").write_text(SECRET + "\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "hook").write_text(ENV["HOOK_SECRET"])
    raw = minimal(secret="file:site.secret")
    raw["sites"]["main"]["channels"][0]["secret"] = "credential:hook"
    cfg = config.parse(raw, {"CREDENTIALS_DIRECTORY": str(creds)}, tmp_path)
    assert cfg.sites[0].secrets == (SECRET,) and cfg.sites[0].channels[0].secret == ENV["HOOK_SECRET"]


@pytest.mark.parametrize(
    ("mutate", "path", "words"),
    [
        (lambda r: r.update(listen={"port": 70000}), "listen.port", "whole number"),
        (lambda r: r.update(colour="blue"), "colour", "unknown key"),
        (lambda r: r.update(sites={}), "sites", "at least one site"),
        (lambda r: r["sites"].update({"Bad_Site": r["sites"]["main"]}), "sites.Bad_Site", "site id"),
        (lambda r: r["sites"]["main"].update(secret=SECRET), "sites.main.secret", "never the secret itself"),
        (lambda r: r["sites"]["main"].update(secret="env:NOPE"), "sites.main.secret", "NOPE is not set"),
        (lambda r: r["sites"]["main"].update(channels=[]), "sites.main.channels", "at least one channel"),
        (
            lambda r: r["sites"]["main"]["channels"][0].update(batch_size=0),
            "sites.main.channels[0].batch_size",
            "whole number",
        ),
        (
            lambda r: r["sites"]["main"]["channels"][0].update(type="carrier-pigeon"),
            "sites.main.channels[0].type",
            "must be one of",
        ),
        (lambda r: r["sites"]["main"]["channels"][0].update(url="ftp://x"), "sites.main.channels[0].url", "http"),
        (lambda r: r["sites"]["main"]["channels"][0].update(signing="v1a"), "sites.main.channels[0].secret", "whsk_"),
        (
            lambda r: r["sites"]["main"]["channels"][0].update(rate={"per_second": "fast"}),
            "sites.main.channels[0].rate.per_second",
            "number",
        ),
        (
            lambda r: r["sites"]["main"]["channels"][0].update(rules={"buffer": -1}),
            "sites.main.channels[0].rules.buffer",
            "whole number",
        ),
        (
            lambda r: r["sites"]["main"]["channels"].append(dict(r["sites"]["main"]["channels"][0])),
            "sites.main.channels[1].name",
            "duplicate",
        ),
        (lambda r: r.update(dispatch={"lease_seconds": True}), "dispatch.lease_seconds", "number"),
    ],
)
def test_errors_name_the_key_path(tmp_path: Path, mutate, path: str, words: str) -> None:
    """Each invalid setting fails with the key path and a hint, never echoing a secret."""
    raw = minimal()
    mutate(raw)
    with pytest.raises(ConfigError) as info:
        config.parse(raw, ENV, tmp_path)
    assert info.value.path == path and words in str(info.value)
    assert SECRET not in str(info.value) and ENV["HOOK_SECRET"] not in str(info.value)


def test_bad_site_secret_value_is_refused(tmp_path: Path) -> None:
    """A referenced value that is not a whsec_ secret is refused without being printed."""
    with pytest.raises(ConfigError) as info:
        config.parse(minimal(), ENV | {"MAIN_SECRET": "hunter2hunter2"}, tmp_path)
    assert info.value.path == "sites.main.secret" and "hunter2" not in str(info.value)


def test_redacted_hides_every_secret(tmp_path: Path) -> None:
    """The printable config shows no secret value."""
    text = repr(config.redacted(config.parse(minimal(), ENV, tmp_path)))
    assert SECRET not in text and ENV["HOOK_SECRET"] not in text and "<redacted" in text


def test_secrets_hidden_from_repr(tmp_path: Path) -> None:
    """Even an accidental log of the config objects does not show secrets."""
    cfg = config.parse(minimal(), ENV, tmp_path)
    assert SECRET not in repr(cfg) and ENV["HOOK_SECRET"] not in repr(cfg)


def test_unreadable_yaml_names_the_file(tmp_path: Path) -> None:
    """A YAML syntax error or a missing file is a ConfigError naming the file."""
    bad = tmp_path / "c.yaml"
    bad.write_text("sites: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(tmp_path / "missing.yaml")


def test_numeric_sku_keys_keep_their_values(tmp_path: Path) -> None:
    """An unquoted numeric SKU in buffer_per_sku or sku_map is read as that SKU, with its value."""
    raw = minimal()
    raw["sites"]["main"]["channels"][0]["rules"] = {"buffer_per_sku": {12345: 3}, "sku_map": {678: "AMZ-678"}}
    rules = config.parse(raw, ENV, tmp_path).sites[0].channels[0].rules
    assert rules.buffer_per_sku == {"12345": 3} and rules.sku_map == {"678": "AMZ-678"}


def test_yes_no_sku_key_is_refused(tmp_path: Path) -> None:
    """A SKU YAML reads as a boolean is refused with advice to quote it, not silently renamed."""
    raw = minimal()
    raw["sites"]["main"]["channels"][0]["rules"] = {"sku_map": {True: "X"}}
    with pytest.raises(ConfigError, match="in quotes"):
        config.parse(raw, ENV, tmp_path)


def test_ebay_changes_wait_a_second_to_coalesce_by_default(tmp_path: Path) -> None:
    """eBay charges a revision per update, so its changes wait 1 s for more of the same SKU; other channels send at
    once unless told otherwise, and the value is bounded."""
    raw = minimal()
    raw["vault_key"] = "env:VAULT_KEY"
    raw["sites"]["main"]["channels"] += [
        {"name": "ebay", "type": "ebay"},
        {"name": "etsy", "type": "etsy", "account": {"shop_id": "1"}, "coalesce_seconds": 2.5},
    ]
    cfg = config.parse(raw, ENV | {"VAULT_KEY": VAULT_KEY}, tmp_path)
    assert [c.coalesce_seconds for c in cfg.sites[0].channels] == [0.0, 1.0, 2.5]
    assert cfg.sites[0].coalesce == {"ebay": 1.0, "etsy": 2.5}
    assert config.redacted(cfg)["sites"]["main"]["channels"][1]["coalesce_seconds"] == 1.0
    raw["sites"]["main"]["channels"][1]["coalesce_seconds"] = 61
    with pytest.raises(ConfigError) as info:
        config.parse(raw, ENV | {"VAULT_KEY": VAULT_KEY}, tmp_path)
    assert info.value.path == "sites.main.channels[1].coalesce_seconds" and "0 to 60" in str(info.value)


@pytest.mark.parametrize(
    ("kind", "names", "error"),
    [
        ("amazon", ["MFN", "FBA"], "FBA: amazon names only MFN, AFN"),
        ("walmart", ["WFS"], "WFS: walmart names only SellerFulfilled, WFSFulfilled, 3PLFulfilled"),
        ("tiktok", ["seller"], "seller: tiktok names only FULFILLMENT_BY_SELLER, FULFILLMENT_BY_TIKTOK"),
        ("amazon", [], "must be a list of names, e.g. [MFN]"),
    ],
)
def test_fulfilment_names_are_the_marketplaces_own(kind: str, names: list[str], error: str) -> None:
    """A misspelt fulfilment name would silently import nothing (or everything): refused at load, by name."""
    channel = {"name": "m", "type": kind, "fulfillment_services": names}
    raw: dict[str, Any] = {"sites": {"main": {"secret": "env:MAIN_SECRET", "channels": [channel]}}}
    with pytest.raises(ConfigError, match=re.escape(error)):
        config.parse(raw, ENV)
    raw["sites"]["main"]["channels"][0]["fulfillment_services"] = list(config.FULFILMENT_NAMES[kind])
    assert config.parse(raw, ENV).sites[0].channels[0].fulfillment_services == config.FULFILMENT_NAMES[kind]
