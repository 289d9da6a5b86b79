"""The Grafana dashboard (deploy/grafana/stock-relay.json) against a real relay's /metrics: every metric a panel or a
template variable asks for is one ``stock-relay serve`` exports, as the type the query needs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from relay.cli.client import SignedClient, stock_event

from .conftest import CHANNEL_SECRET, SITE_SECRET, eventually
from .procs import RelayProcess

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "stock-relay.json"
DATASOURCE = "${DS_PROMETHEUS}"

# PromQL words that look like identifiers but are not metric names (functions are caught by the "(" after them).
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
MATCHERS = re.compile(r"\{[^{}]*\}")  # label matchers; PromQL does not nest braces once strings are gone
RANGES = re.compile(r"\[[^\[\]]*\]")  # [5m], [$__rate_interval], subqueries [1h:5m]
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
GRAFANA_VARIABLE = re.compile(r"\$\{\w+(?::\w+)?\}|\$\w+")
IDENTIFIER = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:]|\s*\()")
LABEL_VALUES = re.compile(r"label_values\((.*),\s*\w+\)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers left once strings, label matchers, ranges,
    grouping clauses and Grafana variables are removed, less function calls (a name before "(") and keywords."""
    text = STRING.sub(" ", expr)
    for pattern in (MATCHERS, RANGES, GROUPING, GRAFANA_VARIABLE):
        text = pattern.sub(" ", text)
    return {name for name in IDENTIFIER.findall(text) if name not in KEYWORDS}


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those a collapsed row keeps inside itself."""
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query")
    return str(query.get("query", "") if isinstance(query, dict) else query or "")


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression: the panels' targets and the query variables (label_values' selector)."""
    found = [target["expr"] for panel in all_panels(dashboard) for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = LABEL_VALUES.fullmatch(variable_query(variable))
            assert match, f"variable {variable['name']}: expected label_values(selector, label)"
            found.append(match.group(1))
    return found


def exported_names(scrape: str) -> dict[str, str]:
    """Each name a query may select, with the type of the family it belongs to: a counter as ``_total``, a gauge as
    itself, a histogram as ``_bucket``, ``_count`` and ``_sum``. From the families' declarations, so a labelled
    metric with no sample yet (an oversold counter before any oversell) still counts as exported."""
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}
    names = {}
    for family in text_string_to_metric_families(scrape):
        for suffix in suffixes.get(family.type, ("",)):
            names[family.name + suffix] = family.type
    return names


def load_dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (site, result) (rate(a_total{site=~"$site"}[$__rate_interval]))', {"a_total"}),
        ('histogram_quantile(0.99, sum by (le) (rate(b_bucket{x="{y}"}[5m])))', {"b_bucket"}),
        ('sum(c{state="open"}) by (site) * 2 + on (site) d offset 1h', {"c", "d"}),
        ("max(e) or vector(0)", {"e"}),
        ("f[1h:5m]", {"f"}),
    ],
)
def test_metric_names_finds_every_selected_metric(expr: str, names: set[str]) -> None:
    """The expression parser finds the metric names and nothing else (no labels, functions or variables)."""
    assert metric_names(expr) == names


def test_dashboard_is_an_importable_model() -> None:
    """Unique panel ids, a title on each, a datasource input and variable every query uses, site and channel."""
    dashboard = load_dashboard()
    panels = all_panels(dashboard)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"
    assert all(isinstance(panel.get("title"), str) and panel["title"].strip() for panel in panels)
    assert {"name": "DS_PROMETHEUS", "type": "datasource", "pluginId": "prometheus"}.items() <= next(
        i for i in dashboard["__inputs"] if i["name"] == "DS_PROMETHEUS"
    ).items()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource" and variables["DS_PROMETHEUS"]["query"] == "prometheus"
    for name in ("site", "channel"):
        assert variables[name]["type"] == "query" and variable_query(variables[name]).startswith("label_values(")
        assert variables[name]["datasource"]["uid"] == DATASOURCE
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == DATASOURCE, panel["title"]
            assert panel["targets"] and all(t["datasource"]["uid"] == DATASOURCE for t in panel["targets"])


def test_dashboard_panels_do_not_overlap() -> None:
    """No two panels share a grid cell (Grafana would move one of them somewhere the author did not put it)."""
    taken: dict[tuple[int, int], str] = {}
    for panel in all_panels(load_dashboard()):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


def write_config(tmp_path: Path, receiver: Any) -> Path:
    doc = {
        "state_dir": str(tmp_path / "state"),
        "listen": {"host": "127.0.0.1", "port": 0},
        "dispatch": {"backoff_base_seconds": 0.05, "backoff_max_seconds": 0.5, "idle_poll_seconds": 0.05},
        "sites": {
            "main": {
                "secret": "env:DASH_SITE_SECRET",
                "max_requests_per_second": 0,
                "channels": [{"name": "shop2", "type": "webhook", "url": receiver.url("/shop2"),
                              "secret": "env:DASH_HOOK_SECRET"}],
            }
        },
    }  # fmt: skip
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


async def scrape_after_traffic(tmp_path: Path, receiver: Any) -> str:
    """A real ``stock-relay serve``: two accepted batches, two refused (wrong secret, unknown site), the deliveries
    confirmed; then its /metrics text."""
    env = {"DASH_SITE_SECRET": SITE_SECRET, "DASH_HOOK_SECRET": CHANNEL_SECRET}
    relay = RelayProcess(write_config(tmp_path, receiver), env, tmp_path / "relay.log")
    relay.start()
    async with aiohttp.ClientSession() as session:
        client = SignedClient(relay.url, "main", SITE_SECRET, session)
        for version in (1, 2):
            status, _ = await client.send_events([stock_event(7, "SKU-7", 10 - version, version)])
            assert status == 202
        forged = SignedClient(relay.url, "main", CHANNEL_SECRET, session)
        assert (await forged.send_events([stock_event(8, "SKU-8", 1, 1)]))[0] == 401
        unknown = SignedClient(relay.url, "made-up-site", SITE_SECRET, session)
        assert (await unknown.send_events([stock_event(9, "SKU-9", 1, 1)]))[0] == 404

        async def scrape() -> str:
            async with session.get(relay.url + "/metrics") as response:
                assert response.status == 200
                return await response.text()

        async def delivered() -> bool:
            return 'stock_relay_deliveries_total{channel="shop2",outcome="ok",site="main"}' in await scrape()

        await eventually(delivered, what="the channel to confirm a delivery")
        text = await scrape()
    assert relay.terminate() == 0
    return text


async def test_every_metric_the_dashboard_queries_is_exported(tmp_path: Path, receiver) -> None:
    """Each metric name in a panel or variable query exists in a real relay's scrape, ``_bucket`` ones as
    histograms; the ingest latency histogram counts the two accepted batches, not the refused ones, and never
    labels a series with a site id a client made up."""
    scrape = await scrape_after_traffic(tmp_path, receiver)
    exported = exported_names(scrape)
    referenced = {name for expr in expressions(load_dashboard()) for name in metric_names(expr)}
    assert referenced, "no metric names found in the dashboard's queries"
    missing = sorted(referenced - exported.keys())
    assert not missing, f"the dashboard queries metrics the relay does not export: {missing}"
    for name in referenced:
        if name.endswith("_bucket"):
            assert exported[name] == "histogram", f"{name} is not a histogram's buckets"
    assert 'stock_relay_ingest_seconds_count{site="main"} 2.0' in scrape
    assert "made-up-site" not in scrape
    assert "SKU-7" not in scrape
