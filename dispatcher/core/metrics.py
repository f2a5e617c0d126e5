"""The dispatcher's Prometheus metrics, in registries of their own (never the global default
one, so a test can build several apps in one process).

`METRICS` is the process's set of counters; the parts increment it directly
(`METRICS.events_ingested.inc(len(batch))`). The deployments-by-status gauge is read from the
store at scrape time by a collector each app registers in a registry of its own. Serving them
over HTTP is the API's (`dispatcher.api.metrics`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dispatcher.model import Status


@dataclass
class Metrics:
    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )

    def __post_init__(self) -> None:
        self.requests = Counter(
            "forge_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.hook_auth_failures = Counter(
            "forge_hook_auth_failures",
            "Requests refused by the hook's signature check, by reason.",
            ("reason",),
            registry=self.registry,
        )
        self.events_ingested = Counter(
            "forge_events_ingested",
            "Runner events persisted to the store.",
            registry=self.registry,
        )


METRICS = Metrics()


class DeploymentsByStatus(Collector):
    """`forge_deployments{status=...}`: how many deployments are in each status now."""

    def __init__(self, count: Callable[[], dict[str, int]]) -> None:
        self._count = count

    def collect(self) -> Iterator[Metric]:
        counts = self._count()
        gauge = GaugeMetricFamily(
            "forge_deployments", "Deployments in the store, by status.", labels=["status"]
        )
        for status in Status:
            gauge.add_metric([status.value], float(counts.get(status.value, 0)))
        yield gauge
