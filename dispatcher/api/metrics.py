"""Prometheus metrics of the dispatcher, in registries of their own (never the global default
one, so a test can build several apps in one process).

`METRICS` is the process's set of counters; the other parts increment it directly
(`METRICS.events_ingested.inc(len(batch))`); `RequestMetrics` (ASGI middleware) counts every
answered request, refused ones too, by route template (never the raw path). The
deployments-by-status gauge is read from the store at scrape time by a collector each app
registers in a registry of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatcher.model import Status

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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


class RequestMetrics:
    """Counts every answered request by method, route template and status (refused ones too)."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, routes: Callable[[], list[Any]]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    def _route(self, scope: Scope) -> str:
        for route in self.routes():
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return str(getattr(route, "path", "other"))
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.metrics.requests.labels(
                    scope["method"], self._route(scope), str(message["status"])
                ).inc()
            await send(message)

        await self.app(scope, receive, counting_send)


def render(metrics: Metrics, store_registry: CollectorRegistry) -> bytes:
    """The text exposition of the process's counters and the app's store gauges."""
    return generate_latest(metrics.registry) + generate_latest(store_registry)
