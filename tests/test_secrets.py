"""No secret ever leaves the relay in clear: one scenario touches every surface with known secret values and then
searches everything the relay wrote or answered for them.

Secrets: the site's signing secret (and the HMAC key inside it), a marketplace client secret, every access token
the marketplace issued, and the vault key. The marketplace turns hostile halfway and echoes our request, headers
included, in its error bodies: the relay keeps response excerpts for the audit log, so this is how a token would
leak in real life. Surfaces searched: the relay's log records, every HTTP answer (ingest errors, operator API,
/metrics, /readyz), the operator CLI's output (status, audit, dead, lineage, export state and audit, credentials
list), the database and its WAL byte for byte (on PostgreSQL: every row of every table), and the credentials files.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from fakes.shopify import FakeShopify

from .backend import current_store, read_rows
from .conftest import SITE_SECRET, RunningRelay
from .marketplaces import VAULT_KEY, channel, marketplace_config, send, store_credentials
from .procs import run_cli


class EchoingShopify(FakeShopify):
    """Shopify, until ``hostile`` is set: then every GraphQL call fails with our own request echoed back."""

    hostile = False

    async def graphql(self, request: web.Request) -> web.Response:
        if not self.hostile:
            return await super().graphql(request)
        body = (await request.read()).decode()
        return web.Response(status=500, text=f"upstream error; request was {dict(request.headers)!r} {body}")


@pytest.fixture
async def shop() -> AsyncIterator[EchoingShopify]:
    fake = EchoingShopify()
    await fake.start()
    yield fake
    await fake.stop()


async def get_text(r: RunningRelay, path: str, **kwargs: object) -> str:
    async with r.session.get(r.base_url + path, **kwargs) as response:  # type: ignore[arg-type]
        return f"{response.status} {dict(response.headers)} {await response.text()}"


def store_text(database: Path) -> str:
    """Every row of every table of the test's PostgreSQL schema, as text (its files are not the test's to read)."""
    tables = read_rows(
        database, "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    )
    values = [value for (table,) in tables for row in read_rows(database, f"SELECT * FROM {table}") for value in row]
    return "\n".join(v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in values)


async def test_no_secret_appears_anywhere(start_relay, tmp_path: Path, shop: EchoingShopify, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    shop.add_variant("A")
    shop.add_variant("B")
    config = marketplace_config(tmp_path / "state", channel("shopify", shop.url, {"shop": "s", "location_id": "1"}))
    store_credentials(config, "main/shopify", {"client_id": shop.client_id, "client_secret": shop.client_secret})
    r = await start_relay(config)
    seen: list[str] = []

    await send(r, [("A", 3), ("B", 4)])
    await r.drain()
    assert shop.quantity("A") == 3, "the happy path must work, or this test searches nothing"
    shop.hostile = True
    await send(r, [("A", 5), ("B", 6)], version=2)
    for _ in range(5):
        await r.drain()
    hostile_excerpts = await r.count("SELECT COUNT(*) FROM audit WHERE detail LIKE '%upstream error%'")
    assert hostile_excerpts, "the hostile answers must have reached the audit log, redacted"

    # Ingest refusals: a wrong secret, a stale timestamp, a malformed body.
    body = b'{"type": "stock.batch"'
    for headers in (
        {"webhook-id": "msg_x", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"},
        {"webhook-id": "msg_y", "webhook-timestamp": "9999999999", "webhook-signature": f"v1,{SITE_SECRET}"},
    ):
        status, answer, response_headers = await r.post_raw(
            "/v1/sites/main/events", body, {**headers, "content-type": "application/json"}
        )
        seen.append(f"{status} {answer} {response_headers}")
    for doc in ({"type": "status.query", "site": "main"}, {"type": "audit.query", "site": "main", "limit": 500}):
        operation = doc["type"].split(".")[0]
        seen.append(repr(await r.client.post(operation, doc)))
    seen.append(await get_text(r, "/metrics"))
    seen.append(await get_text(r, "/readyz"))

    state = str(config.state_dir)
    env = {"SECRETS_SITE": SITE_SECRET, "SECRETS_VAULT": VAULT_KEY}
    doc = {
        "state_dir": state,
        "vault_key": "env:SECRETS_VAULT",
        "sites": {
            "main": {
                "secret": "env:SECRETS_SITE",
                "channels": [
                    {
                        "name": "shopify",
                        "type": "shopify",
                        "api_base": shop.url,
                        "account": {"shop": "s", "location_id": "1"},
                    }
                ],
            }
        },
    }
    config_path = tmp_path / "relay.yaml"
    config_path.write_text(yaml.safe_dump(doc))
    for args in (
        ("status", "--json"),
        ("audit", "--json", "--limit", "500"),
        ("audit", "--limit", "500"),
        ("dead",),
        ("lineage", "A"),
        ("export", "state"),
        ("export", "audit", "--format", "jsonl"),
        ("check-config",),
        ("credentials", "list"),
    ):
        done = run_cli(args[0], "-c", str(config_path), *args[1:], env=env)
        assert done.returncode in (0, 3), (args, done.stderr[-2000:])  # 3: status with dead letters
        seen.append(done.stdout + done.stderr)
    assert any("upstream error" in text for text in seen), "the CLI must have shown the excerpts it searched"

    secrets = {
        "site secret": SITE_SECRET,
        "site HMAC key": base64.b64encode(base64.b64decode(SITE_SECRET.removeprefix("whsec_"))).decode()[:20],
        "client secret": shop.client_secret,
        "vault key": VAULT_KEY,
        **{f"access token {n}": token for n, token in enumerate(shop.tokens._access)},
    }
    assert len(secrets) >= 5, "no access token was issued: the scenario did not run"
    searched = {
        "log": caplog.text,
        "answers and CLI output": "\n".join(seen),
    }
    for path in Path(state).rglob("*"):
        if path.is_file():
            searched[str(path.relative_to(state))] = path.read_bytes().decode("latin-1")
    if current_store() is not None:
        searched["store"] = store_text(config.database_path)
    leaks = [(what, where) for what, value in secrets.items() for where, text in searched.items() if value in text]
    assert not leaks, f"secrets found in clear: {leaks}"
    assert any(where.startswith(("relay.sqlite3", "store")) for where in searched), "the database was not searched"
