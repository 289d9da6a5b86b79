"""Prometheus metrics for ``/metrics``, on a registry of the relay's own (never the global one).

Labels are only ever a configured site and channel, a fixed result/outcome word, or an error code
from our own list: never a SKU, an event id or anything a request can choose, so a hostile client
cannot blow up the series count, and nothing secret can become a label.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..delivery.deliveries import Claimed, Outcome

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CIRCUIT_STATES = ("closed", "half_open", "open")
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
# An accepted batch is answered in milliseconds (one group commit); the top buckets catch a stalled disk.
INGEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._children: dict[tuple[Any, ...], Any] = {}
        r = self.registry
        self.events = Counter(
            "stock_relay_events", "Events received, by how they were judged", ["site", "result"], registry=r
        )
        self.request_errors = Counter(
            "stock_relay_request_errors", "Requests refused, by error code", ["code"], registry=r
        )
        self.client_aborts = Counter(
            "stock_relay_client_aborts",
            "Requests whose client went away or was too slow (not the relay's errors): disconnected, timeout",
            ["reason"],
            registry=r,
        )
        self.connections_refused = Counter(
            "stock_relay_connections_refused", "Connections answered 503 at limits.max_connections", registry=r
        )
        self.deliveries = Counter(
            "stock_relay_deliveries", "Delivery outcomes per channel", ["site", "channel", "outcome"], registry=r
        )
        self.attempts = Counter(
            "stock_relay_attempts",
            "Channel answers per item, by HTTP status class (none: no HTTP answer)",
            ["site", "channel", "status_class"],
            registry=r,
        )
        self.ingest_seconds = Histogram(
            "stock_relay_ingest_seconds",
            "Time to answer a stock.batch POST with 202: signature, parsing and the durable commit",
            ["site"],
            buckets=INGEST_BUCKETS,
            registry=r,
        )
        self.latency = Histogram(
            "stock_relay_ingest_to_delivered_seconds",
            "From the shop's change reaching the relay to the channel confirming it",
            ["site", "channel"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "stock_relay_queue_depth", "Deliveries waiting (coalesced: one per SKU)", ["site", "channel"], registry=r
        )
        self.oldest_pending = Gauge(
            "stock_relay_oldest_pending_seconds",
            "Age of the oldest change not yet on the channel (0 when none)",
            ["site", "channel"],
            registry=r,
        )
        self.dead_letters = Gauge("stock_relay_dead_letters", "Open dead letters", ["site", "channel"], registry=r)
        self.circuit = Gauge(
            "stock_relay_circuit_state",
            "1 for the channel's current circuit state (open: paused after failures or an auth error)",
            ["site", "channel", "state"],
            registry=r,
        )
        self.oversold = Counter(
            "stock_relay_oversold",
            "Sales that left the shop's stock below zero (the last unit sold twice), by the channel that sold it",
            ["site", "channel"],
            registry=r,
        )
        self.worker_stalled = Gauge(
            "stock_relay_worker_stalled", "1 when a channel's dispatcher has stopped ticking", ["site", "channel"],
            registry=r,
        )  # fmt: skip

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: labels() costs a lock and a dict walk on every call, and the
        hot paths (every request, every settled batch) ask for the same few children again and again. The
        label values are bounded (see the module docstring), so this cache is too."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def count_batch(self, site: str, response: Mapping[str, Any]) -> None:
        for result, key in (("accepted", "accepted"), ("duplicate", "duplicates"), ("stale", "stale")):
            if response.get(key):
                self._child(self.events, site, result).inc(response[key])
        if response.get("rejected"):
            self._child(self.events, site, "rejected").inc(len(response["rejected"]))

    def observe_ingest(self, site: str, seconds: float) -> None:
        self._child(self.ingest_seconds, site).observe(seconds)

    def count_error(self, code: str) -> None:
        self._child(self.request_errors, code).inc()

    def count_client_abort(self, reason: str) -> None:
        self._child(self.client_aborts, reason).inc()

    def count_settled(
        self, site: str, channel: str, claimed: Sequence[Claimed], outcomes: Sequence[Outcome], now: float
    ) -> None:
        received = {c.sku: c.received_at for c in claimed}
        by_outcome: dict[str, int] = {}
        by_class: dict[str, int] = {}
        latency = self._child(self.latency, site, channel)
        for out in outcomes:
            by_outcome[out.status] = by_outcome.get(out.status, 0) + 1
            if out.status == "skipped":
                continue
            status_class = f"{out.http_status // 100}xx" if out.http_status else "none"
            by_class[status_class] = by_class.get(status_class, 0) + 1
            if out.status == "ok" and out.sku in received:
                latency.observe(max(0.0, now - received[out.sku]))
        for status, count in by_outcome.items():
            self._child(self.deliveries, site, channel, status).inc(count)
        for status_class, count in by_class.items():
            self._child(self.attempts, site, channel, status_class).inc(count)

    def count_oversold(self, site: str, channel: str) -> None:
        self._child(self.oversold, site, channel).inc()

    def set_queues(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Gauges from a status snapshot: one row per channel with site, name, pending, age, dead, circuit."""
        for row in rows:
            labels = (row["site"], row["name"])
            self.queue_depth.labels(*labels).set(row["pending"])
            self.oldest_pending.labels(*labels).set(row["oldest_pending_age"] or 0)
            self.dead_letters.labels(*labels).set(row["dead_letters"])
            for state in CIRCUIT_STATES:
                self.circuit.labels(*labels, state).set(1 if row.get("circuit") == state else 0)
            self.worker_stalled.labels(*labels).set(1 if row.get("worker") not in (None, "ok") else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
