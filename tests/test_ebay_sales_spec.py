"""eBay's sales intake checked against eBay's Sell Fulfillment OpenAPI (sell_fulfillment_v1_oas3.json): the getOrders
requests the connector sends are the operation's, and the fake's answers validate against its schemas, so the
connector is tested against answers shaped as eBay's.

The spec is not among CI's copies in ../shared/refs/specs: ``scripts/fetch-specs --extra`` downloads it (from a
public mirror of eBay's file at a fixed commit, as the Inventory spec), and without it these tests skip and say so.

eBay's schemas mark no field required and none closed, so as written they accept nearly any object. The checks
close them (a field the spec does not list is an error: eBay's answers carry only listed fields, and a fake's typo
would otherwise pass) and turn the timestamp format the descriptions state into a pattern. What the spec states
only in prose (the filter's syntax, limit's maximum, the percent-encoding getOrders requires, the errorIds per
status) is read from that prose, so the checks follow the file rather than this test's memory of it.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest

from fakes.common import Recorded
from fakes.ebay import FakeEbay
from relay.config import ChannelConfig, RateLimit
from relay.connectors import build
from relay.connectors.ebay import ORDERS_PATH, ORDERS_SCOPE, EbayConnector
from relay.vault import Vault

from .spec_files import load, oas3_validator

SPEC = "ebay/sell_fulfillment_v1_oas3.json"
VAULT_KEY = "bXl0ZXN0dmF1bHRrZXlteXRlc3R2YXVsdGtleTAxMjM="
FORMAT = re.compile(r"<b>Format:</b>\s*<code>([^<]+)</code>")


def fulfillment_spec() -> dict[str, Any]:
    spec: dict[str, Any] = load(SPEC, in_ci=False)
    return spec


def get_orders(spec: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = spec["paths"]["/order"]["get"]
    assert operation["operationId"] == "getOrders"
    return operation


def format_pattern(fmt: str) -> str:
    """``[YYYY]-[MM]-[DD]T[hh]:[mm]:[ss].[sss]Z`` (as eBay's descriptions write formats) as a regular expression."""
    parts = re.split(r"(\[[A-Za-z]+\])", fmt)
    return "^" + "".join(rf"\d{{{len(p) - 2}}}" if p.startswith("[") else re.escape(p) for p in parts) + "$"


def as_answered(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec's schemas closed to the fields they list, with each stated timestamp format as a pattern."""
    spec = copy.deepcopy(spec)
    for schema in spec["components"]["schemas"].values():
        if "properties" in schema:
            schema.setdefault("additionalProperties", False)
        for field in schema.get("properties", {}).values():
            stated = FORMAT.search(field.get("description", ""))
            if stated and field.get("type") == "string":
                field["pattern"] = format_pattern(stated.group(1))
    return spec


def answer_validator(spec: dict[str, Any], status: int) -> jsonschema.protocols.Validator:
    """getOrders' 200 schema; other statuses have none in the spec, so eBay's error envelope of its Error schema."""
    closed = as_answered(spec)
    if status == 200:
        schema = get_orders(spec)["responses"]["200"]["content"]["application/json"]["schema"]
    else:
        errors = {"type": "array", "items": {"$ref": "#/components/schemas/Error"}, "minItems": 1}
        schema = {
            "type": "object",
            "properties": {"errors": errors},
            "required": ["errors"],
            "additionalProperties": False,
        }
    return oas3_validator(closed, schema)


def request_problems(spec: dict[str, Any], call: Recorded) -> list[str]:
    """How one getOrders request differs from what the operation documents (empty: it is the spec's)."""
    operation = get_orders(spec)
    params = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
    problems = [f"{name} is not a getOrders query parameter" for name in call.query if name not in params]
    problems += [f"{name} is required" for name, p in params.items() if p.get("required") and name not in call.query]
    base = spec["servers"][0]["variables"]["basePath"]["default"]
    if call.path != base + "/order":
        problems.append(f"path {call.path} is not {base}/order")

    described = params["filter"]["description"]
    examples = re.findall(r"<code>(lastmodifieddate:\[[^<]*)</code>", described)
    shapes = [re.sub(r"\d", r"\\d", re.escape(example)) for example in examples]  # each digit: any digit
    criterion = call.query.get("filter", "")
    if not any(re.fullmatch(shape, criterion) for shape in shapes):
        problems.append(f"filter {criterion!r} has the shape of none of the spec's examples {examples}")
    encoded = dict(re.findall(r"<code>(\S)</code> = <code>(%[0-9A-F]{2})</code>", described))
    raw = urllib.parse.urlsplit(call.raw_path).query
    problems += [f"{c!r} not sent as {code}" for c, code in encoded.items() if c in criterion and c in raw]

    stated = re.search(r"<b>Maximum:</b> <code>(\d+)</code>", params["limit"]["description"])
    maximum = int(stated[1]) if stated else 0  # no stated maximum: every limit is a problem, and says so
    limit = call.query.get("limit", "")
    if not (limit.isdigit() and 1 <= int(limit) <= maximum):
        problems.append(f"limit {limit!r} is not 1 to {maximum}")
    offset = call.query.get("offset", "0")
    if not offset.isdigit():
        problems.append(f"offset {offset!r} is not a zero-based count")
    return problems


@pytest.fixture
async def ebay() -> AsyncIterator[FakeEbay]:
    fake = FakeEbay()
    await fake.start()
    fake.add_item("EB-1", 10)
    fake.add_item("EB-2", 10)
    yield fake
    await fake.stop()


@pytest.fixture
async def connector(tmp_path: Path, ebay: FakeEbay) -> AsyncIterator[EbayConnector]:
    vault = Vault(tmp_path / "vault", [VAULT_KEY])
    vault.write("main/ebay", {"client_id": ebay.client_id, "client_secret": ebay.client_secret,
                              "refresh_token": ebay.refresh_token})  # fmt: skip
    config = ChannelConfig(name="ebay", type="ebay", api_base=ebay.url, account={}, rate=RateLimit(1000, 1000))
    async with aiohttp.ClientSession() as session:
        built = build("main", config, session, vault)
        assert isinstance(built, EbayConnector)
        yield built


async def no_wait() -> None:
    return None


async def test_getorders_requests_are_the_specs(ebay: FakeEbay, connector: EbayConnector) -> None:
    """Every page's request is getOrders as the spec documents it: its path under the servers' basePath, only its
    query parameters, a lastmodifieddate filter shaped as the spec's example (UTC, milliseconds) with [ and ]
    percent-encoded as the spec requires, limit within its stated maximum, offset zero-based and advancing by the
    orders read; the token for it is granted for one of the operation's security scopes."""
    spec = fulfillment_spec()
    ebay.page_limit = 2
    for sku in ("EB-1", "EB-2", "EB-1", "EB-2"):
        ebay.sell(sku, 1)
    ebay.cancel(ebay.sell("EB-1", 1, lines=2))
    since = dt.datetime.now(dt.timezone(dt.timedelta(hours=2))) - dt.timedelta(minutes=5)
    sales, skipped = await connector.sales_since(since, no_wait)
    assert len(sales) == 8 and skipped == []  # four single lines; two lines sold and cancelled

    calls = ebay.calls(ORDERS_PATH)
    assert [c.query["offset"] for c in calls] == ["0", "2", "4"]
    for call in calls:
        assert request_problems(spec, call) == [], call.raw_path
    stamp = calls[0].query["filter"].removeprefix("lastmodifieddate:[").removesuffix("..]")
    assert dt.datetime.fromisoformat(stamp) == since.replace(microsecond=since.microsecond // 1000 * 1000)

    scopes = {s for rule in get_orders(spec)["security"] for s in rule.get("api_auth", [])}
    grants = [urllib.parse.parse_qs(c.body.decode())["scope"][0] for c in ebay.calls("oauth2/token")]
    assert ORDERS_SCOPE in scopes and ORDERS_SCOPE in grants

    def altered(**query: str) -> Recorded:
        args = calls[0].query | query
        raw = ORDERS_PATH + "?" + urllib.parse.urlencode(args, safe=":[]" if "unencoded" in query else "")
        return Recorded("GET", ORDERS_PATH, {k: v for k, v in args.items() if k != "unencoded"}, {}, b"", 0.0, raw)

    for bad in (
        altered(filter="lastmodifieddate:[2016-05-15T08:25:43Z..]"),  # no milliseconds
        altered(filter="modifieddate:[2016-05-15T08:25:43.511Z..]"),
        altered(limit="201"),
        altered(offset="-1"),
        altered(sort="creationdate"),
        altered(unencoded="1"),
    ):
        assert request_problems(spec, bad), f"the check must refuse {bad.raw_path}"


async def test_getorders_answers_validate_against_the_spec(ebay: FakeEbay) -> None:
    """The fake's OrderSearchPagedCollection pages (orders with several lines, a cancelled one, a page with next and
    the page it names, an empty one) validate against the spec's schemas, closed to the fields they list; its
    refusals carry the errorIds the spec lists for getOrders' 400 and 500, with their domains, categories and
    messages."""
    spec = fulfillment_spec()
    codes = {
        int(status): {int(k): v for k, v in answer["x-response-codes"]["errors"].items()}
        for status, answer in get_orders(spec)["responses"].items()
        if "x-response-codes" in answer
    }
    ebay.page_limit = 2
    ebay.sell("EB-1", 2, lines=2)
    ebay.cancel(ebay.sell("EB-2", 1))
    ebay.sell("EB-1", 1)
    since = "lastmodifieddate:[2020-01-01T00:00:00.000Z..]"
    seen: list[tuple[int, dict[str, Any]]] = []
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {ebay.tokens.issue()[0]}"}

        async def answer(url: str, **args: str) -> dict[str, Any]:
            async with session.get(url, params=args or None, headers=headers) as got:
                doc: dict[str, Any] = await got.json()
            seen.append((got.status, doc))
            return doc

        url = ebay.url + ORDERS_PATH
        first = await answer(url, filter=since, limit="200")
        assert first["total"] == 3 and len(first["orders"]) == 2 and "next" in first
        second = await answer(first["next"])  # the URI eBay says to use for the next page
        assert [o["orderId"] for o in first["orders"] + second["orders"]] == list(reversed(ebay.orders))
        assert "next" not in second
        await answer(url, filter=since, offset="10")  # past the last order: an empty page
        await answer(url, filter="lastmodifieddate:[2020-01-01T00:00:00.000Z..2020-02-01T00:00:00.000Z]")
        for refused in (
            {"filter": "modifieddate:[2020-01-01T00:00:00.000Z..]"},
            {"filter": "lastmodifieddate:2020-01-01T00:00:00.000Z"},
            {"filter": "lastmodifieddate:[2020-01-01T00:00:00Z..]"},
            {"filter": "lastmodifieddate:[..2020-01-01T00:00:00.000Z]"},
            {"limit": "201"},
            {"offset": "-1"},
        ):
            await answer(url, **refused)
        ebay.page_failures[0] = 500
        await answer(url)

    states = {o["cancelStatus"]["cancelState"] for status, doc in seen if status == 200 for o in doc["orders"]}
    assert states == {"CANCELED", "NONE_REQUESTED"} and [s for s, _ in seen].count(200) == 4
    for status, doc in seen:
        errors = sorted(answer_validator(spec, status).iter_errors(doc), key=str)
        assert not errors, f"{status}: {errors[0].message} at {list(errors[0].absolute_path)}"
        for error in doc.get("errors", []):
            documented = codes[status].get(error["errorId"])
            assert documented is not None, f"{status}: errorId {error['errorId']} is not listed for getOrders"
            assert (error["domain"], error["category"]) == (documented["domain"], documented["category"])
            template = re.escape(documented["description"]).replace(r"\{", "{").replace(r"\}", "}")
            said = re.sub(r"\{\w+\}", ".*", template)  # its {placeholders}: any text
            assert re.fullmatch(said, error["message"]), f"{error} is not {documented['description']!r}"
    assert sorted({s for s, _ in seen}) == [200, 400, 500]

    page = copy.deepcopy(first)
    page["orders"][0]["lineItems"][0]["quantity"] = "2"
    assert list(answer_validator(spec, 200).iter_errors(page)), "a quantity as text must be refused"
    page = copy.deepcopy(first)
    page["orders"][0]["cancelStatus"]["cancelstate"] = page["orders"][0]["cancelStatus"].pop("cancelState")
    assert list(answer_validator(spec, 200).iter_errors(page)), "a field the spec does not list must be refused"
    page = copy.deepcopy(first)
    page["orders"][0]["lastModifiedDate"] = "2020-01-01T00:00:00Z"
    assert list(answer_validator(spec, 200).iter_errors(page)), "a timestamp not in the stated format must be refused"
