"""Docs stay true: every config key is documented, the example config loads, the README's commands exist."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from relay import config, signing
from relay.cli import main

ROOT = Path(__file__).resolve().parent.parent
ALL_KEYS = sorted(
    config.TOP_KEYS
    | config.LISTEN_KEYS
    | config.LIMIT_KEYS
    | {f.name for f in fields(config.DispatchConfig)}
    | config.SITE_KEYS
    | config.CHANNEL_KEYS
    | config.RATE_KEYS
    | config.RULE_KEYS
    | config.RECONCILE_KEYS
)


@pytest.mark.parametrize("key", ALL_KEYS)
def test_every_key_is_in_the_example(key: str) -> None:
    """config.example.yaml shows every key the relay accepts (commented out where it is optional)."""
    text = (ROOT / "config.example.yaml").read_text()
    assert re.search(rf"^\s*(#\s*)?(- )?{re.escape(key)}:", text, re.MULTILINE), f"{key} is not in config.example.yaml"


@pytest.mark.parametrize("key", ALL_KEYS)
def test_every_key_is_in_configuration_doc(key: str) -> None:
    """docs/configuration.md explains every key."""
    assert (
        f"`{key}`" in (ROOT / "docs" / "configuration.md").read_text()
        or f"{key}`" in (ROOT / "docs" / "configuration.md").read_text()
    )


def test_example_config_loads(tmp_path: Path) -> None:
    """The example config is valid as shipped, given the secrets it references."""
    text = (ROOT / "config.example.yaml").read_text()
    env: dict[str, str] = {}
    for name in set(re.findall(r"env:([A-Z0-9_]+)", text)):
        env[name] = signing.new_ed25519_key()[0] if "ED25519" in name or "V1A" in name else signing.new_secret()
    cfg = config.parse(yaml.safe_load(text), env, tmp_path)
    assert cfg.sites and all(site.channels for site in cfg.sites)


def test_readme_commands_exist() -> None:
    """The README's quick start scripts exist and are executable, and .ci/run calls the test command."""
    readme = (ROOT / "README.md").read_text()
    assert "./stock-relay demo" in readme and "scripts/test" in readme
    for script in ("stock-relay", "scripts/test", ".ci/run"):
        assert (ROOT / script).stat().st_mode & 0o111, f"{script} is not executable"
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_readme_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """Each subcommand of the CLI appears in the README's command table."""
    with pytest.raises(SystemExit):
        main(["--help"])
    commands = re.findall(r"^    (\S+)\s", capsys.readouterr().out, re.MULTILINE)
    readme = (ROOT / "README.md").read_text()
    assert commands and all(f"stock-relay {c}" in readme for c in commands)


def test_docs_say_readback_runs_without_shop_url() -> None:
    """Read-back compares each channel with what the relay last sent it and runs with or without shop_url
    (test_reconcile::test_readback_runs_without_shop_url_and_says_so); the docs said the whole reconcile section
    was only used with shop_url, and the example that without it nothing is reconciled."""
    doc = (ROOT / "docs" / "configuration.md").read_text()
    row = next(line for line in doc.splitlines() if line.startswith("| `reconcile` |"))
    assert "read-back (`readback_hours`, `readback_share`) runs with or without it" in row, row
    assert "Read-back (the last two keys) needs no `shop_url`" in doc
    example = (ROOT / "config.example.yaml").read_text()
    assert "nothing is reconciled" not in example
    assert "read-back (readback_hours below) still runs without it" in example


def test_local_links_resolve() -> None:
    """Every relative link in the README and docs/ names a file of this tree (openapi.yaml moved into the package,
    relay/openapi.yaml, so that a wheel carries it)."""
    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            path = target.split("#")[0]
            if path and not re.match(r"^[a-z]+:", path) and not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken
    assert not (ROOT / "docs" / "openapi.yaml").exists(), "one copy: relay/openapi.yaml"
